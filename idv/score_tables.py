"""Score tables: the one contract between scoring (ours or a vendor's) and judging.

Three kinds of table, one schema and one validator each, used by evaluation, calibration, the
regression gate, the vendor benchmark and the metrics that take tables:

- detection: one row per sample: `sample_id`, `score` (higher = more likely attack / fraud /
  bot), `label` (1 = attack, 0 = bona fide), `attack_type` (`bona_fide` exactly when label 0),
  `subject_id`, segment columns;
- comparison (1:1): one row per comparison: `comparison_id`, `sample_id_a`, `sample_id_b`,
  `subject_id_a`, `subject_id_b`, `genuine` (1 = same person, which must agree with the subject
  ids), `score` (a similarity: higher = more alike), segment columns of the probe (`b`);
- search (1:N): one row per returned candidate: `search_id`, `probe_sample_id`,
  `probe_subject_id`, `mated`, `rank` (1 = best, 1, 2, 3 ... without gaps), `candidate_subject_id`,
  `score` (a similarity, falling with rank). A search that returned nothing is one row with
  rank, candidate and score empty.

The failure-to-acquire contract, here and nowhere else: a row with `acquired = false` is a
failure to acquire (its score is ignored: the system could not process the sample, and the
metrics count it as a rejection / non-match); a table without an `acquired` column has every
row acquired; an acquired row with a NaN or infinite score is an error (mark the failure
instead). Every table may carry `split` (one of the manifest's splits).

Errors are `ScoreTableError`s that name the table's source (its file), the row (position in the
table, from 0), its id and, for duplicates, both rows. `validate_*` return a normalised copy:
`acquired` present and boolean, labels / flags as int / bool, scores as float64.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from idv.data.manifest import BONA_FIDE, SPLITS
from idv.errors import IdvError

__all__ = [
    "COMPARISON_COLUMNS",
    "DETECTION_COLUMNS",
    "SEARCH_COLUMNS",
    "ScoreTableError",
    "read_comparison_table",
    "read_detection_table",
    "read_search_table",
    "TableSchema",
    "common_columns",
    "id_columns",
    "read_table",
    "register_table",
    "table_schema",
    "require_columns",
    "require_splits",
    "validate_comparison_table",
    "validate_detection_table",
    "validate_search_table",
]

DETECTION_COLUMNS = ("sample_id", "score", "label", "attack_type", "subject_id")
COMPARISON_COLUMNS = (
    "comparison_id",
    "sample_id_a",
    "sample_id_b",
    "subject_id_a",
    "subject_id_b",
    "genuine",
    "score",
)
SEARCH_COLUMNS = (
    "search_id",
    "probe_sample_id",
    "probe_subject_id",
    "mated",
    "rank",
    "candidate_subject_id",
    "score",
)
_SHOWN = 5  # rows quoted in one message
_DETECTION, _COMPARISON, _SEARCH = "detection", "comparison", "search"  # the built-in tables


class ScoreTableError(IdvError, ValueError):
    """A score table that cannot be judged; the message names the file, the row and the id."""


# ----------------------------------------------------------------------------------- schemas


def _ids(*names: str) -> dict[str, pa.Column]:
    return {n: pa.Column(None, nullable=False, title="id") for n in names}


def _flag(name: str) -> pa.Column:
    """0 / 1 or boolean, never missing."""
    return pa.Column(None, pa.Check.isin([0, 1]), nullable=False, title=f"{name} flag")


def _common() -> dict[str, pa.Column]:
    return {
        "split": pa.Column(None, pa.Check.isin(SPLITS), nullable=False, required=False),
        "acquired": pa.Column(
            None, pa.Check.isin([0, 1]), nullable=False, required=False, title="acquired flag"
        ),
        "score": pa.Column(None, nullable=True),
    }


@dataclass(frozen=True)
class TableSchema:
    """One kind of score table: its `name`, the id column (`key`, unique within a split), the
    columns it needs, its pandera columns, and its own rules (`check`: the normalised frame and
    its source in, the frame out, or a ScoreTableError naming the rows). A kind that brings a
    new table registers one (`register_table`)."""

    name: str
    key: str
    required: tuple[str, ...]
    columns: Mapping[str, pa.Column]
    check: Callable[[pd.DataFrame, str | None], pd.DataFrame] | None = None

    def validate(self, table: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
        """The table checked against the contract (module docstring), normalised."""
        frame = _validated(table, self, source)
        return self.check(frame, source) if self.check is not None else frame


_TABLES: dict[str, TableSchema] = {}


def register_table(schema: TableSchema, *, replace: bool = False) -> TableSchema:
    if schema.name in _TABLES and not replace:
        raise ValueError(f"score table schema {schema.name!r} is registered already")
    _TABLES[schema.name] = schema
    return schema


def table_schema(name: str) -> TableSchema:
    try:
        return _TABLES[name]
    except KeyError:
        known = sorted(_TABLES)
        raise ValueError(f"unknown score table kind {name!r}; expected one of {known}") from None


def common_columns() -> dict[str, pa.Column]:
    """`split`, `acquired` and `score`: what every table has (pandera columns)."""
    return _common()


def id_columns(*names: str) -> dict[str, pa.Column]:
    """Id columns (never empty), as pandera columns, for a new schema."""
    return _ids(*names)


# ---------------------------------------------------------------------------------- messages


def _where(table: pd.DataFrame, kind: str, rows: Sequence[int]) -> str:
    """'row 3 (sample_id 'x', split 'test')' for the first few positions."""
    key = table_schema(kind).key
    parts = []
    for i in list(rows)[:_SHOWN]:
        split = f", split {table['split'].iat[i]!r}" if "split" in table.columns else ""
        parts.append(f"row {i} ({key} {_plain(table[key].iat[i])!r}{split})")
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    return ", ".join(parts) + more


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _fail(source: str | None, kind: str, message: str) -> ScoreTableError:
    where = f"{source} ({kind} score table)" if source else f"{kind} score table"
    return ScoreTableError(f"{where}: {message}")


def _schema_errors(table: pd.DataFrame, kind: str, source: str, err: SchemaErrors) -> str:
    """pandera's failure cases as one message per column and check, naming the rows."""
    cases = err.failure_cases
    lines = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        if check == "column_in_dataframe":
            missing = sorted(group["failure_case"].astype(str))
            lines.append(f"lacks column(s) {missing} (columns: {sorted(map(str, table.columns))})")
            continue
        positions = [int(i) for i in group["index"].dropna().unique()]
        shown = [_plain(v) for v in group["failure_case"].head(_SHOWN)]
        what = {
            "not_nullable": "is empty",
            "isin": f"must be one of {_allowed(kind, column)}, got {shown}",
        }.get(str(check).split("(")[0], f"fails {check}: {shown}")
        lines.append(f"column {column!r} {what} at {_where(table, kind, positions)}")
    return "; ".join(lines)


def _allowed(kind: str, column: object) -> str:
    if column == "split":
        return f"{list(SPLITS)}"
    return "0 / 1 (or booleans)"


# -------------------------------------------------------------------------------- validation


def _validated(table: pd.DataFrame, schema: TableSchema, source: str | None) -> pd.DataFrame:
    """Schema checks shared by every table, then `acquired` and `score` normalised."""
    kind = schema.name
    if not isinstance(table, pd.DataFrame):
        raise _fail(source, kind, f"expected a DataFrame, got {type(table).__name__}")
    missing = [c for c in schema.required if c not in table.columns]
    if missing:
        raise _fail(
            source, kind, f"lacks column(s) {missing} (columns: {sorted(map(str, table.columns))})"
        )
    if table.empty:
        raise _fail(source, kind, "has no rows (a header alone is not a score table)")
    frame = table.reset_index(drop=True)
    try:
        pa.DataFrameSchema(dict(schema.columns)).validate(frame, lazy=True)
    except SchemaErrors as err:
        raise _fail(source, kind, _schema_errors(frame, kind, source, err)) from None
    frame = frame.copy()
    frame.attrs = dict(table.attrs)
    frame["acquired"] = frame["acquired"].astype(bool) if "acquired" in frame.columns else True
    try:
        frame["score"] = pd.to_numeric(frame["score"], errors="raise").astype(np.float64)
    except (TypeError, ValueError) as err:
        raise _fail(source, kind, f"column 'score' is not numeric ({err})") from None
    return frame


def _duplicates(
    rows: pd.DataFrame, columns: list[str], kind: str, source: str, what: str, table: pd.DataFrame
) -> None:
    """An error naming both rows of the first repeated value of `columns` among `rows` (a
    subset of the validated `table`, whose index is the row position)."""
    dup = rows.duplicated(columns, keep=False).to_numpy()
    if not dup.any():
        return
    first = int(np.flatnonzero(dup)[0])
    same = (rows[columns] == rows[columns].iloc[first]).all(axis=1).to_numpy()
    positions = rows.index[same][:2].tolist()
    value = ", ".join(f"{c} {_plain(rows[c].iat[first])!r}" for c in columns if c != "split")
    raise _fail(
        source,
        kind,
        f"duplicate {what} ({value}) at {_where(table, kind, positions)}: every {what} is "
        f"counted once, so remove the repeat ({int(dup.sum())} rows are involved)",
    )


def _within_split(frame: pd.DataFrame, *columns: str) -> list[str]:
    """Ids are unique within a split (our tables hold several splits scored alike)."""
    return [*(["split"] if "split" in frame.columns else []), *columns]


def _finite_scores(frame: pd.DataFrame, kind: str, source: str, rows: np.ndarray) -> None:
    """An acquired row (among `rows`) must carry a finite score."""
    bad = rows & ~np.isfinite(frame["score"].to_numpy())
    if bad.any():
        raise _fail(
            source,
            kind,
            f"score is NaN or infinite in {int(bad.sum())} acquired row(s): "
            f"{_where(frame, kind, np.flatnonzero(bad).tolist())}; mark a failure to acquire "
            "with acquired=false instead",
        )


def _check_detection(frame: pd.DataFrame, source: str | None) -> pd.DataFrame:
    frame["label"] = frame["label"].astype(np.int64)
    _finite_scores(frame, _DETECTION, source, frame["acquired"].to_numpy())
    _duplicates(frame, _within_split(frame, "sample_id"), _DETECTION, source, "sample_id", frame)
    bona = (frame["attack_type"].astype(str) == BONA_FIDE).to_numpy()
    wrong = bona != (frame["label"].to_numpy() == 0)
    if wrong.any():
        raise _fail(
            source,
            _DETECTION,
            f"label and attack_type disagree (label 0 is exactly attack_type {BONA_FIDE!r}) at "
            f"{_where(frame, _DETECTION, np.flatnonzero(wrong).tolist())}",
        )
    return frame


def _check_comparison(frame: pd.DataFrame, source: str | None) -> pd.DataFrame:
    """The same pair (in either order) twice is a duplicate, as is a repeated comparison_id."""
    frame["genuine"] = frame["genuine"].astype(bool)
    _finite_scores(frame, _COMPARISON, source, frame["acquired"].to_numpy())
    _duplicates(
        frame, _within_split(frame, "comparison_id"), _COMPARISON, source, "comparison_id", frame
    )
    a, b = frame["sample_id_a"].astype(str), frame["sample_id_b"].astype(str)
    pairs = pd.DataFrame({"first": np.minimum(a, b), "second": np.maximum(a, b)})
    if pairs.duplicated().any():
        dup = np.flatnonzero(pairs.duplicated(keep=False).to_numpy())
        key = pairs.iloc[dup[0]]
        rows = np.flatnonzero((pairs == key).all(axis=1).to_numpy())[:2].tolist()
        raise _fail(
            source,
            _COMPARISON,
            f"the pair ({key['first']!r}, {key['second']!r}) is compared twice: "
            f"{_where(frame, 'comparison', rows)}; every pair is counted once",
        )
    same = (frame["subject_id_a"] == frame["subject_id_b"]).to_numpy()
    wrong = frame["genuine"].to_numpy() != same
    if wrong.any():
        raise _fail(
            source,
            _COMPARISON,
            "genuine disagrees with subject_id_a == subject_id_b at "
            f"{_where(frame, 'comparison', np.flatnonzero(wrong).tolist())}",
        )
    return frame


def _check_search(frame: pd.DataFrame, source: str | None) -> pd.DataFrame:
    """One probe per search, one search per probe and split, ranks 1, 2, 3 ... without
    repeats, scores falling with rank, and no non-mated search returning its own subject."""
    frame["mated"] = frame["mated"].astype(bool)
    acquired = frame["acquired"].to_numpy()
    empty = acquired & frame[["rank", "candidate_subject_id", "score"]].isna().all(axis=1)
    empty = empty.to_numpy()
    key = _within_split(frame, "search_id")
    per_search = frame.groupby(key, sort=False)
    per_probe = ["probe_sample_id", "probe_subject_id", "mated", "acquired"]
    varies = per_search[per_probe].transform("nunique", dropna=False)
    for column in per_probe:
        bad = (varies[column] > 1).to_numpy()
        if bad.any():
            first = frame.loc[bad, key].iloc[0]
            rows = np.flatnonzero((frame[key] == first).all(axis=1).to_numpy()).tolist()
            raise _fail(
                source,
                _SEARCH,
                f"{column} differs within one search (each search has one probe): "
                f"{_where(frame, _SEARCH, rows)}",
            )
    if empty.any():
        alone = empty & (per_search["search_id"].transform("size").to_numpy() == 1)
        if (empty & ~alone).any():
            rows = np.flatnonzero(empty & ~alone).tolist()
            raise _fail(
                source,
                _SEARCH,
                f"an empty candidate row next to candidates at {_where(frame, _SEARCH, rows)}: "
                "an empty candidate list is one row with rank, candidate_subject_id and score "
                "empty",
            )
    candidates = acquired & ~empty
    _finite_scores(frame, _SEARCH, source, candidates)
    ranks = pd.to_numeric(frame["rank"], errors="coerce").to_numpy(np.float64)
    whole = np.isfinite(ranks) & (ranks == np.round(ranks)) & (ranks >= 1)
    if (candidates & ~whole).any():
        rows = np.flatnonzero(candidates & ~whole).tolist()
        raise _fail(
            source, _SEARCH, f"rank must be a whole number >= 1 at {_where(frame, _SEARCH, rows)}"
        )
    got = frame.assign(rank=ranks)[candidates]
    _duplicates(got, [*key, "rank"], _SEARCH, source, "rank", frame)
    searches = frame.drop_duplicates(key)
    probe = _within_split(frame, "probe_sample_id")
    _duplicates(searches, probe, _SEARCH, source, "search of one probe", frame)
    ordered = got.sort_values([*key, "rank"], kind="stable")
    expected = ordered.groupby(key, sort=False).cumcount().to_numpy() + 1
    gaps = ordered.index[ordered["rank"].to_numpy() != expected]
    if len(gaps):
        raise _fail(
            source,
            _SEARCH,
            f"ranks must run 1, 2, 3, ... without gaps at {_where(frame, _SEARCH, list(gaps))}",
        )
    rises = ordered.index[ordered.groupby(key, sort=False)["score"].diff().to_numpy() > 0]
    if len(rises):
        raise _fail(
            source,
            _SEARCH,
            f"score rises with rank at {_where(frame, _SEARCH, list(rises))}: rank 1 must be "
            "the best (highest similarity) candidate",
        )
    own = candidates & ~frame["mated"].to_numpy()
    own &= (frame["candidate_subject_id"] == frame["probe_subject_id"]).to_numpy()
    if own.any():
        raise _fail(
            source,
            _SEARCH,
            f"a non-mated search returns the probe's own subject at "
            f"{_where(frame, _SEARCH, np.flatnonzero(own).tolist())}: it is mated, or the "
            "gallery is not what the table says",
        )
    return frame


DETECTION = register_table(
    TableSchema(
        _DETECTION,
        key="sample_id",
        required=DETECTION_COLUMNS,
        columns={
            **_ids("sample_id", "subject_id", "attack_type"),
            "label": pa.Column(None, pa.Check.isin([0, 1]), nullable=False),
            **_common(),
        },
        check=_check_detection,
    )
)
COMPARISON = register_table(
    TableSchema(
        _COMPARISON,
        key="comparison_id",
        required=COMPARISON_COLUMNS,
        columns={
            **_ids("comparison_id", "sample_id_a", "sample_id_b", "subject_id_a", "subject_id_b"),
            "genuine": _flag("genuine"),
            **_common(),
        },
        check=_check_comparison,
    )
)
SEARCH = register_table(
    TableSchema(
        _SEARCH,
        key="search_id",
        required=SEARCH_COLUMNS,
        columns={
            **_ids("search_id", "probe_sample_id", "probe_subject_id"),
            "mated": _flag("mated"),
            "rank": pa.Column(None, nullable=True),
            "candidate_subject_id": pa.Column(None, nullable=True),
            **_common(),
        },
        check=_check_search,
    )
)


def validate_detection_table(table: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """A detection table checked against the contract (module docstring), normalised."""
    return DETECTION.validate(table, source)


def validate_comparison_table(table: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """A comparison table checked against the contract (module docstring), normalised."""
    return COMPARISON.validate(table, source)


def validate_search_table(table: pd.DataFrame, source: str | None = None) -> pd.DataFrame:
    """A search table checked against the contract (module docstring), normalised."""
    return SEARCH.validate(table, source)


# ------------------------------------------------------------------------------------ reading


def read_table(path: str | os.PathLike, kind: str) -> pd.DataFrame:
    """A score table of the schema `kind` (registered: 'detection', 'comparison', 'search',
    ...) from a Parquet or CSV file, validated; `frame.attrs["source"]` is the file (named in
    every later error)."""
    schema = table_schema(kind)
    file = Path(path)
    if not file.is_file():
        raise ScoreTableError(f"{file}: {kind} score table not found")
    suffix = file.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(file)
        elif suffix == ".csv":
            frame = pd.read_csv(file)
        else:
            raise ScoreTableError(
                f"{file}: unsupported score table type {suffix!r} (use .parquet or .csv)"
            )
    except ScoreTableError:
        raise
    except Exception as err:  # pyarrow / the CSV parser raise many types for a damaged file
        raise ScoreTableError(f"{file}: not a readable {suffix} file ({err})") from err
    table = schema.validate(frame, str(file))
    table.attrs["source"] = str(file)
    return table


def read_detection_table(path: str | os.PathLike) -> pd.DataFrame:
    return read_table(path, _DETECTION)


def read_comparison_table(path: str | os.PathLike) -> pd.DataFrame:
    return read_table(path, _COMPARISON)


def read_search_table(path: str | os.PathLike) -> pd.DataFrame:
    return read_table(path, _SEARCH)


def require_columns(table: pd.DataFrame, columns: Sequence[str], purpose: str) -> None:
    """An error naming the table's source when `columns` (needed for `purpose`) are absent."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        source = table.attrs.get("source", "score table")
        raise ScoreTableError(
            f"{source}: {purpose} needs column(s) {missing} (columns: "
            f"{sorted(map(str, table.columns))})"
        )


def require_splits(table: pd.DataFrame, splits: Sequence[str], purpose: str) -> None:
    """An error naming the table's source when one of `splits` has no rows."""
    require_columns(table, ["split"], purpose)
    present = sorted(map(str, table["split"].unique()))
    absent = [s for s in splits if s not in present]
    if absent:
        source = table.attrs.get("source", "score table")
        raise ScoreTableError(
            f"{source}: {purpose} needs rows of split(s) {absent} (splits present: {present})"
        )
