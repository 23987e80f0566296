"""Capture metadata of a selfie session as the deepfake / injection model reads it, from what a
capture SDK reports: frame timestamps, a digest per frame, the device string and resolution.

One function turns a session's raw report into the model's metadata vector, for the corpus
and for a client building the bundle's `metadata` input alike (numpy only: serving needs no
training code). A report that cannot be a capture (timestamps not increasing, too few frames,
non-finite values) is refused with the sample named, never turned into numbers.

- `ts_jitter_ms`: robust spread of the frame intervals (1.4826 x their median absolute
  deviation, so dropped frames do not count as jitter): a sensor's clock jitters by
  milliseconds, a software frame clock hardly at all;
- `ts_irregular_share`: share of intervals more than `IRREGULAR` off the nominal one (dropped
  or bursty frames);
- `repeat_share`: share of frames identical to the previous one (a stream that repeats frames);
- `virtual_device`: the device string names a virtual camera class;
- `resolution_mismatch`: the frame size is not one the declared device produces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from idv.errors import IdvError

METADATA_COLUMNS = (
    "ts_jitter_ms",
    "ts_irregular_share",
    "repeat_share",
    "virtual_device",
    "resolution_mismatch",
)
IRREGULAR = 0.5  # an interval this far off the nominal one, relative, is irregular
MIN_FRAMES = 3
MAD_TO_SD = 1.4826  # median absolute deviation -> standard deviation of a normal


class CaptureMetadataError(IdvError, ValueError):
    """A session report that cannot be turned into capture metadata; names the sample."""


def timing_metadata(
    sample_id: str,
    timestamps_ms: Sequence[float],
    frame_digests: Sequence[str],
    nominal_fps: float,
) -> dict[str, float]:
    """`ts_jitter_ms`, `ts_irregular_share` and `repeat_share` of one session's frames."""
    t = np.asarray(timestamps_ms, dtype=np.float64)
    if t.ndim != 1 or len(t) < MIN_FRAMES:
        raise CaptureMetadataError(
            f"sample {sample_id!r}: needs at least {MIN_FRAMES} frame timestamps, got {t.size}"
        )
    if not np.isfinite(t).all():
        raise CaptureMetadataError(f"sample {sample_id!r}: a frame timestamp is not finite")
    if len(frame_digests) != len(t):
        raise CaptureMetadataError(
            f"sample {sample_id!r}: {len(t)} timestamps but {len(frame_digests)} frame digests"
        )
    if not nominal_fps > 0:
        raise CaptureMetadataError(f"sample {sample_id!r}: nominal_fps must be > 0")
    d = np.diff(t)
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        k = int(bad[0]) + 1
        raise CaptureMetadataError(
            f"sample {sample_id!r}: frame timestamps not increasing at frame {k} "
            f"({t[k - 1]:g} ms then {t[k]:g} ms)"
        )
    nominal = 1000.0 / float(nominal_fps)
    repeats = [a == b for a, b in zip(frame_digests[:-1], frame_digests[1:], strict=True)]
    return {
        "ts_jitter_ms": float(MAD_TO_SD * np.median(np.abs(d - np.median(d)))),
        "ts_irregular_share": float(np.mean(np.abs(d - nominal) > IRREGULAR * nominal)),
        "repeat_share": float(np.mean(repeats)),
    }
