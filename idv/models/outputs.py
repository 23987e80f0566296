"""From a network's raw outputs to a task's named outputs, written once.

The task's `predict_step` (what evaluation scores) and the exported wrapper (what serving runs)
both put the network behind these modules, so "logit -> score" exists in one place. Plain
nn.Modules with TorchScript-compatible signatures (Dict[str, Tensor] in and out).

- `named_outputs`: names the network's outputs: a network returning one tensor has it under
  its one output name; a network returning a dict of tensors (a score and a tamper mask, say)
  keeps its keys, which must be the declared names.
- `DetectionScores`: probabilities from logits (sigmoid, float32) for every output; a (N, 1)
  output becomes (N,), others keep their shape (a pixel map (N, 1, H, W)).
- `UnitEmbeddings`: L2-normalised float32 (N, D) embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def named_outputs(
    net: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> dict[str, torch.Tensor]:
    """The network's raw outputs by name: `net` called with the named inputs in
    `input_names` order; one tensor is the one output, a dict must hold `output_names`."""
    missing = [n for n in input_names if n not in inputs]
    if missing:
        raise KeyError(f"the network needs input(s) {missing}; the batch has {sorted(inputs)}")
    raw = net(*[inputs[n] for n in input_names])
    if isinstance(raw, Mapping):
        if sorted(raw) != sorted(output_names):
            raise KeyError(
                f"the network returned outputs {sorted(raw)}; the task declares "
                f"{list(output_names)}"
            )
        return {n: raw[n] for n in output_names}
    if len(output_names) != 1:
        raise TypeError(
            f"the network returned one tensor but the task declares {len(output_names)} "
            f"outputs ({list(output_names)}): return a dict of them"
        )
    return {output_names[0]: raw}


class DetectionScores(nn.Module):
    """Sigmoid probabilities of every named logit output, in float32."""

    def forward(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, value in logits.items():
            if value.dim() == 2 and value.shape[1] == 1:
                value = value[:, 0]
            out[name] = torch.sigmoid(value.to(torch.float32))
        return out


class UnitEmbeddings(nn.Module):
    """L2-normalised float32 embeddings (N, D) of every named output."""

    def forward(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, value in raw.items():
            out[name] = F.normalize(value.reshape(value.shape[0], -1).to(torch.float32), dim=1)
        return out
