"""A kind the project does not ship joins by one registration: capture quality (is this capture
good enough, or must the user take it again?). It brings its own score table (a continuous
`quality` target instead of an attack label), its own decision rule (accept / review /
recapture), evaluator, calibrator, export wrapper and serving class; the project's own
runners (idv-evaluate, idv-calibrate, idv-export, load_bundle) then run it end to end without
knowing it exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
import torch
from omegaconf import OmegaConf, open_dict
from torch import nn

from idv import kinds
from idv.atomic import write_json, write_text
from idv.calibration.thresholds import calibrate
from idv.cli.evaluate import run as evaluate
from idv.data.manifest import write_manifest
from idv.export.bundle import export_bundle
from idv.export.parity import ParityOptions
from idv.export.wrappers import DetectionScorer
from idv.models.outputs import DetectionScores
from idv.score_tables import (
    ScoreTableError,
    TableSchema,
    common_columns,
    id_columns,
    register_table,
)
from idv.serving import load_bundle
from idv.serving.bundle import Bundle
from idv.tasks.base import TaskBase
from idv.thresholds import DecisionRule, Entry, OperatingPoint, Rate, SplitReport, Thresholds
from tests.conftest import compose, make_corpus

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
BAD = 0.5  # a capture of quality below this should be taken again
RULE = DecisionRule(below="recapture", review="review", at_or_above="accept", failure="recapture")


# ------------------------------------------------------------------------------- the kind


def _check(frame: pd.DataFrame, source: str | None) -> pd.DataFrame:
    if frame.duplicated(["split", "sample_id"]).any():
        raise ScoreTableError(f"{source}: a capture is scored twice")
    return frame


QUALITY_TABLE = TableSchema(
    "quality",
    key="sample_id",
    required=("sample_id", "score", "quality", "subject_id"),
    columns={
        **id_columns("sample_id", "subject_id"),
        "quality": pa.Column(float, pa.Check.in_range(0.0, 1.0), nullable=False),
        **common_columns(),
    },
    check=_check,
)


class TinyQualityNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(image).mean(dim=(2, 3)))


class QualityTask(TaskBase):
    """Only what scoring needs: one image in, a quality probability out."""

    def __init__(self, net, optimizer=None, scheduler=None, run_config=None) -> None:
        super().__init__()
        self.net = net
        self.input_names, self.output_names = ("image",), ("quality",)
        self.to_outputs = DetectionScores()


class QualityScorer(DetectionScorer):
    meanings = {"quality": "P(the capture is good enough); higher = better"}

    @classmethod
    def from_run_config(cls, net, run_config):
        norm = run_config["augment"]["normalize"]
        return cls(net, norm["mean"], norm["std"], ["quality"], "quality").eval()


class QualityBundle(Bundle):
    def assess(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        quality = self.run(images)[self.primary]
        return quality, self.decide(quality)


def score(cfg, predictions) -> dict[str, pd.DataFrame]:
    tables = []
    for split, p in predictions.items():
        scored = pd.DataFrame({"sample_id": p.sample_ids, "score": p.outputs["quality"]})
        rows = p.items[["sample_id", "subject_id", "quality"]].assign(split=split)
        tables.append(rows.merge(scored, on="sample_id", how="left"))
    return {"scores": QUALITY_TABLE.validate(pd.concat(tables, ignore_index=True), "scored")}


def evaluate_quality(cfg, tables, out: Path) -> dict[str, Any]:
    test = tables["scores"][lambda t: t["split"] == cfg.split]
    metrics = {
        f"{cfg.split}/mae": float((test["score"] - test["quality"]).abs().mean()),
        f"{cfg.split}/captures": len(test),
    }
    write_json(metrics, out / "metrics.json")
    write_text("segment,group\n", out / "segments.csv")
    write_text(f"# quality on {cfg.split}\n", out / "report.md")
    return metrics


def _bad_accepted(rows: pd.DataFrame, t: float) -> Rate:
    bad = rows["quality"] < BAD
    accepted = int((rows.loc[bad, "score"] >= t).sum())
    return Rate(accepted / max(int(bad.sum()), 1), n=int(bad.sum()), count=accepted)


def calibrate_quality(table: pd.DataFrame, *, target: float) -> Thresholds:
    """The smallest threshold accepting at most `target` of the bad calib captures."""
    calib, test = table[table["split"] == "calib"], table[table["split"] == "test"]
    candidates = np.unique(np.append(calib["score"].to_numpy(), 1.0))
    t = float(next(c for c in candidates if _bad_accepted(calib, c).estimate <= target))
    point = OperatingPoint("bad_accept", target)
    entry = Entry(
        id=f"bad_accept<={target:g}|global",
        operating_point=point,
        segment_column=None,
        segment_value="global",
        source="own",
        threshold=t,
        review_at_or_above=t,
        calib=SplitReport({"captures": len(calib)}, {"bad_accept": _bad_accepted(calib, t)}),
        test=SplitReport({"captures": len(test)}, {"bad_accept": _bad_accepted(test, t)}),
    )
    return Thresholds(
        kind="quality", task=None, decision=RULE, score_range=(0.0, 1.0),
        operating_point=point, entries=(entry,),
    )  # fmt: skip


def calibration_options(cfg) -> tuple[dict[str, Any], list[str]]:
    return {"target": float(cfg.targets[0])}, []


QUALITY = kinds.Kind(
    name="quality",
    tables={"scores": "quality"},
    parts={
        "score": score,
        "evaluate": evaluate_quality,
        "calibrate": calibrate_quality,
        "calibration_options": calibration_options,
        "wrapper": QualityScorer.from_run_config,
        "decision_values": "idv.export.parity:primary_scores",
        "serving": QualityBundle,
    },
)


@pytest.fixture
def quality_kind():
    register_table(QUALITY_TABLE, replace=True)
    kinds.register(QUALITY, replace=True)
    yield QUALITY
    kinds.unregister("quality")


# ------------------------------------------------------------------------------- the run


def _as_quality_task(cfg) -> None:
    with open_dict(cfg):
        cfg.task.name = "quality"
        cfg.task.kind = "quality"
        cfg.task.module = {"_target_": "tests.test_extra_kind.QualityTask"}
        cfg.task.card = {"intended_use": "Capture quality: retake a capture that is too poor."}


def test_a_new_kind_runs_evaluate_calibrate_export_and_load(quality_kind, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    frame = make_corpus(corpus)
    frame["quality"] = np.linspace(0.0, 1.0, len(frame))
    write_manifest(frame, corpus / "manifest.parquet")
    data = [f"data.manifest={corpus / 'manifest.parquet'}", "augment.image_size=24"]

    # A checkpoint of the tiny network, in idv-train's format.
    train = compose("train", ["debug=fast", *data], tmp_path / "train")
    _as_quality_task(train)
    with open_dict(train):
        train.model = {"_target_": "tests.test_extra_kind.TinyQualityNet"}
    run_config = OmegaConf.to_container(train, resolve=True)
    torch.manual_seed(0)
    net = TinyQualityNet()
    ckpt = tmp_path / "best.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"run_config": run_config}}, ckpt)

    # idv-evaluate: scored through the kind's task module (predict_step), judged by its evaluator.
    cfg = compose("evaluate", [f"ckpt_path={ckpt}", *data], tmp_path / "eval")
    _as_quality_task(cfg)
    result = evaluate(cfg)
    table = pd.read_parquet(tmp_path / "eval/tables/scores.parquet")
    assert set(table.columns) >= {"quality", "score", "split"} and "label" not in result.metrics
    assert result.metrics["test/captures"] == (table["split"] == "test").sum()
    assert 0.0 <= result.metrics["test/mae"] <= 1.0

    # idv-calibrate: the kind's own operating point and decision rule.
    scores = tmp_path / "eval/tables/scores.parquet"
    cal = compose(
        "calibrate", [f"scores={scores}", f"ckpt_path={ckpt}", "targets=[0.5]"], tmp_path / "cal"
    )
    _as_quality_task(cal)
    thresholds = calibrate(cal)
    saved = json.loads((tmp_path / "cal/thresholds.json").read_text())
    assert saved["kind"] == "quality" and saved["decision"]["failure"] == "recapture"
    assert thresholds.global_entry().test.rates["bad_accept"].n is not None

    # idv-export and serving: the wrapper, parity and the serving class come from the kind.
    bundle_dir = tmp_path / "bundle"
    export_bundle(
        ckpt,
        tmp_path / "cal/thresholds.json",
        bundle_dir,
        evaluation_dir=tmp_path / "eval",
        parity=ParityOptions(min_samples=12, batch_size=4),
    )
    spec = json.loads((bundle_dir / "preprocess.json").read_text())
    assert list(spec["outputs"]) == ["quality"] and spec["primary_output"] == "quality"
    card = (bundle_dir / "model_card.md").read_text()
    assert "Capture quality: retake" in card and "Output `quality` (primary)" in card
    held_out = frame[frame["split"] == "test"].head(6)
    files = [str(corpus / p) for p in held_out["path"]]
    for backend in ("torchscript", "onnxruntime"):
        bundle = load_bundle(bundle_dir, backend=backend)
        assert isinstance(bundle, QualityBundle)
        quality, decisions = bundle.assess(files)
        expected = table.set_index("sample_id").loc[held_out["sample_id"], "score"].to_numpy()
        np.testing.assert_allclose(quality, expected, atol=1e-5, rtol=0)
        assert set(decisions) <= {"accept", "review", "recapture"}
        assert bundle.decide([np.nan])[0] == "recapture"  # a failure to acquire is retaken
        with pytest.raises(TypeError, match="Bundle.verify is for matching bundles.*assess"):
            bundle.verify(files[:1], files[:1])


def test_an_unknown_kind_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(kinds.KindError, match=r"unknown task kind 'nope'; registered kinds: \["):
        kinds.get("nope")
    with pytest.raises(kinds.KindError, match="first table role must be 'scores'"):
        kinds.Kind("x", tables={"search": "search"})
    with pytest.raises(kinds.KindError, match=r"supplies no 'benchmark'"):
        QUALITY.part("benchmark")


@pytest.mark.parametrize("kind", kinds.kinds(), ids=lambda k: k.name)
def test_every_part_of_a_registered_kind_resolves(kind) -> None:
    """A "module:attribute" reference is checked on first use only; import them all here
    so a renamed function fails this test, not a pipeline stage."""
    for name in kind.parts:
        assert kind.part(name) is not None, name
