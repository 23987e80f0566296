"""Import a capture-session corpus of videos (FaceForensics++ / OULU-NPU style) as a clip corpus.

Layout: one session per video file (`.mp4`, `.avi`, `.mov`, `.mkv`, `.webm`) or per folder
of numbered frame images, either at `src/<species>/<subject>/<session>` (labels and species
from the path; `bona_fide` is label 0, any other species an attack) or listed by a CSV
(`path` relative to src, `subject`, `species`; optional `challenge`).

Per session: frames are decoded with OpenCV (`cv2.VideoCapture`; a frame folder at its
`folder_fps`), sampled at `sample_fps` up to `max_frames`, and each frame is aligned by MTCNN
(`idv.data.face_detect`, `idv.faces.align`) onto the ArcFace template at `size`. A frame
without exactly one face is dropped and counted; a session left with fewer than `min_frames`
aligned frames, or a video that does not open or decode, keeps one row with `acquired = False`
and its `failure` (a failure to acquire, never a silently missing session). Frames of
different sizes within a session, timestamps that do not increase, or a frame folder with a
gap in its numbering are errors that name the session. Subjects are pseudonymised as in
`idv-import-faces`; splits are subject-disjoint.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from idv.data.face_detect import FaceDetector
from idv.data.manifest import BONA_FIDE
from idv.data.readers import ImageReadError, read_image
from idv.data.sources.folder_per_identity import IMAGE_SUFFIXES, _check_paths, pseudonym
from idv.data.synth.writer import CorpusDir, finish_manifest
from idv.errors import IdvError
from idv.faces.acquisition import AcquisitionPolicy, choose_face
from idv.faces.align import align_face

log = logging.getLogger(__name__)
ONE_FACE = AcquisitionPolicy(several_faces="refuse")  # a frame with two faces is refused
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})


class SessionError(IdvError, ValueError):
    """A session's frames are inconsistent (sizes, order, numbering); names the session."""


@dataclass(frozen=True)
class SourceSession:
    path: Path  # a video file or a frame folder
    subject: str
    species: str
    challenge: str | None = None


@dataclass(frozen=True)
class SamplingOptions:
    sample_fps: float = 8.0  # frames kept per second of capture
    max_frames: int = 16
    min_frames: int = 2  # fewer aligned frames: the session is a failure to acquire
    folder_fps: float = 30.0  # the capture rate of a frame folder (it has no timestamps)

    def __post_init__(self) -> None:
        if not (self.sample_fps > 0 and self.folder_fps > 0):
            raise ValueError("sample_fps and folder_fps must be > 0")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self}")


def _is_session(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES) or path.is_dir()


def list_sessions(src: Path, csv: Path | None = None) -> list[SourceSession]:
    """The sessions of `src`, from the path layout or from `csv`."""
    if csv is not None:
        table = pd.read_csv(csv)
        missing = {"path", "subject", "species"} - set(table.columns)
        if missing:
            raise ValueError(f"{csv}: missing column(s) {sorted(missing)}")
        sessions = []
        for i, row in table.iterrows():
            path = src / str(row["path"])
            if not path.exists():
                raise FileNotFoundError(f"{csv}: row {i}: session {row['path']!r} not under {src}")
            challenge = row.get("challenge")
            challenge = None if pd.isna(challenge) else str(challenge)
            sessions.append(
                SourceSession(path, str(row["subject"]), str(row["species"]), challenge)
            )
        return sessions
    sessions = [
        SourceSession(session, subject.name, species.name)
        for species in sorted(p for p in src.iterdir() if p.is_dir())
        for subject in sorted(p for p in species.iterdir() if p.is_dir())
        for session in sorted(subject.iterdir())
        if _is_session(session)
    ]
    if not sessions:
        raise ValueError(
            f"{src}: no sessions; expected src/<species>/<subject>/<video or frame folder>, "
            "or a CSV (csv=...) with columns path, subject, species"
        )
    return sessions


def _video_frames(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    """(timestamp s, RGB frame) of a video, in decode order."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ImageReadError(f"{path}: OpenCV cannot open this video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    try:
        k = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            ms = capture.get(cv2.CAP_PROP_POS_MSEC)
            t = ms / 1000.0 if ms > 0 or k == 0 else (k / fps if fps > 0 else float(k))
            yield t, bgr[:, :, ::-1].copy()
            k += 1
        if k == 0:
            raise ImageReadError(f"{path}: the video has no decodable frame")
    finally:
        capture.release()


def _folder_frames(path: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(index / fps, RGB frame) of a folder of numbered frame images; a gap is an error."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageReadError(f"{path}: no frame images ({sorted(IMAGE_SUFFIXES)})")
    numbers = [re.findall(r"\d+", f.stem) for f in files]
    if all(numbers):
        index = [int(n[-1]) for n in numbers]
        gaps = [a for a, b in zip(index, index[1:], strict=False) if b != a + 1]
        if gaps:
            raise SessionError(f"session {path}: missing frame(s) after frame number {gaps[0]}")
    for k, file in enumerate(files):
        yield k / fps, read_image(file)


def sample_frames(
    session: SourceSession, options: SamplingOptions
) -> list[tuple[float, np.ndarray]]:
    """The session's frames at `sample_fps` (the first frame at or after each sample time),
    at most `max_frames`; checks sizes and timestamps."""
    if session.path.is_dir():
        frames = _folder_frames(session.path, options.folder_fps)
    else:
        frames = _video_frames(session.path)
    kept: list[tuple[float, np.ndarray]] = []
    previous, shape, due = None, None, None
    for t, image in frames:
        if previous is not None and not t > previous:
            raise SessionError(
                f"session {session.path}: timestamps do not increase ({previous:.4f} s, then "
                f"{t:.4f} s)"
            )
        if shape is not None and image.shape != shape:
            raise SessionError(
                f"session {session.path}: frames of different sizes ({shape[1]}x{shape[0]}, "
                f"then {image.shape[1]}x{image.shape[0]} at {t:.3f} s)"
            )
        previous, shape = t, image.shape
        if due is None:
            due = t
        if t + 1e-6 >= due:
            kept.append((t, image))
            due += 1.0 / options.sample_fps
            if len(kept) == options.max_frames:
                break
    return kept


def _import_session(
    session: SourceSession,
    session_id: str,
    subject: str,
    tmp: Path,
    *,
    detector: FaceDetector,
    size: int,
    options: SamplingOptions,
) -> list[dict[str, Any]]:
    label = 0 if session.species == BONA_FIDE else 1
    common = {
        "session_id": session_id, "label": label, "subject_id": subject,
        "attack_type": session.species, "challenge": session.challenge,
    }  # fmt: skip
    failure_row = {**common, "sample_id": f"{session_id}_f000", "path": None,
                   "frame_index": 0, "timestamp_s": 0.0, "acquired": False}  # fmt: skip
    try:
        frames = sample_frames(session, options)
    except ImageReadError as err:
        log.warning("session %s unreadable: %s", session.path, err)
        return [{**failure_row, "failure": "unreadable", "frames_sampled": 0, "frames_aligned": 0}]
    rows, dropped = [], 0
    for t, image in frames:
        try:
            face, failure = choose_face(detector.detect(image), ONE_FACE)
        except Exception as err:  # name the session: a bare MTCNN error says nothing
            raise RuntimeError(f"session {session.path}: face detection failed ({err})") from err
        if face is None:
            dropped += 1
            continue
        k = len(rows)
        rel = f"images/{subject}/{session_id}/{k:03d}.png"
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(align_face(image, face.landmarks, size=size)).save(tmp / rel)
        rows.append({**common, "sample_id": f"{session_id}_f{k:03d}", "path": rel,
                     "frame_index": k, "timestamp_s": float(t), "acquired": True,
                     "failure": None})  # fmt: skip
    counts = {"frames_sampled": len(frames), "frames_aligned": len(rows)}
    if len(rows) < options.min_frames:
        log.warning("session %s: %d of %d frames aligned", session.path, len(rows), len(frames))
        return [{**failure_row, "failure": "too_few_faces", **counts}]
    return [{**row, **counts} for row in rows]


def import_video_sessions(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int,
    split_fractions: Mapping[str, float],
    salt: str,
    csv: str | os.PathLike | None = None,
    size: int = 64,
    detector: FaceDetector | None = None,
    options: SamplingOptions | None = None,
) -> pd.DataFrame:
    """Import the sessions of `src` into the clip corpus directory `out` (atomically); returns
    the manifest (one row per aligned frame, one per failed session)."""
    src, out = Path(src), Path(out)
    _check_paths(src, out)
    options = options or SamplingOptions()
    sessions = list_sessions(src, Path(csv) if csv else None)
    detector = detector or FaceDetector()
    rows: list[dict[str, Any]] = []
    counter: dict[str, int] = {}
    with CorpusDir(out) as tmp:
        for session in sessions:
            subject = pseudonym(session.subject, salt)
            counter[subject] = counter.get(subject, -1) + 1
            session_id = f"{subject}_v{counter[subject]:03d}"
            rows += _import_session(
                session, session_id, subject, tmp, detector=detector, size=size, options=options
            )
        frame = finish_manifest(
            rows, tmp, seed=seed, fractions=split_fractions, stratify=("label", "attack_type")
        )
    failed = frame[~frame["acquired"]]
    log.info(
        "%s: %d sessions, %d aligned frames, %d sessions failed to acquire %s",
        src, frame["session_id"].nunique(), int(frame["acquired"].sum()), len(failed),
        failed["failure"].value_counts().to_dict(),
    )  # fmt: skip
    return frame
