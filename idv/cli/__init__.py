"""Thin Hydra entry points; nothing imports this package."""

from pathlib import Path

# conf/ sits at the repo root (the blueprint's layout); the package is installed editable.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
