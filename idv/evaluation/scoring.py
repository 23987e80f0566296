"""Scoring a split with a network, and the detection score table of the blueprint."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from idv.data.manifest import DEMOGRAPHIC_COLUMNS, SEGMENT_COLUMNS
from idv.score_tables import DETECTION_COLUMNS


@torch.inference_mode()
def predict_scores(net: nn.Module, loader: DataLoader) -> pd.DataFrame:
    """P(attack) per sample (float32, eval mode), keyed by sample_id."""
    net.eval()
    ids, scores = [], []
    for batch in loader:
        logits = net(batch.image).reshape(len(batch.label), -1)[:, 0]
        scores.append(torch.sigmoid(logits.float()))
        ids.extend(batch.sample_id)
    return pd.DataFrame({"sample_id": ids, "score": torch.cat(scores).numpy()})


def detection_table(manifest_rows: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per manifest sample: the blueprint's detection score table.

    A sample the model produced no score for (e.g. an unreadable image skipped) keeps its row
    with `acquired = False`: a failure to acquire, never a silently dropped sample.
    """
    keep = [
        c
        for c in manifest_rows.columns
        if c in (*DETECTION_COLUMNS, "split", *SEGMENT_COLUMNS, *DEMOGRAPHIC_COLUMNS)
    ]
    table = manifest_rows[keep].merge(scores, on="sample_id", how="left", validate="1:1")
    table["acquired"] = table["score"].notna()
    ordered = [*DETECTION_COLUMNS, "acquired"]
    return table[ordered + [c for c in table.columns if c not in ordered]]
