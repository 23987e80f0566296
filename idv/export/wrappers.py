"""Inference wrappers: what gets exported, one per kind of output (the kinds name them:
`idv.kinds` part `wrapper`).

A wrapper is a plain nn.Module around the trained network with the input convention of
serving built in: named raw inputs in (an `image`: float32 (N, 3, H, W) RGB pixel values in
[0, 255]; the TorchScript model also takes uint8), normalisation inside, named outputs out as a
dict, made by the very module the task's `predict_step` uses (`idv.models.outputs`), so the
exported model and idv-evaluate turn logits into scores the same way. No metrics, trainer or
Lightning: it scripts and traces as the network does. `input_names` / `output_names` are the
signature every format carries; `primary` names the output decisions are made on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from idv.models.outputs import DetectionScores, UnitEmbeddings

MAX_PIXEL_VALUE = 255.0


class ServingWrapper(nn.Module):
    """The shared part: the network behind albumentations' Normalize of raw 0-255 RGB (done
    inside the exported model), `head` (raw outputs -> the task's outputs, the module
    `predict_step` uses), and the signature (`input_names`, `output_names`, `primary`,
    `meanings`: what each output holds, for preprocess.json and the model card). Subclasses
    set `self.head` (no class-level annotation: TorchScript cannot script an `nn.Module` one)."""

    input_names: list[str] = ["image"]
    meanings: dict[str, str] = {}

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        output_names: Sequence[str],
        primary: str,
        max_pixel_value: float = MAX_PIXEL_VALUE,
    ) -> None:
        super().__init__()
        if primary not in output_names:
            raise ValueError(f"primary output {primary!r} is not among {list(output_names)}")
        self.net = net.eval()
        self.output_names = list(output_names)
        self.primary = primary
        if mean is not None and std is not None:  # an image model (a session model has none)
            offset, scale = _normalisation(mean, std, max_pixel_value)
            self.register_buffer("offset", offset)
            self.register_buffer("scale", scale)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images.to(torch.float32) - self.offset) * self.scale

    def meaning(self, name: str) -> str:
        return self.meanings.get(name, self.meanings.get("*", name))


class DetectionScorer(ServingWrapper):
    """Named probabilities of a batch of RGB images (detection kinds: pad, liveness, ...).

    Output: float32 (N,) per scalar output, sigmoid(logit), higher = more likely attack;
    a pixel-level auxiliary output keeps its shape. A network with one output returns one
    tensor; with several, a dict of them (`MultiOutputScorer`)."""

    meanings = {"*": "sigmoid(logit): a probability; higher = more likely an attack"}
    normalises = True  # image inputs: albumentations' Normalize inside the model

    def __init__(
        self, *args: Any, fused: Mapping[str, Mapping[str, Any]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.head = DetectionScores(fused)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(self.normalise(image))
        return self.head({self.output_names[0]: logits})

    @classmethod
    def from_run_config(cls, net: nn.Module, run_config: Mapping[str, Any]) -> ServingWrapper:
        """The scorer of the run's network inputs (`task.module.inputs`): images, images with
        capture metadata, or clips with their asked challenge; its outputs: the network's,
        then the fused ones."""
        module = (run_config.get("task") or {}).get("module") or {}
        names = list(module.get("outputs") or ["score"])
        fused = dict(module.get("fused") or {})
        inputs = tuple(module.get("inputs") or ("image",))
        if inputs == ("frames", "challenge"):
            kind: type[DetectionScorer] = ClipScorer
        elif inputs == ("image", "metadata"):
            kind = ImageMetadataScorer
        elif inputs == ("image",):
            kind = cls if len(names) == 1 else MultiOutputScorer
        elif inputs == tuple(SessionScorer.input_names):
            kind = SessionScorer
        else:
            raise NotImplementedError(f"no detection scorer takes the inputs {list(inputs)}")
        norm = normalize_of(run_config) if kind.normalises else None
        wrapper = kind(
            net, norm and norm["mean"], norm and norm["std"], [*names, *fused],
            module.get("primary", "score"), fused=fused,
        )  # fmt: skip
        return wrapper.eval()


class MultiOutputScorer(DetectionScorer):
    """A detector whose network returns a dict of logits (a score and a tamper mask, ...)."""

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        logits: dict[str, torch.Tensor] = self.net(self.normalise(image))
        return self.head(logits)


class ImageMetadataScorer(DetectionScorer):
    """An image with its capture metadata (deepfake / injection): `image` float32 (N, 3, H, W)
    RGB 0-255 and `metadata` float32 (N, D) (preprocess.json `inputs.metadata.columns`
    order, raw values: the network standardises them) in; the one probability out."""

    input_names = ["image", "metadata"]

    def forward(self, image: torch.Tensor, metadata: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.net(self.normalise(image), metadata.to(torch.float32))
        return self.head({self.output_names[0]: logits})


class ClipScorer(DetectionScorer):
    """A clip detector with an active challenge (liveness): `frames` float32 (N, T, 3, H, W)
    RGB 0-255 and `challenge` int64 (N,) (the asked prompt's index in preprocess.json's
    `values`) in; the network's probabilities and the fused session score out."""

    input_names = ["frames", "challenge"]
    meanings = {
        "attack": "sigmoid(logit): probability the clip is a presentation attack",
        "noncompliance": "sigmoid(logit): probability the asked challenge was not performed",
        "performed": "sigmoid(logit) per challenge (preprocess.json `inputs.challenge.values` "
        "order): probability the clip performs it, whatever was asked",
        "*": "fused session risk (the calibrated score): higher = more likely an attack",
    }

    def forward(self, frames: torch.Tensor, challenge: torch.Tensor) -> dict[str, torch.Tensor]:
        logits: dict[str, torch.Tensor] = self.net(self.normalise(frames), challenge)
        return self.head(logits)


class SessionScorer(DetectionScorer):
    """A capture-session detector (behaviour): `events` float32 (N, L, F) per-event features
    (`idv.sessions.features`, preprocess.json `inputs.events.features`), zero-padded after
    `length` int64 (N,), and `device` float32 (N, D) raw device values (preprocess.json
    `inputs.device.columns`) in; P(bot) out. L is dynamic: one session is scored unpadded."""

    input_names = ["events", "length", "device"]
    dynamic_dims = {"events": {1: "events"}}
    normalises = False
    # torch 2.14's dynamo exporter unrolls the GRU over the example's events while tracing
    # (46.7 s at 256 events, 10.5 s at 40); the TorchScript-based one writes one ONNX GRU op
    # with a dynamic events axis in 0.05-0.7 s. The parity gate checks the result either way.
    onnx_dynamo = False
    meanings = {"*": "sigmoid(logit): probability the session is automated (a bot); higher = "
                "more likely a bot"}  # fmt: skip

    def forward(
        self, events: torch.Tensor, length: torch.Tensor, device: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        logits = self.net(events.to(torch.float32), length, device.to(torch.float32))
        return self.head({self.output_names[0]: logits})


class SessionStepScorer(nn.Module):
    """One event of a session on the streaming state (`SessionClassifier.step`): exported
    beside the whole-session model (bundle `stream/`). `state` is batch-first (N, layers,
    hidden) so that every input's axis 0 is the batch; outputs `score` (P(bot) after this
    event) and the `next_*` state to feed with the next event."""

    input_names = ["event", "state", "total", "peak", "count", "device"]
    output_names = ["score", "next_state", "next_total", "next_peak", "next_count"]
    onnx_dynamo = False  # as SessionScorer

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()

    def forward(
        self,
        event: torch.Tensor,
        state: torch.Tensor,
        total: torch.Tensor,
        peak: torch.Tensor,
        count: torch.Tensor,
        device: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        logit, state, total, peak, count = self.net.step(
            event, state.transpose(0, 1).contiguous(), total, peak, count, device
        )
        return {
            "score": torch.sigmoid(logit.to(torch.float32)),
            "next_state": state.transpose(0, 1).contiguous(),
            "next_total": total,
            "next_peak": peak,
            "next_count": count,
        }

    def example(self, n: int = 2) -> dict[str, torch.Tensor]:
        start = self.net.initial_state(n)
        return {
            "event": torch.zeros(n, self.net.features),
            "state": start["state"].transpose(0, 1).contiguous(),
            "total": start["total"], "peak": start["peak"], "count": start["count"],
            "device": torch.zeros(n, self.net.device_features),
        }  # fmt: skip


class EmbeddingScorer(ServingWrapper):
    """Unit-norm embeddings of a batch of aligned face crops (matching kinds: face_match).

    Output `embedding`: float32 (N, D) L2-normalised; the similarity of two faces is the dot
    product of their embeddings (cosine). The network (FaceEmbedder) already normalises; the
    wrapper normalises again in float32 so that any embedder keeps the unit-norm contract."""

    meanings = {
        "embedding": "L2-normalised face embeddings; similarity of two faces = dot product "
        "(cosine), higher = more likely the same person"
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head = UnitEmbeddings()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head({self.output_names[0]: self.net(self.normalise(image))})

    @classmethod
    def from_run_config(cls, net: nn.Module, run_config: Mapping[str, Any]) -> ServingWrapper:
        norm = normalize_of(run_config)
        return cls(net, norm["mean"], norm["std"], ["embedding"], "embedding").eval()


def _normalisation(
    mean: Sequence[float], std: Sequence[float], max_pixel_value: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(offset, scale) buffers (1, 3, 1, 1): x_norm = (x - offset) * scale, as albumentations
    (computed in float64, then rounded once, as albumentations builds its lookup table)."""
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got {list(mean)}, {list(std)}")
    mean64 = torch.tensor([float(m) for m in mean], dtype=torch.float64) * max_pixel_value
    std64 = torch.tensor([float(s) for s in std], dtype=torch.float64) * max_pixel_value
    return mean64.to(torch.float32).view(1, 3, 1, 1), (1.0 / std64).to(torch.float32).view(
        1, 3, 1, 1
    )


def augment_of(run_config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The augment config the model was trained with (the one idv-evaluate uses too)."""
    augment = run_config.get("augment") or (run_config.get("data") or {}).get("augment")
    if augment is None:
        raise ValueError("the run config carries no augment config")
    return augment


def normalize_of(run_config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `normalize` statistics an image model was trained with."""
    norm = augment_of(run_config).get("normalize")
    if norm is None:
        raise ValueError("the run config's augment config has no `normalize` statistics")
    return norm


def build_wrapper(net: nn.Module, run_config: Mapping[str, Any]) -> ServingWrapper:
    """The inference wrapper of the run's task kind (`idv.kinds` part `wrapper`), in eval mode."""
    from idv import kinds

    return kinds.of_task(run_config.get("task") or {}).wrapper(net, run_config).eval()
