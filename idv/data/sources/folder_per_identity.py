"""Import a folder-per-identity photo corpus (the LFW layout) as aligned crops + a manifest.

    src/<identity name>/<image files>   ->   out/manifest.parquet
                                             out/images/<subject_id>/<sample_id>.png
                                             out/unaligned/<subject_id>/<sample_id>.<ext>

Every image file becomes one manifest row; nothing is dropped silently. Each photo goes
through the acquisition policy a face bundle serves with (:mod:`idv.faces.acquisition`: large
photos downscaled before detection, one face chosen by the several-faces policy, faces below
``min_face_side`` refused, alignment onto the ArcFace template with
:func:`idv.faces.align.align_face`, the function the synthetic faces use). An acquired face is
written as a lossless PNG: the sources are usually JPEG already, and a second lossy generation
would add compression artefacts that the synthetic crops do not have. Every other image keeps
its row with ``acquired = False`` and a ``failure`` reason, its ``path`` pointing at a byte
copy of the original under ``unaligned/``, so evaluation counts it as a failure to acquire:

- ``no_face``: no face at or above the detector's ``min_probability``;
- ``several_faces``: more than one, and the policy chose none. Which of two faces the
  folder's identity is cannot be told, and a wrong face is label noise in every metric
  downstream, which is worse than a lost sample. With ``dominance = d``, faces whose box
  side is at most 1/d of the largest one's are ignored as bystanders (LFW photos often
  show people in the background);
- ``too_small``: the image, or its one face, is below ``min_face_side`` pixels;
- ``unreadable``: the file does not decode (truncated, corrupt, not an image). Such a file
  in a large corpus is usual, not a reason to abort an hour-long import; its row and the
  logged summary name it.

Every row records what a different policy would change: ``face_probabilities`` and
``face_sides`` (pixels) of every face found, and ``failure_detail`` (why it failed: the
decoder's message for ``unreadable``, the policy for ``several_faces``).

Identity folder names are personal data: subject ids are ``S`` + 12 hex digits of
SHA-256(salt, name) and sample ids derive from them. The identity names and original file
names are written (a ``source_file`` column and ``identities.csv``) only with
``keep_names=True``; every row carries ``source_sha256`` (the original file's hash), which
finds the source file again for whoever holds the source corpus, without naming anyone.
Use a secret salt: with a known one, hashing a list of candidate names reverses the ids.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from idv.data.face_detect import FaceDetector
from idv.data.manifest import BONA_FIDE
from idv.data.readers import ImageReadError, read_image
from idv.data.splits import assign_splits
from idv.data.synth.writer import CorpusDir, finish_manifest
from idv.faces.acquisition import FAILURES, AcquisitionPolicy, acquire
from idv.faces.align import alignment_transform, template, warp_points

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"})
NAME_MAP = "identities.csv"
PROGRESS_EVERY = 500  # images between progress lines (MTCNN: ~50 ms per LFW image)


@dataclass(frozen=True)
class SourceImage:
    """One image file of the source corpus and the identity folder it sits in."""

    identity: str
    file: Path

    @property
    def relative(self) -> str:
        return f"{self.identity}/{self.file.name}"


def pseudonym(name: str, salt: str) -> str:
    """The subject id of an identity name: stable given the salt, reveals nothing without it."""
    return "S" + hashlib.sha256(f"{salt}\0{name}".encode()).hexdigest()[:12]


def list_corpus(src: Path) -> list[SourceImage]:
    """Image files of every identity folder, sorted (identity, file name) for determinism.

    Hidden entries are ignored; other non-image entries are logged, not imported.
    """
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source corpus directory not found")
    images, skipped = [], []
    for folder in sorted(src.iterdir(), key=lambda p: p.name):
        if folder.name.startswith("."):
            continue
        if not folder.is_dir():
            skipped.append(folder.name)
            continue
        for file in sorted(folder.iterdir(), key=lambda p: p.name):
            if file.name.startswith("."):
                continue
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                images.append(SourceImage(folder.name, file))
            else:
                skipped.append(f"{folder.name}/{file.name}")
    if skipped:
        log.info("%s: %d entries are not image files, not imported: %s", src, len(skipped), skipped)
    if not images:
        raise ValueError(
            f"{src}: no image files ({sorted(IMAGE_SUFFIXES)}) in any identity folder; "
            "expected the layout src/<identity name>/<image files>"
        )
    return images


def _check_paths(src: Path, out: Path) -> None:
    """Refuse an `out` that the atomic swap would delete `src` with, or that sits inside it."""
    s, o = src.resolve(), out.resolve()
    if o == s or s.is_relative_to(o) or o.is_relative_to(s):
        raise ValueError(f"out ({out}) must lie outside src ({src}) and must not contain it")


def _file_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _import_image(
    item: SourceImage,
    sample_id: str,
    subject: str,
    tmp: Path,
    *,
    detector: FaceDetector,
    policy: AcquisitionPolicy,
) -> dict[str, Any]:
    """Align and write one image, or copy it under unaligned/ with its failure reason."""
    row: dict[str, Any] = {
        "sample_id": sample_id,
        "label": 0,
        "subject_id": subject,
        "attack_type": BONA_FIDE,
        "acquired": False,
        "failure": None,
        "failure_detail": None,
        "face_count": 0,
        "face_probability": math.nan,
        "face_probabilities": [],
        "face_sides": [],
        "landmarks": None,
    }
    try:
        image = read_image(item.file)
    except ImageReadError as err:  # the decoder's reason, without the (identifying) path
        detail = str(err).replace(str(item.file), "<file>")
        return _unaligned(row | {"failure": "unreadable", "failure_detail": detail}, item, tmp)
    try:
        got = acquire(image, detector.detect, policy, str(item.file))
    except Exception as err:  # name the file: a bare MTCNN / cv2 error says nothing
        raise RuntimeError(f"{item.file}: face detection / alignment failed ({err})") from err
    row.update(
        face_count=len(got.faces),
        failure=got.failure,
        failure_detail=got.detail or None,
        face_probabilities=[round(d.probability, 6) for d in got.faces],
        face_sides=[round(d.side, 2) for d in got.faces],
    )
    if not got.acquired:
        return _unaligned(row, item, tmp)
    assert got.face is not None and got.crop is not None
    size = int(policy.crop_size)
    landmarks = warp_points(got.face.landmarks, alignment_transform(got.face.landmarks, size))
    rel = f"images/{subject}/{sample_id}.png"
    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(got.crop).save(tmp / rel, format="PNG")
    return row | {
        "path": rel,
        "acquired": True,
        "face_probability": got.face.probability,
        "landmarks": landmarks.astype(np.float32).reshape(-1).tolist(),
    }


def _unaligned(row: dict[str, Any], item: SourceImage, tmp: Path) -> dict[str, Any]:
    """A failure row: a byte copy of the original, so the manifest's file check holds."""
    rel = f"unaligned/{row['subject_id']}/{row['sample_id']}{item.file.suffix.lower()}"
    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(item.file, tmp / rel)
    return row | {"path": rel}


def _log_summary(src: Path, frame: pd.DataFrame, names: Mapping[str, str]) -> None:
    """Counts per failure kind, with the source files, for whoever runs the import."""
    failed = frame[~frame["acquired"]]
    log.info(
        "%s: %d images of %d identities; %d aligned, %d failures to acquire",
        src,
        len(frame),
        frame["subject_id"].nunique(),
        int(frame["acquired"].sum()),
        len(failed),
    )
    for kind in FAILURES:
        files = [names[s] for s in failed.loc[failed["failure"] == kind, "sample_id"]]
        if files:
            log.warning("%s: %d x %s: %s", src, len(files), kind, ", ".join(files))


def import_folder_corpus(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int,
    split_fractions: Mapping[str, float],
    salt: str,
    policy: AcquisitionPolicy | None = None,
    detector: FaceDetector | None = None,
    keep_names: bool = False,
) -> pd.DataFrame:
    """Import ``src`` (``src/<identity>/<images>``) into the corpus directory ``out``.

    ``out`` is written atomically (a failure leaves any previous corpus intact). Splits are
    subject-disjoint and deterministic given ``seed``; ``policy`` defaults to
    ``AcquisitionPolicy()`` (strict several-faces rule, 112-px crops) and ``detector`` to
    ``FaceDetector()`` (MTCNN's defaults, ``min_probability`` 0.9). Returns the manifest.
    """
    src, out = Path(src), Path(out)
    _check_paths(src, out)
    policy = policy or AcquisitionPolicy()
    if not isinstance(salt, str):
        raise TypeError(f"salt must be a string, got {type(salt).__name__}")
    template(int(policy.crop_size))  # a bad split fraction fails now, not after detection
    assign_splits(pd.DataFrame({"subject_id": ["-"]}), seed=seed, fractions=split_fractions)
    items = list_corpus(src)
    detector = detector or FaceDetector()
    subjects = {name: pseudonym(name, salt) for name in {i.identity for i in items}}
    if len(set(subjects.values())) != len(subjects):  # 48 bits: ~1e-5 for LFW's 5,749 names
        raise ValueError(f"{src}: two identity names share a pseudonym; change the salt")

    rows, names, index = [], {}, {}
    with CorpusDir(out) as tmp:
        for item in items:
            subject = subjects[item.identity]
            index[subject] = index.get(subject, -1) + 1
            sample_id = f"{subject}_{index[subject]:04d}"
            row = _import_image(item, sample_id, subject, tmp, detector=detector, policy=policy)
            row["source_sha256"] = _file_sha256(item.file)
            if keep_names:
                row["source_file"] = item.relative
            names[sample_id] = item.relative
            rows.append(row)
            if len(rows) % PROGRESS_EVERY == 0:
                log.info("%s: %d / %d images", src, len(rows), len(items))
        if keep_names:
            pd.DataFrame(sorted(subjects.items()), columns=["identity", "subject_id"]).to_csv(
                tmp / NAME_MAP, index=False
            )
        frame = finish_manifest(rows, tmp, seed=seed, fractions=split_fractions, stratify=())
    _log_summary(src, frame, names)
    return frame
