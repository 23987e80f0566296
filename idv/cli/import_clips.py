"""idv-import-clips: import a video-session corpus as MTCNN-aligned clip frames + manifest."""

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
    from idv.data.sources.video_sessions import SamplingOptions, import_video_sessions

    start = time.perf_counter()
    frame = import_video_sessions(
        cfg.src,
        cfg.out,
        seed=int(cfg.seed),
        split_fractions=OmegaConf.to_container(cfg.split_fractions, resolve=True),
        salt=str(cfg.salt),
        csv=cfg.csv,
        size=int(cfg.size),
        detector=FaceDetector(**OmegaConf.to_container(cfg.detector, resolve=True)),
        options=SamplingOptions(**OmegaConf.to_container(cfg.sampling, resolve=True)),
    )
    seconds = time.perf_counter() - start
    sessions = frame.drop_duplicates("session_id")
    console = Console()
    console.print(
        f"[bold]{cfg.name}[/bold]: {len(sessions)} sessions of {frame['subject_id'].nunique()} "
        f"subjects, {int(frame['acquired'].sum())} aligned frames in {seconds:.1f} s -> {cfg.out}"
    )
    outcome = sessions.assign(outcome=sessions["failure"].fillna("acquired"))
    console.print(count_table(outcome, "outcome", f"{cfg.name}: sessions (subjects) per outcome"))
    return Path(cfg.out) / "manifest.parquet"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="import_clips")
@guarded
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
