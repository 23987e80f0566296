"""Threshold calibration: thresholds from calib only, honest resolution, segments, review band,
score calibration, thresholds.json, and the clear errors."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose

from idv.calibration.detection import RULE, calibrate_detection
from idv.calibration.score_calibration import apply_score_calibration, fit_score_calibration
from idv.calibration.thresholds import calibrate, run_calibration
from idv.metrics.bootstrap import bootstrap_rate
from idv.metrics.calibration_quality import expected_calibration_error
from idv.metrics.detection import threshold_at_worst_apcer
from idv.thresholds import decide

FAST = {"n_resamples": 200, "seed": 3, "level": 0.9}
# Hand-built calib: 15 subjects, each with one bona fide capture, one print and one mask.
BONA = [0.05 + 0.02 * i for i in range(15)]
PRINT = [0.41 + 0.01 * i for i in range(15)]
MASK = [0.60 + 0.01 * i for i in range(15)]


def block(
    split: str,
    bona: list[float],
    attacks: dict[str, list[float]],
    geography: str = "BIG",
    tag: str = "",
) -> pd.DataFrame:
    """Rows of one split; the i-th bona fide and the i-th attack of each species share subject i
    (an attack carries the depicted person's subject id)."""
    rows = []
    for kind, scores in (("bona_fide", bona), *attacks.items()):
        for i, score in enumerate(scores):
            rows.append(
                {
                    "sample_id": f"{split}{tag}-{kind}-{i}",
                    "score": float(score),
                    "label": int(kind != "bona_fide"),
                    "attack_type": kind,
                    "subject_id": f"{split}{tag}-s{i}",
                    "acquired": True,
                    "split": split,
                    "geography": geography,
                }
            )
    return pd.DataFrame(rows)


def hand_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    calib = block("calib", BONA, {"print": PRINT, "mask": MASK})
    test = block(
        "test",
        rng.uniform(0.0, 0.5, 30).tolist(),
        {"print": rng.uniform(0.3, 0.9, 30).tolist(), "mask": rng.uniform(0.4, 1.0, 30).tolist()},
    )
    val = block("val", [0.9], {"print": [0.1], "mask": [0.1]})  # never read
    return pd.concat([val, calib, test], ignore_index=True)


def run(table: pd.DataFrame, **kwargs) -> dict:
    options = {"targets": [0.2], "segments": [], "min_subjects": 5, "bootstrap": FAST}
    return calibrate_detection(table, **{**options, **kwargs}).to_dict()


def entry(result: dict, value: str = "global", target: float | None = None) -> dict:
    target = result["settings"]["targets"][0] if target is None else target
    (found,) = [
        e
        for e in result["thresholds"]
        if e["segment"]["value"] == value and e["operating_point"]["max"] == target
    ]
    return found


# ---------------------------------------------------------------------------- the threshold


def test_threshold_is_the_largest_meeting_the_worst_species_target() -> None:
    result = run(hand_table())
    e = entry(result)
    # At most 3 of 15 (20%) of each species may fall below: print binds, at its 4th score.
    assert e["threshold"] == PRINT[3]
    rates = e["calib"]["rates"]
    assert {k: v["estimate"] for k, v in rates.items() if k.startswith("apcer/")} == {
        "apcer/mask": 0.0,
        "apcer/print": 0.2,
    }
    assert rates["apcer_worst"]["estimate"] == 0.2
    assert (rates["apcer/print"]["n"], rates["apcer/print"]["count"]) == (15, 3)
    # Brute force over every candidate threshold of calib.
    calib = hand_table().query("split == 'calib'")
    best = -np.inf
    for t in np.unique(calib["score"]):
        attacks = calib[calib["label"] == 1]
        worst = attacks.groupby("attack_type")["score"].apply(lambda s, t=t: (s < t).mean()).max()
        if worst <= 0.2:
            best = max(best, t)
    assert e["threshold"] == best
    assert e["operating_point"] == {"metric": "apcer_worst", "max": 0.2, "primary": True}
    assert result["operating_point"] == {"metric": "apcer_worst", "max": 0.2, "primary": True}
    assert e["source"] == "own" and e["segment"] == {"column": None, "value": "global"}


def test_threshold_uses_calib_only() -> None:
    table = hand_table()
    base = entry(run(table))["threshold"]
    other_test = table.copy()
    is_test = other_test["split"] == "test"
    other_test.loc[is_test, "score"] = 1.0 - other_test.loc[is_test, "score"]
    other_val = table[table["split"] != "val"]
    assert entry(run(other_test))["threshold"] == base
    assert entry(run(other_val))["threshold"] == base
    moved = table.copy()
    moved.loc[moved["sample_id"] == "calib-print-3", "score"] = 0.465
    assert entry(run(moved))["threshold"] == PRINT[4]  # print's 4th score is now 0.45


def test_several_targets_each_get_a_threshold() -> None:
    table = pd.concat(
        [
            block("calib", [0.1] * 30, {"print": [0.01 * i for i in range(30, 60)]}),
            block("test", [0.1, 0.2], {"print": [0.5, 0.6]}),
        ]
    )
    result = run(table, targets=[0.2, 0.1])
    assert entry(result, target=0.2)["threshold"] == 0.36  # 6 of 30 below
    assert entry(result, target=0.1)["threshold"] == 0.33  # 3 of 30 below
    assert entry(result, target=0.1)["operating_point"]["primary"] is False


# --------------------------------------------------------------------------- rates on test


def test_test_rates_match_a_direct_computation_with_subject_intervals() -> None:
    table = hand_table()
    e = entry(run(table))
    t = e["threshold"]
    test = table[table["split"] == "test"]
    s, y, sp = test["score"].to_numpy(), test["label"].to_numpy(), test["attack_type"].to_numpy()
    subjects = test["subject_id"].to_numpy()
    report = e["test"]["rates"]
    for name in ("print", "mask"):
        mask = (y == 1) & (sp == name)
        got = report[f"apcer/{name}"]
        assert got["estimate"] == pytest.approx((s[mask] < t).mean())
        assert got["n"] == mask.sum() and got["count"] == (s[mask] < t).sum()
        # The very interval of a subject bootstrap over the test subjects, same seed.
        ref = bootstrap_rate(
            (s < t).astype(float),
            subjects,
            where=mask,
            n_resamples=FAST["n_resamples"],
            seed=FAST["seed"],
            level=FAST["level"],
        )
        assert (got["low"], got["high"], got["level"]) == (ref.low, ref.high, 0.9)
        assert got["low"] <= got["estimate"] <= got["high"]
    bpcer = report["bpcer"]
    assert bpcer["estimate"] == pytest.approx((s[y == 0] >= t).mean())
    ref = bootstrap_rate(
        (s >= t).astype(float), subjects, where=y == 0, n_resamples=200, seed=3, level=0.9
    )
    assert (bpcer["low"], bpcer["high"]) == (ref.low, ref.high)
    worst = report["apcer_worst"]
    per_species = [d for k, d in report.items() if k.startswith("apcer/")]
    assert worst["estimate"] == max(d["estimate"] for d in per_species)
    assert worst["low"] <= worst["estimate"] <= worst["high"]
    assert worst["high"] >= max(d["high"] for d in per_species) - 1e-12


def test_failures_to_acquire_are_rejections_and_do_not_move_the_threshold() -> None:
    table = hand_table()
    base = entry(run(table))
    failed = pd.DataFrame(
        [
            {"sample_id": "fc-b", "label": 0, "attack_type": "bona_fide", "split": "calib"},
            {"sample_id": "fc-a", "label": 1, "attack_type": "print", "split": "calib"},
            {"sample_id": "ft-b", "label": 0, "attack_type": "bona_fide", "split": "test"},
            {"sample_id": "ft-a", "label": 1, "attack_type": "print", "split": "test"},
        ]
    ).assign(score=np.nan, acquired=False, geography="BIG")
    failed["subject_id"] = failed["split"] + "-s0"
    e = entry(run(pd.concat([table, failed], ignore_index=True)))
    assert e["threshold"] == base["threshold"]  # chosen on acquired calib rows
    counts, old_counts = e["calib"]["counts"], base["calib"]["counts"]
    assert counts["failures_to_acquire"] == 1 + 1
    assert counts["samples"] == old_counts["samples"] + 2
    assert counts["attacks_per_species"] == old_counts["attacks_per_species"]
    old, new = base["test"]["rates"], e["test"]["rates"]
    assert e["test"]["counts"]["failures_to_acquire"] == 2
    assert new["bpcer"]["n"] == old["bpcer"]["n"] + 1
    assert new["bpcer"]["count"] == old["bpcer"]["count"] + 1  # a failure is a rejection...
    p_old, p_new = old["apcer/print"], new["apcer/print"]
    assert p_new["n"] == p_old["n"] + 1
    assert p_new["count"] == p_old["count"] + 1  # ... and a failed attack is a missed one


def test_a_species_unseen_in_calib_is_still_reported_on_test() -> None:
    table = pd.concat(
        [hand_table(), block("test", [], {"replay": [0.1, 0.2, 0.9]}, tag="r")], ignore_index=True
    )
    result = run(table)
    assert result["details"]["species"] == ["mask", "print"]
    assert result["details"]["species_unseen_in_calib"] == ["replay"]
    e = entry(result)
    assert e["threshold"] == PRINT[3]  # no say in the threshold
    replay = e["test"]["rates"]["apcer/replay"]
    assert (replay["n"], replay["count"]) == (3, 2)
    assert e["test"]["rates"]["apcer_worst"]["estimate"] == pytest.approx(2 / 3)


# -------------------------------------------------------------------------------- segments


def segment_table() -> pd.DataFrame:
    small = block(
        "calib",
        [0.1, 0.2, 0.3, 0.35],
        {"print": [0.20, 0.21, 0.22, 0.23], "mask": [0.7] * 4},
        geography="SMALL",
        tag="small",
    )
    test_only = block("test", [0.1, 0.2], {"print": [0.9, 0.3]}, geography="NEW", tag="new")
    return pd.concat([hand_table(), small, test_only], ignore_index=True)


def test_big_segment_gets_its_own_threshold_small_one_falls_back() -> None:
    table = segment_table()
    result = run(table, segments=["geography"])
    glob = entry(result)
    assert glob["threshold"] == 0.23  # SMALL's low prints bind globally (3 of 19 may miss)
    big = entry(result, "BIG")
    calib_big = table[(table["split"] == "calib") & (table["geography"] == "BIG")]
    assert big["source"] == "own"
    assert big["segment"] == {"column": "geography", "value": "BIG"}
    assert big["threshold"] == threshold_at_worst_apcer(
        calib_big["score"], calib_big["label"], calib_big["attack_type"], 0.2
    )
    assert big["threshold"] == PRINT[3] != glob["threshold"]
    small = entry(result, "SMALL")
    assert small["threshold"] == glob["threshold"]
    assert small["source"].startswith("global (segment too small: ")
    assert "4 'print' attack subjects < 5" in small["source"]
    assert "4 'print' attack presentations < 15" in small["source"]
    assert small["segment_calib"]["attack_subjects_per_species"] == {"mask": 4, "print": 4}
    assert small["calib"] == glob["calib"]  # the counts the (global) threshold rests on
    new = entry(result, "NEW")
    assert new["source"] == "global (segment absent from calib)"
    assert new["test"]["counts"]["samples"] == 4
    # Rates of a segment entry are on that segment's test rows only.
    big_test = table.query("split == 'test' and geography == 'BIG'")
    assert big["test"]["counts"]["samples"] == len(big_test)


def test_segment_needs_bona_fide_subjects_too() -> None:
    table = hand_table()
    extra = block("calib", [], {"print": PRINT, "mask": MASK}, geography="ATTACKS", tag="x")
    result = run(pd.concat([table, extra], ignore_index=True), segments=["geography"])
    assert "0 bona fide subjects < 5" in entry(result, "ATTACKS")["source"]


def test_no_segments_means_global_only() -> None:
    result = run(segment_table(), segments=[])
    assert [e["segment"]["value"] for e in result["thresholds"]] == ["global"]


# ------------------------------------------------------------------------------ review band


def random_table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for split in ("calib", "test"):
        parts.append(
            block(
                split,
                rng.normal(0.3, 0.15, n).tolist(),
                {
                    "print": rng.normal(0.65, 0.15, n).tolist(),
                    "mask": rng.normal(0.75, 0.15, n).tolist(),
                },
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2])
def test_review_band_holds_the_configured_share_below_the_threshold(share: float) -> None:
    table = random_table()
    e = entry(run(table, targets=[0.1], review_share=share, score_range=(-1.0, 2.0)))
    t, a = e["threshold"], e["review_at_or_above"]
    assert a <= t
    calib = table[table["split"] == "calib"]
    s = calib["score"].to_numpy()
    decisions = decide(s, a, t, RULE)
    n_review = int((decisions == "review").sum())
    review = e["calib"]["rates"]["review_share"]
    assert n_review == review["count"] and review["n"] == len(s)
    assert abs(n_review - share * len(s)) <= 1  # within one sample
    assert review["estimate"] == pytest.approx(n_review / len(s))
    assert ((decisions == "accept") == (s < a)).all()
    assert ((decisions == "reject") == (s >= t)).all()
    # On test: the achieved review share, and an auto-accept APCER no worse than at t alone.
    test = table[table["split"] == "test"]
    got = e["test"]["rates"]
    assert got["review_share"]["estimate"] == pytest.approx(
        (decide(test["score"], a, t, RULE) == "review").mean()
    )
    for name in ("mask", "print"):
        assert got[f"apcer_auto_accept/{name}"]["estimate"] <= got[f"apcer/{name}"]["estimate"]
    assert got["apcer_auto_accept_worst"]["estimate"] <= got["apcer_worst"]["estimate"]
    if share == 0:
        assert a == t


def test_decide_rejects_failures_to_acquire() -> None:
    got = decide([0.1, 0.5, 0.9, np.nan, 0.6, 0.4], 0.4, 0.6, RULE)
    assert got.tolist() == ["accept", "review", "reject", "reject", "reject", "review"]


# ------------------------------------------------------------------------- score calibration


def miscalibrated(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Scores in [0, 1] that rank well but are not probabilities: P(attack | s) is a steep
    logistic curve centred at 0.6, not s (a shape both methods can represent)."""
    rng = np.random.default_rng(seed)
    parts = []
    for split in ("calib", "test"):
        s = rng.uniform(0, 1, n)
        y = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-10 * (s - 0.6)))).astype(int)
        parts.append(
            pd.DataFrame(
                {
                    "sample_id": [f"{split}{i}" for i in range(n)],
                    "score": s,
                    "label": y,
                    "attack_type": np.where(y == 1, "print", "bona_fide"),
                    "subject_id": [f"{split}-s{i}" for i in range(n)],
                    "acquired": True,
                    "split": split,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_score_calibration_fitted_on_calib_improves_test_ece(method: str) -> None:
    table = miscalibrated()
    result = run(table, targets=[0.1], score_calibration=method)
    sc = result["details"]["score_calibration"]
    assert sc["params"]["method"] == method
    assert sc["fitted_on"]["samples"] == (table["split"] == "calib").sum()
    before, after = sc["test"]["ece_before"], sc["test"]["ece_after"]
    test = table[table["split"] == "test"]
    assert before == pytest.approx(expected_calibration_error(test["score"], test["label"]))
    assert before > 0.1 and after < 0.04 and after < before / 3
    # Fitted on calib only: the test rows do not change the parameters.
    flipped = table.copy()
    flipped.loc[flipped["split"] == "test", "score"] **= 0.5
    assert (
        run(flipped, targets=[0.1], score_calibration=method)["details"]["score_calibration"][
            "params"
        ]
        == (sc["params"])
    )
    assert run(table, targets=[0.1])["details"]["score_calibration"] is None  # off by default


def test_stored_parameters_reproduce_sklearn() -> None:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    table = miscalibrated(500)
    s, y = table["score"].to_numpy(), table["label"].to_numpy()
    grid = np.linspace(-0.2, 1.2, 57)
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s, y)
    params = fit_score_calibration(s, y, "isotonic")
    np.testing.assert_allclose(apply_score_calibration(params, grid), iso.predict(grid))
    platt = LogisticRegression(C=1e12, max_iter=1000).fit(s[:, None], y)
    params = fit_score_calibration(s, y, "platt")
    np.testing.assert_allclose(
        apply_score_calibration(params, grid), platt.predict_proba(grid[:, None])[:, 1]
    )
    assert apply_score_calibration(params, [np.inf])[0] == 1.0


# ---------------------------------------------------------------------------- thresholds.json


def strict_json(path: Path) -> dict:
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_thresholds_json_records_point_counts_rates_and_hashes(tmp_path: Path) -> None:
    scores = tmp_path / "scores.parquet"
    segment_table().to_parquet(scores, index=False)
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights")
    out = tmp_path / "out"
    result = run_calibration(
        scores,
        out,
        kind="detection",
        ckpt_path=ckpt,
        task="pad",
        targets=[0.2],
        segments=["geography"],
        min_subjects=5,
        bootstrap=FAST,
    )
    doc = strict_json(out / "thresholds.json")
    assert doc == json.loads(result.to_json())
    assert doc["schema_version"] == 2 and doc["kind"] == "detection"
    assert doc["decision"]["failure"] == "reject" and doc["score_range"] == [0.0, 1.0]
    assert doc["inputs"]["scores"] == {
        "path": str(scores),
        "sha256": hashlib.sha256(scores.read_bytes()).hexdigest(),
    }
    assert doc["inputs"]["checkpoint"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert doc["calibration_split"] == "calib" and doc["task"] == "pad"
    g = entry(doc)
    assert g["operating_point"] == {"metric": "apcer_worst", "max": 0.2, "primary": True}
    assert g["segment"] == {"column": None, "value": "global"}
    counts = g["calib"]["counts"]
    assert counts["attacks_per_species"] == {"mask": 19, "print": 19}
    assert counts["subjects"] == 19 and counts["bona_fide_samples"] == 19
    assert counts["samples"] == 57 and counts["failures_to_acquire"] == 0
    for key in ("apcer/mask", "apcer/print", "apcer_worst", "bpcer", "review_share"):
        assert key in g["test"]["rates"]
    assert set(g["test"]["rates"]["apcer_worst"]) == {
        "estimate",
        "low",
        "high",
        "level",
        "n",
        "count",
    }
    assert [e["segment"]["value"] for e in doc["thresholds"]] == ["global", "BIG", "NEW", "SMALL"]
    md = (out / "thresholds.md").read_text()
    assert "geography=SMALL" in md and doc["inputs"]["scores"]["sha256"] in md

    # The hash follows the score file; a missing checkpoint is recorded, unhashed.
    table = segment_table()
    table.loc[table["sample_id"] == "test-print-0", "score"] = 0.999
    table.to_parquet(scores, index=False)
    again = run_calibration(
        scores, out, kind="detection", ckpt_path=tmp_path / "gone.ckpt", targets=[0.2], segments=[],
        min_subjects=5, bootstrap=FAST,
    )  # fmt: skip
    assert again.inputs["scores"]["sha256"] != doc["inputs"]["scores"]["sha256"]
    assert again.inputs["checkpoint"]["sha256"] is None
    assert strict_json(out / "thresholds.json")["inputs"] == again.inputs


# ------------------------------------------------------------------------------ clear errors


def test_one_class_calibration_split_is_an_error() -> None:
    table = hand_table()
    only_bona = table[(table["split"] != "calib") | (table["label"] == 0)]
    with pytest.raises(ValueError, match="'calib' split has only label 0 rows"):
        run(only_bona)
    failed = table.copy()  # attacks present but none acquired: still one class
    failed.loc[(failed["split"] == "calib") & (failed["label"] == 1), "acquired"] = False
    with pytest.raises(ValueError, match="only label 0 rows among its acquired rows"):
        run(failed)


def test_unresolvable_target_is_an_error_not_a_number() -> None:
    with pytest.raises(ValueError, match="cannot resolve worst-species APCER <= 0.1") as err:
        run(hand_table(), targets=[0.2, 0.1])
    assert "15 'print' attack presentations < 30" in str(err.value)
    with pytest.raises(ValueError, match="15 'mask' attack subjects < 20"):
        run(hand_table(), min_subjects=20)


def test_missing_segment_column_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="segment column 'vendor'"):
        run(hand_table(), segments=["vendor"])
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['subject_id'\\]"):
        run(hand_table().drop(columns="subject_id"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_in_acquired_rows_are_errors(bad: float) -> None:
    table = hand_table()
    table.loc[table["sample_id"] == "test-mask-7", "score"] = bad
    with pytest.raises(ValueError, match="NaN or infinite.*sample_id 'test-mask-7'"):
        run(table)
    table.loc[table["sample_id"] == "test-mask-7", "acquired"] = False  # a failure: fine
    run(table)


def test_missing_calibration_split_is_an_error(tmp_path: Path) -> None:
    table = hand_table()
    table.loc[table["split"] == "calib", "split"] = "train"
    path = tmp_path / "scores.parquet"
    table.to_parquet(path, index=False)
    with pytest.raises(
        ValueError, match=r"scores\.parquet: calibration needs rows of split\(s\) \['calib'\]"
    ):
        run_calibration(
            path, tmp_path, kind="detection", targets=[0.2], segments=[], min_subjects=5
        )
    assert not (tmp_path / "thresholds.json").exists()
    with pytest.raises(ValueError, match="nothing.parquet: detection score table not found"):
        run_calibration(tmp_path / "nothing.parquet", tmp_path, kind="detection")


def test_bad_options_are_errors() -> None:
    table = hand_table()
    with pytest.raises(ValueError, match="never from 'test'"):
        run(table, calib_split="test", report_split="val")
    with pytest.raises(ValueError, match="must lie in \\(0, 1\\)"):
        run(table, targets=[1.0])
    with pytest.raises(ValueError, match="unknown score_calibration 'beta'"):
        run(table, score_calibration="beta")
    with pytest.raises(ValueError, match="review_share"):
        run(table, review_share=1.5)


# ------------------------------------------------------------------------------ config / CLI


def test_config_defaults_and_calibrate_from_config(tmp_path: Path) -> None:
    scores = tmp_path / "scores.parquet"
    segment_table().to_parquet(scores, index=False)
    cfg = compose("calibrate", [f"scores={scores}"], tmp_path)
    assert cfg.task_name == "calibrate" and cfg.task.name == "pad"
    assert list(cfg.targets) == [0.10] and list(cfg.segments) == ["geography"]
    assert cfg.min_subjects == 10 and cfg.review_share == 0.05
    assert cfg.score_calibration is None and cfg.ckpt_path is None
    assert dict(cfg.bootstrap) == {"n_resamples": 1000, "seed": 0, "level": 0.95}
    with pytest.raises(ValueError, match="cannot resolve"):  # 19 per species < 30 for 10%
        calibrate(cfg)
    cfg = compose(
        "calibrate",
        [f"scores={scores}", "targets=[0.2]", "min_subjects=5", "bootstrap.n_resamples=50"],
        tmp_path,
    )
    result = calibrate(cfg)
    assert (tmp_path / "thresholds.json").is_file()
    assert result.operating_point.max == 0.2 and result.task == "pad"
    assert math.isfinite(entry(result.to_dict())["threshold"])


def test_console_script_entry_point(tmp_path: Path) -> None:
    scores = tmp_path / "scores.parquet"
    hand_table().to_parquet(scores, index=False)
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "idv.cli.calibrate",
            f"scores={scores}",
            "targets=[0.2]",
            "min_subjects=5",
            "segments=[]",
            "bootstrap.n_resamples=20",
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert entry(strict_json(out / "thresholds.json"))["threshold"] == PRINT[3]


def test_on_a_real_evaluate_output(fast_run, tiny_pad_root, tmp_path: Path) -> None:
    """The score table idv-evaluate writes (float32 scores, segment columns) goes through as is.
    A target its calib split cannot resolve is a clear error naming the file (the tiny corpus
    resolves none at all); with the val rows moved into calib (a test only!) a loose one does."""
    from idv.cli.evaluate import run as evaluate

    ev = tmp_path / "evaluate"
    evaluate(
        compose(
            "evaluate",
            [
                "debug=fast",
                f"paths.data_dir={tiny_pad_root}/data",
                f"ckpt_path={fast_run.best_checkpoint}",
            ],
            ev,
        )
    )
    scores = ev / "tables/scores.parquet"
    overrides = [f"scores={scores}", f"ckpt_path={fast_run.best_checkpoint}", "targets=[0.01]"]
    with pytest.raises(ValueError, match=r"scores\.parquet.*cannot resolve.*< 300"):
        calibrate(compose("calibrate", overrides, tmp_path / "cal"))

    table = pd.read_parquet(scores)
    table.loc[table["split"] == "val", "split"] = "calib"
    pooled = tmp_path / "pooled.parquet"
    table.to_parquet(pooled, index=False)
    out = tmp_path / "pooled"
    cfg = compose(
        "calibrate",
        [f"scores={pooled}", "targets=[0.6]", "min_subjects=2", "bootstrap.n_resamples=100"],
        out,
    )
    result = calibrate(cfg)
    assert result.inputs["checkpoint"] is None  # not given here
    glob = entry(result.to_dict())
    calib = table[table["split"] == "calib"]
    assert glob["threshold"] == threshold_at_worst_apcer(
        calib["score"].astype(float), calib["label"], calib["attack_type"], 0.6
    )
    assert set(glob["calib"]["counts"]["attacks_per_species"]) == {"mask", "print", "replay"}
    assert all(e["source"].startswith("global (") for e in result.to_dict()["thresholds"][1:])
    assert strict_json(out / "thresholds.json")["inputs"]["scores"]["path"] == str(pooled)
