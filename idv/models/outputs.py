"""From a network's raw outputs to a task's named outputs, written once.

The task's `predict_step` (what evaluation scores) and the exported wrapper (what serving runs)
both put the network behind these modules, so "logit -> score" exists in one place. Plain
nn.Modules with TorchScript-compatible signatures (Dict[str, Tensor] in and out).

- `named_outputs`: names the network's outputs: a network returning one tensor has it under
  its one output name; a network returning a dict of tensors (a score and a tamper mask, say)
  keeps its keys, which must be the declared names.
- `DetectionScores`: probabilities from logits (sigmoid, float32) for every output; a (N, 1)
  output becomes (N,), others keep their shape (a pixel map (N, 1, H, W)).
  `fused` outputs combine probabilities by a rule of config (`FUSION_RULES`): liveness'
  session risk is the max of its attack and its challenge-noncompliance risks.
- `UnitEmbeddings`: L2-normalised float32 (N, D) embeddings.
"""

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


FUSION_RULES = ("max", "mean", "noisy_or")


class DetectionScores(nn.Module):
    """Sigmoid probabilities of every named logit output, in float32, plus `fused` outputs:
    {name: {rule: max | mean | noisy_or, of: [output, ...]}} (noisy_or: 1 - prod(1 - p))."""

    # Typed for TorchScript, which cannot infer the element type of an empty list (and reads
    # these only as real types: this module has no `from __future__ import annotations`).
    fused_names: list[str]
    fused_rules: list[str]
    fused_of: list[list[str]]

    def __init__(self, fused: Mapping[str, Mapping[str, object]] | None = None) -> None:
        super().__init__()
        self.fused_names, self.fused_rules, self.fused_of = [], [], []
        for name, spec in (fused or {}).items():
            rule, of = str(spec.get("rule", "max")), [str(n) for n in spec.get("of") or []]
            if rule not in FUSION_RULES or not of:
                raise ValueError(
                    f"fused output {name!r}: give `rule` (one of {FUSION_RULES}) and `of` "
                    f"(outputs), got {dict(spec)}"
                )
            self.fused_names.append(str(name))
            self.fused_rules.append(rule)
            self.fused_of.append(of)

    def forward(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, value in logits.items():
            if value.dim() == 2 and value.shape[1] == 1:
                value = value[:, 0]
            out[name] = torch.sigmoid(value.to(torch.float32))
        for k in range(len(self.fused_names)):
            parts = torch.stack([out[n] for n in self.fused_of[k]])
            rule = self.fused_rules[k]
            if rule == "max":
                fused = parts.amax(dim=0)
            elif rule == "mean":
                fused = parts.mean(dim=0)
            else:
                fused = 1.0 - torch.prod(1.0 - parts, dim=0)
            out[self.fused_names[k]] = fused
        return out


class UnitEmbeddings(nn.Module):
    """L2-normalised float32 embeddings (N, D) of every named output."""

    def forward(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, value in raw.items():
            out[name] = F.normalize(value.reshape(value.shape[0], -1).to(torch.float32), dim=1)
        return out
