"""Regression gate: a candidate against a baseline, per metric, with a pass/fail verdict.

`dvc metrics diff` shows differences but never fails; CI needs a verdict. Each side is a
`metrics.json` (flat keys like `test/eer`), a detection score table (`scores.parquet`), or either
of them as committed at a git revision (`git:REV:PATH`). Each gated metric has a rule: its good
direction (`lower` / `higher`) and a tolerance, in the metric's own units.

- A metrics file on either side: plain comparison. delta = candidate - baseline; REGRESSION when
  the candidate is worse by more than the tolerance, `improved` when better by more than it.
- Score tables on BOTH sides (one owned evaluation set, rows joined on `sample_id`): a paired
  subject bootstrap of the difference (`idv.metrics.bootstrap.paired_bootstrap_difference`), each
  system's threshold re-chosen in every resample. REGRESSION only when the WHOLE interval of
  candidate - baseline lies beyond the tolerance on the bad side (worse with confidence);
  `improved` when it lies wholly beyond the tolerance on the good side. Failures to acquire
  count with the generalised rates (an unacquired sample scores +inf: flagged as an attack).

Metric names: a name with a `/` is the key itself (`test/eer`); a bare name (`eer`) means
`<split>/<name>`. From score tables the key's prefix picks the split's rows and the rest the
statistic: `eer`, `auc`, `bpcer_at_worst_apcer_<X>pct`, `bpcer_at_apcer_<X>pct`,
`apcer_at_bpcer_<X>pct` (worst species, as `detection.apcer_at_bpcer`).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from idv.atomic import write_json
from idv.errors import IdvError
from idv.metrics.bootstrap import (
    Statistic,
    auc_statistic,
    bpcer_at_apcer_statistic,
    bpcer_at_worst_apcer_statistic,
    curve_replicates,
    eer_statistic,
    paired_bootstrap_difference,
    worst_apcer_at_bpcer_statistic,
)
from idv.metrics.detection import generalised_scores
from idv.score_tables import ScoreTableError, validate_detection_table

__all__ = [
    "GateError",
    "GateResult",
    "GateRow",
    "Rule",
    "Side",
    "gate",
    "load_side",
    "read_at_revision",
    "score_statistic",
    "verdict_table",
    "write_result",
]

LOWER, HIGHER = "lower", "higher"
OK, REGRESSION, IMPROVED, SKIPPED = "ok", "REGRESSION", "improved", "skipped"
PLAIN, PAIRED = "plain", "paired bootstrap"
GIT_PREFIX = "git:"
_SHOWN = 5  # ids / keys quoted in an error message


class GateError(IdvError, ValueError):
    """The gate cannot judge: a bad input, not a regression (the CLI exits 2, not 1)."""


# ----------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """How one metric is judged: its good `direction` and the `tolerance` (absolute, in the
    metric's units) by which the candidate may be worse before it is a regression."""

    direction: str
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in (LOWER, HIGHER):
            raise GateError(f"direction must be {LOWER!r} or {HIGHER!r}, got {self.direction!r}")
        if not (isinstance(self.tolerance, int | float) and self.tolerance >= 0):
            raise GateError(f"tolerance must be a number >= 0, got {self.tolerance!r}")

    def worse_by(self, delta: float) -> float:
        """How much worse the candidate is for a difference candidate - baseline."""
        return delta if self.direction == LOWER else -delta

    @classmethod
    def parse(cls, name: str, spec: Rule | Mapping | str) -> Rule:
        if isinstance(spec, Rule):
            return spec
        if isinstance(spec, str):  # shorthand: `eer: lower`
            return cls(spec)
        if not isinstance(spec, Mapping):
            raise GateError(f"rule of {name!r} must be a mapping, got {spec!r}")
        unknown = set(spec) - {"direction", "tolerance"}
        if unknown or "direction" not in spec:
            raise GateError(
                f"rule of {name!r} takes `direction` (lower|higher) and `tolerance`, "
                f"got keys {sorted(spec)}"
            )
        try:
            tolerance = float(spec.get("tolerance", 0.0))
        except (TypeError, ValueError) as err:
            raise GateError(f"rule of {name!r}: tolerance must be a number: {err}") from err
        return cls(str(spec["direction"]), tolerance)


def metric_key(name: str, split: str) -> str:
    """`eer` -> `test/eer` for split test; a name with a `/` is already a key."""
    return name if "/" in name else f"{split}/{name}"


# ------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class GateRow:
    """One gated metric. `delta` = candidate - baseline; `low` / `high` bound it (paired
    bootstrap only, at `level`)."""

    metric: str
    direction: str
    tolerance: float
    baseline: float | None
    candidate: float | None
    delta: float | None
    verdict: str
    method: str
    low: float | None = None
    high: float | None = None
    level: float | None = None
    n_resamples: int | None = None
    n_dropped: int | None = None
    note: str = ""


@dataclass(frozen=True)
class GateResult:
    rows: tuple[GateRow, ...]
    baseline: str
    candidate: str
    method: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def regressions(self) -> tuple[GateRow, ...]:
        return tuple(r for r in self.rows if r.verdict == REGRESSION)

    @property
    def passed(self) -> bool:
        return not self.regressions

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "method": self.method,
            "settings": dict(self.settings),
            "regressions": [r.metric for r in self.regressions],
            "rows": [asdict(r) for r in self.rows],
        }


def write_result(result: GateResult, file: str | os.PathLike) -> Path:
    """The verdict table as JSON (atomic)."""
    return write_json(result.to_dict(), file)


def verdict_table(result: GateResult):
    """A rich Table of every gated metric."""
    from rich.markup import escape
    from rich.table import Table

    def num(value: float | None, signed: bool = False) -> str:
        return "-" if value is None else f"{value:+.4f}" if signed else f"{value:.4f}"

    verdict = "[bold green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
    table = Table(
        title=f"gate ({result.method}): {verdict}",
        caption=f"baseline {escape(result.baseline)}\ncandidate {escape(result.candidate)}",
    )
    for name in ("metric", "better", "tolerance", "baseline", "candidate", "delta"):
        table.add_column(name, justify="left" if name in ("metric", "better") else "right")
    level = next((r.level for r in result.rows if r.level is not None), None)
    table.add_column(f"{level:.0%} interval" if level else "interval", justify="right")
    table.add_column("verdict")
    style = {REGRESSION: "bold red", IMPROVED: "green", SKIPPED: "dim"}
    for r in result.rows:
        interval = "-" if r.low is None else escape(f"[{r.low:+.4f}, {r.high:+.4f}]")
        shown = f"[{style[r.verdict]}]{r.verdict}[/]" if r.verdict in style else r.verdict
        if r.note:
            shown += f" ({escape(r.note)})"
        table.add_row(
            escape(r.metric),
            r.direction,
            f"{r.tolerance:g}",
            num(r.baseline),
            num(r.candidate),
            num(r.delta, signed=True),
            interval,
            shown,
        )
    return table


# ------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Side:
    """One side of the comparison: flat metrics, or a detection score table."""

    label: str
    metrics: dict[str, float] | None = None
    scores: pd.DataFrame | None = None

    @property
    def is_scores(self) -> bool:
        return self.scores is not None


Source = str | os.PathLike | Mapping | pd.DataFrame | Side


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError as err:
        raise GateError("reading a file at a git revision needs `git` on PATH") from err


def read_at_revision(
    path: str | os.PathLike, rev: str, cwd: str | os.PathLike | None = None
) -> bytes:
    """The bytes of `path` as committed at `rev` (`git show REV:PATH`), in the git repository
    containing `path`. A relative `path` is relative to `cwd` (default: the working directory);
    it need not exist in the working tree any more."""
    if not rev or rev.startswith("-"):
        raise GateError(f"bad git revision {rev!r}")
    file = Path(path)
    if not file.is_absolute():
        file = Path(cwd or os.getcwd()) / file
    file = Path(os.path.normpath(file))
    anchor = file.parent
    while not anchor.is_dir():  # the file (or its folders) may exist only in history
        if anchor.parent == anchor:
            break
        anchor = anchor.parent
    top = _git(["rev-parse", "--show-toplevel"], anchor)
    if top.returncode != 0:
        raise GateError(f"{path}: {anchor} is not inside a git repository")
    root = Path(top.stdout.decode().strip())
    rel = os.path.relpath(Path(os.path.realpath(anchor)) / file.relative_to(anchor), root)
    if Path(rel).parts[:1] == ("..",):
        raise GateError(f"{path} lies outside the git repository {root}")
    rel = Path(rel).as_posix()
    if _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root).returncode != 0:
        raise GateError(f"unknown git revision {rev!r} in {root}")
    shown = _git(["show", "--no-textconv", f"{rev}:{rel}"], root)
    if shown.returncode != 0:
        raise GateError(
            f"{rel!r} does not exist at revision {rev!r} in {root} "
            f"(git: {shown.stderr.decode().strip()})"
        )
    return shown.stdout


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


def _parse(content: bytes, suffix: str, label: str) -> Side:
    try:
        if suffix == ".json":
            data = json.loads(content)
            if not isinstance(data, Mapping):
                raise GateError(f"{label}: a metrics file must hold a JSON object")
            return Side(label, metrics=_flatten(data))
        if suffix == ".parquet":
            return _score_side(label, pd.read_parquet(io.BytesIO(content)))
        if suffix == ".csv":
            return _score_side(label, pd.read_csv(io.BytesIO(content)))
    except GateError:
        raise
    except Exception as err:
        hint = ""
        if content[:40].startswith((b"version https://git-lfs", b"outs:")):
            hint = " (it is an LFS/DVC pointer, not the data: fetch the file itself)"
        raise GateError(f"{label}: cannot read it as {suffix}: {err}{hint}") from err
    raise GateError(
        f"{label}: unknown file type {suffix!r}; expected metrics .json or a score table "
        ".parquet / .csv"
    )


def _score_side(label: str, frame: pd.DataFrame) -> Side:
    """A score-table side, checked by the detection table's contract (`idv.score_tables`)."""
    try:
        return Side(label, scores=validate_detection_table(frame, label))
    except ScoreTableError as err:
        raise GateError(str(err)) from err


def load_side(source: Source, rev: str | None = None, cwd: str | os.PathLike | None = None) -> Side:
    """A side from a path (`metrics.json`, `scores.parquet`, `.csv`), `git:REV:PATH`, a path with
    `rev`, a mapping of metrics, or a score DataFrame."""
    if isinstance(source, Side):
        return source
    if isinstance(source, pd.DataFrame):
        return _score_side(source.attrs.get("source", "<score table>"), source)
    if isinstance(source, Mapping):
        return Side("<metrics>", metrics=_flatten(source))
    spec = os.fspath(source)
    if spec.startswith(GIT_PREFIX):
        if rev is not None:
            raise GateError(f"{spec!r} names its revision already; drop the separate rev {rev!r}")
        rev, sep, spec = spec[len(GIT_PREFIX) :].partition(":")
        if not sep or not rev or not spec:
            raise GateError(f"expected git:REV:PATH, got {os.fspath(source)!r}")
    suffix = Path(spec).suffix.lower()
    if rev is not None:
        return _parse(read_at_revision(spec, rev, cwd), suffix, f"git:{rev}:{spec}")
    file = Path(spec) if Path(spec).is_absolute() else Path(cwd or os.getcwd()) / spec
    if not file.is_file():
        raise GateError(f"{spec}: no such file")
    return _parse(file.read_bytes(), suffix, spec)


# ------------------------------------------------------------------------ score-table statistics


_PCT = r"(\d+(?:\.\d+)?)pct"
# name pattern -> (statistic factory from the target rate, needs species)
_TARGETED: dict[re.Pattern, tuple[Callable[[float], Statistic], bool]] = {
    re.compile(rf"bpcer_at_worst_apcer_{_PCT}"): (bpcer_at_worst_apcer_statistic, True),
    re.compile(rf"bpcer_at_apcer_{_PCT}"): (bpcer_at_apcer_statistic, False),
    re.compile(rf"apcer_at_bpcer_{_PCT}"): (worst_apcer_at_bpcer_statistic, True),
}
GATEABLE = (
    "eer, auc, bpcer_at_worst_apcer_<X>pct, bpcer_at_apcer_<X>pct, apcer_at_bpcer_<X>pct "
    "(worst species)"
)


def score_statistic(name: str) -> tuple[Statistic, bool]:
    """(statistic, needs species) for a metric name without its split prefix."""
    if name == "eer":
        return eer_statistic, False
    if name == "auc":
        return auc_statistic, False
    for pattern, (factory, needs_species) in _TARGETED.items():
        match = pattern.fullmatch(name)
        if match:
            return factory(float(match.group(1)) / 100.0), needs_species
    raise GateError(
        f"metric {name!r} is not gateable from score tables; known: {GATEABLE}. Thresholded "
        "figures (`...@threshold`) and counts are gated from metrics.json"
    )


def _split_key(key: str) -> tuple[str, str]:
    split, sep, name = key.partition("/")
    if not sep or not split or "/" in name:
        raise GateError(f"metric {key!r}: a score-table metric is <split>/<name>")
    return split, name


@dataclass(frozen=True)
class _Rows:
    """One split's rows, ready for the bootstrap (generalised scores, acquired -> +inf)."""

    sample_id: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    species: np.ndarray | None
    scores: np.ndarray


def _split_rows(side: Side, split: str) -> pd.DataFrame:
    """The split's rows (all rows of a table without `split`); validated when loaded."""
    table = side.scores
    if "split" in table.columns:
        rows = table[table["split"].astype(str) == split]
        if rows.empty:
            raise GateError(
                f"{side.label}: no rows of split {split!r} "
                f"(splits: {sorted(table['split'].astype(str).unique())})"
            )
    else:
        rows = table
    return rows


def _generalised(side: Side, rows: pd.DataFrame) -> np.ndarray:
    return generalised_scores(
        rows["score"].to_numpy(np.float64), rows["acquired"].to_numpy(), rows["label"].to_numpy()
    )


def _joined(baseline: Side, candidate: Side, split: str) -> tuple[_Rows, _Rows]:
    """Both sides' rows of `split`, aligned on sample_id; shared labels / subjects / species."""
    a, b = _split_rows(baseline, split), _split_rows(candidate, split)
    ids_a, ids_b = set(a["sample_id"]), set(b["sample_id"])
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b, key=str), sorted(ids_b - ids_a, key=str)
        raise GateError(
            f"the score tables' {split!r} rows differ: a paired gate needs one evaluation set. "
            f"{len(only_a)} sample ids only in the baseline {only_a[:_SHOWN]}, {len(only_b)} only "
            f"in the candidate {only_b[:_SHOWN]}"
        )
    a = a.sort_values("sample_id", kind="stable")
    b = b.set_index("sample_id").loc[a["sample_id"].to_numpy()]
    shared = ["label", "subject_id"] + (
        ["attack_type"] if "attack_type" in a and "attack_type" in b else []
    )
    for column in shared:
        va, vb = a[column].to_numpy(), b[column].to_numpy()
        differ = ~((va == vb) | (pd.isna(va) & pd.isna(vb)))
        if differ.any():
            raise GateError(
                f"the score tables disagree on {column!r} for {int(differ.sum())} samples, e.g. "
                f"{a['sample_id'].to_numpy()[differ][:_SHOWN].tolist()}: not one evaluation set"
            )
    species = a["attack_type"].astype(str).to_numpy() if "attack_type" in a else None
    common = (a["sample_id"].to_numpy(), a["label"].to_numpy(), a["subject_id"].to_numpy())
    return (
        _Rows(*common, species, _generalised(baseline, a)),
        _Rows(*common, species, _generalised(candidate, b)),
    )


def _own_rows(side: Side, split: str) -> _Rows:
    rows = _split_rows(side, split)
    species = rows["attack_type"].astype(str).to_numpy() if "attack_type" in rows else None
    return _Rows(
        rows["sample_id"].to_numpy(),
        rows["label"].to_numpy(),
        rows["subject_id"].to_numpy(),
        species,
        _generalised(side, rows),
    )


def _statistic_for(key: str, rows: _Rows) -> tuple[Statistic, np.ndarray | None]:
    statistic, needs_species = score_statistic(_split_key(key)[1])
    if needs_species and rows.species is None:
        raise GateError(f"metric {key!r} needs the score tables' attack_type column")
    return statistic, rows.species if needs_species else None


def _point(rows: _Rows, key: str, label: str) -> float:
    """The statistic on the rows themselves (every subject weighs 1)."""
    statistic, species = _statistic_for(key, rows)
    _, codes = np.unique(rows.subjects, return_inverse=True)
    ones = np.ones((1, int(codes.max()) + 1), dtype=np.int32)
    try:
        value = float(
            curve_replicates(rows.scores, rows.labels, codes, ones, statistic, species=species)[0]
        )
    except ValueError as err:
        raise GateError(f"{label}: {key}: {err}") from err
    if math.isnan(value):
        raise GateError(f"{label}: {key} is undefined on these scores")
    return value


# ----------------------------------------------------------------------------------------- gate


def _metric_value(side: Side, key: str, missing: str) -> float | None:
    if key not in side.metrics:
        if missing == "skip":
            return None
        known = sorted(side.metrics)
        raise GateError(
            f"metric {key!r} is missing from {side.label} (it has {len(known)} keys, e.g. "
            f"{known[:_SHOWN]}); set missing=skip to pass over absent metrics"
        )
    value = side.metrics[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise GateError(f"metric {key!r} in {side.label} is not a number: {value!r}")
    return float(value)


def _plain_row(key: str, rule: Rule, base: float, cand: float) -> GateRow:
    delta = cand - base
    worse = rule.worse_by(delta)
    verdict = REGRESSION if worse > rule.tolerance else IMPROVED if worse < -rule.tolerance else OK
    return GateRow(key, rule.direction, rule.tolerance, base, cand, delta, verdict, PLAIN)


def _skipped_row(key: str, rule: Rule, base: float | None, cand: float | None) -> GateRow:
    absent = " and ".join(n for n, v in (("baseline", base), ("candidate", cand)) if v is None)
    return GateRow(
        key, rule.direction, rule.tolerance, base, cand, None, SKIPPED, PLAIN, note=f"no {absent}"
    )


def _paired_row(
    key: str, rule: Rule, base: _Rows, cand: _Rows, n_resamples: int, seed: int, level: float
) -> GateRow:
    statistic, species = _statistic_for(key, base)
    try:
        interval = paired_bootstrap_difference(
            base.scores,
            cand.scores,
            base.labels,
            base.subjects,
            statistic,
            species=species,
            n_resamples=n_resamples,
            seed=seed,
            level=level,
        )
    except ValueError as err:
        raise GateError(f"{key}: {err}") from err
    b, c = _point(base, key, "baseline"), _point(cand, key, "candidate")
    # The whole interval beyond the tolerance on one side, or it is noise.
    worse_low, worse_high = sorted((rule.worse_by(interval.low), rule.worse_by(interval.high)))
    if worse_low > rule.tolerance:
        verdict = REGRESSION
    elif worse_high < -rule.tolerance:
        verdict = IMPROVED
    else:
        verdict = OK
    notes = []
    if verdict == OK and (worse_low > 0 or worse_high < 0):  # confident, but within tolerance
        notes.append(f"{'worse' if worse_low > 0 else 'better'}, within tolerance")
    if interval.n_dropped:
        notes.append(f"{interval.n_dropped} resamples undefined")
    return GateRow(
        key,
        rule.direction,
        rule.tolerance,
        baseline=b,
        candidate=c,
        delta=interval.estimate,
        verdict=verdict,
        method=PAIRED,
        low=interval.low,
        high=interval.high,
        level=level,
        n_resamples=interval.n_resamples,
        n_dropped=interval.n_dropped,
        note="; ".join(notes),
    )


def gate(
    baseline: Source,
    candidate: Source,
    rules: Mapping[str, Rule | Mapping | str],
    *,
    split: str = "test",
    missing: str = "fail",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    baseline_rev: str | None = None,
    candidate_rev: str | None = None,
    cwd: str | os.PathLike | None = None,
) -> GateResult:
    """Judge `candidate` against `baseline`, one row per rule (see the module docstring).

    `rules` maps a metric name (`test/eer`, or `eer` for `<split>/eer`) to a Rule or a mapping
    `{direction: lower|higher, tolerance: float}`. `missing`: `fail` (a GateError) or `skip`
    (the row is `skipped`) for a metric absent from a metrics file. `baseline_rev` /
    `candidate_rev` read that side's path at a git revision (as `git:REV:PATH` does). The
    bootstrap settings apply when both sides are score tables; every metric uses the same
    `seed`, so their resamples are shared.
    """
    if missing not in ("fail", "skip"):
        raise GateError(f"missing must be 'fail' or 'skip', got {missing!r}")
    if not rules:
        raise GateError("no metrics to gate: give at least one rule")
    parsed = {metric_key(str(k), split): Rule.parse(str(k), v) for k, v in rules.items()}
    base, cand = load_side(baseline, baseline_rev, cwd), load_side(candidate, candidate_rev, cwd)
    paired = base.is_scores and cand.is_scores
    rows: list[GateRow] = []
    if paired:
        joined: dict[str, tuple[_Rows, _Rows]] = {}
        for key in parsed:  # names first: an unknown metric fails before any bootstrap
            score_statistic(_split_key(key)[1])
        for key, rule in parsed.items():
            split_name = _split_key(key)[0]
            if split_name not in joined:
                joined[split_name] = _joined(base, cand, split_name)
            a, b = joined[split_name]
            rows.append(_paired_row(key, rule, a, b, n_resamples, seed, level))
    else:
        own: dict[tuple[int, str], _Rows] = {}

        def value(side: Side, index: int, key: str) -> float | None:
            if not side.is_scores:
                return _metric_value(side, key, missing)
            split_name = _split_key(key)[0]
            if (index, split_name) not in own:
                own[index, split_name] = _own_rows(side, split_name)
            return _point(own[index, split_name], key, side.label)

        for key, rule in parsed.items():
            b, c = value(base, 0, key), value(cand, 1, key)
            if b is None or c is None:
                rows.append(_skipped_row(key, rule, b, c))
                continue
            row = _plain_row(key, rule, b, c)
            # A score table's rates are generalised (failures to acquire count against the
            # system): say how many, since a metrics file from elsewhere may not count them.
            lost = sum(
                int((~np.isfinite(r.scores)).sum())
                for (_, split_name), r in own.items()
                if split_name == _split_key(key)[0]
            )
            if lost:
                row = replace(row, note=f"score table counts {lost} failures to acquire")
            rows.append(row)
    settings: dict[str, Any] = {"split": split, "missing": missing}
    if paired:
        settings.update(n_resamples=n_resamples, seed=seed, level=level)
    return GateResult(tuple(rows), base.label, cand.label, PAIRED if paired else PLAIN, settings)
