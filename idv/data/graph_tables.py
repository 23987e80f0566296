"""The identity graph's tables: their one writer and their one reader.

A graph corpus (`data/graph/<profile>/`, or an imported public graph) is three tables:

- `accounts.parquet`: every account node: `account_id`, `created_at` (days), and the
  account's own features (`f_*` columns: what the tabular baseline sees too);
- `links.parquet`: account -> attribute links: `account_id`, `node_type` (device, ip, document
  series, phone, email domain, address, face cluster, ...), `node_key` (the attribute's
  identity within its type) and `created_at` (when the account first used it: never before the
  account itself);
- `manifest.parquet`: the labelled accounts, one row each (`sample_id` = account id,
  `subject_id` = account id, `label`, `attack_type`, `split`, `created_at`, `ring_id`): what
  is trained on, scored and judged. An account without a label (an importer's "unknown") is a
  node of the graph but not a row of the manifest.

Attribute nodes are shared across periods by design: a snapshot at time T holds the accounts
and links created at or before T (`idv.data.graph`). Bad input is refused by row: a link to an
unknown account, a link older than its account (time going backwards), a labelled account
absent from the node table.

Pandas only (no torch): the evaluation layer reads the links through here to recover rings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from idv.atomic import write_parquet
from idv.data.manifest import ManifestError

ACCOUNTS_NAME = "accounts.parquet"
LINKS_NAME = "links.parquet"
MANIFEST_NAME = "manifest.parquet"
FEATURE_PREFIX = "f_"
ACCOUNT_COLUMNS = ("account_id", "created_at")
LINK_COLUMNS = ("account_id", "node_type", "node_key", "created_at")

__all__ = [
    "ACCOUNTS_NAME",
    "LINKS_NAME",
    "GraphTableError",
    "GraphTables",
    "check_graph_tables",
    "feature_columns",
    "read_graph_tables",
    "write_graph_tables",
]


class GraphTableError(ManifestError):
    """A graph table that cannot be trusted; the message names the file and the row."""


@dataclass(frozen=True)
class GraphTables:
    """The account nodes and their links, validated; `root` is the corpus directory."""

    accounts: pd.DataFrame
    links: pd.DataFrame
    root: Path

    @property
    def features(self) -> list[str]:
        return feature_columns(self.accounts)

    @property
    def node_types(self) -> list[str]:
        return sorted(self.links["node_type"].astype(str).unique())


def feature_columns(accounts: pd.DataFrame) -> list[str]:
    """The account's own feature columns, in table order."""
    return [c for c in accounts.columns if str(c).startswith(FEATURE_PREFIX)]


def write_graph_tables(
    accounts: pd.DataFrame, links: pd.DataFrame, root: str | os.PathLike
) -> None:
    """Write the node and link tables (atomically each), after the checks the reader makes."""
    root = Path(root)
    check_graph_tables(accounts, links, root / ACCOUNTS_NAME, root / LINKS_NAME)
    write_parquet(accounts.reset_index(drop=True), root / ACCOUNTS_NAME)
    write_parquet(links.reset_index(drop=True), root / LINKS_NAME)


def read_graph_tables(root: str | os.PathLike, manifest: pd.DataFrame | None = None) -> GraphTables:
    """The corpus' accounts and links, checked (and, given the manifest, every labelled account
    checked against the node table)."""
    root = Path(root)
    files = {name: root / name for name in (ACCOUNTS_NAME, LINKS_NAME)}
    for file in files.values():
        if not file.is_file():
            raise FileNotFoundError(f"graph corpus {root}: no {file.name}")
    accounts, links = _read(files[ACCOUNTS_NAME]), _read(files[LINKS_NAME])
    check_graph_tables(accounts, links, files[ACCOUNTS_NAME], files[LINKS_NAME])
    if manifest is not None:
        check_manifest_accounts(manifest, accounts, root / MANIFEST_NAME)
    return GraphTables(accounts, links, root)


def _read(file: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(file)
    except (ImportError, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001 - pyarrow's many errors: the file is at fault
        raise GraphTableError(
            f"{file}: not a readable Parquet table ({type(err).__name__}: {err})"
        ) from err


def check_graph_tables(
    accounts: pd.DataFrame, links: pd.DataFrame, accounts_file: Path, links_file: Path
) -> None:
    """Columns, unique non-null account ids, finite times and features, links to known accounts
    never older than their account."""
    _require(accounts, ACCOUNT_COLUMNS, accounts_file)
    _require(links, LINK_COLUMNS, links_file)
    ids = accounts["account_id"]
    _no_nulls(accounts, ["account_id", "created_at", *feature_columns(accounts)], accounts_file)
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated)[0])
        raise GraphTableError(f"{accounts_file}: row {i}: account_id {ids.iloc[i]!r} repeats")
    _finite(accounts, ["created_at", *feature_columns(accounts)], accounts_file)
    _no_nulls(links, list(LINK_COLUMNS), links_file)
    _finite(links, ["created_at"], links_file)
    born = pd.Series(accounts["created_at"].to_numpy(np.float64), index=ids.astype(str))
    link_account = links["account_id"].astype(str)
    known = link_account.isin(born.index).to_numpy()
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise GraphTableError(
            f"{links_file}: row {i}: account_id {link_account.iloc[i]!r} is not in "
            f"{accounts_file} ({int((~known).sum())} links to unknown accounts)"
        )
    link_time = links["created_at"].to_numpy(np.float64)
    backwards = link_time < born.loc[link_account].to_numpy()
    if backwards.any():
        i = int(np.flatnonzero(backwards)[0])
        account = link_account.iloc[i]
        row = int(born.index.get_loc(account))
        raise GraphTableError(
            f"{links_file}: row {i}: link of account {account!r} created at "
            f"{link_time[i]:g}, before the account ({accounts_file.name} row "
            f"{row}: created_at {born[account]:g}): time goes backwards "
            f"({int(backwards.sum())} such links)"
        )


def check_manifest_accounts(manifest: pd.DataFrame, accounts: pd.DataFrame, file: Path) -> None:
    """Every labelled account (and ring member) is a node, created when the node table says."""
    ids = manifest["sample_id"].astype(str)
    born = pd.Series(
        accounts["created_at"].to_numpy(np.float64), index=accounts["account_id"].astype(str)
    )
    absent = ~ids.isin(born.index).to_numpy()
    if absent.any():
        i = int(np.flatnonzero(absent)[0])
        ring = manifest["ring_id"].iloc[i] if "ring_id" in manifest.columns else None
        what = f"ring {ring!r} member" if isinstance(ring, str) and ring else "labelled account"
        raise GraphTableError(
            f"{file}: row {i}: {what} {ids.iloc[i]!r} is absent from the node table "
            f"{ACCOUNTS_NAME} ({int(absent.sum())} such rows)"
        )
    if "created_at" in manifest.columns:
        stated = pd.to_numeric(manifest["created_at"].map(_number), errors="coerce").to_numpy()
        differs = ~np.isclose(stated, born.loc[ids].to_numpy())
        if differs.any():
            i = int(np.flatnonzero(differs)[0])
            raise GraphTableError(
                f"{file}: row {i}: account {ids.iloc[i]!r} created_at "
                f"{manifest['created_at'].iloc[i]!r} disagrees with {ACCOUNTS_NAME} "
                f"({born[ids.iloc[i]]:g})"
            )


def _require(frame: pd.DataFrame, columns, file: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise GraphTableError(f"{file}: missing required column(s) {missing}")


def _no_nulls(frame: pd.DataFrame, columns, file: Path) -> None:
    for column in columns:
        values = frame[column]
        bad = values.isna().to_numpy().copy()
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            bad |= values.astype(str).str.strip().eq("").to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise GraphTableError(f"{file}: row {i}: {column} is null or empty")


def _finite(frame: pd.DataFrame, columns, file: Path) -> None:
    for column in columns:
        try:
            values = frame[column].to_numpy(np.float64)
        except (TypeError, ValueError):
            numbers = pd.to_numeric(frame[column].map(_number), errors="coerce")
            i = int(np.flatnonzero(numbers.isna().to_numpy())[0])
            raise GraphTableError(
                f"{file}: row {i}: {column} is not a number ({frame[column].iloc[i]!r})"
            ) from None
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise GraphTableError(f"{file}: row {i}: {column} is not finite ({values[i]})")


def _number(value):
    """A cell as a float, or NaN where it is not one (a string, a list, a mapping)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan
