"""The synthetic capture-clip corpus for liveness: bona fide sessions and attacks made from them.

A session is T frames of one identity, rendered from a smooth sequence of `FaceState`s and
photographed by the PAD corpus' simulated camera (`idv.data.synth.capture`) with its settings
(exposure, device, JPEG quality range) fixed for the session and fresh sensor noise per frame.

- Bona fide: head sway, blinks at random times (the lids close on the eye contour), a pulse (a
  skin-colour oscillation of 0.8-2.5 Hz, strongest in green, under the camera noise), slow
  expression drift, and the session's active challenge performed in its middle third. A share
  is hard (`condition`): no blink in the window, low light, fast motion, fluorescent flicker or
  heavy compression.
- Attacks, each from a bona fide session of the same subject (`source_session_id`; a frame's
  `source_sample_id` is the source's frame of that index): `print` (one frame printed,
  moved by planar homographies: no blink, no pulse),
  `replay` (the source clip on a screen: moire, refresh flicker, gamut; it carries the source's
  blinks, pulse and challenge, while its own challenge differs), `mask` (rigid head motion, no
  pulse, no expression, the wearer's blinks through the eye holes) and `injection` (one frame
  repeated with synthetic jitter).

Every session asks a challenge (`challenge`); `challenge_failed` is 1 when the clip does not
perform it (the target of the compliance output), and `performed` names the challenge the
clip does perform (`none` for a print, an injection or a mask that cannot smile; a replay
performs its source's): the target of a head that recognises every challenge. Identities
are the faces corpus' (the same seed and index give the same face); rows are frames
(`session_id`, `frame_index`, `timestamp_s`), split by subject.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from idv.data.augment.attacks import paper_mask, print_attack, screen_replay
from idv.data.manifest import BONA_FIDE
from idv.data.synth.capture import capture, devices_from_config
from idv.data.synth.face_corpus import nuisance_from_config
from idv.data.synth.faces import FaceState, Identity, render_face, sample_identity
from idv.data.synth.writer import build_corpus, identity_rng, pick

CLIP_STRATA = ("label", "attack_type")
NONE = "none"  # `performed` of a clip that performs no challenge
# What each species can perform of a challenge: a mask wearer turns and blinks, not smiles.
PERFORMS = {
    BONA_FIDE: {"turn_left", "turn_right", "blink", "smile"},
    "mask": {"turn_left", "turn_right", "blink"},
    "replay": set(),  # it performs the replayed session's challenge, not the one asked
    "print": set(),
    "injection": set(),
}


class _Clock:
    """Frame times and the smooth curves a session is made of."""

    def __init__(self, frames: int, fps: float) -> None:
        self.t = np.arange(frames) / fps
        self.n = frames

    def window(self, start: float, end: float) -> np.ndarray:
        """0 outside [start, end] (fractions of the clip), a smooth bump to 1 inside."""
        u = np.clip((np.arange(self.n) / max(self.n - 1, 1) - start) / (end - start), 0, 1)
        return np.sin(np.pi * u) ** 2

    def blink(self, at: float, frames: float) -> np.ndarray:
        """Eyelid closure of one blink centred on frame `at`, lasting about `frames` frames."""
        k = np.arange(self.n)
        return np.clip(1.0 - np.abs(k - at) / (frames / 2.0), 0.0, 1.0)


def _challenge_curves(clock: _Clock, challenge: str, cfg: Mapping[str, Any], rng) -> dict:
    """Pose / expression offsets that perform `challenge` in the clip's middle third."""
    bump = clock.window(0.2, 0.8)
    out = {"yaw": np.zeros(clock.n), "smile": np.zeros(clock.n), "blink": np.zeros(clock.n)}
    if challenge in ("turn_left", "turn_right"):
        sign = -1.0 if challenge == "turn_left" else 1.0
        out["yaw"] = sign * float(rng.uniform(*cfg["turn_deg"])) * bump
    elif challenge == "smile":
        out["smile"] = float(rng.uniform(*cfg["smile"])) * bump
    elif challenge == "blink":
        out["blink"] = clock.blink(clock.n / 2.0 + rng.uniform(-1, 1), cfg["blink_frames"])
    return out


def _bona_fide_states(
    clock: _Clock, challenge: str, condition: str, cfg: Mapping[str, Any], rng
) -> tuple[list[FaceState], dict[str, Any]]:
    """The states of a live session, and what it carries (pulse rate, blinks)."""
    motion = cfg["motion"]
    fast = condition == "fast_motion"
    sway = float(rng.uniform(*motion["sway_deg"])) * (motion["fast_factor"] if fast else 1.0)
    freq = rng.uniform(*motion["sway_hz"], size=3)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    t = clock.t
    yaw = sway * np.sin(2 * np.pi * freq[0] * t + phase[0])
    roll = 0.5 * sway * np.sin(2 * np.pi * freq[1] * t + phase[1])
    shift = motion["shift_px"] * np.sin(2 * np.pi * freq[2] * t + phase[2])
    blink = np.zeros(clock.n)
    if condition != "no_blink":
        for _ in range(int(rng.poisson(cfg["blinks_per_clip"]))):
            blink = np.maximum(blink, clock.blink(rng.uniform(0, clock.n), cfg["blink_frames"]))
    acted = _challenge_curves(clock, challenge, cfg["challenge"], rng)
    pulse = cfg["pulse"]
    hz = float(rng.uniform(*pulse["hz"]))
    amplitude = float(rng.uniform(*pulse["amplitude"]))
    wave = amplitude * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
    smile0, drift = rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3)
    mouth = rng.uniform(0, 0.3)
    base = _base_state(cfg, rng, condition)
    states = []
    for k in range(clock.n):
        gain = tuple(1.0 + wave[k] * np.asarray(pulse["channel_weights"]))
        states.append(
            FaceState(
                yaw_deg=float(yaw[k] + acted["yaw"][k]),
                roll_deg=float(roll[k]),
                shift_px=(float(shift[k]), float(0.5 * shift[k])),
                smile=float(smile0 + drift * t[k] / max(t[-1], 1e-6) + acted["smile"][k]),
                mouth_open=float(mouth),
                blink=float(max(blink[k], acted["blink"][k])),
                skin_gain=gain,
                blur_sigma=base["blur"] * (motion["fast_blur"] if fast else 1.0),
                **base["state"],
            )
        )
    return states, {
        "pulse_hz": hz,
        "pulse_amplitude": amplitude,
        "blinks": int((blink > 0.9).any()),
    }


def _base_state(cfg: Mapping[str, Any], rng, condition: str) -> dict[str, Any]:
    """What stays fixed over a session: background, lighting, expression baseline."""
    light = cfg["lighting"]
    gain = float(rng.uniform(*light["gain"]))
    if condition == "low_light":
        gain *= light["low_light_gain"]
    state = {
        "background_seed": int(rng.integers(2**31)),
        "light": float(rng.uniform(0.0, light["gradient"])),
        "light_angle": float(rng.uniform(0.0, 2 * math.pi)),
        "gain": gain,
        "tint": tuple(1.0 + light["tint"] * rng.uniform(-1, 1, 3)),
        "noise_sigma": 0.0,  # the camera adds the noise and the JPEG
        "jpeg_quality": 100,
        "brow_raise": float(rng.uniform(-0.5, 0.5)),
        "eye_open": float(rng.uniform(-0.5, 0.5)),
    }
    return {"state": state, "blur": float(rng.uniform(0.0, 0.6))}


def _mask_states(clock: _Clock, challenge: str, cfg: Mapping[str, Any], rng) -> list[FaceState]:
    """A rigid face: head motion and the wearer's blinks, no pulse, a frozen expression."""
    states, _ = _bona_fide_states(clock, challenge, "none", cfg, rng)
    frozen = {"smile": 0.0, "mouth_open": 0.0, "skin_gain": (1.0, 1.0, 1.0)}
    return [FaceState(**{**s.__dict__, **frozen}) for s in states]


def _homographies(n: int, cfg: Mapping[str, Any], size: int, rng) -> list[np.ndarray]:
    """A hand-held sheet: smooth small rotations, shifts and perspective tilts."""
    t = np.linspace(0, 1, n)
    amp = rng.uniform(0.3, 1.0)
    f = rng.uniform(0.3, 1.2, size=4)
    ph = rng.uniform(0, 2 * np.pi, size=4)
    out = []
    c = size / 2.0
    for k in range(n):
        w = [amp * np.sin(2 * np.pi * f[i] * t[k] + ph[i]) for i in range(4)]
        angle = math.radians(cfg["rotate_deg"] * w[0])
        zoom = cfg["zoom"]
        a = zoom * np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        shift = np.array([w[1], w[2]]) * cfg["shift_px"] * size / 112.0
        h = np.eye(3)
        h[:2, :2] = a
        h[:2, 2] = np.array([c, c]) - a @ np.array([c, c]) + shift
        h[2, 0] = cfg["tilt"] * w[3] / size
        out.append(h)
    return out


def _shoot(images: list[np.ndarray], camera: dict, rng, condition: str, cfg) -> list[bytes]:
    """The session's camera over every frame: fixed settings, fresh noise per frame."""
    flicker = cfg["flicker"]
    amp = float(rng.uniform(*flicker["amplitude"])) if condition == "flicker" else 0.0
    hz, phase = float(rng.uniform(*flicker["beat_hz"])), rng.uniform(0, 2 * np.pi)
    out = []
    for k, image in enumerate(images):
        x = image.astype(np.float32)
        if amp:
            x *= 1.0 + amp * math.sin(2 * math.pi * hz * k / cfg["fps"] + phase)
        data, _ = capture(np.clip(x, 0, 255).astype(np.uint8), rng, camera["device"], camera["cfg"])
        out.append(data)
    return out


def _camera(cfg: Mapping[str, Any], devices, rng, condition: str) -> dict:
    """One draw of the camera's settings, held for the session (degenerate ranges)."""
    c = cfg["capture"]
    quality = c["heavy_jpeg_quality"] if condition == "heavy_compression" else c["jpeg_quality"]
    fixed = {
        "target_brightness": [float(rng.uniform(*c["target_brightness"]))] * 2,
        "blur_sigma": [float(rng.uniform(*c["blur_sigma"]))] * 2,
        "noise_sigma": [float(rng.uniform(*c["noise_sigma"]))] * 2,
        "jpeg_quality": [int(rng.integers(quality[0], quality[1] + 1))] * 2,
    }
    if condition == "low_light":
        fixed["noise_sigma"] = [v * c["low_light_noise"] for v in fixed["noise_sigma"]]
    return {"device": devices[int(rng.integers(len(devices)))], "cfg": fixed}


def _render(identity: Identity, states: list[FaceState], size: int, nuisance, rng) -> list:
    return [render_face(identity, rng, size, nuisance, s).image for s in states]


def _attack_frames(
    species: str,
    asked: str,
    source: dict,
    identity: Identity,
    clock: _Clock,
    cfg: Mapping[str, Any],
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], float]:
    """The scene an attack puts in front of the camera, frame by frame (pre-camera); a mask
    wearer responds to the `asked` challenge as far as a mask lets them."""
    strength = float(rng.uniform(*cfg["strength"]))
    size = int(cfg["image_size"])
    if species == "replay":
        seed = int(rng.integers(2**31))  # one screen: the same grid, glare and gamut
        period = float(rng.uniform(*cfg["moire_period"]))
        hz = float(rng.uniform(*cfg["replay_beat_hz"]))
        amp = cfg["replay_flicker"] * strength
        frames = []
        for k, image in enumerate(source["scene"]):
            shown = screen_replay(image, strength, np.random.default_rng(seed), moire_period=period)
            beat = 1.0 + amp * math.sin(2 * math.pi * hz * clock.t[k])
            frames.append(np.clip(shown.astype(np.float32) * beat, 0, 255).astype(np.uint8))
        return frames, strength
    if species == "mask":
        states = _mask_states(clock, asked, cfg, rng)
        seed = int(rng.integers(2**31))
        scene = _render(identity, states, size, source["nuisance"], rng)
        return [paper_mask(f, strength, np.random.default_rng(seed)) for f in scene], strength
    still = source["scene"][int(rng.integers(clock.n))]
    if species == "print":
        sheet = print_attack(
            still, strength, rng, halftone_period=float(rng.uniform(*cfg["halftone_period"]))
        )
        warps = _homographies(clock.n, cfg["print_motion"], size, rng)
        return [
            cv2.warpPerspective(sheet, h, (size, size), borderMode=cv2.BORDER_REFLECT)
            for h in warps
        ], strength
    if species == "injection":
        j = cfg["injection_jitter_px"] * strength * size / 112.0
        frames = []
        for _ in range(clock.n):
            m = np.float32([[1, 0, rng.uniform(-j, j)], [0, 1, rng.uniform(-j, j)]])
            frames.append(cv2.warpAffine(still, m, (size, size), borderMode=cv2.BORDER_REFLECT))
        return frames, strength
    raise KeyError(f"unknown clip attack species {species!r}; known: {sorted(PERFORMS)}")


def _rows(session: dict, common: dict, frames: list[bytes], folder: Path, fps: float) -> list:
    sid, source = session["session_id"], session["source_session_id"]
    (folder / sid).mkdir(parents=True, exist_ok=True)
    rows = []
    for k, data in enumerate(frames):
        rel = f"images/{common['subject_id']}/{sid}/{k:03d}.jpg"
        (folder.parent.parent / rel).write_bytes(data)
        rows.append(
            {
                **common,
                **{key: v for key, v in session.items() if key not in ("scene", "nuisance")},
                "sample_id": f"{sid}_f{k:03d}",
                "path": rel,
                "frame_index": k,
                # The manifest's provenance is per row: the source session's frame k.
                "source_sample_id": None if source is None else f"{source}_f{k:03d}",
                "timestamp_s": round(k / fps, 6),
            }
        )
    return rows


def _render_identity(index: int, out: Path, *, cfg: dict, seed: int, sessions: int) -> list[dict]:
    rng = identity_rng(seed, index)
    subject = f"S{index:05d}"  # the faces corpus' identity of this index
    identity = sample_identity(rng, subject)
    geography = pick(rng, cfg["geographies"])
    devices = devices_from_config(cfg["capture_devices"])
    nuisance = nuisance_from_config(cfg["nuisance"])
    clock = _Clock(int(cfg["frames"]), float(cfg["fps"]))
    folder = out / "images" / subject
    common = {"subject_id": subject, "geography": geography, **identity.demographics()}
    challenges = list(cfg["challenges"])
    rows: list[dict] = []
    for s in range(sessions):
        condition = "none"
        if rng.random() < cfg["hard_share"]:
            condition = pick(rng, cfg["hard_conditions"])
        challenge = pick(rng, challenges)
        if condition == "no_blink" and challenge == "blink":
            condition = "none"
        states, carried = _bona_fide_states(clock, challenge, condition, cfg, rng)
        scene = _render(identity, states, int(cfg["image_size"]), nuisance, rng)
        sid = f"{subject}_s{s:02d}"
        bona = {
            "session_id": sid, "label": 0, "attack_type": BONA_FIDE, "source_session_id": None,
            "challenge": challenge, "challenge_failed": 0, "performed": challenge,
            "condition": condition,
            "attack_strength": 0.0, **carried, "scene": scene, "nuisance": nuisance,
        }  # fmt: skip
        camera = _camera(cfg, devices, rng, condition)
        bona["capture_device"] = camera["device"].name
        rows += _rows(
            bona, common, _shoot(scene, camera, rng, condition, cfg), folder, float(cfg["fps"])
        )
        for a in range(int(cfg["attacks_per_session"])):
            species = pick(rng, cfg["species"])
            asked = pick(rng, challenges)
            if species == "replay":  # the replayed clip performs the source's challenge
                asked = pick(rng, [c for c in challenges if c != challenge])
            frames, strength = _attack_frames(species, asked, bona, identity, clock, cfg, rng)
            # A replay shows the source's challenge, never the one asked now.
            failed = 1 if species == "replay" else int(asked not in PERFORMS[species])
            performed = challenge if species == "replay" else (NONE, asked)[1 - failed]
            attack = {
                "session_id": f"{sid}_a{a}", "label": 1, "attack_type": species,
                "source_session_id": sid, "challenge": asked, "challenge_failed": failed,
                "performed": performed,
                "condition": "none", "attack_strength": strength, "pulse_hz": 0.0,
                "pulse_amplitude": 0.0, "blinks": 0,
            }  # fmt: skip
            camera = _camera(cfg, devices, rng, "none")
            attack["capture_device"] = camera["device"].name
            shot = _shoot(frames, camera, rng, "none", cfg)
            rows += _rows(attack, common, shot, folder, float(cfg["fps"]))
    return rows


def generate_clip_corpus(
    cfg: Mapping[str, Any], profile: str, seed: int, out: str | Path, workers: int = 2
) -> pd.DataFrame:
    """Render the clip corpus of `profile` size into `out` (atomically); return its manifest
    (one row per frame)."""
    size = cfg["sizes"][profile]
    merged = {**dict(cfg), **{k: v for k, v in size.items() if k != "identities"}}
    fn = functools.partial(
        _render_identity, cfg=merged, seed=seed, sessions=int(size["sessions_per_identity"])
    )
    return build_corpus(
        fn, int(size["identities"]), out, seed=seed, workers=workers,
        fractions=cfg["split_fractions"], stratify=CLIP_STRATA,
    )  # fmt: skip
