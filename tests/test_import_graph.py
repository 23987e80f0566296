"""idv-import-graph on a tiny Elliptic-layout graph the tests write (12 transactions, 6 steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from idv.data.graph_tables import GraphTableError, read_graph_tables
from idv.data.manifest import Manifest
from idv.data.sources.elliptic import (
    CLASSES_NAME,
    EDGES_NAME,
    FEATURES_NAME,
    import_elliptic,
    split_of,
)
from idv.errors import IdvError
from tests.conftest import compose

SPLITS = {"train": 2, "val": 3, "calib": 4}  # steps 5-6: test
STEPS = {100 + k: 1 + (k - 1) // 2 for k in range(1, 13)}  # 101, 102: step 1 ... 111, 112: 6
CLASSES = {101: "1", 102: "2", 103: "unknown", 104: "2", 105: "1", 106: "2",
           107: "unknown", 108: "2", 109: "1", 110: "2", 111: "unknown", 112: "2"}  # fmt: skip
# 102 -> 101 repeats 101 -> 102 the other way: the same two links, kept once.
EDGES = [(101, 102), (101, 103), (103, 105), (106, 104), (107, 110), (111, 112), (109, 101),
         (102, 101)]  # fmt: skip


def feature(tx: int, j: int) -> float:
    return tx + j / 1000


def write_elliptic(root: Path) -> Path:
    """The three files as Elliptic ships them (features: no header; the others: a header)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [",".join([str(tx), str(step), *(f"{feature(tx, j):.3f}" for j in range(165))])
            for tx, step in STEPS.items()]  # fmt: skip
    (root / FEATURES_NAME).write_text("\n".join(rows) + "\n")
    edges = ["txId1,txId2", *(f"{a},{b}" for a, b in EDGES)]
    (root / EDGES_NAME).write_text("\n".join(edges) + "\n")
    classes = ["txId,class", *(f"{tx},{c}" for tx, c in CLASSES.items())]
    (root / CLASSES_NAME).write_text("\n".join(classes) + "\n")
    return root


def _import(src: Path, out: Path, **kwargs) -> pd.DataFrame:
    return import_elliptic(src, out, splits=SPLITS, **kwargs)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("elliptic")
    src = write_elliptic(root / "src")
    return root / "out", _import(src, root / "out")


def test_tables_are_written_and_readable(imported) -> None:
    out, frame = imported
    manifest = Manifest.load(out / "manifest.parquet", labels=[0, 1]).frame
    pd.testing.assert_frame_equal(manifest, frame, check_dtype=False)
    assert list(manifest.columns) == [
        "sample_id", "label", "subject_id", "split", "attack_type", "created_at", "ring_id",
    ]  # fmt: skip
    graph = read_graph_tables(out, manifest)
    assert list(graph.accounts["account_id"]) == [str(tx) for tx in STEPS]
    assert list(graph.accounts["created_at"]) == [float(s) for s in STEPS.values()]
    assert graph.node_types == ["counterparty"]
    pairs = {frozenset(e) for e in EDGES}
    assert len(graph.links) == 2 * len(pairs)  # both directions, the repeated edge once
    got = set(zip(graph.links["account_id"], graph.links["node_key"], strict=True))
    assert got == {(str(a), str(b)) for e in pairs for a, b in (tuple(e), tuple(e)[::-1])}
    assert (manifest["sample_id"] == manifest["subject_id"]).all()
    assert manifest["ring_id"].isna().all()
    labels = dict(zip(manifest["sample_id"], manifest["label"], strict=True))
    assert labels == {str(tx): int(c == "1") for tx, c in CLASSES.items() if c != "unknown"}
    kinds = dict(zip(manifest["label"], manifest["attack_type"], strict=False))
    assert kinds == {1: "illicit", 0: "bona_fide"}


def test_unknown_transactions_are_nodes_not_manifest_rows(imported) -> None:
    out, frame = imported
    unknown = {str(tx) for tx, c in CLASSES.items() if c == "unknown"}
    graph = read_graph_tables(out, frame)
    assert unknown <= set(graph.accounts["account_id"])
    assert unknown <= set(graph.links["account_id"])  # still linked to their counterparties
    assert not unknown & set(frame["sample_id"])
    assert len(frame) == len(CLASSES) - len(unknown)


def test_links_are_created_at_the_later_step_never_before_the_account(imported) -> None:
    out, _ = imported
    graph = read_graph_tables(out)
    born = dict(zip(graph.accounts["account_id"], graph.accounts["created_at"], strict=True))
    for row in graph.links.itertuples():
        assert row.created_at == max(born[row.account_id], born[row.node_key])
        assert row.created_at >= born[row.account_id]


def test_splits_follow_the_time_step_boundaries(imported) -> None:
    _, frame = imported
    expected = {1: "train", 2: "train", 3: "val", 4: "calib", 5: "test", 6: "test"}
    for row in frame.itertuples():
        assert row.split == expected[int(row.created_at)], row.sample_id
    assert set(frame["split"]) == {"train", "val", "calib", "test"}
    steps = np.array([1, 30, 31, 34, 35, 39, 40, 49], dtype=np.float64)  # Weber et al.'s
    assert list(split_of(steps, {"train": 30, "val": 34, "calib": 39})) == [
        "train", "train", "val", "val", "calib", "calib", "test", "test",
    ]  # fmt: skip


@pytest.mark.parametrize("splits", [{"train": 2, "val": 3}, {"train": 3, "val": 2, "calib": 4},
                                    {"train": 0, "val": 2, "calib": 4},
                                    {"train": 1.5, "val": 2, "calib": 4}])  # fmt: skip
def test_bad_split_boundaries_are_refused(splits, tmp_path) -> None:
    with pytest.raises(ValueError, match="splits"):
        import_elliptic(write_elliptic(tmp_path / "src"), tmp_path / "out", splits=splits)
    assert not (tmp_path / "out").exists()


def test_local_or_all_features(imported, tmp_path) -> None:
    out, _ = imported
    local = read_graph_tables(out)
    assert local.features == [f"f_{j}" for j in range(93)]
    _import(write_elliptic(tmp_path / "src"), tmp_path / "all", features="all")
    every = read_graph_tables(tmp_path / "all")
    assert every.features == [f"f_{j}" for j in range(165)]
    row = every.accounts.set_index("account_id").loc["107"]
    assert row["f_0"] == pytest.approx(feature(107, 0))
    assert row["f_164"] == pytest.approx(feature(107, 164))
    pd.testing.assert_frame_equal(local.accounts, every.accounts[local.accounts.columns])
    with pytest.raises(ValueError, match="features must be one of"):
        _import(tmp_path / "src", tmp_path / "none", features="aggregated")


def test_the_entry_point_composes_and_imports(tmp_path) -> None:
    from idv.cli.import_graph import run

    src = write_elliptic(tmp_path / "src")
    overrides = [f"source={src}", "splits.train=2", "splits.val=3", "splits.calib=4"]
    manifest = Manifest.load(run(compose("import_graph", overrides, tmp_path)), labels=[0, 1])
    assert manifest.file == tmp_path / "data" / "graph" / "elliptic" / "manifest.parquet"
    assert len(manifest.frame) == 9
    assert read_graph_tables(manifest.root, manifest.frame).features[-1] == "f_92"


# ---- bad input: an error naming the file and the row; the previous import survives ------


def _lines(file: Path) -> list[str]:
    return file.read_text().splitlines()


def _put(file: Path, lines: list[str]) -> None:
    file.write_text("\n".join(lines) + "\n")


def _break(case: str, src: Path) -> str:
    """Damage the fixture; returns what the message must say (file, row and line)."""
    features, edges, classes = src / FEATURES_NAME, src / EDGES_NAME, src / CLASSES_NAME
    if case == "edge_to_absent_tx":
        _put(edges, [*_lines(edges), "104,999"])  # data row 9, line 10
        return rf"{edges}: row 9 \(line 10\): txId2 '999' is not a transaction of"
    if case == "class_of_unknown_tx":
        lines = _lines(classes)
        lines[3] = "998,2"  # data row 3
        _put(classes, lines)
        return rf"{classes}: row 3 \(line 4\): txId '998' is not a transaction of"
    if case == "class_value":
        lines = _lines(classes)
        lines[5] = "105,3"
        _put(classes, lines)
        return rf"{classes}: row 5 \(line 6\): class '3' is not 1 \(illicit\), 2 \(licit\)"
    if case in ("step_not_integer", "step_zero", "step_negative", "step_text"):
        value = {"step_not_integer": "2.5", "step_zero": "0", "step_negative": "-3",
                 "step_text": "two"}[case]  # fmt: skip
        lines = _lines(features)
        cells = lines[6].split(",")
        lines[6] = ",".join([cells[0], value, *cells[2:]])
        _put(features, lines)
        return rf"{features}: row 7 \(line 7\): time step '{value}' is not a positive integer"
    if case == "duplicated_tx":
        lines = _lines(features)
        lines[8] = lines[8].replace("109,", "104,", 1)
        _put(features, lines)
        return rf"{features}: row 9 \(line 9\): txId '104' is duplicated \(first at row 4\)"
    if case == "duplicated_class_row":
        _put(classes, [*_lines(classes), "104,1"])
        return rf"{classes}: row 13 \(line 14\): txId '104' is duplicated \(first at row 4\)"
    if case in ("feature_not_a_number", "feature_empty", "feature_infinite"):
        value = {"feature_not_a_number": "abc", "feature_empty": "", "feature_infinite": "inf"}
        lines = _lines(features)
        cells = lines[2].split(",")
        cells[2 + 40] = value[case]
        lines[2] = ",".join(cells)
        _put(features, lines)
        what = {
            "feature_not_a_number": "'abc' is not a finite number",
            "feature_empty": r"is empty \(or NA\)",
            "feature_infinite": "inf is not a finite number",
        }
        return rf"{features}: row 3 \(line 3\): feature 40 \(column 43\) {what[case]}"
    if case == "missing_feature_column":
        lines = _lines(features)
        _put(features, [line.rsplit(",", 1)[0] for line in lines])
        return rf"{features}: 166 columns; the Elliptic layout has 167"
    if case == "edge_header":
        _put(edges, ["source,target", *_lines(edges)[1:]])
        return rf"{edges}: header \['source', 'target'\]; expected txId1,txId2"
    if case == "no_classes_file":
        classes.unlink()
        return rf"{classes}: not found"
    raise AssertionError(case)


BAD = ["edge_to_absent_tx", "class_of_unknown_tx", "class_value", "step_not_integer",
       "step_zero", "step_negative", "step_text", "duplicated_tx", "duplicated_class_row",
       "feature_not_a_number", "feature_empty", "feature_infinite", "missing_feature_column",
       "edge_header", "no_classes_file"]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_named_and_the_previous_import_survives(case, tmp_path) -> None:
    src = write_elliptic(tmp_path / "src")
    out = tmp_path / "out"
    before = _import(src, out)
    accounts = pd.read_parquet(out / "accounts.parquet")
    message = _break(case, src)
    with pytest.raises(GraphTableError, match=message) as caught:
        _import(src, out)
    assert isinstance(caught.value, IdvError)
    pd.testing.assert_frame_equal(Manifest.load(out / "manifest.parquet").frame, before,
                                  check_dtype=False)  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(out / "accounts.parquet"), accounts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temporary left
