"""Writing an inference wrapper to deployable formats, behind one small interface.

    exported = export_formats(wrapper, example, out_dir, ["torchscript", "onnx"])
    exported["onnx"].path  # out_dir / "model.onnx"

- TorchScript (`model.ts`): `torch.jit.script` (control flow kept), falling back to
  `torch.jit.trace` checked on two batch sizes for modules that do not script (e.g.
  InceptionResnetV1), then frozen (weights inlined, conv-bn folded).
- ONNX (`model.onnx`): torch 2.14's dynamo exporter (needs onnxscript) with a dynamic batch
  axis, weights inside the file (`external_data=False`; a model over protobuf's 2 GB limit gets
  `model.onnx.data` beside it); if the dynamo exporter fails, the TorchScript-based exporter
  (`dynamo=False`, `dynamic_axes`).
Both take the wrapper's input `images` (N, 3, H, W) and give `scores` (N,). TorchScript and
torch.onnx emit FutureWarnings in torch 2.14 (deprecated in favour of torch.export): expected.
Lightning's `to_torchscript` is not used (deprecated, and the wrapper is no LightningModule).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "scores"
# Format -> (file in the bundle, idv.serving backend that runs it).
FILES = {"torchscript": "model.ts", "onnx": "model.onnx"}
SERVING_BACKENDS = {"torchscript": "torchscript", "onnx": "onnxruntime"}
MAX_BATCH = 65536
# The ONNX exporter's optimiser passes log every step at INFO (Hydra's root level).
NOISY_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export", "torch._dynamo")


@dataclass(frozen=True)
class Exported:
    """One written format: its main file, every file it wrote (relative names), and how."""

    format: str
    path: Path
    files: tuple[str, ...]
    method: str
    notes: list[str] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return SERVING_BACKENDS[self.format]


@contextmanager
def _quiet(names: Sequence[str] = NOISY_LOGGERS) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_torchscript(wrapper: nn.Module, example: torch.Tensor, out_dir: Path) -> Exported:
    """`model.ts`: scripted (or traced with checks when scripting fails), then frozen."""
    path = Path(out_dir) / FILES["torchscript"]
    wrapper = wrapper.eval()
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in 2.14
        try:
            module = torch.jit.script(wrapper)
            method = "script"
        except Exception as err:  # noqa: BLE001 - any scripting failure: trace instead
            notes.append(f"torch.jit.script failed ({type(err).__name__}: {err}); traced")
            log.info("scripting failed (%s); tracing with checks", err)
            checks = [(example[:1],), (torch.cat([example, example]),)]
            with torch.no_grad():
                module = torch.jit.trace(wrapper, (example,), check_inputs=checks, strict=True)
            method = "trace"
        module = torch.jit.freeze(module.eval())
    module.save(str(path))
    return Exported("torchscript", path, (path.name,), f"torch.jit.{method} + freeze", notes)


def export_onnx(wrapper: nn.Module, example: torch.Tensor, out_dir: Path) -> Exported:
    """`model.onnx` with a dynamic batch axis; dynamo exporter first, legacy one as fallback."""
    path = Path(out_dir) / FILES["onnx"]
    wrapper = wrapper.eval()
    notes: list[str] = []
    common = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "verbose": False}
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                dynamic_shapes={INPUT_NAME: {0: batch}},
                external_data=False,
                **common,
            )
            method = "torch.onnx.export(dynamo=True)"
            try:
                program.save(str(path), external_data=False)
            except ValueError as err:  # over protobuf's 2 GB: weights go beside the model
                notes.append(f"weights in {path.name}.data ({err})")
                program.save(str(path), external_data=True)
        except Exception as err:  # noqa: BLE001 - any dynamo failure: the legacy exporter
            notes.append(f"dynamo exporter failed ({type(err).__name__}: {err}); used dynamo=False")
            log.warning("dynamo ONNX export failed (%s); falling back to dynamo=False", err)
            for stale in (path, path.with_name(path.name + ".data")):
                stale.unlink(missing_ok=True)
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=False,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                **common,
            )
            method = "torch.onnx.export(dynamo=False)"
    files = [path.name]
    if path.with_name(path.name + ".data").is_file():
        files.append(path.name + ".data")
    return Exported("onnx", path, tuple(files), method, notes)


# Format name -> exporter. Looked up at call time (tests replace an entry).
EXPORTERS: dict[str, Callable[[nn.Module, torch.Tensor, Path], Exported]] = {
    "torchscript": export_torchscript,
    "onnx": export_onnx,
}


def export_formats(
    wrapper: nn.Module,
    example: torch.Tensor,
    out_dir: str | Path,
    formats: Sequence[str] = ("torchscript", "onnx"),
) -> dict[str, Exported]:
    """Write `wrapper` in each of `formats` into `out_dir`; `example` is a float32 input batch
    (N >= 2, so that no exporter specialises the batch size to 1)."""
    unknown = [f for f in formats if f not in EXPORTERS]
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {unknown or formats}; have {sorted(EXPORTERS)}")
    if example.shape[0] < 2:
        raise ValueError("the example batch needs at least 2 images (a batch of 1 specialises)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {name: EXPORTERS[name](wrapper, example, out) for name in dict.fromkeys(formats)}
