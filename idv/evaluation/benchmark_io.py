"""The vendor benchmark's files: vendor files in (`read_vendor_file`, with their declared score
options), results out (`headline_frame`, `markdown`, `write_outputs`), for every kind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from idv.atomic import atomic_path, write_json, write_text
from idv.errors import IdvError
from idv.evaluation.benchmark_core import OPTION_KEYS, OVERALL, BenchmarkResult
from idv.markdown import table as markdown_table

# Read as text from a CSV vendor file (detection, comparison and search formats).
_ID_COLUMNS = (
    "sample_id",
    "provider",
    "comparison_id",
    "sample_id_a",
    "sample_id_b",
    "probe_sample_id",
    "candidate_subject_id",
)


class VendorFileError(IdvError, ValueError):
    """A vendor file that cannot be read; the message names the file (and the row or key)."""


def read_vendor_file(file: str | os.PathLike) -> pd.DataFrame:
    """A vendor file as a frame; its declarations (`score_direction`, `score_range`) from the
    Parquet key-value metadata or the CSV side-car `<stem>.meta.json` go to `frame.attrs`,
    with `frame.attrs["source"]` = the file name (used in every error message)."""
    file = Path(file)
    if not file.is_file():
        raise VendorFileError(f"{file}: vendor file not found")
    suffix = file.suffix.lower()
    meta: dict[str, object] = {}
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(file)
            raw = pq.read_schema(file).metadata or {}
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise VendorFileError(f"{file}: not a readable Parquet file ({err})") from err
        for key in OPTION_KEYS:
            if key.encode() in raw:
                meta[key] = _parse_meta_value(file, key, raw[key.encode()].decode())
    elif suffix == ".csv":
        # ids stay text: "000123" must not become 123
        try:
            frame = pd.read_csv(file, dtype=dict.fromkeys(_ID_COLUMNS, str))
        except pd.errors.EmptyDataError:
            raise VendorFileError(
                f"{file}: empty file (not even a header); a vendor file needs one row per "
                "answered item"
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise VendorFileError(f"{file}: not a readable CSV file ({err})") from err
        sidecar = file.with_suffix(".meta.json")
        if sidecar.is_file():
            try:
                declared = json.loads(sidecar.read_bytes())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise VendorFileError(f"{sidecar}: not valid JSON ({err})") from err
            if not isinstance(declared, dict):
                raise VendorFileError(f"{sidecar}: expected a JSON object")
            unknown = sorted(set(declared) - set(OPTION_KEYS))
            if unknown:
                raise VendorFileError(
                    f"{sidecar}: unknown key(s) {unknown}; expected score_direction, score_range"
                )
            meta.update(declared)
    else:
        raise VendorFileError(
            f"{file}: unsupported vendor file type {suffix!r} (use .csv or .parquet)"
        )
    frame.attrs.update(meta)
    frame.attrs["source"] = str(file)
    return frame


def _parse_meta_value(file: Path, key: str, text: str) -> object:
    if key == "score_range":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise VendorFileError(f"{file}: metadata score_range {text!r} is not [lo, hi]") from err
    return text


# ---------------------------------------------------------------------------------- outputs


def headline_frame(result: BenchmarkResult, segment: str | None = OVERALL) -> pd.DataFrame:
    """A readable summary: one column per headline, "estimate [low, high]" strings."""
    frame = result.providers
    if segment is not None:
        frame = frame[frame["segment"] == segment]
    keys = [c for c in frame.columns if f"{c}_low" in frame.columns]
    out = frame[["provider", "segment", "group", "coverage"]].copy()
    out["coverage"] = out["coverage"].map(lambda v: f"{v:.1%}")
    for key in keys:
        out[key] = [
            _fmt_interval(e, lo, hi)
            for e, lo, hi in zip(frame[key], frame[f"{key}_low"], frame[f"{key}_high"], strict=True)
        ]
    for key in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        out[key] = frame[key].map(lambda v: "n/a" if np.isnan(v) else f"{v:.0f}")
    out["cost_per_item"] = frame["cost_per_item"].map(
        lambda v: "n/a" if np.isnan(v) else f"{v:.4g}"
    )
    out["too_small"] = frame["too_small"].to_numpy()
    empty = [c for c in out.columns if (out[c].astype(str) == "n/a").all()]
    return out.drop(columns=empty).reset_index(drop=True)


def _fmt_interval(estimate: float, low: float, high: float) -> str:
    if np.isnan(estimate):
        return "n/a"
    return f"{estimate:.4f} [{low:.4f}, {high:.4f}]"


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float | np.floating):
            return "n/a" if np.isnan(v) else f"{v:.4g}"
        return str(v)

    return markdown_table(frame.columns, frame.itertuples(False), cell)


def markdown(result: BenchmarkResult, title: str = "Vendor benchmark") -> str:
    lines = [f"# {title} ({result.split})", "", *[f"- {n}" for n in result.notes], ""]
    lines += ["## Per provider", "", _markdown_table(headline_frame(result, OVERALL)), ""]
    per_segment = headline_frame(result, None)
    per_segment = per_segment[per_segment["segment"] != OVERALL]
    if len(per_segment):
        lines += ["## Per provider and segment", ""]
        lines += ["Rows marked `too_small` have too few subjects of a class to be judged.", ""]
        lines += [_markdown_table(per_segment), ""]
    lines += [f"## Paired differences against `{result.reference}`", ""]
    if result.comparisons.empty:
        lines.append("No paired comparison.")
    else:
        lines += [
            "Difference = provider - reference on the same owned items "
            f"({result.difference_note}).",
            "",
        ]
        shown = result.comparisons[
            ["provider", "metric", "difference", "low", "high", "excludes_zero", "mcnemar_p"]
        ]
        lines.append(_markdown_table(shown))
    return "\n".join(lines) + "\n"


def _records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))  # NaN -> null


def write_outputs(
    result: BenchmarkResult, output_dir: str | os.PathLike, title: str = "Vendor benchmark"
) -> dict[str, Path]:
    """benchmark.csv (per provider and segment), comparisons.csv, benchmark.json (both, plus
    notes), benchmark.md; each written atomically."""
    out = Path(output_dir)
    paths = {
        "csv": out / "benchmark.csv",
        "comparisons": out / "comparisons.csv",
        "json": out / "benchmark.json",
        "markdown": out / "benchmark.md",
    }
    with atomic_path(paths["csv"]) as tmp:
        result.providers.to_csv(tmp, index=False)
    with atomic_path(paths["comparisons"]) as tmp:
        result.comparisons.to_csv(tmp, index=False)
    write_json(
        {
            "mode": result.mode,
            "split": result.split,
            "reference": result.reference,
            "notes": result.notes,
            "providers": _records(result.providers),
            "comparisons": _records(result.comparisons),
        },
        paths["json"],
    )
    write_text(markdown(result, title), paths["markdown"])
    return paths
