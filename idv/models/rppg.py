"""Remote photoplethysmography (rPPG) and the hand-crafted liveness baseline.

CHROM (de Haan & Jeanne, "Robust pulse rate from chrominance-based rPPG", IEEE TBME 2013)
and POS (Wang, den Brinker, Stuijk & de Haan, "Algorithmic principles of remote PPG", IEEE
TBME 2017), written from the papers: both project the temporally normalised mean skin colour
onto chrominance axes that cancel the specular / intensity variation common to all channels,
leaving the blood-volume pulse. The pulse's strength is its spectral SNR in the heart-rate
band. The baseline (`HandcraftedLiveness`) is what a classical system would use: frame
differences (a still has none), the CHROM and POS SNRs (a print, a mask and an injected
still have no pulse) and the PAD texture features of one frame, through logistic regression.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from idv.models.handcrafted import HandcraftedPAD, handcrafted_features

# The skin region of a centred face frame: (top, bottom, left, right) as fractions.
SKIN_BOX = (0.35, 0.75, 0.25, 0.75)
PULSE_BAND_HZ = (0.7, 4.0)  # 42-240 bpm


def skin_trace(frames: Sequence[np.ndarray], box: Sequence[float] = SKIN_BOX) -> np.ndarray:
    """(T, 3) mean RGB of the skin box of every (H, W, 3) frame."""
    h, w = frames[0].shape[:2]
    t, b, left, r = (int(round(f * n)) for f, n in zip(box, (h, h, w, w), strict=True))
    return np.stack([f[t:b, left:r].reshape(-1, 3).mean(axis=0) for f in frames]).astype(np.float64)


def _normalised(rgb: np.ndarray) -> np.ndarray:
    mean = rgb.mean(axis=0, keepdims=True)
    if np.any(mean <= 0):
        raise ValueError("rPPG needs a positive mean colour in every channel")
    return rgb / mean


def chrom(rgb: np.ndarray) -> np.ndarray:
    """CHROM pulse signal of a (T, 3) RGB trace: S = X - (sd X / sd Y) Y with X = 3R - 2G,
    Y = 1.5R + G - 1.5B of the temporally normalised colour (de Haan & Jeanne 2013, eq. 9-11)."""
    c = _normalised(rgb)
    x = 3.0 * c[:, 0] - 2.0 * c[:, 1]
    y = 1.5 * c[:, 0] + c[:, 1] - 1.5 * c[:, 2]
    alpha = x.std() / max(y.std(), 1e-12)
    s = x - alpha * y
    return s - s.mean()


def pos(rgb: np.ndarray) -> np.ndarray:
    """POS pulse signal of a (T, 3) RGB trace (one window, the clip): project the normalised
    colour on the plane orthogonal to skin tone, S1 = G - B, S2 = -2R + G + B, and combine
    h = S1 + (sd S1 / sd S2) S2 (Wang et al. 2017, algorithm 1)."""
    c = _normalised(rgb)
    s1 = c[:, 1] - c[:, 2]
    s2 = -2.0 * c[:, 0] + c[:, 1] + c[:, 2]
    h = s1 + (s1.std() / max(s2.std(), 1e-12)) * s2
    return h - h.mean()


def pulse_snr(signal: np.ndarray, fps: float, band: Sequence[float] = PULSE_BAND_HZ) -> float:
    """Spectral SNR (dB) of a pulse signal: the strongest in-band bin against the rest of the
    spectrum (Hann window, zero-padded to 64 bins)."""
    n = max(64, len(signal))
    power = np.abs(np.fft.rfft(signal * np.hanning(len(signal)), n=n)) ** 2
    freq = np.fft.rfftfreq(n, d=1.0 / fps)
    inside = (freq >= band[0]) & (freq <= min(band[1], fps / 2.0))
    if not inside.any() or power[1:].sum() <= 0:
        return 0.0
    peak = power[inside].max()
    return float(10.0 * np.log10(peak / max(power[1:].sum() - peak, 1e-12)))


def clip_features(frames: Sequence[np.ndarray], fps: float) -> np.ndarray:
    """The baseline's features of one clip of RGB uint8 frames."""
    x = [f.astype(np.float32) for f in frames]
    diffs = np.array([np.abs(b - a).mean() for a, b in zip(x, x[1:], strict=False)] or [0.0])
    trace = skin_trace(frames)
    temporal = [
        diffs.mean(),
        diffs.std(),
        diffs.max(),
        pulse_snr(chrom(trace), fps),
        pulse_snr(pos(trace), fps),
        float(np.log1p(trace.std(axis=0)).mean()),
    ]
    return np.concatenate([temporal, handcrafted_features([frames[len(frames) // 2]])[0]])


class HandcraftedLiveness(HandcraftedPAD):
    """Frame differences + CHROM / POS pulse SNR + one frame's texture, logistic regression."""

    def __init__(self, fps: float, c: float = 1.0) -> None:
        super().__init__(c)
        self.fps = float(fps)

    def features(self, clips: Iterable[Sequence[np.ndarray]]) -> np.ndarray:
        return np.stack([clip_features(c, self.fps) for c in clips])
