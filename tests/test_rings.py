"""task=rings: the identity graph corpus, its temporal snapshots, the k-hop subgraph, the
graph kind's evaluation and calibration, and the bundle that scores a new account."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from idv.data.graph import GraphCorpus, GraphDataset, hetero_data
from idv.data.graph_tables import (
    GraphTableError,
    GraphTables,
    read_graph_tables,
    write_graph_tables,
)
from idv.data.synth.graph_corpus import NODE_TYPES, assign_periods, generate_graph, ring_sizes
from idv.graphs.structure import attribute_features, share_counts
from idv.graphs.subgraph import Adjacency, k_hop
from idv.models.graph import RingDetector
from tests.conftest import CONF_DIR, fast_bundle

SPECIES = ["bona_fide", "ring"]
RULES = {"device": 2, "document": 1, "face": 1, "address": 3, "phone": 1}


def graph_cfg() -> dict:
    return yaml.safe_load((Path(CONF_DIR) / "synth/graph.yaml").read_text())


@pytest.fixture(scope="module")
def graph_root(tiny_root: Path) -> Path:
    return tiny_root / "data/graph/tiny"


@pytest.fixture(scope="module")
def manifest(graph_root: Path) -> pd.DataFrame:
    return pd.read_parquet(graph_root / "manifest.parquet")


# --------------------------------------------------------------------------------- corpus


def test_generator_is_deterministic_and_rings_have_their_sizes() -> None:
    cfg = graph_cfg()
    a1, l1, f1 = generate_graph(cfg, 1200, seed=5)
    a2, l2, f2 = generate_graph(cfg, 1200, seed=5)
    pd.testing.assert_frame_equal(a1, a2)
    pd.testing.assert_frame_equal(l1, l2)
    assert np.array_equal(f1, f2)
    sizes = a1[a1["label"] == 1].groupby("ring_id").size()
    lo, hi = cfg["rings"]["size"]
    assert sizes.between(lo, hi).all() and len(sizes) >= 3
    assert sum(ring_sizes(100, cfg["rings"], np.random.default_rng(0))) == 100
    other, _, _ = generate_graph(cfg, 1200, seed=6)
    assert not a1["created_at"].equals(other["created_at"])


def test_legitimate_sharing_is_power_law_and_rings_share_more(manifest, graph_root) -> None:
    links = pd.read_parquet(graph_root / "links.parquet")
    degree = links.groupby(["node_type", "node_key"])["account_id"].nunique()
    ip = degree.loc["ip"]
    assert ip.max() > 20 * ip.median()  # a few carrier blocks hold most accounts
    label = manifest.set_index("sample_id")["label"]
    shared = links.assign(degree=links.groupby(["node_type", "node_key"])["account_id"]
                          .transform("nunique"))  # fmt: skip
    device = shared[shared["node_type"] == "device"]
    share = (device.groupby("account_id")["degree"].max() > 1).groupby(label).mean()
    assert share[1] > 3 * share[0]  # ring members reuse devices far more often


def test_the_split_is_temporal_and_some_rings_start_after_training(manifest) -> None:
    last_train = manifest.loc[manifest["split"] == "train", "created_at"].max()
    for split in ("val", "calib", "test"):
        assert manifest.loc[manifest["split"] == split, "created_at"].min() > last_train
    rings = manifest[manifest["label"] == 1].groupby("ring_id")["created_at"].min()
    assert (rings > last_train).any() and (rings <= last_train).any()
    periods = assign_periods(np.array([0.0, 130.0, 239.9]), 240.0,
                             {"train": 0.5, "val": 0.25, "test": 0.25})  # fmt: skip
    assert list(periods) == ["train", "val", "test"]


def test_accounts_are_their_own_subjects_and_every_one_is_a_node(manifest, graph_root) -> None:
    assert (manifest["sample_id"] == manifest["subject_id"]).all()
    tables = read_graph_tables(graph_root, manifest)
    assert set(manifest["sample_id"]) <= set(tables.accounts["account_id"])
    assert tables.node_types == sorted(NODE_TYPES)


# ------------------------------------------------------------------------------ bad input


def _tables():
    accounts = pd.DataFrame(
        {"account_id": ["a", "b", "c"], "created_at": [0.0, 1.0, 2.0], "f_x": [0.1, 0.2, 0.3]}
    )
    links = pd.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "node_type": ["device"] * 3,
            "node_key": ["d1", "d1", "d2"],
            "created_at": [0.0, 1.5, 2.0],
        }
    )
    return accounts, links


def test_an_edge_to_an_unknown_account_is_refused_by_row(tmp_path: Path) -> None:
    accounts, links = _tables()
    links.loc[2, "account_id"] = "zz"
    with pytest.raises(GraphTableError, match=r"links.parquet: row 2: account_id 'zz' is not in"):
        write_graph_tables(accounts, links, tmp_path)
    assert not (tmp_path / "links.parquet").exists()


def test_time_going_backwards_is_refused_by_row(tmp_path: Path) -> None:
    accounts, links = _tables()
    links.loc[1, "created_at"] = 0.5  # before account b (1.0)
    with pytest.raises(GraphTableError, match=r"row 1: link of account 'b'.*time goes backwards"):
        write_graph_tables(accounts, links, tmp_path)


def test_a_ring_label_on_an_account_absent_from_the_nodes_is_refused(tmp_path: Path) -> None:
    accounts, links = _tables()
    write_graph_tables(accounts, links, tmp_path)
    manifest = pd.DataFrame({"sample_id": ["a", "q"], "ring_id": [None, "ring_7"],
                             "created_at": [0.0, 3.0]})  # fmt: skip
    with pytest.raises(GraphTableError, match=r"row 1: ring 'ring_7' member 'q' is absent"):
        read_graph_tables(tmp_path, manifest)


def test_duplicated_accounts_and_non_finite_features_are_refused(tmp_path: Path) -> None:
    accounts, links = _tables()
    dup = accounts.copy()
    dup.loc[2, "account_id"] = "a"
    with pytest.raises(GraphTableError, match="row 2: account_id 'a' repeats"):
        write_graph_tables(dup, links.iloc[:2], tmp_path)
    bad = accounts.copy()
    bad.loc[1, "f_x"] = np.inf
    with pytest.raises(GraphTableError, match="row 1: f_x is not finite"):
        write_graph_tables(bad, links, tmp_path)


# ------------------------------------------------------------------------------ snapshots


def test_a_snapshot_holds_only_the_past_and_no_label(manifest, graph_root) -> None:
    train = GraphDataset(manifest[manifest["split"] == "train"], graph_root, {}, "eval",
                         SPECIES, node_types=list(NODE_TYPES))  # fmt: skip
    val = GraphDataset(manifest[manifest["split"] == "val"], graph_root, {}, "eval", SPECIES,
                       node_types=list(NODE_TYPES))  # fmt: skip
    t1 = manifest.loc[manifest["split"] == "train", "created_at"].max()
    assert train.snapshot.n_accounts == int((manifest["created_at"] <= t1).sum())
    assert val.snapshot.n_accounts > train.snapshot.n_accounts
    assert (train.snapshot.created <= t1).all()
    # The inputs hold features, not labels: flipping every label changes nothing.
    graph = train.graph
    assert graph["account"].x.shape[1] == len(train.corpus.feature_names) + 1
    assert set(graph["account"].keys()) == {"x", "share", "scored"}
    assert len(graph["account"].scored) == int((manifest["split"] == "train").sum())


def test_attribute_features_and_share_counts_by_hand(tmp_path: Path) -> None:
    accounts, links = _tables()
    write_graph_tables(accounts, links, tmp_path)
    corpus = GraphCorpus.from_tables(read_graph_tables(tmp_path), ["device"])
    snapshot, rows, _ = corpus.snapshot(1.2)  # c (2.0) and b's link (1.5) not yet there
    assert snapshot.n_accounts == 2 and len(snapshot.link_account) == 1
    later, _, _ = corpus.snapshot(5.0)
    degree = np.expm1(attribute_features(later)[0][:, 0])
    assert np.allclose(sorted(degree), [1, 2])
    assert share_counts(later)[:, 0].tolist() == [1.0, 1.0, 0.0]


def test_the_k_hop_subgraph_gives_the_seeds_their_whole_graph_scores(manifest, graph_root):
    ds = GraphDataset(manifest[manifest["split"] == "test"], graph_root, {}, "eval", SPECIES,
                      node_types=list(NODE_TYPES))  # fmt: skip
    torch.manual_seed(0)
    net = RingDetector(list(NODE_TYPES), 6, RULES).eval()
    with torch.no_grad():
        whole = net(ds.graph)["score"]
        seeds = ds.scored[:40]
        sub = k_hop(ds.snapshot, Adjacency.of(ds.snapshot), seeds, hops=2)
        part = hetero_data(ds.snapshot, ds.attributes, ds.share, np.arange(len(seeds)),
                           sub.accounts, sub.links)  # fmt: skip
        local = net(part)["score"]
    assert sub.accounts.size < ds.snapshot.n_accounts
    assert torch.allclose(local, whole[:40], atol=1e-5)


def test_mini_batches_are_subgraphs_and_collate_into_one_graph(manifest, graph_root) -> None:
    ds = GraphDataset(manifest[manifest["split"] == "train"], graph_root, {}, "train", SPECIES,
                      node_types=list(NODE_TYPES), batch_accounts=64)  # fmt: skip
    assert len(ds) == -(-int((manifest["split"] == "train").sum()) // 64)
    items = [ds[(0, 11)], ds[(1, 12)]]
    batch = GraphDataset.collate(items)
    assert len(batch.sample_id) == 128 == len(batch.label)
    net = RingDetector(list(NODE_TYPES), 6, RULES)
    out = net(batch.inputs["graph"])
    assert out["score"].shape == (128,)
    assert ds[(0, 11)].sample_id == items[0].sample_id  # the draw follows the sampler's seed


def test_gat_and_rules_outputs() -> None:
    data_types = ["device", "ip"]
    net = RingDetector(data_types, 2, {"device": 2}, conv="gat", hidden=16, heads=2)
    x = torch.randn(5, 3)
    share = torch.tensor([[0.0, 0], [1, 0], [2, 0], [5, 0], [2, 9]])
    edges = [torch.tensor([[0, 1, 2], [0, 0, 1]]), torch.tensor([[3], [0]])]
    out = net.forward_tensors(x, share, [torch.randn(2, 3), torch.randn(1, 3)], edges)
    rules = torch.sigmoid(out["rules"])
    assert out["score"].shape == (5,) and torch.all(rules[1:4].diff() > 0)
    assert rules[2] > rules[1] and rules[0] < 0.5
    with pytest.raises(ValueError, match="not attribute types"):
        RingDetector(data_types, 2, {"email": 1})


# ---------------------------------------------------------------------------- the bundle


@pytest.fixture(scope="module")
def rings_bundle(tiny_root: Path, tmp_path_factory):
    made = fast_bundle(
        tiny_root, tmp_path_factory.mktemp("rings"), "rings",
        ["targets=[0.05]", "bootstrap.n_resamples=50"], ["parity.min_samples=64"],
    )  # fmt: skip
    table = pd.read_parquet(made["evaluate"] / "tables/scores.parquet")
    return {**made, "scores": table}


def test_evaluation_reports_ranking_baselines_and_rings(rings_bundle) -> None:
    import json

    metrics = json.loads((rings_bundle["evaluate"] / "metrics.json").read_text())
    for key in ("test/average_precision", "test/base_rate", "test/recall_at_fpr_1pct",
                "test/tabular/average_precision", "test/rules/average_precision",
                "test/average_precision_gain_over_rules", "test/rings/ring_recall",
                "test/rings/purity", "test/rings/ari"):  # fmt: skip
        assert key in metrics, key
    low, high = metrics["test/average_precision_ci_low"], metrics["test/average_precision_ci_high"]
    assert low <= metrics["test/average_precision"] <= high
    table = rings_bundle["scores"]
    assert {"output/tabular", "output/rules", "ring_id"} <= set(table.columns)
    assert (
        table.groupby("split")["sample_id"].nunique().to_dict()
        == table["split"].value_counts().to_dict()
    )
    report = (rings_bundle["evaluate"] / "report.md").read_text()
    assert "## Ranking on test" in report and "## Rings on test" in report


def test_calibration_has_an_fpr_and_a_review_capacity_threshold(rings_bundle) -> None:
    from idv.thresholds import Thresholds

    thresholds = Thresholds.load(rings_bundle["dir"] / "thresholds.json")
    assert thresholds.kind == "graph" and thresholds.metrics == ["fpr", "flagged_share"]
    capacity = thresholds.global_entry("flagged_share")
    calib = rings_bundle["scores"].query("split == 'calib'")
    flagged = (calib["score"] >= capacity.threshold).sum()
    assert flagged <= capacity.operating_point.max * len(calib)
    assert capacity.calib.rates["flagged_share"].estimate <= capacity.operating_point.max
    assert set(thresholds.decide([0.0, 1.0])) <= {"clear", "watch", "review"}


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_the_bundle_scores_stored_accounts_as_evaluation_did(rings_bundle, backend) -> None:
    from idv.serving import load_bundle

    bundle = load_bundle(rings_bundle["dir"], backend=backend)
    test = rings_bundle["scores"].query("split == 'test'").head(20)
    served = bundle.score_stored(test["sample_id"].tolist())
    assert np.allclose(served, test["score"].to_numpy(), atol=1e-5)


def test_a_new_account_attaches_to_the_stored_graph(rings_bundle, manifest, graph_root) -> None:
    from idv.serving import load_bundle
    from idv.serving.graph import AccountError

    bundle = load_bundle(rings_bundle["dir"], backend="onnxruntime")
    links = pd.read_parquet(graph_root / "links.parquet")
    member = manifest.query("label == 1 and split == 'test'")["sample_id"].iloc[0]
    mine = links[links["account_id"] == member]
    features = {f: 0.0 for f in bundle.graph.feature_names}
    at = float(manifest["created_at"].max()) + 1.0
    attributes = {t: g["node_key"].tolist() for t, g in mine.groupby("node_type")}
    copy = {"created_at": at, "features": features, "attributes": attributes}
    alone = {"created_at": at, "features": features,
             "attributes": {t: [f"new-{t}"] for t in NODE_TYPES}}  # fmt: skip
    parts = bundle.score_parts([copy, alone])
    assert parts[0]["rules"] > parts[1]["rules"]  # sharing a ring's attributes fires the rules
    assert bundle.score_accounts([alone]).shape == (1,)
    with pytest.raises(AccountError, match="time goes backwards"):
        bundle.score_accounts([{**alone, "created_at": 0.0}])
    with pytest.raises(AccountError, match=r"attribute types \['pets'\]"):
        bundle.score_accounts([{**alone, "attributes": {"pets": ["x"]}}])
    with pytest.raises(AccountError, match="features .* are missing"):
        bundle.score_accounts([{**alone, "features": {}}])


def test_the_onnx_bundle_serves_without_torch_or_pyg(rings_bundle) -> None:
    code = (
        "import sys; from idv.serving import load_bundle; "
        f"b = load_bundle({str(rings_bundle['dir'])!r}, backend='onnxruntime'); "
        "s = b.score_stored(list(b.graph.account_ids[:3])); "
        "assert 'torch' not in sys.modules and 'torch_geometric' not in sys.modules, "
        "[m for m in sys.modules if m.startswith('torch')][:3]; print(len(s))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "3"


def test_graph_tables_round_trip(tmp_path: Path) -> None:
    accounts, links = _tables()
    write_graph_tables(accounts, links, tmp_path)
    tables = read_graph_tables(tmp_path)
    assert isinstance(tables, GraphTables) and tables.features == ["f_x"]
