"""The bundle of a graph task (kind `graph`: rings): the network, the graph it scores against,
and a parity gate through the serving path.

What differs from a per-item bundle (`idv.export.bundle`): the network's inputs are a whole
(sub)graph, not one item, and the bundle must carry the graph new accounts attach to. So:

- `GraphScorer` wraps the trained `RingDetector` on plain tensors (`idv.serving.graph.
  input_names`: account features, share counts, per type the attribute features and (E, 2)
  edges; every first axis its own dynamic size) and returns every account's probabilities
  (`idv.models.outputs.DetectionScores`, as scoring does). PyG's `to_hetero` modules do not
  script, so TorchScript is a trace (checked on two other subgraphs), and ONNX uses the
  TorchScript-based exporter (`onnx_dynamo = False`: the dynamo exporter would tie the first
  axes together).
- `graph/graph.npz`: the snapshot at the end of the corpus (every account and link), with the
  account ids and attribute keys serving attaches a new account by.
- The parity gate, per format, on held-out (test) accounts: (1) the exported model on the whole
  stored graph against the eager wrapper, (2) serving's path (`GraphBundle.score_stored`: the
  k-hop subgraph of each account, features computed on it) against the eager wrapper's
  whole-graph scores, within `parity.tolerance`, and the decisions at the primary threshold
  equal. PyG is a training dependency only: serving runs numpy and the model's runtime.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from idv.atomic import remove_stale, replace_dir, temporary_sibling
from idv.data.graph import load_corpus
from idv.data.manifest import Manifest
from idv.export.bundle import ExportResult, _write_json, read_thresholds, training_data
from idv.export.card import build_card, card_markdown, code_revision, read_evaluation
from idv.export.formats import SERVING_BACKENDS, export_formats, format_records
from idv.export.parity import ParityError
from idv.graphs.structure import ATTRIBUTE_FEATURES, Snapshot
from idv.hashing import sha256_file
from idv.models.checkpoint import net_from_checkpoint
from idv.models.outputs import DetectionScores
from idv.progress import step
from idv.serving.bundle import PREPROCESS_VERSION, verify_bundle, write_checksums
from idv.serving.graph import GRAPH_FILE, GraphBundle, input_names, model_inputs
from idv.thresholds import decide

log = logging.getLogger(__name__)
MEANINGS = {
    "score": "P(ring member) from the graph network (the served score)",
    "tabular": "P(ring member) from the account's own features only (the non-graph baseline)",
    "rules": "the share-count rules' risk (the fraud team's baseline; not trained)",
}


class GraphScorer(nn.Module):
    """The network on plain tensors (module docstring); outputs every account's probability."""

    onnx_dynamo = False

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()
        self.node_types = list(net.node_types)
        self.input_names = input_names(self.node_types)
        self.output_names = list(net.output_names)
        self.primary = "score"
        self.head = DetectionScores()
        # Each input's first axis is its own size: accounts, nodes of a type, edges of a type.
        self.axis_names = {"account_x": "accounts", "share": "accounts"}
        for t in self.node_types:
            self.axis_names[f"{t}_x"] = f"{t}_nodes"
            self.axis_names[f"{t}_edges"] = f"{t}_edges"

    def forward(self, *tensors: torch.Tensor) -> dict[str, torch.Tensor]:
        n = len(self.node_types)
        account_x, share = tensors[0], tensors[1]
        attributes = list(tensors[2 : 2 + n])
        edges = [e.t() for e in tensors[2 + n : 2 + 2 * n]]
        return self.head(self.net.forward_tensors(account_x, share, attributes, edges))

    def trace_checks(self, example: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
        """Two other valid graphs to check the trace on: the example's accounts doubled (a
        second copy of every node and edge) and its first account alone."""
        doubled = []
        for name in self.input_names:
            value = example[name]
            if name.endswith("_edges"):
                node = name[: -len("_edges")]
                shift = torch.tensor([example["account_x"].shape[0], example[f"{node}_x"].shape[0]])
                value = torch.cat([value, value + shift])
            else:
                value = torch.cat([value, value])
            doubled.append(value)
        return [tuple(doubled)]


def _stored_graph(corpus, at: float) -> tuple[Snapshot, dict[str, np.ndarray]]:
    """The snapshot at `at` and the arrays of graph/graph.npz."""
    snapshot, accounts, nodes = corpus.snapshot(at)
    arrays = {
        "at": np.array(snapshot.at),
        "account_ids": corpus.account_ids[accounts].astype(str),
        "own": snapshot.own,
        "created": snapshot.created,
        "link_account": snapshot.link_account,
        "link_type": snapshot.link_type,
        "link_node": snapshot.link_node,
    }
    for t, name in enumerate(corpus.node_types):
        arrays[f"keys_{name}"] = corpus.node_keys[t][nodes[t]].astype(str)
    return snapshot, arrays


def export_graph_bundle(cfg) -> ExportResult:
    """The rings bundle of `cfg.ckpt_path` into `cfg.bundle_dir` (replaced only on success)."""
    ckpt = Path(cfg.ckpt_path)
    net, run_config = net_from_checkpoint(ckpt)
    task = dict(run_config["task"])
    ckpt_sha = sha256_file(ckpt)
    thresholds, thresholds_bytes = read_thresholds(cfg.thresholds, ckpt_sha, task["kind"])
    data = run_config["data"]
    manifest_file = Path(cfg.get("manifest") or data["manifest"])
    root = Path(cfg.get("root") or data.get("root") or manifest_file.parent)
    manifest = Manifest.load(manifest_file, root=root, labels=data.get("labels"), check_files=False)
    node_types = list(task["node_types"])
    corpus = load_corpus(root, node_types)
    snapshot, arrays = _stored_graph(corpus, float(corpus.created.max()))
    wrapper = GraphScorer(net)
    full = model_inputs(snapshot, node_types)
    example = {k: torch.from_numpy(v) for k, v in full.items()}

    options = cfg.parity
    test = manifest.split("test")
    held = test["sample_id"].astype(str).tolist()
    if options.get("max_samples"):
        held = held[: int(options.max_samples)]
    if len(held) < int(options.min_samples):
        raise ParityError(
            f"{len(held)} held-out accounts < parity.min_samples={options.min_samples}"
        )
    row_of = pd.Index(arrays["account_ids"])
    rows = row_of.get_indexer(held)

    spec = {
        "schema_version": PREPROCESS_VERSION,
        "kind": task["kind"],
        "task": task.get("name"),
        "inputs": {
            n: {
                "modality": "graph",
                "part": n,
                "shape": [wrapper.axis_names[n], int(full[n].shape[1])],
            }
            for n in wrapper.input_names
        },  # fmt: skip
        "input_order": list(wrapper.input_names),
        "outputs": {
            n: {"shape": ["accounts"], "activation": "sigmoid", "meaning": MEANINGS[n]}
            for n in wrapper.output_names
        },  # fmt: skip
        "primary_output": wrapper.primary,
        "graph": {
            "file": GRAPH_FILE,
            "node_types": node_types,
            "account_features": list(corpus.feature_names),
            "attribute_features": list(ATTRIBUTE_FEATURES),
            "hops": int(task.get("layers", 2)),
            "accounts": int(snapshot.n_accounts),
            "links": int(len(snapshot.link_account)),
            "at": float(snapshot.at),
        },
        "crop_note": str(cfg.get("crop_note") or task.get("crop_note") or ""),
    }
    formats = list(cfg.get("formats") or task.get("export_formats") or ("torchscript", "onnx"))
    target = Path(cfg.bundle_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale(target):
        log.info("removed %s, left by a process that no longer runs", stale)
    tmp = temporary_sibling(target)
    tmp.mkdir()
    try:
        exported = export_formats(wrapper, example, tmp, formats)
        (tmp / "graph").mkdir()
        np.savez_compressed(tmp / GRAPH_FILE, **arrays)
        (tmp / "thresholds.json").write_bytes(thresholds_bytes)
        _write_json(spec, tmp / "preprocess.json")
        with torch.inference_mode():
            eager = {
                k: v.numpy() for k, v in wrapper(*[example[n] for n in wrapper.input_names]).items()
            }
        report: dict[str, Any] = {
            "samples": len(held),
            "tolerance": float(options.tolerance),
            "outputs": {n: {} for n in wrapper.output_names},
            "formats": {},
            "batch_sizes": ["the whole stored graph", "one k-hop subgraph per account"],
        }
        threshold = thresholds.global_entry()
        with step(log, "parity gate") as note:
            write_checksums(tmp)
            for name in exported:
                backend = SERVING_BACKENDS[name]
                report["formats"][name] = _parity(tmp, backend, full, eager, rows, threshold,
                                                  thresholds, float(options.tolerance))  # fmt: skip
            note["detail"] = f"{len(held)} held-out accounts, every format and output"
        (tmp / "SHA256SUMS").unlink()
        primary = eager[wrapper.primary][rows]
        edges = np.array([threshold.threshold, threshold.review_at_or_above])
        near = np.abs(primary[:, None] - edges[None, :]).min(1) <= float(options.tolerance)
        report["near_threshold_samples"] = int(near.sum())
        card = build_card(
            run_config=run_config,
            training_data=training_data(manifest, data.get("protocol")),
            evaluation=read_evaluation(cfg.get("evaluation_dir")),
            thresholds=thresholds,
            thresholds_sha256=sha256_file(cfg.thresholds),
            checkpoint={"path": str(ckpt), "sha256": ckpt_sha},
            formats=format_records(exported),
            parity=report,
            preprocess=spec,
            intended_use=(cfg.get("card") or {}).get("intended_use"),
            limitations=[str(x) for x in ((cfg.get("card") or {}).get("limitations") or [])],
            code=code_revision(),
        )
        _write_json(report, tmp / "parity.json")
        _write_json(card, tmp / "model_card.json")
        (tmp / "model_card.md").write_text(card_markdown(card))
        write_checksums(tmp)
        files = verify_bundle(tmp)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote bundle %s (%s)", target, ", ".join(sorted(files)))
    return ExportResult(target, files, report, card)


def _parity(path: Path, backend: str, full, eager, rows, entry, thresholds, tolerance) -> dict:
    """One format's figures: whole graph vs eager, serving subgraphs vs eager, decisions."""
    bundle = GraphBundle(path, backend=backend)
    whole = bundle.backend({n: full[n] for n in bundle.input_names})
    figures = {f"whole_graph_max_abs_diff/{k}": float(np.max(np.abs(whole[k] - eager[k])))
               for k in eager}  # fmt: skip
    served = bundle.score_stored(bundle.graph.account_ids[rows])
    expected = eager[bundle.primary][rows]
    figures["subgraph_max_abs_diff/score"] = float(np.max(np.abs(served - expected)))
    rule = thresholds.decision
    same = decide(served, entry.review_at_or_above, entry.threshold, rule) == decide(
        expected, entry.review_at_or_above, entry.threshold, rule
    )
    figures["decisions_equal"] = int(same.sum())
    figures["max_abs_diff"] = max(v for k, v in figures.items() if "max_abs_diff/" in k)
    failures = [k for k, v in figures.items() if k.endswith(tuple(eager)) and v > tolerance]
    if failures or not same.all():
        raise ParityError(
            f"{path.name} ({backend}): outputs differ beyond {tolerance:g}: "
            f"{ {k: figures[k] for k in failures} }; decisions equal on {int(same.sum())} of "
            f"{len(same)} held-out accounts"
        )
    return figures


__all__ = ["GraphScorer", "export_graph_bundle"]
