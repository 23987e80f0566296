"""The graph modality: temporal snapshots of the identity graph as PyG `HeteroData`.

`task=rings` is transductive: a split is scored on the graph as it was at the end of the split's
period (`created_at` of its last account), with every account and link created up to then and
no labels among the inputs, so validation, calibration and test accounts are scored the way a
new account would be: the training snapshot (the end of `train`) never sees them, and their
own labels are hidden. Attribute nodes (devices, IP blocks, faces ...) are shared across
periods by design. With a random split every period ends near the end of the corpus: all splits
share one snapshot, the comparison that overstates results.

`GraphDataset` is the modality's dataset for `IDVDataModule`: its items are graph batches, not
accounts: one item, the whole snapshot (full-batch, the default), or with `batch_accounts`
(training only) random draws of that many of the split's accounts, each with its `hops`-hop
subgraph (`idv.graphs.subgraph`: the exact neighbourhood of an L-layer network, node features
computed on the whole snapshot), new draws every epoch. PyG's compiled samplers
(`NeighborLoader`, temporal with `time_attr`) need pyg-lib or torch-sparse, which this machine
cannot install; on a machine that has them, a `NeighborLoader` over `GraphDataset.graph` with
`input_nodes=("account", scored)` plugs in as the training loader (see docs/architecture.md).
The score table still has one row per account (`items_of`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch as PygBatch
from torch_geometric.data import HeteroData

from idv.data.datasets import Batch, ManifestDataset, SampleKey
from idv.data.graph_tables import GraphTables, read_graph_tables
from idv.graphs.structure import Snapshot, attribute_features, share_counts, unique_links
from idv.graphs.subgraph import Adjacency, k_hop

log = logging.getLogger(__name__)
ACCOUNT = "account"

__all__ = ["ACCOUNT", "GraphCorpus", "GraphDataset", "GraphItem", "hetero_data", "relations"]


def relations(node_types: Sequence[str]) -> list[tuple[str, str, str]]:
    """The graph's edge types: account -> attribute and back, per attribute type."""
    out = []
    for name in node_types:
        out += [(ACCOUNT, "uses", name), (name, "used_by", ACCOUNT)]
    return out


@dataclass(frozen=True)
class GraphCorpus:
    """A corpus' tables factorised once: account rows in table order, per link the account
    row, the attribute type (in `node_types` order) and the node's row within its type."""

    account_ids: np.ndarray
    created: np.ndarray
    own: np.ndarray
    node_types: tuple[str, ...]
    node_keys: tuple[np.ndarray, ...]
    link_account: np.ndarray
    link_type: np.ndarray
    link_node: np.ndarray
    link_time: np.ndarray
    feature_names: tuple[str, ...]

    @classmethod
    def from_tables(cls, tables: GraphTables, node_types: Sequence[str]) -> GraphCorpus:
        accounts, links = tables.accounts, tables.links
        ids = accounts["account_id"].astype(str).to_numpy()
        row = pd.Index(ids)
        unknown = sorted(set(links["node_type"].astype(str)) - set(node_types))
        if unknown:
            raise ValueError(
                f"{tables.root}: links of node types {unknown} that the task does not list "
                f"(task.dataset.node_types: {list(node_types)})"
            )
        kind = pd.Categorical(links["node_type"].astype(str), categories=list(node_types)).codes
        keys, node = [], np.zeros(len(links), np.int64)
        for t in range(len(node_types)):
            where = np.flatnonzero(kind == t)
            codes, uniques = pd.factorize(
                links["node_key"].astype(str).to_numpy()[where], sort=True
            )
            node[where] = codes
            keys.append(np.asarray(uniques, dtype=object))
        features = tables.features
        return cls(
            account_ids=ids,
            created=accounts["created_at"].to_numpy(np.float64),
            own=accounts[features].to_numpy(np.float32),
            node_types=tuple(node_types),
            node_keys=tuple(keys),
            link_account=row.get_indexer(links["account_id"].astype(str)).astype(np.int64),
            link_type=kind.astype(np.int64),
            link_node=node,
            link_time=links["created_at"].to_numpy(np.float64),
            feature_names=tuple(features),
        )

    def snapshot(self, at: float) -> tuple[Snapshot, np.ndarray, list[np.ndarray]]:
        """The snapshot at `at`, the corpus rows of its accounts, and per type the corpus
        rows of its attribute nodes (attribute nodes without a link yet are absent)."""
        accounts = np.flatnonzero(self.created <= at)
        new_row = np.full(len(self.created), -1, np.int64)
        new_row[accounts] = np.arange(len(accounts))
        keep = (self.link_time <= at) & (new_row[self.link_account] >= 0)
        account = new_row[self.link_account[keep]]
        kind, node = self.link_type[keep], self.link_node[keep]
        nodes, local = [], np.zeros(len(node), np.int64)
        for t in range(len(self.node_types)):
            where = np.flatnonzero(kind == t)
            present, inverse = np.unique(node[where], return_inverse=True)
            local[where] = inverse
            nodes.append(present)
        account, kind, local = unique_links(account, kind, local)
        snapshot = Snapshot(
            at=float(at),
            node_types=self.node_types,
            n_nodes=np.array([len(n) for n in nodes], np.int64),
            own=self.own[accounts],
            created=self.created[accounts],
            link_account=account,
            link_type=kind,
            link_node=local,
        )
        return snapshot, accounts, nodes


@functools.lru_cache(maxsize=4)
def _corpus(root: str, stamp: tuple, node_types: tuple[str, ...]) -> GraphCorpus:
    del stamp  # in the key only: a rewritten corpus is read again
    return GraphCorpus.from_tables(read_graph_tables(root), node_types)


def load_corpus(root: str | os.PathLike, node_types: Sequence[str]) -> GraphCorpus:
    """The corpus under `root`, read once per process (the four splits share it)."""
    root = Path(root)
    stamp = tuple(
        (p.name, p.stat().st_mtime_ns) for p in sorted(root.glob("*.parquet")) if p.is_file()
    )
    return _corpus(str(root), stamp, tuple(node_types))


@dataclass(frozen=True)
class GraphItem:
    """One graph batch: the graph, the scored accounts' labels, species and ids."""

    graph: HeteroData
    label: np.ndarray
    species: np.ndarray
    sample_id: list[str]


def hetero_data(
    snapshot: Snapshot,
    attributes: Sequence[np.ndarray],
    share: np.ndarray,
    scored: np.ndarray,
    accounts: np.ndarray | None = None,
    links: np.ndarray | None = None,
) -> HeteroData:
    """The snapshot (or its subgraph of `accounts` rows and `links` ids, numbered in that
    order) as HeteroData: `account.x` (own features + log age), `account.share` (the rules'
    share counts), `account.scored` (rows whose outputs are asked for), one node set per
    attribute type (`ATTRIBUTE_FEATURES`) and both edge directions per type."""
    x = snapshot.account_features()
    link_account, link_type, link_node = (
        snapshot.link_account,
        snapshot.link_type,
        snapshot.link_node,
    )
    if accounts is not None:
        new_row = np.full(snapshot.n_accounts, -1, np.int64)
        new_row[accounts] = np.arange(len(accounts))
        x, share = x[accounts], share[accounts]
        link_account = new_row[link_account[links]]
        link_type, link_node = link_type[links], link_node[links]
    data = HeteroData()
    data[ACCOUNT].x = torch.from_numpy(x)
    data[ACCOUNT].share = torch.from_numpy(share)
    data[ACCOUNT].scored = torch.from_numpy(np.asarray(scored, np.int64))
    for t, name in enumerate(snapshot.node_types):
        keep = link_type == t
        node = link_node[keep]
        feats = attributes[t]
        if accounts is not None:  # the subgraph's nodes of this type, numbered in order
            present, node = np.unique(node, return_inverse=True)
            feats = feats[present]
        data[name].x = torch.from_numpy(np.ascontiguousarray(feats))
        edges = torch.from_numpy(np.stack([link_account[keep], node]).astype(np.int64))
        data[ACCOUNT, "uses", name].edge_index = edges
        data[name, "used_by", ACCOUNT].edge_index = edges.flip(0)
    return data


class GraphDataset(ManifestDataset):
    """A split's accounts on its snapshot (module docstring). `node_types`: the attribute
    types, in the network's order; `hops`: the network's layers (the subgraph depth of
    mini-batches); `batch_accounts`: None for full-batch training, else the scored accounts
    per training item."""

    uses_transforms = False
    required_columns = ("created_at",)
    input_names = ("graph",)

    def __init__(
        self,
        frame: pd.DataFrame,
        root: str | Path,
        augment: Mapping[str, Any],
        stage: str,
        species: Sequence[str],
        *,
        node_types: Sequence[str],
        hops: int = 2,
        batch_accounts: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(frame, root, augment, stage, species, **kwargs)
        self.account_labels, self.labels = self.labels, np.zeros(1, np.int64)
        self.corpus = load_corpus(self.root, node_types)
        at = float(self.items["created_at"].max()) if len(self.items) else 0.0
        self.snapshot, corpus_rows, _ = self.corpus.snapshot(at)
        row_of = pd.Index(self.corpus.account_ids[corpus_rows])
        self.scored = row_of.get_indexer(pd.Index(self.sample_ids))
        if (self.scored < 0).any():
            missing = np.asarray(self.sample_ids)[self.scored < 0][:5].tolist()
            raise ValueError(f"{self.root}: accounts {missing} are not in the graph's node table")
        self.attributes = attribute_features(self.snapshot)
        self.share = share_counts(self.snapshot)
        self.graph = hetero_data(self.snapshot, self.attributes, self.share, self.scored)
        self.hops = int(hops)
        self.batch_accounts = int(batch_accounts) if batch_accounts and stage == "train" else None
        if self.batch_accounts:
            self.adjacency = Adjacency.of(self.snapshot)
            self.labels = np.zeros(-(-len(self.scored) // self.batch_accounts), np.int64)
        log.info(
            "graph snapshot at day %.1f: %d accounts (%d scored), %s, %d links",
            at, self.snapshot.n_accounts, len(self.scored),
            ", ".join(f"{n} {t}" for t, n in zip(self.snapshot.node_types,
                                               self.snapshot.n_nodes, strict=True)),
            len(self.snapshot.link_account),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | SampleKey) -> GraphItem:
        i, seed = key if isinstance(key, tuple) else (key, None)
        if self.batch_accounts is None:
            return GraphItem(self.graph, self.account_labels, self.species, self.sample_ids)
        # Each item draws its own accounts (without replacement) from the sampler's per-item
        # seed: a new draw every epoch, reproducible across resumes; about one pass per epoch.
        rng = np.random.default_rng(seed if seed is not None else i)
        size = min(self.batch_accounts, len(self.scored))
        chunk = np.sort(rng.choice(len(self.scored), size=size, replace=False))
        sub = k_hop(self.snapshot, self.adjacency, self.scored[chunk], self.hops)
        graph = hetero_data(
            self.snapshot, self.attributes, self.share, np.arange(len(chunk)), sub.accounts,
            sub.links,
        )  # fmt: skip
        ids = [self.sample_ids[j] for j in chunk]
        return GraphItem(graph, self.account_labels[chunk], self.species[chunk], ids)

    def cache_decoded(self) -> None:
        """Nothing to decode: the snapshot is built in memory already."""

    def serving_inputs(self, i: int) -> dict[str, Any]:
        raise NotImplementedError("a graph bundle scores accounts against its stored graph")

    @staticmethod
    def collate(items: list[GraphItem]) -> Batch:
        """One graph per batch; several items (mini-batch subgraphs, batch_size > 1) become one
        disjoint union, their scored rows offset."""
        if len(items) == 1:
            graph = items[0].graph
        else:
            graph = PygBatch.from_data_list([item.graph for item in items])
            start = graph[ACCOUNT].ptr[:-1]
            graph[ACCOUNT].scored = torch.cat(
                [item.graph[ACCOUNT].scored + start[i] for i, item in enumerate(items)]
            )
        return Batch(
            inputs={"graph": graph},
            targets={},
            label=torch.as_tensor(np.concatenate([np.asarray(i.label, np.int64) for i in items])),
            species=torch.as_tensor(
                np.concatenate([np.asarray(i.species, np.int64) for i in items])
            ),
            sample_id=[s for item in items for s in item.sample_id],
            n_skipped=0,
        )
