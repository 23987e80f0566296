"""Scoring accounts against a bundle's stored identity graph (kind `graph`: rings).

A rings bundle holds the graph it was exported with (`graph/graph.npz`: accounts, their own
features and creation times, the attribute keys by type, the links) beside the network. A new
account attaches to the stored attribute nodes by its attribute keys (an unseen key is a new
node of degree one) and is scored on its k-hop subgraph (`idv.graphs.subgraph`), with every
feature computed by `idv.graphs.structure`, as in training: numpy and the model's backend only
(ONNX Runtime needs no torch, no PyG). The subgraph reaches `hops` hops, one more when `hops`
is odd, so that every attribute node in it carries all its accounts: its features then equal
the whole graph's, and the seed's score equals the full-graph score (the parity gate checks
it on held-out accounts).

    bundle = load_bundle("outputs/rings/bundle", backend="onnxruntime")
    bundle.score_accounts([{"created_at": 241.0, "features": {"f_voip_phone": 1.0, ...},
                            "attributes": {"device": ["d-17"], "ip": ["10.1.2"], ...}}])
    bundle.score_stored(["acct_0000042"])   # a stored account, re-scored on its subgraph
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from idv.errors import IdvError
from idv.graphs.structure import Snapshot, attribute_features, share_counts
from idv.graphs.subgraph import Adjacency, k_hop
from idv.serving.bundle import Bundle, BundleError

GRAPH_FILE = "graph/graph.npz"


class AccountError(IdvError, ValueError):
    """A new account that cannot be scored; the message names the account and the key."""


def model_inputs(snapshot: Snapshot, node_types: Sequence[str]) -> dict[str, np.ndarray]:
    """The network's named inputs for every account of `snapshot` (features computed on it)."""
    out = {"account_x": snapshot.account_features(), "share": share_counts(snapshot)}
    attributes = attribute_features(snapshot)
    for t, name in enumerate(node_types):
        out[f"{name}_x"] = attributes[t]
        out[f"{name}_edges"] = np.ascontiguousarray(snapshot.edges(t).T)
    return out


def input_names(node_types: Sequence[str]) -> list[str]:
    """The network's positional inputs: account features, share counts, per type the
    attribute features, then per type the (E, 2) account -> node edges."""
    return ["account_x", "share", *(f"{t}_x" for t in node_types),
            *(f"{t}_edges" for t in node_types)]  # fmt: skip


@dataclass(frozen=True)
class StoredGraph:
    """The graph of a bundle: a snapshot plus the ids and keys to attach new accounts by."""

    snapshot: Snapshot
    account_ids: np.ndarray
    node_keys: tuple[dict[str, int], ...]
    feature_names: tuple[str, ...]
    hops: int

    @classmethod
    def load(cls, file: str | os.PathLike, spec: Mapping[str, Any]) -> StoredGraph:
        with np.load(file, allow_pickle=False) as data:
            types = tuple(spec["node_types"])
            keys = tuple({str(k): i for i, k in enumerate(data[f"keys_{t}"])} for t in types)
            snapshot = Snapshot(
                at=float(data["at"]),
                node_types=types,
                n_nodes=np.array([len(k) for k in keys], np.int64),
                own=data["own"].astype(np.float32),
                created=data["created"].astype(np.float64),
                link_account=data["link_account"].astype(np.int64),
                link_type=data["link_type"].astype(np.int64),
                link_node=data["link_node"].astype(np.int64),
            )
            ids = data["account_ids"].astype(str)
        return cls(snapshot, ids, keys, tuple(spec["account_features"]), int(spec["hops"]))

    @property
    def depth(self) -> int:
        """Hops extracted: `hops`, one more when odd (module docstring)."""
        return self.hops + self.hops % 2

    @functools.cached_property
    def adjacency(self) -> Adjacency:
        """CSR views of the stored links, built on first use."""
        return Adjacency.of(self.snapshot)

    def stored_subgraph(self, row: int, at: float | None = None) -> Snapshot:
        """The subgraph of stored account `row` as a snapshot (the seed is account 0)."""
        sub = k_hop(self.snapshot, self.adjacency, np.array([row]), self.depth)
        return _renumber(self.snapshot, sub.accounts, sub.links, at)

    def new_subgraph(self, account: Mapping[str, Any], name: str) -> Snapshot:
        """The subgraph of a new account (row 0), attached by its attribute keys."""
        created = _number(account.get("created_at"), f"account {name}: created_at")
        if created < float(self.snapshot.created.max(initial=-np.inf)):
            raise AccountError(
                f"account {name}: created_at {created:g} is before the stored graph's last "
                f"account ({self.snapshot.created.max():g}): time goes backwards"
            )
        features = account.get("features") or {}
        missing = [f for f in self.feature_names if f not in features]
        if missing:
            raise AccountError(f"account {name}: features {missing} are missing")
        own = np.array([[_number(features[f], f"account {name}: {f}") for f in self.feature_names]],
                       np.float32)  # fmt: skip
        attributes = account.get("attributes") or {}
        unknown = sorted(set(attributes) - set(self.snapshot.node_types))
        if unknown:
            raise AccountError(
                f"account {name}: attribute types {unknown} are not in the graph "
                f"({list(self.snapshot.node_types)})"
            )
        offset = self.adjacency.node_offset
        known_nodes, new_links = [], []  # (type, global node) of stored nodes; (type, key)
        for t, kind in enumerate(self.snapshot.node_types):
            for key in dict.fromkeys(str(k) for k in attributes.get(kind) or []):
                row = self.node_keys[t].get(key)
                if row is None:
                    new_links.append((t, key))
                else:
                    known_nodes.append(offset[t] + row)
        # Stored accounts on the new account's stored attribute nodes (hop 2), and, for a
        # deeper network, their k-hop neighbourhoods.
        node_links = _links_of_nodes(self.adjacency, np.asarray(known_nodes, np.int64))
        neighbours = np.unique(self.snapshot.link_account[node_links])
        depth = self.depth - 2
        if depth > 0 and len(neighbours):
            sub = k_hop(self.snapshot, self.adjacency, neighbours, depth)
            accounts, links = sub.accounts, np.union1d(sub.links, node_links)
        else:
            accounts, links = neighbours, node_links
        base = _renumber(self.snapshot, accounts, links, created, keep_nodes=known_nodes)
        return _attach(base, own[0], created, known_nodes, new_links, offset, self.snapshot)


def _number(value: Any, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AccountError(f"{where} is not a number: {value!r}") from None
    if not np.isfinite(out):
        raise AccountError(f"{where} is not finite: {value!r}")
    return out


def _links_of_nodes(adjacency: Adjacency, nodes: np.ndarray) -> np.ndarray:
    if len(nodes) == 0:
        return np.empty(0, np.int64)
    lo, hi = adjacency.node_start[nodes], adjacency.node_start[nodes + 1]
    return np.sort(np.concatenate([adjacency.by_node[a:b] for a, b in zip(lo, hi, strict=True)]))


def _renumber(
    snapshot: Snapshot,
    accounts: np.ndarray,
    links: np.ndarray,
    at: float | None,
    keep_nodes: Sequence[int] = (),
) -> Snapshot:
    """A snapshot of `accounts` (in that order) and `links` (ids), nodes renumbered per type
    in order of first use; `keep_nodes` (global ids) are numbered first, in that order."""
    row = np.full(snapshot.n_accounts, -1, np.int64)
    row[accounts] = np.arange(len(accounts))
    kind, node = snapshot.link_type[links], snapshot.link_node[links]
    local = np.zeros(len(links), np.int64)
    counts = np.zeros(len(snapshot.node_types), np.int64)
    offset = np.concatenate([[0], np.cumsum(snapshot.n_nodes)])
    for t in range(len(snapshot.node_types)):
        first = [g - offset[t] for g in keep_nodes if offset[t] <= g < offset[t + 1]]
        where = np.flatnonzero(kind == t)
        order = list(dict.fromkeys([*first, *node[where].tolist()]))
        index = {n: i for i, n in enumerate(order)}
        local[where] = [index[n] for n in node[where].tolist()]
        counts[t] = len(order)
    return Snapshot(
        at=float(snapshot.at if at is None else at),
        node_types=snapshot.node_types,
        n_nodes=counts,
        own=snapshot.own[accounts],
        created=snapshot.created[accounts],
        link_account=row[snapshot.link_account[links]],
        link_type=kind,
        link_node=local,
    )


def _attach(base, own, created, known_nodes, new_links, offset, stored) -> Snapshot:
    """`base` with the new account prepended (row 0) and its links: to its stored nodes (the
    first of each type in `base`, in `known_nodes` order) and to new nodes of degree one."""
    account, kind, node = [base.link_account + 1], [base.link_type], [base.link_node]
    counts = base.n_nodes.copy()
    for t in range(len(stored.node_types)):
        mine = [g for g in known_nodes if offset[t] <= g < offset[t + 1]]
        account.append(np.zeros(len(mine), np.int64))
        kind.append(np.full(len(mine), t, np.int64))
        node.append(np.arange(len(mine), dtype=np.int64))  # numbered first by _renumber
    for t, _ in new_links:
        account.append(np.zeros(1, np.int64))
        kind.append(np.full(1, t, np.int64))
        node.append(np.array([counts[t]], np.int64))
        counts[t] += 1
    return Snapshot(
        at=float(created),
        node_types=stored.node_types,
        n_nodes=counts,
        own=np.concatenate([own[None, :], base.own]).astype(np.float32),
        created=np.concatenate([[created], base.created]),
        link_account=np.concatenate(account),
        link_type=np.concatenate(kind),
        link_node=np.concatenate(node),
    )


class GraphBundle(Bundle):
    """A rings bundle: `score_accounts` (new accounts against the stored graph),
    `score_stored` (stored accounts on their subgraphs), `decide` (clear / watch / review)."""

    def __init__(self, path: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        spec = self.preprocess.get("graph")
        if not isinstance(spec, Mapping):
            raise BundleError(f"bundle {self.path}: preprocess.json has no `graph` entry")
        if GRAPH_FILE not in self.checksums:
            raise BundleError(f"bundle {self.path} has no {GRAPH_FILE}")
        self.graph = StoredGraph.load(Path(self.path) / GRAPH_FILE, spec)
        self.row_of = {a: i for i, a in enumerate(self.graph.account_ids)}

    def _score(self, snapshot: Snapshot) -> dict[str, float]:
        inputs = model_inputs(snapshot, snapshot.node_types)
        out = self.backend({n: inputs[n] for n in self.input_names})
        return {name: float(out[name][0]) for name in self.output_names}

    def score_parts(self, accounts: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        """Every named output (score, tabular, rules) of each new account."""
        return [
            self._score(self.graph.new_subgraph(a, str(a.get("account_id", i))))
            for i, a in enumerate(accounts)
        ]

    def score_accounts(self, accounts: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """P(ring member) of each new account, each scored alone against the stored graph."""
        return np.array([p[self.primary] for p in self.score_parts(accounts)], np.float32)

    def score_stored(self, account_ids: Sequence[str]) -> np.ndarray:
        """P(ring member) of stored accounts, each on its subgraph of the stored graph."""
        rows = []
        for a in account_ids:
            if str(a) not in self.row_of:
                raise AccountError(f"account {a!r} is not in the bundle's stored graph")
            rows.append(self.row_of[str(a)])
        return np.array(
            [self._score(self.graph.stored_subgraph(r))[self.primary] for r in rows], np.float32
        )
