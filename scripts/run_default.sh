#!/usr/bin/env bash
# README command 1: set everything up, then run the default pipeline with DVC: for every task
# of params.yaml, prepare the corpus, train on CPU, evaluate on test, calibrate thresholds.
# Outputs (fixed paths): outputs/<task>/{train,evaluate,calibrate}/; corpora under data/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"
start=$SECONDS
# dvc repro, timed stage by stage against conf/pipeline_budget.yaml (the table comes last)
.venv/bin/python scripts/pipeline_budget.py --run
.venv/bin/python - <<'PY'
import json, pathlib
for metrics in sorted(pathlib.Path("outputs").glob("*/evaluate/metrics.json")):
    m = json.loads(metrics.read_text())
    task = metrics.parts[1]
    keys = [k for k in m if k.startswith("test/") and not k.endswith(("_ci_low", "_ci_high"))]
    print(f"\n{task}: headline metrics on test ({metrics})")
    for key in sorted(keys):
        low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
        ci = f"  [{low:.4f}, {high:.4f}]" if low is not None else ""
        value = m[key]
        if value is None:
            value = "not supported (see report.md)"
        elif isinstance(value, float):
            value = f"{value:.4f}"
        print(f"  {key:45s} {value}{ci}")

from idv.thresholds import Thresholds

for file in sorted(pathlib.Path("outputs").glob("*/calibrate/thresholds.json")):
    thresholds = Thresholds.load(file)
    print(f"\n{file.parts[1]}: calibrated thresholds (chosen on calib) and their test rates")
    for metric in thresholds.metrics:
        e = thresholds.global_entry(metric)
        rates = ", ".join(f"{k} {r}" for k, r in e.test.rates.items() if "/" not in k)
        print(f"  {metric} <= {e.operating_point.max:g}: threshold {e.threshold:.4f}; {rates}")
PY
echo
echo "pipeline done in $((SECONDS - start)) s."
echo "metrics:    outputs/<task>/evaluate/metrics.json (dvc metrics show), report.md, segments.csv"
echo "plots:      outputs/<task>/evaluate/plots/*.png (offline view; dvc plots show needs a CDN)"
echo "thresholds: outputs/<task>/calibrate/thresholds.json"
echo "models:     outputs/<task>/train/checkpoints/best.ckpt"
echo "bundles:    outputs/<task>/bundle/ (load with idv.serving.load_bundle)"
echo "timings:    outputs/pipeline_timings.json (python scripts/pipeline_budget.py: against the budget)"
