"""Serving a matching bundle (face_match): embeddings, 1:1 verification, 1:N identification."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from idv.serving.bundle import Bundle

if TYPE_CHECKING:  # faiss only where a gallery is used
    from idv.serving.gallery import Gallery

NORM_TOLERANCE = 1e-3  # a precomputed embedding further than this off unit norm is refused


class MatchingBundle(Bundle):
    """`embed` aligned face crops, `verify` pairs at the 1:1 threshold, `identify` probes
    against a gallery at the 1:N one (decisions: match / review / non_match; a failure to
    acquire, NaN, -> non_match)."""

    @property
    def embedding_dim(self) -> int | None:
        """D of the (N, D) embeddings (preprocess.json's output shape); None if not recorded."""
        shape = self.preprocess["outputs"][self.primary].get("shape") or []
        return int(shape[1]) if len(shape) == 2 and isinstance(shape[1], int) else None

    def embed(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """Unit-norm embeddings (float32 (N, D)) of aligned face crops (see preprocess.json):
        image file paths, RGB uint8 arrays (H, W, 3) or (N, H, W, 3), or a preprocessed float
        (N, 3, H, W) batch of 0-255 RGB values. Matching bundles only (detection: `score`)."""
        return self.run(images, batch_size)[self.primary]

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
        return self.thresholds.decide(np.asarray(similarities, dtype=np.float64), segment)

    def verify(self, a: Any, b: Any, segment: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """1:1 verification of pairs (a[i], b[i]): (similarities float32 (N,), decisions (N,)
        'match' / 'review' / 'non_match').

        `a` and `b` are images (any form `embed` takes) or precomputed embeddings (float (D,)
        or (N, D), unit norm); a side with one item is compared with every item of the other
        (one ID portrait against several selfies). `segment` (of the probe, e.g.
        {"geography": "EU"}) selects that segment's thresholds, as in `decide`.
        """
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
