#!/usr/bin/env bash
# README command 1: set everything up, then run the default job: generate the synthetic
# corpora, train the PAD model on CPU, evaluate it on the test split and print the metrics.
# Outputs (fixed paths, replaced on every run): outputs/pad/{train,evaluate}/
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bin=.venv/bin
start=$SECONDS
"$bin/idv-synth"
rm -rf outputs/pad/train outputs/pad/evaluate
"$bin/idv-train" task=pad hydra.run.dir=outputs/pad/train
"$bin/idv-evaluate" task=pad ckpt_path=outputs/pad/train/checkpoints/best.ckpt \
  hydra.run.dir=outputs/pad/evaluate
echo "default job done in $((SECONDS - start)) s: metrics in outputs/pad/evaluate/metrics.json," \
  "scores in outputs/pad/evaluate/scores.parquet, checkpoints in outputs/pad/train/checkpoints/"
