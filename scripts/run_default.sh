#!/usr/bin/env bash
# README command 1: set everything up, then run the default job (extra args go to idv-synth).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh
exec .venv/bin/idv-synth "$@"
