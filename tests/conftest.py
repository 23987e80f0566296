"""Shared fixtures: a tiny hand-made image corpus and Hydra config composition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import idv  # noqa: F401  (offline switches before anything else imports third parties)
from idv.data.manifest import write_manifest

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def make_corpus(root: Path, subjects: int = 8, per_subject: int = 2) -> pd.DataFrame:
    """A small valid PAD-style corpus: per subject, bona fide captures and one print each."""
    rows = []
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True, exist_ok=True)
    splits = ["train", "train", "train", "train", "val", "calib", "test", "test"]
    for s in range(subjects):
        for k in range(per_subject):
            for label, kind in ((0, "bona_fide"), (1, "print")):
                sid = f"s{s}_{k}_{kind}"
                path = f"img/{sid}.png"
                Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / path)
                rows.append(
                    {
                        "sample_id": sid,
                        "path": path,
                        "label": label,
                        "subject_id": f"s{s}",
                        "split": splits[s % len(splits)],
                        "attack_type": kind,
                        "source_sample_id": f"s{s}_{k}_bona_fide" if label else None,
                        "geography": "EU" if s % 2 else "NA",
                    }
                )
    frame = pd.DataFrame(rows)
    write_manifest(frame, root / "manifest.parquet")
    return frame


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    make_corpus(tmp_path)
    return tmp_path


def compose(config_name: str, overrides: list[str], output_dir: Path):
    """Compose a real config from conf/ as the entry points do, with a tmp output dir."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.root_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


TASKS = sorted(p.stem for p in (Path(CONF_DIR) / "task").glob("*.yaml"))


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """The tiny corpus of every task of conf/task/, generated once per session under
    <root>/data/<corpus>/tiny; tests pass paths.data_dir=<root>/data."""
    import yaml

    from idv.cli.synth import run

    corpora = sorted({yaml.safe_load((Path(CONF_DIR) / f"task/{t}.yaml").read_text())["corpus"]
                      for t in TASKS})  # fmt: skip
    root = tmp_path_factory.mktemp("tiny_root")
    # The graph's face clusters from its fixed table: a fixture never reads a checkout's
    # outputs/ (the end-to-end test runs the face_match bundle path).
    run(compose("synth", ["profile=tiny", f"corpora=[{','.join(corpora)}]",
                          "graph.faces.source=table"], root))  # fmt: skip
    return root


@pytest.fixture(scope="session")
def tiny_pad_root(tiny_root: Path) -> Path:
    return tiny_root


@pytest.fixture(scope="session")
def tiny_faces_root(tiny_root: Path) -> Path:
    return tiny_root


def train_overrides(root: Path, *extra: str) -> list[str]:
    """The `debug=fast` PAD run on the session's tiny corpus."""
    return [
        "debug=fast",
        f"paths.data_dir={root}/data",
        "callbacks.progress.interactive=false",
        *extra,
    ]


@pytest.fixture(scope="session")
def fast_run(tiny_pad_root: Path, tmp_path_factory):
    """One debug=fast PAD training, shared by every test that needs a checkpoint."""
    from idv.tasks.fit import fit

    out = tmp_path_factory.mktemp("fast_run")
    return fit(compose("train", train_overrides(tiny_pad_root), out))


# The tiny corpus holds 72 test + 72 calib samples: parity draws all of test, then calib up to
# conf/export.yaml's max_samples (128); batches of 20 end with a ragged one (128 = 6 x 20 + 8),
# another batch size for the dynamic axis.
PARITY = ["parity.min_samples=100", "parity.batch_size=20"]


@pytest.fixture(scope="session")
def pad_bundle(fast_run, tiny_pad_root, tmp_path_factory):
    """Evaluate + calibrate the tiny checkpoint, then export it once through conf/export.yaml.

    The tiny calib split resolves no real target: as in test_calibration, its val rows are
    pooled into calib (a test only) and a loose target is used."""
    from idv.calibration.thresholds import calibrate
    from idv.cli.evaluate import run as evaluate
    from idv.export.bundle import export
    from idv.models.checkpoint import net_from_checkpoint

    base = tmp_path_factory.mktemp("export")
    ckpt = fast_run.best_checkpoint
    data = [f"paths.data_dir={tiny_pad_root}/data"]
    ev = base / "evaluate"
    evaluate(compose("evaluate", ["debug=fast", *data, f"ckpt_path={ckpt}"], ev))
    table = pd.read_parquet(ev / "tables/scores.parquet")
    table.loc[table["split"] == "val", "split"] = "calib"
    table.to_parquet(base / "pooled.parquet", index=False)
    calib = [
        f"scores={base / 'pooled.parquet'}",
        "targets=[0.6]",
        "min_subjects=2",
        "bootstrap.n_resamples=50",
    ]
    calibrate(compose("calibrate", calib, base / "calibrate"))
    thresholds = base / "calibrate" / "thresholds.json"
    overrides = [
        f"ckpt_path={ckpt}",
        f"thresholds={thresholds}",
        f"evaluation_dir={ev}",
        f"bundle_dir={base / 'bundle'}",
        *PARITY,
    ]
    result = export(compose("export", overrides, base / "run"))
    net, run_config = net_from_checkpoint(ckpt)
    return {
        "dir": base / "bundle",
        "result": result,
        "ckpt": Path(ckpt),
        "thresholds": thresholds,
        "evaluation": ev,
        "net": net,
        "run_config": run_config,
        "files": held_out_files(run_config),
    }


def held_out_files(run_config) -> list[str]:
    manifest = Path(run_config["data"]["manifest"])
    frame = pd.read_parquet(manifest)
    rows = frame[frame["split"].isin(["test", "calib"])]
    return [str(manifest.parent / p) for p in rows["path"]]


def fast_bundle(
    root: Path,
    base: Path,
    task: str,
    calibrate: list[str],
    export: list[str],
    *,
    pool_val: bool = False,
) -> dict[str, Path]:
    """debug=fast training of `task` on the tiny corpora under `root`, evaluated, calibrated
    (`calibrate` overrides; `pool_val`: the val rows pooled into calib, for a tiny calib split
    that resolves no target) and exported (`export` overrides) into `base`/bundle."""
    from idv.calibration.thresholds import calibrate as calibrate_tables
    from idv.cli.evaluate import run as evaluate
    from idv.export.bundle import export as export_bundle
    from idv.tasks.fit import fit

    data = [f"paths.data_dir={root}/data", f"task={task}"]
    run = fit(compose("train", ["debug=fast", *data, "callbacks.progress.interactive=false"],
                      base / "train"))  # fmt: skip
    ckpt = run.best_checkpoint
    ev = base / "evaluate"
    evaluate(compose("evaluate", ["debug=fast", *data, f"ckpt_path={ckpt}"], ev))
    scores = ev / "tables/scores.parquet"
    if pool_val:
        table = pd.read_parquet(scores)
        table.loc[table["split"] == "val", "split"] = "calib"
        scores = base / "pooled.parquet"
        table.to_parquet(scores, index=False)
    calibrate_tables(compose("calibrate", [f"task={task}", f"scores={scores}", *calibrate],
                             base / "calibrate"))  # fmt: skip
    export_bundle(compose("export", [f"ckpt_path={ckpt}",
                                     f"thresholds={base / 'calibrate' / 'thresholds.json'}",
                                     f"evaluation_dir={ev}", f"bundle_dir={base / 'bundle'}",
                                     *export], base / "run"))  # fmt: skip
    return {"dir": base / "bundle", "evaluate": ev}
