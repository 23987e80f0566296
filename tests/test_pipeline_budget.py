"""scripts/pipeline_budget.py: the budget file is consistent and documented, a run is timed
stage by stage from DVC's own output, and the verdict flags what does not fit."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts/pipeline_budget.py"
spec = importlib.util.spec_from_file_location("pipeline_budget", SCRIPT)
budget_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(budget_script)


def test_the_budget_fits_and_docs_show_it() -> None:
    budget = budget_script.load_budget()
    docs = (ROOT / "docs/architecture.md").read_text()
    assert budget_script.markdown(budget) in docs
    # Every task of the pipeline has its own budget line.
    tasks = yaml.safe_load((ROOT / "params.yaml").read_text())["tasks"]
    assert set(tasks) <= set(budget["tasks"])


def test_a_budget_that_does_not_sum_is_refused(tmp_path: Path) -> None:
    budget = yaml.safe_load((ROOT / "conf/pipeline_budget.yaml").read_text())
    budget["tasks"]["pad"]["train"] = budget["total"]
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(budget))
    with pytest.raises(ValueError, match="budget.yaml: the stage budgets sum to"):
        budget_script.load_budget(path)
    del budget["tasks"]["pad"]["train"]
    path.write_text(yaml.safe_dump(budget))
    with pytest.raises(ValueError, match="task 'pad' budgets"):
        budget_script.load_budget(path)


def fake_dvc(bin_dir: Path) -> None:
    """A `dvc` that prints what `dvc repro` prints, a stage taking ~0.3 s."""
    bin_dir.mkdir()
    script = bin_dir / "dvc"
    script.write_text(
        "#!/bin/sh\n"
        "echo \"Stage 'prepare@pad' didn't change, skipping\"\n"
        "echo \"Running stage 'train@pad':\"\n"
        "echo '> idv-train task=pad'\n"
        "sleep 0.3\n"
        "echo \"Running stage 'evaluate@pad':\"\n"
        "echo '> idv-evaluate task=pad'\n"
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_run_times_each_stage_from_dvc_output(tmp_path: Path, monkeypatch, capsys) -> None:
    fake_dvc(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "timings.json"
    code, timings = budget_script.run([], out)
    assert code == 0 and json.loads(out.read_text()) == timings
    stages = timings["stages"]
    assert stages["prepare@pad"] == {"status": "skipped", "seconds": 0.0}
    assert stages["train@pad"]["status"] == "ran" and 0.25 <= stages["train@pad"]["seconds"] < 5
    assert stages["evaluate@pad"]["status"] == "ran"
    assert "Running stage 'train@pad'" in capsys.readouterr().out  # passed through


def test_verdict_flags_a_slow_stage_and_a_task_without_budget() -> None:
    budget = budget_script.load_budget()
    ran = {"status": "ran", "seconds": 1.0}
    stages = {f"{s}@{t}": dict(ran) for t in budget["tasks"] for s in budget["stages"]}
    timings = {"stages": stages, "wall_seconds": 10.0, "cpus": 2}
    table, fits = budget_script.verdict(budget, timings)
    assert fits and "OVER" not in table

    stages["train@face_match"]["seconds"] = budget["tasks"]["face_match"]["train"] + 1.0
    table, fits = budget_script.verdict(budget, timings)
    assert not fits and "train@face_match" in table and "OVER" in table

    stages["train@face_match"]["seconds"] = 1.0
    stages["train@newtask"] = dict(ran)
    table, fits = budget_script.verdict(budget, timings)
    assert not fits and "NO BUDGET" in table
