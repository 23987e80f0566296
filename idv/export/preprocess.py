"""The bundle's `preprocess.json`: the model input, derived from the checkpoint's augment config.

The evaluation transform of training is `augment.eval` (today: one albumentations Resize)
followed by Normalize + ToTensorV2 (`idv.data.augment.pipeline.build_transforms`). Serving
repeats the decode and the resize; normalisation is inside the exported model. An eval step
that serving cannot repeat is an error here, not a silent mismatch later (and the parity gate
compares both paths on real files anyway).

What the model takes and gives depends on the task kind: detection models take the whole
capture and give P(attack); matching models take a face crop aligned onto the 5-point ArcFace
template (`idv.data.align.align_face`, done before the model, never by it) and give unit-norm
embeddings. The crop note defaults by kind; `crop_note` (idv-export's, or the task config's
`crop_note`) replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import albumentations as A
from albumentations.pytorch import ToTensorV2

from idv.data.augment.pipeline import build_transforms
from idv.export.formats import INPUT_NAME, OUTPUT_NAME
from idv.export.wrappers import MAX_PIXEL_VALUE
from idv.serving.preprocess import INTERPOLATIONS

SCHEMA_VERSION = 1
DEFAULT_CROP_NOTE = (
    "No detection, crop or alignment is done by the scorer: give the whole capture, framed as "
    "the training corpus frames it (for pad: a face image, the face roughly centred and filling "
    "most of the frame). It is resized to {height}x{width} without keeping the aspect ratio, "
    "exactly as in evaluation."
)
# The ArcFace template for 112x112 crops (idv.data.align.ARCFACE_TEMPLATE_112, insightface's
# arcface_dst), written into preprocess.json so that serving needs no training code.
ARCFACE_TEMPLATE_112 = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
ALIGNED_CROP_NOTE = (
    "The input must be a face crop aligned onto the 5-point ArcFace template, exactly as the "
    "training corpus was made (idv.data.align.align_face: the least-squares similarity "
    "transform - rotation, uniform scale, translation - from 5 landmarks (left eye, right eye, "
    "nose, left mouth corner, right mouth corner; 'left' = smaller x) onto the 112x112 "
    "template, scaled by size / 112 for a size x size crop; see `alignment`). The model does "
    "no detection or alignment: an unaligned or differently framed face changes the "
    "embeddings silently. The aligned crop is resized to {height}x{width} without keeping the "
    "aspect ratio, exactly as in evaluation."
)
DEFAULT_CROP_NOTES = {"detection": DEFAULT_CROP_NOTE, "matching": ALIGNED_CROP_NOTE}


def preprocess_spec(
    augment: Mapping[str, Any],
    crop_note: str | None = None,
    kind: str = "detection",
    embedding_dim: int | None = None,
) -> dict[str, Any]:
    """The JSON-safe preprocessing spec of a model of task kind `kind` trained with `augment`
    (`embedding_dim`: D of a matching model's (N, D) output)."""
    if kind not in DEFAULT_CROP_NOTES:
        raise NotImplementedError(f"no preprocessing spec for task kind {kind!r}")
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
    spec = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "shape": ["batch", 3, height, width],
            "dtype": "float32",
            "colour_order": "RGB",
            "value_range": [0, 255],
            "note": (
                "raw pixel values (uint8 converted to float32), NOT normalised: normalisation is "
                "inside the model. The TorchScript model also accepts uint8; ONNX takes float32."
            ),
        },
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
        "crop": (crop_note or DEFAULT_CROP_NOTES[kind]).format(height=height, width=width),
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch"],
            "dtype": "float32",
            "meaning": "P(attack) = sigmoid(logit); higher = more likely an attack",
        },
    }
    if kind == "matching":
        spec["alignment"] = {
            "required": True,
            "done_by_model": False,
            "function": "idv.data.align.align_face",
            "landmarks": ["left_eye", "right_eye", "nose", "left_mouth", "right_mouth"],
            "template_112": [list(p) for p in ARCFACE_TEMPLATE_112],
            "template_size": 112,
            "transform": "least-squares similarity (no reflection, no shear), template scaled "
            "by size / 112",
            "coordinates": "(x, y) pixels, pixel centres on integers (OpenCV)",
        }
        spec["output"] = {
            "name": OUTPUT_NAME,
            "shape": ["batch", int(embedding_dim) if embedding_dim else "dim"],
            "dtype": "float32",
            "meaning": "L2-normalised face embeddings; similarity of two faces = dot product "
            "(cosine), higher = more likely the same person",
        }
    return spec
