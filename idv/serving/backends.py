"""Runtimes for an exported model: TorchScript (torch only) and ONNX Runtime (no torch).

A backend maps a float32 (N, 3, H, W) numpy batch to float32 scores (N,). Each imports its
runtime only when it is built, so the ONNX Runtime path never imports torch.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

BACKENDS = ("torchscript", "onnxruntime")
# The file of each backend inside a bundle.
MODEL_FILES = {"torchscript": "model.ts", "onnxruntime": "model.onnx"}


class TorchScriptBackend:
    """A TorchScript file on CPU, run under inference mode."""

    name = "torchscript"

    def __init__(self, file: str | os.PathLike, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self._torch = torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in 2.14
            self.model = torch.jit.load(str(file), map_location="cpu").eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return out.numpy().astype(np.float32, copy=False)


class OnnxRuntimeBackend:
    """An ONNX file in an ONNX Runtime CPU session (all graph optimisations)."""

    name = "onnxruntime"

    def __init__(self, file: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)


def load_backend(
    name: str, file: str | os.PathLike, threads: int | None = None
) -> TorchScriptBackend | OnnxRuntimeBackend:
    """The backend `name` ('torchscript' | 'onnxruntime') on model file `file`."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    if not Path(file).is_file():
        raise FileNotFoundError(f"model file {file} not found")
    cls = TorchScriptBackend if name == "torchscript" else OnnxRuntimeBackend
    return cls(file, threads)
