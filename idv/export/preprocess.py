"""The bundle's `preprocess.json`: the model's signature, one entry per named input and output.

An image input's entry is derived from the checkpoint's augment config: the evaluation
transform of training is `augment.eval` (one albumentations Resize) followed by Normalize +
ToTensorV2 (`idv.data.augment.pipeline.build_transforms`); serving repeats the decode and the
resize, normalisation is inside the exported model. An eval step that serving cannot repeat is
an error here, not a silent mismatch later (and the parity gate compares both paths on real
files anyway). A clip input (`frames`) is T such images; a `metadata` input is a float vector of
named manifest columns. How the capture must be framed (the whole capture, or a face crop
aligned onto a template) is the task config's `crop_note` (and `alignment`); what each output
holds comes from the wrapper (`meanings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
from albumentations.pytorch import ToTensorV2

from idv.data.augment.pipeline import build_transforms
from idv.export.wrappers import MAX_PIXEL_VALUE, ServingWrapper
from idv.faces.align import ARCFACE_TEMPLATE_112
from idv.serving.bundle import PREPROCESS_VERSION
from idv.serving.preprocess import INTERPOLATIONS

TEMPLATES = {"arcface_112": ARCFACE_TEMPLATE_112}


def image_spec(augment: Mapping[str, Any], crop_note: str, min_side: int = 1) -> dict[str, Any]:
    """The entry of one image input (modality `image`); an image shorter than `min_side`
    pixels is a failure to acquire in serving."""
    pipeline = build_transforms(augment, "eval")
    steps = list(pipeline.transforms)
    resize = [t for t in steps if isinstance(t, A.Resize)]
    others = [
        type(t).__name__ for t in steps if not isinstance(t, A.Resize | A.Normalize | ToTensorV2)
    ]
    if others or len(resize) != 1:
        raise NotImplementedError(
            "serving repeats an eval transform of exactly one albumentations Resize (then "
            f"Normalize); this augment config's eval steps are {[type(t).__name__ for t in steps]}"
        )
    r = resize[0]
    names = {flag: name for name, flag in INTERPOLATIONS.items()}
    if int(r.interpolation) not in names:
        raise NotImplementedError(f"Resize interpolation flag {r.interpolation} is not supported")
    norm = augment["normalize"]
    height, width = int(r.height), int(r.width)
    return {
        "modality": "image",
        "layout": "NCHW",
        "shape": ["batch", 3, height, width],
        "dtype": "float32",
        "colour_order": "RGB",
        "value_range": [0, 255],
        "note": (
            "raw pixel values (uint8 converted to float32), NOT normalised: normalisation is "
            "inside the model. The TorchScript model also accepts uint8; ONNX takes float32."
        ),
        "decode": {
            "library": "Pillow",
            "exif_transpose": True,
            "mode": "RGB",
            "dtype": "uint8",
            "note": "the full image decoded, EXIF orientation applied, converted to RGB",
        },
        "resize": {
            "height": height,
            "width": width,
            "interpolation": names[int(r.interpolation)],
            "opencv_flag": int(r.interpolation),
            "area_for_downscale": r.area_for_downscale,
            "library": "opencv (cv2.resize on the uint8 HWC image, as albumentations.Resize)",
            "keep_aspect_ratio": False,
            "skip_if_same_size": True,
        },
        "normalize": {
            "mean": [float(m) for m in norm["mean"]],
            "std": [float(s) for s in norm["std"]],
            "max_pixel_value": MAX_PIXEL_VALUE,
            "formula": "(pixel - mean * max_pixel_value) / (std * max_pixel_value), per channel",
            "inside_model": True,
        },
        "crop": crop_note.format(height=height, width=width),
        "min_side": int(min_side),
    }


def alignment_spec(alignment: Mapping[str, Any]) -> dict[str, Any]:
    """What serving must do before the model: align the face onto a template (the model
    never does it), written out so that serving needs no training code."""
    template = TEMPLATES[alignment["template"]]
    return {
        "required": True,
        "done_by_model": False,
        "function": "idv.faces.align.align_face",
        "landmarks": ["left_eye", "right_eye", "nose", "left_mouth", "right_mouth"],
        "template": alignment["template"],
        "template_112": [[float(v) for v in p] for p in template],
        "template_size": 112,
        "transform": "least-squares similarity (no reflection, no shear), template scaled "
        "by size / 112",
        "coordinates": "(x, y) pixels, pixel centres on integers (OpenCV)",
    }


def input_spec(
    name: str,
    augment: Mapping[str, Any],
    task: Mapping[str, Any],
    data: Mapping[str, Any],
    min_side: int = 1,
) -> dict[str, Any]:
    """The entry of a named input: its modality from the dataset's input name; `min_side`:
    the shortest image side serving accepts (export.yaml's `min_image_side`)."""
    crop_note = task.get("crop_note") or "{height}x{width} input, resized as in evaluation."
    dataset = data.get("dataset") or {}
    if name == "image":
        spec = image_spec(augment, crop_note, min_side)
        if task.get("alignment"):
            spec["alignment"] = alignment_spec(task["alignment"])
        return spec
    if name == "frames":
        frames = int(dataset.get("frames", 8))
        spec = image_spec(augment, crop_note, min_side)
        spec.update(modality="frames", frames=frames, layout="NTCHW")
        spec["shape"] = ["batch", frames, *spec["shape"][1:]]
        return spec
    if name == "metadata":
        columns = list(dataset.get("metadata") or [])
        return {"modality": "vector", "shape": ["batch", len(columns)], "dtype": "float32",
                "columns": columns}  # fmt: skip
    if name == "events":
        from idv.sessions.events import EVENT_COLUMNS, EVENT_TYPES
        from idv.sessions.features import FEATURES, SCREEN_COLUMNS

        max_events = int(dataset.get("max_events", 256))
        return {
            "modality": "events", "shape": ["batch", "events", len(FEATURES)],
            "dtype": "float32", "features": list(FEATURES), "max_events": max_events,
            "columns": list(EVENT_COLUMNS), "types": list(EVENT_TYPES),
            "function": "idv.sessions.features.event_features",
            "screen": {"input": "device", "width": SCREEN_COLUMNS[0], "height": SCREEN_COLUMNS[1]},
            "note": crop_note,
        }  # fmt: skip
    if name == "length":
        note = "the real events of each session (the rest of `events` is padding)"
        return {"modality": "length", "of": "events", "shape": ["batch"], "dtype": "int64",
                "note": note}  # fmt: skip
    if name == "device":
        columns = list(dataset.get("device") or [])
        return {"modality": "vector", "shape": ["batch", len(columns)], "dtype": "float32",
                "columns": columns, "note": "the session's device record, raw values"}  # fmt: skip
    if name == "challenge":
        values = [str(v) for v in dataset.get("challenges") or task.get("challenges") or []]
        return {"modality": "category", "shape": ["batch"], "dtype": "int64", "values": values,
                "note": "the active-liveness challenge the user was asked to perform"}  # fmt: skip
    raise NotImplementedError(f"no serving preprocessing for an input named {name!r}")


def preprocess_spec(
    wrapper: ServingWrapper,
    run_config: Mapping[str, Any],
    augment: Mapping[str, Any],
    output_shapes: Mapping[str, Sequence[Any]],
    min_side: int = 1,
) -> dict[str, Any]:
    """The JSON-safe signature of an exported wrapper trained with `augment`;
    `output_shapes`: each output's shape after the batch axis (from an example run)."""
    task = run_config.get("task") or {}
    data = run_config.get("data") or {}
    return {
        "schema_version": PREPROCESS_VERSION,
        "kind": task.get("kind"),
        "inputs": {n: input_spec(n, augment, task, data, min_side) for n in wrapper.input_names},
        # The model's positional order (JSON objects are written with sorted keys).
        "input_order": list(wrapper.input_names),
        "outputs": {
            n: {
                "shape": ["batch", *[int(d) for d in output_shapes[n]]],
                "dtype": "float32",
                "meaning": wrapper.meaning(n),
            }
            for n in wrapper.output_names
        },
        "primary_output": wrapper.primary,
    }


def decision_extras(task: Mapping[str, Any], shapes: Mapping[str, Sequence[Any]]) -> dict:
    """preprocess.json entries beyond the network: `rules` (checks the bundle runs on the
    capture itself and fuses into `score`: the task's `rules`, a module of idv and its
    options) and `localisation` (the pixel output `localise` serves, and its threshold)."""
    out: dict[str, Any] = {}
    rules = dict(task.get("rules") or {})
    if rules:
        out["rules"] = {"module": str(rules.pop("module")), "options": rules, "input": "image"}
    module = task.get("module") or {}
    for name, target in (module.get("outputs") or {}).items():
        if target.get("target") != "label" and len(shapes.get(name, ())) >= 2:
            threshold = float(module.get("localisation_threshold", 0.5))
            out["localisation"] = {"output": name, "threshold": threshold}
            break
    return out
