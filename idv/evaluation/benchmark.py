"""Vendor benchmark: external providers judged on the owned evaluation set (detection tasks
here; matching tasks, 1:1 comparisons and 1:N searches, in `benchmark_matching`).

A vendor file (CSV or Parquet) has one row per owned sample it answered: `sample_id`,
`provider`, a `score` and / or a `decision` ("attack" / "bona_fide", or 1 / 0 with 1 = attack),
optionally `acquired` (False = the provider declared a failure), `latency_ms` and `cost`.
Labels, species, subjects and segments come from the owned manifest, never from the vendor.
Our own `scores.parquet` enters the same way, as the provider `ours`.

Every provider is aligned on every owned item of the split, so all of them are judged on the
same rows and compared with paired tests. An item a provider did not answer is a failure to
acquire and is counted as an error on its own side: a bona fide becomes +inf (classified attack
at every threshold: it raises BPCER, as `idv.metrics.detection.generalised_scores`) and an
attack becomes -inf (a missed attack at every threshold), so leaving an item unanswered never
improves APCER or BPCER over answering it wrongly, and a provider cannot gain by skipping hard
items. Coverage is reported next to every rate.

Score direction: internally a higher score means "more likely attack". A provider whose scores
run the other way declares `score_direction: higher_is_bona_fide` (Parquet key-value metadata,
a CSV side-car `<stem>.meta.json`, or per provider in the config), with its `score_range`
(default [0, 1]); its scores are flipped within the range (lo + hi - s), which keeps every rate.

This module holds what detection brings to the shared engine (`benchmark_core`): its owned
items, its vendor rows keyed by `sample_id`, its statistics and rates. The files' readers and
writers (`benchmark_io`) and the records are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import pandas as pd

from idv.evaluation.benchmark_core import (
    OURS,
    OVERALL,
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
    declared_options,
    ours_as_vendor,
    require_rows,
    run,
    scored_rows,
    split_rows,
)
from idv.evaluation.benchmark_io import (
    headline_frame,
    markdown,
    read_vendor_file,
    write_outputs,
)
from idv.metrics.bootstrap import auc_statistic, bpcer_at_worst_apcer_statistic, eer_statistic
from idv.metrics.detection import pct

__all__ = [
    "OURS",
    "OVERALL",
    "AlignedProvider",
    "BenchmarkResult",
    "ProviderOptions",
    "align_source",
    "benchmark",
    "declared_options",
    "headline_frame",
    "markdown",
    "provider_options",
    "read_vendor_file",
    "require_rows",
    "write_outputs",
]

HIGHER_IS_ATTACK = "higher_is_attack"
HIGHER_IS_BONA_FIDE = "higher_is_bona_fide"
SCORE_DIRECTIONS = (HIGHER_IS_ATTACK, HIGHER_IS_BONA_FIDE)
DEFAULT_SCORE_RANGE = (0.0, 1.0)
_MANIFEST_COLUMNS = ("sample_id", "label", "subject_id", "split", "attack_type")
_KEYS = ("sample_id",)


@dataclass(frozen=True)
class ProviderOptions(ScoreOptions):
    """How to read one provider's scores: their direction and their declared range."""

    directions: ClassVar[tuple[str, ...]] = SCORE_DIRECTIONS
    score_direction: str = HIGHER_IS_ATTACK
    score_range: tuple[float, float] = DEFAULT_SCORE_RANGE

    def oriented(self, rows: VendorRows, raw: np.ndarray, at: np.ndarray, name: str) -> np.ndarray:
        """The scores of the answered rows `at`, checked (a number, within the range) and
        oriented: higher = attack (flipped within the range; same range, same order)."""
        values = rows.usable_scores(raw, at, name, np.isnan, lambda v: "NaN score")
        hint = " (declare score_range for this provider if it differs)"
        rows.check_range(raw, at, name, self.score_range, hint)
        lo, hi = self.score_range
        return lo + hi - values if self.score_direction == HIGHER_IS_BONA_FIDE else values


provider_options = ProviderOptions.read
_ROWS = RowFormat(
    options=ProviderOptions.read,
    positive=("attack",),
    negative=("bona_fide", "bonafide", "bona fide"),
    duplicate="duplicate row for provider {name!r} (first seen at row {first})",
)


def _owned_split(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    owned = split_rows(manifest, split, _MANIFEST_COLUMNS)
    if not owned["label"].isin([0, 1]).all():
        raise ValueError("manifest: a detection benchmark needs labels 0 (bona fide) / 1 (attack)")
    if owned["label"].nunique() < 2:
        raise ValueError(f"manifest: split {split!r} needs both bona fide and attack samples")
    return owned


def align_source(
    owned: pd.DataFrame,
    frame: pd.DataFrame,
    source: str,
    options: Mapping[str, Mapping[str, object]] | None = None,
    other_splits: Mapping[str, str] | None = None,
) -> list[AlignedProvider]:
    """Validate one vendor file against the owned split and align each provider in it
    (`options`: per provider; `other_splits`: sample_id -> split of the manifest's other
    rows, to say where a stray id belongs). A file without a `provider` column is one
    provider named after the file; a file without rows is an error."""
    require_rows(source, frame)
    if "sample_id" not in frame.columns:
        raise ValueError(f"{source}: no 'sample_id' column (columns: {list(frame.columns)})")
    rows = scored_rows(source, frame, _KEYS)
    names = rows.providers()
    given = rows.frame["sample_id"].astype(str)
    positions = pd.Index(owned["sample_id"].astype(str)).get_indexer(given)
    unknown = positions < 0
    if unknown.any():
        elsewhere = (other_splits or {}).get(given.iloc[_first(unknown)])
        where = f"it belongs to split {elsewhere!r}" if elsewhere else "not in the manifest"
        raise rows.error(
            _first(unknown),
            f"unknown sample_id ({where}): vendor files may answer only the owned samples of "
            f"the evaluated split ({len(owned)} samples)",
        )
    return align_rows(_ROWS, rows, names, positions, len(owned), options)


def _ours_frame(ours: pd.DataFrame, owned: pd.DataFrame, split: str) -> pd.DataFrame:
    """Our score table restricted to the split, with its labels checked against the manifest
    (a table scored on another manifest version must not be compared silently)."""
    source = ours.attrs.get("source", OURS)
    if "split" in ours.columns:
        present = sorted(map(str, ours["split"].unique()))
        ours = ours[ours["split"] == split]
        if ours.empty:
            raise ValueError(f"{source}: no rows of split {split!r} (splits present: {present})")
    ours = ours.reset_index(drop=True)
    if "label" in ours.columns:
        labels = owned.set_index("sample_id")["label"].reindex(ours["sample_id"]).to_numpy()
        bad = ~np.isnan(labels.astype(float)) & (labels != ours["label"].to_numpy())
        if bad.any():
            i = _first(bad)
            raise VendorRows(source, ours).error(
                i,
                f"label {ours['label'].iloc[i]!r} disagrees with the manifest's "
                f"{labels[i]!r}: was this table scored on another manifest?",
            )
    return ours_as_vendor(ours, _KEYS, source)


def benchmark(
    manifest_frame: pd.DataFrame,
    vendor_frames: Mapping[str, pd.DataFrame] | Iterable[pd.DataFrame],
    *,
    ours: pd.DataFrame | None = None,
    split: str = "test",
    reference: str | None = OURS,
    providers: Mapping[str, Mapping[str, object]] | None = None,
    segments: Sequence[str] = ("geography",),
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_subjects: int = 10,
    apcer_target: float = 0.10,
) -> BenchmarkResult:
    """Judge every provider on the owned `split` of the manifest, side by side.

    `vendor_frames`: source name (a file, for messages) -> frame, or frames carrying
    `attrs["source"]`; declarations (score direction / range) in `frame.attrs` (as
    `read_vendor_file` sets them) or per provider in `providers`. `ours`: our score table
    (optional), entered as provider "ours". `reference`: the provider every other one is
    compared with (paired tests); None for no comparison. A `reference` that is not there is
    an error, except the default "ours" when `ours` is not given (then: no comparison, noted).
    """
    owned = _owned_split(manifest_frame, split)
    rest = manifest_frame[manifest_frame["split"] != split]
    other = dict(zip(rest["sample_id"].astype(str), rest["split"], strict=True))
    attack = owned["label"].to_numpy() == 1
    species = owned["attack_type"].astype(str).to_numpy()
    names = sorted(set(species[attack]))
    kind = Kind(
        mode="detection",
        difference_note="for error rates, > 0 means the provider is worse; for AUC, better",
        split=split,
        items=owned,
        key="sample_id",
        align=partial(align_source, owned, other_splits=other),
        our_table=partial(_ours_frame, owned=owned, split=split),
        positive=attack,
        classes=(("bona_fide", False), ("attack", True)),
        subject_keys=("subjects", "{}_subjects"),
        subjects=owned["subject_id"].to_numpy(),
        failed_score=np.where(attack, -np.inf, np.inf),  # a missed attack, a rejected bona fide
        failed_decision=np.where(attack, 0.0, 1.0),
        statistics=(
            Statistic("eer", eer_statistic),
            Statistic("auc", auc_statistic),
            Statistic(
                f"bpcer_at_worst_apcer_{pct(apcer_target)}",
                bpcer_at_worst_apcer_statistic(apcer_target),
                extra={"species": species},
            ),
        ),
        rates=(
            *(Rate(f"apcer_{n}@decision", attack & (species == n)) for n in names),
            Rate("apcer_worst@decision", attack, groups=species, names=names),
            Rate("bpcer@decision", ~attack),
        ),
        segments_in="in the manifest",
        about=f"Split `{split}`: {len(owned)} owned items of {owned['subject_id'].nunique()} "
        "subjects; ",
        unit="subject-bootstrap",
        failures="Unanswered items count as errors (bona fide as rejected, attack as missed)",
        hidden=("path",),
    )
    boot = (n_resamples, seed, level)
    return run(kind, vendor_frames, ours, reference, providers, segments, boot, min_subjects)


def common_options(cfg) -> dict:
    """The options every kind's benchmark takes, from the composed `benchmark` config."""
    from omegaconf import OmegaConf

    return {
        "split": cfg.split,
        "reference": cfg.reference,
        "providers": OmegaConf.to_container(cfg.providers, resolve=True),
        "segments": list(cfg.segments),
        "n_resamples": cfg.bootstrap.n_resamples,
        "seed": cfg.bootstrap.seed,
        "level": cfg.bootstrap.level,
        "min_subjects": cfg.min_subjects,
    }


def ours_table(cfg, schema: str, expected: str):
    """Our score table (`ours=`) of `schema`, through its one reader (idv.score_tables); None
    when not given. A table of another schema says what is expected."""
    from idv.score_tables import ScoreTableError, read_table

    if not cfg.ours:
        return None
    try:
        return read_table(cfg.ours, schema)
    except ScoreTableError as err:
        mode = f"mode {cfg.mode!r} " if cfg.get("mode") else ""
        raise ScoreTableError(f"{err} ({mode}expects {expected})") from err


def owned_inputs(cfg) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The owned manifest (its files are not needed) and the vendor files of the config."""
    from idv.data.manifest import Manifest
    from idv.evaluation.benchmark_io import read_vendor_file

    manifest = Manifest.load(
        cfg.manifest, labels=cfg.task.labels, required_splits=[cfg.split], check_files=False
    )
    return manifest.frame, [read_vendor_file(f) for f in cfg.vendor_files]


def benchmark_from_config(cfg) -> tuple[BenchmarkResult, str]:
    """The detection kind's benchmark from the composed `benchmark` config: (result, title)."""
    if cfg.get("mode") is not None:
        raise ValueError(
            f"mode={cfg.mode!r} is for matching tasks (comparison | search); task "
            f"{cfg.task.name!r} is a detection task: leave mode unset"
        )
    manifest_frame, vendors = owned_inputs(cfg)
    expected = "our detection scores (idv-evaluate's tables/scores.parquet)"
    ours = ours_table(cfg, "detection", expected)
    result = benchmark(
        manifest_frame, vendors, ours=ours, apcer_target=cfg.apcer_target, **common_options(cfg)
    )
    return result, f"{cfg.task.name}: vendor benchmark"
