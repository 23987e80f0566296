"""Face embedders: unit norm (bf16 too), TorchScript round trip, facenet offline, learning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from idv.models.backbones import FacenetBackbone, TimmBackbone
from idv.models.embedding import EmbeddingNeck, FaceEmbedder
from idv.models.margins import ArcFace

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


class MLPBackbone(nn.Module):
    """A stub backbone: flattened pixels through one hidden layer."""

    def __init__(self, in_features: int, num_features: int = 32) -> None:
        super().__init__()
        self.num_features = num_features
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def unit_norm(e: torch.Tensor) -> bool:
    return torch.allclose(e.norm(dim=1), torch.ones(len(e)), atol=1e-5)


def test_neck_outputs_unit_norm_embeddings() -> None:
    neck = EmbeddingNeck(48, embedding_dim=16, dropout=0.2)
    for mode in (neck.train, neck.eval):
        mode()
        e = neck(torch.randn(5, 48) * 100)
        assert e.shape == (5, 16) and e.dtype == torch.float32 and unit_norm(e)


@pytest.mark.parametrize("train", [True, False])
def test_timm_embedder_shape_and_norm_under_bf16_autocast(train: bool) -> None:
    torch.manual_seed(0)
    model = FaceEmbedder(TimmBackbone("resnet10t"), embedding_dim=128).train(train)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        fp32 = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(images)
    for e in (fp32, bf16):
        assert e.shape == (3, 128) and e.dtype == torch.float32 and unit_norm(e)
    if not train:  # same model, lower precision: the same direction, roughly
        assert (fp32 * bf16).sum(dim=1).min() > 0.95


def test_torchscript_round_trip_is_exact(tmp_path: Path) -> None:
    """Scripting and tracing a timm FaceEmbedder both reproduce its embeddings."""
    torch.manual_seed(0)
    model = FaceEmbedder(TimmBackbone("resnet10t"), embedding_dim=64).eval()
    images, other = torch.randn(4, 3, 64, 64), torch.randn(7, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated for torch.export
        scripted = torch.jit.script(model)
        traced = torch.jit.trace(model, images)
        for exported in (scripted, traced):
            file = tmp_path / "model.ts"
            torch.jit.save(exported, str(file))
            loaded = torch.jit.load(str(file))
            with torch.no_grad():
                for x in (images, other):  # another batch size too
                    assert (loaded(x) - model(x)).abs().max().item() <= 1e-6


def test_facenet_backbone_builds_offline_and_loads_only_local_files(tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = FacenetBackbone()
    assert backbone.num_features == 512
    embedder = FaceEmbedder(backbone, embedding_dim=32).eval()
    with torch.no_grad():
        e = embedder(torch.randn(2, 3, 80, 80))
    assert e.shape == (2, 32) and unit_norm(e)
    with pytest.raises(ValueError, match="at least 75x75"):
        backbone(torch.randn(2, 3, 64, 64))

    # facenet's own files carry its identity classifier: that part is dropped, the rest strict.
    file = tmp_path / "facenet.pt"
    state = backbone.net.state_dict()
    torch.save({**state, "logits.weight": torch.zeros(3, 512)}, file)
    loaded = FacenetBackbone(pretrained_path=str(file))
    for key, value in state.items():
        assert torch.equal(value, loaded.net.state_dict()[key]), key
    with pytest.raises(FileNotFoundError, match="local files only"):
        FacenetBackbone(pretrained_path=str(tmp_path / "missing.pt"))
    torch.save(TimmBackbone("resnet10t").net.state_dict(), file)
    with pytest.raises(RuntimeError):  # another architecture's weights: strict load fails
        FacenetBackbone(pretrained_path=str(file))


@pytest.mark.slow
def test_facenet_embedder_traces(tmp_path: Path) -> None:
    """InceptionResnetV1 does not script; tracing reproduces it (about 10 s on 2 cores)."""
    torch.manual_seed(0)
    model = FaceEmbedder(FacenetBackbone(), embedding_dim=32).eval()
    images = torch.randn(2, 3, 80, 80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with pytest.raises(RuntimeError):
            torch.jit.script(model)
        with torch.no_grad():
            traced = torch.jit.trace(model, images, check_trace=False)
    with torch.no_grad():
        assert (traced(images) - model(images)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("name", ["embedder", "embedder_facenet"])
def test_model_configs_instantiate(name: str) -> None:
    cfg = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    model = instantiate(cfg)
    assert isinstance(model, FaceEmbedder) and model.embedding_dim == 512


def test_embedder_and_arcface_learn_a_toy_problem() -> None:
    """Four separable identities (noisy prototypes): ArcFace's loss drops within 40 steps."""
    torch.manual_seed(0)
    identities, per_id = 4, 8
    prototypes = torch.randn(identities, 3, 8, 8)
    labels = torch.arange(identities).repeat_interleave(per_id)
    images = prototypes[labels] + 0.3 * torch.randn(len(labels), 3, 8, 8)
    model = FaceEmbedder(MLPBackbone(3 * 8 * 8), embedding_dim=16)
    head = ArcFace(16, identities, scale=16.0, margin=0.3)
    optimiser = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threads only add contention on a busy machine
    try:
        for _ in range(40):
            loss = nn.functional.cross_entropy(head(model(images), labels), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    assert losses[-1] < 0.25 * losses[0]
    model.eval()
    with torch.no_grad():  # the embeddings now identify: nearest class weight is the label
        predicted = head(model(images)).argmax(dim=1)
    assert (predicted == labels).float().mean() == 1.0
