"""idv-import-documents: import an identity-document dataset (MIDV style) as a document corpus."""

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
    """Import `cfg.source` into `cfg.out`, print the summary; returns the manifest file."""
    from idv.data.sources.id_documents import import_documents

    start = time.perf_counter()
    frame = import_documents(
        cfg.source,
        cfg.out,
        seed=int(cfg.seed),
        split_fractions=OmegaConf.to_container(cfg.split_fractions, resolve=True),
        layout=str(cfg.layout),
        on_missing=str(cfg.on_missing),
        geography=OmegaConf.to_container(cfg.geography, resolve=True) if cfg.geography else None,
        instance_pattern=None if cfg.instance_pattern is None else str(cfg.instance_pattern),
        source_dataset=None if cfg.source_dataset is None else str(cfg.source_dataset),
    )
    seconds = time.perf_counter() - start
    console = Console()
    console.print(
        f"[bold]{cfg.name}[/bold]: {len(frame)} images of {frame['document_type'].nunique()} "
        f"document types, {frame['subject_id'].nunique()} physical documents in {seconds:.1f} s "
        f"-> {cfg.out}"
    )
    title = f"{cfg.name}: images (physical documents) per document type"
    console.print(count_table(frame, "document_type", title))
    return Path(cfg.out) / "manifest.parquet"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="import_documents")
@guarded
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
