"""Sanity baselines for the synthetic corpora (plain functions, no state).

Faces: an eigenfaces baseline (PCA on raw, per-image standardised pixels + cosine nearest
neighbour) must stay weak on held-out identities, so that the corpus is not trivially
separable, while genuine pairs stay more similar than impostor pairs in the same space, so
that the images of one identity are visibly related.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

# The matrices are small (a few hundred images): one BLAS thread is as fast when the machine is
# idle, several times faster when it is busy (no oversubscription), and the result does not
# depend on the core count.
_ONE_BLAS_THREAD = {"limits": 1, "user_api": "blas"}


def pixel_features(images: Sequence[np.ndarray] | np.ndarray, color: bool = False) -> np.ndarray:
    """Flattened pixels, each image standardised to zero mean and unit variance.

    ``images``: a sequence or an (N, H, W, 3) / (N, H, W) array of same-sized images.
    Grayscale (ITU-R BT.601 luma) unless ``color``.
    """
    arr = np.asarray(images)
    if arr.ndim not in (3, 4) or arr.shape[0] == 0:
        raise ValueError(
            f"images must be a non-empty stack of (H, W) or (H, W, 3) images, got {arr.shape}"
        )
    x = arr.astype(np.float32)
    if x.ndim == 4:
        if x.shape[-1] != 3:
            raise ValueError(f"colour images must have 3 channels, got shape {arr.shape}")
        if not color:
            x = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = x.reshape(len(x), -1)
    x -= x.mean(axis=1, keepdims=True)
    x /= x.std(axis=1, keepdims=True) + 1e-6
    return x


def _fit_pca(train: np.ndarray, n_components: int) -> PCA:
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    k = min(n_components, train.shape[0] - 1, train.shape[1])
    if k < 1:
        raise ValueError("need at least 2 training images to fit the PCA")
    # Randomised SVD (seeded): ~4x faster than the full one on a few hundred images.
    return PCA(n_components=k, svd_solver="randomized", random_state=0).fit(train)


def _embed(pca: PCA, x: np.ndarray) -> np.ndarray:
    z = pca.transform(x)
    return z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)


def pca_rank1(
    train_images,
    gallery_images,
    gallery_ids,
    probe_images,
    probe_ids,
    n_components: int = 64,
    color: bool = False,
) -> float:
    """Rank-1 identification rate of a raw-pixel PCA + cosine nearest-neighbour baseline.

    The PCA is fitted on ``train_images`` (whose identities should be disjoint from the
    gallery's and probes'); every probe is matched to its most similar gallery image and counts
    as a hit when that image has the probe's identity. Every probe identity must be enrolled.
    """
    gallery_ids = np.asarray(gallery_ids)
    probe_ids = np.asarray(probe_ids)
    if len(gallery_ids) != len(gallery_images) or len(probe_ids) != len(probe_images):
        raise ValueError("gallery/probe ids must have one entry per image")
    missing = set(probe_ids.tolist()) - set(gallery_ids.tolist())
    if missing:
        raise ValueError(f"{len(missing)} probe identities are not in the gallery")
    with threadpool_limits(**_ONE_BLAS_THREAD):
        pca = _fit_pca(pixel_features(train_images, color), n_components)
        g = _embed(pca, pixel_features(gallery_images, color))
        q = _embed(pca, pixel_features(probe_images, color))
        best = np.argmax(q @ g.T, axis=1)
    return float(np.mean(gallery_ids[best] == probe_ids))


def pca_verification_auc(
    images,
    ids,
    train_images=None,
    n_components: int = 64,
    color: bool = False,
) -> float:
    """ROC AUC of genuine vs impostor cosine similarities in a raw-pixel PCA space.

    All pairs of ``images`` are scored; pairs with equal ``ids`` are genuine. The PCA is fitted
    on ``train_images`` (identities disjoint from ``ids``) or, when None, on ``images``
    themselves (unsupervised, the labels are not used). 0.5 is chance.
    """
    ids = np.asarray(ids)
    if len(ids) != len(images):
        raise ValueError("ids must have one entry per image")
    x = pixel_features(images, color)
    train = x if train_images is None else pixel_features(train_images, color)
    with threadpool_limits(**_ONE_BLAS_THREAD):
        z = _embed(_fit_pca(train, n_components), x)
        iu = np.triu_indices(len(z), k=1)
        sims = (z @ z.T)[iu]
    genuine = (ids[:, None] == ids[None, :])[iu]
    if genuine.all() or not genuine.any():
        raise ValueError("need both genuine (same id) and impostor pairs")
    return float(roc_auc_score(genuine, sims))
