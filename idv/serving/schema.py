"""preprocess.json checked on load: every key serving reads, with its type, so that a bundle
edited by hand (and re-summed) fails at `load_bundle` with the key at fault, never later with
a bare KeyError or an OpenCV assertion in the middle of scoring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from idv.faces.acquisition import AcquisitionPolicy
from idv.faces.detection import DetectorSettings
from idv.serving.preprocess import INTERPOLATIONS
from idv.sessions.features import FEATURES

MODALITIES = ("image", "frames", "vector", "category", "events", "length", "graph")


class SchemaError(ValueError):
    """One key of preprocess.json is missing or malformed; `key` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"key {key!r} {message}")
        self.key = key


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SchemaError(key, f"must be an object, got {value!r}")
    return value


def _get(spec: Mapping[str, Any], name: str, key: str) -> Any:
    if name not in spec:
        raise SchemaError(f"{key}.{name}" if key else name, "is missing")
    return spec[name]


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SchemaError(key, f"must be a positive integer, got {value!r}")
    return value


def _strings(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SchemaError(key, f"must be a list of names, got {value!r}")
    return value


def check_preprocess(spec: Any) -> None:
    """Raise SchemaError naming the first key of `spec` (preprocess.json) that serving could
    not use."""
    spec = _mapping(spec, "(top level)")
    inputs = _mapping(_get(spec, "inputs", ""), "inputs")
    outputs = _mapping(_get(spec, "outputs", ""), "outputs")
    if not inputs or not outputs:
        raise SchemaError("inputs" if not inputs else "outputs", "must name at least one entry")
    for name, entry in inputs.items():
        _check_input(_mapping(entry, f"inputs.{name}"), f"inputs.{name}")
    order = spec.get("input_order")
    if order is not None and (
        not isinstance(order, list) or sorted(map(str, order)) != sorted(inputs)
    ):
        raise SchemaError("input_order", f"must list the inputs {sorted(inputs)}, got {order!r}")
    for name, entry in inputs.items():  # the inputs a session's entries refer to
        if entry["modality"] == "events" and entry["screen"]["input"] not in inputs:
            raise SchemaError(f"inputs.{name}.screen.input", "must name another input")
        if (
            entry["modality"] == "length"
            and inputs.get(entry["of"], {}).get("modality") != "events"
        ):
            raise SchemaError(f"inputs.{name}.of", "must name an events input")
    for name, entry in outputs.items():
        entry = _mapping(entry, f"outputs.{name}")
        if "shape" in entry and not isinstance(entry["shape"], list):
            raise SchemaError(f"outputs.{name}.shape", f"must be a list, got {entry['shape']!r}")
    primary = _get(spec, "primary_output", "")
    if not isinstance(primary, str) or primary not in outputs:
        raise SchemaError("primary_output", f"must name one of {list(outputs)}, got {primary!r}")
    if spec.get("acquisition") is not None:
        _check_acquisition(_mapping(spec["acquisition"], "acquisition"))
    if spec.get("streaming") is not None:
        _check_streaming(_mapping(spec["streaming"], "streaming"), inputs)
    if spec.get("rules") is not None:
        rules = _mapping(spec["rules"], "rules")
        module = _get(rules, "module", "rules")
        # A bundle names code to run: only the package's own rule modules.
        if not isinstance(module, str) or not module.startswith("idv."):
            raise SchemaError("rules.module", f"must be a module of idv, got {module!r}")
        _mapping(_get(rules, "options", "rules"), "rules.options")
    if spec.get("graph") is not None:
        graph = _mapping(spec["graph"], "graph")
        _strings(_get(graph, "node_types", "graph"), "graph.node_types")
        _strings(_get(graph, "account_features", "graph"), "graph.account_features")
        _positive_int(_get(graph, "hops", "graph"), "graph.hops")
        if not isinstance(_get(graph, "file", "graph"), str):
            raise SchemaError("graph.file", "must be the graph file's name in the bundle")
    if spec.get("localisation") is not None:
        entry = _mapping(spec["localisation"], "localisation")
        output = _get(entry, "output", "localisation")
        if output not in outputs:
            raise SchemaError("localisation.output", f"must name an output, got {output!r}")


def _check_input(entry: Mapping[str, Any], key: str) -> None:
    modality = _get(entry, "modality", key)
    if modality not in MODALITIES:
        raise SchemaError(f"{key}.modality", f"must be one of {MODALITIES}, got {modality!r}")
    if modality in ("image", "frames"):
        resize = _mapping(_get(entry, "resize", key), f"{key}.resize")
        for side in ("height", "width"):
            _positive_int(_get(resize, side, f"{key}.resize"), f"{key}.resize.{side}")
        interpolation = _get(resize, "interpolation", f"{key}.resize")
        if not isinstance(interpolation, str) or interpolation not in INTERPOLATIONS:
            raise SchemaError(
                f"{key}.resize.interpolation",
                f"must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}",
            )
        if "min_side" in entry:
            _positive_int(entry["min_side"], f"{key}.min_side")
        if modality == "frames":
            _positive_int(_get(entry, "frames", key), f"{key}.frames")
            shape = _get(entry, "shape", key)
            if not isinstance(shape, list) or len(shape) != 5:
                raise SchemaError(f"{key}.shape", f"must be [batch, T, 3, H, W], got {shape!r}")
    elif modality == "vector":
        _strings(_get(entry, "columns", key), f"{key}.columns")
    elif modality == "events":
        _strings(_get(entry, "features", key), f"{key}.features")
        if list(entry["features"]) != list(FEATURES):  # serving computes this version's
            raise SchemaError(
                f"{key}.features",
                f"the bundle was trained on {entry['features']}, this version computes "
                f"{list(FEATURES)} (idv.sessions.features): re-export it with this version",
            )
        _positive_int(_get(entry, "max_events", key), f"{key}.max_events")
        screen = _mapping(_get(entry, "screen", key), f"{key}.screen")
        for part in ("input", "width", "height"):
            if not isinstance(_get(screen, part, f"{key}.screen"), str):
                raise SchemaError(f"{key}.screen.{part}", "must be a string")
    elif modality == "graph":  # a part of the (sub)graph serving builds (idv.serving.graph)
        if not isinstance(_get(entry, "part", key), str):
            raise SchemaError(f"{key}.part", "must name the graph input")
    elif modality == "length":
        if not isinstance(_get(entry, "of", key), str):
            raise SchemaError(f"{key}.of", "must name the events input")
    else:
        _strings(_get(entry, "values", key), f"{key}.values")


def _check_streaming(entry: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
    """A session bundle's streaming step (idv.serving.streaming): what SessionStream reads."""
    events = _get(entry, "events_input", "streaming")
    if not isinstance(events, str) or inputs.get(events, {}).get("modality") != "events":
        raise SchemaError("streaming.events_input", f"must name an events input, got {events!r}")
    state = _mapping(_get(entry, "state", "streaming"), "streaming.state")
    for key in ("layers", "hidden"):
        _positive_int(_get(state, key, "streaming.state"), f"streaming.state.{key}")
    no_peak = _get(state, "no_peak", "streaming.state")
    if isinstance(no_peak, bool) or not isinstance(no_peak, int | float) or no_peak != no_peak:
        raise SchemaError("streaming.state.no_peak", f"must be a number, got {no_peak!r}")


def _check_acquisition(entry: Mapping[str, Any]) -> None:
    for name, parse in (("detector", DetectorSettings.from_mapping),
                        ("policy", AcquisitionPolicy.from_mapping)):  # fmt: skip
        value = _mapping(_get(entry, name, "acquisition"), f"acquisition.{name}")
        try:
            parse(value)
        except (TypeError, ValueError, ArithmeticError) as err:  # int(inf): OverflowError
            raise SchemaError(f"acquisition.{name}", f"is not valid ({err})") from err
