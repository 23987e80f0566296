"""The streaming step of a session bundle (`stream/`): exported beside the whole-session model
and gated on parity with it.

The gate streams held-out sessions event by event through serving's `SessionStream` on every
exported format and compares the score after the last event with the whole-session score of
the same format (`Bundle.run` on the same session): the two paths share the network's weights
but not its graph, so a mismatch (a state carried wrongly, a feature computed differently) is
caught here, not in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from idv.export.formats import SERVING_BACKENDS, export_formats
from idv.export.parity import ParityError
from idv.export.wrappers import SessionStepScorer
from idv.models.sequence import NO_PEAK
from idv.serving.backends import load_backend
from idv.serving.preprocess import prepare_inputs
from idv.serving.streaming import STREAM_DIR, STREAM_INPUTS, open_stream


def streaming_spec(net: nn.Module, files: Mapping[str, str]) -> dict[str, Any]:
    """preprocess.json's `streaming` entry."""
    return {
        "events_input": "events",
        "files": dict(files),
        "inputs": list(STREAM_INPUTS),
        "outputs": list(SessionStepScorer.output_names),
        "state": {"layers": int(net.layers), "hidden": int(net.hidden), "no_peak": NO_PEAK},
        "function": "idv.serving.streaming.SessionStream",
        "note": (
            "One event at a time: the event's feature row (idv.sessions.features."
            "StreamingFeatures) and the state (state (1, layers, hidden), total, peak (1, "
            "hidden), count (1, 1), starting at zeros, no_peak, zero) in; the score after the "
            "event and the next state out. The score after event k equals the whole-session "
            "score of the first k events."
        ),
    }


def export_stream(
    net: nn.Module,
    bundle: Path,
    formats: Sequence[str],
    raw: Mapping[str, Sequence[Any]],
    spec: Mapping[str, Any],
    whole: Mapping[str, Any],
    sessions: int,
    tolerance: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the step into `bundle/stream/` and gate it: returns (preprocess.json's
    `streaming`, parity figures). `raw`: held-out serving inputs; `whole`: backend name ->
    the whole-session backend to compare with."""
    step = SessionStepScorer(net)
    exported = export_formats(step, step.example(), bundle / STREAM_DIR, formats)
    files = {SERVING_BACKENDS[f]: f"{STREAM_DIR}/{e.path.name}" for f, e in exported.items()}
    entry = streaming_spec(net, files)
    n = min(sessions, len(raw["events"]))
    served = prepare_inputs({name: list(values[:n]) for name, values in raw.items()}, spec)
    device = spec["inputs"]["events"]["screen"]["input"]
    with_stream = {**spec, "streaming": entry}
    report: dict[str, Any] = {"sessions": n, "tolerance": tolerance, "max_abs_diff": {}}
    failures = []
    for backend_name, file in files.items():
        step_backend = load_backend(backend_name, bundle / file, STREAM_INPUTS)
        reference = whole[backend_name](served)["score"]  # padding never reaches a score
        streamed = []
        for i, session in enumerate(raw["events"][:n]):
            stream = open_stream(step_backend, with_stream, served[device][i])
            for t, x, y, kind in zip(session["t"], session["x"], session["y"], session["type"],
                                     strict=True):  # fmt: skip
                stream.update(t, x, y, kind)
            streamed.append(stream.score)
        diff = float(np.max(np.abs(np.asarray(streamed) - reference)))
        report["max_abs_diff"][backend_name] = diff
        if not diff <= tolerance:
            failures.append(
                f"{backend_name}: streamed vs whole-session score max |diff| {diff:.3g}"
            )
    if failures:
        raise ParityError("streaming parity failed: " + "; ".join(failures), report)
    return entry, report
