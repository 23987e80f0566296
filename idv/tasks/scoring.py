"""Scoring: a trained task's predictions into the score tables of its kind.

`score_checkpoint(cfg)` rebuilds the task from a checkpoint (its saved run config), predicts
every scored split through Lightning's `predict_step` at `32-true` precision (the training
default is bf16; scores are made in float32, as the exported model makes them), and hands the
predictions to the kind's `score` part (`idv.kinds`), which builds its tables:

- detection: one row per sample of the split (a sample without a score keeps its row with
  `acquired = False`, a failure to acquire, never a silently dropped sample);
- matching: the comparison table (1:1, cosine of unit-norm embeddings) of every protocol and
  the search table (1:N, FAISS gallery of the enrolled subjects) of every split.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from idv import kinds
from idv.data.comparisons import PROBE_COLUMNS, comparison_pairs, search_protocol
from idv.data.manifest import DEMOGRAPHIC_COLUMNS, SEGMENT_COLUMNS
from idv.models.checkpoint import net_from_checkpoint
from idv.progress import step
from idv.score_tables import (
    DETECTION_COLUMNS,
    validate_comparison_table,
    validate_detection_table,
    validate_search_table,
)
from idv.serving.gallery import Gallery
from idv.tasks.base import TaskBase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predictions:
    """One split's predictions: the split's rows (`frame`, after the protocol, failures to
    acquire included), the scored items (`items`: one row per dataset item), their ids and
    the task's named outputs (`outputs[name][i]` belongs to `sample_ids[i]`)."""

    frame: pd.DataFrame
    items: pd.DataFrame
    sample_ids: list[str]
    outputs: dict[str, np.ndarray]


def task_module(net: nn.Module, run_config: Mapping[str, Any]) -> TaskBase:
    """The run's task module around `net` (trained or not), for `predict_step`."""
    factory = instantiate(run_config["task"]["module"], _partial_=True, _convert_="all")
    return factory(net=net, optimizer=None, scheduler=None, run_config=dict(run_config))


def task_from_checkpoint(path: str) -> tuple[TaskBase, dict[str, Any]]:
    """The task module around the trained network, for `predict_step`, and its run config."""
    net, run_config = net_from_checkpoint(path)
    return task_module(net, run_config), run_config


def scoring_trainer(trainer: Mapping[str, Any] | None = None) -> L.Trainer:
    """The configured trainer (default: CPU) at 32-true precision, nothing but prediction on."""
    options = {
        "precision": "32-true",
        "devices": 1,
        "logger": False,
        "callbacks": [],
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    if trainer is None:
        return L.Trainer(accelerator="cpu", **options)
    return instantiate(trainer, **options)


def predict(trainer: L.Trainer, module: TaskBase, datamodule, split: str) -> Predictions:
    """Run `predict_step` over one split."""
    frame = datamodule.split_frame(split)
    if frame.empty:
        raise ValueError(f"split {split!r} is empty under this protocol; cannot score it")
    batches = trainer.predict(module, dataloaders=datamodule.dataloader(split))
    ids = [s for b in batches for s in b["sample_id"]]
    names = [k for k in batches[0] if k != "sample_id"]
    outputs = {n: np.concatenate([b[n].cpu().numpy() for b in batches]) for n in names}
    items = datamodule.split_items(split)
    return Predictions(frame, items, ids, outputs)


def score_checkpoint(cfg: DictConfig) -> dict[str, pd.DataFrame]:
    """The kind's score tables of `cfg.ckpt_path`'s model on every scored split."""
    module, run_config = task_from_checkpoint(cfg.ckpt_path)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    # The eval transform must be the one the model was trained with (input size, statistics).
    data_cfg["augment"] = run_config["augment"]
    datamodule = instantiate(data_cfg, _recursive_=False)
    datamodule.setup("validate")
    trainer = scoring_trainer(cfg.trainer)
    splits = list(dict.fromkeys(["val", *cfg.score_splits, cfg.split]))
    predictions = {}
    for split in splits:
        with step(log, f"scored split {split}") as note:
            predictions[split] = predict(trainer, module, datamodule, split)
            note["detail"] = f"{len(predictions[split].sample_ids)} items"
    with step(log, "built the score tables") as note:
        tables = kinds.of_task(cfg.task).score(cfg, predictions)
        note["detail"] = ", ".join(f"{role} {len(t)} rows" for role, t in tables.items())
    return tables


# ------------------------------------------------------------------------------- detection


def detection_table(
    items: pd.DataFrame,
    sample_ids: Sequence[str],
    scores: np.ndarray,
    extra: Mapping[str, np.ndarray] | None = None,
    columns_kept: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per item: the blueprint's detection score table; an item the model produced
    no score for (e.g. an unreadable image skipped) keeps its row with `acquired = False`.
    `extra`: auxiliary per-item outputs, kept as `output/<name>` columns; `columns_kept`: more
    manifest columns the task's judging needs (`task.table_columns`, e.g. rings' `ring_id`)."""
    wanted = (*DETECTION_COLUMNS, "split", *SEGMENT_COLUMNS, *DEMOGRAPHIC_COLUMNS, *columns_kept)
    keep = [c for c in items.columns if c in wanted]
    columns = {"sample_id": list(sample_ids), "score": scores}
    columns.update({f"output/{k}": v for k, v in (extra or {}).items()})
    table = items[keep].merge(pd.DataFrame(columns), on="sample_id", how="left", validate="1:1")
    table["acquired"] = table["score"].notna()
    ordered = [*DETECTION_COLUMNS, "acquired"]
    return table[ordered + [c for c in table.columns if c not in ordered]]


def detection_tables(cfg: DictConfig, predictions: Mapping[str, Predictions]) -> dict:
    """{"scores": the detection table of every split}: the primary output as `score`, the
    other per-item outputs as `output/<name>` columns; an output with more than one value per
    item (a pixel map) has no place in a score table, and a warning says it is not kept."""
    primary = cfg.task.module.get("primary", "score")
    rules = _rules(cfg)
    tables, dropped = [], set()
    for p in predictions.values():
        extra = {k: v for k, v in p.outputs.items() if k != primary and v.ndim == 1}
        dropped |= set(p.outputs) - set(extra) - {primary}
        scores = p.outputs[primary]
        if rules is not None:
            scores, columns = rules(p.items, p.sample_ids, scores)
            extra.update(columns)
        kept = list(cfg.task.get("table_columns") or [])
        tables.append(detection_table(p.items, p.sample_ids, scores, extra, kept))
    if dropped:
        log.warning(
            "outputs %s hold more than one value per item: not written to the score table",
            sorted(dropped),
        )
    return {"scores": validate_detection_table(pd.concat(tables, ignore_index=True), "scored")}


def _rules(cfg: DictConfig):
    """The task's rule checks (`task.rules`: a module with `RuleOptions`, `rule_columns` and
    `fuse`, e.g. idv.documents.rules), as a function (items, ids, model scores) -> (fused
    scores, {output name: column}); None without rules. The model's own score is kept as
    `output/model`, the rules' as `output/rules` and `output/rules_<status>`."""
    spec = cfg.task.get("rules")
    if not spec:
        return None
    spec = OmegaConf.to_container(spec, resolve=True)
    module = importlib.import_module(spec.pop("module"))
    options = module.RuleOptions.from_config(spec)
    root = Path(cfg.data.root or Path(cfg.data.manifest).parent)

    def apply(items: pd.DataFrame, sample_ids: Sequence[str], scores: np.ndarray):
        paths = items.set_index("sample_id").loc[list(sample_ids), "path"]
        columns = module.rule_columns([root / p for p in paths], options, sample_ids)
        fused = module.fuse(scores, columns["risk"], options).astype(np.float32)
        extra = {"model": scores, "rules": columns.pop("risk")}
        extra.update({f"rules_{k}": v for k, v in columns.items()})
        return fused, extra

    return apply


# -------------------------------------------------------------------------------- matching


class Embeddings:
    """Embeddings by sample id; samples without one are failures to acquire."""

    def __init__(self, sample_ids: Sequence[str], vectors: np.ndarray) -> None:
        self.row = {s: i for i, s in enumerate(sample_ids)}
        self.vectors = vectors

    def lookup(self, sample_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, acquired); a missing sample gets a zero vector and acquired False."""
        rows = np.array([self.row.get(s, -1) for s in sample_ids], dtype=np.int64)
        found = rows >= 0
        vectors = np.zeros((len(rows), self.vectors.shape[1]), np.float32)
        vectors[found] = self.vectors[rows[found]]
        return vectors, found


def comparison_table(
    frame: pd.DataFrame,
    embeddings: Embeddings,
    protocols: Sequence[str],
    *,
    max_impostors: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The comparison score table of a split: cosine similarity per pair, `acquired` False
    (score NaN) where either side has no embedding."""
    tables = []
    for protocol in protocols:
        pairs = comparison_pairs(frame, protocol, max_impostors=max_impostors, seed=seed)
        if pairs.empty:
            continue
        a, ok_a = embeddings.lookup(pairs["sample_id_a"].tolist())
        b, ok_b = embeddings.lookup(pairs["sample_id_b"].tolist())
        acquired = ok_a & ok_b
        score = np.where(acquired, np.einsum("ij,ij->i", a, b), np.nan)
        tables.append(pairs.assign(score=score, acquired=acquired))
    if not tables:
        raise ValueError(f"no comparisons of protocols {list(protocols)} in this split")
    return pd.concat(tables, ignore_index=True)


def search_table(
    frame: pd.DataFrame,
    embeddings: Embeddings,
    *,
    enrolled_fraction: float,
    top_k: int,
    gallery: Mapping[str, Any],
    seed: int = 0,
) -> pd.DataFrame:
    """The search score table of a split: probes searched in a FAISS gallery of the enrolled
    subjects, one row per returned candidate (an unacquired probe: one empty row)."""
    protocol = search_protocol(frame, enrolled_fraction=enrolled_fraction, seed=seed)
    enrol, enrolled_ok = embeddings.lookup(protocol.gallery["sample_id"].tolist())
    index = Gallery.from_config(dict(gallery))
    index.enrol(enrol[enrolled_ok], protocol.gallery["subject_id"].to_numpy(dtype=str)[enrolled_ok])
    probes = protocol.probes
    vectors, acquired = embeddings.lookup(probes["sample_id"].tolist())
    found = index.search(vectors[acquired], k=top_k, distinct_ids=True)
    keep = [c for c in PROBE_COLUMNS if c in probes.columns]
    rows: list[dict[str, Any]] = []
    result_row = np.cumsum(acquired) - 1
    for i, probe in enumerate(probes.itertuples(index=False)):
        base = {
            "search_id": f"search:{i}",
            "probe_sample_id": probe.sample_id,
            "probe_subject_id": probe.subject_id,
            "mated": bool(probe.mated),
            "acquired": bool(acquired[i]),
            **{c: getattr(probe, c) for c in keep},
        }
        if not acquired[i]:
            rows.append({**base, "rank": np.nan, "candidate_subject_id": None, "score": np.nan})
            continue
        r = result_row[i]
        for j in np.flatnonzero(found.valid[r]):
            rows.append(
                {
                    **base,
                    "rank": int(found.ranks[r, j]),
                    "candidate_subject_id": found.ids[r, j],
                    "score": float(found.scores[r, j]),
                }
            )
    return pd.DataFrame(rows)


def matching_tables(cfg: DictConfig, predictions: Mapping[str, Predictions]) -> dict:
    """{"scores": comparisons, "search": searches} of every split, from the embeddings."""
    protocols = cfg.task.protocols
    comparisons, searches = [], []
    for split, p in predictions.items():
        embeddings = Embeddings(p.sample_ids, p.outputs["embedding"])
        table = comparison_table(
            p.frame,
            embeddings,
            protocols.comparisons,
            max_impostors=protocols.max_impostors,
            seed=cfg.seed,
        )
        comparisons.append(table.assign(split=split))
        searched = search_table(
            p.frame,
            embeddings,
            enrolled_fraction=protocols.search.enrolled_fraction,
            top_k=protocols.search.top_k,
            gallery=OmegaConf.to_container(protocols.gallery, resolve=True),
            seed=cfg.seed,
        )
        searches.append(searched.assign(split=split))
    return {
        "scores": validate_comparison_table(pd.concat(comparisons, ignore_index=True), "scored"),
        "search": validate_search_table(pd.concat(searches, ignore_index=True), "scored"),
    }
