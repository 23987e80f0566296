"""The kinds of decision a task makes, and the one place that knows them.

A kind says what a task's score tables are and supplies, layer by layer, the code that scores,
judges, calibrates, benchmarks, exports and serves them. Every layer asks the registry for the
kind named in the task config (`task.kind`) and calls what it supplies; nothing outside this
package compares a kind's name. A new kind joins with one `register(Kind(...))` (see
docs/architecture.md for a worked example).

Parts are given as "module:attribute" strings, imported only when a layer asks for them, so
that importing the registry costs nothing and the serving layer (torch-free, no training code)
never imports the training stack through it. A test or a plug-in may give the objects
themselves instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from idv.errors import IdvError

__all__ = ["PARTS", "Kind", "KindError", "get", "kinds", "of_task", "register", "unregister"]

# What a kind supplies, and who calls it (the signature each layer expects):
PARTS = {
    "score": "tasks: (cfg, model, datamodule, splits) -> {role: score table}",
    "evaluate": "evaluation: (cfg, {role: table}, output_dir) -> metrics",
    "calibrate": "calibration: ({role: table}, **options) -> idv.thresholds.Thresholds",
    "calibration_options": "calibration: (cfg) -> (calibrator options, table roles they need)",
    "benchmark": "evaluation: (cfg, manifest frame) -> benchmark result",
    "wrapper": "export: (net, run_config) -> the exported nn.Module (named inputs and outputs)",
    "export": "export: (cfg) -> ExportResult, for a kind whose bundle is not one scorer per item",
    "decision_values": "export: ({output: array}) -> the values decisions are made on",
    "serving": "serving: the Bundle class of the kind",
}


class KindError(IdvError, LookupError):
    """An unknown kind, or a kind without the part asked for."""


@dataclass(frozen=True)
class Kind:
    """A kind of decision. `tables` maps each score-table role to its schema
    (`idv.score_tables`), the first role being the primary table (`scores`, which every
    kind has); `parts` maps each name of `PARTS` to a "module:attribute" reference (or the
    object)."""

    name: str
    tables: Mapping[str, str]
    parts: Mapping[str, str | Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if next(iter(self.tables), None) != "scores":
            raise KindError(f"kind {self.name!r}: its first table role must be 'scores'")
        unknown = sorted(set(self.parts) - set(PARTS))
        if unknown:
            raise KindError(f"kind {self.name!r}: unknown parts {unknown}; known: {sorted(PARTS)}")

    def part(self, name: str) -> Any:
        """The part `name` (PARTS), imported on first use."""
        if name not in self.parts:
            raise KindError(
                f"kind {self.name!r} supplies no {name!r} ({PARTS.get(name, 'unknown part')}); "
                f"it supplies {sorted(self.parts)}"
            )
        ref = self.parts[name]
        if not isinstance(ref, str):
            return ref
        module, sep, attribute = ref.partition(":")
        if not sep:
            raise KindError(f"kind {self.name!r}: part {name!r} is not 'module:attribute': {ref}")
        found: Any = importlib.import_module(module)
        for step in attribute.split("."):  # "Class.classmethod" too
            found = getattr(found, step)
        return found

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name in PARTS:  # kind.evaluate(...), kind.serving, ...
            return self.part(name)
        raise AttributeError(name)


_REGISTRY: dict[str, Kind] = {}


def register(kind: Kind, *, replace: bool = False) -> Kind:
    """Add a kind; registering a name twice is an error unless `replace`."""
    if kind.name in _REGISTRY and not replace:
        raise KindError(f"kind {kind.name!r} is registered already")
    _REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> Kind:
    """The registered kind `name`; an error naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KindError(
            f"unknown task kind {name!r}; registered kinds: {sorted(_REGISTRY)}"
        ) from None


def kinds() -> list[Kind]:
    return list(_REGISTRY.values())


def of_task(task: Mapping[str, Any]) -> Kind:
    """The kind of a task config (its `kind` key; a task config without one is an error)."""
    if "kind" not in task:
        raise KindError(
            f"task {task.get('name', '?')!r} has no `kind` (one of {sorted(_REGISTRY)})"
        )
    return get(str(task["kind"]))


# The built-in kinds. Their parts live in the layers that use them.
register(
    Kind(
        name="detection",
        tables={"scores": "detection"},
        parts={
            "score": "idv.tasks.scoring:detection_tables",
            "evaluate": "idv.evaluation.detection:evaluate_detection",
            "calibrate": "idv.calibration.detection:calibrate_detection",
            "calibration_options": "idv.calibration.detection:options_from_config",
            "benchmark": "idv.evaluation.benchmark:benchmark_from_config",
            "wrapper": "idv.export.wrappers:DetectionScorer.from_run_config",
            "decision_values": "idv.export.parity:primary_scores",
            "serving": "idv.serving.detection:DetectionBundle",
        },
    )
)
register(
    Kind(
        name="matching",
        tables={"scores": "comparison", "search": "search"},
        parts={
            "score": "idv.tasks.scoring:matching_tables",
            "evaluate": "idv.evaluation.matching:evaluate_matching",
            "calibrate": "idv.calibration.matching:calibrate_matching",
            "calibration_options": "idv.calibration.matching:options_from_config",
            "benchmark": "idv.evaluation.benchmark_matching:benchmark_from_config",
            "wrapper": "idv.export.wrappers:EmbeddingScorer.from_run_config",
            "decision_values": "idv.export.parity:pair_similarities",
            "serving": "idv.serving.matching:MatchingBundle",
        },
    )
)
register(
    Kind(
        name="graph",
        tables={"scores": "detection"},
        parts={
            "score": "idv.tasks.scoring:detection_tables",
            "evaluate": "idv.evaluation.graph:evaluate_graph",
            "calibrate": "idv.calibration.graph:calibrate_graph",
            "calibration_options": "idv.calibration.graph:options_from_config",
            "benchmark": "idv.evaluation.benchmark:benchmark_from_config",
            "decision_values": "idv.export.parity:primary_scores",
            "export": "idv.export.graph:export_graph_bundle",
            "serving": "idv.serving.graph:GraphBundle",
        },
    )
)
