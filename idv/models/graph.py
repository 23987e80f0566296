"""The rings detector: a heterogeneous GNN over the identity graph, with its two baselines
as outputs of the same network (so they are scored, judged, exported and served alike).

- `score`: heterogeneous GraphSAGE or GAT (PyG's `to_hetero` of a homogeneous stack: one
  convolution per relation, summed per node type) over account and attribute nodes; the
  account's embedding after `layers` hops -> a logit.
- `tabular`: logistic regression on the account's own features only (no graph): the non-graph
  baseline, trained by its own loss (its parameters are its own).
- `rules`: the share-count rules a fraud team starts with (an attribute of a type shared with
  at least `rules[type]` other accounts fires), not trained: the share of rules fired, ties
  broken by the strongest share relative to its limit, as a logit.

`forward(graph)` scores the graph's `account.scored` rows (training and scoring);
`forward_tensors` is the same on plain tensors (every account of the graph), what the export
traces: PyG's `to_hetero` modules take dicts keyed by edge-type tuples, which TorchScript
cannot take as inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch_geometric.nn import GATConv, SAGEConv, to_hetero

from idv.data.graph import ACCOUNT, relations
from idv.graphs.structure import ATTRIBUTE_FEATURES

CONVS = ("sage", "gat")


class _Stack(nn.Module):
    """A homogeneous message-passing stack, made heterogeneous by `to_hetero`."""

    def __init__(self, hidden: int, layers: int, conv: str, dropout: float, heads: int) -> None:
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
        if conv == "gat" and hidden % heads:
            raise ValueError(f"GAT: hidden {hidden} is not a multiple of heads {heads}")
        self.convs = nn.ModuleList(
            SAGEConv((hidden, hidden), hidden)
            if conv == "sage"
            else GATConv((hidden, hidden), hidden // heads, heads=heads, add_self_loops=False)
            for _ in range(layers)
        )
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)  # a module: fx traces `training` as a constant

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = self.drop(self.act(x))
        return x


class RingDetector(nn.Module):
    """Outputs `score` (GNN), `tabular` and `rules` logits per account (module docstring).
    `account_features`: the own features (`f_*`); the GNN also reads the account's age."""

    output_names = ("score", "tabular", "rules")

    def __init__(
        self,
        node_types: Sequence[str],
        account_features: int,
        rules: Mapping[str, float],
        hidden: int = 64,
        layers: int = 2,
        conv: str = "sage",
        dropout: float = 0.1,
        heads: int = 2,
    ) -> None:
        super().__init__()
        self.node_types = list(node_types)
        self.account_features = int(account_features)
        self.account_in = nn.Sequential(nn.Linear(self.account_features + 1, hidden), nn.ReLU())
        self.attribute_in = nn.ModuleList(
            nn.Sequential(nn.Linear(len(ATTRIBUTE_FEATURES), hidden), nn.ReLU())
            for _ in self.node_types
        )
        metadata = ([ACCOUNT, *self.node_types], relations(self.node_types))
        self.gnn = to_hetero(_Stack(hidden, layers, conv, dropout, heads), metadata, aggr="sum")
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.tabular = nn.Linear(self.account_features, 1)
        unknown = sorted(set(rules) - set(self.node_types))
        if unknown:
            raise ValueError(f"rules on {unknown}: not attribute types {self.node_types}")
        self.register_buffer(
            "rule_columns",
            torch.tensor([self.node_types.index(t) for t in rules]),
            persistent=False,
        )
        self.register_buffer(
            "rule_limits", torch.tensor([float(v) for v in rules.values()]), persistent=False
        )

    def forward(self, graph) -> dict[str, torch.Tensor]:
        account = graph[ACCOUNT]
        out = self.forward_tensors(
            account.x,
            account.share,
            [graph[t].x for t in self.node_types],
            [graph[ACCOUNT, "uses", t].edge_index for t in self.node_types],
        )
        return {k: v[account.scored] for k, v in out.items()}

    def forward_tensors(
        self,
        account_x: torch.Tensor,
        share: torch.Tensor,
        attribute_x: list[torch.Tensor],
        edges: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Logits of every account: `account_x` (N, F + 1: own features, log age), `share`
        (N, types), per type the attribute features and the (2, E) account -> node edges."""
        x_dict = {ACCOUNT: self.account_in(account_x)}
        edge_dict = {}
        for t, name in enumerate(self.node_types):
            x_dict[name] = self.attribute_in[t](attribute_x[t])
            edge_dict[(ACCOUNT, "uses", name)] = edges[t]
            edge_dict[(name, "used_by", ACCOUNT)] = edges[t].flip(0)
        h = self.gnn(x_dict, edge_dict)[ACCOUNT]
        score = self.head(torch.cat([h, x_dict[ACCOUNT]], dim=1)).squeeze(1)
        tabular = self.tabular(account_x[:, : self.account_features]).squeeze(1)
        return {"score": score, "tabular": tabular, "rules": self._rules(share)}

    def _rules(self, share: torch.Tensor) -> torch.Tensor:
        counts = share[:, self.rule_columns]
        fired = (counts >= self.rule_limits).float().sum(1)
        strongest = (counts / self.rule_limits).amax(1)
        p = (fired + strongest / (1.0 + strongest)) / (len(self.rule_limits) + 1)
        return torch.logit(p.clamp(1e-6, 1 - 1e-6))
