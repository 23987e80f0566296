"""Named outputs of a detector: a primary score and auxiliary outputs with their own targets,
losses and weights; scoring through predict_step; per-item outputs kept in the score table;
and the exported wrapper that names every output in TorchScript and ONNX."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

from idv.data.datasets import ImageDataset, collate
from idv.export.formats import export_formats
from idv.export.wrappers import MultiOutputScorer
from idv.serving.backends import load_backend
from idv.tasks.detection import DetectionTask
from idv.tasks.scoring import Predictions, detection_tables

AUGMENT = {"normalize": {"mean": [0.0] * 3, "std": [1.0] * 3}, "train": [], "eval": []}
OUTPUTS = {"score": {"target": "label", "weight": 1.0}, "mask": {"target": "mask", "weight": 0.5}}


class ScoreAndMask(nn.Module):
    """A tamper-localising detector: a pixel map of logits and an image-level logit."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        self.fc = nn.Linear(1, 1)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = self.conv(image)
        return {"score": self.fc(mask.mean(dim=(2, 3))), "mask": mask}


def batch_of(tmp_path: Path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        m = np.zeros((8, 8, 3), np.uint8)
        m[: 2 * i] = 255
        Image.fromarray(m).save(tmp_path / f"m{i}.png")
        rows.append((f"s{i}", f"{i}.png", f"m{i}.png", i % 2, "print" if i % 2 else "bona_fide"))
    frame = pd.DataFrame(rows, columns=["sample_id", "path", "mask_path", "label", "attack_type"])
    frame["subject_id"] = frame["sample_id"]
    data = ImageDataset(frame, tmp_path, AUGMENT, "eval", ["bona_fide", "print"], mask=True)
    return collate([data[i] for i in range(4)])


def task(**kwargs) -> DetectionTask:
    torch.manual_seed(0)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    return DetectionTask(ScoreAndMask(), optimizer, ["bona_fide", "print"], **kwargs)


def test_every_output_has_its_loss_and_weight(tmp_path: Path) -> None:
    batch = batch_of(tmp_path)
    detector = task(outputs=OUTPUTS)
    assert detector.output_names == ("score", "mask") and detector.primary == "score"
    loss = detector.training_step(batch, 0)
    raw = ScoreAndMask()
    raw.load_state_dict(detector.net.state_dict())
    out = raw(batch.image)
    expected = F.binary_cross_entropy_with_logits(out["score"][:, 0], batch.label.float())
    expected = expected + 0.5 * F.binary_cross_entropy_with_logits(out["mask"], batch.mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert detector.net.conv.weight.grad.abs().sum() > 0  # the mask loss reaches the network


def test_predict_step_gives_scores_and_pixel_counts_of_the_mask(tmp_path: Path) -> None:
    batch = batch_of(tmp_path)
    detector = task(outputs=OUTPUTS)
    out = detector.predict_step(batch, 0)
    assert out["sample_id"] == ["s0", "s1", "s2", "s3"]
    assert out["score"].shape == (4,) and ((out["score"] >= 0) & (out["score"] <= 1)).all()
    # The map is not tabled: its pixel counts against the batch's mask are.
    assert "mask" not in out
    probability = torch.sigmoid(detector.raw_outputs(batch)["mask"])
    guess, truth = probability > 0.5, batch.mask > 0.5
    assert torch.equal(out["mask_tp"], (guess & truth).sum((1, 2, 3)).float())
    assert torch.equal(out["mask_fp"], (guess & ~truth).sum((1, 2, 3)).float())
    assert torch.equal(out["mask_fn"], (~guess & truth).sum((1, 2, 3)).float())
    assert torch.equal(out["mask_positive"], truth.sum((1, 2, 3)).float())
    assert out["mask_positive"].sum() > 0  # the fixture has tampered pixels to count


def test_declared_outputs_must_match_the_network(tmp_path: Path) -> None:
    batch = batch_of(tmp_path)
    with pytest.raises(KeyError, match=r"returned outputs \['mask', 'score'\]; the task declares"):
        task(outputs={"score": OUTPUTS["score"]}).training_step(batch, 0)
    with pytest.raises(ValueError, match="primary output 'verdict' is not among"):
        task(outputs=OUTPUTS, primary="verdict")
    with pytest.raises(ValueError, match="give `target`"):
        task(outputs={"score": {"weight": 1.0}})


def test_score_tables_keep_per_item_outputs_and_say_what_they_drop(tmp_path, caplog) -> None:
    items = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "label": [0, 1],
            "attack_type": ["bona_fide", "print"],
            "subject_id": ["s1", "s2"],
            "split": "test",
        }
    )
    outputs = {
        "score": np.array([0.2, 0.9]),
        "compliance": np.array([0.7, 0.1]),
        "mask": np.zeros((2, 1, 4, 4)),
    }
    cfg = OmegaConf.create({"task": {"module": {"primary": "score"}}})
    with caplog.at_level(logging.WARNING):
        tables = detection_tables(cfg, {"test": Predictions(items, items, ["a", "b"], outputs)})
    table = tables["scores"]
    assert table["output/compliance"].tolist() == [0.7, 0.1] and "output/mask" not in table
    assert "['mask'] hold more than one value per item" in caplog.text


def test_multi_output_wrapper_names_every_output_in_both_formats(tmp_path: Path) -> None:
    torch.manual_seed(0)
    wrapper = MultiOutputScorer(ScoreAndMask(), [0.5] * 3, [0.25] * 3, ["score", "mask"], "score")
    example = {"image": torch.rand(2, 3, 8, 8) * 255}
    exported = export_formats(wrapper.eval(), example, tmp_path)
    x = torch.rand(5, 3, 8, 8) * 255
    with torch.inference_mode():
        expected = {k: v.numpy() for k, v in wrapper(x).items()}
    assert expected["score"].shape == (5,) and expected["mask"].shape == (5, 1, 8, 8)
    for name, backend in (("torchscript", "torchscript"), ("onnx", "onnxruntime")):
        got = load_backend(backend, exported[name].path, ["image"])({"image": x.numpy()})
        assert sorted(got) == ["mask", "score"]
        for key in ("score", "mask"):
            np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=0)
