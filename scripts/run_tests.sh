#!/usr/bin/env bash
# README command 2: set everything up, lint, then run the whole test suite (args go to pytest).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
.venv/bin/ruff check idv tests scripts
.venv/bin/python scripts/check_licences.py
exec .venv/bin/python -m pytest --durations=15 "$@"
