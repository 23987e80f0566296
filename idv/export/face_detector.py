"""MTCNN's three networks from facenet-pytorch's wheel, as bundle files with named outputs.

A face bundle detects and aligns photos itself (idv.faces: pyramid, NMS and alignment in
numpy): this module writes the networks it needs, each as a serving model in its own
directory (``detector/pnet/model.ts`` and ``model.onnx``, ...), through the same
`export_formats` as the main model (the P-net with dynamic height and width). The weights
are the ones inside the facenet-pytorch package (``facenet_pytorch/data/*.pt``): nothing is
downloaded. `check_detector_parity` then runs the served detector (every exported format)
against facenet-pytorch's own MTCNN on the given photos (held-out images and
`reference_photos`): the same faces, boxes and landmarks within a pixel tolerance, or a
ParityError.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from idv.data.face_detect import FaceDetector
from idv.export.formats import export_formats
from idv.export.parity import ParityError
from idv.faces.detection import Detection, DetectorSettings
from idv.faces.mtcnn import CROP_SIZES, STAGE_INPUT, STAGE_OUTPUTS, STAGES
from idv.serving.matching import DETECTOR_DIR, load_detector

log = logging.getLogger(__name__)


class StageNet(nn.Module):
    """One MTCNN network with named outputs: the face probability (softmax channel 1) and
    the box regression, as idv.faces.mtcnn reads them (the O-net adds `LandmarkStageNet`)."""

    input_names = (STAGE_INPUT,)

    def __init__(self, name: str, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()
        self.output_names = STAGE_OUTPUTS[name]
        # The P-net is fully convolutional: height and width are dynamic too.
        self.dynamic_dims = {STAGE_INPUT: {2: "height", 3: "width"}} if name == "pnet" else {}

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        regression, softmax = self.net(image)
        return {"regression": regression, "probability": softmax[:, 1]}


class LandmarkStageNet(StageNet):
    """The O-net: regression, the 5 landmarks (x1..x5, y1..y5 relative to the box), probability."""

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        regression, landmarks, softmax = self.net(image)
        return {"regression": regression, "landmarks": landmarks, "probability": softmax[:, 1]}


def facenet_stages() -> dict[str, StageNet]:
    """facenet-pytorch's pretrained P-, R- and O-net (weights from its wheel), wrapped."""
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    nets = {"pnet": PNet, "rnet": RNet, "onet": ONet}
    return {
        name: (LandmarkStageNet if name == "onet" else StageNet)(name, nets[name]())
        for name in STAGES
    }


def eager_stage(net: nn.Module):
    """A torch stage callable (numpy in, numpy out), as a serving backend is."""

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = net(torch.from_numpy(np.ascontiguousarray(inputs[STAGE_INPUT])))
        return {k: v.numpy() for k, v in out.items()}

    return run


def _example(name: str) -> dict[str, torch.Tensor]:
    side = 31 if name == "pnet" else CROP_SIZES[name]  # an odd P-net size: ceil-mode pooling
    generator = torch.Generator().manual_seed(0)
    return {STAGE_INPUT: torch.rand(2, 3, side, side + 6 * (name == "pnet"), generator=generator)}


def export_detector(out_dir: str | Path, formats: Sequence[str]) -> dict[str, dict[str, str]]:
    """Write the three networks under ``out_dir/detector/<stage>/`` in every format;
    returns {stage: {format: file relative to out_dir}}."""
    written: dict[str, dict[str, str]] = {}
    for name, net in facenet_stages().items():
        target = Path(out_dir) / DETECTOR_DIR / name
        exported = export_formats(net, _example(name), target, formats)
        written[name] = {
            fmt: (target / e.path.name).relative_to(out_dir).as_posix()
            for fmt, e in exported.items()
        }
    return written


def reference_photos() -> list[np.ndarray]:
    """Real photos every detector parity gate runs on, beside the held-out images (a face
    corpus of crops may hold few faces MTCNN sees as photos): scikit-image's astronaut (one
    face), cameraman (one, grey), coffee (none) and two astronauts side by side (two). They
    ship inside scikit-image's wheel: nothing is downloaded."""
    from skimage import data

    astronaut = data.astronaut()
    return [
        astronaut,
        np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1)),
        data.coffee(),
        np.ascontiguousarray(np.concatenate([astronaut[:300, 100:350]] * 2, axis=1)),
    ]


def compare_detections(
    served: Sequence[Detection], reference: Sequence[Detection]
) -> dict[str, Any]:
    """Faces found by each, and the largest box / landmark difference (pixels) when the
    same number of faces was found (both lists are largest first)."""
    row: dict[str, Any] = {"served": len(served), "reference": len(reference)}
    if len(served) == len(reference) and served:
        row["box_px"] = float(
            max(np.abs(a.box - b.box).max() for a, b in zip(served, reference, strict=True))
        )
        row["landmark_px"] = float(
            max(
                np.abs(a.landmarks - b.landmarks).max()
                for a, b in zip(served, reference, strict=True)
            )
        )
    return row


def check_detector_parity(
    bundle_dir: str | Path,
    images: Sequence[np.ndarray],
    settings: DetectorSettings,
    backends: Sequence[str],
    tolerance_px: float,
) -> dict[str, Any]:
    """The served detector on every backend against facenet-pytorch's MTCNN on `images`:
    {backend: {images, faces, max_box_px, max_landmark_px}}; a ParityError when an image's
    faces differ in number or any coordinate is off by more than `tolerance_px`."""
    reference_detector = FaceDetector(**settings.to_dict())
    reference = [reference_detector.detect(image) for image in images]
    figures: dict[str, Any] = {}
    for backend in backends:
        detector = load_detector(bundle_dir, backend, settings)
        rows = [
            compare_detections(detector.detect(im), ref)
            for im, ref in zip(images, reference, strict=True)
        ]
        bad = [
            (k, r) for k, r in enumerate(rows)
            if r["served"] != r["reference"]
            or max(r.get("box_px", 0.0), r.get("landmark_px", 0.0)) > tolerance_px
        ]  # fmt: skip
        if bad:
            raise ParityError(
                f"face detector on {backend}: {len(bad)} of {len(images)} parity images "
                f"differ from facenet-pytorch's MTCNN (tolerance {tolerance_px} px); first: "
                f"image {bad[0][0]} {bad[0][1]}"
            )
        figures[backend] = {
            "images": len(images),
            "faces": int(sum(r["reference"] for r in rows)),
            "max_box_px": max((r.get("box_px", 0.0) for r in rows), default=0.0),
            "max_landmark_px": max((r.get("landmark_px", 0.0) for r in rows), default=0.0),
            "tolerance_px": tolerance_px,
        }
    return figures
