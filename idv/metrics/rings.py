"""Ring-level metrics for synthetic-identity fraud rings.

A fraud team does not act on single accounts but on rings: once a few members of a ring are
flagged, the accounts that share their devices, IP blocks, documents or faces are pulled in and
the whole ring is closed. Account-level AP or recall therefore misstate the value of a model: ten
flagged members of one ring are worth less than two flagged members of each of five rings. So
the unit of work here is the ring: `ring_recall` counts the rings with enough flagged members to
be found, `recover_rings` rebuilds the clusters an investigator would get by following shared
attributes between flagged accounts, and `cluster_quality` scores those clusters against the
true rings (purity, adjusted Rand index).

Graphs use networkx (BSD): leidenalg and python-igraph, the usual community-detection
alternatives, are GPL and cannot ship in this package. Louvain from networkx is good enough on
the graphs of flagged accounts, which are small.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import networkx as nx
import numpy as np
import pandas as pd
from networkx.algorithms import bipartite
from sklearn.metrics import adjusted_rand_score

__all__ = ["resampling_units", "cluster_quality", "recover_rings", "ring_recall", "ring_report"]

METHODS = ("components", "louvain")
LINK_COLUMNS = ("account_id", "node_type", "node_key")
TABLE_COLUMNS = ("sample_id", "score", "label", "ring_id")


def ring_recall(
    ring_ids: Sequence | np.ndarray, flagged: Sequence | np.ndarray, min_members: int
) -> float:
    """Share of the rings present with at least `min_members` flagged members: enough to pull
    the rest of the ring in. A ring with fewer members than that counts as recovered when all
    its members present are flagged (it cannot do better)."""
    rings, hit = _ring_arrays(ring_ids, flagged)
    if int(min_members) != min_members or min_members < 1:
        raise ValueError(f"min_members must be a positive integer, got {min_members!r}")
    member = rings.notna().to_numpy()
    if not member.any():
        raise ValueError("no ring is present: ring recall is undefined")
    per_ring = pd.DataFrame({"ring": rings[member].to_numpy(), "hit": hit[member]})
    counts = per_ring.groupby("ring", sort=False)["hit"].agg(["size", "sum"])
    needed = np.minimum(counts["size"].to_numpy(), int(min_members))
    return float(np.mean(counts["sum"].to_numpy() >= needed))


def recover_rings(
    account_ids: Sequence | np.ndarray,
    flagged: Sequence | np.ndarray,
    links: pd.DataFrame,
    method: str = "components",
    seed: int = 0,
    min_shared: int = 2,
) -> pd.Series:
    """The rings a fraud team would recover from the flagged accounts: two flagged accounts are
    joined when they share an attribute node held by at least `min_shared` flagged accounts,
    then clustered by connected components or Louvain (`seed` makes it reproducible).

    Returns a cluster label ("c0", "c1", ...) per flagged account, indexed by account id in input
    order; clusters are numbered by their smallest account id, and an account sharing nothing is
    a singleton cluster.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {list(METHODS)}")
    if int(min_shared) != min_shared or min_shared < 1:
        raise ValueError(f"min_shared must be a positive integer, got {min_shared!r}")
    accounts = _flagged_accounts(account_ids, flagged)
    graph = _account_graph(accounts, links, min_shared)
    if method == "components":
        groups = list(nx.connected_components(graph))
    else:
        groups = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    return _labelled(groups, accounts)


def _account_graph(accounts: pd.Index, links: pd.DataFrame, min_shared: int) -> nx.Graph:
    """Flagged accounts joined by shared attributes, edge weight = number of shared attributes.

    Built as the bipartite account-attribute graph over the flagged accounts (attributes held by
    fewer than `min_shared` of them dropped), then projected onto the accounts: the cost grows
    with the pairs that do share an attribute, not with all pairs of flagged accounts."""
    missing = [c for c in LINK_COLUMNS if c not in links.columns]
    if missing:
        raise ValueError(f"links lack columns {missing} (need {list(LINK_COLUMNS)})")
    held = links.loc[links["account_id"].isin(accounts), list(LINK_COLUMNS)].drop_duplicates()
    holders = held.groupby(["node_type", "node_key"])["account_id"].transform("size")
    held = held[holders >= min_shared]
    if held.empty:  # networkx refuses to project a graph without attribute nodes
        alone = nx.Graph()
        alone.add_nodes_from(accounts)
        return alone
    account_nodes = [("account", a) for a in accounts]
    both = nx.Graph()
    both.add_nodes_from(account_nodes, bipartite=0)
    both.add_edges_from(
        (("account", a), ("attribute", t, k)) for a, t, k in held.itertuples(index=False, name=None)
    )
    projected = bipartite.weighted_projected_graph(both, account_nodes)
    return nx.relabel_nodes(projected, {node: node[1] for node in account_nodes})


def cluster_quality(
    true_ring: Sequence | np.ndarray, predicted: Sequence | np.ndarray
) -> dict[str, float]:
    """Recovered clusters against the true rings, over the flagged accounts only.

    `true_ring` is a ring id per account, None / NaN for a legitimate one (each its own class:
    legitimate accounts sharing a cluster is a merge error, not agreement). Purity = sum over
    predicted clusters of their largest true-class count / n: how clean the cases handed to
    investigators are; ARI (sklearn) also penalises rings split across clusters. `clusters`
    counts predicted clusters of >= 2 accounts (the cases worth opening). Purity and ARI are NaN
    when nothing is flagged."""
    truth = pd.Series(np.asarray(true_ring, dtype=object))
    pred = np.asarray(predicted, dtype=object)
    if pred.shape != (len(truth),):
        raise ValueError(
            f"true_ring and predicted must be 1-D of one length, got {len(truth)}, {pred.shape}"
        )
    n = len(truth)
    if n == 0:
        return {"purity": float("nan"), "ari": float("nan"), "clusters": 0, "flagged": 0}
    classes = _singleton_legitimate(truth)
    clusters = pd.factorize(pred)[0]
    table = pd.crosstab(clusters, classes)
    return {
        "purity": float(table.max(axis=1).sum() / n),
        "ari": float(adjusted_rand_score(classes, clusters)),
        "clusters": int((table.sum(axis=1) >= 2).sum()),
        "flagged": n,
    }


def ring_report(
    table: pd.DataFrame,
    links: pd.DataFrame,
    threshold: float,
    *,
    min_members: int,
    method: str,
    seed: int,
    min_shared: int = 2,
) -> dict[str, float]:
    """Ring recall and the quality of the recovered clusters at one operating threshold
    (flagged = score >= threshold), from a score table with a `ring_id` column."""
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"score table lacks columns {missing} (need {list(TABLE_COLUMNS)})")
    scores = table["score"].to_numpy(dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN: a NaN score is never flagged, fix it upstream")
    member = table["ring_id"].notna().to_numpy()
    if not np.array_equal(member, table["label"].to_numpy() == 1):
        raise ValueError("label must be 1 exactly where ring_id is set (ring members)")
    flagged = scores >= threshold
    recall = ring_recall(table["ring_id"], flagged, min_members)
    ids = table["sample_id"].to_numpy()
    clusters = recover_rings(ids, flagged, links, method=method, seed=seed, min_shared=min_shared)
    truth = table["ring_id"].to_numpy(dtype=object)[flagged]
    quality = cluster_quality(truth, clusters.loc[ids[flagged]].to_numpy())
    return {"ring_recall": recall, **quality}


def _ring_arrays(
    ring_ids: Sequence | np.ndarray, flagged: Sequence | np.ndarray
) -> tuple[pd.Series, np.ndarray]:
    rings = pd.Series(np.asarray(ring_ids, dtype=object))
    hit = np.asarray(flagged)
    if hit.dtype != bool or hit.shape != (len(rings),):
        raise ValueError(
            f"flagged must be a boolean array with one value per account ({len(rings)}), "
            f"got {hit.dtype} of shape {hit.shape}"
        )
    return rings, hit


def _flagged_accounts(
    account_ids: Sequence | np.ndarray, flagged: Sequence | np.ndarray
) -> pd.Index:
    ids, hit = _ring_arrays(account_ids, flagged)
    if ids.isna().any():
        raise ValueError("account ids contain missing values")
    if ids.duplicated().any():
        dupes = ids[ids.duplicated()].unique()[:5].tolist()
        raise ValueError(f"account ids must be unique, repeated: {dupes}")
    return pd.Index(ids[hit].to_numpy(), name="account_id")


def _labelled(groups: list[set[Hashable]], accounts: pd.Index) -> pd.Series:
    """Cluster labels "c0", "c1", ... with clusters ordered by their smallest account id."""
    ordered = sorted(groups, key=min)
    label = {a: f"c{i}" for i, group in enumerate(ordered) for a in group}
    return pd.Series([label[a] for a in accounts], index=accounts, name="cluster", dtype=object)


def _singleton_legitimate(truth: pd.Series) -> np.ndarray:
    """Integer classes: one per ring, and a fresh one per legitimate account."""
    codes = pd.factorize(truth)[0]  # NaN / None -> -1
    legit = codes < 0
    codes[legit] = codes.max(initial=-1) + 1 + np.arange(legit.sum())
    return codes


def resampling_units(table: pd.DataFrame) -> np.ndarray:
    """The bootstrap unit of each row of a score table: its ring for a ring member (one
    operator, one unit of dependence), else the account (`subject_id`) itself."""
    account = table["subject_id"].astype(str).to_numpy(object)
    if "ring_id" not in table.columns:
        return "account:" + account
    ring = table["ring_id"]
    return np.where(ring.notna().to_numpy(), ("ring:" + ring.astype(str)).to_numpy(),
                    "account:" + account)  # fmt: skip
