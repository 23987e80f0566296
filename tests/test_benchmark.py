"""Vendor benchmark: four providers on a tiny owned set, every figure computed by hand.

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
from idv.metrics.detection import auc, bpcer_at_worst_apcer, eer
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
