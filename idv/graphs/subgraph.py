"""The k-hop subgraph around accounts, in numpy: what scoring one new account (serving) and a
mini-batch of accounts (training, `idv.data.graph`) need of the stored graph.

An L-layer message-passing network over the bipartite account-attribute graph reads, for an
account, nodes at most L hops away (account -> attribute is one hop). The subgraph induced by
those nodes, with every node's features computed on the whole snapshot (degrees and time
spreads must not shrink with the cut), gives the seed accounts exactly the scores of the whole
graph: `tests/test_rings.py` holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from idv.graphs.structure import Snapshot

__all__ = ["Adjacency", "Subgraph", "k_hop"]


@dataclass(frozen=True)
class Adjacency:
    """CSR views of a snapshot's links, by account and by (type, node)."""

    by_account: np.ndarray  # link ids sorted by account
    account_start: np.ndarray
    by_node: np.ndarray  # link ids sorted by global node id
    node_start: np.ndarray
    node_offset: np.ndarray  # global node id = node_offset[type] + node row

    @classmethod
    def of(cls, snapshot: Snapshot) -> Adjacency:
        offset = np.concatenate([[0], np.cumsum(snapshot.n_nodes)]).astype(np.int64)
        node = offset[snapshot.link_type] + snapshot.link_node
        by_account = np.argsort(snapshot.link_account, kind="stable")
        by_node = np.argsort(node, kind="stable")
        account_start = np.searchsorted(
            snapshot.link_account[by_account], np.arange(snapshot.n_accounts + 1)
        )
        node_start = np.searchsorted(node[by_node], np.arange(offset[-1] + 1))
        return cls(by_account, account_start, by_node, node_start, offset)


def _gather(order: np.ndarray, start: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Link ids of every row in `rows` (CSR `order` / `start`)."""
    if len(rows) == 0:
        return np.empty(0, np.int64)
    lo, hi = start[rows], start[rows + 1]
    counts = hi - lo
    idx = np.repeat(lo - np.cumsum(np.concatenate([[0], counts[:-1]])), counts)
    return order[idx + np.arange(counts.sum())]


@dataclass(frozen=True)
class Subgraph:
    """Account rows (`accounts`, the seeds first, in the order given) and link ids (`links`)
    of the k-hop neighbourhood, in the snapshot's numbering."""

    accounts: np.ndarray
    links: np.ndarray
    n_seeds: int


def k_hop(snapshot: Snapshot, adjacency: Adjacency, seeds: np.ndarray, hops: int) -> Subgraph:
    """Accounts and links within `hops` hops of `seeds` (account rows), induced."""
    seeds = np.asarray(seeds, np.int64)
    node_of = adjacency.node_offset[snapshot.link_type] + snapshot.link_node
    accounts = seeds
    seen_accounts = np.zeros(snapshot.n_accounts, bool)
    seen_accounts[seeds] = True
    seen_nodes = np.zeros(int(adjacency.node_offset[-1]), bool)
    frontier_accounts, frontier_nodes = seeds, np.empty(0, np.int64)
    for hop in range(hops):
        if hop % 2 == 0:  # accounts -> their attributes
            links = _gather(adjacency.by_account, adjacency.account_start, frontier_accounts)
            nodes = np.unique(node_of[links])
            frontier_nodes = nodes[~seen_nodes[nodes]]
            seen_nodes[frontier_nodes] = True
        else:  # attributes -> their accounts
            links = _gather(adjacency.by_node, adjacency.node_start, frontier_nodes)
            found = np.unique(snapshot.link_account[links])
            frontier_accounts = found[~seen_accounts[found]]
            seen_accounts[frontier_accounts] = True
            accounts = np.concatenate([accounts, frontier_accounts])
    # Induced: every link between a kept account and a kept attribute node.
    links = _gather(adjacency.by_account, adjacency.account_start, accounts)
    links = np.sort(links[seen_nodes[node_of[links]]])
    return Subgraph(accounts, links, len(seeds))
