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

- detection (pad, ...): `score` images (P(attack)), `decide` on them;
- matching (face_match): `embed` aligned face crops into unit-norm embeddings, `verify` pairs
  (similarity = dot product) at the 1:1 threshold, `identify` probes against an
  `idv.serving.gallery.Gallery` (1:N) at the 1:N (FPIR) threshold.
Decisions follow thresholds.json's one rule (`idv.thresholds`): score >= threshold -> reject /
match; review_at_or_above <= score < threshold -> review; below -> accept / non_match; NaN (a
failure to acquire: nothing could be scored) -> reject / non_match.
Calling the other kind's methods is an error that names the right ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idv.hashing import sha256_file
from idv.serving.backends import BACKENDS, MODEL_FILES, load_backend
from idv.serving.preprocess import prepare
from idv.thresholds import Thresholds, ThresholdsError

if TYPE_CHECKING:  # faiss only where a gallery is used
    from idv.serving.gallery import Gallery

SUMS_FILE = "SHA256SUMS"
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


class Bundle:
    """A verified bundle with one loaded backend: `score` / `decide` (detection bundles) or
    `embed` / `verify` / `identify` (matching bundles)."""

    def __init__(self, path: str | os.PathLike, backend: str = "torchscript", threads=None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.path = Path(path)
        self.checksums = verify_bundle(self.path)
        self.preprocess = self._json("preprocess.json")
        if "thresholds.json" not in self.checksums:
            raise BundleError(f"bundle {self.path} has no thresholds.json")
        try:
            self.thresholds = Thresholds.load(self.path / "thresholds.json")
        except ThresholdsError as err:
            raise BundleError(f"bundle {self.path}: {err}") from err
        self.backend_name = backend
        model_file = self.path / MODEL_FILES[backend]
        if MODEL_FILES[backend] not in self.checksums:
            raise BundleError(f"bundle {self.path} has no {MODEL_FILES[backend]} ({backend})")
        self.backend = load_backend(backend, model_file, threads)
        self.kind = self.thresholds.kind
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

    def decide(self, scores_or_images: Any, segment: Any = None) -> np.ndarray:
        """'accept' / 'review' / 'reject' per sample, at the primary operating point
        (`idv.thresholds.Thresholds.decide`).

        Scores are a 1-D float sequence (NaN = failure to acquire = reject); anything else is
        scored first (see `score`). `segment` is one segment for all samples ({column: value},
        or a bare value with one segment column) or a sequence of them, one per sample.
        """
        self._require("detection", "decide")
        return self.thresholds.decide(self._scores(scores_or_images), segment)

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
        """'match' / 'review' / 'non_match' per similarity at the primary 1:1 operating point
        (NaN = failure to acquire = non_match); `segment` as in `decide`."""
        self._require("matching", "decide_similarities")
        return self.thresholds.decide(np.asarray(similarities, dtype=np.float64), segment)

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
        distinct_ids: bool = True,
    ) -> list[list[dict[str, Any]]]:
        """1:N search: for each probe (images or embeddings, as `verify` takes), its top-k
        gallery candidates, best first, as dicts {"rank", "id", "similarity", "decision",
        "row"}. `decision` applies the 1:N threshold of thresholds.json (its `fpir` entry,
        calibrated on calib searches so that the share of non-mated searches returning a
        'match' meets the FPIR target; the 1:1 threshold would let that share grow with the
        gallery): 'match' / 'review' / 'non_match'. `distinct_ids` (default) gives the best
        image per enrolled identity; padding of approximate indexes is left out, so a probe
        may get fewer than k candidates. The gallery holds embeddings of this model."""
        self._require("matching", "identify")
        embeddings = self._embeddings(probes)
        result = gallery.search(embeddings, k, distinct_ids=distinct_ids)
        out: list[list[dict[str, Any]]] = []
        for i in range(len(embeddings)):
            valid = result.valid[i]
            scores = result.scores[i][valid]
            decisions = self.thresholds.decide(scores, metric="fpir")
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
