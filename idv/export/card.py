"""The model card: `model_card.json` (machine-readable) and `model_card.md` (the same, for people).

It records what the model is for and not for, the training data (manifest hash and size),
the evaluation (metrics with their subject-bootstrap intervals, per segment and demographic
group, read from an idv-evaluate output directory), the thresholds the bundle applies, the
code revision, the checkpoint and the full run config.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

import idv
from idv.data.manifest import DEMOGRAPHIC_COLUMNS
from idv.thresholds import Rate, Thresholds

SCHEMA_VERSION = 1
REQUIRED_FIELDS = (
    "schema_version",
    "task",
    "intended_use",
    "limitations",
    "model",
    "training_data",
    "evaluation",
    "thresholds",
    "code",
    "checkpoint",
    "formats",
    "parity",
    "run_config",
)

INTENDED_USE: dict[str, str] = {
    "pad": (
        "Presentation attack detection (ISO/IEC 30107-3) on a single face image from a remote "
        "identity-proofing capture: scores how likely the capture is a presentation attack "
        "(print, replay, mask, ...). The bundle's thresholds turn a score into accept / review / "
        "reject; the review band is meant for a human reviewer."
    ),
    "face_match": (
        "Face matching in remote identity proofing: 1:1 verification (is this the same person? "
        "a selfie against another selfie, or against the portrait of an identity document "
        "(ID portrait vs selfie, the onboarding case)) and 1:N search (who is it? a probe "
        "against an enrolled gallery, idv.serving.gallery). The model maps a face crop aligned "
        "onto the 5-point ArcFace template (idv.data.align.align_face; 112x112 template, see "
        "preprocess.json) to a unit-norm embedding; similarity is the dot product. The bundle's "
        "thresholds turn a 1:1 similarity, or a 1:N candidate's, into match / review / "
        "non-match; the review band is meant for a human reviewer."
    ),
}
GENERIC_USES: dict[str, str] = {
    "matching": (
        "Matching ({task}): maps an aligned face crop to a unit-norm embedding; similarity is "
        "the dot product, and the bundle's thresholds turn a 1:1 similarity into match / review "
        "/ non-match."
    ),
}
GENERIC_USE = (
    "Detection ({task}): scores how likely a sample is an attack / fraud; the bundle's "
    "thresholds turn a score into accept / review / reject."
)
LIMITATIONS: tuple[str, ...] = (
    "Decision support only: not for identification, not for any decision without the review "
    "path, and not for populations, devices or attack species absent from the training and "
    "calibration data (an unseen attack species has no guarantee from the thresholds).",
    "The rates below hold for data like the evaluation split; a segment marked too small "
    "(fewer subjects than the evaluation's min_subjects) is shown, not judged.",
    "Thresholds come from the calibration split only; re-calibrate before using the model on "
    "a different capture channel, vendor or population.",
    "Input must follow preprocess.json (whole capture, RGB, resized as specified); other "
    "framings or colour orders change the scores silently.",
)


MATCHING_LIMITATIONS: tuple[str, ...] = (
    "Decision support only: not for any decision without the review path, and not for "
    "populations, devices or capture channels absent from the training and calibration data.",
    "Trained (and, in this repository, evaluated) on synthetic faces: rates on real captures "
    "are unknown until the model is evaluated on real data.",
    "Demographic differentials (FNMR and FMR per group, and FMR of impostors of the same group) "
    "are reported per segment below; a segment marked too small (fewer subjects than the "
    "evaluation's min_subjects) is shown, not judged.",
    "Thresholds come from the calibration split only: 1:1 verification thresholds (one "
    "comparison protocol, see the thresholds section) and a 1:N threshold at an FPIR target "
    "for the calibration gallery's size; FPIR grows with the gallery, so re-calibrate for a "
    "larger gallery, and before using the model on a different capture channel, document "
    "type, vendor or population.",
    "Input must follow preprocess.json (a face crop aligned onto the 5-point ArcFace template, "
    "RGB, resized as specified); unaligned or differently framed faces change the embeddings "
    "silently. No presentation attack detection: pair the matcher with a PAD model.",
)
LIMITATIONS_BY_KIND = {"detection": LIMITATIONS, "matching": MATCHING_LIMITATIONS}
# Headline metrics of a matching evaluation (metrics.json keys end with these), in card order.
MATCHING_HEADLINE = ("/eer", "/fnmr_at_fmr_1e-03", "/rank_1_rate", "/fnir_at_fpir_3e-03")


def code_revision(start: str | Path | None = None) -> dict[str, Any]:
    """`git rev-parse HEAD` of the repository holding the code ("unknown" outside one)."""
    where = Path(start or Path(idv.__file__).resolve().parent)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return {"revision": "unknown", "dirty": None, "idv_version": idv.__version__}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"revision": head.stdout.strip(), "dirty": dirty, "idv_version": idv.__version__}
    except (OSError, subprocess.SubprocessError):
        return {"revision": "unknown", "dirty": None, "idv_version": idv.__version__}


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN/inf as null, numpy scalars as Python ones."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_evaluation(evaluation_dir: str | Path | None) -> dict[str, Any] | None:
    """metrics.json (every metric with its `_ci_low` / `_ci_high` interval) and segments.csv
    (per segment and demographic group, with intervals) of an idv-evaluate output directory."""
    if evaluation_dir is None:
        return None
    root = Path(evaluation_dir)
    metrics_file, segments_file = root / "metrics.json", root / "segments.csv"
    for file in (metrics_file, segments_file):
        if not file.is_file():
            raise FileNotFoundError(
                f"evaluation_dir {root}: no {file.name} (is it an idv-evaluate output directory?)"
            )
    flat = json.loads(metrics_file.read_text())
    metrics: dict[str, Any] = {}
    for key, value in sorted(flat.items()):
        if key.endswith(("_ci_low", "_ci_high")):
            continue
        item: dict[str, Any] = {"estimate": _clean(value)}
        if f"{key}_ci_low" in flat or f"{key}_ci_high" in flat:
            item["interval"] = [
                _clean(flat.get(f"{key}_ci_low")),
                _clean(flat.get(f"{key}_ci_high")),
            ]
        metrics[key] = item
    # keep_default_na=False: a group named "NA" (North America) is a value, not a missing one.
    table = pd.read_csv(segments_file, keep_default_na=False, na_values=[""])
    groups: dict[str, list[dict[str, Any]]] = {"segments": [], "demographic_groups": []}
    rates = [c for c in table.columns if f"{c}_low" in table.columns]
    for row in table.to_dict("records"):
        item = {
            "column": row["segment"],
            "group": str(row["group"]),
            **{
                k: _clean(v)
                for k, v in row.items()
                if k not in ("segment", "group")
                and not k.endswith(("_low", "_high"))
                and k not in rates
            },
            "rates": {
                r: {
                    "estimate": _clean(row[r]),
                    "interval": [_clean(row[f"{r}_low"]), _clean(row[f"{r}_high"])],
                }
                for r in rates
            },
        }
        key = "demographic_groups" if row["segment"] in DEMOGRAPHIC_COLUMNS else "segments"
        groups[key].append(item)
    return {
        "source": str(root),
        "files": {"metrics": str(metrics_file), "segments": str(segments_file)},
        "interval": "subject-bootstrap percentile interval (see the evaluation's bootstrap config)",
        "metrics": metrics,
        **groups,
    }


def thresholds_summary(thresholds: Thresholds, sha256: str) -> dict[str, Any]:
    """The card's view of thresholds.json: for every operating-point metric (1:1 and 1:N for
    a matching task), the edges of its primary global and segment thresholds and their
    headline test rates (those without a species or group suffix)."""
    entries = [e for m in thresholds.metrics for e in thresholds.primary_entries(m)]
    return {
        "file": "thresholds.json",
        "sha256": sha256,
        "kind": thresholds.kind,
        "operating_point": asdict(thresholds.operating_point),
        "decision_rule": thresholds.decision.describe(),
        "calibration_split": thresholds.calibration_split,
        "details": {k: v for k, v in thresholds.details.items() if isinstance(v, str)},
        "thresholds": [
            {
                "id": e.id,
                "metric": e.operating_point.metric,
                "max": e.operating_point.max,
                "segment": e.segment_name,
                "threshold": e.threshold,
                "review_at_or_above": e.review_at_or_above,
                "source": e.source,
                "test": {k: asdict(r) for k, r in e.test.rates.items() if "/" not in k},
            }
            for e in entries
        ],
    }


def build_card(
    *,
    run_config: Mapping[str, Any],
    training_data: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None,
    thresholds: Thresholds,
    thresholds_sha256: str,
    checkpoint: Mapping[str, Any],
    formats: Mapping[str, Any],
    parity: Mapping[str, Any],
    preprocess: Mapping[str, Any],
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
    code: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """model_card.json's content."""
    task = run_config.get("task", {})
    name = task.get("name", "unknown")
    kind = task.get("kind", "detection")
    model_cfg = run_config.get("model", {})
    limits = list(LIMITATIONS_BY_KIND.get(kind, LIMITATIONS)) + list(limitations)
    if evaluation is None:
        limits.append("No evaluation was attached to this export (evaluation_dir=null).")
    return {
        "schema_version": SCHEMA_VERSION,
        "task": {"name": name, "kind": kind},
        "intended_use": intended_use
        or INTENDED_USE.get(name, GENERIC_USES.get(kind, GENERIC_USE).format(task=name)),
        "limitations": limits,
        "model": {
            "architecture": model_cfg,
            "input": preprocess["input"],
            "output": preprocess["output"],
            "profile": run_config.get("profile"),
            "seed": run_config.get("seed"),
        },
        "training_data": dict(training_data),
        "evaluation": evaluation,
        "thresholds": thresholds_summary(thresholds, thresholds_sha256),
        "code": dict(code or code_revision()),
        "checkpoint": dict(checkpoint),
        "formats": dict(formats),
        "parity": {
            k: parity[k]
            for k in ("samples", "tolerance", "batch_sizes", "near_threshold_samples")
            if k in parity
        }
        | {"max_abs_diff": {k: v["max_abs_diff"] for k, v in parity["formats"].items()}},
        "run_config": run_config,
    }


def _rate(item: Mapping[str, Any] | None) -> str:
    if not item or item.get("estimate") is None:
        return "n/a"
    if isinstance(item["estimate"], int | str):
        return str(item["estimate"])
    interval = item.get("interval")
    if interval and None not in interval:
        return f"{item['estimate']:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"
    return f"{item['estimate']:.4f}"


def card_markdown(card: Mapping[str, Any]) -> str:
    """model_card.md: the card for people (model_card.json has everything)."""
    task, data, code = card["task"], card["training_data"], card["code"]
    th = card["thresholds"]
    arch = card["model"]["architecture"]
    backbone = (arch.get("backbone") or {}).get("name", "?") if isinstance(arch, dict) else "?"
    lines = [
        f"# Model card: {task['name']} ({task['kind']})",
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Limitations",
        "",
        *[f"- {item}" for item in card["limitations"]],
        "",
        "## Model",
        "",
        f"- Architecture: `{arch.get('_target_', '?')}`, backbone `{backbone}`.",
        f"- Input: {card['model']['input']['shape']} {card['model']['input']['colour_order']}, "
        f"values {card['model']['input']['value_range']} (see preprocess.json).",
        f"- Output: {card['model']['output']['meaning']}.",
        "- Formats: "
        + ", ".join(f"`{v['file']}` ({v['method']})" for v in card["formats"].values())
        + ".",
        f"- Checkpoint: `{card['checkpoint']['path']}` (sha256 `{card['checkpoint']['sha256']}`).",
        f"- Code: revision `{code['revision']}`"
        + (" (uncommitted changes)" if code.get("dirty") else "")
        + f", idv {code.get('idv_version')}.",
        "",
        "## Training data",
        "",
        f"- Manifest `{data.get('manifest')}`, sha256 `{data.get('sha256')}`, "
        f"{data.get('bytes')} bytes.",
        f"- {data.get('samples')} samples, {data.get('subjects')} subjects; per split "
        f"{data.get('samples_per_split')}; protocol `{data.get('protocol')}`.",
        "",
        "## Thresholds",
        "",
        f"Operating point {th['operating_point']}, chosen on split "
        f"`{th['calibration_split']}`. Rule: {th['decision_rule']}",
        "",
        *_threshold_lines(th),
        "",
        "## Evaluation",
        "",
    ]
    ev = card["evaluation"]
    if ev is None:
        lines.append("No evaluation attached (evaluation_dir=null).")
    else:
        lines += [
            f"From `{ev['source']}`; intervals: {ev['interval']}.",
            "",
            *_headline_lines(task["kind"], ev["metrics"]),
            "| metric | estimate [interval] |",
            "|---|---|",
            *[f"| {k} | {_rate(v)} |" for k, v in ev["metrics"].items()],
        ]
        for key, title in (("segments", "Segments"), ("demographic_groups", "Demographic groups")):
            if ev[key]:
                lines += ["", f"### {title}", "", *_group_lines(task["kind"], ev[key])]
    p = card["parity"]
    what = "embedding (elementwise)" if task["kind"] == "matching" else "score"
    lines += [
        "",
        "## Export parity",
        "",
        f"{p.get('samples')} held-out samples at batch sizes {p.get('batch_sizes')}; max |{what} "
        f"difference| against the eager model: "
        + ", ".join(f"{k} {v:.3g}" for k, v in p["max_abs_diff"].items())
        + f" (tolerance {p.get('tolerance'):g}); {p.get('near_threshold_samples')} "
        + (
            "pair(s) within the similarity margin of a threshold"
            if task["kind"] == "matching"
            else "sample(s) within the tolerance of a threshold"
        )
        + ". Details in parity.json.",
        "",
    ]
    return "\n".join(lines)


def _threshold_lines(th: Mapping[str, Any]) -> list[str]:
    lines = [f"Details: {th['details']}.", ""] if th.get("details") else []
    for e in th["thresholds"]:
        rates = ", ".join(f"test {k} {Rate.from_dict(v)}" for k, v in e["test"].items())
        lines.append(
            f"- {e['metric']} <= {e['max']:g}, {e['segment']}: threshold {e['threshold']:.6g}, "
            f"review at or above {e['review_at_or_above']:.6g} ({e['source']})"
            + (f"; {rates}" if rates else "")
            + "."
        )
    return lines


def _headline_lines(kind: str, metrics: Mapping[str, Any]) -> list[str]:
    """Matching: the verification (EER, FNMR at FMR 1e-3 per protocol) and search (rank-1,
    FNIR at FPIR 3e-3) headline metrics of the test split, with intervals, before the full
    table."""
    if kind != "matching":
        return []
    keys = [
        k
        for suffix in MATCHING_HEADLINE
        for k in metrics
        if k.startswith("test/") and k.endswith(suffix)
    ]
    if not keys:
        return []
    return [
        "Headline (test split):",
        "",
        "| metric | estimate [interval] |",
        "|---|---|",
        *[f"| {k} | {_rate(metrics[k])} |" for k in keys],
        "",
        "All metrics:",
        "",
    ]


def _group_lines(kind: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    rates = list(rows[0]["rates"])
    counts = ["samples", "subjects"]
    if kind == "matching":  # per comparison protocol, counted in comparisons
        counts = ["protocol", "probe_subjects", "genuine", "impostors", "fmr_demographic"]
    head = [c.replace("_", " ") for c in ["column", "group", *counts, "too small"]] + rates
    lines = ["| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for r in rows:
        values = [r["column"], r["group"], *[_cell(r.get(c)) for c in counts], r.get("too_small")]
        values += [_rate(r["rates"][k]) for k in rates]
        lines.append("| " + " | ".join(str(v) for v in values) + " |")
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
