"""Regression gate: paired bootstrap on score tables, plain comparison on metrics files, git
revisions, the CLI's exit codes and clear errors. Synthetic score tables: the file runs in
seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose

from idv.evaluation.gate import (
    IMPROVED,
    OK,
    PAIRED,
    PLAIN,
    REGRESSION,
    SKIPPED,
    GateError,
    Rule,
    auc_statistic,
    gate,
    read_at_revision,
    verdict_table,
)
from idv.metrics.bootstrap import curve_replicates
from idv.metrics.detection import auc, bpcer_at_worst_apcer, eer

RULES = {
    "eer": {"direction": "lower", "tolerance": 0.01},
    "auc": {"direction": "higher", "tolerance": 0.005},
    "bpcer_at_worst_apcer_10pct": {"direction": "lower", "tolerance": 0.02},
}
FAST = {"n_resamples": 200, "seed": 0}
SPECIES = np.array(["print", "replay", "mask"])


def score_table(n_subjects: int = 150, per_subject: int = 6, seed: int = 0) -> pd.DataFrame:
    """A detection score table: test subjects plus a few val ones; per subject half bona fide,
    half attacks of random species; a subject effect on the scores; a few failures to acquire."""
    rng = np.random.default_rng(seed)
    n_val = 20
    subject = np.repeat(np.arange(n_subjects + n_val), per_subject)
    labels = np.tile(np.arange(per_subject) % 2, n_subjects + n_val)
    effect = rng.normal(0.0, 0.5, n_subjects + n_val)[subject]
    scores = rng.normal(0.0, 1.0, len(labels)) + effect + 2.0 * labels
    acquired = rng.random(len(labels)) > 0.01
    return pd.DataFrame(
        {
            "sample_id": [f"x{i:05d}" for i in range(len(labels))],
            "score": np.where(acquired, scores, np.nan),
            "label": labels,
            "attack_type": np.where(labels == 1, rng.choice(SPECIES, len(labels)), "bona_fide"),
            "subject_id": [f"s{j:03d}" for j in subject],
            "acquired": acquired,
            "split": np.where(subject < n_subjects, "test", "val"),
        }
    )


def rescored(table: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    out = table.copy()
    out["score"] = np.where(out["acquired"], scores, np.nan)
    return out


def write_metrics(path: Path, **values: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({f"test/{k}": v for k, v in values.items()}))
    return path


def by_metric(result) -> dict:
    return {row.metric: row for row in result.rows}


# ------------------------------------------------------------------- score tables: paired test


def test_noisy_candidate_fails_with_confidence():
    base = score_table()
    rng = np.random.default_rng(1)
    cand = rescored(base, base["score"] + rng.normal(0.0, 1.5, len(base)))
    result = gate(base, cand, RULES, **FAST)
    rows = by_metric(result)
    assert result.method == PAIRED and not result.passed and result.exit_code == 1
    assert rows["test/eer"].verdict == REGRESSION and rows["test/eer"].low > 0.01
    assert rows["test/auc"].verdict == REGRESSION and rows["test/auc"].high < -0.005
    lenient = gate(base, cand, {"eer": {"direction": "lower", "tolerance": 0.5}}, **FAST)
    assert lenient.passed and lenient.rows[0].note == "worse, within tolerance"
    for row in result.rows:
        assert row.low <= row.delta <= row.high
        assert row.delta == pytest.approx(row.candidate - row.baseline)


def test_attacks_pushed_down_fail_the_operating_point():
    base = score_table()
    weak = (base["label"] == 1) & (base["attack_type"] == "mask")
    cand = rescored(base, base["score"] - 2.0 * weak)
    rows = by_metric(gate(base, cand, RULES, **FAST))
    assert rows["test/bpcer_at_worst_apcer_10pct"].verdict == REGRESSION


@pytest.mark.parametrize("transform", [np.exp, lambda s: 3.0 * s + 1.0, lambda s: s**3])
def test_monotone_rescoring_passes_with_zero_difference(transform):
    base = score_table()
    cand = rescored(base, transform(base["score"].to_numpy()))
    result = gate(base, cand, RULES, **FAST)
    assert result.passed and result.exit_code == 0
    for row in result.rows:
        assert row.verdict == OK
        assert row.delta == row.low == row.high == 0.0
        assert row.baseline == row.candidate


def test_small_change_passes_and_improvement_is_labelled():
    base = score_table()
    rng = np.random.default_rng(2)
    small = rescored(base, base["score"] + rng.normal(0.0, 0.05, len(base)))
    assert gate(base, small, RULES, **FAST).passed
    noisy = rescored(base, base["score"] + rng.normal(0.0, 1.5, len(base)))
    result = gate(noisy, base, RULES, **FAST)  # the clean system as the candidate
    assert result.passed
    assert {row.verdict for row in result.rows} == {IMPROVED}


def test_worse_point_estimate_without_confidence_is_not_a_regression():
    """Few subjects: a real but small degradation is within the noise, so the gate passes."""
    base = score_table(n_subjects=12)
    rng = np.random.default_rng(3)
    cand = rescored(base, base["score"] + rng.normal(0.0, 0.4, len(base)))
    row = by_metric(gate(base, cand, {"eer": {"direction": "lower"}}, **FAST))["test/eer"]
    assert row.verdict == OK and row.low < 0.0 < row.high


def test_failures_to_acquire_count_against_the_candidate():
    """Generalised rates: an unacquired bona fide sample is flagged as an attack."""
    base = score_table()
    rng = np.random.default_rng(4)
    cand = base.copy()
    lost = (cand["label"] == 0) & (rng.random(len(cand)) < 0.25)
    cand.loc[lost, "acquired"] = False
    cand.loc[lost, "score"] = np.nan
    rows = by_metric(gate(base, cand, RULES, **FAST))
    assert rows["test/bpcer_at_worst_apcer_10pct"].verdict == REGRESSION
    assert rows["test/bpcer_at_worst_apcer_10pct"].low > 0.05


def test_point_values_match_the_detection_metrics():
    """Without failures to acquire, the score side's values are those of idv.metrics.detection
    (what idv-evaluate writes to metrics.json)."""
    base = score_table()
    base = base[base["acquired"] & (base["split"] == "test")]
    metrics = {"test/eer": 0.0, "test/auc": 0.0, "test/bpcer_at_worst_apcer_10pct": 0.0}
    rows = by_metric(gate(metrics, base, RULES))
    s, y, sp = base["score"], base["label"], base["attack_type"]
    assert rows["test/eer"].candidate == pytest.approx(eer(s, y).rate, abs=1e-12)
    assert rows["test/auc"].candidate == pytest.approx(auc(s, y), abs=1e-12)
    assert rows["test/bpcer_at_worst_apcer_10pct"].candidate == pytest.approx(
        bpcer_at_worst_apcer(s, y, sp, 0.10), abs=1e-12
    )


def test_auc_statistic_matches_mann_whitney_with_ties_and_infinities():
    rng = np.random.default_rng(5)
    labels = np.tile([0, 1], 200)
    scores = np.round(rng.normal(0.0, 1.0, len(labels)) + labels, 1)
    codes = np.arange(len(labels)) // 4
    ones = np.ones((1, codes.max() + 1), dtype=np.int32)
    value = curve_replicates(scores, labels, codes, ones, auc_statistic)[0]
    assert value == pytest.approx(auc(scores, labels), abs=1e-12)
    scores[rng.random(len(scores)) < 0.1] = np.inf  # failures to acquire tie among themselves
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    value = curve_replicates(scores, labels, codes, ones, auc_statistic)[0]
    assert value == pytest.approx(greater, abs=1e-12)


# ------------------------------------------------------------------- metrics files: plain test


def test_metrics_files_plain_comparison(tmp_path: Path):
    base = write_metrics(tmp_path / "base.json", eer=0.10, auc=0.95, bpcer_at_worst_apcer_10pct=0.2)
    worse = write_metrics(tmp_path / "w.json", eer=0.13, auc=0.95, bpcer_at_worst_apcer_10pct=0.2)
    close = write_metrics(
        tmp_path / "c.json", eer=0.105, auc=0.948, bpcer_at_worst_apcer_10pct=0.21
    )
    better = write_metrics(tmp_path / "b.json", eer=0.05, auc=0.99, bpcer_at_worst_apcer_10pct=0.1)

    result = gate(base, worse, RULES)
    assert result.method == PLAIN and result.exit_code == 1
    assert [r.metric for r in result.regressions] == ["test/eer"]
    assert by_metric(result)["test/eer"].delta == pytest.approx(0.03)
    assert by_metric(result)["test/eer"].low is None
    assert gate(base, close, RULES).passed
    assert {r.verdict for r in gate(base, close, RULES).rows} == {OK}
    improved = gate(base, better, RULES)
    assert improved.passed and {r.verdict for r in improved.rows} == {IMPROVED}
    # higher is better: an AUC drop beyond the tolerance fails
    auc_drop = write_metrics(tmp_path / "a.json", eer=0.1, auc=0.9, bpcer_at_worst_apcer_10pct=0.2)
    assert [r.metric for r in gate(base, auc_drop, RULES).regressions] == ["test/auc"]


def test_metrics_file_against_a_score_table_is_plain(tmp_path: Path):
    table = score_table()
    table.to_parquet(tmp_path / "scores.parquet", index=False)
    noisy = rescored(table, table["score"] + np.random.default_rng(6).normal(0, 1.5, len(table)))
    noisy.to_parquet(tmp_path / "noisy.parquet", index=False)
    values = by_metric(gate(tmp_path / "scores.parquet", tmp_path / "scores.parquet", RULES))
    metrics = {key: row.candidate for key, row in values.items()}
    result = gate(metrics, tmp_path / "noisy.parquet", RULES)
    assert result.method == PLAIN and not result.passed
    assert by_metric(result)["test/eer"].verdict == REGRESSION
    lost = int((~table["acquired"] & (table["split"] == "test")).sum())
    assert lost > 0 and by_metric(result)["test/eer"].note == (
        f"score table counts {lost} failures to acquire"
    )


# ----------------------------------------------------------------------------------- git sides


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo whose out/metrics.json got worse in the last commit (eer 0.10 -> 0.15)."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    _git(root, "config", "user.name", "gate test")
    _git(root, "config", "user.email", "gate@example.com")
    _git(root, "config", "commit.gpgsign", "false")
    for eer_value in (0.10, 0.15):
        write_metrics(root / "out" / "metrics.json", eer=eer_value, auc=0.95)
        _git(root, "add", "out/metrics.json")
        _git(root, "commit", "-q", "-m", f"eer {eer_value}")
    return root


def test_baseline_from_a_git_revision(repo: Path, tmp_path: Path):
    rules = {"eer": {"direction": "lower", "tolerance": 0.01}}
    result = gate("git:HEAD~1:out/metrics.json", "out/metrics.json", rules, cwd=repo)
    row = by_metric(result)["test/eer"]
    assert (row.baseline, row.candidate, row.verdict) == (0.10, 0.15, REGRESSION)
    assert result.baseline == "git:HEAD~1:out/metrics.json"
    # the same through baseline_rev, with an absolute path from outside the repo
    current = repo / "out" / "metrics.json"
    again = gate(current, current, rules, baseline_rev="HEAD~1", cwd=tmp_path)
    assert by_metric(again)["test/eer"].verdict == REGRESSION
    # a relative path inside the repo resolves against cwd (here a subfolder) to a root path
    assert b"0.15" in read_at_revision("metrics.json", "HEAD", cwd=repo / "out")
    assert gate("git:HEAD:out/metrics.json", current, rules, cwd=repo).passed


def test_git_errors_are_clear(repo: Path, tmp_path: Path):
    rules = {"eer": {"direction": "lower"}}
    with pytest.raises(GateError, match="unknown git revision 'nope'"):
        gate("git:nope:out/metrics.json", "out/metrics.json", rules, cwd=repo)
    with pytest.raises(GateError, match="does not exist at revision 'HEAD~1'"):
        gate("git:HEAD~1:out/other.json", "out/metrics.json", rules, cwd=repo)
    outside = write_metrics(tmp_path / "outside" / "m.json", eer=0.1)
    with pytest.raises(GateError, match="not inside a git repository"):
        gate(outside, outside, rules, baseline_rev="HEAD")
    with pytest.raises(GateError, match="expected git:REV:PATH"):
        gate("git:HEAD", "out/metrics.json", rules, cwd=repo)


# ------------------------------------------------------------------------------------------ CLI


def _cli(tmp_path: Path, name: str, *overrides: str) -> subprocess.Popen:
    """The installed console script in a subprocess (started, not awaited)."""
    script = Path(sys.executable).parent / "idv-gate"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "idv.cli.gate"]
    return subprocess.Popen(
        [*command, *overrides, f"hydra.run.dir={tmp_path / name}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_exit_codes(tmp_path: Path):
    base = write_metrics(tmp_path / "base.json", eer=0.10, auc=0.95, bpcer_at_worst_apcer_10pct=0.2)
    worse = write_metrics(tmp_path / "w.json", eer=0.20, auc=0.95, bpcer_at_worst_apcer_10pct=0.2)
    runs = {  # concurrently: each start costs ~1.5 s of imports
        "failed": _cli(tmp_path, "f", f"baseline={base}", f"candidate={worse}", "output=v.json"),
        "passed": _cli(tmp_path, "p", f"baseline={base}", f"candidate={base}"),
    }
    out = {name: (proc.wait(timeout=120), *proc.communicate()) for name, proc in runs.items()}
    code, stdout, stderr = out["failed"]
    assert code == 1, stderr
    assert "REGRESSION" in stdout and "test/eer" in stdout
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["passed"] is False and verdict["regressions"] == ["test/eer"]
    assert out["passed"][0] == 0, out["passed"][2]


def test_cli_cannot_judge_exits_2(repo: Path, tmp_path: Path, capsys):
    from idv.cli.gate import run

    current = repo / "out" / "metrics.json"
    cfg = compose("gate", [f"baseline=git:nope:{current}", f"candidate={current}"], tmp_path)
    assert run(cfg) == 2
    assert "cannot judge: unknown git revision 'nope'" in capsys.readouterr().err
    # a `~` needs quotes in a Hydra override
    overrides = [f"baseline={current}", "baseline_rev='HEAD~1'", f"candidate={current}"]
    assert run(compose("gate", overrides, tmp_path)) == 2  # no bpcer_at_worst_apcer_10pct
    assert "'test/bpcer_at_worst_apcer_10pct' is missing from git:HEAD~1:" in (
        capsys.readouterr().err
    )
    assert run(compose("gate", [*overrides, "missing=skip"], tmp_path)) == 1
    assert "skipped" in capsys.readouterr().out


def test_cli_run_on_score_tables(tmp_path: Path):
    """In process, through the composed config: paired bootstrap, verdict JSON written."""
    from idv.cli.gate import run

    base = score_table()
    noisy = rescored(base, base["score"] + np.random.default_rng(7).normal(0, 1.5, len(base)))
    base.to_parquet(tmp_path / "base.parquet", index=False)
    noisy.to_parquet(tmp_path / "cand.parquet", index=False)
    overrides = ["bootstrap.n_resamples=200", f"output={tmp_path / 'gate.json'}"]
    cfg = compose(
        "gate",
        [f"baseline={tmp_path / 'base.parquet'}", f"candidate={tmp_path / 'cand.parquet'}"]
        + overrides,
        tmp_path,
    )
    assert run(cfg) == 1
    verdict = json.loads((tmp_path / "gate.json").read_text())
    assert verdict["method"] == PAIRED and verdict["settings"]["n_resamples"] == 200
    assert {row["metric"] for row in verdict["rows"]} == {
        "test/eer",
        "test/auc",
        "test/bpcer_at_worst_apcer_10pct",
    }
    cfg = compose(
        "gate",
        [f"baseline={tmp_path / 'base.parquet'}", f"candidate={tmp_path / 'base.parquet'}"]
        + overrides,
        tmp_path,
    )
    assert run(cfg) == 0


def test_verdict_table_renders():
    from rich.console import Console

    result = gate({"test/eer": 0.1}, {"test/eer": 0.2}, {"eer": "lower"})
    console = Console(width=160, record=True)
    console.print(verdict_table(result))
    text = console.export_text()
    assert "REGRESSION" in text and "FAILED" in text and "+0.1000" in text


# --------------------------------------------------------------------------------------- errors


def test_mismatched_sample_sets_are_an_error():
    base = score_table()
    cand = base.drop(index=[3, 10]).copy()
    cand.loc[cand.index[0], "sample_id"] = "intruder"
    with pytest.raises(GateError, match=r"3 sample ids only in the baseline \['x00000', 'x00003'"):
        gate(base, cand, RULES, **FAST)
    relabelled = base.copy()
    flip = 1 - relabelled.loc[0, "label"]  # a consistent relabel: label and species agree
    relabelled.loc[0, ["label", "attack_type"]] = [flip, "print" if flip else "bona_fide"]
    with pytest.raises(GateError, match="disagree on 'label'.*x00000"):
        gate(base, relabelled, RULES, **FAST)


def test_missing_metric_is_an_error_or_skipped():
    with pytest.raises(GateError, match="'test/auc' is missing from <metrics>"):
        gate({"test/eer": 0.1}, {"test/eer": 0.1, "test/auc": 0.9}, RULES)
    result = gate(
        {"test/eer": 0.1}, {"test/eer": 0.3}, {"eer": "lower", "auc": "higher"}, missing="skip"
    )
    assert by_metric(result)["test/auc"].verdict == SKIPPED
    assert by_metric(result)["test/eer"].verdict == REGRESSION


def test_unknown_metric_for_score_tables_is_an_error():
    base = score_table()
    with pytest.raises(GateError, match="not gateable from score tables"):
        gate(base, base, {"bpcer@val_eer_threshold": "lower"}, **FAST)
    with pytest.raises(GateError, match="no rows of split 'calib'"):
        gate(base, base, {"calib/eer": "lower"}, **FAST)


def test_bad_rules_and_sources_are_errors(tmp_path: Path):
    with pytest.raises(GateError, match="direction must be"):
        Rule("smaller")
    with pytest.raises(GateError, match="takes `direction`"):
        gate({"test/eer": 0.1}, {"test/eer": 0.1}, {"eer": {"direction": "lower", "tol": 1}})
    with pytest.raises(GateError, match="no such file"):
        gate(tmp_path / "absent.json", {"test/eer": 0.1}, {"eer": "lower"})
    with pytest.raises(GateError, match="not a number"):
        gate({"test/eer": "n/a"}, {"test/eer": 0.1}, {"eer": "lower"})
