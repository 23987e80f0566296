"""The FAISS gallery (idv.serving.gallery): exactness, ANN recall, persistence, validation."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from idv.serving.gallery import (
    CONFIG_FILE,
    IDS_FILE,
    INDEX_FILE,
    Gallery,
    GalleryError,
    SearchResult,
)

ANN_CONFIGS = {
    "ivf": {"index": "ivf", "nlist": 32, "nprobe": 8},
    "hnsw": {"index": "hnsw", "M": 16, "ef_construction": 80, "ef_search": 64},
}
ALL_CONFIGS = {"flat": {"index": "flat"}, **ANN_CONFIGS}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_unit(n: int, d: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, d)))


def clustered(n: int, d: int = 64, rank: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Low-rank identity centres + noise: gallery rows and one mated probe per row."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)))
    gallery = unit(centres + 0.5 * rng.standard_normal((n, d)) / np.sqrt(d))
    probes = unit(centres + 0.5 * rng.standard_normal((n, d)) / np.sqrt(d))
    return gallery, probes


def brute_force(gallery: np.ndarray, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = probes.astype(np.float64) @ gallery.astype(np.float64).T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return rows, np.take_along_axis(scores, rows, axis=1)


def built(config: dict, gallery: np.ndarray, ids: list[str] | None = None) -> Gallery:
    g = Gallery.from_config(config)
    g.enrol(gallery, ids if ids is not None else [f"s{i}" for i in range(len(gallery))])
    return g


def test_flat_equals_numpy_brute_force():
    gallery, probes = random_unit(600, 48, seed=1), random_unit(40, 48, seed=2)
    ids = [f"id{i:04d}" for i in range(len(gallery))]
    result = built({"index": "flat"}, gallery, ids).search(probes, k=7)
    rows, scores = brute_force(gallery, probes, 7)
    assert isinstance(result, SearchResult) and result.k == 7
    np.testing.assert_array_equal(result.rows, rows)
    np.testing.assert_array_equal(result.ids, np.asarray(ids, dtype=object)[rows])
    np.testing.assert_allclose(result.scores, scores, atol=1e-6, rtol=0)
    assert result.scores.dtype == np.float32
    np.testing.assert_array_equal(result.ranks, np.tile(np.arange(1, 8), (40, 1)))
    assert result.valid.all()


def test_repeated_ids_map_back_and_distinct_search_keeps_best_row_per_id():
    gallery, probes = random_unit(300, 16, seed=3), random_unit(25, 16, seed=4)
    ids = [f"subject{i % 60}" for i in range(300)]  # five enrolment images per subject
    g = built({"index": "flat"}, gallery, ids)
    plain = g.search(probes, k=10)
    rows, _ = brute_force(gallery, probes, 10)
    np.testing.assert_array_equal(plain.ids, np.asarray(ids, dtype=object)[rows])

    distinct = g.search(probes, k=10, distinct_ids=True)
    full = probes @ gallery.T
    per_id = {f"subject{s}": full[:, s::60].max(axis=1) for s in range(60)}
    for p in range(len(probes)):
        assert len(set(distinct.ids[p])) == 10
        best = sorted(per_id, key=lambda s: -per_id[s][p])[:10]
        assert list(distinct.ids[p]) == best
        np.testing.assert_allclose(distinct.scores[p], [per_id[s][p] for s in best], atol=1e-6)


def test_k_larger_than_gallery_returns_every_vector_and_no_missing_labels():
    gallery = random_unit(5, 8, seed=5)
    for config in ALL_CONFIGS.values():
        config = {**config, "nlist": 2, "nprobe": 2} if config["index"] == "ivf" else config
        result = built(config, gallery).search(random_unit(3, 8, seed=6), k=50)
        assert result.ids.shape == (3, 5) and result.valid.all()
        assert (result.rows >= 0).all() and None not in result.ids and "-1" not in result.ids
        assert sorted(result.ids[0]) == [f"s{i}" for i in range(5)]


def test_ivf_missing_results_are_padding_not_minus_one():
    gallery, probes = clustered(1000, d=32, seed=7)
    result = built({"index": "ivf", "nlist": 64, "nprobe": 1}, gallery).search(probes[:50], k=200)
    counts = result.valid.sum(axis=1)
    assert counts.min() < result.k  # one inverted list holds fewer than 200 vectors
    for p, count in enumerate(counts):  # valid results first, then padding
        assert result.valid[p, :count].all() and not result.valid[p, count:].any()
    assert all(isinstance(i, str) for i in result.ids[result.valid])
    assert (result.ids[~result.valid] == None).all()  # noqa: E711  (elementwise on objects)
    assert np.isnan(result.scores[~result.valid]).all() and (result.ranks[~result.valid] == 0).all()
    assert (result.rows[result.valid] >= 0).all()


@pytest.mark.parametrize("name", sorted(ANN_CONFIGS))
def test_approximate_indexes_reach_high_recall_on_clustered_data(name: str):
    gallery, probes = clustered(3000, seed=8)
    exact = built({"index": "flat"}, gallery).search(probes[:500], k=1)
    approx = built(ANN_CONFIGS[name], gallery).search(probes[:500], k=1)
    recall = float(np.mean(approx.ids[:, 0] == exact.ids[:, 0]))
    assert recall >= 0.95, f"{name} recall@1 {recall:.3f}"


def test_search_params_change_without_rebuild():
    gallery, probes = clustered(2000, d=32, seed=9)
    g = built({"index": "ivf", "nlist": 64, "nprobe": 1}, gallery)
    narrow = g.search(probes, k=1).ids[:, 0]
    g.set_search_params(nprobe=64)  # every list: exhaustive
    assert g.config["nprobe"] == 64
    exact = built({"index": "flat"}, gallery).search(probes, k=1).ids[:, 0]
    np.testing.assert_array_equal(g.search(probes, k=1).ids[:, 0], exact)
    assert np.mean(narrow == exact) < 1.0
    with pytest.raises(ValueError, match="nprobe"):
        g.set_search_params(nprobe=65)


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_save_load_round_trip_gives_identical_results(name: str, tmp_path: Path):
    gallery, probes = clustered(1500, d=32, seed=10)
    ids = [f"s{i % 700}" for i in range(len(gallery))]
    config = {**ALL_CONFIGS[name], "nprobe": 4} if name == "ivf" else ALL_CONFIGS[name]
    g = built(config, gallery, ids)
    g.save(tmp_path / "gallery")
    loaded = Gallery.load(tmp_path / "gallery")
    assert loaded.config == g.config and len(loaded) == len(g)
    for distinct in (False, True):
        a = g.search(probes[:100], k=5, distinct_ids=distinct)
        b = loaded.search(probes[:100], k=5, distinct_ids=distinct)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.ranks, b.ranks)


def test_save_replaces_a_gallery_but_refuses_other_directories(tmp_path: Path):
    g = built({"index": "flat"}, random_unit(10, 8, seed=11))
    target = tmp_path / "gallery"
    g.save(target)
    g.enrol(random_unit(5, 8, seed=12), [f"new{i}" for i in range(5)])
    g.save(target)
    assert len(Gallery.load(target)) == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery"]  # no temporaries left
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(GalleryError, match="not a saved gallery"):
        g.save(other)
    assert (other / "keep.txt").read_text() == "mine"


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    built({"index": "flat"}, random_unit(20, 8, seed=13)).save(tmp_path / "g")
    return tmp_path / "g"


@pytest.mark.parametrize("name", [IDS_FILE, INDEX_FILE, CONFIG_FILE])
def test_load_names_a_missing_file(saved: Path, name: str):
    (saved / name).unlink()
    with pytest.raises(GalleryError, match=name.replace(".", r"\.")):
        Gallery.load(saved)


def test_load_rejects_a_tampered_id_map(saved: Path):
    ids = json.loads((saved / IDS_FILE).read_text())
    ids[3] = "intruder"
    (saved / IDS_FILE).write_text(json.dumps(ids))
    with pytest.raises(GalleryError, match=f"{IDS_FILE}.*checksum"):
        Gallery.load(saved)


def test_load_rejects_an_index_of_another_type(saved: Path):
    index = faiss.IndexHNSWFlat(8, 4, faiss.METRIC_INNER_PRODUCT)
    index.add(random_unit(20, 8, seed=14))
    faiss.write_index(index, str(saved / INDEX_FILE))
    meta = json.loads((saved / CONFIG_FILE).read_text())
    meta["sha256"][INDEX_FILE] = hashlib.sha256((saved / INDEX_FILE).read_bytes()).hexdigest()
    (saved / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(GalleryError, match="IndexHNSWFlat.*'flat'"):
        Gallery.load(saved)


def test_load_rejects_a_count_mismatch(saved: Path):
    meta = json.loads((saved / CONFIG_FILE).read_text())
    meta["count"] = 21
    (saved / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(GalleryError, match="must agree"):
        Gallery.load(saved)


@pytest.mark.parametrize(
    ("vectors", "ids", "message"),
    [
        (random_unit(4, 9, 0), ["a"] * 4, "dimension 9; the gallery's is 8"),
        (random_unit(4, 8, 0)[0], ["a"], "2-D"),
        (np.full((2, 8), np.nan, np.float32), ["a", "b"], "row 0 has a non-finite"),
        (random_unit(4, 8, 0) * 2, ["a"] * 4, "L2-normalise"),
        (np.zeros((1, 8), np.float32), ["a"], "L2-normalise"),
        (random_unit(4, 8, 0), ["a"] * 3, "3 ids for 4 embeddings"),
        (random_unit(2, 8, 0), ["a", 7], "row 1 is 7"),
        (random_unit(2, 8, 0), ["a", ""], "non-empty strings"),
        (random_unit(2, 8, 0), "ab", "not one string"),
        (np.ones((2, 8), np.int64), ["a", "b"], "floating point"),
        (np.zeros((0, 8), np.float32), [], "no embeddings"),
    ],
)
def test_bad_enrolment_is_a_clear_value_error(vectors, ids, message: str):
    g = Gallery(dim=8)
    with pytest.raises(ValueError, match=message):
        g.enrol(vectors, ids)
    assert len(g) == 0


def test_bad_search_and_config_are_clear_value_errors():
    g = built({"index": "flat"}, random_unit(10, 8, seed=15))
    probes = random_unit(2, 8, seed=16)
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            g.search(probes, k=k)
    with pytest.raises(ValueError, match="L2-normalise"):
        g.search(probes * 1.1, k=1)
    with pytest.raises(ValueError, match="empty"):
        Gallery().search(probes, k=1)
    with pytest.raises(ValueError, match=r"unknown gallery parameter\(s\) \['nprobes'\]"):
        Gallery.from_config({"index": "ivf", "nprobes": 4})
    with pytest.raises(ValueError, match="index must be one of"):
        Gallery.from_config({"index": "lsh"})
    with pytest.raises(ValueError, match="nprobe .* cannot exceed nlist"):
        Gallery(index="ivf", nlist=8, nprobe=16)
    with pytest.raises(ValueError, match="M must be"):
        Gallery(index="hnsw", M=1)


def test_ivf_refuses_to_train_on_fewer_vectors_than_lists():
    g = Gallery(index="ivf", nlist=64, nprobe=4)
    with pytest.raises(ValueError, match="nlist=64 needs at least 64 vectors.*got 40"):
        g.enrol(random_unit(40, 8, seed=17), [f"s{i}" for i in range(40)])
    assert len(g) == 0 and g.dim is None  # the refused enrolment fixed nothing
    g.enrol(random_unit(100, 16, seed=17), [f"s{i}" for i in range(100)])
    assert g.dim == 16 and g.is_trained
    sampled = Gallery(index="ivf", nlist=8, nprobe=8, train_size=200)
    sampled.enrol(random_unit(1000, 8, seed=18), [f"s{i}" for i in range(1000)])
    assert sampled.is_trained and len(sampled) == 1000


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_nbytes_is_the_serialised_index_size(name: str):
    config = {**ALL_CONFIGS[name], "nlist": 4, "nprobe": 2} if name == "ivf" else ALL_CONFIGS[name]
    g = built(config, random_unit(300, 16, seed=21))
    assert g.nbytes() == faiss.serialize_index(g._index).nbytes > 300 * 16 * 4
    assert Gallery().nbytes() == 0


def test_config_round_trips_through_from_config():
    g = Gallery.from_config({"index": "ivf", "nlist": 16, "nprobe": 4, "dim": 8})
    again = Gallery.from_config(g.config)
    assert again.config == g.config and again.dim == 8 and again.index_type == "ivf"


def test_threads_are_set_only_during_calls_and_restored():
    before = faiss.omp_get_max_threads()
    g = Gallery(threads=1)
    g.enrol(random_unit(10, 8, seed=19), [f"s{i}" for i in range(10)])
    g.search(random_unit(2, 8, seed=20), k=3)
    assert faiss.omp_get_max_threads() == before
    with pytest.raises(ValueError, match="threads"):
        Gallery(threads=0)


def test_gallery_module_imports_only_numpy_faiss_and_the_standard_library():
    source = Path(__file__).resolve().parents[1] / "idv" / "serving" / "gallery.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__", "idv"}
    assert third_party == {"numpy", "faiss"}  # and idv's own standard-library helpers
    code = "import sys, idv.serving.gallery; print(sorted({'torch', 'lightning', 'hydra', "
    code += "'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
