"""The synthetic identity-face corpus: identities x images, with landmarks and demographics."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from idv.data.synth.faces import Nuisance, render_face, sample_identity
from idv.data.synth.writer import CorpusDir, finish_manifest, identity_rng, pick, render_parallel

FACE_STRATA = ("sex", "age_band", "skin_tone")


def nuisance_from_config(cfg: Mapping[str, Any]) -> Nuisance:
    """Nuisance ranges from YAML (lists become the tuples the dataclass expects)."""
    return Nuisance(**{k: tuple(v) if isinstance(v, list | tuple) else v for k, v in cfg.items()})


def _render_identity(index: int, out: Path, *, cfg: dict, seed: int, images: int) -> list[dict]:
    rng = identity_rng(seed, index)
    subject = f"S{index:05d}"
    identity = sample_identity(rng, subject)
    geography = pick(rng, cfg["geographies"])
    nuisance = nuisance_from_config(cfg["nuisance"])
    # Compress once, when saving (the renderer's own JPEG round trip is switched off).
    lossless = replace(nuisance, jpeg_quality=(100, 100))
    (out / "images" / subject).mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(images):
        face = render_face(identity, rng, size=cfg["image_size"], nuisance=lossless)
        quality = int(rng.integers(nuisance.jpeg_quality[0], nuisance.jpeg_quality[1] + 1))
        rel = f"images/{subject}/{subject}_{k:02d}.jpg"
        Image.fromarray(face.image).save(out / rel, quality=quality)
        rows.append(
            {
                "sample_id": f"{subject}_{k:02d}",
                "path": rel,
                "label": 0,
                "subject_id": subject,
                "attack_type": "bona_fide",
                "session_id": f"{subject}_{k:02d}",
                "geography": geography,
                "age_band": identity.age_band,
                "sex": identity.sex,
                "skin_tone": identity.skin_tone,
                "landmarks": face.landmarks.astype(np.float32).reshape(-1).tolist(),
            }
        )
    return rows


def generate_face_corpus(
    cfg: Mapping[str, Any], profile: str, seed: int, out: str | Path, workers: int = 2
):
    """Render the corpus of `profile` size into `out` (atomically) and return its manifest."""
    size = cfg["sizes"][profile]
    fn = functools.partial(
        _render_identity, cfg=dict(cfg), seed=seed, images=int(size["images_per_identity"])
    )
    with CorpusDir(out) as tmp:
        rows = render_parallel(fn, int(size["identities"]), tmp, workers)
        frame = finish_manifest(
            rows, tmp, seed=seed, fractions=cfg["split_fractions"], stratify=FACE_STRATA
        )
    return frame
