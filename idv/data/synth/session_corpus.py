"""The synthetic capture-session corpus: pointer, touch and key events of humans and bots.

A session is a form-filling page (`page`: click targets, some of them text fields), played by
a subject on a device. One Parquet table of events (`events.parquet`: `sample_id`, `t` ms,
`x`, `y`, `type`) and the manifest (one row per session: no `path`; the device record as
columns, `idv.sessions.device.DEVICE_COLUMNS`).

- **Humans** (`bona_fide`): each movement is a minimum-jerk primary sub-movement whose
  duration follows Fitts' law (per-user a, b), with over- / undershoot and a bowed path, then
  corrective sub-movements; physiological tremor (8-12 Hz) on every sample; pointer events
  coalesced at the display rate with jitter and dropped frames; log-normal pauses and
  reading time; typing with per-user digraph timing. Touch users tap (a few finger-drift moves
  while down) and swipe. Hard humans: elderly users (slower, larger tremor, more
  corrections), assistive access (keyboard only, no pointer movement), phones that report no
  motion sensors, travellers whose timezone or locale disagrees with their geography.
- **Bots**, by species: `scripted` (straight or Bezier paths at constant speed on a fixed
  event clock, fixed delays), `replay` (a recorded human trace, replayed on the engine's
  timer or time-scaled), `humanised` (minimum-jerk profiles and noise, but durations that
  ignore distance, i.i.d. jitter without a tremor band, uniform pauses and key intervals),
  `device_farm` (human-like touch sessions from emulators: motion sensors missing or
  constant, few devices shared by many sessions). `attack_strength` in [0, 1] (0: hardest)
  scales each species' tell-tales.

`device_sessions`, the device-farm signal, counts the earlier sessions of the same device
fingerprint in the same split within `device_window_days`: computed after the split, from the
past only, so it never leaks across splits or from the future.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from idv.data.events_table import EVENTS_NAME, write_events_table
from idv.data.manifest import BONA_FIDE
from idv.data.synth.writer import CorpusDir, finish_manifest, identity_rng, pick, render_parallel
from idv.sessions.device import device_sessions
from idv.sessions.events import EVENT_TYPES

SESSION_STRATA = ("label", "attack_type")
MOVE, DOWN, UP, KEY = range(len(EVENT_TYPES))
DAY_MS = 86_400_000.0


class Trace:
    """Events being written: times (ms), positions, types; `at` is the clock."""

    def __init__(self, x: float, y: float) -> None:
        self.t: list[float] = []
        self.x: list[float] = []
        self.y: list[float] = []
        self.k: list[int] = []
        self.at = 0.0
        self.pos = (float(x), float(y))

    def add(self, t: float, x: float, y: float, kind: int) -> None:
        self.t.append(float(t))
        self.x.append(float(x))
        self.y.append(float(y))
        self.k.append(kind)
        self.at = max(self.at, float(t))
        self.pos = (float(x), float(y))

    def arrays(self, width: int, height: int) -> dict[str, np.ndarray]:
        t = np.maximum.accumulate(np.round(np.asarray(self.t) - self.t[0], 1))
        return {
            "t": t,
            "x": np.clip(np.round(self.x), 0, width - 1),
            "y": np.clip(np.round(self.y), 0, height - 1),
            "type": np.asarray(self.k, dtype=np.int8),
        }


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    return tau**3 * (10 - 15 * tau + 6 * tau**2)


def _clock(start: float, duration: float, hz: float, jitter: float, drop: float, rng) -> np.ndarray:
    """Event times of a movement: the display's frames with jitter and dropped frames."""
    n = max(2, int(duration * hz / 1000.0) + 1)
    times = start + np.arange(1, n + 1) * (1000.0 / hz) + rng.normal(0, jitter, n)
    keep = rng.random(n) >= drop
    keep[-1] = True
    return np.sort(times[keep])


# ------------------------------------------------------------------------------- humans


class Human:
    """One user's motor and typing parameters, drawn once per subject."""

    def __init__(self, cfg: Mapping[str, Any], rng: np.random.Generator, elderly: bool) -> None:
        h = cfg["human"]
        slow = h["elderly_slowdown"] if elderly else 1.0
        self.cfg = h
        self.a = rng.uniform(*h["fitts_a_ms"]) * slow
        self.b = rng.uniform(*h["fitts_b_ms"]) * slow
        self.tremor_hz = rng.uniform(*h["tremor_hz"])
        self.tremor_px = rng.uniform(*(h["elderly_tremor_px"] if elderly else h["tremor_px"]))
        self.pause_shift = math.log(slow)
        self.corrections = h["max_corrections"] + (2 if elderly else 0)
        self.key_log = rng.normal(h["key_log_ms"][0], h["key_log_ms"][1]) + self.pause_shift
        self.digraph = rng.normal(0, h["digraph_sd"], (26, 26))

    def pause(self, rng, key: str = "pause_log_ms") -> float:
        mu, sd = self.cfg[key]
        return float(np.exp(rng.normal(mu + self.pause_shift, sd)))

    def move(self, trace: Trace, target: tuple[float, float], width: float, rng) -> None:
        """Primary sub-movement (Fitts' law duration, over- / undershoot, bowed path) and
        corrective sub-movements until the pointer lands on the target."""
        h = self.cfg
        for sub in range(self.corrections + 1):
            x0, y0 = trace.pos
            vx, vy = target[0] - x0, target[1] - y0
            dist = math.hypot(vx, vy)
            if sub and dist <= width / 2:
                return
            if dist < 1:
                return
            index = math.log2(dist / width + 1)
            duration = (self.a + self.b * index) * math.exp(rng.normal(0, h["duration_noise"]))
            if sub == self.corrections:  # the last one lands
                amp, lateral = 1.0, 0.0
            else:
                amp = rng.normal(1.0, h["amplitude_sd"] * (1 if sub == 0 else 0.5))
                lateral = rng.normal(0, h["lateral_sd"])
            ux, uy = vx / dist, vy / dist
            ex = x0 + amp * vx - lateral * dist * uy
            ey = y0 + amp * vy + lateral * dist * ux
            bow = rng.normal(0, h["bow_sd"]) * dist
            times = _clock(trace.at, duration, h["pointer_hz"], h["sampling_jitter_ms"],
                           h["dropped_frame_share"], rng)  # fmt: skip
            tau = np.clip((times - trace.at) / duration, 0, 1)
            s = _min_jerk(tau)
            arc = bow * np.sin(np.pi * tau)
            phase = rng.uniform(0, 2 * np.pi, 2)
            wob = self.tremor_px * np.sin(
                2 * np.pi * self.tremor_hz * times / 1000.0 + phase[:, None]
            )
            xs = x0 + (ex - x0) * s - arc * uy + wob[0] + rng.normal(0, 0.2, len(times))
            ys = y0 + (ey - y0) * s + arc * ux + wob[1] + rng.normal(0, 0.2, len(times))
            for t, x, y in zip(times, xs, ys, strict=True):
                trace.add(t, x, y, MOVE)
            trace.at += rng.uniform(20, 80)  # dwell before a correction

    def click(self, trace: Trace, rng, touch: bool, drift: int = 0) -> None:
        x, y = trace.pos
        down = trace.at + self.pause(rng)
        trace.add(down, x, y, DOWN)
        hold = self.pause(rng, "hold_log_ms")
        for j in range(drift):
            trace.add(down + hold * (j + 1) / (drift + 1), x + rng.normal(0, 1.5),
                      y + rng.normal(0, 1.5), MOVE)  # fmt: skip
        trace.add(down + hold, *trace.pos, UP)

    def type(self, trace: Trace, chars: int, rng) -> None:
        letters = rng.integers(0, 26, chars)
        t = trace.at + self.pause(rng)
        for j, letter in enumerate(letters):
            trace.add(t, *trace.pos, KEY)
            if j + 1 < chars:
                gap = self.key_log + self.digraph[letter, letters[j + 1]]
                t += float(np.exp(rng.normal(gap, self.cfg["key_noise"])))
                if rng.random() < self.cfg["key_pause_share"]:
                    t += self.pause(rng)


def _page(
    cfg: Mapping[str, Any], width: int, height: int, rng
) -> list[tuple[float, float, float, int]]:
    """Click targets (x, y, width, characters to type: 0 for a button)."""
    p = cfg["page"]
    out = []
    for _ in range(int(rng.integers(p["targets"][0], p["targets"][1] + 1))):
        w = float(rng.uniform(*p["target_px"]))
        w = min(w, width / 3)
        x = float(rng.uniform(w, width - w))
        y = float(rng.uniform(w, height - w))
        chars = int(rng.integers(p["field_chars"][0], p["field_chars"][1] + 1))
        out.append((x, y, w, chars if rng.random() < p["field_share"] else 0))
    return out


def _swipe(trace: Trace, width: int, height: int, hz: float, rng, regular: bool = False) -> None:
    x, y = trace.pos
    trace.at += float(np.exp(rng.normal(5.5, 0.5)))
    trace.add(trace.at, x, y, DOWN)
    length = rng.uniform(0.2, 0.5) * height * rng.choice([-1, 1])
    duration = rng.uniform(150, 400)
    times = _clock(trace.at, duration, hz, 0.0 if regular else 1.2, 0.0, rng)
    s = _min_jerk(np.clip((times - trace.at) / duration, 0, 1))
    for t, v in zip(times, s, strict=True):
        trace.add(t, x + (0 if regular else rng.normal(0, 1.0)), y + length * v, MOVE)
    trace.add(trace.at + 10, *trace.pos, UP)


def human_session(
    cfg, human: Human, width: int, height: int, touch: bool, assistive: bool, rng
) -> Trace:
    """A human's session on the page."""
    h = cfg["human"]
    trace = Trace(rng.uniform(0, width), rng.uniform(0, height))
    trace.add(0.0, *trace.pos, MOVE if not assistive else KEY)
    trace.at = human.pause(rng, "reading_log_ms")
    swipes = (
        int(rng.integers(cfg["page"]["swipes"][0], cfg["page"]["swipes"][1] + 1)) if touch else 0
    )
    for x, y, w, chars in _page(cfg, width, height, rng):
        if assistive:  # tab through the form: key presses, the "click" is Enter
            for _ in range(int(rng.integers(1, 5))):
                trace.add(trace.at + human.pause(rng), *trace.pos, KEY)
            trace.pos = (x, y)
        elif touch:
            trace.pos = (x + rng.normal(0, w / 4), y + rng.normal(0, w / 4))
            if swipes and rng.random() < 0.5:
                _swipe(trace, width, height, h["pointer_hz"], rng)
                swipes -= 1
                trace.pos = (x + rng.normal(0, w / 4), y + rng.normal(0, w / 4))
        else:
            human.move(trace, (x, y), w, rng)
        human.click(
            trace, rng, touch, drift=int(rng.integers(0, 4)) if touch else int(rng.integers(0, 2))
        )
        if chars:
            human.type(trace, chars, rng)
    return trace


# --------------------------------------------------------------------------------- bots


def _bot_clock(start: float, duration: float, tick: float, jitter: float, rng) -> np.ndarray:
    n = max(2, int(duration / tick) + 1)
    return start + np.arange(1, n + 1) * tick + rng.uniform(-jitter, jitter, n) * (jitter > 0)


def scripted_session(cfg, width: int, height: int, strength: float, rng) -> Trace:
    """Straight (or, weaker, Bezier) paths at constant speed on a fixed clock, fixed delays."""
    b = cfg["bot"]
    tick = float(pick(rng, b["ticks_ms"]))
    jitter = b["tick_jitter_ms"] * (1 - strength)
    speed = rng.uniform(*b["speed_px_ms"])
    delay = rng.uniform(*b["delay_ms"])
    hold = rng.uniform(*b["hold_ms"])
    key = rng.uniform(*b["key_ms"])
    spread = b["delay_jitter"] * (1 - strength)
    trace = Trace(rng.uniform(0, width), rng.uniform(0, height))
    trace.add(0.0, *trace.pos, MOVE)
    trace.at = delay
    for x, y, w, chars in _page(cfg, width, height, rng):
        x0, y0 = trace.pos
        tx = x + rng.uniform(-w, w) * 0.25 * (1 - strength)
        ty = y + rng.uniform(-w, w) * 0.25 * (1 - strength)
        dist = math.hypot(tx - x0, ty - y0)
        duration = max(dist / speed, tick)
        bow = rng.normal(0, b["bezier_bow"] * (1 - strength)) * dist
        times = _bot_clock(trace.at, duration, tick, jitter, rng)
        u = np.clip((times - trace.at) / duration, 0, 1)
        cx, cy = (
            (x0 + tx) / 2 - bow * (ty - y0) / max(dist, 1),
            (y0 + ty) / 2 + bow * (tx - x0) / max(dist, 1),
        )
        xs = (1 - u) ** 2 * x0 + 2 * (1 - u) * u * cx + u**2 * tx
        ys = (1 - u) ** 2 * y0 + 2 * (1 - u) * u * cy + u**2 * ty
        for t, px, py in zip(times, xs, ys, strict=True):
            trace.add(t, px, py, MOVE)
        down = trace.at + delay * (1 + rng.uniform(0, spread))
        trace.add(down, *trace.pos, DOWN)
        trace.add(down + hold * (1 + rng.uniform(0, spread)), *trace.pos, UP)
        t = trace.at + delay * (1 + rng.uniform(0, spread))
        for _ in range(chars):
            trace.add(t, *trace.pos, KEY)
            t += key * (1 + rng.uniform(-spread, spread) / 2)
        trace.at = max(trace.at, t - key) + delay * (1 + rng.uniform(0, spread))
    return trace


def replay_session(cfg, width: int, height: int, strength: float, rng) -> Trace:
    """A recorded human trace (a person outside the corpus) replayed: on the engine's timer
    (times rounded to its tick) or time-scaled (kinematics at the wrong speed)."""
    b = cfg["bot"]
    touch = rng.random() < cfg["human"]["touch_share"]
    recorded = human_session(cfg, Human(cfg, rng, elderly=False), width, height, touch, False, rng)
    t = np.asarray(recorded.t)
    if rng.random() < b["replay_exact_share"]:
        lo, hi = b["replay_tick_ms"]
        tick = lo + (hi - lo) * strength
        t = np.round(t / tick) * tick
    else:
        factor = math.exp(rng.choice([-1, 1]) * strength * math.log(b["replay_scale"]))
        t = t * factor
    trace = Trace(*recorded.pos)
    for ti, x, y, k in zip(t, recorded.x, recorded.y, recorded.k, strict=True):
        trace.add(ti, x, y, k)
    return trace


def humanised_session(cfg, width: int, height: int, strength: float, rng) -> Trace:
    """Minimum-jerk paths with noise, but tell-tale regularities (strength: how many)."""
    b = cfg["bot"]
    human = Human(cfg, rng, elderly=False)
    tick = float(pick(rng, b["ticks_ms"]))
    duration = rng.uniform(*b["humanised_duration_ms"])
    noise = rng.uniform(*b["humanised_noise_px"])
    trace = Trace(rng.uniform(0, width), rng.uniform(0, height))
    trace.add(0.0, *trace.pos, MOVE)
    trace.at = rng.uniform(*b["humanised_pause_ms"]) * 2
    for x, y, w, chars in _page(cfg, width, height, rng):
        if rng.random() > strength:  # a human-like movement: Fitts, corrections, tremor
            human.move(trace, (x, y), w, rng)
        else:
            x0, y0 = trace.pos
            tx, ty = x + rng.normal(0, w / 6), y + rng.normal(0, w / 6)
            times = _bot_clock(trace.at, duration * math.exp(rng.normal(0, 0.05)), tick,
                               0.5 * (1 - strength), rng)  # fmt: skip
            s = _min_jerk(np.clip((times - trace.at) / duration, 0, 1))
            for t, v in zip(times, s, strict=True):
                trace.add(t, x0 + (tx - x0) * v + rng.normal(0, noise),
                          y0 + (ty - y0) * v + rng.normal(0, noise), MOVE)  # fmt: skip
        down = trace.at + rng.uniform(*b["humanised_pause_ms"])
        trace.add(down, *trace.pos, DOWN)
        trace.add(down + rng.uniform(*b["hold_ms"]), *trace.pos, UP)
        t = trace.at + rng.uniform(*b["humanised_pause_ms"])
        for _ in range(chars):
            trace.add(t, *trace.pos, KEY)
            t += rng.uniform(*b["humanised_key_ms"])
        trace.at = max(trace.at, t)
    return trace


# ------------------------------------------------------------------------------ devices


def _device(cfg, rng, *, species: str, touch: bool, strength: float, mismatch: Mapping) -> dict:
    """The session's device record (`idv.sessions.device.DEVICE_COLUMNS` but the count)."""
    h = cfg["human"]
    screens = cfg["screens"]["phone" if touch else "desktop"]
    if species == "device_farm":
        screens = cfg["farm"]["emulator_screens"]
    width, height = (int(v) for v in screens[int(rng.integers(len(screens)))])
    sensors = touch
    accel = gyro = 0.0
    if species == "device_farm":
        sensors = rng.random() >= cfg["farm"]["sensors_missing_share"] * (0.5 + strength / 2)
        # constant readings: an emulator's sensors report a fixed vector
    elif touch:
        sensors = rng.random() >= h["sensors_blocked_share"]
        if sensors:
            accel, gyro = rng.uniform(*h["accel_std"]), rng.uniform(*h["gyro_std"])
    bot = species != BONA_FIDE
    webdriver = rng.random() < (cfg["bot"]["webdriver"] * strength if bot else h["webdriver"])
    return {
        "touch": int(touch), "screen_w": width, "screen_h": height,
        "motion_sensors": int(sensors), "accel_std": float(accel), "gyro_std": float(gyro),
        "webdriver": int(webdriver),
        "timezone_mismatch": int(rng.random() < mismatch["timezone_mismatch"]),
        "locale_mismatch": int(rng.random() < mismatch["locale_mismatch"]),
    }  # fmt: skip


# ----------------------------------------------------------------------------- subjects


def _species(cfg: Mapping[str, Any], rng) -> str:
    names = list(cfg["species_weights"])
    weights = np.asarray([cfg["species_weights"][n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _render_subject(index: int, out: Path, *, cfg: dict, seed: int, sessions: int) -> list[dict]:
    rng = identity_rng(seed, index)
    species = _species(cfg, rng)
    bot = species != BONA_FIDE
    subject = f"{'B' if bot else 'H'}{index:05d}"
    geography = pick(rng, cfg["geographies"])
    h = cfg["human"]
    hard = "none"
    if not bot:
        draw = rng.random()
        if draw < h["hard"]["elderly"]:
            hard = "elderly"
        elif draw < h["hard"]["elderly"] + h["hard"]["assistive"]:
            hard = "assistive"
    touch = rng.random() < (cfg["bot"]["touch_share"] if bot else h["touch_share"])
    if species == "device_farm":
        touch = True
    human = Human(cfg, rng, elderly=hard == "elderly")
    farm = int(rng.integers(cfg["farm"]["farms"]))
    farm_start = identity_rng(seed + 1, farm).uniform(0, cfg["days"] - cfg["farm"]["burst_days"])
    rows = []
    own_device = None
    for k in range(sessions):
        sample_id = f"{subject}_s{k:02d}"
        strength = float(rng.uniform(*cfg["strength"])) if bot else 0.0
        mismatch = cfg["bot"] if bot else h
        device = _device(
            cfg, rng, species=species, touch=touch, strength=strength, mismatch=mismatch
        )
        if species == "device_farm":
            lo, hi = cfg["farm"]["devices_per_farm"]
            pool = int(round(hi - (hi - lo) * strength))
            device_id = f"farm{farm}_dev{int(rng.integers(pool))}"
            started = farm_start + rng.uniform(0, cfg["farm"]["burst_days"])
        else:
            if own_device is None:  # a user (or a bot host) keeps its device
                own_device = device
            device = {
                **own_device,
                **{c: device[c] for c in ("timezone_mismatch", "locale_mismatch")},
            }
            device_id = f"{subject}_dev"
            started = rng.uniform(0, cfg["days"])
        width, height = device["screen_w"], device["screen_h"]
        if species == BONA_FIDE or species == "device_farm":
            trace = human_session(cfg, human, width, height, bool(device["touch"]),
                                  hard == "assistive", rng)  # fmt: skip
        elif species == "scripted":
            trace = scripted_session(cfg, width, height, strength, rng)
        elif species == "replay":
            trace = replay_session(cfg, width, height, strength, rng)
        elif species == "humanised":
            trace = humanised_session(cfg, width, height, strength, rng)
        else:
            raise KeyError(f"unknown session species {species!r}; see conf/synth/sessions.yaml")
        events = trace.arrays(width, height)
        rows.append({
            "sample_id": sample_id, "label": int(bot), "subject_id": subject,
            "attack_type": species, "attack_strength": strength, "geography": geography,
            "capture_device": "touch" if device["touch"] else "mouse", "hard_case": hard,
            "device_id": device_id, "started_at_ms": started * DAY_MS,
            "n_events": len(events["t"]), **device, "_events": events,
        })  # fmt: skip
    return rows


def generate_session_corpus(
    cfg: Mapping[str, Any], profile: str, seed: int, out: str | Path, workers: int = 2
) -> pd.DataFrame:
    """Generate the session corpus of `profile` size into `out` (atomically): the manifest
    (one row per session, device record included) and `events.parquet`."""
    size = cfg["sizes"][profile]
    fn = functools.partial(
        _render_subject, cfg=dict(cfg), seed=seed, sessions=int(size["sessions_per_subject"])
    )
    window = float(cfg["device_window_days"]) * DAY_MS

    def counted(frame: pd.DataFrame) -> pd.DataFrame:  # needs the split: per split, past only
        return frame.assign(device_sessions=device_sessions(frame, window_ms=window))

    with CorpusDir(out) as tmp:
        rows = render_parallel(fn, int(size["subjects"]), tmp, workers)
        events = [row.pop("_events") for row in rows]
        frame = finish_manifest(rows, tmp, seed=seed, fractions=cfg["split_fractions"],
                                stratify=SESSION_STRATA, after_split=counted)  # fmt: skip
        write_events_table(frame["sample_id"].tolist(), events, tmp / EVENTS_NAME)
    return frame
