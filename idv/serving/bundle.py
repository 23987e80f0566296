"""Loading a verified bundle and scoring with it.

A bundle (written by `idv.export`) is one directory:

    model.ts          TorchScript inference wrapper (normalisation inside)
    model.onnx        the same wrapper in ONNX (+ model.onnx.data when weights are external)
    preprocess.json   decode / resize / normalisation spec of the model input
    thresholds.json   decision thresholds from calibration (global and per segment)
    model_card.md     human model card
    model_card.json   the same, machine-readable
    parity.json       the export's parity figures (exported formats against the eager model)
    SHA256SUMS        sha256 of every other file (`sha256sum -c SHA256SUMS` format)

`load_bundle` verifies every checksum first (a modified, missing or unlisted file is an error
naming it), then loads one backend. What a bundle does depends on its task kind
(thresholds.json's `kind`):

- detection (pad, ...): `score` images (P(attack)), `decide` on them. Decisions follow
  thresholds.json's rule: score < accept_below -> accept; score >= reject_at_or_above ->
  reject; otherwise review; no score (NaN, a failure to acquire) -> reject.
- matching (face_match): `embed` aligned face crops into unit-norm embeddings, `verify` pairs
  (similarity = dot product; similarity >= match_at_or_above -> match; review_at_or_above <=
  similarity < match_at_or_above -> review; otherwise, or NaN (a failure to acquire) ->
  non_match), `identify` probes against an `idv.serving.gallery.Gallery` (1:N).
Calling the other kind's methods is an error that names the right ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idv.hashing import sha256_file
from idv.serving.backends import BACKENDS, MODEL_FILES, load_backend
from idv.serving.preprocess import prepare

if TYPE_CHECKING:  # faiss only where a gallery is used
    from idv.serving.gallery import Gallery

SUMS_FILE = "SHA256SUMS"
DECISIONS = ("accept", "review", "reject")
MATCH_DECISIONS = ("match", "review", "non_match")
KINDS = ("detection", "matching")
NORM_TOLERANCE = 1e-3  # a precomputed embedding further than this off unit norm is refused


class BundleError(RuntimeError):
    """A bundle that is incomplete, altered or inconsistent; the message names the file."""


def bundle_files(path: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of every file under a bundle directory but SHA256SUMS, sorted."""
    root = Path(path)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() != SUMS_FILE
    )


def write_checksums(path: str | os.PathLike) -> Path:
    """Write SHA256SUMS over every other file of the directory (sha256sum's format)."""
    root = Path(path)
    lines = [f"{sha256_file(root / name)}  {name}\n" for name in bundle_files(root)]
    (root / SUMS_FILE).write_text("".join(lines))
    return root / SUMS_FILE


def verify_bundle(path: str | os.PathLike) -> dict[str, str]:
    """Check SHA256SUMS against the directory; returns {file: sha256}. Raises BundleError naming
    the first file that is missing, modified or not listed."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle {root} is not a directory")
    sums = root / SUMS_FILE
    if not sums.is_file():
        raise BundleError(f"bundle {root}: {SUMS_FILE} is missing; the bundle cannot be verified")
    listed: dict[str, str] = {}
    for number, line in enumerate(sums.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        name = name.removeprefix("*")
        if not sep or len(digest) != 64 or not name:
            raise BundleError(f"{sums}: line {number} is not '<sha256>  <file>': {line!r}")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"{sums}: line {number} names a file outside the bundle: {name!r}")
        listed[name] = digest.lower()
    for name, digest in listed.items():
        file = root / name
        if not file.is_file():
            raise BundleError(f"bundle {root}: file {name!r} listed in {SUMS_FILE} is missing")
        actual = sha256_file(file)
        if actual != digest:
            raise BundleError(
                f"bundle {root}: file {name!r} was modified (sha256 {actual}, "
                f"{SUMS_FILE} says {digest})"
            )
    unlisted = sorted(set(bundle_files(root)) - set(listed))
    if unlisted:
        raise BundleError(
            f"bundle {root}: file(s) {unlisted} are not listed in {SUMS_FILE} (added after export?)"
        )
    return listed


def primary_thresholds(thresholds: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries of thresholds.json at the primary operating point (global + per segment)."""
    entries = [
        e
        for e in thresholds.get("thresholds", [])
        if e.get("operating_point", {}).get("primary", False)
    ]
    if not any(e["segment"]["column"] is None for e in entries):
        raise BundleError("thresholds.json has no global threshold at the primary operating point")
    return entries


def decide_scores(
    scores: np.ndarray, accept_below: np.ndarray | float, reject_at_or_above: np.ndarray | float
) -> np.ndarray:
    """accept / review / reject per score (NaN = failure to acquire = reject); as in
    idv.calibration.thresholds.decide."""
    s = np.asarray(scores, dtype=np.float64)
    out = np.full(s.shape, "review", dtype=object)
    out[s < accept_below] = "accept"
    out[(s >= reject_at_or_above) | np.isnan(s)] = "reject"
    return out


def decide_similarities(
    similarities: np.ndarray,
    review_at_or_above: np.ndarray | float,
    match_at_or_above: np.ndarray | float,
) -> np.ndarray:
    """match / review / non_match per similarity (NaN = failure to acquire = non_match); as in
    idv.calibration.matching's rule."""
    s = np.asarray(similarities, dtype=np.float64)
    out = np.full(s.shape, "non_match", dtype=object)
    ok = ~np.isnan(s)
    out[ok & (s >= review_at_or_above)] = "review"
    out[ok & (s >= match_at_or_above)] = "match"
    return out


class Bundle:
    """A verified bundle with one loaded backend: `score` / `decide` (detection bundles) or
    `embed` / `verify` / `identify` (matching bundles)."""

    def __init__(self, path: str | os.PathLike, backend: str = "torchscript", threads=None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.path = Path(path)
        self.checksums = verify_bundle(self.path)
        self.preprocess = self._json("preprocess.json")
        self.thresholds = self._json("thresholds.json")
        self.backend_name = backend
        model_file = self.path / MODEL_FILES[backend]
        if MODEL_FILES[backend] not in self.checksums:
            raise BundleError(f"bundle {self.path} has no {MODEL_FILES[backend]} ({backend})")
        self.backend = load_backend(backend, model_file, threads)
        entries = primary_thresholds(self.thresholds)
        self.global_entry = next(e for e in entries if e["segment"]["column"] is None)
        self.segment_entries = {
            (e["segment"]["column"], str(e["segment"]["value"])): e
            for e in entries
            if e["segment"]["column"] is not None
        }
        self.segment_columns = list(self.thresholds.get("segment_columns") or [])
        self.kind = str(self.thresholds.get("kind", "detection"))
        if self.kind not in KINDS:
            raise BundleError(f"bundle {self.path}: unknown kind {self.kind!r} in thresholds.json")

    def _require(self, kind: str, method: str) -> None:
        if self.kind == kind:
            return
        instead = "embed / verify / identify" if self.kind == "matching" else "score / decide"
        raise TypeError(
            f"Bundle.{method} is for {kind} bundles; {self.path} is a {self.kind} bundle "
            f"(thresholds.json kind {self.kind!r}): use {instead}"
        )

    def _json(self, name: str) -> dict[str, Any]:
        file = self.path / name
        if name not in self.checksums:
            raise BundleError(f"bundle {self.path} has no {name}")
        try:
            return json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise BundleError(f"bundle {self.path}: {name} is not valid JSON ({err})") from err

    @property
    def input_size(self) -> tuple[int, int]:
        size = self.preprocess["resize"]
        return int(size["height"]), int(size["width"])

    def prepare(self, images: Any) -> np.ndarray:
        """Model input for `images` (see idv.serving.preprocess.prepare for the forms)."""
        return prepare(images, self.preprocess)

    def score(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """P(attack) per image (float32 (N,)): image file paths, RGB uint8 arrays (H, W, 3) or
        (N, H, W, 3), or a preprocessed float (N, 3, H, W) batch of 0-255 RGB values.
        Detection bundles only (a matching bundle: `embed`)."""
        self._require("detection", "score")
        return self._run(images, batch_size, (0,))

    def _run(self, images: Any, batch_size: int, empty: tuple[int, ...]) -> np.ndarray:
        batch = self.prepare(images)
        if len(batch) == 0:
            return np.zeros(empty, np.float32)
        return np.concatenate(
            [self.backend(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)]
        )

    def thresholds_for(self, segment: Any = None) -> dict[str, Any]:
        """The primary-operating-point entry of thresholds.json for one segment: the entry whose
        segment value matches (first matching column in thresholds.json's `segment_columns`
        order), else the global one. `segment` is None, a mapping {column: value} (columns that
        were not calibrated per segment are ignored), or a bare value when thresholds.json has
        a single segment column."""
        if segment is None or not self.segment_columns:
            return self.global_entry
        if not isinstance(segment, Mapping):
            if len(self.segment_columns) != 1:
                raise ValueError(
                    f"segment {segment!r}: give a mapping {{column: value}}; thresholds.json "
                    f"has segment columns {self.segment_columns}"
                )
            segment = {self.segment_columns[0]: segment}
        for column in self.segment_columns:
            if column in segment and segment[column] is not None:
                entry = self.segment_entries.get((column, str(segment[column])))
                if entry is not None:
                    return entry
        return self.global_entry

    def decide(self, scores_or_images: Any, segment: Any = None) -> np.ndarray:
        """'accept' / 'review' / 'reject' per sample, at the primary operating point.

        Scores are a 1-D float sequence (NaN = failure to acquire = reject); anything else is
        scored first (see `score`). `segment` is one segment for all samples (see
        `thresholds_for`) or a sequence of them, one per sample.
        """
        self._require("detection", "decide")
        scores = self._scores(scores_or_images)
        entries = self._entries(segment, len(scores))
        accept = np.array([e["decision"]["accept_below"] for e in entries], np.float64)
        reject = np.array([e["decision"]["reject_at_or_above"] for e in entries], np.float64)
        return decide_scores(scores, accept, reject)

    def _entries(self, segment: Any, n: int) -> list[dict[str, Any]]:
        """The thresholds.json entry of each of n samples: one segment for all, or one each."""
        if segment is None or isinstance(segment, Mapping | str) or np.isscalar(segment):
            return [self.thresholds_for(segment)] * n
        segment = list(segment)
        if len(segment) != n:
            raise ValueError(f"{len(segment)} segments for {n} samples")
        return [self.thresholds_for(s) for s in segment]

    # ------------------------------------------------------------------------- matching

    @property
    def embedding_dim(self) -> int | None:
        """D of the (N, D) embeddings (preprocess.json's output shape); None if not recorded."""
        shape = self.preprocess.get("output", {}).get("shape") or []
        return int(shape[1]) if len(shape) == 2 and isinstance(shape[1], int) else None

    def embed(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """Unit-norm embeddings (float32 (N, D)) of aligned face crops (see preprocess.json):
        image file paths, RGB uint8 arrays (H, W, 3) or (N, H, W, 3), or a preprocessed float
        (N, 3, H, W) batch of 0-255 RGB values. Matching bundles only (detection: `score`)."""
        self._require("matching", "embed")
        return self._run(images, batch_size, (0, self.embedding_dim or 0))

    def _embeddings(self, x: Any) -> np.ndarray:
        """(N, D) float32 embeddings: `x` itself when it is a float (D,) / (N, D) array of unit
        vectors, else `embed(x)`."""
        array = None
        if not isinstance(x, str | os.PathLike) and (
            hasattr(x, "detach") or isinstance(x, np.ndarray)
        ):
            array = x.detach().cpu().numpy() if hasattr(x, "detach") else x
        if array is not None and array.ndim in (1, 2) and np.issubdtype(array.dtype, np.floating):
            array = np.atleast_2d(array).astype(np.float32)
            dim = self.embedding_dim
            if dim is not None and array.shape[1] != dim:
                raise ValueError(f"embeddings of dimension {array.shape[1]}; this model's is {dim}")
            norms = np.linalg.norm(array.astype(np.float64), axis=1)
            if np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
                raise ValueError(
                    "precomputed embeddings must be L2-normalised (as `embed` returns them); "
                    f"norms range {norms.min():.4g}..{norms.max():.4g}"
                )
            return array
        return self.embed(x)

    def decide_similarities(self, similarities: Any, segment: Any = None) -> np.ndarray:
        """'match' / 'review' / 'non_match' per similarity at the primary operating point
        (NaN = failure to acquire = non_match); `segment` as in `decide`."""
        self._require("matching", "decide_similarities")
        sims = np.atleast_1d(np.asarray(similarities, dtype=np.float64))
        entries = self._entries(segment, len(sims))
        review = np.array([e["decision"]["review_at_or_above"] for e in entries], np.float64)
        match = np.array([e["decision"]["match_at_or_above"] for e in entries], np.float64)
        return decide_similarities(sims, review, match)

    def verify(self, a: Any, b: Any, segment: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """1:1 verification of pairs (a[i], b[i]): (similarities float32 (N,), decisions (N,)
        'match' / 'review' / 'non_match').

        `a` and `b` are images (any form `embed` takes) or precomputed embeddings (float (D,)
        or (N, D), unit norm); a side with one item is compared with every item of the other
        (one ID portrait against several selfies). `segment` (of the probe, e.g.
        {"geography": "EU"}) selects that segment's thresholds, as in `decide`.
        """
        self._require("matching", "verify")
        ea, eb = self._embeddings(a), self._embeddings(b)
        if len(ea) != len(eb) and 1 not in (len(ea), len(eb)):
            raise ValueError(f"cannot pair {len(ea)} items with {len(eb)} (give equal counts)")
        similarities = np.sum(ea * eb, axis=1, dtype=np.float32)
        return similarities, self.decide_similarities(similarities, segment)

    def identify(
        self,
        probes: Any,
        gallery: Gallery,
        k: int = 5,
        segment: Any = None,
        distinct_ids: bool = True,
    ) -> list[list[dict[str, Any]]]:
        """1:N search: for each probe (images or embeddings, as `verify` takes), its top-k
        gallery candidates, best first, as dicts {"rank", "id", "similarity", "decision",
        "row"}; `decision` is the 1:1 verification rule of thresholds.json applied to the
        candidate's similarity ('match' / 'review' / 'non_match'). That threshold was
        calibrated for 1:1 comparisons: the chance that some candidate of a non-mated search
        clears it (FPIR) grows with the gallery size. `distinct_ids` (default) gives the best
        image per enrolled identity; padding of approximate indexes is left out, so a probe
        may get fewer than k candidates. The gallery holds embeddings of this model."""
        self._require("matching", "identify")
        embeddings = self._embeddings(probes)
        result = gallery.search(embeddings, k, distinct_ids=distinct_ids)
        entries = self._entries(segment, len(embeddings))
        out: list[list[dict[str, Any]]] = []
        for i, entry in enumerate(entries):
            valid = result.valid[i]
            scores = result.scores[i][valid]
            decisions = decide_similarities(
                scores,
                entry["decision"]["review_at_or_above"],
                entry["decision"]["match_at_or_above"],
            )
            out.append(
                [
                    {
                        "rank": int(rank),
                        "id": ident,
                        "similarity": float(score),
                        "decision": str(decision),
                        "row": int(row),
                    }
                    for rank, ident, score, decision, row in zip(
                        result.ranks[i][valid],
                        result.ids[i][valid],
                        scores,
                        decisions,
                        result.rows[i][valid],
                        strict=True,
                    )
                ]
            )
        return out

    def _scores(self, x: Any) -> np.ndarray:
        if isinstance(x, str | os.PathLike):
            return self.score(x)
        if isinstance(x, Sequence) and not isinstance(x, str | bytes):
            if all(isinstance(v, int | float | np.floating | np.integer) for v in x):
                return np.asarray(x, dtype=np.float64)
            return self.score(x)
        array = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        if array.ndim == 1 and np.issubdtype(array.dtype, np.number):
            return array.astype(np.float64)
        return self.score(array)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, kind={self.kind!r}, backend={self.backend_name!r})"


def load_bundle(
    path: str | os.PathLike, backend: str = "torchscript", threads: int | None = None
) -> Bundle:
    """Verify a bundle's checksums and load its model with `backend` ('torchscript' needs
    torch; 'onnxruntime' needs onnxruntime and numpy, and never imports torch)."""
    return Bundle(path, backend, threads)
