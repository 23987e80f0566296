"""The synthetic PAD corpus: bona fide captures of synthetic identities, and attacks of
several species made from those captures (`source_sample_id`) and re-captured."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from idv.data.augment.attacks import ATTACK_FUNCTIONS
from idv.data.manifest import BONA_FIDE
from idv.data.synth.capture import capture, devices_from_config
from idv.data.synth.face_corpus import nuisance_from_config
from idv.data.synth.faces import render_face, sample_identity
from idv.data.synth.writer import build_corpus, identity_rng, pick

PAD_STRATA = ("label", "attack_type")
# Keyword and config key of each species' period parameter.
PERIOD_ARGS = {
    "print": ("halftone_period", "halftone_period"),
    "replay": ("moire_period", "moire_period"),
}


def _attack(species: str, image, rng, cfg: Mapping[str, Any]):
    strength = float(rng.uniform(*cfg["strength"]))
    kwargs = {}
    if species in PERIOD_ARGS:
        kwarg, key = PERIOD_ARGS[species]
        kwargs[kwarg] = float(rng.uniform(*cfg[key]))
    return ATTACK_FUNCTIONS[species](image, strength, rng, **kwargs), strength


def _render_identity(index: int, out: Path, *, cfg: dict, seed: int, captures: int) -> list[dict]:
    rng = identity_rng(seed, index)
    subject = f"P{index:05d}"
    identity = sample_identity(rng, subject)
    geography = pick(rng, cfg["geographies"])
    devices = devices_from_config(cfg["capture_devices"])
    # The camera adds blur, noise and JPEG (identically for both classes), not the renderer.
    nuisance = replace(
        nuisance_from_config(cfg["nuisance"]),
        blur_sigma=(0.0, 0.0),
        noise_sigma=(0.0, 0.0),
        jpeg_quality=(100, 100),
    )
    folder = out / "images" / subject
    folder.mkdir(parents=True, exist_ok=True)
    common = {"subject_id": subject, "geography": geography, **identity.demographics()}
    rows = []
    for k in range(captures):
        face = render_face(identity, rng, size=cfg["image_size"], nuisance=nuisance).image
        device = devices[int(rng.integers(len(devices)))]
        data, _ = capture(face, rng, device, cfg["capture"])
        bona_id = f"{subject}_c{k:02d}"
        (folder / f"{bona_id}.jpg").write_bytes(data)
        rows.append(
            {
                **common,
                "sample_id": bona_id,
                "path": f"images/{subject}/{bona_id}.jpg",
                "label": 0,
                "attack_type": BONA_FIDE,
                "source_sample_id": None,
                "capture_device": device.name,
                "attack_strength": 0.0,
            }
        )
        for a in range(int(cfg["attacks_per_capture"])):
            species = pick(rng, cfg["species"])
            # The attacker's artefact (print, screen, mask) shows the same photo the bona fide
            # capture saw; each image then passes through the camera exactly once.
            attacked, strength = _attack(species, face, rng, cfg)
            device = devices[int(rng.integers(len(devices)))]
            data, _ = capture(attacked, rng, device, cfg["capture"])
            attack_id = f"{bona_id}_a{a}"
            (folder / f"{attack_id}.jpg").write_bytes(data)
            rows.append(
                {
                    **common,
                    "sample_id": attack_id,
                    "path": f"images/{subject}/{attack_id}.jpg",
                    "label": 1,
                    "attack_type": species,
                    "source_sample_id": bona_id,
                    "capture_device": device.name,
                    "attack_strength": strength,
                }
            )
    return rows


def generate_pad_corpus(
    cfg: Mapping[str, Any], profile: str, seed: int, out: str | Path, workers: int = 2
) -> pd.DataFrame:
    """Render the PAD corpus of `profile` size into `out` (atomically); return its manifest."""
    size = cfg["sizes"][profile]
    fn = functools.partial(
        _render_identity, cfg=dict(cfg), seed=seed, captures=int(size["captures_per_identity"])
    )
    return build_corpus(
        fn, int(size["identities"]), out, seed=seed, workers=workers,
        fractions=cfg["split_fractions"], stratify=PAD_STRATA,
    )  # fmt: skip
