"""A snapshot of the identity graph as arrays, and the features of its nodes.

The graph is bipartite: accounts link to attribute nodes of a few types (device, IP block,
document series, phone, e-mail domain, address, face cluster). A snapshot at time T holds the
accounts created at or before T and their links created at or before T; a repeated
(account, attribute) link counts once. Everything a model reads is computed here, from the
snapshot alone (so from the past only):

- account features: the account's own columns (`f_*`) plus `log_age` (log1p of its age in
  days at T);
- attribute features (`ATTRIBUTE_FEATURES`): log1p of the node's degree (distinct accounts),
  of the spread (standard deviation, days) of its accounts' creation times (a burst of
  creations is small), and of its age (days since its first link);
- share counts (the rules baseline's input): per account and attribute type, the most other
  accounts any of its attributes of that type is shared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ATTRIBUTE_FEATURES = ("log_degree", "log_time_spread", "log_age")
AGE_FEATURE = "log_age"

__all__ = [
    "AGE_FEATURE",
    "ATTRIBUTE_FEATURES",
    "Snapshot",
    "attribute_features",
    "share_counts",
]


@dataclass(frozen=True)
class Snapshot:
    """Accounts (rows 0..n-1) and their links at time `at`: `link_account[e]` links account
    row to node `link_node[e]` of type `link_type[e]` (`node_types[link_type[e]]`), node rows
    counted per type (`n_nodes[t]`). `own` holds the accounts' own features, `created` their
    creation times."""

    at: float
    node_types: tuple[str, ...]
    n_nodes: np.ndarray
    own: np.ndarray
    created: np.ndarray
    link_account: np.ndarray
    link_type: np.ndarray
    link_node: np.ndarray

    @property
    def n_accounts(self) -> int:
        return len(self.created)

    def account_features(self) -> np.ndarray:
        """(n, F + 1) float32: own features, then log1p(age in days)."""
        age = np.log1p(np.maximum(self.at - self.created, 0.0))
        return np.concatenate([self.own, age[:, None]], axis=1).astype(np.float32)

    def edges(self, type_index: int) -> np.ndarray:
        """(2, E) int64 (account row, node row) of one attribute type."""
        keep = self.link_type == type_index
        return np.stack([self.link_account[keep], self.link_node[keep]]).astype(np.int64)


def unique_links(
    account: np.ndarray, kind: np.ndarray, node: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Links with repeated (account, type, node) triples removed, sorted by type, node, account."""
    order = np.lexsort((account, node, kind))
    a, k, n = account[order], kind[order], node[order]
    keep = np.ones(len(a), bool)
    keep[1:] = (a[1:] != a[:-1]) | (k[1:] != k[:-1]) | (n[1:] != n[:-1])
    return a[keep], k[keep], n[keep]


def attribute_features(snapshot: Snapshot) -> list[np.ndarray]:
    """Per attribute type, (n_nodes, len(ATTRIBUTE_FEATURES)) float32 (module docstring)."""
    out = []
    times = snapshot.created[snapshot.link_account]
    for t, n in enumerate(snapshot.n_nodes):
        keep = snapshot.link_type == t
        node, when = snapshot.link_node[keep], times[keep]
        degree = np.bincount(node, minlength=n).astype(np.float64)
        total = np.bincount(node, weights=when, minlength=n)
        square = np.bincount(node, weights=when * when, minlength=n)
        safe = np.maximum(degree, 1.0)
        spread = np.sqrt(np.maximum(square / safe - (total / safe) ** 2, 0.0))
        first = np.full(n, np.inf)
        np.minimum.at(first, node, when)
        age = np.where(np.isfinite(first), np.maximum(snapshot.at - first, 0.0), 0.0)
        out.append(
            np.stack([np.log1p(degree), np.log1p(spread), np.log1p(age)], axis=1).astype(np.float32)
        )
    return out


def share_counts(snapshot: Snapshot) -> np.ndarray:
    """(n_accounts, n_types) float32: per account and type, the largest number of OTHER
    accounts one of its attributes of that type is shared with (0: none shared)."""
    out = np.zeros((snapshot.n_accounts, len(snapshot.node_types)), np.float32)
    for t, n in enumerate(snapshot.n_nodes):
        keep = np.flatnonzero(snapshot.link_type == t)
        node = snapshot.link_node[keep]
        degree = np.bincount(node, minlength=n)
        column = np.zeros(snapshot.n_accounts, np.float32)
        np.maximum.at(column, snapshot.link_account[keep], (degree[node] - 1).astype(np.float32))
        out[:, t] = column
    return out
