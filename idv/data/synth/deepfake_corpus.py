"""The synthetic deepfake and camera-injection corpus: bona fide selfies, manipulated faces and
injected captures, each with the capture metadata a session reports.

Per identity of the faces corpus (the same seed and index give the same face), bona fide
captures of a posed still (`FaceState`) through the PAD corpus' simulated camera, and per
capture attacks made from it (`source_sample_id`, same subject, so the same split):

- `sbi`: the capture's scene self-blended (`idv.data.augment.sbi`), the training species of
  the `sbi_only` protocol;
- `face_swap`: a donor's inner face (a person outside the corpus, rendered in the same pose)
  aligned on the target's five landmarks, colour-transferred and blended through a blurred
  inner-face hull;
- `reenactment`: the mouth or the eyes of another render of the same person and pose with
  another expression, pasted through a blurred region mask and smoothed (a generator's look);
- `synthesis`: the whole face rendered at half resolution and upsampled with a periodic
  fingerprint (a generator's transposed convolution) and smoothed skin: no blend boundary;
- `injection`: frames that never came through this camera: a clean render (no sensor noise,
  no blur, only an encoder) or a genuine capture recorded earlier and re-encoded.

Capture metadata (numeric manifest columns, `idv.capture_metadata.METADATA_COLUMNS`)
describes the session the image came from, computed from a simulated capture report (frame
timestamps and digests) by the function a client uses: frame-timing jitter (ms), the share
of irregular frame intervals, the share of exact frame repeats, a virtual-camera device
string and a resolution inconsistent with the declared device. Injections carry each
tell-tale only with a configured probability (attackers rename virtual cameras); some bona
fide sessions use benign virtual cameras (capture cards, phone-as-webcam) or weak devices
with irregular timing; a share of the face manipulations arrives through an injection too.
So neither the metadata nor the pixels alone solve the corpus.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from idv.capture_metadata import METADATA_COLUMNS, timing_metadata
from idv.data.augment.sbi import SBIConfig, hull_mask, self_blend
from idv.data.manifest import BONA_FIDE
from idv.data.synth.capture import capture, devices_from_config
from idv.data.synth.face_corpus import nuisance_from_config
from idv.data.synth.faces import FaceRender, FaceState, Identity, render_face, sample_identity
from idv.data.synth.writer import build_corpus, identity_rng, pick

DEEPFAKE_STRATA = ("label", "attack_type")
MANIPULATIONS = ("sbi", "face_swap", "reenactment", "synthesis")


def _state(rng: np.random.Generator, cfg: Mapping[str, Any]) -> FaceState:
    """A posed still: pose, expression and lighting drawn once, so the same scene can be
    rendered again with another face or another expression; the camera adds blur and noise."""
    n = cfg["pose"]
    return FaceState(
        yaw_deg=float(rng.uniform(-n["yaw_deg"], n["yaw_deg"])),
        roll_deg=float(rng.uniform(-n["roll_deg"], n["roll_deg"])),
        scale=float(rng.uniform(*n["scale"])),
        shift_px=(float(rng.uniform(-n["shift_px"], n["shift_px"])),) * 2,
        smile=float(rng.uniform(-0.6, 0.6)),
        mouth_open=float(rng.uniform(0.0, 0.4)),
        brow_raise=float(rng.uniform(-0.5, 0.5)),
        eye_open=float(rng.uniform(-0.5, 0.5)),
        background_seed=int(rng.integers(2**31)),
        light=float(rng.uniform(0.0, n["light"])),
        light_angle=float(rng.uniform(0.0, 2 * np.pi)),
        gain=float(rng.uniform(0.85, 1.15)),
        tint=tuple(1.0 + 0.06 * rng.uniform(-1, 1, 3)),
        noise_sigma=0.0,
        jpeg_quality=100,
    )


def _render(identity: Identity, state: FaceState, size: int, nuisance, rng) -> FaceRender:
    return render_face(identity, rng, size, nuisance, state)


def _soft(mask: np.ndarray, sigma: float) -> np.ndarray:
    m = mask.astype(np.float32)
    return np.clip(cv2.GaussianBlur(m, (0, 0), max(sigma, 0.3)), 0.0, 1.0) if sigma > 0 else m


def _blend(inner: np.ndarray, outer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(inner.astype(np.float32) * a + outer.astype(np.float32) * (1 - a), 0, 255)


def _inner_hull(render: FaceRender, shrink: float) -> np.ndarray:
    """The inner face: the outline pulled towards its centroid by `shrink`, with eyes and lips."""
    g = render.geometry
    centre = g.face_outline.mean(axis=0, keepdims=True)
    outline = centre + (g.face_outline - centre) * (1.0 - shrink)
    points = np.concatenate([outline, g.left_eye, g.right_eye, g.outer_lips])
    return hull_mask(points, render.image.shape[:2])


def _colour_transfer(src: np.ndarray, ref: np.ndarray, mask: np.ndarray, amount: float):
    """Match `src`'s per-channel Lab mean and spread inside `mask` to `ref`'s, by `amount`."""
    inside = mask > 0
    s = cv2.cvtColor(src, cv2.COLOR_RGB2LAB).astype(np.float32)
    r = cv2.cvtColor(ref, cv2.COLOR_RGB2LAB).astype(np.float32)
    ms, ss = s[inside].mean(0), s[inside].std(0) + 1e-3
    mr, sr = r[inside].mean(0), r[inside].std(0) + 1e-3
    matched = (s - ms) / ss * sr + mr
    out = s + amount * (matched - s)
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _face_swap(target: FaceRender, donor: FaceRender, strength: float, cfg, rng) -> np.ndarray:
    m, _ = cv2.estimateAffinePartial2D(donor.landmarks, target.landmarks)
    size = target.image.shape[:2][::-1]
    warped = cv2.warpAffine(donor.image, m, size, borderMode=cv2.BORDER_REFLECT)
    mask = _inner_hull(target, float(rng.uniform(*cfg["inner_shrink"])))
    # A careful attacker transfers colour fully and feathers wide; strength undoes both.
    warped = _colour_transfer(warped, target.image, mask, 1.0 - 0.6 * strength)
    sigma = float(rng.uniform(*cfg["seam_sigma"])) * (1.5 - strength) * target.image.shape[0] / 64
    return _blend(warped, target.image, _soft(mask, sigma))


def _reenactment(
    identity: Identity, target: FaceRender, state: FaceState, strength, cfg, nuisance, rng
):
    size = target.image.shape[0]
    acted = FaceState(
        **{
            **state.__dict__,
            "smile": float(
                np.clip(state.smile + rng.choice([-1, 1]) * rng.uniform(0.6, 1.2), -1.5, 1.5)
            ),
            "mouth_open": float(rng.uniform(0.3, 1.0)),
            "eye_open": float(rng.uniform(-1.0, 1.0)),
        }
    )
    other = _render(identity, acted, size, nuisance, rng)
    g = other.geometry
    if rng.random() < 0.5:
        region = np.concatenate([g.outer_lips, target.geometry.outer_lips])
        mask = hull_mask(region, target.image.shape[:2])
    else:
        mask = np.maximum(
            hull_mask(np.concatenate([g.left_eye, target.geometry.left_eye]), (size, size)),
            hull_mask(np.concatenate([g.right_eye, target.geometry.right_eye]), (size, size)),
        )
    grow = max(1, int(round(cfg["region_margin"] * size)))
    mask = cv2.dilate(mask, np.ones((2 * grow + 1,) * 2, np.uint8))
    pasted = cv2.GaussianBlur(other.image.astype(np.float32), (0, 0), 0.3 + strength)
    shift = rng.uniform(-1, 1, 2) * strength
    pasted = cv2.warpAffine(pasted, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (size, size))
    return _blend(pasted, target.image, _soft(mask, float(rng.uniform(*cfg["seam_sigma"]))))


def _synthesis(identity: Identity, state: FaceState, size: int, strength, nuisance, rng):
    """No blend boundary: the whole face rendered, then a generator's look: a slightly
    softer upsampling with a 2x2 periodic fingerprint (a transposed convolution's
    checkerboard) and edge-preserving smoothing of the skin texture."""
    image = render_face(identity, rng, size, nuisance, state).image
    low = max(8, int(round(size * (1.0 - 0.25 * strength))))
    small = cv2.resize(image, (low, low), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    tile = rng.normal(0.0, 1.0, (2, 2, 3)).astype(np.float32)
    pattern = np.tile(tile, (size // 2 + 1, size // 2 + 1, 1))[:size, :size]
    up = np.clip(up + (0.5 + 2.0 * strength) * pattern, 0, 255).astype(np.uint8)
    return cv2.bilateralFilter(up, 3, 8 + 15 * strength, 2).astype(np.float32)


def _encode(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=int(quality)
    )
    return buffer.getvalue()


def _metadata(
    sample_id: str, kind: str, strength: float, cfg: Mapping[str, Any], rng
) -> dict[str, float]:
    """The capture report of a session (frame timestamps and digests, device class, frame
    size check) as the model's metadata (`idv.capture_metadata`): `genuine` (a camera),
    `benign_virtual` (a capture card or phone-as-webcam: a virtual device string, often a
    software clock, still live) or `injected` (each tell-tale only with its probability)."""
    m = cfg["metadata"]
    n, nominal = int(m["frames"]), 1000.0 / float(m["fps"])
    jitter = float(rng.lognormal(*m["jitter_lognormal"]))
    irregular = float(rng.uniform(0.0, m["irregular_genuine"]))
    repeats, virtual = 0.0, 0.0
    mismatch = float(rng.random() < m["resolution_mismatch_genuine"])
    if kind == "genuine" and rng.random() < m["weak_device_share"]:
        irregular = float(rng.uniform(*m["irregular_injected"]))
    if kind == "benign_virtual":
        virtual = 1.0
        if rng.random() < 0.5:
            jitter = float(rng.uniform(*m["software_clock_ms"]))
    if kind == "injected":
        tell = m["telltale_probability"]
        virtual = float(rng.random() < tell["virtual_device"])
        if rng.random() < tell["software_clock"]:
            jitter = float(rng.uniform(*m["software_clock_ms"]))
        if rng.random() < tell["irregular"]:
            lo, hi = m["irregular_injected"]
            irregular = float(lo + (hi - lo) * strength * rng.random())
        if rng.random() < tell["repeats"]:
            repeats = float(rng.uniform(0.05, 0.5) * strength + 0.02)
        if rng.random() < tell["resolution"]:
            mismatch = 1.0
    # The report: intervals with the clock's jitter, a share dropped (doubled) or bursty
    # (halved), frames that repeat their predecessor; its features come from the one function
    # a client uses too.
    step = nominal + rng.normal(0.0, jitter, n - 1)
    odd = rng.random(n - 1) < irregular
    step[odd] *= rng.choice([2.0, 0.4], size=int(odd.sum()))
    timestamps = np.concatenate([[0.0], np.cumsum(np.maximum(step, 0.1))])
    digests, frame = [], 0
    for k in range(n):
        if k == 0 or rng.random() >= repeats:
            frame += 1
        digests.append(str(frame))
    meta = timing_metadata(sample_id, timestamps, digests, float(m["fps"]))
    meta.update(virtual_device=virtual, resolution_mismatch=mismatch)
    return {k: round(float(meta[k]), 4) for k in METADATA_COLUMNS}


def _render_identity(index: int, out: Path, *, cfg: dict, seed: int, captures: int) -> list[dict]:
    rng = identity_rng(seed, index)
    subject = f"S{index:05d}"  # the faces corpus' identity of this index
    identity = sample_identity(rng, subject)
    geography = pick(rng, cfg["geographies"])
    devices = devices_from_config(cfg["capture_devices"])
    nuisance = nuisance_from_config(cfg["nuisance"])
    size = int(cfg["image_size"])
    sbi = SBIConfig(**cfg["sbi"])
    folder = out / "images" / subject
    folder.mkdir(parents=True, exist_ok=True)
    common = {"subject_id": subject, "geography": geography, **identity.demographics()}
    rows: list[dict] = []

    def write(sample_id: str, data: bytes, row: dict) -> None:
        (folder / f"{sample_id}.jpg").write_bytes(data)
        rows.append(
            {**common, "sample_id": sample_id, "path": f"images/{subject}/{sample_id}.jpg", **row}
        )

    def shoot(image: np.ndarray) -> tuple[bytes, np.ndarray, str]:
        device = devices[int(rng.integers(len(devices)))]
        data, pixels = capture(np.clip(image, 0, 255).astype(np.uint8), rng, device, cfg["capture"])
        return data, pixels, device.name

    for k in range(captures):
        state = _state(rng, cfg)
        target = _render(identity, state, size, nuisance, rng)
        data, _, device = shoot(target.image)
        bona_id = f"{subject}_c{k:02d}"
        kind = (
            "benign_virtual"
            if rng.random() < cfg["metadata"]["benign_virtual_share"]
            else "genuine"
        )
        write(bona_id, data, {
            "label": 0, "attack_type": BONA_FIDE, "source_sample_id": None,
            "capture_device": device, "attack_strength": 0.0, "injected": 0,
            **_metadata(bona_id, kind, 0.0, cfg, rng),
        })  # fmt: skip
        for a in range(int(cfg["attacks_per_capture"])):
            species = pick(rng, cfg["species"])
            strength = float(rng.uniform(*cfg["strength"]))
            injected = species == "injection" or rng.random() < cfg["manipulation_injected_share"]
            if species == "sbi":
                image, _ = self_blend(
                    target.image, hull_mask(target.geometry.face_outline, (size, size)), rng, sbi
                )
            elif species == "face_swap":
                donor = sample_identity(rng, f"{subject}_donor{k}{a}")
                image = _face_swap(
                    target, _render(donor, state, size, nuisance, rng), strength, cfg["swap"], rng
                )
            elif species == "reenactment":
                image = _reenactment(
                    identity, target, state, strength, cfg["reenactment"], nuisance, rng
                )
            elif species == "synthesis":
                image = _synthesis(identity, state, size, strength, nuisance, rng)
            elif species == "injection":
                image = None
            else:
                raise KeyError(
                    f"unknown deepfake species {species!r}; known: {[*MANIPULATIONS, 'injection']}"
                )
            attack_id = f"{bona_id}_a{a}"
            if image is not None:
                data, _, device = shoot(image)
            elif rng.random() < cfg["injection"]["clean_render_share"]:
                # Rendered frames straight into a virtual camera: an encoder, no sensor.
                clean = _render(identity, _state(rng, cfg), size, nuisance, rng).image
                lo, hi = cfg["injection"]["clean_jpeg_quality"]
                data, device = _encode(clean, int(rng.integers(lo, hi + 1))), "virtual"
            else:
                # A genuine capture recorded earlier, replayed into the stream and re-encoded.
                _, decoded, device = shoot(
                    _render(identity, _state(rng, cfg), size, nuisance, rng).image
                )
                lo, hi = cfg["injection"]["reencode_jpeg_quality"]
                data = _encode(decoded, int(rng.integers(lo, hi + 1)))
            write(attack_id, data, {
                "label": 1, "attack_type": species, "source_sample_id": bona_id,
                "capture_device": device, "attack_strength": strength, "injected": int(injected),
                **_metadata(attack_id, "injected" if injected else "genuine", strength, cfg, rng),
            })  # fmt: skip
    return rows


def generate_deepfake_corpus(
    cfg: Mapping[str, Any], profile: str, seed: int, out: str | Path, workers: int = 2
) -> pd.DataFrame:
    """Render the deepfake corpus of `profile` size into `out` (atomically); return its
    manifest (one row per image, the metadata columns included)."""
    size = cfg["sizes"][profile]
    fn = functools.partial(
        _render_identity, cfg=dict(cfg), seed=seed, captures=int(size["captures_per_identity"])
    )
    return build_corpus(
        fn, int(size["identities"]), out, seed=seed, workers=workers,
        fractions=cfg["split_fractions"], stratify=DEEPFAKE_STRATA,
    )  # fmt: skip
