"""idv-import-faces: import a folder-per-identity photo corpus as aligned crops + manifest."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded
from idv.data.summary import count_table


def run(cfg: DictConfig) -> Path:
    """Import `cfg.src` into `cfg.out`, print the summary; returns the manifest file."""
    from idv.data.face_detect import FaceDetector
    from idv.data.sources.folder_per_identity import import_folder_corpus
    from idv.faces.acquisition import AcquisitionPolicy

    console = Console()
    start = time.perf_counter()
    frame = import_folder_corpus(
        cfg.src,
        cfg.out,
        seed=int(cfg.seed),
        split_fractions=OmegaConf.to_container(cfg.split_fractions, resolve=True),
        salt=str(cfg.salt),
        policy=AcquisitionPolicy.from_mapping(
            OmegaConf.to_container(cfg.acquisition.policy, resolve=True)
        ),
        detector=FaceDetector(
            **OmegaConf.to_container(cfg.acquisition.detector, resolve=True),
            threads=cfg.detector_threads,
        ),
        keep_names=bool(cfg.keep_names),
    )
    seconds = time.perf_counter() - start
    console.print(
        f"[bold]{cfg.name}[/bold]: {len(frame)} images of {frame['subject_id'].nunique()} "
        f"subjects in {seconds:.1f} s, {int(frame['acquired'].sum())} aligned -> {cfg.out}"
    )
    outcome = frame.assign(outcome=frame["failure"].fillna("aligned"))
    console.print(count_table(outcome, "outcome", f"{cfg.name}: images (subjects) per outcome"))
    return Path(cfg.out) / "manifest.parquet"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="import_faces")
@guarded
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
