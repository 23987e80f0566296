"""End to end: `dvc repro` of the whole pipeline on the tiny profile, in a copy of the repo.

Checks what CI and researchers rely on: a clean run produces metrics and thresholds; a second
run does nothing; a change to one task's config re-runs only that task's affected stages (not
the corpus); `dvc repro --force` twice gives identical metrics (deterministic).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file() and f != "dvc.lock"]


def dvc(repo: Path, *args: str) -> str:
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
    return done.stdout + done.stderr


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
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        subprocess.run(["git", *cmd], cwd=repo, check=True, capture_output=True)
    return repo


def metrics(repo: Path) -> dict:
    return json.loads((repo / "outputs/pad/evaluate/metrics.json").read_text())


@pytest.mark.slow
def test_dvc_repro_end_to_end(repo: Path) -> None:
    dvc(repo, "repro")
    first = metrics(repo)
    assert 0.0 <= first["test/eer"] <= 1.0
    thresholds = json.loads((repo / "outputs/pad/calibrate/thresholds.json").read_text())
    assert thresholds["thresholds"][0]["segment"]["value"] == "global"
    assert (repo / "outputs/pad/evaluate/plots/det.png").is_file()
    assert "outputs/pad/evaluate/metrics.json" in dvc(repo, "metrics", "show")
    # The bundle loads (checksums verified) and scores image files with either backend.
    from idv.serving import load_bundle

    images = sorted((repo / "data/pad/tiny/images").rglob("*.jpg"))[:4]
    for backend in ("torchscript", "onnxruntime"):
        scores = load_bundle(repo / "outputs/pad/bundle", backend=backend).score(images)
        assert scores.shape == (4,) and ((scores >= 0) & (scores <= 1)).all()

    # Nothing changed: nothing runs.
    assert "Data and pipelines are up to date" in dvc(repo, "repro")

    # One task's config changed: its training onwards re-runs, its corpus does not.
    task = repo / "conf/task/pad.yaml"
    task.write_text(task.read_text().replace("lr: 0.002", "lr: 0.0021"))
    log = dvc(repo, "repro")
    assert "Stage 'prepare@pad' didn't change, skipping" in log
    assert "Running stage 'train@pad'" in log and "Running stage 'calibrate@pad'" in log

    # Deterministic: forcing everything twice gives identical metrics.
    dvc(repo, "repro", "--force")
    forced = metrics(repo)
    dvc(repo, "repro", "--force")
    assert metrics(repo) == forced
