"""Vendor benchmark: four providers on a tiny owned set, every figure computed by hand (detection
first; the matching tasks' 1:1 and 1:N benchmarks further down, on a tiny face manifest).

The owned test split: 20 subjects s00..s19, each with one bona fide b<NN> and one attack a<NN>
(a00..a09 print, a10..a19 replay), geography EU for even subjects and NA for odd ones; plus one
val sample (v0) that no vendor may answer. Scores are hundredths, so the hand arithmetic below
is exact:

    bona fide  b00..b16 = 0.01..0.17, b17 = 0.40, b18 = 0.80, b19 = 0.90
    print      a00 = 0.30, a01 = 0.35, a02..a09 = 0.53..0.60
    replay     a10..a19 = 0.61..0.70

APCER(t) = attacks < t / 20, BPCER(t) = bona fide >= t / 20.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from idv.data.manifest import write_manifest
from idv.evaluation.benchmark import (
    BenchmarkResult,
    benchmark,
    markdown,
    read_vendor_file,
    write_outputs,
)
from idv.evaluation.benchmark_matching import (
    benchmark_comparisons,
    benchmark_searches,
    owned_comparisons,
    owned_searches,
)
from idv.metrics.detection import auc, bpcer_at_worst_apcer, eer
from idv.metrics.identification import fnir_at_fpir, identification_report, searches
from idv.metrics.resolution import NotSupported
from idv.metrics.verification import verification_report
from idv.score_tables import ScoreTableError
from tests.conftest import compose

N = 20
BONA = [f"b{s:02d}" for s in range(N)]
ATTACK = [f"a{s:02d}" for s in range(N)]
BONA_PCT = [*range(1, 18), 40, 80, 90]
ATTACK_PCT = [30, 35, *range(53, 61), *range(61, 71)]
PCT = dict(zip(BONA + ATTACK, BONA_PCT + ATTACK_PCT, strict=True))
# Provider C did not answer 8 of the 40 items (coverage 0.8): 4 bona fide, 2 print, 2 replay.
UNANSWERED_C = ["b00", "b01", "b02", "b03", "a02", "a03", "a10", "a11"]
FAST = {"n_resamples": 300, "seed": 0}


def owned_manifest() -> pd.DataFrame:
    rows = []
    for s in range(N):
        geo = "EU" if s % 2 == 0 else "NA"
        species = "print" if s < 10 else "replay"
        for sid, label, kind in ((BONA[s], 0, "bona_fide"), (ATTACK[s], 1, species)):
            rows.append(
                {
                    "sample_id": sid,
                    "path": f"img/{sid}.png",
                    "label": label,
                    "subject_id": f"s{s:02d}",
                    "split": "test",
                    "attack_type": kind,
                    "geography": geo,
                }
            )
    rows.append(
        {
            "sample_id": "v0",
            "path": "img/v0.png",
            "label": 0,
            "subject_id": "sv",
            "split": "val",
            "attack_type": "bona_fide",
            "geography": "EU",
        }
    )
    return pd.DataFrame(rows)


def provider_a() -> pd.DataFrame:
    """Score-only, every item answered; latency 1..40 ms, cost 0.01 per item."""
    ids = BONA + ATTACK
    return pd.DataFrame(
        {
            "sample_id": ids,
            "provider": "vendor_a",
            "score": [PCT[i] / 100 for i in ids],
            "latency_ms": np.arange(1, 41, dtype=float),
            "cost": 0.01,
        }
    )


def provider_b() -> pd.DataFrame:
    """Decision-only: passes a00, a01 (print) and a10 (replay) as bona fide, flags b17..b19."""
    passed = {"a00", "a01", "a10"}
    flagged = {"b17", "b18", "b19"}
    decisions = [
        "attack" if (i in ATTACK and i not in passed) or i in flagged else "bona_fide"
        for i in BONA + ATTACK
    ]
    return pd.DataFrame({"sample_id": BONA + ATTACK, "provider": "vendor_b", "decision": decisions})


def provider_c() -> pd.DataFrame:
    """A's scores and decisions (score >= 0.5 -> attack, as 1 / 0) on 32 of 40 items."""
    ids = [i for i in BONA + ATTACK if i not in UNANSWERED_C]
    return pd.DataFrame(
        {
            "sample_id": ids,
            "provider": "vendor_c",
            "score": [PCT[i] / 100 for i in ids],
            "decision": [int(PCT[i] >= 50) for i in ids],
            "latency_ms": 10.0,
            "cost": 0.02,
        }
    )


def provider_d() -> pd.DataFrame:
    """A's scores reversed onto [0, 100]: higher = bona fide."""
    ids = BONA + ATTACK
    return pd.DataFrame(
        {"sample_id": ids, "provider": "vendor_d", "score": [100.0 - PCT[i] for i in ids]}
    )


def ours_table() -> pd.DataFrame:
    """Our scores.parquet (idv-evaluate's detection table): A's scores, on every split."""
    owned = owned_manifest()
    table = owned.drop(columns=["path"]).assign(
        score=[PCT.get(i, 50) / 100 for i in owned["sample_id"]], acquired=True
    )
    return table


def write_parquet_with_metadata(frame: pd.DataFrame, file: Path, metadata: dict) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {k.encode(): v.encode() for k, v in metadata.items()}
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, **extra}), file)
    return file


def row(result: BenchmarkResult, provider: str, segment="all", group="all") -> pd.Series:
    t = result.providers
    hit = t[(t["provider"] == provider) & (t["segment"] == segment) & (t["group"] == group)]
    assert len(hit) == 1
    return hit.iloc[0]


def comparison(result: BenchmarkResult, provider: str, metric: str) -> pd.Series:
    c = result.comparisons
    hit = c[(c["provider"] == provider) & (c["metric"] == metric)]
    assert len(hit) == 1
    return hit.iloc[0]


@pytest.fixture(scope="module")
def result() -> BenchmarkResult:
    vendors = {
        "a.csv": provider_a(),
        "b.csv": provider_b(),
        "c.csv": provider_c(),
        "d.csv": provider_d(),
    }
    return benchmark(
        owned_manifest(),
        vendors,
        ours=ours_table(),
        providers={"vendor_d": {"score_direction": "higher_is_bona_fide", "score_range": [0, 100]}},
        **FAST,
    )


# ------------------------------------------------------------------------ 1. score-only (A)


def test_score_only_provider_matches_hand_computation(result):
    a = row(result, "vendor_a")
    assert a["items"] == 40 and a["answered"] == 40 and a["coverage"] == 1.0
    assert a["has_scores"] and not a["has_decisions"]
    # EER: at t = 0.40 APCER = 2/20 (0.30, 0.35), BPCER = 3/20 (0.40, 0.80, 0.90): gap 0.05;
    # at t = 0.53 APCER = 2/20, BPCER = 2/20: gap exactly 0, so EER = 0.10.
    assert a["eer"] == pytest.approx(0.10)
    # AUC: attack <= bona fide pairs: 0.30 and 0.35 lie below 3 bona fide each (6), the 18
    # others below 2 each (36): 42 of 400 pairs, AUC = 358/400.
    assert a["auc"] == pytest.approx(358 / 400)
    # BPCER at worst-species APCER <= 10%: print may have at most 1 of 10 below t, so
    # t <= 0.35 (at 0.53 two prints are below); BPCER(0.35) = 3/20 (0.40, 0.80, 0.90).
    assert a["bpcer_at_worst_apcer_10pct"] == pytest.approx(0.15)
    # the same as idv.metrics.detection on the plain arrays
    owned = owned_manifest().query("split == 'test'")
    scores = provider_a().set_index("sample_id").loc[owned["sample_id"], "score"].to_numpy()
    labels = owned["label"].to_numpy()
    assert a["eer"] == pytest.approx(eer(scores, labels).rate)
    assert a["auc"] == pytest.approx(auc(scores, labels))
    assert a["bpcer_at_worst_apcer_10pct"] == pytest.approx(
        bpcer_at_worst_apcer(scores, labels, owned["attack_type"], 0.10)
    )
    assert a["eer_low"] <= a["eer"] <= a["eer_high"]
    assert np.isnan(a["bpcer@decision"]) and np.isnan(a["apcer_worst@decision"])
    # EU: bona fide b00, b02, .., b16 (0.01..0.17 odd hundredths) and b18 (0.80); attacks
    # 0.30, 0.54, 0.56, 0.58, 0.60, 0.61, .., 0.69. At t = 0.54: APCER 1/10, BPCER 1/10.
    eu = row(result, "vendor_a", "geography", "EU")
    assert eu["items"] == 20 and eu["subjects"] == 10
    assert eu["eer"] == pytest.approx(0.10)


# --------------------------------------------------------------------- 2. decision-only (B)


def test_decision_only_provider_matches_hand_computation(result):
    b = row(result, "vendor_b")
    assert not b["has_scores"] and b["has_decisions"]
    assert np.isnan(b["eer"]) and np.isnan(b["auc"])
    # print: a00, a01 passed of 10 -> 0.2; replay: a10 of 10 -> 0.1; worst 0.2;
    # bona fide: b17, b18, b19 flagged of 20 -> 0.15.
    assert b["apcer_print@decision"] == pytest.approx(0.2)
    assert b["apcer_replay@decision"] == pytest.approx(0.1)
    assert b["apcer_worst@decision"] == pytest.approx(0.2)
    assert b["bpcer@decision"] == pytest.approx(0.15)
    for key in ("apcer_print@decision", "apcer_worst@decision", "bpcer@decision"):
        assert b[f"{key}_low"] <= b[key] <= b[f"{key}_high"]
        assert b[f"{key}_high"] > b[f"{key}_low"]  # a real interval, not a point
    # NA (odd subjects): prints a01 passed of a01, a03, .., a09 -> 1/5; replays none of 5;
    # bona fide b17, b19 flagged of 10 -> 0.2.
    na = row(result, "vendor_b", "geography", "NA")
    assert na["apcer_print@decision"] == pytest.approx(0.2)
    assert na["apcer_replay@decision"] == pytest.approx(0.0)
    assert na["bpcer@decision"] == pytest.approx(0.2)


# ----------------------------------------------------------------- 3. 20% unanswered (C)


def test_unanswered_items_are_failures_to_acquire(result):
    c = row(result, "vendor_c")
    assert c["answered"] == 32 and c["coverage"] == pytest.approx(0.8)
    assert c["coverage_bona_fide"] == pytest.approx(0.8)  # 16 of 20
    assert c["coverage_attack"] == pytest.approx(0.8)  # 16 of 20
    # Decisions (score >= 0.5): answered bona fide flagged: b18, b19; plus the 4 unanswered
    # bona fide counted as rejected -> BPCER 6/20 = 0.30 (answered only: 2/16 = 0.125).
    assert c["bpcer@decision"] == pytest.approx(6 / 20)
    # print: a00, a01 missed + a02, a03 unanswered (counted as missed) -> 4/10 = 0.40. Had the
    # unanswered attacks been dropped it would read 2/8 = 0.25, had they counted as detected
    # 2/10 = 0.20: either way lower, which a missing answer must never achieve.
    assert c["apcer_print@decision"] == pytest.approx(0.4)
    # replay: none missed, a10 and a11 unanswered -> 2/10 (not 0/8 or 0/10).
    assert c["apcer_replay@decision"] == pytest.approx(0.2)
    assert c["apcer_worst@decision"] == pytest.approx(0.4)
    # Scores: bona fide b00..b03 -> +inf, attacks a02, a03, a10, a11 -> -inf. Walking up:
    #   t = 0.17: APCER 4/20, BPCER (0.17, 0.40, 0.80, 0.90, 4 x inf) 8/20, gap 0.20
    #   t = 0.30: APCER 4/20, BPCER 7/20, gap 0.15;  t = 0.35: APCER 5/20, BPCER 7/20
    #   t = 0.40: APCER 6/20, BPCER 7/20, gap 0.05;  t = 0.55: APCER 6/20, BPCER 6/20 -> 0.30.
    assert c["eer"] == pytest.approx(0.30)
    # AUC: attack <= bona fide pairs: 4 x -inf below all 20 (80); 0.30, 0.35 below 7 each
    # (14); 6 prints and 8 replays below 6 each (84): 178 of 400 -> 222/400.
    assert c["auc"] == pytest.approx(222 / 400)
    # Two of 10 prints are below every finite threshold, so print APCER <= 10% only at
    # t = -inf, where every bona fide is rejected: BPCER10 = 1.
    assert c["bpcer_at_worst_apcer_10pct"] == pytest.approx(1.0)
    # Unanswered items are never dropped: the long table still holds all 40 for C.
    t = result.table[result.table["provider"] == "vendor_c"]
    assert len(t) == 40 and set(t.loc[~t["answered"], "sample_id"]) == set(UNANSWERED_C)


def test_declared_failures_equal_missing_rows():
    """acquired=False rows (NaN score / decision allowed there) count like absent rows."""
    c = provider_c()
    declared = pd.DataFrame(
        {"sample_id": UNANSWERED_C, "provider": "vendor_c", "score": np.nan, "decision": None}
    ).assign(acquired=False, latency_ms=10.0, cost=0.02)
    full = pd.concat([c.assign(acquired=True), declared], ignore_index=True)
    a = benchmark(owned_manifest(), {"c.csv": c}, reference=None, segments=[], **FAST)
    b = benchmark(owned_manifest(), {"c.csv": full}, reference=None, segments=[], **FAST)
    keys = ["coverage", "eer", "auc", "bpcer@decision", "apcer_worst@decision", "eer_low"]
    assert row(a, "vendor_c")[keys].tolist() == row(b, "vendor_c")[keys].tolist()
    # ... but the declared failures are billed and timed: 40 rows x 0.02
    assert row(b, "vendor_c")["cost_total"] == pytest.approx(0.80)
    assert row(a, "vendor_c")["cost_total"] == pytest.approx(0.64)


# -------------------------------------------------------------- 4. reversed direction (D)

SCORE_KEYS = ["eer", "eer_low", "eer_high", "auc", "auc_low", "auc_high"]
SCORE_KEYS += ["bpcer_at_worst_apcer_10pct", "bpcer_at_worst_apcer_10pct_high"]


def test_reversed_scores_declared_in_config_equal_flipped(result):
    # D's raw scores are 100 - 100 a; flipped within [0, 100] they are 100 a: every rate of A.
    d, a = row(result, "vendor_d"), row(result, "vendor_a")
    assert d[SCORE_KEYS].tolist() == pytest.approx(a[SCORE_KEYS].tolist())
    assert d["eer"] == pytest.approx(0.10) and d["auc"] == pytest.approx(358 / 400)


def test_reversed_scores_declared_in_parquet_metadata(tmp_path):
    meta = {"score_direction": "higher_is_bona_fide", "score_range": "[0, 100]"}
    file = write_parquet_with_metadata(provider_d(), tmp_path / "d.parquet", meta)
    frame = read_vendor_file(file)
    assert frame.attrs["score_direction"] == "higher_is_bona_fide"
    assert frame.attrs["score_range"] == [0, 100]
    flipped = provider_d().assign(score=lambda f: 100.0 - f["score"], provider="flipped")
    got = benchmark(
        owned_manifest(),
        [frame, flipped],
        reference="flipped",
        providers={"flipped": {"score_range": [0, 100]}},
        **FAST,
    )
    d, f = row(got, "vendor_d"), row(got, "flipped")
    assert d[SCORE_KEYS].tolist() == f[SCORE_KEYS].tolist()
    assert d["eer"] == pytest.approx(0.10)
    # and the paired difference between the two is exactly zero
    diff = comparison(got, "vendor_d", "eer")
    assert (diff["difference"], diff["low"], diff["high"]) == (0.0, 0.0, 0.0)


def test_reversed_scores_declared_in_csv_sidecar(tmp_path):
    provider_d().to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "d.meta.json").write_text(
        json.dumps({"score_direction": "higher_is_bona_fide", "score_range": [0, 100]})
    )
    got = benchmark(owned_manifest(), [read_vendor_file(tmp_path / "d.csv")], **FAST)
    assert row(got, "vendor_d")["eer"] == pytest.approx(0.10)
    assert got.reference is None and got.comparisons.empty  # no `ours`: noted, not compared
    assert any("No score table of ours" in n for n in got.notes)


def test_conflicting_direction_between_file_and_config_is_an_error():
    frame = provider_d()
    frame.attrs.update(score_direction="higher_is_bona_fide", score_range=[0, 100])
    with pytest.raises(ValueError, match="d.parquet: provider 'vendor_d': score_direction"):
        benchmark(
            owned_manifest(),
            {"d.parquet": frame},
            providers={"vendor_d": {"score_direction": "higher_is_attack"}},
            **FAST,
        )


# ------------------------------------------------------------------------ paired tests


def test_paired_test_of_identical_providers_is_zero(result):
    # vendor_a holds exactly our scores: every resample gives the same value to both.
    for metric in ("eer", "auc", "bpcer_at_worst_apcer_10pct"):
        c = comparison(result, "vendor_a", metric)
        assert c["reference"] == "ours" and c["method"] == "paired subject bootstrap"
        assert (c["difference"], c["low"], c["high"]) == (0.0, 0.0, 0.0)
        assert not c["excludes_zero"] and c["share_positive"] == 0.0


def test_paired_test_of_different_providers_excludes_zero(result):
    # C (unanswered items as errors) against ours (= A): EER 0.30 - 0.10 = 0.20.
    c = comparison(result, "vendor_c", "eer")
    assert c["difference"] == pytest.approx(0.20)
    assert c["excludes_zero"] and c["low"] > 0
    assert comparison(result, "vendor_c", "auc")["difference"] == pytest.approx(-136 / 400)
    # B gives decisions only, ours scores only: nothing to pair, and the notes say so.
    assert not (result.comparisons["provider"] == "vendor_b").any()
    assert any("vendor_b" in n and "no paired comparison" in n for n in result.notes)


def test_paired_decisions_bootstrap_and_mcnemar():
    b2 = provider_b().assign(provider="vendor_b2")
    got = benchmark(
        owned_manifest(),
        {"b.csv": provider_b(), "b2.csv": b2, "c.csv": provider_c()},
        reference="vendor_b",
        segments=[],
        **FAST,
    )
    same = comparison(got, "vendor_b2", "bpcer@decision")
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert same["candidate_only_errors"] == 0 and same["mcnemar_p"] == 1.0
    # BPCER: C rejects b00..b03 (unanswered), b18, b19; B rejects b17, b18, b19. Discordant:
    # C only 4, B only 1 -> exact McNemar p = 2 P(X >= 4 | n=5) = 2 (5 + 1) / 32 = 0.375.
    c = comparison(got, "vendor_c", "bpcer@decision")
    assert c["difference"] == pytest.approx(0.30 - 0.15)
    assert (c["candidate_only_errors"], c["reference_only_errors"]) == (4, 1)
    assert c["mcnemar_p"] == pytest.approx(0.375)
    # worst APCER: C 0.4 (print) - B 0.2 (print)
    w = comparison(got, "vendor_c", "apcer_worst@decision")
    assert w["difference"] == pytest.approx(0.2)
    assert w["low"] <= w["difference"] <= w["high"]
    # C gives scores but the reference B does not: decision metrics only, no curve comparison
    assert not (
        (got.comparisons["provider"] == "vendor_c") & (got.comparisons["metric"] == "eer")
    ).any()


# ---------------------------------------------------------------------- latency and cost


def test_latency_percentiles_and_cost(result):
    a = row(result, "vendor_a")
    # latency 1..40 ms, numpy's linear percentiles: p50 = 20.5, p95 = 1 + 0.95 x 39 = 38.05,
    # p99 = 1 + 0.99 x 39 = 39.61
    assert a["latency_p50_ms"] == pytest.approx(20.5)
    assert a["latency_p95_ms"] == pytest.approx(38.05)
    assert a["latency_p99_ms"] == pytest.approx(39.61)
    assert a["cost_total"] == pytest.approx(0.40) and a["cost_per_item"] == pytest.approx(0.01)
    c = row(result, "vendor_c")
    # 32 answered rows at 0.02: 0.64 in total, over the 40 owned items: 0.016 per item
    assert c["cost_total"] == pytest.approx(0.64) and c["cost_per_item"] == pytest.approx(0.016)
    assert c["latency_p99_ms"] == pytest.approx(10.0)
    b = row(result, "vendor_b")  # no latency, no cost columns
    assert np.isnan(b["latency_p50_ms"]) and np.isnan(b["cost_total"])


# ------------------------------------------------------------------------------ errors


def _run(frame: pd.DataFrame, **kwargs) -> BenchmarkResult:
    return benchmark(owned_manifest(), {"vendor.csv": frame}, reference=None, **FAST, **kwargs)


def test_unknown_sample_id_is_an_error():
    frame = provider_a()
    frame.loc[5, "sample_id"] = "nobody"
    with pytest.raises(
        ValueError,
        match=r"vendor.csv: row 5 \(sample_id='nobody'\): unknown sample_id \(not in the manifest",
    ):
        _run(frame)
    frame.loc[5, "sample_id"] = "v0"  # owned, but in val: not part of the evaluated split
    with pytest.raises(
        ValueError,
        match=r"row 5 \(sample_id='v0'\): unknown sample_id \(it belongs to split 'val'\)",
    ):
        _run(frame)


def test_duplicate_rows_are_an_error():
    frame = pd.concat([provider_a(), provider_a().iloc[[3]]], ignore_index=True)
    with pytest.raises(
        ValueError, match=r"vendor.csv: row 40 .*'vendor_a' \(first seen at row 3\)"
    ):
        _run(frame)
    # the same provider in two files, overlapping
    with pytest.raises(ValueError, match="duplicate rows for sample_id 'b03'"):
        benchmark(owned_manifest(), {"1.csv": provider_a(), "2.csv": provider_a().iloc[[3]]})


def test_score_outside_declared_range_is_an_error():
    frame = provider_a()
    frame.loc[7, "score"] = 1.5
    with pytest.raises(ValueError, match=r"row 7 .*score 1.5 outside the declared range \[0, 1\]"):
        _run(frame)
    with pytest.raises(ValueError, match="outside the declared range"):
        _run(provider_d())  # 0..100 without its declaration


def test_neither_score_nor_decision_is_an_error():
    frame = provider_a().drop(columns=["score"])
    with pytest.raises(ValueError, match="vendor.csv: neither a 'score' nor a 'decision'"):
        _run(frame)
    empty = provider_a().assign(score=np.nan, acquired=False)
    with pytest.raises(ValueError, match="'vendor_a' has neither a score nor a decision"):
        _run(empty)


def test_decision_not_understood_is_an_error():
    frame = provider_b()
    frame.loc[2, "decision"] = "maybe"
    with pytest.raises(ValueError, match=r"row 2 .*decision 'maybe' not understood"):
        _run(frame)


def test_nan_score_in_answered_row_is_an_error():
    frame = provider_a()
    frame.loc[4, "score"] = np.nan
    with pytest.raises(ValueError, match=r"row 4 .*NaN score in an answered row"):
        _run(frame)


def test_reference_must_exist_and_ours_is_reserved():
    with pytest.raises(ValueError, match="reference provider 'acme' is not among"):
        benchmark(owned_manifest(), {"a.csv": provider_a()}, reference="acme", **FAST)
    with pytest.raises(ValueError, match="'ours' is reserved"):
        benchmark(owned_manifest(), {"a.csv": provider_a().assign(provider="ours")}, **FAST)


def test_our_table_with_other_labels_is_an_error():
    ours = ours_table()
    ours.loc[0, "label"] = 1
    with pytest.raises(ValueError, match="disagrees with the manifest"):
        benchmark(owned_manifest(), {}, ours=ours, **FAST)


# ---------------------------------------------------------------------------- outputs / CLI


def test_outputs(result, tmp_path):
    paths = write_outputs(result, tmp_path)
    table = pd.read_csv(paths["csv"])
    assert len(table) == 5 * 3  # 5 providers x (all, EU, NA)
    assert {"provider", "segment", "group", "coverage", "eer_low", "cost_per_item"} <= set(
        table.columns
    )
    data = json.loads(paths["json"].read_text())
    assert data["reference"] == "ours" and len(data["providers"]) == 15
    assert data["providers"][0]["latency_p50_ms"] is None  # ours: no latency, NaN -> null
    text = paths["markdown"].read_text()
    assert "| vendor_c | all | all | 80.0% | 0.3000 [" in text
    assert "## Paired differences against `ours`" in text
    assert markdown(result) == text


def test_cli_composes_and_writes(tmp_path):
    from idv.cli.benchmark import run

    write_manifest(owned_manifest(), tmp_path / "manifest.parquet")
    provider_a().to_csv(tmp_path / "a.csv", index=False)
    provider_d().to_csv(tmp_path / "d.csv", index=False)
    ours_table().to_parquet(tmp_path / "scores.parquet")
    out = tmp_path / "out"
    cfg = compose(
        "benchmark",
        [
            f"manifest={tmp_path / 'manifest.parquet'}",
            f"vendor_files=[{tmp_path / 'a.csv'},{tmp_path / 'd.csv'}]",
            f"ours={tmp_path / 'scores.parquet'}",
            "+providers.vendor_d={score_direction: higher_is_bona_fide, score_range: [0, 100]}",
            "bootstrap.n_resamples=200",
        ],
        out,
    )
    got = run(cfg)
    assert (out / "benchmark.csv").is_file() and (out / "benchmark.md").is_file()
    assert row(got, "vendor_d")["eer"] == pytest.approx(0.10)
    assert comparison(got, "vendor_a", "eer")["difference"] == 0.0


def test_auc_statistic_equals_mann_whitney_with_ties():
    from idv.metrics.bootstrap import auc_statistic, bootstrap_curve

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(0, 1, 300) + labels, 1)  # many ties
    subjects = np.arange(300) // 3
    got = bootstrap_curve(scores, labels, subjects, auc_statistic, n_resamples=20).estimate
    assert got == pytest.approx(auc(scores, labels), abs=1e-12)


# ======================================================================================
# Matching tasks (face_match): 1:1 comparison files and 1:N search files.
#
# The owned test split: 20 subjects S00..S19, each with 3 selfies and 1 ID portrait (geography
# EU for even subjects, NA for odd ones); 9 val subjects V00..V08 alike. With the evaluation
# seed 1234, as idv-evaluate builds them:
#   1:1 portrait_selfie: 20 portraits x 60 selfies = 1200 comparisons, 60 genuine and 1140
#       impostor (FMR 1e-2 needs 300 impostors: resolved; 1e-3 needs 3000: not).
#   1:N (enrolled_fraction 0.34, the task's): 7 subjects enrolled with one selfie each; 14
#       mated probes (their other selfies) and 39 non-mated (13 subjects x 3): FPIR 0.1 needs
#       30 non-mated searches of >= 10 subjects: resolved; 1e-2 needs 300: not.
#
# 1:1 scores of vendor A (= ours), owned order: genuine 0.9 but the first 5 at 0.3; impostor
# 0.1 but the first 20 at 0.5. So FNMR(t) = genuine < t / 60, FMR(t) = impostor >= t / 1140.
# ======================================================================================

SEED = 1234  # idv-evaluate's (conf/evaluate.yaml) and idv-benchmark's default
ENROLLED = 0.34  # conf/task/face_match.yaml
FMR_TARGETS = (1e-2, 1e-3)
FPIR_TARGETS = (0.1, 0.01)


def faces_manifest() -> pd.DataFrame:
    rows = []
    for split, prefix, n in (("test", "S", 20), ("val", "V", 9)):
        for s in range(n):
            demo = {
                "sex": "female" if s % 2 else "male",
                "age_band": "30-49",
                "skin_tone": "III-IV",
                "geography": "EU" if s % 2 == 0 else "NA",
            }
            for kind, k in (("selfie", 0), ("selfie", 1), ("selfie", 2), ("id_portrait", 0)):
                sid = f"{prefix}{s:02d}_{kind}_{k}"
                rows.append(
                    {
                        "sample_id": sid,
                        "path": f"img/{sid}.png",
                        "label": 0,
                        "subject_id": f"{prefix}{s:02d}",
                        "split": split,
                        "attack_type": "bona_fide",
                        "capture_type": kind,
                        **demo,
                    }
                )
    return pd.DataFrame(rows)


def owned_1to1(split: str = "test", protocol: str = "portrait_selfie", **kw) -> pd.DataFrame:
    return owned_comparisons(faces_manifest(), split, protocol, seed=kw.pop("seed", SEED), **kw)


def a_scores(owned: pd.DataFrame) -> np.ndarray:
    genuine = owned["genuine"].to_numpy(bool)
    scores = np.where(genuine, 0.9, 0.1)
    scores[np.flatnonzero(genuine)[:5]] = 0.3
    scores[np.flatnonzero(~genuine)[:20]] = 0.5
    return scores


# B = A's scores, without 3 genuine comparisons at 0.9 and 10 of the impostors at 0.5.
def b_unanswered(owned: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    genuine = owned["genuine"].to_numpy(bool)
    return np.flatnonzero(genuine)[5:8], np.flatnonzero(~genuine)[:10]


def vendor_a_1to1() -> pd.DataFrame:
    """Keyed by comparison_id; decisions match at score >= 0.5."""
    owned = owned_1to1()
    s = a_scores(owned)
    return pd.DataFrame(
        {
            "comparison_id": owned["comparison_id"],
            "provider": "vendor_a",
            "score": s,
            "decision": np.where(s >= 0.5, "match", "non_match"),
            "latency_ms": 100.0,
            "cost": 0.001,
        }
    )


def vendor_b_1to1() -> pd.DataFrame:
    """Keyed by the pair (every other one swapped), decisions 1 / 0; 13 comparisons
    unanswered: one declared acquired=False, the others left out."""
    owned = owned_1to1()
    s = a_scores(owned)
    gen, imp = b_unanswered(owned)
    swap = np.arange(len(owned)) % 2 == 1
    a, b = owned["sample_id_a"].to_numpy(), owned["sample_id_b"].to_numpy()
    frame = pd.DataFrame(
        {
            "sample_id_a": np.where(swap, b, a),
            "sample_id_b": np.where(swap, a, b),
            "provider": "vendor_b",
            "score": s,
            "decision": (s >= 0.5).astype(int),
            "acquired": True,
        }
    )
    frame.loc[gen[0], ["score", "decision", "acquired"]] = [np.nan, None, False]
    return frame.drop(index=[*gen[1:], *imp]).reset_index(drop=True)


def ours_1to1() -> pd.DataFrame:
    """Our comparison table (idv-evaluate's): both protocols, val and test; test
    portrait_selfie = A's scores, the rest arbitrary."""
    parts = []
    for split in ("val", "test"):
        for protocol in ("selfie_selfie", "portrait_selfie"):
            t = owned_1to1(split, protocol)
            score = a_scores(t) if (split, protocol) == ("test", "portrait_selfie") else 0.2
            parts.append(t.assign(score=score, acquired=True, split=split))
    return pd.concat(parts, ignore_index=True)


def run_1to1(vendors, **kw) -> BenchmarkResult:
    args = {"protocol": "portrait_selfie", "protocol_seed": SEED, "fmr_targets": FMR_TARGETS}
    return benchmark_comparisons(faces_manifest(), vendors, **{**args, **FAST, **kw})


@pytest.fixture(scope="module")
def result_1to1() -> BenchmarkResult:
    return run_1to1({"a.csv": vendor_a_1to1(), "b.csv": vendor_b_1to1()}, ours=ours_1to1())


def test_comparison_metrics_match_hand_computation_and_verification_report(result_1to1):
    a = row(result_1to1, "vendor_a")
    assert (a["items"], a["genuine_comparisons"], a["impostor_comparisons"]) == (1200, 60, 1140)
    assert a["coverage"] == 1.0 and a["probe_subjects"] == 20
    # FMR(0.5) = 20/1140 > 1e-2, FMR(0.9) = 0: the threshold is 0.9, FNMR(0.9) = 5/60.
    assert a["fnmr_at_fmr_1e-02"] == pytest.approx(5 / 60)
    # 1140 impostors cannot resolve 1e-3 (rule of three: 3000): NaN, and the notes say why.
    assert np.isnan(a["fnmr_at_fmr_1e-03"]) and np.isnan(a["fnmr_at_fmr_1e-03_low"])
    assert any("`fnmr_at_fmr_1e-03` not resolved" in n and "3000" in n for n in result_1to1.notes)
    # Decisions at 0.5: genuine 0.3 x 5 rejected, impostor 0.5 x 20 accepted.
    assert a["fnmr@decision"] == pytest.approx(5 / 60)
    assert a["fmr@decision"] == pytest.approx(20 / 1140)
    # EER: at t = 0.5 FNMR 5/60 >= FMR 20/1140; interpolated from t = 0.3 (FNMR 0, FMR
    # 20/1140) it lands on 20/1140.
    assert a["eer"] == pytest.approx(20 / 1140)
    report = verification_report(owned_1to1().assign(score=a_scores(owned_1to1())), FMR_TARGETS)
    assert a["eer"] == pytest.approx(report["eer"])
    assert a["fnmr_at_fmr_1e-02"] == pytest.approx(report["fnmr_at_fmr_1e-02"])
    assert isinstance(report["fnmr_at_fmr_1e-03"], NotSupported)
    assert a["eer_low"] <= a["eer"] <= a["eer_high"]
    assert a["latency_p50_ms"] == 100.0 and a["cost_total"] == pytest.approx(1.2)
    # per probe segment: EU probes (even subjects) hold 30 genuine, 570 impostors
    eu = row(result_1to1, "vendor_a", "geography", "EU")
    assert (eu["genuine_comparisons"], eu["impostor_comparisons"]) == (30, 570)


def test_unanswered_comparisons_are_non_matches(result_1to1):
    b = row(result_1to1, "vendor_b")
    assert b["answered"] == 1200 - 13 and b["coverage_genuine"] == pytest.approx(57 / 60)
    assert b["coverage_impostor"] == pytest.approx(1130 / 1140)
    # Decisions: the 3 unanswered genuine comparisons are rejections (5 + 3 of 60), the 10
    # unanswered impostors are never false matches (20 - 10 of 1140).
    assert b["fnmr@decision"] == pytest.approx(8 / 60)
    assert b["fmr@decision"] == pytest.approx(10 / 1140)
    # Scores: unanswered at -inf. FMR(0.3) = 10/1140 <= 1e-2: threshold 0.3, below which lie
    # only the 3 unanswered genuine comparisons: FNMR 3/60.
    assert b["fnmr_at_fmr_1e-02"] == pytest.approx(3 / 60)
    owned = owned_1to1()
    gen, imp = b_unanswered(owned)
    answered = np.ones(len(owned), bool)
    answered[[*gen, *imp]] = False
    table = owned.assign(score=np.where(answered, a_scores(owned), np.nan), acquired=answered)
    report = verification_report(table, FMR_TARGETS)
    assert b["eer"] == pytest.approx(report["eer"])
    assert b["fnmr_at_fmr_1e-02"] == pytest.approx(report["fnmr_at_fmr_1e-02"])
    t = result_1to1.table
    assert (t["provider"] == "vendor_b").sum() == 1200  # nothing dropped


def test_comparison_paired_differences(result_1to1):
    assert result_1to1.reference == "ours" and result_1to1.mode == "comparison"
    for metric in ("eer", "fnmr_at_fmr_1e-02"):
        same = comparison(result_1to1, "vendor_a", metric)
        assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert not (result_1to1.comparisons["metric"] == "fnmr_at_fmr_1e-03").any()  # unresolved
    diff = comparison(result_1to1, "vendor_b", "fnmr_at_fmr_1e-02")
    assert diff["difference"] == pytest.approx(3 / 60 - 5 / 60)
    # ours has no decisions: against vendor_a, B's decisions are paired + McNemar
    got = run_1to1({"a.csv": vendor_a_1to1(), "b.csv": vendor_b_1to1()}, reference="vendor_a")
    fnmr = comparison(got, "vendor_b", "fnmr@decision")
    assert fnmr["difference"] == pytest.approx(3 / 60)
    # 3 genuine rejected by B only: exact McNemar p = 2 / 2^3
    assert (fnmr["candidate_only_errors"], fnmr["reference_only_errors"]) == (3, 0)
    assert fnmr["mcnemar_p"] == pytest.approx(0.25)
    fmr = comparison(got, "vendor_b", "fmr@decision")
    assert (fmr["candidate_only_errors"], fmr["reference_only_errors"]) == (0, 10)
    assert fmr["mcnemar_p"] == pytest.approx(2 / 2**10)


def test_comparisons_keyed_by_id_or_pair_are_the_same():
    by_id = vendor_a_1to1()
    owned = owned_1to1()
    by_pair = by_id.drop(columns=["comparison_id"]).assign(
        sample_id_a=owned["sample_id_b"], sample_id_b=owned["sample_id_a"], provider="by_pair"
    )
    both = by_id.assign(
        sample_id_a=owned["sample_id_a"], sample_id_b=owned["sample_id_b"], provider="both"
    )
    got = run_1to1({"a.csv": by_id, "p.csv": by_pair, "b.csv": both}, reference=None)
    keys = ["eer", "eer_low", "eer_high", "fnmr_at_fmr_1e-02", "fnmr@decision", "fmr@decision"]
    assert row(got, "by_pair")[keys].tolist() == row(got, "vendor_a")[keys].tolist()
    assert row(got, "both")[keys].tolist() == row(got, "vendor_a")[keys].tolist()


def test_distances_declared_equal_similarities():
    d = vendor_a_1to1().assign(score=lambda f: 1.0 - f["score"], provider="vendor_d")
    d.attrs["score_direction"] = "higher_is_different"
    got = run_1to1({"a.csv": vendor_a_1to1(), "d.csv": d}, reference="vendor_a")
    assert comparison(got, "vendor_d", "eer")["difference"] == 0.0
    assert row(got, "vendor_d")["fnmr_at_fmr_1e-02"] == pytest.approx(5 / 60)
    d.attrs.clear()
    with pytest.raises(ValueError, match="score_direction 'higher_is_bona_fide' is not one of"):
        run_1to1({"d.csv": d}, providers={"vendor_d": {"score_direction": "higher_is_bona_fide"}})


def test_unknown_or_inconsistent_comparisons_are_errors():
    frame = vendor_b_1to1()
    frame.loc[3, ["sample_id_a", "sample_id_b"]] = ["V00_id_portrait_0", "S00_selfie_0"]
    with pytest.raises(
        ValueError,
        match=r"b.csv: row 3 \(sample_id_a='V00_id_portrait_0', sample_id_b='S00_selfie_0'\): "
        r"unknown pair \(sample 'V00_id_portrait_0' belongs to split 'val'\)",
    ):
        run_1to1({"b.csv": frame}, reference=None)
    frame.loc[3, ["sample_id_a", "sample_id_b"]] = ["S00_selfie_1", "S00_selfie_0"]  # 1:1 of
    with pytest.raises(  # selfies: another protocol
        ValueError, match=r"row 3 .*unknown pair: not one of the 1200 comparisons of protocol"
    ):
        run_1to1({"b.csv": frame}, reference=None)
    by_id = vendor_a_1to1()
    by_id.loc[7, "comparison_id"] = "portrait_selfie:99999"
    with pytest.raises(
        ValueError, match=r"a.csv: row 7 \(comparison_id='portrait_selfie:99999'\): unknown"
    ):
        run_1to1({"a.csv": by_id}, reference=None)
    by_id.loc[7, "comparison_id"] = "selfie_selfie:3"
    with pytest.raises(ValueError, match=r"unknown comparison_id \(a selfie_selfie comparison"):
        run_1to1({"a.csv": by_id}, reference=None)
    owned = owned_1to1()
    both = vendor_a_1to1().assign(sample_id_a=owned["sample_id_a"], sample_id_b="S01_selfie_0")
    with pytest.raises(ValueError, match=r"row 0 .*comparison_id names the pair"):
        run_1to1({"a.csv": both}, reference=None)
    twice = pd.concat([vendor_b_1to1(), vendor_b_1to1().iloc[[0]]], ignore_index=True)
    twice.loc[len(twice) - 1, ["sample_id_a", "sample_id_b"]] = twice.loc[
        0, ["sample_id_b", "sample_id_a"]
    ].to_numpy()  # the same pair, the other way round
    with pytest.raises(ValueError, match=r"duplicate comparison for provider 'vendor_b'"):
        run_1to1({"b.csv": twice}, reference=None)
    bad = vendor_a_1to1()
    bad.loc[2, "decision"] = "maybe"
    with pytest.raises(ValueError, match=r"row 2 .*decision 'maybe' not understood"):
        run_1to1({"a.csv": bad}, reference=None)


def test_our_comparison_table_on_another_protocol_is_an_error():
    ours = ours_1to1()
    with pytest.raises(ValueError, match="no comparisons of protocol 'portrait_selfie'"):
        run_1to1({}, ours=ours[ours["protocol"] == "selfie_selfie"])
    # sampled impostors: another seed draws other pairs under the same ids
    sampled = owned_1to1(max_impostors=200, seed=1).assign(score=0.5, split="test")
    with pytest.raises(ValueError, match=r"does not hold exactly the 260 comparisons.*seed"):
        run_1to1({}, ours=sampled, max_impostors=200)
    with pytest.raises(ValueError, match="does not hold exactly the 1200 comparisons"):
        run_1to1({}, ours=ours[ours["split"] == "test"].iloc[:-1])


def test_random_comparisons_equal_verification_report():
    """Ties, unanswered genuine and impostor rows: the benchmark's point estimates are
    verification_report's."""
    owned = owned_1to1()
    rng = np.random.default_rng(5)
    genuine = owned["genuine"].to_numpy(bool)
    score = np.round(rng.normal(0.0, 0.2, len(owned)) + 0.5 * genuine, 1)
    answered = rng.random(len(owned)) > 0.1
    frame = owned[["comparison_id"]].assign(score=score, acquired=answered, provider="r")
    got = row(run_1to1({"r.csv": frame}, reference=None, segments=[]), "r")
    table = owned.assign(score=np.where(answered, score, np.nan), acquired=answered)
    report = verification_report(table, (1e-2,))
    assert got["eer"] == pytest.approx(report["eer"], abs=1e-12)
    assert got["fnmr_at_fmr_1e-02"] == pytest.approx(report["fnmr_at_fmr_1e-02"], abs=1e-12)


# ----------------------------------------------------------------------------------- 1:N
#
# Vendor S (= ours), in owned probe order (mated probes m0..m13, non-mated n0..n38); the
# enrolled subjects E, in sorted order, and "others" = enrolled subjects that are not the mate:
#   m0..m3:  rank 1 another at 0.7, rank 2 the mate at 0.6, rank 3 another at 0.2
#   m4, m5:  the mate absent: two others at 0.4, 0.3
#   m6..m13: rank 1 the mate at 0.9, rank 2 another at 0.4
#   n0..n2:  two others at 0.8, 0.3;  n3..n38: two others at 0.5, 0.2
# FPIR(t) = non-mated with top >= t / 39; FNIR(t) = mated whose mate scored < t / 14.
# Vendor T = S, but m6, m7 left out, n0 declared acquired=False, m8 an empty candidate list.


def owned_1ton(split: str = "test", seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    return owned_searches(faces_manifest(), split, enrolled_fraction=ENROLLED, seed=seed)


def vendor_s_1ton(
    provider: str = "vendor_s", split: str = "test", seed: int = SEED
) -> pd.DataFrame:
    gallery, probes = owned_1ton(split, seed)
    enrolled = sorted(gallery["subject_id"])
    rows = []
    mated_seen = non_mated_seen = 0
    for probe in probes.itertuples():
        others = [s for s in enrolled if s != probe.subject_id]
        if probe.mated:
            i, mated_seen = mated_seen, mated_seen + 1
            if i < 4:
                listed = [(others[0], 0.7), (probe.subject_id, 0.6), (others[1], 0.2)]
            elif i < 6:
                listed = [(others[0], 0.4), (others[1], 0.3)]
            else:
                listed = [(probe.subject_id, 0.9), (others[0], 0.4)]
        else:
            i, non_mated_seen = non_mated_seen, non_mated_seen + 1
            top = 0.8 if i < 3 else 0.5
            listed = [(others[0], top), (others[1], 0.3 if i < 3 else 0.2)]
        for rank, (candidate, score) in enumerate(listed, start=1):
            rows.append(
                {
                    "probe_sample_id": probe.sample_id,
                    "provider": provider,
                    "rank": rank,
                    "candidate_subject_id": candidate,
                    "score": score,
                    "latency_ms": 200.0,
                    "cost": 0.01,
                }
            )
    return pd.DataFrame(rows)


def _probe(kind: str, i: int) -> str:
    _, probes = owned_1ton()
    return probes.loc[probes["mated"] == (kind == "m"), "sample_id"].iloc[i]


def vendor_t_1ton() -> pd.DataFrame:
    s = vendor_s_1ton("vendor_t").assign(acquired=True)
    m6, m7, m8, n0 = _probe("m", 6), _probe("m", 7), _probe("m", 8), _probe("n", 0)
    s = s[~s["probe_sample_id"].isin([m6, m7, m8, n0])]
    empty = {"provider": "vendor_t", "rank": None, "candidate_subject_id": None, "score": None}
    extra = pd.DataFrame(
        [
            {"probe_sample_id": m8, **empty, "acquired": True, "latency_ms": 200.0, "cost": 0.01},
            {"probe_sample_id": n0, **empty, "acquired": False, "latency_ms": 50.0, "cost": 0.01},
        ]
    )
    return pd.concat([s, extra], ignore_index=True)


def full_search_table(vendor: pd.DataFrame, split: str = "test", seed: int = SEED) -> pd.DataFrame:
    """The vendor's rows as a search table (owned subject / mated joined); absent probes as
    failures to acquire: what identification_report judges."""
    _, probes = owned_1ton(split, seed)
    absent = probes[~probes["sample_id"].isin(vendor["probe_sample_id"])]
    rows = pd.concat(
        [
            vendor.assign(acquired=vendor.get("acquired", True)),
            pd.DataFrame({"probe_sample_id": absent["sample_id"], "acquired": False}),
        ],
        ignore_index=True,
    )
    info = probes.set_index("sample_id")
    return rows.assign(
        search_id=rows["probe_sample_id"],
        probe_subject_id=info.loc[rows["probe_sample_id"], "subject_id"].to_numpy(),
        mated=info.loc[rows["probe_sample_id"], "mated"].to_numpy(),
    )


def ours_1ton() -> pd.DataFrame:
    """Our search table (idv-evaluate's): val and test; test = vendor S's searches."""
    parts = []
    for split in ("val", "test"):
        t = full_search_table(vendor_s_1ton(split=split), split).drop(columns=["provider"])
        codes = pd.factorize(t["probe_sample_id"])[0]
        t = t.assign(search_id=[f"search:{i}" for i in codes], split=split)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def run_1ton(vendors, **kw) -> BenchmarkResult:
    args = {"enrolled_fraction": ENROLLED, "protocol_seed": SEED, "fpir_targets": FPIR_TARGETS}
    return benchmark_searches(faces_manifest(), vendors, **{**args, **FAST, **kw})


@pytest.fixture(scope="module")
def result_1ton() -> BenchmarkResult:
    return run_1ton({"s.csv": vendor_s_1ton(), "t.csv": vendor_t_1ton()}, ours=ours_1ton())


def test_owned_search_protocol_shape():
    gallery, probes = owned_1ton()
    assert len(gallery) == gallery["subject_id"].nunique() == 7
    assert (probes["mated"].sum(), (~probes["mated"]).sum()) == (14, 39)


def test_search_metrics_match_hand_computation_and_identification_report(result_1ton):
    s = row(result_1ton, "vendor_s")
    assert (s["items"], s["mated_searches"], s["non_mated_searches"]) == (53, 14, 39)
    assert s["coverage"] == 1.0 and s["non_mated_subjects"] == 13
    # FPIR(0.6) = 3/39 <= 0.1 (FPIR(0.5) = 1): threshold 0.6; m4, m5 miss: FNIR 2/14.
    assert s["fnir_at_fpir_1e-01"] == pytest.approx(2 / 14)
    assert s["rank_1_rate"] == pytest.approx(8 / 14)  # m6..m13
    assert np.isnan(s["fnir_at_fpir_1e-02"])  # 39 non-mated searches cannot resolve 1e-2
    assert any("`fnir_at_fpir_1e-02` not resolved" in n for n in result_1ton.notes)
    report = identification_report(full_search_table(vendor_s_1ton()), FPIR_TARGETS)
    assert s["fnir_at_fpir_1e-01"] == pytest.approx(report["fnir_at_fpir_1e-01"])
    assert s["rank_1_rate"] == pytest.approx(report["rank_1_rate"])
    assert isinstance(report["fnir_at_fpir_1e-02"], NotSupported)
    assert s["rank_1_rate_low"] <= s["rank_1_rate"] <= s["rank_1_rate_high"]
    assert s["latency_p50_ms"] == 200.0 and s["cost_total"] == pytest.approx(0.53)


def test_unanswered_searches_are_failures_to_acquire(result_1ton):
    t = row(result_1ton, "vendor_t")
    # m6, m7 left out and n0 declared: 50 of 53 answered (m8's empty list is an answer)
    assert t["answered"] == 50 and t["coverage_mated"] == pytest.approx(12 / 14)
    # FPIR(0.6) = 2/39 (n0 returned nothing): threshold 0.6; misses: m4, m5 (mate absent),
    # m6, m7 (unanswered), m8 (empty list): 5/14. Rank 1: m9..m13, 5/14.
    assert t["fnir_at_fpir_1e-01"] == pytest.approx(5 / 14)
    assert t["rank_1_rate"] == pytest.approx(5 / 14)
    report = identification_report(full_search_table(vendor_t_1ton()), FPIR_TARGETS)
    assert t["fnir_at_fpir_1e-01"] == pytest.approx(report["fnir_at_fpir_1e-01"])
    assert t["rank_1_rate"] == pytest.approx(report["rank_1_rate"])
    table = result_1ton.table
    assert (table["provider"] == "vendor_t").sum() == 53


def test_search_paired_differences(result_1ton):
    assert result_1ton.reference == "ours" and result_1ton.mode == "search"
    for metric in ("fnir_at_fpir_1e-01", "rank_1_rate"):
        same = comparison(result_1ton, "vendor_s", metric)
        assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    fnir = comparison(result_1ton, "vendor_t", "fnir_at_fpir_1e-01")
    assert fnir["difference"] == pytest.approx(3 / 14)
    rank_1 = comparison(result_1ton, "vendor_t", "rank_1_rate")
    assert rank_1["difference"] == pytest.approx(-3 / 14)
    assert (rank_1["candidate_only_errors"], rank_1["reference_only_errors"]) == (3, 0)
    assert rank_1["mcnemar_p"] == pytest.approx(0.25)


def test_fnir_at_fpir_by_the_per_search_reduction_equals_identification():
    """Mated searches score their mate (-inf when absent), non-mated ones their top score
    (-inf when empty): FNMR at an FMR target on these, label = mated, is FNIR at FPIR."""
    from idv.metrics.bootstrap import bootstrap_curve, fnmr_at_fmr_statistic

    rng = np.random.default_rng(11)
    rows = []
    for i in range(400):
        mated = i % 3 == 0
        state = rng.choice(["ok", "ok", "ok", "empty", "fta"])
        base = {"search_id": f"q{i}", "probe_sample_id": f"q{i}", "probe_subject_id": f"p{i}"}
        base["mated"] = mated
        if state != "ok":
            empty = {"rank": None, "candidate_subject_id": None, "score": None}
            rows.append({**base, **empty, "acquired": state == "empty"})
            continue
        k = int(rng.integers(1, 4))
        scores = np.sort(np.round(rng.random(k) * (1.5 if mated else 1.0), 1))[::-1]
        mate_at = int(rng.integers(0, k + 1)) if mated else k  # k: not returned
        for r in range(k):
            who = f"p{i}" if r == mate_at else f"g{r}"
            listed = {"rank": r + 1, "candidate_subject_id": who, "score": scores[r]}
            rows.append({**base, **listed, "acquired": True})
    table = pd.DataFrame(rows)
    per = searches(table)
    mated = per["mated"].to_numpy(bool)
    scores = np.where(mated, per["mate_score"], per["top_score"])
    subjects = np.arange(len(per))
    for target in (0.02, 0.05, 0.1, 0.3):
        got = bootstrap_curve(
            scores, mated.astype(int), subjects, fnmr_at_fmr_statistic(target), n_resamples=5
        ).estimate
        assert got == pytest.approx(fnir_at_fpir(table, target, min_subjects=1), abs=1e-12)


def test_search_errors_name_the_file_and_row():
    gallery, probes = owned_1ton()
    stranger = sorted(set(probes.loc[~probes["mated"], "subject_id"]))[0]
    frame = vendor_s_1ton()
    frame.loc[4, "candidate_subject_id"] = stranger
    with pytest.raises(
        ValueError,
        match=rf"s.csv: row 4 \(probe_sample_id='[^']+', rank=\d\): candidate_subject_id "
        rf"'{stranger}' is not enrolled: not the same enrolment list \(7 subjects",
    ):
        run_1ton({"s.csv": frame}, reference=None)
    frame = vendor_s_1ton()
    frame.loc[0, "probe_sample_id"] = gallery["sample_id"].iloc[0]
    with pytest.raises(ValueError, match=r"row 0 .*unknown probe \(it is an enrolment sample"):
        run_1ton({"s.csv": frame}, reference=None)
    frame.loc[0, "probe_sample_id"] = "V00_selfie_0"
    with pytest.raises(ValueError, match=r"unknown probe \(sample 'V00_selfie_0' belongs to"):
        run_1ton({"s.csv": frame}, reference=None)
    frame = vendor_s_1ton()
    frame.loc[1, "score"] = 0.95  # rank 2 above rank 1
    with pytest.raises(ScoreTableError, match=r"s.csv \(search score table\): score rises"):
        run_1ton({"s.csv": frame}, reference=None)
    frame = vendor_s_1ton().drop(columns=["rank"])
    with pytest.raises(ValueError, match=r"s.csv: a search file lacks column\(s\) \['rank'\]"):
        run_1ton({"s.csv": frame}, reference=None)
    frame = vendor_s_1ton()
    frame.loc[1, "latency_ms"] = 5.0
    with pytest.raises(ValueError, match="latency_ms differs between the rows of one probe"):
        run_1ton({"s.csv": frame}, reference=None)


def test_our_search_table_of_another_enrolment_is_an_error():
    # scored with another seed: another enrolment list, hence other probes
    other = full_search_table(vendor_s_1ton(seed=SEED + 1), seed=SEED + 1)
    with pytest.raises(ValueError, match=r"does not search exactly the 53 probes.*seed"):
        run_1ton({}, ours=other)
    ours = ours_1ton()
    with pytest.raises(ValueError, match="no searches of split 'test'"):
        run_1ton({}, ours=ours[ours["split"] == "val"])


# ------------------------------------------------------------------- header-only files


@pytest.mark.parametrize("mode", ["detection", "comparison", "search"])
def test_header_only_vendor_file_is_an_error(mode, tmp_path):
    header = {
        "detection": provider_a(),
        "comparison": vendor_a_1to1(),
        "search": vendor_s_1ton(),
    }[mode].iloc[:0]
    file = tmp_path / f"{mode}.csv"
    header.to_csv(file, index=False)
    frame = read_vendor_file(file)
    run = {
        "detection": lambda f: benchmark(owned_manifest(), [f], **FAST),
        "comparison": lambda f: run_1to1([f]),
        "search": lambda f: run_1ton([f]),
    }[mode]
    with pytest.raises(ValueError, match=rf"{file}: no rows \(a header alone is not a vendor"):
        run(frame)
    (tmp_path / "nothing.csv").write_text("")
    with pytest.raises(ValueError, match=r"nothing.csv: empty file"):
        read_vendor_file(tmp_path / "nothing.csv")


# ----------------------------------------------------------------------------------- CLI


def _face_cli(tmp_path: Path, mode: str, vendors: list[pd.DataFrame], ours: pd.DataFrame, *extra):
    from idv.cli.benchmark import run

    write_manifest(faces_manifest(), tmp_path / "manifest.parquet")
    files = []
    for k, frame in enumerate(vendors):
        files.append(tmp_path / f"vendor{k}.csv")
        frame.to_csv(files[-1], index=False)
    ours.to_parquet(tmp_path / "ours.parquet")
    cfg = compose(
        "benchmark",
        [
            "task=face_match",
            f"mode={mode}",
            f"manifest={tmp_path / 'manifest.parquet'}",
            f"vendor_files=[{','.join(map(str, files))}]",
            f"ours={tmp_path / 'ours.parquet'}",
            "bootstrap.n_resamples=100",
            *extra,
        ],
        tmp_path / "out",
    )
    return run(cfg)


def test_cli_face_match_comparison(tmp_path):
    got = _face_cli(
        tmp_path,
        "comparison",
        [vendor_a_1to1(), vendor_b_1to1()],
        ours_1to1(),
        "min_subjects=5",
        "comparison_protocol=portrait_selfie",
    )
    assert got.mode == "comparison"
    b = row(got, "vendor_b")
    assert b["fnmr_at_fmr_1e-02"] == pytest.approx(3 / 60)  # the task's FMR targets
    assert np.isnan(b["fnmr_at_fmr_1e-03"]) and np.isnan(b["fnmr_at_fmr_1e-04"])
    assert comparison(got, "vendor_a", "eer")["difference"] == 0.0
    data = json.loads((tmp_path / "out/benchmark.json").read_text())
    assert data["mode"] == "comparison" and data["reference"] == "ours"
    text = (tmp_path / "out/benchmark.md").read_text()
    assert "face_match: vendor benchmark, 1:1 portrait_selfie (test)" in text
    assert "fnmr_at_fmr_1e-02" in text and "every metric is an error rate" in text


def test_cli_face_match_search(tmp_path):
    got = _face_cli(
        tmp_path, "search", [vendor_s_1ton(), vendor_t_1ton()], ours_1ton(), "fpir_targets=[0.1]"
    )
    assert got.mode == "search"
    assert row(got, "vendor_t")["fnir_at_fpir_1e-01"] == pytest.approx(5 / 14)
    assert comparison(got, "vendor_t", "rank_1_rate")["difference"] == pytest.approx(-3 / 14)
    assert "rank_1_rate" in (tmp_path / "out/benchmark.md").read_text()
    assert pd.read_csv(tmp_path / "out/benchmark.csv")["provider"].tolist()[:3] == [
        "ours",
        "vendor_s",
        "vendor_t",
    ]


def test_cli_wrong_table_or_mode_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"mode 'search' expects our search table"):
        _face_cli(tmp_path, "search", [vendor_s_1ton()], ours_1to1())
    with pytest.raises(ValueError, match=r"mode='search' is for matching tasks"):
        from idv.cli.benchmark import run

        run(compose("benchmark", ["manifest=m.parquet", "mode=search"], tmp_path / "o"))


# -------------------------------------------------------------------- synthetic vendors


def test_synthetic_vendors_script(tmp_path, capsys):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts/synthetic_vendors.py"
    spec = importlib.util.spec_from_file_location("synthetic_vendors", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Our tables: similarities with some signal, a few unacquired samples.
    rng = np.random.default_rng(0)
    ours = ours_1to1()
    genuine = ours["genuine"].to_numpy(bool)
    ours["score"] = np.clip(rng.normal(0.1, 0.2, len(ours)) + 0.5 * genuine, -1, 1)
    ours.loc[[3, 4], ["score", "acquired"]] = [np.nan, False]
    search = ours_1ton()
    search.loc[search["probe_sample_id"] == search["probe_sample_id"].iloc[0], "acquired"] = False
    ours.to_parquet(tmp_path / "scores.parquet")
    search.to_parquet(tmp_path / "search.parquet")
    written = module.main(
        [
            f"--scores={tmp_path / 'scores.parquet'}",
            f"--search={tmp_path / 'search.parquet'}",
            f"--out={tmp_path / 'vendors'}",
            "--unanswered=0.05",
        ]
    )
    printed = capsys.readouterr().out
    assert "idv-benchmark task=face_match" in printed and "mode=search" in printed
    again = module.main(  # seeded: the same files
        [
            f"--scores={tmp_path / 'scores.parquet'}",
            f"--search={tmp_path / 'search.parquet'}",
            f"--out={tmp_path / 'again'}",
            "--unanswered=0.05",
        ]
    )
    for key, path in written.items():
        assert path.read_bytes() == again[key].read_bytes()
    files = [read_vendor_file(written[k]) for k in ("acme_1to1", "globex_1to1")]
    one = run_1to1(files, ours=ours, fmr_targets=(1e-2,), segments=[])
    assert row(one, "acme")["eer"] < row(one, "ours")["eer"] < row(one, "globex")["eer"]
    assert row(one, "acme")["coverage"] < 1.0 and row(one, "globex")["has_decisions"]
    files = [read_vendor_file(written[k]) for k in ("acme_1toN", "globex_1toN")]
    many = run_1ton(files, ours=search, segments=[])
    assert row(many, "acme")["rank_1_rate"] >= row(many, "ours")["rank_1_rate"]
    assert row(many, "globex")["coverage"] < 1.0
