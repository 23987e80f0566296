"""Face matching: protocols, the P x K sampler, the portrait generator, and the task end to end
(train -> evaluate -> calibrate) on the tiny synthetic face corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from idv.data.comparisons import comparison_pairs, search_protocol
from idv.data.samplers import IdentityBalancedSampler
from idv.metrics.identification import fnir, fpir
from idv.thresholds import Thresholds
from tests.conftest import compose


def _faces(subjects: int = 6, selfies: int = 3) -> pd.DataFrame:
    rows = []
    for s in range(subjects):
        demo = {"sex": "female" if s % 2 else "male", "age_band": "18-29", "skin_tone": "I-II"}
        kinds = [("selfie", k) for k in range(selfies)] + [("id_portrait", 0)]
        for kind, k in kinds:
            rows.append(
                {
                    "sample_id": f"S{s}_{kind}_{k}",
                    "subject_id": f"S{s}",
                    "capture_type": kind,
                    "geography": "EU" if s < 3 else "NA",
                    **demo,
                }
            )
    return pd.DataFrame(rows)


def test_selfie_pairs_are_every_pair_once_with_hard_impostors_flagged() -> None:
    table = comparison_pairs(_faces(), "selfie_selfie")
    n = 6 * 3
    assert len(table) == n * (n - 1) // 2
    assert int(table["genuine"].sum()) == 6 * 3  # 3 pairs per subject
    assert not table[["sample_id_a", "sample_id_b"]].apply(frozenset, axis=1).duplicated().any()
    hard = table[table["demographic_match"]]
    assert not hard["genuine"].any() and len(hard) > 0
    # Same sex (the only attribute that varies here) on both sides, and only those.
    sex = dict(zip(_faces()["subject_id"], _faces()["sex"], strict=False))
    impostors = table[~table["genuine"]]
    same = impostors["subject_id_a"].map(sex) == impostors["subject_id_b"].map(sex)
    assert (same == impostors["demographic_match"]).all()


def test_portrait_pairs_and_impostor_sampling_is_seeded() -> None:
    table = comparison_pairs(_faces(), "portrait_selfie")
    assert len(table) == 6 * 18 and int(table["genuine"].sum()) == 18
    assert table["sample_id_a"].str.contains("id_portrait").all()
    a = comparison_pairs(_faces(), "portrait_selfie", max_impostors=20, seed=3)
    b = comparison_pairs(_faces(), "portrait_selfie", max_impostors=20, seed=3)
    c = comparison_pairs(_faces(), "portrait_selfie", max_impostors=20, seed=4)
    assert (~a["genuine"]).sum() == 20 and a["genuine"].sum() == 18
    pd.testing.assert_frame_equal(a, b)
    assert not a["sample_id_b"].equals(c["sample_id_b"])
    with pytest.raises(ValueError, match="unknown protocol"):
        comparison_pairs(_faces(), "selfie_document")


def test_search_protocol_enrols_one_selfie_per_enrolled_subject() -> None:
    frame = _faces(subjects=9)
    protocol = search_protocol(frame, enrolled_fraction=1 / 3, seed=0)
    gallery, probes = protocol.gallery, protocol.probes
    assert len(gallery) == gallery["subject_id"].nunique() == 3
    assert (gallery["capture_type"] == "selfie").all()
    assert not set(gallery["sample_id"]) & set(probes["sample_id"])
    enrolled = set(gallery["subject_id"])
    assert (probes["mated"] == probes["subject_id"].isin(enrolled)).all()
    assert probes["mated"].sum() == 3 * 2 and (~probes["mated"]).sum() == 6 * 3
    again = search_protocol(frame, enrolled_fraction=1 / 3, seed=0)
    pd.testing.assert_frame_equal(gallery, again.gallery)


def test_identity_balanced_sampler_batches_p_identities_k_samples() -> None:
    labels = np.repeat(np.arange(10), [5, 5, 5, 5, 5, 3, 3, 3, 2, 1])
    sampler = IdentityBalancedSampler(labels, identities=4, per_identity=2, seed=0)
    keys = list(sampler)
    assert len(keys) == len(sampler) == (len(labels) // 8) * 8
    for start in range(0, len(keys), 8):
        batch = labels[[i for i, _ in keys[start : start + 8]]]
        ids, counts = np.unique(batch, return_counts=True)
        assert len(ids) == 4 and (counts == 2).all()
    assert keys == list(sampler)  # same epoch, same order
    sampler.set_epoch(1)
    assert keys != list(sampler)
    with pytest.raises(ValueError, match="only 10"):
        IdentityBalancedSampler(labels, identities=11, per_identity=2, seed=0)


def test_portrait_is_a_degraded_capture_of_the_same_face() -> None:
    from idv.data.synth.faces import render_face, sample_identity
    from idv.data.synth.portrait import PortraitStyle, render_portrait

    identity = sample_identity(np.random.default_rng(0), "S0")
    style = PortraitStyle()
    a = render_portrait(identity, np.random.default_rng(1), 112, style)
    b = render_portrait(identity, np.random.default_rng(1), 112, style)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.landmarks, b.landmarks)
    selfie = render_face(identity, np.random.default_rng(1), 112)
    # Lower contrast and less fine detail than a selfie of the same person.
    assert a.image.std() < selfie.image.std()
    detail = [np.abs(np.diff(x.image.astype(float), axis=1)).mean() for x in (a, selfie)]
    assert detail[0] < detail[1]


def test_face_corpus_is_aligned_with_portraits(tiny_faces_root: Path) -> None:
    from idv.faces.align import ARCFACE_TEMPLATE_112

    frame = pd.read_parquet(tiny_faces_root / "data/faces/tiny/manifest.parquet")
    assert set(frame["capture_type"]) == {"selfie", "id_portrait"}
    assert (
        frame.groupby("subject_id")["capture_type"].apply(lambda c: (c == "id_portrait").sum()) == 1
    ).all()
    landmarks = np.stack(frame["landmarks"].map(np.asarray).to_list()).reshape(-1, 5, 2)
    # Aligned by a similarity fit: pose and expression leave a small residual, no more.
    assert np.abs(landmarks - ARCFACE_TEMPLATE_112).max() < 4.0


def _face_overrides(root: Path, *extra: str) -> list[str]:
    return [
        "task=face_match",
        "debug=fast",
        f"paths.data_dir={root}/data",
        "callbacks.progress.interactive=false",
        "task.sampler.per_identity=2",
        "model.embedding_dim=64",
        *extra,
    ]


@pytest.fixture(scope="session")
def face_run(tiny_faces_root: Path, tmp_path_factory):
    from idv.tasks.fit import fit

    out = tmp_path_factory.mktemp("face_run")
    return fit(compose("train", _face_overrides(tiny_faces_root), out))


def test_face_match_trains_and_selects_on_val_verification(face_run) -> None:
    from idv.models.checkpoint import net_from_checkpoint

    assert "val/eer" in face_run.metrics and 0.0 <= face_run.metrics["val/eer"] <= 1.0
    net, config = net_from_checkpoint(face_run.best_checkpoint)
    assert config["task"]["kind"] == "matching"
    import torch

    out = net(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 64) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_face_match_evaluate_and_calibrate(face_run, tiny_faces_root: Path, tmp_path) -> None:
    from idv.calibration.thresholds import calibrate
    from idv.cli.evaluate import run as evaluate

    overrides = [
        "task=face_match",
        "debug=fast",
        f"paths.data_dir={tiny_faces_root}/data",
        f"ckpt_path={face_run.best_checkpoint}",
        "bootstrap.n_resamples=50",
    ]
    evaluate(compose("evaluate", overrides, tmp_path / "eval"))
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    for key in ("selfie_selfie/eer", "portrait_selfie/eer", "search/rank_1_rate"):
        assert 0.0 <= metrics[f"test/{key}"] <= 1.0, key
    assert metrics["test/selfie_selfie/eer_ci_low"] <= metrics["test/selfie_selfie/eer"]
    table = pd.read_parquet(tmp_path / "eval/tables/scores.parquet")
    assert set(table["protocol"]) == {"selfie_selfie", "portrait_selfie"}
    assert set(table["split"]) == {"val", "calib", "test"}
    assert table["score"].between(-1.0001, 1.0001).all()
    search = pd.read_parquet(tmp_path / "eval/tables/search.parquet")
    assert search["mated"].any() and (~search["mated"]).any()
    assert (search["rank"] >= 1).all()
    assert (tmp_path / "eval/plots/det.png").is_file()

    cfg = compose(
        "calibrate",
        [
            "task=face_match",
            "profile=tiny",
            f"scores={tmp_path / 'eval/tables/scores.parquet'}",
            "targets=[0.1]",
            "bootstrap.n_resamples=50",
        ],
        tmp_path / "cal",
    )
    result = calibrate(cfg)
    assert result.kind == "matching" and result.details["protocol"] == "portrait_selfie"
    glob = result.global_entry()
    assert glob.segment_column is None and glob.calib.rates["fmr"].estimate <= 0.1
    assert Thresholds.load(tmp_path / "cal/thresholds.json").to_dict() == result.to_dict()
    # The 1:N threshold (search.parquet beside the comparisons, tiny FPIR target 0.5): FPIR
    # on the calib searches meets it; FNIR on test is reported with an interval.
    one_to_n = result.global_entry("fpir")
    assert one_to_n.operating_point.max == 0.5 and one_to_n.source == "own"
    assert fpir(search[search["split"] == "calib"], one_to_n.threshold) <= 0.5
    fnir_test = one_to_n.test.rates["fnir"]
    assert fnir_test.estimate == fnir(search[search["split"] == "test"], one_to_n.threshold)
    assert fnir_test.low <= fnir_test.estimate <= fnir_test.high
    assert result.inputs["search"]["path"].endswith("tables/search.parquet")
