"""Import a transaction graph in the Elliptic layout (Weber et al. 2019) as a graph corpus.

Layout: three CSV files in `source/`:

- `elliptic_txs_features.csv`, no header: txId, time step (1..49), then 165 anonymised
  features, the 93 local ones first and the 72 aggregated ones after;
- `elliptic_txs_edgelist.csv`, header `txId1,txId2`: one payment flow per row;
- `elliptic_txs_classes.csv`, header `txId,class`: `1` illicit, `2` licit, `unknown`.

Mapping onto `idv.data.graph_tables`: every transaction is an account node (`account_id` =
txId, `created_at` = its time step, features `f_0`.. in file order: `features="local"` keeps
`f_0`..`f_92`, `"all"` `f_0`..`f_164`). The graph format links accounts to attributes, so a
transaction's counterparties are its attributes: an edge a -> b is the links (a, counterparty,
b) and (b, counterparty, a), both created at the later of the two time steps (never before
either account); a repeated link is kept once. Only labelled transactions are manifest rows
(label 1 `illicit`, 0 `bona_fide`, `ring_id` null: Elliptic has no ring truth); the unknown
ones stay nodes. Splits are by time step, as Weber et al. evaluate (train on the past, test on
the future): `splits` gives the last time step of train, val and calib, the rest is test.

Bad input (a wrong column count or header, a non-integer or non-positive time step, a
duplicated txId, a feature that is not a finite number, an edge or class row naming a txId the
features file lacks, a class other than 1 / 2 / unknown) is a `GraphTableError` naming the
file and the row (1-based data row, and the file's line). Nothing is written unless all of it
imports; `out` is then replaced atomically (`CorpusDir`).
"""

from __future__ import annotations

import logging
import numbers
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from idv.data.graph_tables import FEATURE_PREFIX, GraphTableError, write_graph_tables
from idv.data.manifest import BONA_FIDE, Manifest, validate, write_manifest
from idv.data.synth.writer import MANIFEST_NAME, CorpusDir

log = logging.getLogger(__name__)

FEATURES_NAME = "elliptic_txs_features.csv"
EDGES_NAME = "elliptic_txs_edgelist.csv"
CLASSES_NAME = "elliptic_txs_classes.csv"
FEATURE_SETS = {"local": 93, "all": 165}  # how many of the file's features each option keeps
N_FEATURES = FEATURE_SETS["all"]
CLASS_LABELS = {"1": 1, "2": 0}  # illicit, licit
UNKNOWN_CLASS = "unknown"
ILLICIT = "illicit"
COUNTERPARTY = "counterparty"
SPLIT_BOUNDARIES = ("train", "val", "calib")  # each: its last time step; after calib: test
DEFAULT_SPLITS = {"train": 30, "val": 34, "calib": 39}  # Weber et al.: train 1-34, test 35-49


def _where(file: Path, index: int, header: bool) -> str:
    """A data row as messages name it: 1-based, and the line of the file it is on."""
    return f"{file}: row {index + 1} (line {index + 1 + int(header)})"


def _read_csv(file: Path, **kwargs) -> pd.DataFrame:
    if not file.is_file():
        raise GraphTableError(f"{file}: not found (the Elliptic layout needs {FEATURES_NAME}, "
                              f"{EDGES_NAME} and {CLASSES_NAME})")  # fmt: skip
    try:
        return pd.read_csv(file, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GraphTableError(f"{file}: not a readable CSV ({err})") from None


def _ids(values: pd.Series, file: Path, column: str, header: bool) -> pd.Series:
    """Transaction ids as stripped strings; a null or blank one is refused by row."""
    ids = values.astype("string").str.strip()
    blank = (ids.isna() | ids.eq("")).to_numpy(dtype=bool)
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        raise GraphTableError(f"{_where(file, i, header)}: {column} is empty")
    return ids.astype(str)


def _unique(ids: pd.Series, file: Path, header: bool) -> None:
    repeated = ids.duplicated().to_numpy()
    if repeated.any():
        i = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero(ids.eq(ids.iloc[i]).to_numpy())[0])
        raise GraphTableError(f"{_where(file, i, header)}: txId {ids.iloc[i]!r} is duplicated "
                              f"(first at row {first + 1})")  # fmt: skip


def _known(ids: pd.Series, known: pd.Index, file: Path, column: str) -> None:
    absent = ~ids.isin(known).to_numpy()
    if absent.any():
        i = int(np.flatnonzero(absent)[0])
        raise GraphTableError(
            f"{_where(file, i, True)}: {column} {ids.iloc[i]!r} is not a transaction of "
            f"{FEATURES_NAME} ({int(absent.sum())} such rows)"
        )


def _time_steps(raw: pd.Series, file: Path) -> np.ndarray:
    """Positive whole time steps; anything else is refused by row."""
    steps = pd.to_numeric(raw.astype("string").str.strip(), errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(steps) | (steps < 1) | (steps != np.floor(steps))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GraphTableError(
            f"{_where(file, i, False)}: time step {raw.iloc[i]!r} is not a positive integer"
        )
    return steps


def read_features(file: Path, count: int) -> pd.DataFrame:
    """The node table: `account_id`, `created_at` (the time step) and the first `count`
    features as `f_0`.. (all 165 are checked, whichever are kept)."""
    frame = _read_csv(file, header=None, dtype={0: str, 1: str})
    if frame.shape[1] != 2 + N_FEATURES:
        raise GraphTableError(
            f"{file}: {frame.shape[1]} columns; the Elliptic layout has {2 + N_FEATURES} "
            f"(txId, time step, {N_FEATURES} features)"
        )
    ids = _ids(frame[0], file, "txId", header=False)
    _unique(ids, file, header=False)
    steps = _time_steps(frame[1], file)
    values = frame.iloc[:, 2:].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        cell = frame.iat[i, j + 2]
        cell = cell.item() if isinstance(cell, np.generic) else cell  # 'inf', not np.float64(inf)
        value = "is empty (or NA)" if pd.isna(cell) else f"{cell!r} is not a finite number"
        raise GraphTableError(f"{_where(file, i, False)}: feature {j} (column {j + 3}) {value}")
    accounts = pd.DataFrame({"account_id": ids, "created_at": steps})
    features = pd.DataFrame(
        values[:, :count], columns=[f"{FEATURE_PREFIX}{j}" for j in range(count)]
    )
    return pd.concat([accounts, features], axis=1)


def _header(frame: pd.DataFrame, expected: tuple[str, ...], file: Path) -> pd.DataFrame:
    frame.columns = [str(c).strip() for c in frame.columns]
    if tuple(frame.columns) != expected:
        raise GraphTableError(f"{file}: header {list(frame.columns)}; expected "
                              f"{','.join(expected)}")  # fmt: skip
    return frame


def read_links(file: Path, born: pd.Series) -> pd.DataFrame:
    """Both directions of every edge as counterparty links, at the later time step."""
    frame = _header(_read_csv(file, dtype=str, keep_default_na=False), ("txId1", "txId2"), file)
    a = _ids(frame["txId1"], file, "txId1", header=True)
    b = _ids(frame["txId2"], file, "txId2", header=True)
    _known(a, born.index, file, "txId1")
    _known(b, born.index, file, "txId2")
    at = np.maximum(born.loc[a].to_numpy(), born.loc[b].to_numpy())
    links = pd.DataFrame({
        "account_id": np.concatenate([a.to_numpy(), b.to_numpy()]), "node_type": COUNTERPARTY,
        "node_key": np.concatenate([b.to_numpy(), a.to_numpy()]), "created_at": np.tile(at, 2),
    })  # fmt: skip
    unique = links.drop_duplicates(["account_id", "node_type", "node_key"], ignore_index=True)
    if len(unique) < len(links):
        log.info("%s: %d repeated links kept once", file, len(links) - len(unique))
    return unique


def read_classes(file: Path, known: pd.Index) -> pd.DataFrame:
    """The labelled rows: txId and label (1 illicit, 0 licit); unknown ones dropped."""
    frame = _header(_read_csv(file, dtype=str, keep_default_na=False), ("txId", "class"), file)
    ids = _ids(frame["txId"], file, "txId", header=True)
    _unique(ids, file, header=True)
    _known(ids, known, file, "txId")
    classes = frame["class"].astype(str).str.strip().str.lower()
    bad = ~classes.isin([*CLASS_LABELS, UNKNOWN_CLASS]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GraphTableError(f"{_where(file, i, True)}: class {frame['class'].iloc[i]!r} is "
                              f"not 1 (illicit), 2 (licit) or {UNKNOWN_CLASS}")  # fmt: skip
    if len(ids) < len(known):
        log.info("%s: %d transactions have no class row: unlabelled, as 'unknown' ones are",
                 file, len(known) - len(ids))  # fmt: skip
    labelled = (classes != UNKNOWN_CLASS).to_numpy()
    label = classes[labelled].map(CLASS_LABELS).to_numpy(np.int64)
    return pd.DataFrame({"txId": ids[labelled].to_numpy(), "label": label})


def split_of(steps: np.ndarray, splits: Mapping[str, int]) -> np.ndarray:
    """The split of each time step: train up to `splits['train']`, then val, calib, test."""
    if set(splits) != set(SPLIT_BOUNDARIES):
        raise ValueError(f"splits needs exactly the keys {list(SPLIT_BOUNDARIES)} (the last time "
                         f"step of each; the rest is test), got {sorted(splits)}")  # fmt: skip
    bounds = [splits[name] for name in SPLIT_BOUNDARIES]
    if not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in bounds) or (
        bounds[0] < 1
    ):
        raise ValueError(f"splits: time steps must be positive integers, got {dict(splits)}")
    if sorted(bounds) != bounds:
        raise ValueError(f"splits: need train <= val <= calib, got {dict(splits)}")
    names = np.array([*SPLIT_BOUNDARIES, "test"], dtype=object)
    return names[np.searchsorted(np.asarray(bounds, dtype=np.float64), steps, side="left")]


def import_elliptic(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    features: str = "local",
    splits: Mapping[str, int] = DEFAULT_SPLITS,
) -> pd.DataFrame:
    """Import the Elliptic files under `source` into the graph corpus `out` (accounts, links,
    manifest, atomically); returns the manifest."""
    source, out = Path(source), Path(out)
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {list(FEATURE_SETS)}, got {features!r}")
    s, o = source.resolve(), out.resolve()
    if o == s or s.is_relative_to(o):
        raise ValueError(f"out ({out}) must not be the source ({source}) nor contain it")
    split_of(np.ones(1), splits)  # a bad option fails before any file is read
    accounts = read_features(source / FEATURES_NAME, FEATURE_SETS[features])
    born = pd.Series(accounts["created_at"].to_numpy(), index=pd.Index(accounts["account_id"]))
    links = read_links(source / EDGES_NAME, born)
    labelled = read_classes(source / CLASSES_NAME, born.index)
    order = labelled.set_index("txId").reindex(accounts["account_id"]).dropna()  # node order
    ids, label = order.index.to_numpy(dtype=object), order["label"].to_numpy(np.int64)
    steps = born.loc[ids].to_numpy()
    manifest = pd.DataFrame({
        "sample_id": ids, "label": label, "subject_id": ids, "split": split_of(steps, splits),
        "attack_type": np.where(label == 1, ILLICIT, BONA_FIDE), "created_at": steps,
        "ring_id": pd.Series([None] * len(ids), dtype="string"),
    })  # fmt: skip
    with CorpusDir(out) as tmp:
        write_graph_tables(accounts, links, tmp)
        validate(Manifest(manifest, tmp / MANIFEST_NAME, tmp), labels=(0, 1), check_files=False)
        write_manifest(manifest, tmp / MANIFEST_NAME)
    log.info(
        "%s: %d transactions (%d labelled: %d illicit), %d links, %d features -> %s",
        source, len(accounts), len(manifest), int(label.sum()), len(links),
        len(accounts.columns) - 2, out,
    )  # fmt: skip
    return manifest
