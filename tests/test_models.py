"""Plain models: any timm backbone, local-file weights only, and no Lightning import."""

from __future__ import annotations

import pytest
import torch

from idv.models.backbones import TimmBackbone
from idv.models.heads import ImageClassifier


@pytest.mark.parametrize("name", ["resnet10t", "mobilenetv3_small_100", "efficientnet_b0"])
def test_any_timm_backbone_feeds_the_head(name: str) -> None:
    net = ImageClassifier(TimmBackbone(name), num_classes=1).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 1)


def test_model_args_reach_timm() -> None:
    """A narrower ResNet (the liveness default): its stage widths, so its pooled width."""
    narrow = TimmBackbone("resnet10t", in_chans=6, model_args={"channels": [32, 64, 128, 256]})
    assert narrow.num_features == 256
    with torch.no_grad():
        assert narrow(torch.zeros(2, 6, 48, 48)).shape == (2, 256)
    with pytest.raises(TypeError):
        TimmBackbone("resnet10t", model_args={"no_such_argument": 1})


def test_unknown_backbone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown timm model 'resnet_nope'"):
        TimmBackbone("resnet_nope")


def test_pretrained_weights_load_from_a_local_file(tmp_path) -> None:
    source = TimmBackbone("resnet10t")
    file = tmp_path / "weights.pt"
    torch.save(source.net.state_dict(), file)
    loaded = TimmBackbone("resnet10t", pretrained_path=str(file))
    for key, value in source.net.state_dict().items():
        assert torch.equal(value, loaded.net.state_dict()[key]), key
    with pytest.raises(FileNotFoundError, match="local files only"):
        TimmBackbone("resnet10t", pretrained_path=str(tmp_path / "missing.pt"))
    with pytest.raises(RuntimeError):  # another architecture's weights: strict load fails
        TimmBackbone("resnet18", pretrained_path=str(file))
