"""Serving a matching bundle (face_match): embeddings, 1:1 verification, 1:N identification.

Inputs are photos by default: a bundle exported with an `acquisition` entry in
preprocess.json carries MTCNN's three networks (``detector/<stage>/model.onnx`` and
``model.ts``) and detects, chooses one face and aligns it in numpy (idv.faces: the importer's
policy, the same code), on the bundle's backend, so ONNX Runtime serves photos without
torch. An image without an acquired face (``no_face``, ``several_faces``, ``too_small``,
``unreadable``) gets a NaN embedding, so its comparisons decide ``non_match`` and, as a probe,
it has no candidate; the reason is logged, and `acquire` returns it per image. Aligned crops
are taken as they are with ``aligned=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from idv.errors import InputError
from idv.faces.acquisition import Acquisition, AcquisitionPolicy, acquire, acquire_file
from idv.faces.detection import DetectorSettings
from idv.faces.mtcnn import MTCNN, STAGE_INPUT, STAGES
from idv.serving.backends import MODEL_FILES, load_backend
from idv.serving.bundle import Bundle, BundleError
from idv.serving.preprocess import _as_array, _is_tensor

if TYPE_CHECKING:  # faiss only where a gallery is used
    from idv.serving.gallery import Gallery

log = logging.getLogger(__name__)

NORM_TOLERANCE = 1e-3  # a precomputed embedding further than this off unit norm is refused
DETECTOR_DIR = "detector"  # the MTCNN stages' directory inside a bundle


class MatchingBundle(Bundle):
    """`acquire` faces in photos, `embed` them (or aligned crops), `verify` pairs at the 1:1
    threshold, `identify` probes against a gallery at the 1:N one (decisions: match / review /
    non_match; a failure to acquire, NaN, -> non_match)."""

    _detector: MTCNN | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.preprocess.get("acquisition") is not None:
            self.detector  # noqa: B018 - load now, from the files just verified

    @property
    def acquisition(self) -> AcquisitionPolicy | None:
        """The bundle's photo policy (preprocess.json `acquisition`); None: crops only."""
        spec = self.preprocess.get("acquisition")
        return None if spec is None else AcquisitionPolicy.from_mapping(spec["policy"])

    @property
    def detector(self) -> MTCNN:
        """MTCNN on this bundle's backend (built on first use); an error for a bundle
        exported without one."""
        if self._detector is None:
            spec = self.preprocess.get("acquisition")
            if spec is None:
                raise BundleError(
                    f"bundle {self.path} has no face detector (preprocess.json has no "
                    "`acquisition`): give aligned crops with aligned=True, or re-export the "
                    "bundle with the task's acquisition config"
                )
            files = zip(STAGES, detector_files(self.backend_name), strict=True)
            stages = {stage: self.load_model(name, [STAGE_INPUT], "(its face detector)")
                      for stage, name in files}  # fmt: skip
            self._detector = MTCNN(stages, DetectorSettings.from_mapping(spec["detector"]))
        return self._detector

    def acquire(self, images: Any) -> list[Acquisition]:
        """Per photo, its aligned face crop or its failure to acquire (``no_face``,
        ``several_faces`` with each face's probability and size, ``too_small``,
        ``unreadable`` with the decoder's reason): file paths, RGB uint8 images (H, W, 3),
        a batch (N, H, W, 3) or a sequence of them (any sizes)."""
        policy, detect = self.acquisition, self.detector.detect
        assert policy is not None  # self.detector raised otherwise
        out = []
        for k, item in enumerate(_photos(images)):
            if isinstance(item, Acquisition):
                out.append(item)
            elif isinstance(item, str | os.PathLike):
                out.append(acquire_file(item, detect, policy))
            else:
                out.append(acquire(_as_array(item), detect, policy, f"image {k}"))
        return out

    @property
    def embedding_dim(self) -> int | None:
        """D of the (N, D) embeddings (preprocess.json's output shape); None if not recorded."""
        shape = self.preprocess["outputs"][self.primary].get("shape") or []
        return int(shape[1]) if len(shape) == 2 and isinstance(shape[1], int) else None

    def embed(self, images: Any, batch_size: int = 64, aligned: bool = False) -> np.ndarray:
        """Unit-norm embeddings (float32 (N, D)) of the faces in photos (`acquire`'s inputs, or
        its results); a row of NaN for an image without an acquired face (its reason is
        logged). ``aligned=True``: the images are aligned face crops already (see
        preprocess.json), also as a preprocessed float (N, 3, H, W) batch of 0-255 RGB
        values. Matching bundles only (detection: `score`)."""
        if aligned:
            return self.run(images, batch_size)[self.primary]
        found = self.acquire(images)
        for a in found:
            if not a.acquired:
                log.warning("%s: failure to acquire (%s): %s", a.source, a.failure, a.detail)
        crops = [a.crop for a in found if a.acquired]
        embedded = self.run(crops, batch_size)[self.primary] if crops else None
        dim = self.embedding_dim if embedded is None else embedded.shape[1]
        if dim is None:  # no crop and no recorded dimension: embed a blank crop for D
            height, width = self.input_size
            dim = self.run(np.zeros((1, 3, height, width), np.float32))[self.primary].shape[1]
        out = np.full((len(found), dim), np.nan, np.float32)
        if embedded is not None:
            out[[a.acquired for a in found]] = embedded
        return out

    def _embeddings(self, x: Any, aligned: bool = False) -> np.ndarray:
        """(N, D) float32 embeddings: `x` itself when it is a float (D,) / (N, D) array of unit
        vectors (a NaN row: a failure to acquire), else `embed(x, aligned=aligned)`."""
        array = _as_array(x) if isinstance(x, np.ndarray) or _is_tensor(x) else None
        if array is not None and array.ndim in (1, 2) and np.issubdtype(array.dtype, np.floating):
            array = np.atleast_2d(array).astype(np.float32)
            dim = self.embedding_dim
            if dim is not None and array.shape[1] != dim:
                raise ValueError(f"embeddings of dimension {array.shape[1]}; this model's is {dim}")
            norms = np.linalg.norm(array.astype(np.float64), axis=1)
            failed = np.isnan(array).all(axis=1)
            if np.any(~failed & ~(np.abs(norms - 1.0) <= NORM_TOLERANCE)):
                raise ValueError(
                    "precomputed embeddings must be L2-normalised (as `embed` returns them); "
                    f"norms range {np.nanmin(norms):.4g}..{np.nanmax(norms):.4g} (a failure "
                    "to acquire is a row of NaN)"
                )
            return array
        return self.embed(x, aligned=aligned)

    def decide_similarities(self, similarities: Any, segment: Any = None) -> np.ndarray:
        """'match' / 'review' / 'non_match' per similarity at the primary 1:1 operating point
        (NaN = failure to acquire = non_match); `segment` as in `decide`."""
        return self.thresholds.decide(np.asarray(similarities, dtype=np.float64), segment)

    def verify(
        self, a: Any, b: Any, segment: Any = None, aligned: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """1:1 verification of pairs (a[i], b[i]): (similarities float32 (N,), decisions (N,)
        'match' / 'review' / 'non_match'; NaN similarity and 'non_match' where either image
        has no acquired face).

        `a` and `b` are photos (any form `embed` takes; aligned crops with ``aligned=True``)
        or precomputed embeddings (float (D,) or (N, D), unit norm); a side with one item is
        compared with every item of the other (one ID portrait against several selfies).
        `segment` (of the probe, e.g. {"geography": "EU"}) selects that segment's
        thresholds, as in `decide`.
        """
        ea, eb = self._embeddings(a, aligned), self._embeddings(b, aligned)
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
        aligned: bool = False,
    ) -> list[list[dict[str, Any]]]:
        """1:N search: for each probe (images or embeddings, as `verify` takes), its top-k
        gallery candidates, best first, as dicts {"rank", "id", "similarity", "decision",
        "row"}. `decision` applies the 1:N threshold of thresholds.json (its `fpir` entry,
        calibrated on calib searches so that the share of non-mated searches returning a
        'match' meets the FPIR target; the 1:1 threshold would let that share grow with the
        gallery): 'match' / 'review' / 'non_match'. `distinct_ids` (default) gives the best
        image per enrolled identity; padding of approximate indexes is left out, so a probe
        may get fewer than k candidates, and a probe without an acquired face gets none (a
        rejection). The gallery holds embeddings of this model."""
        embeddings = self._embeddings(probes, aligned)
        acquired = ~np.isnan(embeddings).any(axis=1)
        searched = np.flatnonzero(acquired)
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(embeddings))]
        if not len(searched):
            return out
        result = gallery.search(embeddings[searched], k, distinct_ids=distinct_ids)
        for j, i in enumerate(searched):
            valid = result.valid[j]
            scores = result.scores[j][valid]
            decisions = self.thresholds.decide(scores, metric="fpir")
            out[i] = [
                {
                    "rank": int(rank),
                    "id": ident,
                    "similarity": float(score),
                    "decision": str(decision),
                    "row": int(row),
                }
                for rank, ident, score, decision, row in zip(
                    result.ranks[j][valid],
                    result.ids[j][valid],
                    scores,
                    decisions,
                    result.rows[j][valid],
                    strict=True,
                )
            ]
        return out


def detector_files(backend: str) -> list[str]:
    """The MTCNN stage files a bundle holds for `backend`, relative to the bundle."""
    return [f"{DETECTOR_DIR}/{stage}/{MODEL_FILES[backend]}" for stage in STAGES]


def load_detector(
    directory: str | os.PathLike,
    backend: str,
    settings: DetectorSettings,
    threads: int | None = None,
) -> MTCNN:
    """MTCNN over the stage files under `directory` (an export's temporary directory before
    its parity gate), each on `backend`; a loaded bundle verifies them (`Bundle.load_model`)."""
    files = dict(zip(STAGES, detector_files(backend), strict=True))
    stages = {
        stage: load_backend(backend, os.path.join(directory, file), [STAGE_INPUT], threads)
        for stage, file in files.items()
    }
    return MTCNN(stages, settings)


def _photos(images: Any) -> list[Any]:
    """A list of single images (paths, (H, W, 3) arrays or Acquisitions) from `acquire`'s
    inputs; a float array is a preprocessed batch of crops, which needs ``aligned=True``."""
    if isinstance(images, str | os.PathLike | Acquisition):
        return [images]
    if isinstance(images, np.ndarray) or _is_tensor(images):
        array = _as_array(images)
        if array.dtype != np.uint8:
            raise InputError(
                f"photos must be RGB uint8 images, got dtype {array.dtype} shape {array.shape}; "
                "a preprocessed float batch is aligned crops: pass aligned=True"
            )
        if array.ndim == 3:
            return [array]
        if array.ndim == 4:
            return list(array)
        raise InputError(f"photos must be (H, W, 3) or (N, H, W, 3) arrays, got {array.shape}")
    if isinstance(images, Sequence) and not isinstance(images, bytes):
        return list(images)
    raise InputError(f"cannot read photos from a {type(images).__name__}: see acquire()")
