"""MTCNN (Zhang et al., 2016) in numpy around its three networks, as facenet-pytorch runs it.

The networks (P-, R-, O-net) are given as *stages*: callables from {"image": float32 batch} to
named float32 outputs, which is what a serving backend is (idv.serving.backends), so a face
bundle detects on ONNX Runtime without torch. Everything else is here, step for step as
facenet-pytorch 2.5.3's ``detect_face`` (so its MTCNN is the parity reference, tests within
1 px): the image pyramid (scales 12 / min_face_size * factor^k), area resampling (torch's
``interpolate(mode="area")``, i.e. adaptive average pooling, computed exactly from one
integral image), candidate boxes from the P-net map, NMS per scale (IoU 0.5) and over all
scales (0.7), box regression, squaring, R-net refinement (NMS 0.7), O-net with landmarks, and
a last NMS on the smaller box's area ("Min", 0.7). Arithmetic is float32 where facenet's is.

Stage outputs (named as idv.export.face_detector writes them):
- pnet: ``regression`` (N, 4, h, w), ``probability`` (N, h, w) of a face per 12x12 cell;
- rnet: ``regression`` (N, 4), ``probability`` (N,) on 24x24 crops;
- onet: ``regression`` (N, 4), ``landmarks`` (N, 10) (5 x, then 5 y, relative to the box),
  ``probability`` (N,) on 48x48 crops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from idv.faces.detection import Detection, DetectorSettings, check_rgb, frozen

Stage = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
STAGES = ("pnet", "rnet", "onet")
STAGE_INPUT = "image"
STAGE_OUTPUTS = {
    "pnet": ("regression", "probability"),
    "rnet": ("regression", "probability"),
    "onet": ("regression", "landmarks", "probability"),
}
CROP_SIZES = {"rnet": 24, "onet": 48}
STAGE_BATCH = 512  # facenet's fixed_batch_process: crops per network call
_CELL, _STRIDE = 12, 2  # P-net's receptive field and output stride, pixels


class IntegralImage:
    """Box means of an RGB image over any rectangles, from one float64 summed-area table.

    ``resample(y0, y1, x0, x1, oh, ow)`` is torch's ``interpolate(mode="area")`` (adaptive
    average pooling) of the region rows y0..y1-1, columns x0..x1-1 to (oh, ow): output cell
    i covers rows floor(i * H / oh) .. ceil((i + 1) * H / oh) - 1, and likewise for columns.
    """

    def __init__(self, image: np.ndarray) -> None:
        table = np.zeros((image.shape[0] + 1, image.shape[1] + 1, 3), np.float64)
        np.cumsum(np.cumsum(image, axis=0, dtype=np.float64), axis=1, out=table[1:, 1:])
        self.table = table

    def resample(self, y0: int, y1: int, x0: int, x1: int, oh: int, ow: int) -> np.ndarray:
        """(oh, ow, 3) float32 means (see the class docstring)."""
        rs, re = _pool_edges(np.array([y0]), np.array([y1]), oh)
        cs, ce = _pool_edges(np.array([x0]), np.array([x1]), ow)
        return self._means(rs[0], re[0], cs[0], ce[0])

    def resample_regions(self, bounds: np.ndarray, size: int) -> np.ndarray:
        """(K, size, size, 3) float32: each region (K, 4) y0, y1, x0, x1 resampled to size x
        size, all at once (R- and O-net crops)."""
        bounds = np.asarray(bounds, dtype=np.int64)
        rs, re = _pool_edges(bounds[:, 0], bounds[:, 1], size)
        cs, ce = _pool_edges(bounds[:, 2], bounds[:, 3], size)
        return self._means(rs[:, :, None], re[:, :, None], cs[:, None, :], ce[:, None, :])

    def _means(self, rs, re, cs, ce) -> np.ndarray:
        """Box means over rows [rs, re) x columns [cs, ce), broadcast (outer when 1-D)."""
        t = self.table
        if rs.ndim == 1:  # a whole grid: whole rows first (contiguous copies), then columns
            rows = t[re] - t[rs]
            total = rows[:, ce] - rows[:, cs]
            count = np.outer(re - rs, ce - cs)[..., None]
        else:
            total = t[re, ce] - t[rs, ce] - t[re, cs] + t[rs, cs]
            count = ((re - rs) * (ce - cs))[..., None]
        return (total / count).astype(np.float32)


def _pool_edges(start: np.ndarray, stop: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive pooling's [start, end) per region and output index, (K, out) each (torch's
    start_index / end_index), offset by each region's start."""
    i = np.arange(out, dtype=np.int64)[None, :]
    size = (stop - start)[:, None]
    return start[:, None] + (i * size) // out, start[:, None] + ((i + 1) * size + out - 1) // out


def normalise(pixels: np.ndarray) -> np.ndarray:
    """MTCNN's input scaling, (x - 127.5) / 128, as an NCHW float32 batch from NHWC."""
    return np.ascontiguousarray(
        ((pixels - np.float32(127.5)) * np.float32(0.0078125)).transpose(0, 3, 1, 2)
    )


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """torchvision.ops.nms: indices kept, by decreasing score; a box is dropped when its IoU
    (areas (x2 - x1) * (y2 - y1)) with a kept one is above `threshold`."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        order = rest[inter / (area[i] + area[rest] - inter) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet's ``nms_numpy(..., "Min")``: overlap over the smaller (+1 pixel) area."""
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    keep = []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        order = rest[(w * h) / np.minimum(area[i], area[rest]) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """facenet's ``rerec``: each box grown to a square on its longer side, same centre."""
    out = boxes.copy()
    h, w = out[:, 3] - out[:, 1], out[:, 2] - out[:, 0]
    side = np.maximum(w, h)
    out[:, 0] = out[:, 0] + w * np.float32(0.5) - side * np.float32(0.5)
    out[:, 1] = out[:, 1] + h * np.float32(0.5) - side * np.float32(0.5)
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """facenet's ``bbreg``: corners moved by offsets in units of the (+1 pixel) box size."""
    out = boxes.copy()
    w = out[:, 2] - out[:, 0] + 1
    h = out[:, 3] - out[:, 1] + 1
    out[:, :4] = out[:, :4] + offsets[:, :4] * np.stack([w, h, w, h], axis=1)
    return out


def crop_bounds(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """facenet's ``pad``: boxes truncated to int, clipped to the image; (K, 4) y, ey, x, ex
    such that the crop is rows y - 1 .. ey - 1 and columns x - 1 .. ex - 1."""
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], width), np.minimum(b[:, 3], height)
    return np.stack([y, ey, x, ex], axis=1)


def pyramid(height: int, width: int, settings: DetectorSettings) -> list[float]:
    """The P-net scales: 12 / min_face_size, times factor while the short side stays >= 12."""
    scale = 12.0 / settings.min_face_size
    short = min(height, width) * scale
    scales = []
    while short >= 12:
        scales.append(scale)
        scale *= settings.factor
        short *= settings.factor
    return scales


class MTCNN:
    """MTCNN over three stages (see the module docstring); ``detect`` -> faces, largest first."""

    def __init__(self, stages: Mapping[str, Stage], settings: DetectorSettings | None = None):
        missing = [s for s in STAGES if s not in stages]
        if missing:
            raise ValueError(f"MTCNN needs the stages {list(STAGES)}; missing {missing}")
        self.stages = dict(stages)
        self.settings = settings or DetectorSettings()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces with probability >= settings.min_probability in one (H, W, 3) uint8 RGB
        image, largest box first (facenet's ``select_largest``); [] when none."""
        image = check_rgb(image)
        if not self.settings.fits(image.shape):
            return []
        boxes, points = self.candidates(image)
        order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
        return [
            Detection(box=frozen(boxes[i, :4]), probability=float(boxes[i, 4]),
                      landmarks=frozen(points[i]))
            for i in order
            if float(boxes[i, 4]) >= self.settings.min_probability
        ]  # fmt: skip

    def candidates(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every O-net survivor: boxes (K, 5) x1, y1, x2, y2, probability and landmarks
        (K, 5, 2), in NMS order (facenet's ``detect_face`` output for one image)."""
        height, width = image.shape[:2]
        thresholds = self.settings.thresholds
        integral = IntegralImage(image)
        boxes = self._proposals(integral, height, width, thresholds[0])
        empty = np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        if not len(boxes):
            return empty
        # R-net: refine.
        boxes, out = self._refine("rnet", integral, boxes, width, height, thresholds[1])
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = square(regress(boxes[pick], out["regression"][pick]))
        # O-net: final boxes and landmarks.
        boxes, out = self._refine("onet", integral, boxes, width, height, thresholds[2])
        if not len(boxes):
            return empty
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        xs = w[:, None] * out["landmarks"][:, :5] + boxes[:, 0:1] - 1
        ys = h[:, None] * out["landmarks"][:, 5:] + boxes[:, 1:2] - 1
        points = np.stack([xs, ys], axis=2).astype(np.float32)
        boxes = regress(boxes, out["regression"])
        pick = nms_min(boxes[:, :4], boxes[:, 4], 0.7)
        return boxes[pick].astype(np.float32), points[pick]

    def _refine(
        self,
        stage: str,
        integral: IntegralImage,
        boxes: np.ndarray,
        width: int,
        height: int,
        threshold: float,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One refinement stage (R- or O-net) on the boxes' crops: the boxes it scores above
        `threshold`, with its probability, and its outputs for them."""
        boxes, crops = self._crops(integral, boxes, width, height, CROP_SIZES[stage])
        if not len(boxes):
            empty = {n: np.zeros((0, 10), np.float32) for n in STAGE_OUTPUTS[stage]}
            return np.zeros((0, 5), np.float32), empty
        out = self._run(stage, crops)
        keep = out["probability"] > threshold
        boxes = np.concatenate([boxes[keep, :4], out["probability"][keep, None]], axis=1)
        return boxes, {name: values[keep] for name, values in out.items()}

    def _proposals(
        self, integral: IntegralImage, height: int, width: int, threshold: float
    ) -> np.ndarray:
        """P-net over the pyramid: squared, regressed candidate boxes (K, 5)."""
        per_scale = []
        for scale in pyramid(height, width, self.settings):
            oh, ow = int(height * scale + 1), int(width * scale + 1)
            pixels = integral.resample(0, height, 0, width, oh, ow)
            out = self._run("pnet", pixels[None])
            prob, reg = out["probability"][0], out["regression"][0]
            ys, xs = np.nonzero(prob >= threshold)
            if not len(ys):
                continue
            cell = np.stack([xs, ys], axis=1).astype(np.float32)
            s = np.float32(scale)
            q1 = np.floor((_STRIDE * cell + 1) / s)
            q2 = np.floor((_STRIDE * cell + _CELL) / s)
            found = np.concatenate(
                [q1, q2, prob[ys, xs][:, None], reg[:, ys, xs].T], axis=1
            ).astype(np.float32)
            per_scale.append(found[nms(found[:, :4], found[:, 4], 0.5)])
        if not per_scale:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(per_scale)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        moved = np.stack(
            [
                boxes[:, 0] + boxes[:, 5] * w,
                boxes[:, 1] + boxes[:, 6] * h,
                boxes[:, 2] + boxes[:, 7] * w,
                boxes[:, 3] + boxes[:, 8] * h,
                boxes[:, 4],
            ],
            axis=1,
        )
        return square(moved)

    def _crops(
        self, integral: IntegralImage, boxes: np.ndarray, width: int, height: int, size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The boxes with a non-empty crop, and their crops resampled to size x size."""
        bounds = crop_bounds(boxes, width, height)
        valid = (bounds[:, 1] > bounds[:, 0] - 1) & (bounds[:, 3] > bounds[:, 2] - 1)
        if not valid.any():
            return boxes[:0], np.zeros((0, size, size, 3), np.float32)
        y, ey, x, ex = bounds[valid].T
        regions = np.stack([y - 1, ey, x - 1, ex], axis=1)
        return boxes[valid], integral.resample_regions(regions, size)

    def _run(self, stage: str, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """One network on an NHWC float32 0-255 batch (normalised here), in batches of 512."""
        batch = normalise(pixels)
        parts = [
            self.stages[stage]({STAGE_INPUT: batch[i : i + STAGE_BATCH]})
            for i in range(0, len(batch), STAGE_BATCH)
        ]
        return {
            name: np.concatenate([np.asarray(p[name], np.float32) for p in parts])
            for name in STAGE_OUTPUTS[stage]
        }
