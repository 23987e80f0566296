"""A FAISS gallery for 1:N face identification: enrol embeddings, search top-k candidates.

Deployable: imports numpy, faiss and the standard library only (no torch, Lightning, Hydra,
pandas or training code), so a search service can ship it without the training stack.

    gallery = Gallery(index="ivf", nlist=1024, nprobe=16)     # or Gallery.from_config({...})
    gallery.enrol(embeddings, subject_ids)                     # (n, d) float32, L2-normalised
    result = gallery.search(probes, k=5)                       # SearchResult: ids, scores, ranks
    gallery.save("gallery/")                                   # Gallery.load("gallery/")

Scores are inner products, i.e. cosine similarities because every vector must be L2-normalised
(enforced: a vector off unit norm is an error, never silently rescaled). An id may repeat
(several enrolment images of one subject); `search(..., distinct_ids=True)` returns the best
image per subject instead of the best images.

Index types: "flat" (exact, IndexFlatIP), "ivf" (IndexIVFFlat, inner product; trained on the
first enrolment, or a sample of it, so that first enrolment needs >= nlist vectors) and "hnsw"
(IndexHNSWFlat, inner product). IVF and HNSW are approximate and may return fewer than k
candidates for a probe; missing results (faiss label -1) never leak out: they are padding,
flagged by `SearchResult.valid` (id None, score NaN, rank 0).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from idv.atomic import remove_stale, replace_dir, temporary_sibling
from idv.errors import IdvError
from idv.hashing import sha256_file

INDEX_TYPES = ("flat", "ivf", "hnsw")
FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
CONFIG_FILE = "config.json"
# Parameters of each index type (and their defaults); every config key must be one of these.
DEFAULTS: dict[str, Any] = {
    "index": "flat",
    "dim": None,
    "nlist": 1024,
    "nprobe": 16,
    "train_size": None,
    "M": 32,
    "ef_construction": 200,
    "ef_search": 128,
    "seed": 0,
    "norm_tolerance": 1e-3,
}
# The parameters that matter to each index type (the others are kept but unused).
TYPE_PARAMS = {
    "flat": (),
    "ivf": ("nlist", "nprobe", "train_size", "seed"),
    "hnsw": ("M", "ef_construction", "ef_search"),
}
_CHECK_CHUNK = 65536  # rows per validation chunk: bounded temporaries on million-row galleries


class GalleryError(IdvError, RuntimeError):
    """A saved gallery that is incomplete, altered or inconsistent; the message names the file."""


@dataclass(frozen=True)
class SearchResult:
    """Top-k candidates per probe, best first; rows are probes, columns are ranks.

    `ids` (object, str or None), `scores` (float32 cosine, NaN in padding), `ranks` (int32,
    1-based, 0 in padding), `rows` (int64 enrolment row, -1 in padding) and `valid` (bool) all
    have shape (n_probes, k') with k' <= k: fewer columns when the gallery holds fewer vectors
    (or subjects) than k, padding only where an approximate index found fewer for that probe.
    """

    ids: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    rows: np.ndarray
    valid: np.ndarray

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])


@contextmanager
def _faiss_threads(threads: int | None) -> Iterator[None]:
    """Use `threads` OpenMP threads inside the block only; faiss's setting is process-global."""
    if threads is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _validated_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """All parameters checked up front, so a bad config fails at construction, not at search."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown gallery parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    cfg = {**DEFAULTS, **config}
    if cfg["index"] not in INDEX_TYPES:
        raise ValueError(f"index must be one of {INDEX_TYPES}, got {cfg['index']!r}")
    if cfg["dim"] is not None:
        cfg["dim"] = _positive_int("dim", cfg["dim"])
    for name in ("nlist", "nprobe", "ef_construction", "ef_search"):
        cfg[name] = _positive_int(name, cfg[name])
    cfg["M"] = _positive_int("M", cfg["M"], minimum=2)
    cfg["seed"] = _positive_int("seed", cfg["seed"], minimum=0)
    if cfg["nprobe"] > cfg["nlist"]:
        raise ValueError(f"nprobe ({cfg['nprobe']}) cannot exceed nlist ({cfg['nlist']})")
    if cfg["train_size"] is not None:
        cfg["train_size"] = _positive_int("train_size", cfg["train_size"])
        if cfg["train_size"] < cfg["nlist"]:
            raise ValueError(
                f"train_size ({cfg['train_size']}) must be >= nlist ({cfg['nlist']}): "
                "k-means needs at least one training vector per inverted list"
            )
    tol = cfg["norm_tolerance"]
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 < tol < 1:
        raise ValueError(f"norm_tolerance must be a number in (0, 1), got {tol!r}")
    cfg["norm_tolerance"] = float(tol)
    return cfg


def _check_ids(ids: Sequence[str] | np.ndarray, n: int) -> np.ndarray:
    """Strings only: a mix of 7 and "7" would otherwise be two subjects that print alike."""
    if isinstance(ids, str | bytes):
        raise ValueError("ids must be a sequence of strings, not one string")
    values = [str(i) if isinstance(i, np.str_) else i for i in ids]
    if len(values) != n:
        raise ValueError(f"got {len(values)} ids for {n} embeddings: one id per embedding row")
    bad = [row for row, value in enumerate(values) if not isinstance(value, str) or not value]
    if bad:
        raise ValueError(
            f"ids must be non-empty strings; row {bad[0]} is {values[bad[0]]!r} "
            f"({len(bad)} bad id(s) in all)"
        )
    out = np.empty(n, dtype=object)
    out[:] = values
    return out


class Gallery:
    """Enrolled, L2-normalised embeddings with string ids, searchable by inner product.

    Parameters, keyword-only but `index`: `index` ("flat" | "ivf" | "hnsw"); `dim` (None: set
    by the first enrolment); IVF: `nlist`, `nprobe`, `train_size` (k-means sample, default
    min(n, 256 * nlist), faiss's own cap); HNSW: `M`, `ef_construction`, `ef_search`; `seed`
    (training sample and k-means); `norm_tolerance` (allowed | ||x|| - 1 |); `threads` (faiss
    OpenMP threads during enrol / search, restored afterwards; None leaves faiss's setting).
    """

    def __init__(
        self,
        index: str = "flat",
        *,
        dim: int | None = None,
        nlist: int = DEFAULTS["nlist"],
        nprobe: int = DEFAULTS["nprobe"],
        train_size: int | None = None,
        M: int = DEFAULTS["M"],  # faiss's and the HNSW paper's name
        ef_construction: int = DEFAULTS["ef_construction"],
        ef_search: int = DEFAULTS["ef_search"],
        seed: int = DEFAULTS["seed"],
        norm_tolerance: float = DEFAULTS["norm_tolerance"],
        threads: int | None = None,
    ) -> None:
        self._config = _validated_config(
            {
                "index": index,
                "dim": dim,
                "nlist": nlist,
                "nprobe": nprobe,
                "train_size": train_size,
                "M": M,
                "ef_construction": ef_construction,
                "ef_search": ef_search,
                "seed": seed,
                "norm_tolerance": norm_tolerance,
            }
        )
        self.threads = None if threads is None else _positive_int("threads", threads)
        self._index: faiss.Index | None = None
        self._ids = np.empty(0, dtype=object)
        self._id_counts: Counter[str] = Counter()  # rows per id, for distinct-id search
        if self._config["dim"] is not None:
            self._index = self._new_index(self._config["dim"])

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, threads: int | None = None) -> Gallery:
        """Build from a mapping such as {"index": "ivf", "nlist": 1024, "nprobe": 16}."""
        if not isinstance(config, Mapping):
            raise ValueError(f"config must be a mapping, got {type(config).__name__}")
        return cls(**_validated_config(config), threads=threads)

    # ---------------------------------------------------------------- properties

    @property
    def config(self) -> dict[str, Any]:
        """Every parameter, as `from_config` takes it (threads excluded: a runtime setting)."""
        return dict(self._config)

    @property
    def index_type(self) -> str:
        return self._config["index"]

    @property
    def dim(self) -> int | None:
        return self._config["dim"]

    @property
    def ids(self) -> np.ndarray:
        """Enrolled ids in row order (a copy)."""
        return self._ids.copy()

    @property
    def is_trained(self) -> bool:
        return self._index is not None and bool(self._index.is_trained)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        shown = ("dim", *TYPE_PARAMS[self.index_type])
        params = ", ".join(f"{name}={self._config[name]!r}" for name in shown)
        return f"Gallery({self.index_type!r}, n={len(self)}, {params})"

    def nbytes(self) -> int:
        """Size of the serialised faiss index (vectors + structure), ids excluded.

        Counted while streaming: faiss.serialize_index would copy a 2 GB index to measure it.
        """
        if self._index is None:
            return 0
        total = 0

        def count(block: bytes) -> int:
            nonlocal total
            total += len(block)
            return len(block)

        writer = faiss.PyCallbackIOWriter(count)
        faiss.write_index(self._index, writer)
        del writer  # its destructor flushes the last buffered block
        return total

    # ---------------------------------------------------------------- building

    def _new_index(self, dim: int) -> faiss.Index:
        cfg = self._config
        if cfg["index"] == "flat":
            return faiss.IndexFlatIP(dim)
        if cfg["index"] == "ivf":
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, cfg["nlist"], faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = cfg["seed"]
            index.cp.spherical = True  # unit-norm centroids: IP assignment agrees with k-means
            index.nprobe = cfg["nprobe"]
            self._quantizer = quantizer  # keep the Python owner alive as long as the index
            return index
        index = faiss.IndexHNSWFlat(dim, cfg["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg["ef_construction"]
        index.hnsw.efSearch = cfg["ef_search"]
        return index

    def _check_vectors(self, x: Any, what: str) -> np.ndarray:
        """float32, C-contiguous, finite, unit norm and of the gallery's dimension."""
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(
                f"{what} must be 2-D (n, d), got shape {x.shape}; use x[None] for one vector"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{what} must be floating point, got dtype {x.dtype}")
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"{what} have dimension {x.shape[1]}; the gallery's is {self.dim}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        tol = self._config["norm_tolerance"]
        for start in range(0, len(x), _CHECK_CHUNK):
            chunk = x[start : start + _CHECK_CHUNK]
            finite = np.isfinite(chunk).all(axis=1)
            if not finite.all():
                row = start + int(np.argmin(finite))
                raise ValueError(
                    f"{what} row {row} has a non-finite value (NaN or inf; a row of NaN is a "
                    "photo without an acquired face: leave it out)"
                )
            norms = np.sqrt(np.einsum("ij,ij->i", chunk, chunk, dtype=np.float64))
            off = np.abs(norms - 1.0) > tol
            if off.any():
                row = start + int(np.argmax(off))
                raise ValueError(
                    f"{what} row {row} has L2 norm {norms[row - start]:.6g}, not 1 within "
                    f"{tol:g}: L2-normalise embeddings (x / ||x||) before enrolling or searching"
                )
        return x

    def _train(self, index: faiss.Index, x: np.ndarray) -> None:
        """IVF only: k-means on the vectors of the first enrolment, or a seeded sample of it."""
        nlist = self._config["nlist"]
        if len(x) < nlist:
            raise ValueError(
                f"IVF index with nlist={nlist} needs at least {nlist} vectors in its first "
                f"enrolment to train on (faiss recommends >= {39 * nlist}); got {len(x)}: "
                "enrol more vectors at once, lower nlist or use index='flat'"
            )
        size = min(len(x), self._config["train_size"] or 256 * nlist)
        if size < len(x):
            rng = np.random.default_rng(self._config["seed"])
            x = x[np.sort(rng.choice(len(x), size=size, replace=False))]
        index.train(x)

    def enrol(self, embeddings: Any, ids: Sequence[str] | np.ndarray) -> None:
        """Add (n, d) L2-normalised embeddings with one string id per row (ids may repeat)."""
        x = self._check_vectors(embeddings, "embeddings")
        id_array = _check_ids(ids, len(x))
        if len(x) == 0:
            raise ValueError("no embeddings to enrol")
        index = self._index if self._index is not None else self._new_index(x.shape[1])
        with _faiss_threads(self.threads):
            if not index.is_trained:
                self._train(index, x)  # a refused first enrolment leaves the gallery as it was
            index.add(x)
        self._index, self._config["dim"] = index, int(x.shape[1])
        self._ids = np.concatenate([self._ids, id_array])
        self._id_counts.update(id_array.tolist())

    def set_search_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the recall / speed trade-off of a built index without rebuilding it."""
        pairs = (("nprobe", nprobe), ("ef_search", ef_search))
        update = {name: value for name, value in pairs if value is not None}
        self._config = _validated_config({**self._config, **update})
        if self._index is not None:
            self._apply_search_params()

    def _apply_search_params(self) -> None:
        if self.index_type == "ivf":
            self._index.nprobe = self._config["nprobe"]
        elif self.index_type == "hnsw":
            self._index.hnsw.efSearch = self._config["ef_search"]

    # ---------------------------------------------------------------- search

    def search(self, probes: Any, k: int, *, distinct_ids: bool = False) -> SearchResult:
        """Top-k enrolled vectors per probe by inner product, best first.

        With `distinct_ids`, the top-k subjects instead: each id appears once, with the score
        of its best-matching enrolment row (exact for "flat"; best effort for IVF / HNSW).
        """
        k = _positive_int("k", k)
        if len(self) == 0:
            raise ValueError("the gallery is empty: enrol embeddings before searching")
        x = self._check_vectors(probes, "probes")
        n = len(self)
        max_repeat = max(self._id_counts.values())
        fetch = min(n, (k - 1) * max_repeat + 1 if distinct_ids else k)
        with _faiss_threads(self.threads):
            scores, rows = self._index.search(x, fetch)
        if distinct_ids:
            scores, rows = self._first_per_id(scores, rows, k)
        return self._result(scores, rows)

    def _first_per_id(self, scores: np.ndarray, rows: np.ndarray, k: int) -> tuple:
        """Keep each id's first (best) row per probe; enough rows were fetched to fill k."""
        out_scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
        out_rows = np.full((len(rows), k), -1, dtype=np.int64)
        for p in range(len(rows)):
            seen: set[str] = set()
            col = 0
            for score, row in zip(scores[p], rows[p], strict=True):
                if row < 0 or self._ids[row] in seen:
                    continue
                seen.add(self._ids[row])
                out_scores[p, col], out_rows[p, col] = score, row
                col += 1
                if col == k:
                    break
        return out_scores, out_rows

    def _result(self, scores: np.ndarray, rows: np.ndarray) -> SearchResult:
        """Drop faiss's -1 labels: valid results first, then trim columns nobody fills."""
        valid = rows >= 0
        order = np.argsort(~valid, axis=1, kind="stable")
        rows = np.take_along_axis(rows, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False)
        valid = np.take_along_axis(valid, order, axis=1)
        width = int(valid.sum(axis=1).max()) if len(valid) else 0
        rows, scores, valid = rows[:, :width], scores[:, :width], valid[:, :width]
        ids = np.full(rows.shape, None, dtype=object)
        ids[valid] = self._ids[rows[valid]]
        ranks = np.where(valid, np.arange(1, width + 1, dtype=np.int32), 0).astype(np.int32)
        return SearchResult(
            ids=ids,
            scores=np.where(valid, scores, np.float32(np.nan)),
            ranks=ranks,
            rows=np.where(valid, rows, -1).astype(np.int64),
            valid=valid,
        )

    # ---------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike) -> Path:
        """Write index, ids and config into directory `path`, atomically.

        Everything goes to a temporary sibling directory first, which then replaces `path`: a
        crash leaves the previous gallery intact. An existing `path` that is not a saved
        gallery (no config.json) and not empty is refused rather than deleted.
        """
        if self._index is None:
            raise ValueError("nothing to save: the gallery has no index yet (enrol first)")
        target = Path(path)
        if not _replaceable(target):
            raise GalleryError(f"{target} exists and is not a saved gallery: refusing to replace")
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(target)  # what a killed save left
        tmp = temporary_sibling(target)
        try:
            tmp.mkdir()
            self._write_files(tmp)
            replace_dir(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return target

    def _write_files(self, directory: Path) -> None:
        faiss.write_index(self._index, str(directory / INDEX_FILE))
        _write_synced(directory / IDS_FILE, json.dumps(self._ids.tolist()))
        _fsync(directory / INDEX_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "count": len(self),
            "config": self._config,
            "sha256": {name: sha256_file(directory / name) for name in (INDEX_FILE, IDS_FILE)},
        }
        _write_synced(directory / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike, *, threads: int | None = None) -> Gallery:
        """Read a directory written by `save`; any missing, altered or inconsistent file is a
        GalleryError naming it."""
        root = Path(path)
        meta = _read_meta(root / CONFIG_FILE)
        for name, digest in meta["sha256"].items():
            file = root / name
            if not file.is_file():
                raise GalleryError(f"{file} is missing")
            if sha256_file(file) != digest:
                raise GalleryError(f"{file} does not match the checksum in {CONFIG_FILE}")
        try:
            config = _validated_config(meta["config"])
        except ValueError as error:
            raise GalleryError(f"{root / CONFIG_FILE}: {error}") from error
        gallery = cls(**config, threads=threads)
        gallery._index = _read_index(root / INDEX_FILE, config)
        ids = _read_ids(root / IDS_FILE)
        if not len(ids) == meta["count"] == gallery._index.ntotal:
            raise GalleryError(
                f"{root / IDS_FILE} holds {len(ids)} ids, {CONFIG_FILE} says {meta['count']} and "
                f"{INDEX_FILE} holds {gallery._index.ntotal} vectors: they must agree"
            )
        gallery._ids = ids
        gallery._id_counts.update(ids.tolist())
        gallery._apply_search_params()
        return gallery


def _fsync(file: Path) -> None:
    with file.open("rb") as handle:
        os.fsync(handle.fileno())


def _write_synced(file: Path, text: str) -> None:
    with file.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _replaceable(target: Path) -> bool:
    """Absent, empty or a saved gallery: never delete a directory we did not write."""
    if not target.exists():
        return True
    if not target.is_dir():
        return False
    return (target / CONFIG_FILE).is_file() or not any(target.iterdir())


def _read_meta(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise GalleryError(f"{file} is missing: not a saved gallery")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GalleryError(f"{file} is not valid JSON: {error}") from error
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise GalleryError(f"{file}: expected format_version {FORMAT_VERSION}")
    expected = {INDEX_FILE, IDS_FILE}
    if (
        not isinstance(meta.get("config"), dict)
        or not isinstance(meta.get("count"), int)
        or not isinstance(meta.get("sha256"), dict)
        or set(meta["sha256"]) != expected
    ):
        raise GalleryError(f"{file} lacks config, count or sha256 of {sorted(expected)}")
    return meta


def _read_index(file: Path, config: Mapping[str, Any]) -> faiss.Index:
    """The index must be of the configured type, metric and dimension."""
    kinds = {"flat": faiss.IndexFlatIP, "ivf": faiss.IndexIVFFlat, "hnsw": faiss.IndexHNSWFlat}
    try:
        index = faiss.read_index(str(file))  # already the concrete class (IndexIVFFlat...)
    except RuntimeError as error:
        raise GalleryError(f"{file} is not a readable faiss index: {error}") from error
    if not isinstance(index, kinds[config["index"]]):
        raise GalleryError(
            f"{file} holds a {type(index).__name__}, but {CONFIG_FILE} says {config['index']!r}"
        )
    if index.metric_type != faiss.METRIC_INNER_PRODUCT or index.d != config["dim"]:
        raise GalleryError(
            f"{file}: metric {index.metric_type}, dimension {index.d}; {CONFIG_FILE} expects "
            f"inner product ({faiss.METRIC_INNER_PRODUCT}), dimension {config['dim']}"
        )
    return index


def _read_ids(file: Path) -> np.ndarray:
    try:
        ids = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GalleryError(f"{file} is not valid JSON: {error}") from error
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise GalleryError(f"{file} must be a JSON list of non-empty strings")
    out = np.empty(len(ids), dtype=object)
    out[:] = ids
    return out
