"""End to end: `dvc repro` of the whole pipeline on the tiny profile, in a copy of the repo.

Its cost must grow by one tiny pipeline per task, not by several: the whole pipeline runs once
(clean, every task, timed stage by stage by scripts/pipeline_budget.py); the other checks run
on one task's stages, which take seconds. It checks what CI and researchers rely on: a clean
run produces every task's metrics, thresholds and a loadable bundle; a second run does nothing;
a change to one task's config re-runs only that task's affected stages (not the corpus); and
forcing that task's training and evaluation again reproduces its checkpoint and tables byte for
byte (DVC then finds nothing downstream to re-run: deterministic). Then, on the same copy:
`dvc push` / `dvc pull` through the default remote (a directory beside the clone) restore every
output byte for byte, and no corpus or model is in git; `dvc exp run -S` on a calibration
parameter re-runs only calibration (up to calibrate@pad: the export takes longer), and
`dvc exp show` compares the experiment with the baseline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "train", "evaluate", "calibrate", "export")
DETERMINISTIC = (
    "outputs/pad/train/checkpoints/best.ckpt",
    "outputs/pad/evaluate/tables/scores.parquet",
    "outputs/pad/evaluate/metrics.json",
)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file() and f != "dvc.lock"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def dvc(repo: Path, *args: str, stderr: bool = True) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (
        f"dvc {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout + done.stderr if stderr else done.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    for name in tracked_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("profile: default", "profile: tiny"))
    for cmd in (
        ["init", "-q"],
        ["config", "user.name", "t"],  # `dvc exp run` commits too
        ["config", "user.email", "t@t"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        subprocess.run(["git", *cmd], cwd=repo, check=True, capture_output=True)
    return repo


def metrics(repo: Path) -> dict:
    return json.loads((repo / "outputs/pad/evaluate/metrics.json").read_text())


def budget_run(repo: Path) -> dict:
    """`dvc repro` through the budget script (as scripts/run_default.sh runs it): its stage
    timings, which the note's suite projection is made from."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "scripts/pipeline_budget.py", "--run"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, f"dvc repro failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert "pipeline time against conf/pipeline_budget.yaml" in done.stdout
    return json.loads((repo / "outputs/pipeline_timings.json").read_text())


@pytest.mark.slow
def test_dvc_repro_end_to_end(repo: Path) -> None:
    from idv import kinds
    from idv.serving import load_bundle
    from idv.thresholds import Thresholds

    timings = budget_run(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    tasks = params["tasks"]
    stages = {f"{stage}@{task}" for task in tasks for stage in STAGES}
    # A corpus made from another task's bundle has a prepare stage of its own (dvc.yaml).
    stages = {s.replace("prepare@", "prepare_from_bundle@") if s.split("@")[1] in params["linked"]
              else s for s in stages}  # fmt: skip
    assert {k for k, v in timings["stages"].items() if v["status"] == "ran"} == stages
    # Every task: test metrics, thresholds of its kind, a bundle that loads (checksums checked).
    for task in tasks:
        task_metrics = json.loads((repo / f"outputs/{task}/evaluate/metrics.json").read_text())
        assert any(k.startswith("test/") for k in task_metrics), task
        kind = kinds.of_task(yaml.safe_load((repo / f"conf/task/{task}.yaml").read_text()))
        assert Thresholds.load(repo / f"outputs/{task}/calibrate/thresholds.json").kind == kind.name
        assert isinstance(load_bundle(repo / f"outputs/{task}/bundle"), kind.serving)
    # rings' graph took its face clusters from the face_match bundle (the cross-task link).
    (prepared,) = (repo / "outputs/rings/prepare").glob("*.log")
    assert "face clusters from" in prepared.read_text()

    first = metrics(repo)
    assert 0.0 <= first["test/eer"] <= 1.0
    thresholds = json.loads((repo / "outputs/pad/calibrate/thresholds.json").read_text())
    assert thresholds["thresholds"][0]["segment"]["value"] == "global"
    assert (repo / "outputs/pad/evaluate/plots/det.png").is_file()
    assert "outputs/pad/evaluate/metrics.json" in dvc(repo, "metrics", "show")
    # The PAD bundle scores image files with either backend.
    images = sorted((repo / "data/pad/tiny/images").rglob("*.jpg"))[:4]
    for backend in ("torchscript", "onnxruntime"):
        scores = load_bundle(repo / "outputs/pad/bundle", backend=backend).score(images)
        assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()

    # face_match: its metrics, FMR thresholds and a bundle that verifies a face against itself.
    face = json.loads((repo / "outputs/face_match/evaluate/metrics.json").read_text())
    assert 0.0 <= face["test/selfie_selfie/eer"] <= 1.0
    assert 0.0 <= face["test/search/rank_1_rate"] <= 1.0
    face_thresholds = (repo / "outputs/face_match/calibrate/thresholds.json").read_text()
    assert json.loads(face_thresholds)["kind"] == "matching"
    crops = sorted((repo / "data/faces/tiny/images").rglob("*.jpg"))[:2]
    matcher = load_bundle(repo / "outputs/face_match/bundle", backend="onnxruntime")
    similarity, decision = matcher.verify(crops, crops, aligned=True)
    assert np.allclose(similarity, 1.0, atol=1e-4) and list(decision) == ["match", "match"]

    # Nothing changed: nothing runs.
    assert "Data and pipelines are up to date" in dvc(repo, "repro")

    # One task's config changed: its training onwards re-runs, its corpus does not.
    task = repo / "conf/task/pad.yaml"
    task.write_text(task.read_text().replace("lr: 0.002", "lr: 0.0021"))
    log = dvc(repo, "repro")
    assert "Stage 'prepare@pad' didn't change, skipping" in log
    assert "Running stage 'train@pad'" in log and "Running stage 'calibrate@pad'" in log
    assert "Stage 'train@face_match' didn't change, skipping" in log

    # Deterministic: training and evaluating PAD again from scratch gives the same checkpoint
    # and tables, byte for byte: DVC finds nothing downstream to re-run.
    retrained = metrics(repo)
    kept = {name: md5(repo / name) for name in DETERMINISTIC}
    dvc(repo, "repro", "--force", "--single-item", "train@pad", "evaluate@pad")
    assert metrics(repo) == retrained
    assert {name: md5(repo / name) for name in DETERMINISTIC} == kept
    assert "Data and pipelines are up to date" in dvc(repo, "status")


@pytest.fixture(scope="module")
def baseline(repo: Path) -> Path:
    """The reproduced pipeline committed, as a researcher's branch is before experiments."""
    dvc(repo, "repro")  # nothing to do after the test above; everything when run alone
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    return repo


@pytest.mark.slow
def test_dvc_push_pull(baseline: Path) -> None:
    repo = baseline
    # Large data never goes into git: every output of dvc.lock is git-ignored.
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]
    assert "data/pad/tiny" in outs and "outputs/pad/train/checkpoints" in outs
    assert git(repo, "check-ignore", *outs).split() == outs
    large = (".jpg", ".png", ".ckpt", ".onnx", ".ts", ".parquet")
    in_git = git(repo, "ls-files").split()
    assert "dvc.lock" in in_git
    assert not [f for f in in_git if f.endswith(large) or f.startswith(("data/", "outputs/"))]

    kept = {
        name: md5(repo / name)
        for name in ("outputs/pad/bundle/SHA256SUMS", "outputs/pad/train/checkpoints/best.ckpt")
    }
    dvc(repo, "push")
    # The default remote `../../dvc-remote` is relative to .dvc/: a directory beside the clone.
    ckpt = kept["outputs/pad/train/checkpoints/best.ckpt"]
    assert (repo.parent / "dvc-remote/files/md5" / ckpt[:2] / ckpt[2:]).is_file()

    for name in (".dvc/cache", "data", "outputs"):
        shutil.rmtree(repo / name)
    dvc(repo, "pull")
    assert "Data and pipelines are up to date" in dvc(repo, "status")
    assert {name: md5(repo / name) for name in kept} == kept


def thresholds(repo: Path, where: str = "calibrate/thresholds.json") -> dict:
    return json.loads((repo / "outputs/pad" / where).read_text())


@pytest.mark.slow
def test_dvc_exp_run_and_show(baseline: Path) -> None:
    repo = baseline
    head = git(repo, "rev-parse", "HEAD").strip()
    before = thresholds(repo)
    kept = {name: md5(repo / name) for name in ("params.yaml", "dvc.lock")}
    unchanged = ("outputs/pad/evaluate/metrics.json", "outputs/pad/train/checkpoints/best.ckpt")
    unchanged_md5 = {name: md5(repo / name) for name in unchanged}

    log = dvc(repo, "exp", "run", "-S", "calibrate.review_share=0.2", "calibrate@pad")
    assert "Stage 'evaluate@pad' didn't change, skipping" in log
    assert "Running stage 'calibrate@pad'" in log and "export@pad" not in log

    # DVC 3.x applies the experiment to the workspace: params.yaml and dvc.lock change (and
    # the outputs they describe: the bundle, not re-exported, is now behind); HEAD, the branch
    # and git's stash do not.
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert sorted(git(repo, "status", "--porcelain").splitlines()) == [
        " M dvc.lock",
        " M params.yaml",
    ]
    assert git(repo, "stash", "list") == ""
    # Other tasks' calibration reads the parameter too (not run: the target was PAD's); their
    # export is not listed, since its own inputs have not changed yet.
    tasks = yaml.safe_load((repo / "params.yaml").read_text())["tasks"]
    behind = {f"calibrate@{task}" for task in tasks if task != "pad"}
    assert set(json.loads(dvc(repo, "status", "--json", stderr=False))) == {"export@pad"} | behind
    assert {name: md5(repo / name) for name in unchanged} == unchanged_md5
    after = thresholds(repo)
    assert after["settings"]["review_share"] == 0.2 and before["settings"]["review_share"] == 0.05
    assert after["thresholds"][0]["threshold"] == before["thresholds"][0]["threshold"]
    wider = after["thresholds"][0]["calib"]["rates"]["review_share"]
    narrower = before["thresholds"][0]["calib"]["rates"]["review_share"]
    assert wider["count"] > narrower["count"]

    # `dvc exp show`: the workspace, the baseline commit and the experiment beneath it, with
    # their params and metrics. Calibration does not touch evaluation: the metrics agree.
    rows = json.loads(dvc(repo, "exp", "show", "--json", stderr=False))
    assert [row["rev"] for row in rows] == ["workspace", head]
    (experiment,) = rows[1]["experiments"]
    shown = {
        "workspace": rows[0]["data"],
        "baseline": rows[1]["data"],
        "experiment": experiment["revs"][0]["data"],
    }
    share = {
        k: v["params"]["params.yaml"]["data"]["calibrate"]["review_share"] for k, v in shown.items()
    }
    assert share == {"workspace": 0.2, "baseline": 0.05, "experiment": 0.2}
    metric = "outputs/pad/evaluate/metrics.json"
    values = [v["metrics"][metric]["data"] for v in shown.values()]
    assert values[0] == values[1] == values[2] and "test/eer" in values[0]
    out = "outputs/pad/calibrate/thresholds.json"
    assert shown["experiment"]["outs"][out]["hash"] != shown["baseline"]["outs"][out]["hash"]

    # Back to the baseline: git restores the experiment's two files, `dvc checkout` the outputs.
    git(repo, "checkout", "--", "params.yaml", "dvc.lock")
    dvc(repo, "checkout")
    assert {name: md5(repo / name) for name in kept} == kept
    assert thresholds(repo) == before
    assert "Data and pipelines are up to date" in dvc(repo, "status")
