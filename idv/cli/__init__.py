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


# The files Hydra writes into a run's `.hydra/` before the job starts.
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
COMPLETED_DIR, FAILED_DIR = "completed", "failed"


def guarded(task):
    """Wrap an entry point's task function so that a run directory stays consistent.

    Hydra writes `<output_subdir>/config.yaml` (`.hydra/` by default) before the job runs, so
    a failed run in an existing `hydra.run.dir` used to leave its config beside the earlier
    run's outputs, with the exception only on stderr. Here: a run that completes (also by
    `sys.exit(0)`) keeps a copy of its config in `.hydra/completed/`; a run that fails (an
    exception, a non-zero exit, Ctrl-C) logs its traceback to the run's log (Hydra's file
    handler), copies its config to `.hydra/failed/` and, when an earlier run completed there,
    puts that run's config back (outputs are written atomically at the end, so the earlier
    outputs are the ones in place).
    """
    import functools
    import traceback

    @functools.wraps(task)
    def run(cfg):
        from hydra.core.hydra_config import HydraConfig

        try:
            hydra = HydraConfig.get()
        except ValueError:  # called without Hydra (a test calling main's body): run it as is
            return task(cfg)
        subdir = hydra.output_subdir
        config_dir = None if subdir is None else Path(hydra.runtime.output_dir) / subdir
        log = logging.getLogger(task.__module__)
        try:
            result = task(cfg)
        except SystemExit as done:
            if done.code not in (0, None):
                log.error("run exited with status %s", done.code)
                _set_aside(config_dir, log)
            else:
                _keep(config_dir)
            raise
        except BaseException as err:
            log.error("run failed: %s: %s\n%s", type(err).__name__, err, traceback.format_exc())
            _set_aside(config_dir, log)
            raise
        _keep(config_dir)
        return result

    return run


def _keep(config_dir: Path | None) -> None:
    """The completed run's config files, copied to completed/."""
    import shutil

    if config_dir is None:
        return
    completed = config_dir / COMPLETED_DIR
    completed.mkdir(parents=True, exist_ok=True)
    for name in HYDRA_FILES:
        if (config_dir / name).is_file():
            shutil.copy2(config_dir / name, completed / name)


def _set_aside(config_dir: Path | None, log: logging.Logger) -> None:
    """A failed run's config files copied to failed/; the last completed run's put back."""
    import shutil

    if config_dir is None:
        return
    try:
        failed = config_dir / FAILED_DIR
        failed.mkdir(parents=True, exist_ok=True)
        for name in HYDRA_FILES:
            if (config_dir / name).is_file():
                shutil.copy2(config_dir / name, failed / name)
            if (config_dir / COMPLETED_DIR / name).is_file():
                shutil.copy2(config_dir / COMPLETED_DIR / name, config_dir / name)
    except OSError as err:  # never hide the run's own error behind this one
        log.error("could not set the failed run's config aside in %s: %s", config_dir, err)
