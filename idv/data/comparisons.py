"""Face-matching protocols built from a manifest split: 1:1 comparison pairs and 1:N searches.

1:1 protocols (one row per comparison, reference `a`, probe `b`):
- `selfie_selfie`: every pair of selfies of the split;
- `portrait_selfie`: every ID portrait against every selfie, the onboarding case.
Impostor comparisons are all the cross-subject pairs (optionally a seeded sample of
`max_impostors`); those whose two subjects share every `DEMOGRAPHIC` attribute are flagged
`demographic_match`: the hard impostors, reported on their own. Exhaustive pairs make the
counts as large as the split allows, so the FMR points the split can resolve are resolved.

1:N (`search_protocol`): a seeded share of the split's subjects is enrolled with one selfie
each; their other selfies are mated probes, every selfie of the other subjects is a non-mated
probe. Everything is deterministic given the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

COMPARISON_PROTOCOLS = ("selfie_selfie", "portrait_selfie")
DEMOGRAPHIC = ("sex", "age_band", "skin_tone")
SELFIE, PORTRAIT = "selfie", "id_portrait"
PROBE_COLUMNS = ("geography", "capture_device", "age_band", "sex", "skin_tone")


def captures(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Rows of one capture type; a manifest without `capture_type` holds selfies only."""
    if "capture_type" not in frame.columns:
        return frame if kind == SELFIE else frame.iloc[:0]
    return frame[frame["capture_type"] == kind]


def comparison_pairs(
    frame: pd.DataFrame,
    protocol: str,
    *,
    max_impostors: int | None = None,
    seed: int = 0,
    demographic: Sequence[str] = DEMOGRAPHIC,
) -> pd.DataFrame:
    """The comparison rows of `protocol` over a split (no scores yet).

    Columns: comparison_id, sample_id_a/b, subject_id_a/b, genuine, protocol,
    demographic_match, and the probe's (`b`) segment columns.
    """
    if protocol == "selfie_selfie":
        selfies = captures(frame, SELFIE).reset_index(drop=True)
        ia, ib = np.triu_indices(len(selfies), k=1)
        a, b = selfies, selfies
    elif protocol == "portrait_selfie":
        a = captures(frame, PORTRAIT).reset_index(drop=True)
        b = captures(frame, SELFIE).reset_index(drop=True)
        ia, ib = (g.ravel() for g in np.meshgrid(np.arange(len(a)), np.arange(len(b))))
    else:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {COMPARISON_PROTOCOLS}")
    subj_a = a["subject_id"].to_numpy(dtype=object)[ia]
    subj_b = b["subject_id"].to_numpy(dtype=object)[ib]
    genuine = subj_a == subj_b
    keep = np.ones(len(ia), dtype=bool)
    impostors = np.flatnonzero(~genuine)
    if max_impostors is not None and len(impostors) > max_impostors:
        rng = np.random.default_rng([seed, COMPARISON_PROTOCOLS.index(protocol)])
        keep[impostors] = False
        keep[np.sort(rng.choice(impostors, size=max_impostors, replace=False))] = True
    ia, ib, genuine = ia[keep], ib[keep], genuine[keep]
    match = np.ones(len(ia), dtype=bool)
    for column in demographic:
        if column not in frame.columns:
            raise KeyError(f"manifest lacks demographic column {column!r} for hard impostors")
        match &= a[column].to_numpy(dtype=object)[ia] == b[column].to_numpy(dtype=object)[ib]
    table = pd.DataFrame(
        {
            "comparison_id": [f"{protocol}:{i}" for i in range(len(ia))],
            "sample_id_a": a["sample_id"].to_numpy(dtype=object)[ia],
            "sample_id_b": b["sample_id"].to_numpy(dtype=object)[ib],
            "subject_id_a": a["subject_id"].to_numpy(dtype=object)[ia],
            "subject_id_b": b["subject_id"].to_numpy(dtype=object)[ib],
            "genuine": genuine,
            "protocol": protocol,
            "demographic_match": match & ~genuine,
        }
    )
    for column in PROBE_COLUMNS:
        if column in b.columns:
            table[column] = b[column].to_numpy(dtype=object)[ib]
    return table


@dataclass(frozen=True)
class SearchProtocol:
    """Enrolment and probe rows of a 1:N evaluation (`probes` has a boolean `mated` column)."""

    gallery: pd.DataFrame
    probes: pd.DataFrame


def search_protocol(
    frame: pd.DataFrame, *, enrolled_fraction: float = 1 / 3, seed: int = 0
) -> SearchProtocol:
    """Enrol a seeded share of the subjects (one selfie each); every other selfie probes."""
    if not 0 < enrolled_fraction < 1:
        raise ValueError(f"enrolled_fraction must lie in (0, 1), got {enrolled_fraction}")
    selfies = captures(frame, SELFIE).reset_index(drop=True)
    subjects = np.array(sorted(selfies["subject_id"].unique()), dtype=object)
    if len(subjects) < 2:
        raise ValueError("a 1:N protocol needs at least two subjects with selfies")
    rng = np.random.default_rng(seed)
    n_enrolled = min(len(subjects) - 1, max(1, round(enrolled_fraction * len(subjects))))
    enrolled = set(rng.choice(subjects, size=n_enrolled, replace=False).tolist())
    # One enrolment selfie per enrolled subject, drawn in subject order (seeded).
    order = rng.permutation(len(selfies))
    shuffled = selfies.iloc[order]
    first = shuffled[shuffled["subject_id"].isin(enrolled)].groupby("subject_id").head(1)
    gallery = selfies.loc[sorted(first.index)].reset_index(drop=True)
    probes = selfies[~selfies["sample_id"].isin(gallery["sample_id"])].reset_index(drop=True)
    probes = probes.assign(mated=probes["subject_id"].isin(enrolled).to_numpy())
    return SearchProtocol(gallery, probes)
