"""Thin Hydra entry points; nothing imports this package."""

import logging
from pathlib import Path

# conf/ sits at the repo root (the blueprint's layout); the package is installed editable.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def one_console() -> None:
    """Keep Hydra's log handlers only. Importing `lightning` adds a console handler of its own
    to the `lightning` logger, which also propagates to the root: under Hydra every Lightning
    INFO line printed twice, once as `INFO: ...` on stderr (with any logger: csv, wandb or
    none). Call it after Lightning is imported, in an entry point that has Hydra's logging."""
    if not logging.getLogger().handlers:
        return  # no Hydra logging here: Lightning's handler is the only one, keep it
    lightning = logging.getLogger("lightning")
    for handler in list(lightning.handlers):
        if type(handler) is logging.StreamHandler:
            lightning.removeHandler(handler)
