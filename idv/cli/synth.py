"""idv-synth: generate the embedded synthetic corpora and print their summary."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded
from idv.data.summary import summarize

log = logging.getLogger(__name__)

GENERATORS = {
    "faces": "idv.data.synth.face_corpus:generate_face_corpus",
    "pad": "idv.data.synth.pad_corpus:generate_pad_corpus",
    "clips": "idv.data.synth.clip_corpus:generate_clip_corpus",
    "deepfakes": "idv.data.synth.deepfake_corpus:generate_deepfake_corpus",
    "sessions": "idv.data.synth.session_corpus:generate_session_corpus",
    "documents": "idv.data.synth.document_corpus:generate_document_corpus",
    "graph": "idv.data.synth.graph_corpus:generate_graph_corpus",
}


def _generator(name: str):
    if name not in GENERATORS:
        raise KeyError(f"unknown corpus {name!r}; known: {sorted(GENERATORS)}")
    module, func = GENERATORS[name].split(":")
    return getattr(__import__(module, fromlist=[func]), func)


def run(cfg: DictConfig) -> dict[str, Path]:
    """Generate every corpus in `cfg.corpora`; returns corpus name -> manifest file."""
    console = Console()
    workers = int(cfg.get("workers") or min(2, os.cpu_count() or 1))
    written = {}
    for name in cfg.corpora:
        corpus_cfg = OmegaConf.to_container(cfg[name], resolve=True)
        if cfg.profile not in corpus_cfg["sizes"]:
            raise KeyError(
                f"profile {cfg.profile!r} has no size in corpus {name!r} "
                f"(sizes: {sorted(corpus_cfg['sizes'])})"
            )
        out = Path(cfg.out_dir) / name / cfg.profile
        start = time.perf_counter()
        frame = _generator(name)(corpus_cfg, cfg.profile, int(cfg.seed), out, workers=workers)
        seconds = time.perf_counter() - start
        console.print(
            f"[bold]{name}[/bold] ({cfg.profile}): {len(frame)} samples of "
            f"{frame['subject_id'].nunique()} subjects in {seconds:.1f} s -> {out}"
        )
        for table in summarize(frame, name):
            console.print(table)
        written[name] = out / "manifest.parquet"
    return written


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="synth")
@guarded
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
