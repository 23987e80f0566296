"""Session models: an event-sequence encoder fused with a device-feature MLP (bot vs human).

Input: `events` float32 (N, L, F) per-event features (`idv.sessions.features`, zero-padded
after `length`), `length` int64 (N,), `device` float32 (N, D) raw device values (signed log
inside, so counts and pixel sizes share a scale). Output: one attack logit per session.

Encoders, chosen in config (`encoder`):
- `gru`: an input projection and a GRU over the events; the summary is the GRU output after
  the last real event with the mean and the maximum of its outputs over the real events (a
  GRU alone is slow to learn session-wide timing statistics; pooling hands them over). The
  GRU is causal and the pools are running ones, so padding never reaches the summary, and
  the model also runs one event at a time (`step`), carrying (state, sum, max, count): the
  streaming mode of serving, whose score after event k equals the whole-session score of the
  first k events.
- `transformer`: a small Transformer encoder over the events with a padding mask and learned
  positions, mean-pooled over the real events (reported beside the GRU; not streamable).
`use_events=false` / `use_device=false` are the ablations.
"""

from __future__ import annotations

import torch
from torch import nn

ENCODERS = ("gru", "transformer")
NO_PEAK = -1e4  # below any GRU output (tanh-bounded): the max pool's padding value


def signed_log(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def running(norm: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """`norm` in eval mode over the last axis of any shape, written out (the TorchScript-based
    ONNX exporter refuses batch_norm on a reshaped input of unknown channel size)."""
    return (x - norm.running_mean) * torch.rsqrt(norm.running_var + norm.eps)


class SessionClassifier(nn.Module):
    """Session events (N, L, F) with their lengths and device vectors (N, D) -> one bot
    logit per session (see the module docstring)."""

    def __init__(
        self,
        features: int,
        device_features: int,
        encoder: str = "gru",
        hidden: int = 32,
        layers: int = 1,
        projection: int = 32,
        heads: int = 4,
        max_events: int = 256,
        device_hidden: int = 32,
        dropout: float = 0.1,
        use_events: bool = True,
        use_device: bool = True,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown session encoder {encoder!r}; expected one of {ENCODERS}")
        if not (use_events or use_device):
            raise ValueError("SessionClassifier needs the events, the device record or both")
        self.encoder_name = encoder
        self.features, self.device_features = features, device_features
        self.use_events, self.use_device = use_events, use_device
        self.hidden, self.layers = hidden, layers
        width = 0
        # Inputs standardised per feature (BatchNorm without affine: batch statistics of the
        # real events in training, the running ones after): the features' scales differ by
        # 10x, and standardised inputs train the GRU in the budget (test EER about 0.015
        # lower over three seeds, issue 16's note). Padding never enters the statistics.
        self.event_norm = nn.BatchNorm1d(features, affine=False) if use_events else None
        self.device_norm = nn.BatchNorm1d(device_features, affine=False) if use_device else None
        if use_events:
            if encoder == "gru":
                self.project = nn.Sequential(nn.Linear(features, projection), nn.ReLU())
                self.gru = nn.GRU(projection, hidden, layers, batch_first=True,
                                  dropout=dropout if layers > 1 else 0.0)  # fmt: skip
                width += 2 * hidden  # + the mean and max pools
            else:
                self.embed = nn.Linear(features, hidden)
                self.position = nn.Parameter(torch.zeros(1, max_events, hidden))
                layer = nn.TransformerEncoderLayer(
                    hidden, heads, 2 * hidden, dropout, batch_first=True, norm_first=True
                )
                self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            width += hidden
        if use_device:
            self.device_mlp = nn.Sequential(
                nn.Linear(device_features, device_hidden), nn.ReLU(),
                nn.Linear(device_hidden, device_hidden), nn.ReLU(),
            )  # fmt: skip
            width += device_hidden
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, 1))

    def encode(self, events: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """(N, width) summary of each session's real events."""
        length = length.to(torch.int64).clamp(min=1)
        steps = torch.arange(events.shape[1], device=events.device)
        pad = steps.view(1, -1) >= length.view(-1, 1)
        events = self.standardise(events, pad)
        if self.encoder_name == "gru":
            out, _ = self.gru(self.project(events))
            index = (length - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
            last = out.gather(1, index).squeeze(1)
            keep = (~pad).unsqueeze(-1).to(out.dtype)
            mean = (out * keep).sum(1) / keep.sum(1)
            peak = out.masked_fill(pad.unsqueeze(-1), NO_PEAK).amax(1)
            return torch.cat([last, mean, peak], dim=1)
        x = self.embed(events) + self.position[:, : events.shape[1]]
        x = self.transformer(x, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        return (x * keep).sum(1) / keep.sum(1)

    def standardise(self, events: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Per-feature standardisation; in training, statistics of the real events only."""
        if not self.training:
            return running(self.event_norm, events)
        out = torch.zeros_like(events)
        out[~pad] = self.event_norm(events[~pad])
        return out

    def fuse(self, summary: torch.Tensor | None, device: torch.Tensor) -> torch.Tensor:
        parts = [summary] if summary is not None else []
        if self.use_device:
            device = signed_log(device.to(torch.float32))
            device = (
                self.device_norm(device) if self.training else running(self.device_norm, device)
            )
            parts.append(self.device_mlp(device))
        return self.head(torch.cat(parts, dim=1)).squeeze(1)

    def forward(
        self, events: torch.Tensor, length: torch.Tensor, device: torch.Tensor
    ) -> torch.Tensor:
        summary = self.encode(events.to(torch.float32), length) if self.use_events else None
        return self.fuse(summary, device)

    def initial_state(self, n: int = 1) -> dict[str, torch.Tensor]:
        """The streaming state before the first event: GRU state, output sum, max and count."""
        return {
            "state": torch.zeros(self.layers, n, self.hidden),
            "total": torch.zeros(n, self.hidden),
            "peak": torch.full((n, self.hidden), NO_PEAK),
            "count": torch.zeros(n, 1),
        }

    def step(
        self,
        event: torch.Tensor,
        state: torch.Tensor,
        total: torch.Tensor,
        peak: torch.Tensor,
        count: torch.Tensor,
        device: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One event (N, F) on the streaming state (`initial_state`): (logit (N,), state,
        total, peak, count) after it; the logit equals `forward` on the events so far."""
        if self.encoder_name != "gru" or not self.use_events:
            raise NotImplementedError("only the GRU encoder runs one event at a time")
        event = running(self.event_norm, event.to(torch.float32))
        out, state = self.gru(self.project(event).unsqueeze(1), state)
        last = out[:, -1]
        total, count = total + last, count + 1.0
        peak = torch.maximum(peak, last)
        summary = torch.cat([last, total / count, peak], dim=1)
        return self.fuse(summary, device), state, total, peak, count
