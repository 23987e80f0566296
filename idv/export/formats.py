"""Writing an inference wrapper to deployable formats, behind one small interface.

    exported = export_formats(wrapper, {"image": batch}, out_dir, ["torchscript", "onnx"])
    exported["onnx"].path  # out_dir / "model.onnx"

- TorchScript (`model.ts`): `torch.jit.script` (control flow kept), falling back to
  `torch.jit.trace` checked on two batch sizes for modules that do not script (e.g.
  InceptionResnetV1), then frozen (weights inlined, conv-bn folded).
- ONNX (`model.onnx`): torch 2.14's dynamo exporter (needs onnxscript) with a dynamic batch
  axis, weights inside the file (`external_data=False`; a model over protobuf's 2 GB limit gets
  `model.onnx.data` beside it); if the dynamo exporter fails, the TorchScript-based exporter
  (`dynamo=False`, `dynamic_axes`).
Both carry the wrapper's signature: its named inputs (`wrapper.input_names`, each with a
dynamic batch axis) and named outputs (`wrapper.output_names`; TorchScript returns them as a
dict, ONNX names its outputs). TorchScript and torch.onnx emit FutureWarnings in torch 2.14
(deprecated in favour of `torch.export`): expected. Lightning's `to_torchscript` is not used
(deprecated, and the wrapper is no LightningModule). Moving to `torch.export` would take: an
`ExportedProgram` per format (`torch.export.export(wrapper, args, dynamic_shapes=...)`, which
the dynamo ONNX path already builds), `torch.export.save` / `load` in place of
`torch.jit.save` / `load` in the TorchScript backend, and models free of data-dependent
control flow (what `torch.jit.script` tolerates and `torch.export` does not).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from idv.progress import step

log = logging.getLogger(__name__)

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


Example = Mapping[str, torch.Tensor]  # an input batch by name, N >= 2


def _args(wrapper: nn.Module, example: Example) -> tuple[torch.Tensor, ...]:
    return tuple(example[name] for name in wrapper.input_names)


def export_torchscript(wrapper: nn.Module, example: Example, out_dir: Path) -> Exported:
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
            args = _args(wrapper, example)
            if hasattr(wrapper, "trace_checks"):  # inputs that index each other (a graph's)
                checks = wrapper.trace_checks(example)
            else:
                checks = [tuple(a[:1] for a in args), tuple(torch.cat([a, a]) for a in args)]
            with torch.no_grad():
                module = torch.jit.trace(wrapper, args, check_inputs=checks, strict=False)
            method = "trace"
        module = torch.jit.freeze(module.eval())
    module.save(str(path))
    return Exported("torchscript", path, (path.name,), f"torch.jit.{method} + freeze", notes)


def export_onnx(wrapper: nn.Module, example: Example, out_dir: Path) -> Exported:
    """`model.onnx` with a dynamic batch axis; dynamo exporter first, legacy one as fallback
    (or straight away for a wrapper with `onnx_dynamo = False`)."""
    path = Path(out_dir) / FILES["onnx"]
    wrapper = wrapper.eval()
    notes: list[str] = []
    inputs, outputs = list(wrapper.input_names), list(wrapper.output_names)
    common = {"input_names": inputs, "output_names": outputs, "verbose": False}
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    # Axes beyond the batch a wrapper declares dynamic ({input: {axis: name}}: a fully
    # convolutional network's height and width), the same Dim wherever a name repeats.
    extra = getattr(wrapper, "dynamic_dims", None) or {}
    dims = {
        a: torch.export.Dim(a, min=1, max=MAX_BATCH) for d in extra.values() for a in d.values()
    }
    shapes = {name: {0: batch, **{k: dims[a] for k, a in extra.get(name, {}).items()}}
              for name in inputs}  # fmt: skip
    # A wrapper whose inputs have first axes of different sizes (a graph's accounts, nodes,
    # edges) names each (`axis_names`, used by the TorchScript-based exporter).
    first = getattr(wrapper, "axis_names", None) or {}
    axes = {name: {0: first.get(name, "batch"), **extra.get(name, {})} for name in inputs}
    args = _args(wrapper, example)
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        method = None
        if not getattr(wrapper, "onnx_dynamo", True):
            notes.append("dynamo=False: the wrapper asks for the TorchScript-based exporter")
        else:
            try:
                program = torch.onnx.export(
                    wrapper,
                    args,
                    dynamo=True,
                    dynamic_shapes=shapes,
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
                notes.append(
                    f"dynamo exporter failed ({type(err).__name__}: {err}); used dynamo=False"
                )
                log.warning("dynamo ONNX export failed (%s); falling back to dynamo=False", err)
                for stale in (path, path.with_name(path.name + ".data")):
                    stale.unlink(missing_ok=True)
        if method is None:
            torch.onnx.export(
                wrapper,
                args,
                str(path),
                dynamo=False,
                dynamic_axes={
                    **{name: {0: first.get(name, "batch")} for name in outputs},
                    **axes,
                },  # fmt: skip
                **common,
            )
            method = "torch.onnx.export(dynamo=False)"
    files = [path.name]
    if path.with_name(path.name + ".data").is_file():
        files.append(path.name + ".data")
    return Exported("onnx", path, tuple(files), method, notes)


def format_records(exported: Mapping[str, Exported]) -> dict[str, dict[str, object]]:
    """What the model card records of each written format."""
    return {
        k: {"file": v.path.name, "files": list(v.files), "method": v.method, "backend": v.backend}
        for k, v in exported.items()
    }


# Format name -> exporter. Looked up at call time (tests replace an entry).
EXPORTERS: dict[str, Callable[[nn.Module, Example, Path], Exported]] = {
    "torchscript": export_torchscript,
    "onnx": export_onnx,
}


def export_formats(
    wrapper: nn.Module,
    example: Example,
    out_dir: str | Path,
    formats: Sequence[str] = ("torchscript", "onnx"),
) -> dict[str, Exported]:
    """Write `wrapper` in each of `formats` into `out_dir` (TorchScript, the mission's format,
    is always one of them); `example` is an input batch by name (N >= 2, so that no exporter
    specialises the batch size to 1)."""
    unknown = [f for f in formats if f not in EXPORTERS]
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {unknown or formats}; have {sorted(EXPORTERS)}")
    if "torchscript" not in formats:
        raise ValueError(f"formats {list(formats)}: TorchScript is always exported; add it")
    missing = [n for n in wrapper.input_names if n not in example]
    if missing:
        raise ValueError(f"the example batch lacks input(s) {missing} of the wrapper")
    if any(example[n].shape[0] < 2 for n in wrapper.input_names):
        raise ValueError("the example batch needs at least 2 items (a batch of 1 specialises)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exported = {}
    for name in dict.fromkeys(formats):
        with step(log, f"exported {name}"):
            exported[name] = EXPORTERS[name](wrapper, example, out)
    return exported
