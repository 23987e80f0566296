"""The synthetic identity-face corpus: identities x (selfies + ID portraits), aligned crops.

Every capture is aligned onto the ArcFace template from the landmarks the generator drew, with
the same function (`idv.faces.align.align_face`) that aligns real photos from MTCNN landmarks,
so a model never sees a difference between the two paths. `capture_type` says which rows are
selfies and which are document portraits (`idv.data.synth.portrait`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from idv.data.synth.faces import FaceRender, Nuisance, render_face, sample_identity
from idv.data.synth.portrait import PortraitStyle, render_portrait
from idv.data.synth.writer import build_corpus, identity_rng, pick
from idv.faces.align import align_face, alignment_transform, warp_points

FACE_STRATA = ("sex", "age_band", "skin_tone")


def nuisance_from_config(cfg: Mapping[str, Any]) -> Nuisance:
    """Nuisance ranges from YAML (lists become the tuples the dataclass expects)."""
    return Nuisance(**{k: tuple(v) if isinstance(v, list | tuple) else v for k, v in cfg.items()})


def _aligned(face: FaceRender, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The aligned crop and where the landmarks landed in it."""
    crop = align_face(face.image, face.landmarks, size=size)
    return crop, warp_points(face.landmarks, alignment_transform(face.landmarks, size))


def _render_identity(
    index: int, out: Path, *, cfg: dict, seed: int, images: int, portraits: int
) -> list[dict]:
    rng = identity_rng(seed, index)
    subject = f"S{index:05d}"
    identity = sample_identity(rng, subject)
    geography = pick(rng, cfg["geographies"])
    nuisance = nuisance_from_config(cfg["nuisance"])
    style = PortraitStyle.from_config(cfg["portrait"])
    # Compress once, when saving (the renderer's own JPEG round trip is switched off).
    lossless = replace(nuisance, jpeg_quality=(100, 100))
    (out / "images" / subject).mkdir(parents=True, exist_ok=True)
    rows = []
    captures = [("selfie", k) for k in range(images)] + [
        ("id_portrait", k) for k in range(portraits)
    ]
    for capture, k in captures:
        if capture == "selfie":
            face = render_face(identity, rng, size=cfg["image_size"], nuisance=lossless)
        else:
            face = render_portrait(identity, rng, cfg["image_size"], style)
        crop, landmarks = _aligned(face, int(cfg["aligned_size"]))
        quality = int(rng.integers(nuisance.jpeg_quality[0], nuisance.jpeg_quality[1] + 1))
        name = f"{subject}_{k:02d}" if capture == "selfie" else f"{subject}_id{k:02d}"
        rel = f"images/{subject}/{name}.jpg"
        Image.fromarray(crop).save(out / rel, quality=quality)
        rows.append(
            {
                "sample_id": name,
                "path": rel,
                "label": 0,
                "subject_id": subject,
                "attack_type": "bona_fide",
                "capture_type": capture,
                "session_id": name,
                "geography": geography,
                **identity.demographics(),
                "landmarks": landmarks.astype(np.float32).reshape(-1).tolist(),
            }
        )
    return rows


def generate_face_corpus(
    cfg: Mapping[str, Any], profile: str, seed: int, out: str | Path, workers: int = 2
):
    """Render the corpus of `profile` size into `out` (atomically) and return its manifest."""
    size = cfg["sizes"][profile]
    fn = functools.partial(
        _render_identity,
        cfg=dict(cfg),
        seed=seed,
        images=int(size["images_per_identity"]),
        portraits=int(size.get("portraits_per_identity", 0)),
    )
    return build_corpus(
        fn, int(size["identities"]), out, seed=seed, workers=workers,
        fractions=cfg["split_fractions"], stratify=FACE_STRATA,
    )  # fmt: skip
