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

This module holds only what the two matching kinds bring to the shared engine
(`benchmark_core`): their owned items, how a vendor file's rows find them (a comparison by id or
unordered pair; a search's candidate rows reduced by `idv.metrics.identification.searches` to
one score per probe: the mate's when mated, the top one when not, so FNIR at an FPIR target is
FNMR at an FMR target with label = mated), their statistics, rates and notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import pandas as pd

from idv.data.comparisons import COMPARISON_PROTOCOLS, comparison_pairs, search_protocol
from idv.evaluation.benchmark_core import (
    OURS,
    AlignedProvider,
    BenchmarkResult,
    Kind,
    Rate,
    RowFormat,
    ScoreOptions,
    Statistic,
    VendorRows,
    _first,
    align_rows,
    declarations,
    ours_as_vendor,
    require_rows,
    run,
    scored_rows,
    split_rows,
)
from idv.metrics.bootstrap import eer_statistic, fnmr_at_fmr_statistic
from idv.metrics.identification import searches
from idv.score_tables import validate_comparison_table, validate_search_table

HIGHER_IS_SIMILAR = "higher_is_similar"
HIGHER_IS_DIFFERENT = "higher_is_different"
MATCHING_DIRECTIONS = (HIGHER_IS_SIMILAR, HIGHER_IS_DIFFERENT)
_PAIR_KEYS = ("sample_id_a", "sample_id_b")
_SEARCH_KEYS = ("probe_sample_id", "rank")
_SEARCH_COLUMNS = ("probe_sample_id", "rank", "candidate_subject_id", "score")


def fnmr_key(target: float) -> str:
    """`fnmr_at_fmr_1e-03`: the key of verification_report."""
    return f"fnmr_at_fmr_{target:.0e}"


def fnir_key(target: float) -> str:
    """`fnir_at_fpir_1e-02`: the key of identification_report."""
    return f"fnir_at_fpir_{target:.0e}"


# ------------------------------------------------------------------------------ score options


@dataclass(frozen=True)
class MatchingOptions(ScoreOptions):
    """How to read one provider's matching scores: similarities (default) or distances, and
    their declared range (None: not checked)."""

    directions: ClassVar[tuple[str, ...]] = MATCHING_DIRECTIONS
    directions_hint: ClassVar[str] = " (matching scores are similarities or distances)"
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

    def oriented(self, rows: VendorRows, raw: np.ndarray, at: np.ndarray, name: str) -> np.ndarray:
        """Similarities of the answered rows `at`: finite, within a declared range, flipped
        for distances."""
        values = rows.usable_scores(raw, at, name, _infinite, lambda v: f"score {float(v)!r}")
        if self.score_range is not None:
            rows.check_range(raw, at, name, self.score_range)
        return self.similarities(values)


def _infinite(values: np.ndarray) -> np.ndarray:
    return ~np.isfinite(values)


matching_options = MatchingOptions.read
_ROWS = RowFormat(
    options=MatchingOptions.read,
    positive=("match",),
    negative=("non_match", "nonmatch", "non-match", "no_match"),
    duplicate="duplicate comparison for provider {name!r} (first seen at row {first}); every "
    "comparison is counted once",
)

# ------------------------------------------------------------------------------ owned items


def _split_frame(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    return split_rows(manifest, split, ("sample_id", "subject_id", "split"))


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


def _where_is(sample: str, split_of: Mapping[str, str], split: str) -> str:
    elsewhere = split_of.get(sample)
    if elsewhere is None:
        return f"sample {sample!r} is not in the manifest"
    if elsewhere != split:
        return f"sample {sample!r} belongs to split {elsewhere!r}"
    return ""


# ------------------------------------------------------------------------ 1:1 comparisons


def _pair_keys(a: pd.Series, b: pd.Series) -> pd.Index:
    """Unordered pair keys: (x, y) and (y, x) are one comparison."""
    a = pd.Series(a.astype(str).to_numpy(), dtype=object)
    b = pd.Series(b.astype(str).to_numpy(), dtype=object)
    first = a <= b
    low, high = a.where(first, b), b.where(first, a)
    return pd.Index(low + "\x1f" + high)


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
    by_id = "comparison_id" in frame.columns
    has_pair = all(c in frame.columns for c in _PAIR_KEYS)
    if not by_id and not has_pair:
        raise ValueError(
            f"{source}: neither a 'comparison_id' column nor the pair 'sample_id_a', "
            f"'sample_id_b' (columns: {list(frame.columns)}): a comparison file names each "
            "comparison by one or the other"
        )
    rows = scored_rows(source, frame, ("comparison_id",) if by_id else _PAIR_KEYS)
    names, frame = rows.providers(), rows.frame
    pairs = _pair_keys(owned["sample_id_a"], owned["sample_id_b"])
    if by_id:
        rows.check(frame["comparison_id"].isna().to_numpy(), "comparison_id is empty")
        index = pd.Index(owned["comparison_id"].astype(str))
        positions = index.get_indexer(frame["comparison_id"].astype(str))
    else:
        rows.check(
            frame[list(_PAIR_KEYS)].isna().any(axis=1).to_numpy(), "sample_id_a or _b is empty"
        )
        positions = pairs.get_indexer(_pair_keys(frame["sample_id_a"], frame["sample_id_b"]))
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
        raise rows.error(
            i,
            f"{what}{why}: not one of the {len(owned)} comparisons of {described}; vendor "
            "files may answer only the owned comparisons",
        )
    if by_id and has_pair:  # both given: they must name the same comparison
        given = _pair_keys(frame["sample_id_a"], frame["sample_id_b"]).to_numpy()
        wrong = given != pairs[positions].to_numpy()
        if wrong.any():
            i = _first(wrong)
            o = owned.iloc[positions[i]]
            raise rows.error(
                i,
                f"comparison_id names the pair ({o['sample_id_a']!r}, {o['sample_id_b']!r}) "
                f"in {described}, but the row gives ({frame['sample_id_a'].iloc[i]!r}, "
                f"{frame['sample_id_b'].iloc[i]!r})",
            )
    return align_rows(_ROWS, rows, names, positions, len(owned), options)


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
    return ours_as_vendor(table, ("comparison_id", *_PAIR_KEYS), source)


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
    genuine = owned["genuine"].to_numpy(bool)
    kind = Kind(
        mode="comparison",
        difference_note="every metric is an error rate: > 0 means the provider is worse",
        split=split,
        items=owned,
        key="comparison_id",
        align=partial(
            align_comparison_source, owned, split_of=_split_of(manifest_frame), described=described
        ),
        our_table=partial(
            _ours_comparisons, owned=owned, split=split, protocol=protocol, described=described
        ),
        positive=genuine,
        classes=(("genuine", True), ("impostor", False)),
        counted="comparisons",
        subject_keys=("probe_subjects", "{}_probe_subjects"),
        subjects=owned["subject_id_b"].astype(str).to_numpy(),
        failed_score=-np.inf,  # a non-match at every threshold
        failed_decision=0.0,
        statistics=(
            Statistic("eer", eer_statistic),
            *(Statistic(fnmr_key(t), fnmr_at_fmr_statistic(t), target=t) for t in fmr_targets),
        ),
        rates=(Rate("fnmr@decision", genuine), Rate("fmr@decision", ~genuine)),
        trial_subjects=owned[["subject_id_a", "subject_id_b"]].astype(str).to_numpy(dtype=object),
        trials="impostor comparisons",
        segments_in="among the comparisons' probe's columns",
        about=f"Split `{split}`, 1:1 protocol `{protocol}` (max_impostors={max_impostors}, seed "
        f"{protocol_seed}): {len(owned)} owned comparisons ({int(genuine.sum())} genuine, "
        f"{int((~genuine).sum())} impostor) of {owned['subject_id_b'].nunique()} probe "
        "subjects; scores are similarities (higher = more alike); ",
        unit="probe-subject bootstrap",
        failures="Unanswered comparisons are failures to acquire, i.e. non-matches (a genuine "
        "one raises FNMR, an impostor one is never a false match)",
    )
    boot = (n_resamples, seed, level)
    return run(kind, vendor_frames, ours, reference, providers, segments, boot, min_subjects)


def _split_of(manifest: pd.DataFrame) -> dict[str, str]:
    """sample_id -> split of the whole manifest, to say where a stray sample belongs."""
    return dict(zip(manifest["sample_id"].astype(str), manifest["split"], strict=True))


# ----------------------------------------------------------------------------- 1:N searches


def align_search_source(
    probes: pd.DataFrame,
    gallery: pd.DataFrame,
    frame: pd.DataFrame,
    source: str,
    options: Mapping[str, Mapping[str, object]] | None = None,
    split_of: Mapping[str, str] | None = None,
    described: str = "the owned 1:N protocol",
) -> list[AlignedProvider]:
    """Validate one vendor search file against the owned probes and enrolment list, and align
    each of its providers: the rows become a full search table (the owned probe's subject and
    mated flag joined) checked by `validate_search_table`, reduced by `searches`."""
    require_rows(source, frame)
    missing = [c for c in _SEARCH_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: a search file lacks column(s) {missing} (columns: "
            f"{list(frame.columns)}); one row per returned candidate: probe_sample_id, "
            "provider, rank, candidate_subject_id, score[, acquired, latency_ms, cost]"
        )
    rows = VendorRows.of(source, frame, _SEARCH_KEYS)
    names, frame = rows.providers(), rows.frame
    rows.check(frame["probe_sample_id"].isna().to_numpy(), "probe_sample_id is empty")
    probe_ids = frame["probe_sample_id"].astype(str)
    positions = pd.Index(probes["sample_id"].astype(str)).get_indexer(probe_ids)
    unknown = positions < 0
    if unknown.any():
        sample = probe_ids.iloc[_first(unknown)]
        split = str(probes.attrs.get("split", ""))
        if sample in set(gallery["sample_id"].astype(str)):
            why = "it is an enrolment sample of the gallery, not a probe"
        else:
            why = _where_is(sample, split_of or {}, split) or "not a probe (a selfie) of the split"
        raise rows.error(
            _first(unknown),
            f"unknown probe ({why}): not one of the {len(probes)} probes of {described}",
        )
    acquired, rank, raw = rows.acquired(), rows.numeric("rank"), rows.numeric("score")
    timing = rows.numeric("latency_ms"), rows.numeric("cost")
    candidate = frame["candidate_subject_id"]
    has_candidate = candidate.notna().to_numpy()
    listed = acquired & ~(np.isnan(rank) & ~has_candidate & np.isnan(raw))  # candidate rows
    rows.check(
        listed & ~has_candidate,
        "candidate_subject_id is empty in a candidate row (an empty candidate list is one "
        "row with rank, candidate_subject_id and score all empty)",
    )
    enrolled = set(gallery["subject_id"].astype(str))
    stranger = listed & ~candidate.astype(str).isin(enrolled).to_numpy()
    if stranger.any():
        raise rows.error(
            _first(stranger),
            f"candidate_subject_id {candidate.iloc[_first(stranger)]!r} is not enrolled: not "
            f"the same enrolment list ({len(enrolled)} subjects, one selfie each, of "
            f"{described})",
        )
    opts = {
        name: MatchingOptions.read(name, source, declarations(frame), (options or {}).get(name))
        for name in dict.fromkeys(names)
    }
    similar = np.full(len(frame), np.nan)
    for name, opt in opts.items():
        mine = np.flatnonzero((names == name) & listed)
        if len(mine):
            similar[mine] = opt.oriented(rows, raw, mine, name)
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
    for column, values in zip(("latency_ms", "cost"), timing, strict=True):
        if values is not None:
            varies = pd.Series(values).fillna(-np.inf).groupby(search_id).transform("nunique")
            rows.check(
                (varies > 1).to_numpy(),
                f"{column} differs between the rows of one probe (give it once per search, "
                "repeated on each of its rows)",
            )
    per_search = searches(table)  # validates the table (ranks, scores falling, one probe)
    n, mated = len(probes), probes["mated"].to_numpy(bool)
    first_of_search = ~search_id.duplicated().to_numpy()
    aligned = []
    for name in opts:
        mine = names == name
        first = np.flatnonzero(mine & first_of_search)  # one row per search (probe)
        took = first[acquired[first]]
        found = per_search.loc[search_id.iloc[took].to_numpy()]
        extra = {"candidates": np.zeros(n, np.int64)}
        counts = pd.Series(listed[mine]).groupby(positions[mine]).sum()
        extra["candidates"][counts.index.to_numpy()] = counts.to_numpy()
        for column, missing in (
            ("top_score", -np.inf),
            ("mate_rank", np.inf),
            ("mate_score", -np.inf),
        ):
            extra[column] = np.full(n, missing)
            extra[column][positions[took]] = found[column].to_numpy()
        # One score per search: the mate's when mated, the top one when not (see the docstring)
        scores = np.where(mated, extra["mate_score"], extra["top_score"])
        at = (positions, first, took)
        aligned.append(rows.aligned(name, n, at, timing, opts[name], scores, extra=extra))
    return aligned


def _rank_1_hits(p: AlignedProvider) -> np.ndarray:
    return (p.extra["mate_rank"] <= 1).astype(np.float64)


def _mean_candidates(p: AlignedProvider, view: np.ndarray) -> dict[str, float]:
    answered = p.answered[view]
    returned = p.extra["candidates"][view][answered]
    return {"mean_candidates": float(returned.mean()) if answered.any() else np.nan}


def _search_columns(p: AlignedProvider) -> dict[str, np.ndarray]:
    return dict(p.extra)


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
    return ours_as_vendor(table, ("probe_sample_id", "rank", "candidate_subject_id"), source)


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
    mated = probes["mated"].to_numpy(bool)
    subjects = probes["subject_id"].astype(str).to_numpy()
    kind = Kind(
        mode="search",
        difference_note="for FNIR, > 0 means the provider is worse; for the rank-1 rate, better",
        split=split,
        items=probes,
        key="sample_id",
        align=partial(
            align_search_source,
            probes,
            gallery,
            split_of=_split_of(manifest_frame),
            described=described,
        ),
        our_table=partial(
            _ours_searches, probes=probes, gallery=gallery, split=split, described=described
        ),
        positive=mated,
        classes=(("mated", True), ("non_mated", False)),
        counted="searches",
        subject_keys=("probe_subjects", "{}_subjects"),
        subjects=subjects,
        failed_score=-np.inf,  # already: nothing returned
        statistics=tuple(
            Statistic(fnir_key(t), fnmr_at_fmr_statistic(t), target=t) for t in fpir_targets
        ),
        rates=(Rate("rank_1_rate", mated),),
        hits=_rank_1_hits,
        trial_subjects=subjects,
        trials="non-mated searches",
        segments_in="among the probes's columns",
        ours_table="search table",
        overlap="probe {item!r} searched in {a} and in {b}",
        describe=_mean_candidates,
        columns=_search_columns,
        hidden=("path", "landmarks"),
        about=f"Split `{split}`, 1:N protocol (enrolled_fraction={enrolled_fraction}, seed "
        f"{protocol_seed}): a gallery of {len(gallery)} enrolled subjects (one selfie each; "
        f"every provider must enrol exactly these), {int(mated.sum())} mated and "
        f"{int((~mated).sum())} non-mated probes of {len(set(subjects))} subjects; FNIR(T) "
        "counts a mated search whose mate is not returned with score >= T at any rank, FPIR(T) "
        "a non-mated search returning any candidate >= T; ",
        unit="probe-subject bootstrap",
        failures="Unanswered probes are failures to acquire (a miss when mated, nothing returned "
        "when not)",
    )
    boot = (n_resamples, seed, level)
    return run(kind, vendor_frames, ours, reference, providers, segments, boot, min_subjects)


def benchmark_from_config(cfg) -> tuple[BenchmarkResult, str]:
    """The matching kind's benchmark from the composed `benchmark` config, in `mode`
    comparison (1:1, the default) or search (1:N): (result, title)."""
    from idv.evaluation.benchmark import common_options, ours_table, owned_inputs

    mode = cfg.get("mode") or "comparison"
    if mode not in ("comparison", "search"):
        raise ValueError(f"mode must be comparison (1:1) or search (1:N), got {mode!r}")
    manifest_frame, vendors = owned_inputs(cfg)
    protocols = cfg.task.protocols
    if mode == "comparison":
        ours = ours_table(
            cfg, "comparison", "our comparison table (idv-evaluate's tables/scores.parquet)"
        )
        result = benchmark_comparisons(
            manifest_frame,
            vendors,
            ours=ours,
            protocol=cfg.comparison_protocol,
            max_impostors=protocols.max_impostors,
            protocol_seed=cfg.seed,
            fmr_targets=[float(t) for t in cfg.fmr_targets],
            **common_options(cfg),
        )
        return result, f"{cfg.task.name}: vendor benchmark, 1:1 {cfg.comparison_protocol}"
    ours = ours_table(cfg, "search", "our search table (idv-evaluate's tables/search.parquet)")
    result = benchmark_searches(
        manifest_frame,
        vendors,
        ours=ours,
        enrolled_fraction=protocols.search.enrolled_fraction,
        protocol_seed=cfg.seed,
        fpir_targets=[float(t) for t in cfg.fpir_targets],
        **common_options(cfg),
    )
    return result, f"{cfg.task.name}: vendor benchmark, 1:N search"
