"""Runtimes for an exported model: TorchScript (torch only) and ONNX Runtime (no torch).

A backend maps named float32 numpy inputs (the model's signature, preprocess.json's `inputs`)
to named float32 numpy outputs. Each imports its runtime only when it is built, so the ONNX
Runtime path never imports torch.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

BACKENDS = ("torchscript", "onnxruntime")
# The file of each backend inside a bundle.
MODEL_FILES = {"torchscript": "model.ts", "onnxruntime": "model.onnx"}

Arrays = Mapping[str, np.ndarray]


class TorchScriptBackend:
    """A TorchScript file on CPU, run under inference mode; inputs passed in signature order."""

    name = "torchscript"

    def __init__(
        self, file: str | os.PathLike, input_names: Sequence[str], threads: int | None = None
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self._torch = torch
        self.input_names = list(input_names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in 2.14
            self.model = torch.jit.load(str(file), map_location="cpu").eval()
        # Positional arguments in the module's own order (its schema names them): a bundle's
        # preprocess.json lists its inputs in sorted-key order (before input_order was
        # written, a liveness bundle fed `challenge` as `frames`).
        schema = [a.name for a in self.model.forward.schema.arguments[1:]]
        if sorted(schema) == sorted(self.input_names):
            self.input_names = schema

    def __call__(self, inputs: Arrays) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(model_dtype(inputs[n])) for n in self.input_names]
        with torch.inference_mode():
            out = self.model(*args)
        return {k: v.numpy().astype(np.float32, copy=False) for k, v in out.items()}


class OnnxRuntimeBackend:
    """An ONNX file in an ONNX Runtime CPU session (all graph optimisations), by name."""

    name = "onnxruntime"

    def __init__(
        self, file: str | os.PathLike, input_names: Sequence[str], threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self.input_names = list(input_names)
        have = [i.name for i in self.session.get_inputs()]
        if sorted(have) != sorted(self.input_names):
            raise ValueError(f"{file}: the model takes {have}, the bundle says {input_names}")
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: Arrays) -> dict[str, np.ndarray]:
        feed = {n: model_dtype(inputs[n]) for n in self.input_names}
        return self.run_exact(feed)

    def run_exact(self, feed: Arrays) -> dict[str, np.ndarray]:
        """The outputs of inputs already in the model's dtypes (no conversion: the per-event
        streaming step, where every microsecond counts)."""
        out = self.session.run(self.output_names, feed)
        return {
            n: np.asarray(v, dtype=np.float32) for n, v in zip(self.output_names, out, strict=True)
        }


def model_dtype(array: np.ndarray) -> np.ndarray:
    """A model input as exported: integers (a challenge index) as int64, the rest float32."""
    a = np.asarray(array)
    dtype = np.int64 if np.issubdtype(a.dtype, np.integer) else np.float32
    return np.ascontiguousarray(a, dtype=dtype)


def load_backend(
    name: str,
    file: str | os.PathLike,
    input_names: Sequence[str] = ("image",),
    threads: int | None = None,
) -> TorchScriptBackend | OnnxRuntimeBackend:
    """The backend `name` ('torchscript' | 'onnxruntime') on model file `file`."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    if not Path(file).is_file():
        raise FileNotFoundError(f"model file {file} not found")
    cls = TorchScriptBackend if name == "torchscript" else OnnxRuntimeBackend
    return cls(file, input_names, threads)
