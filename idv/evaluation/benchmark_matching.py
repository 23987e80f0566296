"""Vendor benchmark for matching tasks: 1:1 comparison files and 1:N search files judged on the
owned protocol, side by side with ours, as `benchmark` judges detection files.

The owned items are rebuilt from the manifest split exactly as idv-evaluate builds them (same
functions, same task `protocols` block, same seed), so a vendor is judged on the very pairs and
the very enrolment list our own tables were scored on:

- comparison (1:1): `comparison_pairs(split, protocol, max_impostors=, seed=)`; one item per
  comparison. A vendor comparison file has one row per comparison it answered: `comparison_id`
  (the owned id) or the pair `sample_id_a`, `sample_id_b` (in either order), `provider`, a
  `score` (a similarity: higher = more alike) and / or a `decision` (`match` / `non_match`, or
  1 / 0), optionally `acquired` (False = the provider declared a failure), `latency_ms`, `cost`.
- search (1:N): `search_protocol(split, enrolled_fraction=, seed=)`: its gallery is the
  enrolment list (one selfie per enrolled subject), its probes are the items. A vendor search
  file has one row per returned candidate: `probe_sample_id`, `provider`, `rank` (1 = best),
  `candidate_subject_id` (an enrolled subject), `score` (a similarity, falling with rank),
  optionally `acquired`, `latency_ms`, `cost` (per probe, repeated on its rows). A search that
  returned nothing is one row with rank, candidate and score empty.

Labels (genuine, mated), subjects and segments come from the manifest, never from a vendor
file. Every provider is aligned on every owned item; an item a provider did not answer is a
failure to acquire (ISO/IEC 19795-1's generalised rates): a comparison becomes a non-match
(similarity -inf: it raises FNMR when genuine and is never a false match), a search returns
nothing (a miss when mated, no false positive when not). Coverage is reported next to every
rate. Intervals resample probe subjects (`subject_id_b`; the probe's subject in 1:N), and
every provider is compared with the reference by a paired subject bootstrap on the same rows
(McNemar on paired decisions / rank-1 hits).

Score direction: a provider whose scores are distances declares `score_direction:
higher_is_different` (file metadata, CSV side-car or config, as for detection), optionally with
its `score_range`; its scores are flipped (lo + hi - s, or -s without a range), which keeps
every rate. A declared `score_range` is checked; without one, any finite score is accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from idv.data.comparisons import COMPARISON_PROTOCOLS, comparison_pairs, search_protocol
from idv.evaluation.benchmark import (
    _COMPARISON_COLUMNS,
    OURS,
    OVERALL,
    AlignedProvider,
    BenchmarkResult,
    _acquired,
    _Bootstrap,
    _comparison_row,
    _first,
    _latency_cost,
    _mcnemar,
    _merge,
    _numeric,
    _put,
    _row_error,
    _sources,
    declared_options,
    require_rows,
)
from idv.metrics.bootstrap import (
    Interval,
    bootstrap_curve,
    bootstrap_rate,
    eer_statistic,
    fnmr_at_fmr_statistic,
    paired_bootstrap_difference,
    paired_rate_difference,
)
from idv.metrics.identification import searches
from idv.metrics.resolution import NotSupported, check_resolution, count_subjects
from idv.score_tables import validate_comparison_table, validate_search_table

log = logging.getLogger(__name__)

HIGHER_IS_SIMILAR = "higher_is_similar"
HIGHER_IS_DIFFERENT = "higher_is_different"
MATCHING_DIRECTIONS = (HIGHER_IS_SIMILAR, HIGHER_IS_DIFFERENT)
MODES = ("comparison", "search")
_MATCH = {
    **dict.fromkeys(("match", "1", "1.0", "true"), 1.0),
    **dict.fromkeys(("non_match", "nonmatch", "non-match", "no_match", "0", "0.0", "false"), 0.0),
}
_PAIR_KEYS = ("sample_id_a", "sample_id_b")
_SEARCH_KEYS = ("probe_sample_id", "rank")
_SEARCH_COLUMNS = ("probe_sample_id", "rank", "candidate_subject_id", "score")


def fnmr_key(target: float) -> str:
    """`fnmr_at_fmr_1e-03`: the key of verification_report."""
    return f"fnmr_at_fmr_{target:.0e}"


def fnir_key(target: float) -> str:
    """`fnir_at_fpir_1e-02`: the key of identification_report."""
    return f"fnir_at_fpir_{target:.0e}"


# ----------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class MatchingOptions:
    """How to read one provider's matching scores: similarities (default) or distances, and
    their declared range (None: not checked)."""

    score_direction: str = HIGHER_IS_SIMILAR
    score_range: tuple[float, float] | None = None

    def similarities(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores as similarities (higher = more alike), order kept or reversed."""
        if self.score_direction == HIGHER_IS_SIMILAR:
            return raw
        if self.score_range is None:
            return -raw
        lo, hi = self.score_range
        return lo + hi - raw


def matching_options(
    provider: str,
    source: str,
    declared: Mapping[str, object] | None = None,
    configured: Mapping[str, object] | None = None,
) -> MatchingOptions:
    """Options from the file's declarations and the config (a conflict is an error)."""
    merged = declared_options(provider, source, declared, configured)
    direction = merged.get("score_direction", HIGHER_IS_SIMILAR)
    if direction not in MATCHING_DIRECTIONS:
        raise ValueError(
            f"{source}: provider {provider!r}: score_direction {direction!r} is not one of "
            f"{MATCHING_DIRECTIONS} (matching scores are similarities or distances)"
        )
    return MatchingOptions(str(direction), merged.get("score_range"))


@dataclass
class AlignedSearches:
    """One provider's searches on the owned probes (arrays in owned probe order).

    `answered` is False for a failure to acquire (no row, or `acquired = False`); per probe,
    `top_score` is the best candidate's similarity (-inf when nothing was returned or
    unanswered), `mate_rank` the mate's rank (inf when absent) and `mate_score` its
    similarity (-inf when absent), as `idv.metrics.identification.searches` reduces them.
    """

    name: str
    sources: list[str]
    present: np.ndarray
    answered: np.ndarray
    top_score: np.ndarray
    mate_rank: np.ndarray
    mate_score: np.ndarray
    returned: np.ndarray
    latency_ms: np.ndarray
    cost: np.ndarray
    has_latency: bool = False
    has_cost: bool = False
    options: MatchingOptions = field(default_factory=MatchingOptions)

    def search_scores(self, mated: np.ndarray) -> np.ndarray:
        """One score per search: the mate's for mated searches, the top one for non-mated
        ones. FNIR(T) is then the share of mated below T and FPIR(T) the share of non-mated
        at or above T: FNIR at an FPIR target is FNMR at an FMR target with label = mated."""
        return np.where(mated, self.mate_score, self.top_score)

    def rank_1_hits(self) -> np.ndarray:
        return (self.mate_rank <= 1).astype(np.float64)


# ------------------------------------------------------------------------------ owned items


def _split_frame(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The split's rows in manifest order (as `Manifest.split`, what idv-evaluate scores)."""
    missing = [c for c in ("sample_id", "subject_id", "split") if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest: missing required column(s) {missing}")
    frame = manifest[manifest["split"] == split].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"manifest: split {split!r} is empty; nothing to benchmark on")
    if frame["sample_id"].duplicated().any():
        row = _first(frame["sample_id"].duplicated().to_numpy())
        raise ValueError(f"manifest: duplicate sample_id {frame['sample_id'].iloc[row]!r}")
    return frame


def owned_comparisons(
    manifest: pd.DataFrame,
    split: str,
    protocol: str,
    *,
    max_impostors: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The owned comparisons of `protocol` on `split` (idv-evaluate's, given its seed): what a
    vendor must be sent to compare, and what it is judged on."""
    if protocol not in COMPARISON_PROTOCOLS:
        raise ValueError(
            f"unknown comparison protocol {protocol!r}; expected one of {COMPARISON_PROTOCOLS}"
        )
    try:
        pairs = comparison_pairs(
            _split_frame(manifest, split), protocol, max_impostors=max_impostors, seed=seed
        )
    except KeyError as err:
        raise ValueError(f"manifest: {err.args[0]}") from None
    genuine = pairs["genuine"].to_numpy(bool)
    if genuine.all() or not genuine.any():
        raise ValueError(
            f"protocol {protocol!r} on split {split!r} has {int(genuine.sum())} genuine and "
            f"{int((~genuine).sum())} impostor comparisons: a 1:1 benchmark needs both"
        )
    return pairs


def owned_searches(
    manifest: pd.DataFrame, split: str, *, enrolled_fraction: float, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gallery, probes) of the owned 1:N protocol on `split` (idv-evaluate's, given its seed):
    the enrolment list a vendor must enrol (one selfie per subject) and the probes it must
    search; `probes` carries `mated`."""
    protocol = search_protocol(
        _split_frame(manifest, split), enrolled_fraction=enrolled_fraction, seed=seed
    )
    mated = protocol.probes["mated"].to_numpy(bool)
    if mated.all() or not mated.any():
        raise ValueError(
            f"the 1:N protocol on split {split!r} has {int(mated.sum())} mated and "
            f"{int((~mated).sum())} non-mated probes: a 1:N benchmark needs both"
        )
    return protocol.gallery, protocol.probes


# -------------------------------------------------------------------------- shared checks


def _provider_names(source: str, frame: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    if "provider" in frame.columns:
        missing = frame["provider"].isna().to_numpy()
        if missing.any():
            raise _row_error(source, frame, _first(missing), "provider is empty", keys)
        return frame["provider"].astype(str).to_numpy()
    return np.full(len(frame), Path(source).stem, dtype=object)


def _where_is(sample: str, split_of: Mapping[str, str], split: str) -> str:
    elsewhere = split_of.get(sample)
    if elsewhere is None:
        return f"sample {sample!r} is not in the manifest"
    if elsewhere != split:
        return f"sample {sample!r} belongs to split {elsewhere!r}"
    return ""


def _scores(
    source: str,
    frame: pd.DataFrame,
    raw: np.ndarray,
    rows: np.ndarray,
    name: str,
    options: MatchingOptions,
    keys: Sequence[str],
) -> np.ndarray:
    """Similarities of the answered `rows`: finite, within a declared range, flipped for
    distances. Other rows are NaN."""
    values = raw[rows]
    bad = ~np.isfinite(values)
    if bad.any():
        raise _row_error(
            source,
            frame,
            int(rows[_first(bad)]),
            f"provider {name!r}: score {float(values[_first(bad)])!r} in an answered row; "
            "mark a failure to acquire with acquired=False or leave the row out",
            keys,
        )
    if options.score_range is not None:
        lo, hi = options.score_range
        out = (values < lo) | (values > hi)
        if out.any():
            i = int(rows[_first(out)])
            raise _row_error(
                source,
                frame,
                i,
                f"provider {name!r}: score {float(raw[i])!r} outside the declared range "
                f"[{lo:g}, {hi:g}]",
                keys,
            )
    out = np.full(len(raw), np.nan)
    out[rows] = options.similarities(values)
    return out


def _duplicate_check(
    source: str,
    frame: pd.DataFrame,
    names: np.ndarray,
    positions: np.ndarray,
    what: str,
    keys: Sequence[str],
) -> None:
    dup = pd.DataFrame({"p": names, "s": positions}).duplicated(keep="first").to_numpy()
    if dup.any():
        i = _first(dup)
        first = _first((names == names[i]) & (positions == positions[i]))
        raise _row_error(
            source,
            frame,
            i,
            f"duplicate {what} for provider {names[i]!r} (first seen at row {first}); every "
            f"{what} is counted once",
            keys,
        )


def _resolution(
    targets: Sequence[float], n_trials: int, n_subjects: int, min_subjects: int, key
) -> dict[str, NotSupported | None]:
    return {key(t): check_resolution(t, n_trials, n_subjects, min_subjects) for t in targets}


def _curve(
    scores: np.ndarray | None,
    labels: np.ndarray,
    subjects: np.ndarray,
    statistic,
    boot: _Bootstrap,
) -> Interval | None:
    if scores is None:
        return None
    return bootstrap_curve(scores, labels, subjects, statistic, **boot.kwargs())


def _views(
    owned: pd.DataFrame, segments: Sequence[str], notes: list[str], what: str
) -> list[tuple[str, str, np.ndarray]]:
    views: list[tuple[str, str, np.ndarray]] = [(OVERALL, OVERALL, np.ones(len(owned), bool))]
    for column in segments:
        if column not in owned.columns:
            notes.append(f"Segment column `{column}` is not among the {what}'s columns: skipped.")
            log.warning("segment column %r not available; skipped", column)
            continue
        for group in sorted(owned[column].dropna().unique(), key=str):
            views.append((column, str(group), (owned[column] == group).to_numpy()))
    return views


def _reference(
    reference: str | None, names: Iterable[str], ours_given: bool, notes: list[str]
) -> str | None:
    names = sorted(names)
    if reference is not None and reference not in names:
        if reference == OURS and not ours_given:
            notes.append("No score table of ours given: no paired comparison against `ours`.")
            return None
        raise ValueError(f"reference provider {reference!r} is not among the providers {names}")
    return reference


def _unresolved_notes(
    unresolved: Mapping[tuple[str, str], Mapping[str, NotSupported | None]],
    notes: list[str],
    items: str,
) -> None:
    """One note per operating point the overall view cannot resolve, one for the segments."""
    for key, verdict in unresolved.get((OVERALL, OVERALL), {}).items():
        if verdict is not None:
            notes.append(f"`{key}` not resolved by the owned {items} (NaN): {verdict.reason}.")
    overall = unresolved.get((OVERALL, OVERALL), {})
    per_segment: dict[tuple[str, str], list[str]] = {}
    for (column, group), found in unresolved.items():
        for key, verdict in found.items():
            if column != OVERALL and verdict is not None and overall.get(key) is None:
                per_segment.setdefault((key, column), []).append(group)
    if per_segment:
        shown = "; ".join(f"`{k}` in {c} {', '.join(g)}" for (k, c), g in per_segment.items())
        notes.append(f"Not resolved within these segment groups (NaN there): {shown}.")


def _check_options(options: Mapping[str, object], names: Iterable[str]) -> None:
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValueError(
            f"config providers {unknown} match no provider in the files "
            f"(providers: {sorted(names)})"
        )


# ------------------------------------------------------------------------ 1:1 comparisons


def _pair_keys(a: pd.Series, b: pd.Series) -> pd.Index:
    """Unordered pair keys: (x, y) and (y, x) are one comparison."""
    a = pd.Series(a.astype(str).to_numpy(), dtype=object)
    b = pd.Series(b.astype(str).to_numpy(), dtype=object)
    first = a <= b
    low, high = a.where(first, b), b.where(first, a)
    return pd.Index(low + "\x1f" + high)


def _match_decisions(
    source: str, frame: pd.DataFrame, rows: np.ndarray, keys: Sequence[str]
) -> np.ndarray:
    text = frame["decision"].iloc[rows].map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
    parsed = text.map(_MATCH).to_numpy(dtype=np.float64)
    bad = np.isnan(parsed)
    if bad.any():
        i = int(rows[_first(bad)])
        raise _row_error(
            source,
            frame,
            i,
            f"decision {frame['decision'].iloc[i]!r} not understood; use 'match' / "
            "'non_match' or 1 / 0 (1 = match), or acquired=False for no answer",
            keys,
        )
    return parsed


def align_comparison_source(
    owned: pd.DataFrame,
    frame: pd.DataFrame,
    source: str,
    options: Mapping[str, Mapping[str, object]] | None = None,
    split_of: Mapping[str, str] | None = None,
    described: str = "the owned protocol",
) -> list[AlignedProvider]:
    """Validate one vendor comparison file against the owned comparisons and align each of
    its providers (`split_of`: sample_id -> split of the whole manifest, to say where a stray
    sample belongs; `described`: the owned protocol, for messages)."""
    require_rows(source, frame)
    frame = frame.reset_index(drop=True)
    by_id = "comparison_id" in frame.columns
    has_pair = all(c in frame.columns for c in _PAIR_KEYS)
    if not by_id and not has_pair:
        raise ValueError(
            f"{source}: neither a 'comparison_id' column nor the pair 'sample_id_a', "
            f"'sample_id_b' (columns: {list(frame.columns)}): a comparison file names each "
            "comparison by one or the other"
        )
    if "score" not in frame.columns and "decision" not in frame.columns:
        raise ValueError(
            f"{source}: neither a 'score' nor a 'decision' column (columns: "
            f"{list(frame.columns)}); a vendor file needs at least one"
        )
    keys = ("comparison_id",) if by_id else _PAIR_KEYS
    names = _provider_names(source, frame, keys)
    if by_id:
        missing = frame["comparison_id"].isna().to_numpy()
        if missing.any():
            raise _row_error(source, frame, _first(missing), "comparison_id is empty", keys)
        index = pd.Index(owned["comparison_id"].astype(str))
        positions = index.get_indexer(frame["comparison_id"].astype(str))
    else:
        missing = frame[list(_PAIR_KEYS)].isna().any(axis=1).to_numpy()
        if missing.any():
            raise _row_error(source, frame, _first(missing), "sample_id_a or _b is empty", keys)
        index = _pair_keys(owned["sample_id_a"], owned["sample_id_b"])
        positions = index.get_indexer(_pair_keys(frame["sample_id_a"], frame["sample_id_b"]))
    unknown = positions < 0
    if unknown.any():
        i = _first(unknown)
        reasons = []
        given = str(frame["comparison_id"].iloc[i]) if by_id else ""
        other = [p for p in COMPARISON_PROTOCOLS if given.startswith(f"{p}:")]
        if other and not str(owned["comparison_id"].iloc[0]).startswith(f"{other[0]}:"):
            reasons.append(f"a {other[0]} comparison: judge those with protocol {other[0]}")
        if has_pair:
            split = str(owned.attrs.get("split", ""))
            for column in _PAIR_KEYS:
                reason = _where_is(str(frame[column].iloc[i]), split_of or {}, split)
                if reason:
                    reasons.append(reason)
        what = "unknown comparison_id" if by_id else "unknown pair"
        why = f" ({'; '.join(reasons)})" if reasons else ""
        raise _row_error(
            source,
            frame,
            i,
            f"{what}{why}: not one of the {len(owned)} comparisons of {described}; vendor "
            "files may answer only the owned comparisons",
            keys,
        )
    if by_id and has_pair:  # both given: they must name the same comparison
        given = _pair_keys(frame["sample_id_a"], frame["sample_id_b"])
        wrong = (
            given.to_numpy()
            != _pair_keys(owned["sample_id_a"], owned["sample_id_b"])[positions].to_numpy()
        )
        if wrong.any():
            i = _first(wrong)
            o = owned.iloc[positions[i]]
            raise _row_error(
                source,
                frame,
                i,
                f"comparison_id names the pair ({o['sample_id_a']!r}, {o['sample_id_b']!r}) "
                f"in {described}, but the row gives ({frame['sample_id_a'].iloc[i]!r}, "
                f"{frame['sample_id_b'].iloc[i]!r})",
                keys,
            )
    _duplicate_check(source, frame, names, positions, "comparison", keys)

    acquired = _acquired(source, frame, keys)
    score = _numeric(source, frame, "score", keys) if "score" in frame.columns else None
    latency = _numeric(source, frame, "latency_ms", keys) if "latency_ms" in frame else None
    cost = _numeric(source, frame, "cost", keys) if "cost" in frame.columns else None
    declared = {k: v for k, v in frame.attrs.items() if k in ("score_direction", "score_range")}
    n = len(owned)
    aligned = []
    for name in dict.fromkeys(names):
        rows = np.flatnonzero(names == name)
        opts = matching_options(name, source, declared, (options or {}).get(name))
        answered_rows = rows[acquired[rows]]
        has_scores = score is not None and bool(np.isfinite(score[rows]).any())
        has_decisions = "decision" in frame.columns and bool(
            frame["decision"].iloc[rows].notna().any()
        )
        if not has_scores and not has_decisions:
            raise ValueError(
                f"{source}: provider {name!r} has neither a score nor a decision in any row"
            )
        present, answered = np.zeros(n, bool), np.zeros(n, bool)
        present[positions[rows]] = True
        answered[positions[answered_rows]] = True
        scores = decisions = None
        if has_scores:
            similar = _scores(source, frame, score, answered_rows, name, opts, keys)
            scores = np.full(n, np.nan)
            scores[positions[answered_rows]] = similar[answered_rows]
        if has_decisions:
            decisions = np.full(n, np.nan)
            decisions[positions[answered_rows]] = _match_decisions(
                source, frame, answered_rows, keys
            )
        lat, cst = np.full(n, np.nan), np.full(n, np.nan)
        if latency is not None:
            lat[positions[rows]] = latency[rows]
        if cost is not None:
            cst[positions[rows]] = cost[rows]
        aligned.append(
            AlignedProvider(
                name=name,
                sources=[source],
                present=present,
                answered=answered,
                scores=scores,
                decisions=decisions,
                latency_ms=lat,
                cost=cst,
                has_latency=latency is not None,
                has_cost=cost is not None,
                options=opts,  # type: ignore[arg-type]
            )
        )
    return aligned


def _ours_comparisons(
    ours: pd.DataFrame, owned: pd.DataFrame, split: str, protocol: str, described: str
) -> pd.DataFrame:
    """Our comparison table on the split and protocol, checked to hold exactly the owned
    comparisons (same ids, same pairs, same labels), as a vendor-format frame."""
    source = ours.attrs.get("source", OURS)
    table = validate_comparison_table(ours, source)
    if "split" in table.columns:
        table = table[table["split"] == split]
    if "protocol" in table.columns:
        present = sorted(map(str, table["protocol"].unique()))
        table = table[table["protocol"] == protocol]
        if table.empty:
            raise ValueError(
                f"{source}: no comparisons of protocol {protocol!r} in split {split!r} "
                f"(protocols there: {present})"
            )
    table = table.reset_index(drop=True)
    if table.empty:
        raise ValueError(f"{source}: no comparisons of split {split!r}")
    ids = table["comparison_id"].astype(str)
    owned_ids = owned["comparison_id"].astype(str)
    extra = sorted(set(ids) - set(owned_ids))
    lacking = sorted(set(owned_ids) - set(ids))
    moved = np.array([], dtype=object)
    relabelled = np.array([], dtype=object)
    if not extra:
        at = pd.Index(owned_ids).get_indexer(ids)
        mine = _pair_keys(table["sample_id_a"], table["sample_id_b"]).to_numpy()
        theirs = _pair_keys(owned["sample_id_a"], owned["sample_id_b"]).to_numpy()[at]
        moved = ids.to_numpy()[mine != theirs]
        genuine = owned["genuine"].to_numpy(bool)[at]
        relabelled = ids.to_numpy()[table["genuine"].to_numpy(bool) != genuine]
    if extra or lacking or len(moved) or len(relabelled):
        parts = []
        if extra:
            parts.append(f"{len(extra)} comparisons not in the owned set (e.g. {extra[:3]})")
        if lacking:
            parts.append(f"{len(lacking)} owned comparisons missing (e.g. {lacking[:3]})")
        if len(moved):
            parts.append(f"{len(moved)} ids naming another pair (e.g. {moved[:3].tolist()})")
        if len(relabelled):
            parts.append(f"{len(relabelled)} with another genuine flag")
        raise ValueError(
            f"{source}: our table does not hold exactly the {len(owned)} comparisons of "
            f"{described}: {'; '.join(parts)}. Was it scored on another protocol, seed "
            "(idv-evaluate's `seed` must equal this `seed`), max_impostors or manifest?"
        )
    keep = ["comparison_id", "sample_id_a", "sample_id_b", "score", "acquired"]
    keep += [c for c in ("latency_ms", "cost") if c in table.columns]
    out = table[keep].assign(provider=OURS)
    out.attrs["source"] = source
    return out


def _comparison_provider_row(
    p: AlignedProvider,
    owned: pd.DataFrame,
    view: np.ndarray,
    fmr_targets: Sequence[float],
    resolved: Mapping[str, NotSupported | None],
    boot: _Bootstrap,
    min_subjects: int,
) -> dict:
    genuine = owned["genuine"].to_numpy(bool)[view]
    subjects = owned["subject_id_b"].astype(str).to_numpy()[view]
    answered = p.answered[view]
    n_gen_subj = len(set(subjects[genuine]))
    n_imp_subj = len(set(subjects[~genuine]))
    row: dict[str, object] = {
        "items": int(view.sum()),
        "answered": int(answered.sum()),
        "coverage": float(answered.mean()),
        "coverage_genuine": float(answered[genuine].mean()) if genuine.any() else np.nan,
        "coverage_impostor": float(answered[~genuine].mean()) if (~genuine).any() else np.nan,
        "genuine_comparisons": int(genuine.sum()),
        "impostor_comparisons": int((~genuine).sum()),
        "probe_subjects": len(set(subjects)),
        "genuine_probe_subjects": n_gen_subj,
        "impostor_probe_subjects": n_imp_subj,
        "too_small": min(n_gen_subj, n_imp_subj) < min_subjects,
        "has_scores": p.has_scores,
        "has_decisions": p.has_decisions,
    }
    resamplable = len(set(subjects)) >= 2
    curve_ok = p.has_scores and genuine.any() and (~genuine).any() and resamplable
    labels = genuine.astype(np.int64)
    scores = generalised_comparison_scores(p)[view] if curve_ok else None
    _put(row, "eer", _curve(scores, labels, subjects, eer_statistic, boot))
    for target in fmr_targets:
        key = fnmr_key(target)
        ok = scores is not None and resolved.get(key) is None
        stat = fnmr_at_fmr_statistic(target)
        _put(row, key, _curve(scores if ok else None, labels, subjects, stat, boot))
    errors = None
    if p.has_decisions and resamplable:
        errors = decision_errors(p, owned["genuine"].to_numpy(bool))[view]
    for key, where in (("fnmr@decision", genuine), ("fmr@decision", ~genuine)):
        interval = None
        if errors is not None and where.any():
            interval = bootstrap_rate(errors, subjects, where=where, **boot.kwargs())
        _put(row, key, interval)
    _latency_cost(row, p, view)
    return row


def generalised_comparison_scores(p: AlignedProvider) -> np.ndarray:
    """Similarities with every failure to acquire at -inf: a non-match at any threshold."""
    return np.where(p.answered, p.scores, -np.inf)


def decision_errors(p: AlignedProvider, genuine: np.ndarray) -> np.ndarray:
    """1.0 where the decision is wrong: a genuine comparison not matched (an unanswered one
    included), an impostor matched (an unanswered one never is)."""
    decided = np.where(p.answered, p.decisions, 0.0)
    return np.where(genuine, decided == 0, decided == 1).astype(np.float64)


def compare_comparisons(
    reference: AlignedProvider,
    candidate: AlignedProvider,
    owned: pd.DataFrame,
    fmr_targets: Sequence[float],
    resolved: Mapping[str, NotSupported | None],
    boot: _Bootstrap,
) -> list[dict]:
    """Paired tests of `candidate` - `reference` on the same owned comparisons (every metric
    is an error rate: a positive difference means the candidate is worse)."""
    genuine = owned["genuine"].to_numpy(bool)
    labels = genuine.astype(np.int64)
    subjects = owned["subject_id_b"].astype(str).to_numpy()
    rows = []
    if reference.has_scores and candidate.has_scores:
        a, b = generalised_comparison_scores(reference), generalised_comparison_scores(candidate)
        metrics = [("eer", eer_statistic)]
        metrics += [
            (fnmr_key(t), fnmr_at_fmr_statistic(t))
            for t in fmr_targets
            if resolved.get(fnmr_key(t)) is None
        ]
        for metric, statistic in metrics:
            interval = paired_bootstrap_difference(
                a, b, labels, subjects, statistic, **boot.kwargs()
            )
            rows.append(
                _comparison_row(
                    candidate.name, reference.name, metric, "paired subject bootstrap", interval
                )
            )
    if reference.has_decisions and candidate.has_decisions:
        errs = [decision_errors(p, genuine) for p in (reference, candidate)]
        method = "paired subject bootstrap + McNemar"
        for metric, where in (("fnmr@decision", genuine), ("fmr@decision", ~genuine)):
            interval = paired_rate_difference(
                errs[0], errs[1], subjects, where=where, **boot.kwargs()
            )
            mc = _mcnemar(errs[0][where], errs[1][where])
            rows.append(
                _comparison_row(candidate.name, reference.name, metric, method, interval, mc)
            )
    return rows


def benchmark_comparisons(
    manifest_frame: pd.DataFrame,
    vendor_frames: Mapping[str, pd.DataFrame] | Iterable[pd.DataFrame],
    *,
    ours: pd.DataFrame | None = None,
    split: str = "test",
    protocol: str = "portrait_selfie",
    max_impostors: int | None = None,
    protocol_seed: int = 0,
    reference: str | None = OURS,
    providers: Mapping[str, Mapping[str, object]] | None = None,
    segments: Sequence[str] = ("geography",),
    fmr_targets: Sequence[float] = (1e-2, 1e-3, 1e-4),
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_subjects: int = 10,
) -> BenchmarkResult:
    """Judge every provider's 1:1 comparisons on the owned `protocol` comparisons of `split`
    (rebuilt with `max_impostors` and `seed`: idv-evaluate's), side by side.

    `vendor_frames` and `providers` as for `benchmark`; `ours`: our comparison table (any
    splits and protocols: the split's `protocol` rows are used, and must be exactly the owned
    comparisons), entered as provider "ours". `protocol_seed` builds the protocol (it must be
    idv-evaluate's `seed`), `seed` draws the bootstrap resamples (as in `benchmark`).
    """
    owned = owned_comparisons(
        manifest_frame, split, protocol, max_impostors=max_impostors, seed=protocol_seed
    )
    owned.attrs["split"] = split
    described = (
        f"protocol {protocol!r} on split {split!r} (max_impostors={max_impostors}, "
        f"seed={protocol_seed})"
    )
    split_of = dict(
        zip(manifest_frame["sample_id"].astype(str), manifest_frame["split"], strict=True)
    )
    options = dict(providers or {})
    parts: dict[str, list[AlignedProvider]] = {}
    if ours is not None:
        frame = _ours_comparisons(ours, owned, split, protocol, described)
        for part in align_comparison_source(
            owned, frame, frame.attrs["source"], options, split_of, described
        ):
            parts.setdefault(part.name, []).append(part)
    for source, frame in _sources(vendor_frames):
        for part in align_comparison_source(owned, frame, source, options, split_of, described):
            if part.name == OURS:
                raise ValueError(
                    f"{source}: provider name {OURS!r} is reserved for our own score table"
                )
            parts.setdefault(part.name, []).append(part)
    if not parts:
        raise ValueError("nothing to benchmark: no vendor file and no score table of ours")
    _check_options(options, parts)
    aligned = {name: _merge(p, owned, "comparison_id") for name, p in parts.items()}
    notes: list[str] = []
    reference = _reference(reference, aligned, ours is not None, notes)
    order = sorted(aligned, key=lambda n: (n != reference, n))
    boot = _Bootstrap(int(n_resamples), int(seed), float(level))

    genuine_all = owned["genuine"].to_numpy(bool)
    pairs = owned[["subject_id_a", "subject_id_b"]].astype(str).to_numpy(dtype=object)
    rows, unresolved = [], {}
    for column, group, view in _views(owned, segments, notes, "comparisons' probe"):
        impostors = view & ~genuine_all
        resolved = _resolution(
            fmr_targets,
            int(impostors.sum()),
            count_subjects(pairs, impostors),
            min_subjects,
            fnmr_key,
        )
        unresolved[(column, group)] = resolved
        for name in order:
            row = {"provider": name, "segment": column, "group": group}
            row.update(
                _comparison_provider_row(
                    aligned[name], owned, view, fmr_targets, resolved, boot, min_subjects
                )
            )
            rows.append(row)
    overall = unresolved[(OVERALL, OVERALL)]
    comparisons = []
    if reference is not None:
        for name in order[1:]:
            found = compare_comparisons(
                aligned[reference], aligned[name], owned, fmr_targets, overall, boot
            )
            if not found:
                notes.append(
                    f"`{name}` and `{reference}` share no kind of output (scores / decisions): "
                    "no paired comparison."
                )
            comparisons.extend(found)
    _unresolved_notes(unresolved, notes, "impostor comparisons")
    n_unanswered = {n: int((~p.answered).sum()) for n, p in aligned.items()}
    notes.insert(
        0,
        f"Split `{split}`, 1:1 protocol `{protocol}` (max_impostors={max_impostors}, seed "
        f"{protocol_seed}): {len(owned)} owned comparisons ({int(genuine_all.sum())} genuine, "
        f"{int((~genuine_all).sum())} impostor) of {owned['subject_id_b'].nunique()} probe "
        f"subjects; scores are similarities (higher = more alike); {boot.level:.0%} "
        f"probe-subject bootstrap intervals ({boot.n_resamples} resamples, seed {boot.seed}). "
        "Unanswered comparisons are failures to acquire, i.e. non-matches (a genuine one "
        f"raises FNMR, an impostor one is never a false match); unanswered per provider: "
        f"{n_unanswered}.",
    )
    return BenchmarkResult(
        providers=pd.DataFrame(rows),
        comparisons=pd.DataFrame(comparisons, columns=_COMPARISON_COLUMNS),
        table=_comparison_long_table(owned, aligned, order),
        split=split,
        reference=reference,
        notes=notes,
        mode="comparison",
    )


def _comparison_long_table(
    owned: pd.DataFrame, aligned: Mapping[str, AlignedProvider], order: Sequence[str]
) -> pd.DataFrame:
    frames = []
    for name in order:
        p = aligned[name]
        frames.append(
            owned.assign(
                provider=name,
                answered=p.answered,
                score=p.scores if p.has_scores else np.nan,
                decision=p.decisions if p.has_decisions else np.nan,
                latency_ms=p.latency_ms,
                cost=p.cost,
            )
        )
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- 1:N searches


def align_search_source(
    probes: pd.DataFrame,
    gallery: pd.DataFrame,
    frame: pd.DataFrame,
    source: str,
    options: Mapping[str, Mapping[str, object]] | None = None,
    split_of: Mapping[str, str] | None = None,
    described: str = "the owned 1:N protocol",
) -> list[AlignedSearches]:
    """Validate one vendor search file against the owned probes and enrolment list, and align
    each of its providers: the rows become a full search table (the owned probe's subject and
    mated flag joined) checked by `validate_search_table`, reduced by `searches`."""
    require_rows(source, frame)
    frame = frame.reset_index(drop=True)
    keys = _SEARCH_KEYS
    missing = [c for c in _SEARCH_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: a search file lacks column(s) {missing} (columns: "
            f"{list(frame.columns)}); one row per returned candidate: probe_sample_id, "
            "provider, rank, candidate_subject_id, score[, acquired, latency_ms, cost]"
        )
    names = _provider_names(source, frame, keys)
    empty_probe = frame["probe_sample_id"].isna().to_numpy()
    if empty_probe.any():
        raise _row_error(source, frame, _first(empty_probe), "probe_sample_id is empty", keys)
    probe_ids = frame["probe_sample_id"].astype(str)
    positions = pd.Index(probes["sample_id"].astype(str)).get_indexer(probe_ids)
    unknown = positions < 0
    if unknown.any():
        i = _first(unknown)
        sample = probe_ids.iloc[i]
        split = str(probes.attrs.get("split", ""))
        if sample in set(gallery["sample_id"].astype(str)):
            why = "it is an enrolment sample of the gallery, not a probe"
        else:
            why = _where_is(sample, split_of or {}, split) or "not a probe (a selfie) of the split"
        raise _row_error(
            source,
            frame,
            i,
            f"unknown probe ({why}): not one of the {len(probes)} probes of {described}",
            keys,
        )
    acquired = _acquired(source, frame, keys)
    rank = _numeric(source, frame, "rank", keys)
    raw = _numeric(source, frame, "score", keys)
    latency = _numeric(source, frame, "latency_ms", keys) if "latency_ms" in frame else None
    cost = _numeric(source, frame, "cost", keys) if "cost" in frame.columns else None
    candidate = frame["candidate_subject_id"]
    has_candidate = candidate.notna().to_numpy()
    empty = np.isnan(rank) & ~has_candidate & np.isnan(raw)
    listed = acquired & ~empty  # the rows that are candidates
    nameless = listed & ~has_candidate
    if nameless.any():
        raise _row_error(
            source,
            frame,
            _first(nameless),
            "candidate_subject_id is empty in a candidate row (an empty candidate list is one "
            "row with rank, candidate_subject_id and score all empty)",
            keys,
        )
    enrolled = set(gallery["subject_id"].astype(str))
    stranger = listed & ~candidate.astype(str).isin(enrolled).to_numpy()
    if stranger.any():
        i = _first(stranger)
        raise _row_error(
            source,
            frame,
            i,
            f"candidate_subject_id {candidate.iloc[i]!r} is not enrolled: not the same "
            f"enrolment list ({len(enrolled)} subjects, one selfie each, of {described})",
            keys,
        )
    declared = {k: v for k, v in frame.attrs.items() if k in ("score_direction", "score_range")}
    opts = {
        name: matching_options(name, source, declared, (options or {}).get(name))
        for name in dict.fromkeys(names)
    }
    similar = np.full(len(frame), np.nan)
    for name, opt in opts.items():
        rows = np.flatnonzero((names == name) & listed)
        if len(rows):
            similar[rows] = _scores(source, frame, raw, rows, name, opt, keys)[rows]
    search_id = pd.Series(names).astype(str).str.cat(probe_ids.to_numpy(), sep=":")
    table = pd.DataFrame(
        {
            "search_id": search_id.to_numpy(),
            "probe_sample_id": search_id.to_numpy(),  # one search per provider and probe
            "probe_subject_id": probes["subject_id"].astype(str).to_numpy()[positions],
            "mated": probes["mated"].to_numpy(bool)[positions],
            "rank": np.where(listed, rank, np.nan),
            "candidate_subject_id": np.where(listed, candidate.astype(str), None),
            "score": similar,
            "acquired": acquired,
        }
    )
    table.attrs["source"] = source
    for column, values in (("latency_ms", latency), ("cost", cost)):
        if values is None:
            continue
        varies = pd.Series(values).fillna(-np.inf).groupby(search_id).transform("nunique")
        if (varies > 1).any():
            raise _row_error(
                source,
                frame,
                _first((varies > 1).to_numpy()),
                f"{column} differs between the rows of one probe (give it once per search, "
                "repeated on each of its rows)",
                keys,
            )
    per_search = searches(table)  # validates the table (ranks, scores falling, one probe)
    aligned = []
    n = len(probes)
    for name in opts:
        mine = names == name
        first = np.flatnonzero(mine & ~pd.Series(search_id).duplicated().to_numpy())
        at = positions[first]
        found = per_search.loc[search_id.iloc[first].to_numpy()]
        present, answered = np.zeros(n, bool), np.zeros(n, bool)
        present[at] = True
        answered[at] = found["acquired"].to_numpy(bool)
        top, mate_rank, mate_score = np.full(n, -np.inf), np.full(n, np.inf), np.full(n, -np.inf)
        ok = found["acquired"].to_numpy(bool)
        top[at[ok]] = found["top_score"].to_numpy()[ok]
        mate_rank[at[ok]] = found["mate_rank"].to_numpy()[ok]
        mate_score[at[ok]] = found["mate_score"].to_numpy()[ok]
        returned = np.zeros(n, np.int64)
        counts = pd.Series(listed[mine]).groupby(positions[mine]).sum()
        returned[counts.index.to_numpy()] = counts.to_numpy()
        lat, cst = np.full(n, np.nan), np.full(n, np.nan)
        if latency is not None:
            lat[at] = latency[first]
        if cost is not None:
            cst[at] = cost[first]
        aligned.append(
            AlignedSearches(
                name=name,
                sources=[source],
                present=present,
                answered=answered,
                top_score=top,
                mate_rank=mate_rank,
                mate_score=mate_score,
                returned=returned,
                latency_ms=lat,
                cost=cst,
                has_latency=latency is not None,
                has_cost=cost is not None,
                options=opts[name],
            )
        )
    return aligned


def _merge_searches(parts: list[AlignedSearches], probes: pd.DataFrame) -> AlignedSearches:
    """One provider's searches in several files: the files must not overlap."""
    merged = parts[0]
    for part in parts[1:]:
        both = merged.present & part.present
        if both.any():
            probe = probes["sample_id"].iloc[_first(both)]
            raise ValueError(
                f"provider {part.name!r}: probe {probe!r} searched in {merged.sources} and in "
                f"{part.sources}"
            )
        if part.options != merged.options:
            raise ValueError(
                f"provider {part.name!r}: {merged.sources} and {part.sources} declare "
                f"different score options ({merged.options} vs {part.options})"
            )
        take = part.present
        merged = AlignedSearches(
            name=merged.name,
            sources=[*merged.sources, *part.sources],
            present=merged.present | part.present,
            answered=merged.answered | part.answered,
            top_score=np.where(take, part.top_score, merged.top_score),
            mate_rank=np.where(take, part.mate_rank, merged.mate_rank),
            mate_score=np.where(take, part.mate_score, merged.mate_score),
            returned=np.where(take, part.returned, merged.returned),
            latency_ms=np.where(take, part.latency_ms, merged.latency_ms),
            cost=np.where(take, part.cost, merged.cost),
            has_latency=merged.has_latency or part.has_latency,
            has_cost=merged.has_cost or part.has_cost,
            options=merged.options,
        )
    return merged


def _ours_searches(
    ours: pd.DataFrame, probes: pd.DataFrame, gallery: pd.DataFrame, split: str, described: str
) -> pd.DataFrame:
    """Our search table on the split, checked to search exactly the owned probes (same
    subjects, same mated flags) in the owned gallery, as a vendor-format frame."""
    source = ours.attrs.get("source", OURS)
    table = validate_search_table(ours, source)
    if "split" in table.columns:
        present = sorted(map(str, table["split"].unique()))
        table = table[table["split"] == split]
        if table.empty:
            raise ValueError(f"{source}: no searches of split {split!r} (splits: {present})")
    table = table.reset_index(drop=True)
    first = table.drop_duplicates("search_id")
    got = first["probe_sample_id"].astype(str)
    owned = probes["sample_id"].astype(str)
    extra, lacking = sorted(set(got) - set(owned)), sorted(set(owned) - set(got))
    parts = []
    if extra:
        parts.append(f"{len(extra)} probes not in the owned set (e.g. {extra[:3]})")
    if lacking:
        parts.append(f"{len(lacking)} owned probes not searched (e.g. {lacking[:3]})")
    if not extra:
        at = pd.Index(owned).get_indexer(got)
        flipped = first["mated"].to_numpy(bool) != probes["mated"].to_numpy(bool)[at]
        if flipped.any():
            parts.append(
                f"{int(flipped.sum())} probes with another mated flag (e.g. "
                f"{got[flipped].tolist()[:3]}): another enrolment"
            )
    listed = table["acquired"].to_numpy(bool) & table["rank"].notna().to_numpy()
    enrolled = set(gallery["subject_id"].astype(str))
    strangers = sorted(set(table.loc[listed, "candidate_subject_id"].astype(str)) - enrolled)
    if strangers:
        parts.append(f"candidates not enrolled in the owned gallery (e.g. {strangers[:3]})")
    if parts:
        raise ValueError(
            f"{source}: our search table does not search exactly the {len(probes)} probes in "
            f"the gallery of {described}: {'; '.join(parts)}. Was it scored with another seed "
            "(idv-evaluate's `seed` must equal this `seed`), enrolled_fraction or manifest?"
        )
    keep = ["probe_sample_id", "rank", "candidate_subject_id", "score", "acquired"]
    keep += [c for c in ("latency_ms", "cost") if c in table.columns]
    out = table[keep].assign(provider=OURS)
    out.attrs["source"] = source
    return out


def _search_provider_row(
    p: AlignedSearches,
    probes: pd.DataFrame,
    view: np.ndarray,
    fpir_targets: Sequence[float],
    resolved: Mapping[str, NotSupported | None],
    boot: _Bootstrap,
    min_subjects: int,
) -> dict:
    mated = probes["mated"].to_numpy(bool)[view]
    subjects = probes["subject_id"].astype(str).to_numpy()[view]
    answered = p.answered[view]
    n_mated_subj, n_non_subj = len(set(subjects[mated])), len(set(subjects[~mated]))
    row: dict[str, object] = {
        "items": int(view.sum()),
        "answered": int(answered.sum()),
        "coverage": float(answered.mean()),
        "coverage_mated": float(answered[mated].mean()) if mated.any() else np.nan,
        "coverage_non_mated": float(answered[~mated].mean()) if (~mated).any() else np.nan,
        "mated_searches": int(mated.sum()),
        "non_mated_searches": int((~mated).sum()),
        "probe_subjects": len(set(subjects)),
        "mated_subjects": n_mated_subj,
        "non_mated_subjects": n_non_subj,
        "too_small": min(n_mated_subj, n_non_subj) < min_subjects,
        "mean_candidates": float(p.returned[view][answered].mean()) if answered.any() else np.nan,
    }
    resamplable = len(set(subjects)) >= 2
    curve_ok = mated.any() and (~mated).any() and resamplable
    scores = p.search_scores(probes["mated"].to_numpy(bool))[view] if curve_ok else None
    labels = mated.astype(np.int64)
    for target in fpir_targets:
        key = fnir_key(target)
        ok = scores is not None and resolved.get(key) is None
        stat = fnmr_at_fmr_statistic(target)
        _put(row, key, _curve(scores if ok else None, labels, subjects, stat, boot))
    rank_1 = None
    if mated.any() and resamplable:
        hits = p.rank_1_hits()[view]
        rank_1 = bootstrap_rate(hits, subjects, where=mated, **boot.kwargs())
    _put(row, "rank_1_rate", rank_1)
    _latency_cost(row, p, view)  # type: ignore[arg-type]
    return row


def compare_searches(
    reference: AlignedSearches,
    candidate: AlignedSearches,
    probes: pd.DataFrame,
    fpir_targets: Sequence[float],
    resolved: Mapping[str, NotSupported | None],
    boot: _Bootstrap,
) -> list[dict]:
    """Paired tests of `candidate` - `reference` on the same owned probes: FNIR at each
    resolved FPIR target (> 0: the candidate is worse) and the rank-1 rate (> 0: better,
    with McNemar on the paired misses)."""
    mated = probes["mated"].to_numpy(bool)
    labels = mated.astype(np.int64)
    subjects = probes["subject_id"].astype(str).to_numpy()
    a, b = reference.search_scores(mated), candidate.search_scores(mated)
    rows = []
    for target in fpir_targets:
        if resolved.get(fnir_key(target)) is not None:
            continue
        interval = paired_bootstrap_difference(
            a, b, labels, subjects, fnmr_at_fmr_statistic(target), **boot.kwargs()
        )
        rows.append(
            _comparison_row(
                candidate.name,
                reference.name,
                fnir_key(target),
                "paired subject bootstrap",
                interval,
            )
        )
    hits = [reference.rank_1_hits(), candidate.rank_1_hits()]
    interval = paired_rate_difference(hits[0], hits[1], subjects, where=mated, **boot.kwargs())
    misses = [1.0 - h[mated] for h in hits]
    rows.append(
        _comparison_row(
            candidate.name,
            reference.name,
            "rank_1_rate",
            "paired subject bootstrap + McNemar",
            interval,
            _mcnemar(misses[0], misses[1]),
        )
    )
    return rows


def benchmark_searches(
    manifest_frame: pd.DataFrame,
    vendor_frames: Mapping[str, pd.DataFrame] | Iterable[pd.DataFrame],
    *,
    ours: pd.DataFrame | None = None,
    split: str = "test",
    enrolled_fraction: float = 1 / 3,
    protocol_seed: int = 0,
    reference: str | None = OURS,
    providers: Mapping[str, Mapping[str, object]] | None = None,
    segments: Sequence[str] = ("geography",),
    fpir_targets: Sequence[float] = (0.003, 0.01, 0.001),
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_subjects: int = 10,
) -> BenchmarkResult:
    """Judge every provider's 1:N searches on the owned probes of `split`, searched in the
    owned enrolment list (`enrolled_fraction`, `seed`: idv-evaluate's), side by side.

    `ours`: our search table (any splits: the split's searches are used, and must be exactly
    the owned probes in the owned gallery), entered as provider "ours".
    """
    gallery, probes = owned_searches(
        manifest_frame, split, enrolled_fraction=enrolled_fraction, seed=protocol_seed
    )
    probes.attrs["split"] = split
    described = (
        f"the 1:N protocol on split {split!r} (enrolled_fraction={enrolled_fraction}, "
        f"seed={protocol_seed})"
    )
    split_of = dict(
        zip(manifest_frame["sample_id"].astype(str), manifest_frame["split"], strict=True)
    )
    options = dict(providers or {})
    parts: dict[str, list[AlignedSearches]] = {}
    if ours is not None:
        frame = _ours_searches(ours, probes, gallery, split, described)
        for part in align_search_source(
            probes, gallery, frame, frame.attrs["source"], options, split_of, described
        ):
            parts.setdefault(part.name, []).append(part)
    for source, frame in _sources(vendor_frames):
        for part in align_search_source(
            probes, gallery, frame, source, options, split_of, described
        ):
            if part.name == OURS:
                raise ValueError(
                    f"{source}: provider name {OURS!r} is reserved for our own score table"
                )
            parts.setdefault(part.name, []).append(part)
    if not parts:
        raise ValueError("nothing to benchmark: no vendor file and no search table of ours")
    _check_options(options, parts)
    aligned = {name: _merge_searches(p, probes) for name, p in parts.items()}
    notes: list[str] = []
    reference = _reference(reference, aligned, ours is not None, notes)
    order = sorted(aligned, key=lambda n: (n != reference, n))
    boot = _Bootstrap(int(n_resamples), int(seed), float(level))

    mated_all = probes["mated"].to_numpy(bool)
    subjects_all = probes["subject_id"].astype(str).to_numpy()
    rows, unresolved = [], {}
    for column, group, view in _views(probes, segments, notes, "probes"):
        non_mated = view & ~mated_all
        resolved = _resolution(
            fpir_targets,
            int(non_mated.sum()),
            len(set(subjects_all[non_mated])),
            min_subjects,
            fnir_key,
        )
        unresolved[(column, group)] = resolved
        for name in order:
            row = {"provider": name, "segment": column, "group": group}
            row.update(
                _search_provider_row(
                    aligned[name], probes, view, fpir_targets, resolved, boot, min_subjects
                )
            )
            rows.append(row)
    comparisons = []
    if reference is not None:
        for name in order[1:]:
            comparisons.extend(
                compare_searches(
                    aligned[reference],
                    aligned[name],
                    probes,
                    fpir_targets,
                    unresolved[(OVERALL, OVERALL)],
                    boot,
                )
            )
    _unresolved_notes(unresolved, notes, "non-mated searches")
    n_unanswered = {n: int((~p.answered).sum()) for n, p in aligned.items()}
    notes.insert(
        0,
        f"Split `{split}`, 1:N protocol (enrolled_fraction={enrolled_fraction}, seed "
        f"{protocol_seed}): "
        f"a gallery of {len(gallery)} enrolled subjects (one selfie each; every provider must "
        f"enrol exactly these), {int(mated_all.sum())} mated and {int((~mated_all).sum())} "
        f"non-mated probes of {len(set(subjects_all))} subjects; FNIR(T) counts a mated "
        "search whose mate is not returned with score >= T at any rank, FPIR(T) a non-mated "
        f"search returning any candidate >= T; {boot.level:.0%} probe-subject bootstrap "
        f"intervals ({boot.n_resamples} resamples, seed {boot.seed}). Unanswered probes are "
        "failures to acquire (a miss when mated, nothing returned when not); unanswered per "
        f"provider: {n_unanswered}.",
    )
    return BenchmarkResult(
        providers=pd.DataFrame(rows),
        comparisons=pd.DataFrame(comparisons, columns=_COMPARISON_COLUMNS),
        table=_search_long_table(probes, aligned, order),
        split=split,
        reference=reference,
        notes=notes,
        mode="search",
    )


def _search_long_table(
    probes: pd.DataFrame, aligned: Mapping[str, AlignedSearches], order: Sequence[str]
) -> pd.DataFrame:
    base = probes.drop(columns=[c for c in ("path", "landmarks") if c in probes.columns])
    frames = []
    for name in order:
        p = aligned[name]
        frames.append(
            base.assign(
                provider=name,
                answered=p.answered,
                candidates=p.returned,
                top_score=p.top_score,
                mate_rank=p.mate_rank,
                mate_score=p.mate_score,
                latency_ms=p.latency_ms,
                cost=p.cost,
            )
        )
    return pd.concat(frames, ignore_index=True)
