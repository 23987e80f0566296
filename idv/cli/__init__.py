"""Thin Hydra entry points; nothing imports this package."""

import logging
import os
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


# The files Hydra writes into a run's `.hydra/` before the job starts.
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
COMPLETED_DIR, FAILED_DIR = "completed", "failed"


def guarded(task):
    """Wrap an entry point's task function so that a run directory stays consistent.

    Hydra writes `.hydra/config.yaml` before the job runs, so a failed run in an existing
    `hydra.run.dir` used to leave the new config beside the earlier run's outputs, with the
    exception only on stderr. Here: a run that completes keeps a copy of its config in
    `.hydra/completed/`; a run that fails logs its traceback to the run's log (Hydra's file
    handler), moves its config to `.hydra/failed/` and puts the last completed run's config
    back (outputs are written atomically at the end, so the earlier outputs are intact).
    """
    import functools
    import shutil
    import traceback

    @functools.wraps(task)
    def run(cfg):
        from hydra.core.hydra_config import HydraConfig

        try:
            hydra_dir = Path(HydraConfig.get().runtime.output_dir) / ".hydra"
        except ValueError:  # called without Hydra (a test calling main's body): run it as is
            return task(cfg)
        try:
            result = task(cfg)
        except Exception as err:
            log = logging.getLogger(task.__module__)
            log.error("run failed: %s: %s\n%s", type(err).__name__, err, traceback.format_exc())
            _set_aside(hydra_dir)
            raise
        completed = hydra_dir / COMPLETED_DIR
        completed.mkdir(parents=True, exist_ok=True)
        for name in HYDRA_FILES:
            if (hydra_dir / name).is_file():
                shutil.copy2(hydra_dir / name, completed / name)
        return result

    return run


def _set_aside(hydra_dir: Path) -> None:
    """A failed run's .hydra files to failed/, the last completed run's back in place."""
    import shutil

    failed = hydra_dir / FAILED_DIR
    failed.mkdir(parents=True, exist_ok=True)
    for name in HYDRA_FILES:
        if (hydra_dir / name).is_file():
            os.replace(hydra_dir / name, failed / name)
        if (hydra_dir / COMPLETED_DIR / name).is_file():
            shutil.copy2(hydra_dir / COMPLETED_DIR / name, hydra_dir / name)
