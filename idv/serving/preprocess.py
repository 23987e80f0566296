"""Serving-side preprocessing, from a bundle's `preprocess.json`: numpy, Pillow and OpenCV only.

The exported model takes RGB pixel values in [0, 255] as float32 (N, 3, H, W) and normalises
inside, so serving only decodes and resizes. Both steps repeat the evaluation transform of
training exactly (`idv.imaging.read_image`, then albumentations' `Resize`, which is
`cv2.resize` on the uint8 image): the export's parity gate checks it on real files.
`normalise` exists to compare with the evaluation transform; scoring never needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from idv.errors import InputError
from idv.imaging import ImageReadError, read_image
from idv.sessions.device import device_vector
from idv.sessions.events import Events, check_events, events_of_rows
from idv.sessions.features import event_features, padded, screen_of

log = logging.getLogger(__name__)


# OpenCV interpolation flags by the names preprocess.json uses (cv2.INTER_*).
INTERPOLATIONS: dict[str, int] = {
    "nearest": 0,
    "linear": 1,
    "cubic": 2,
    "area": 3,
    "lanczos4": 4,
    "linear_exact": 5,
    "nearest_exact": 6,
}


def resize(image: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Resize an RGB uint8 (H, W, 3) image to the spec's input size, as albumentations does."""
    import cv2

    size = spec["resize"]
    height, width = int(size["height"]), int(size["width"])
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 image (H, W, 3), got dtype {image.dtype} shape {image.shape}"
        )
    if image.shape[:2] == (height, width):
        return image
    flag = INTERPOLATIONS[size["interpolation"]]
    downscale = height < image.shape[0] or width < image.shape[1]
    if size.get("area_for_downscale") in ("image", "image_mask") and downscale:
        flag = INTERPOLATIONS["area"]
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=flag)


def normalise(batch: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """(pixel - mean * max) / (std * max) on a float (N, 3, H, W) batch of 0-255 values: what the
    model does inside, in numpy (for comparisons with the evaluation transform)."""
    norm = spec["normalize"]
    peak = float(norm["max_pixel_value"])
    mean = np.asarray(norm["mean"], np.float64).reshape(1, 3, 1, 1) * peak
    std = np.asarray(norm["std"], np.float64).reshape(1, 3, 1, 1) * peak
    return ((np.asarray(batch, np.float64) - mean) / std).astype(np.float32)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _as_array(x: Any) -> np.ndarray:
    """numpy view of an array-like; a torch tensor without importing torch here."""
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def prepare(images: Any, spec: Mapping[str, Any], failures: set[int] | None = None) -> np.ndarray:
    """Model input (float32 (N, 3, H, W), RGB, 0-255) from any of:

    - an image file path, or a sequence of paths;
    - an RGB uint8 image (H, W, 3), a batch (N, H, W, 3), or a sequence of images (any sizes):
      each is resized to the input size;
    - an already preprocessed float batch (N, 3, H, W) at the input size with 0-255 values
      (RGB, not normalised): passed through as float32.
    Arrays may be numpy arrays or torch tensors (converted without importing torch).

    An image shorter than the spec's `min_side` (a 1x1 or 0x0 image) is a failure to acquire:
    its index goes into `failures` (and its row is blank), or, without a `failures` set, it
    is a ValueError naming the item.
    """
    size = spec["resize"]
    shape = (3, int(size["height"]), int(size["width"]))
    if isinstance(images, str | os.PathLike):
        return prepare([images], spec, failures)
    if isinstance(images, Sequence) and not isinstance(images, str | bytes):
        if len(images) == 0:
            return np.zeros((0, *shape), np.float32)
        batch = [_resized(x, k, spec, failures) for k, x in enumerate(images)]
        return np.ascontiguousarray(np.stack(batch).transpose(0, 3, 1, 2), dtype=np.float32)
    array = _as_array(images)
    if array.ndim == 3:
        return prepare([array], spec, failures)
    if array.ndim != 4:
        raise ValueError(f"cannot score an array of shape {array.shape}: see prepare()")
    if array.dtype == np.uint8:
        if array.shape[-1] != 3:
            raise ValueError(
                f"uint8 images must be RGB (N, H, W, 3), got shape {array.shape}; a float "
                "(N, 3, H, W) batch is taken as already preprocessed"
            )
        return prepare(list(array), spec, failures)
    if not np.issubdtype(array.dtype, np.floating) or array.shape[1:] != shape:
        raise ValueError(
            f"a non-uint8 array is taken as a preprocessed float batch of shape (N, *{shape}) "
            f"(RGB, values 0-255), got dtype {array.dtype} shape {array.shape}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _resized(item: Any, k: int, spec: Mapping[str, Any], failures: set[int] | None) -> np.ndarray:
    """One item decoded and resized; below `min_side`: a failure (blank) or a ValueError."""
    if isinstance(item, str | os.PathLike):
        try:
            image = read_image(item)
        except ImageReadError as err:  # a failure to acquire like any other, when counted
            if failures is None:
                raise
            failures.add(k)
            log.warning("item %d: %s (a failure to acquire)", k, err)
            return _blank(spec)
    else:
        image = _uint8_hwc(item)
    minimum = int(spec.get("min_side", 1))
    if min(image.shape[:2]) < max(minimum, 1):
        source = f"{item}" if isinstance(item, str | os.PathLike) else f"image {k}"
        message = (
            f"item {k} ({source}): image {image.shape[1]}x{image.shape[0]} is below the "
            f"bundle's minimum side of {minimum} pixels (a failure to acquire)"
        )
        if failures is None:
            raise InputError(message)
        failures.add(k)
        log.warning(message)
        return _blank(spec)
    return resize(image, spec)


def _blank(spec: Mapping[str, Any]) -> np.ndarray:
    size = spec["resize"]
    return np.zeros((int(size["height"]), int(size["width"]), 3), np.uint8)


def _uint8_hwc(image: Any) -> np.ndarray:
    array = _as_array(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InputError(
            f"expected an image path or an RGB uint8 image (H, W, 3), got dtype {array.dtype} "
            f"shape {array.shape}"
        )
    return array


def prepare_inputs(
    data: Any, preprocess: Mapping[str, Any], failures: set[int] | None = None
) -> dict[str, np.ndarray]:
    """The model's named inputs (preprocess.json `inputs`, one entry per input) from `data`:
    a mapping {input name: value}, or, for a model with one input, the value itself. Per
    input modality: `image` -> `prepare` (paths, RGB uint8 images or a preprocessed batch);
    `frames` -> one `prepare`d (T, 3, H, W) clip per item (a sequence of T images each);
    `vector` -> float32 (N, D) as given (capture metadata, in the spec's column order);
    `category` -> int64 (N,) indices of the spec's `values` (names or indices). Items below an
    image input's `min_side` go into `failures` (see `prepare`)."""
    specs = preprocess["inputs"]
    if not isinstance(data, Mapping):
        if len(specs) != 1:
            raise ValueError(
                f"this model takes inputs {list(specs)}: give a mapping {{name: value}}"
            )
        data = {next(iter(specs)): data}
    derived = {name for name, spec in specs.items() if spec["modality"] == "length"}
    missing = [name for name in specs if name not in data and name not in derived]
    if missing:
        raise ValueError(f"missing model input(s) {missing}; the model takes {list(specs)}")
    out = {
        name: prepare_input(data[name], spec, name, failures)
        for name, spec in specs.items()
        if spec["modality"] not in ("events", "length")
    }
    for name, spec in specs.items():  # sessions last: their features need the screen size
        if spec["modality"] == "events":
            sizes = session_screens(specs, spec, out[spec["screen"]["input"]])
            out[name], lengths = prepare_sessions(data[name], spec, sizes, name)
            for other, entry in specs.items():
                if entry["modality"] == "length" and entry["of"] == name:
                    out[other] = lengths
    out = {name: out[name] for name in specs}
    sizes = {name: len(v) for name, v in out.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs of different batch sizes: {sizes}")
    return out


def prepare_input(
    value: Any, spec: Mapping[str, Any], name: str, failures: set[int] | None = None
) -> np.ndarray:
    """One named input of one of the modalities above but sessions (`prepare_sessions`)."""
    modality = spec["modality"]
    if modality == "image":
        return prepare(value, spec, failures)
    if modality == "frames":
        clips = []
        for k, clip in enumerate(value):
            bad: set[int] | None = None if failures is None else set()
            clips.append(prepare(list(clip), spec, bad))
            if bad:
                failures.add(k)  # a clip with a frame too small is not acquired
        t = int(spec["frames"])
        bad = [k for k, c in enumerate(clips) if len(c) != t]
        if bad:
            have = len(clips[bad[0]])
            raise ValueError(f"input {name!r}: clip {bad[0]} has {have} frames, not {t}")
        return np.stack(clips) if clips else np.zeros((0, t, *spec["shape"][2:]), np.float32)
    if modality == "vector":
        records = [value] if isinstance(value, Mapping) else None
        if (
            records is None
            and isinstance(value, Sequence)
            and value
            and isinstance(value[0], Mapping)
        ):
            records = list(value)
        if records is not None:  # records by column name (a device report)
            return np.stack([
                device_vector(r, spec["columns"], f"input {name!r} item {k}")
                for k, r in enumerate(records)
            ])  # fmt: skip
        array = np.atleast_2d(_as_array(value)).astype(np.float32)
        width = len(spec["columns"])
        if array.ndim != 2 or array.shape[1] != width or not np.isfinite(array).all():
            raise ValueError(
                f"input {name!r}: expected finite float (N, {width}) values of {spec['columns']}, "
                f"got shape {array.shape}"
            )
        return array
    if modality == "category":
        return category_indices(value, spec, name)
    raise ValueError(f"input {name!r}: unknown modality {modality!r} in preprocess.json")


def session_screens(
    specs: Mapping[str, Any], events_spec: Mapping[str, Any], device: np.ndarray
) -> np.ndarray:
    """(N, 2) screen (width, height) of each session, from its prepared device vector (N, D)
    of the input the events spec's `screen` names."""
    screen = events_spec["screen"]
    columns = specs[screen["input"]]["columns"]
    return screen_of(device, columns, (screen["width"], screen["height"]))


def prepare_sessions(
    value: Any, spec: Mapping[str, Any], screens: np.ndarray, name: str = "events"
) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (N, L, F) zero-padded to the longest session, lengths int64 (N,)) of
    N sessions (`value`: one session or a sequence of them; a session is a mapping of
    `t`, `x`, `y`, `type` sequences, an `idv.sessions.events.Events`, or a list of event
    records), each on its (width, height) screen. Checked by `check_events` (an error names
    the session and the event); a session longer than the spec's `max_events` keeps its
    first events, and the truncation is logged with its count."""
    sessions = [value] if isinstance(value, Mapping | Events) else list(value)
    if len(sessions) != len(screens):
        raise ValueError(f"input {name!r}: {len(sessions)} sessions for {len(screens)} devices")
    limit = int(spec["max_events"])
    rows, cut = [], 0
    for k, session in enumerate(sessions):
        where = f"input {name!r} session {k}"
        if isinstance(session, Sequence) and not isinstance(session, str | bytes):
            checked = events_of_rows(session, where, max_events=limit)
        else:
            checked = check_events(session, where, limit)
        cut += checked.truncated > 0
        rows.append(event_features(checked, *screens[k]))
    if cut:
        log.warning("%s: %d of %d sessions longer than max_events=%d truncated to their first "
                    "events", name, cut, len(sessions), limit)  # fmt: skip
    longest = max((len(r) for r in rows), default=1)
    features = (
        np.stack([padded(r, longest) for r in rows])
        if rows
        else np.zeros((0, 1, len(spec["features"])), np.float32)
    )
    return features, np.asarray([len(r) for r in rows], dtype=np.int64)


def category_indices(value: Any, spec: Mapping[str, Any], name: str) -> np.ndarray:
    """int64 (N,) indices into the spec's `values` from names or indices (an active-liveness
    challenge: `turn_left` or its index)."""
    values = list(spec["values"])
    items = [value] if isinstance(value, str | int | np.integer) else list(value)
    out = []
    for k, item in enumerate(items):
        if isinstance(item, str):
            if item not in values:
                raise ValueError(f"input {name!r}: item {k} is {item!r}, not one of {values}")
            out.append(values.index(item))
        elif isinstance(item, int | np.integer) and 0 <= int(item) < len(values):
            out.append(int(item))
        else:
            raise ValueError(
                f"input {name!r}: item {k} is {item!r}; give one of {values} or its index"
            )
    return np.asarray(out, dtype=np.int64)
