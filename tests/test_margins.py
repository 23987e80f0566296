"""Margin heads: hand-computed logits, safe gradients at theta = 0 and pi, warm-up, config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from idv.models.margins import ArcFace, CombinedMargin, CosFace, margin_warmup

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

S = 64.0


def toy(head: CombinedMargin) -> CombinedMargin:
    """2-d weights: class 0 along x, class 1 along y (and unnormalised, to check that)."""
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.5]]))
    return head


def at(degrees: float | torch.Tensor) -> torch.Tensor:
    """Unit 2-d embeddings at these angles from class 0's weight."""
    rad = torch.deg2rad(torch.as_tensor(degrees, dtype=torch.float32)).reshape(-1)
    return torch.stack([torch.cos(rad), torch.sin(rad)], dim=1)


def cosd(degrees: float) -> float:
    return math.cos(math.radians(degrees))


LABEL0 = torch.tensor([0])


@pytest.mark.parametrize(
    ("head", "target"),
    [
        (ArcFace(2, 2, scale=S, margin=0.5), S * math.cos(math.radians(30) + 0.5)),
        (ArcFace(2, 2, scale=S, margin=math.radians(50)), S * cosd(80)),
        (CosFace(2, 2, scale=S, margin=0.35), S * (cosd(30) - 0.35)),
        (CombinedMargin(2, 2, S, 1.0, 0.3, 0.2), S * (math.cos(math.radians(30) + 0.3) - 0.2)),
        (CombinedMargin(2, 2, S, 1.5, 0.1, 0.0), S * math.cos(1.5 * math.radians(30) + 0.1)),
    ],
)
def test_hand_computed_logits(head: CombinedMargin, target: float) -> None:
    """An embedding 30 degrees from its class weight, 60 degrees from the other class's."""
    logits = toy(head)(at(30), LABEL0)
    assert logits[0, 0].item() == pytest.approx(target, abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(S * cosd(60), abs=1e-4)  # no margin
    plain = head(at(30))  # without labels: s * cos, no margin
    assert plain[0].tolist() == pytest.approx([S * cosd(30), S * cosd(60)], abs=1e-4)


@pytest.mark.parametrize(
    "head",
    [ArcFace(2, 2), ArcFace(2, 2, easy_margin=True), CosFace(2, 2), CombinedMargin(2, 2)]
    + [CombinedMargin(2, 2, 64.0, 0.9, 0.4, 0.15), CombinedMargin(2, 2, 64.0, 1.3, 0.0, 0.0)],
    ids=["arc", "arc_easy", "cos", "combined", "combined_0.9", "sphere_1.3"],
)
@pytest.mark.parametrize("degrees", [0.0, 180.0])
def test_gradients_are_finite_at_theta_0_and_pi(head: CombinedMargin, degrees: float) -> None:
    """An embedding equal to its class weight, or to its negation: no inf / nan anywhere."""
    head = toy(head)
    weight = head.weight.detach()[:1] * (1.0 if degrees == 0 else -1.0)
    for emb in (weight.clone(), at(degrees)):  # exactly the weight, and the unit vector
        emb.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(head(emb, LABEL0), LABEL0)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()
        head.zero_grad()


@pytest.mark.parametrize(
    "head",
    [ArcFace(2, 2), ArcFace(2, 2, margin=1.2), CosFace(2, 2), CombinedMargin(2, 2)]
    + [CombinedMargin(2, 2, 64.0, 0.9, 0.4, 0.15)],
    ids=["arc", "arc_1.2", "cos", "combined", "combined_0.9"],
)
@pytest.mark.parametrize("margin_scale", [1.0, 0.5])
def test_target_logit_decreases_over_theta(head: CombinedMargin, margin_scale: float) -> None:
    """Over [0, pi] the true-class logit never rises (the th / mm fallback past pi - m)."""
    head = toy(head)
    head.set_margin_scale(margin_scale)
    degrees = torch.linspace(0.0, 180.0, 3601)
    target = head(at(degrees), torch.zeros(len(degrees), dtype=torch.long))[:, 0]
    assert (target[1:] - target[:-1] <= 1e-4).all()
    assert (target <= S * torch.cos(torch.deg2rad(degrees)) + 1e-4).all()  # a penalty


def test_arcface_fallback_is_insightfaces_th_mm() -> None:
    """Past theta = pi - m the logit is s * (cos(theta) - m * sin(m))."""
    m = 0.5
    head = toy(ArcFace(2, 2, margin=m))
    theta = 180.0 - math.degrees(m) + 5.0
    assert head(at(theta), LABEL0)[0, 0].item() == pytest.approx(
        S * (cosd(theta) - m * math.sin(m)), abs=1e-4
    )


def test_easy_margin_spares_obtuse_angles() -> None:
    """easy_margin: no margin where cos(theta) <= 0 (so, by design, not monotonic at 90)."""
    head = toy(ArcFace(2, 2, margin=0.5, easy_margin=True))
    assert head(at(120), LABEL0)[0, 0].item() == pytest.approx(S * cosd(120), abs=1e-4)
    assert head(at(30), LABEL0)[0, 0].item() == pytest.approx(
        S * math.cos(math.radians(30) + 0.5), abs=1e-4
    )


def test_margin_scale_zero_gives_plain_normalised_softmax() -> None:
    emb = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    labels = torch.randint(0, 5, (16,))
    for head in (ArcFace(8, 5), CosFace(8, 5), CombinedMargin(8, 5, 64.0, 0.9, 0.4, 0.15)):
        head.set_margin_scale(0.0)
        cos = emb @ torch.nn.functional.normalize(head.weight.detach(), dim=1).T
        torch.testing.assert_close(head(emb, labels), S * cos, atol=1e-4, rtol=0)
        assert "margin_scale" not in str(list(head.state_dict()))  # plain attribute


def test_margin_scale_interpolates_and_is_validated() -> None:
    head = toy(ArcFace(2, 2, margin=0.5))
    head.set_margin_scale(0.5)
    assert head(at(30), LABEL0)[0, 0].item() == pytest.approx(
        S * math.cos(math.radians(30) + 0.25), abs=1e-4
    )
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="margin_scale"):
            head.set_margin_scale(bad)
    assert head.margin_scale == 0.5
    # Not in the state dict: a head saved mid-warm-up loads into a fresh one, strictly.
    fresh = ArcFace(2, 2, margin=0.5)
    fresh.load_state_dict(head.state_dict(), strict=True)
    assert fresh.margin_scale == 1.0


def test_margin_warmup_schedule() -> None:
    assert [margin_warmup(e, 4) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert margin_warmup(0, 0) == 1.0


def test_special_cases_agree() -> None:
    torch.manual_seed(0)
    emb = torch.randn(64, 16)
    labels = torch.randint(0, 10, (64,))
    pairs = [
        (ArcFace(16, 10, margin=0.5), CombinedMargin(16, 10, 64.0, 1.0, 0.5, 0.0)),
        (CosFace(16, 10, margin=0.35), CombinedMargin(16, 10, 64.0, 1.0, 0.0, 0.35)),
    ]
    for special, combined in pairs:
        combined.load_state_dict(special.state_dict())
        for k in (1.0, 0.3):
            special.set_margin_scale(k)
            combined.set_margin_scale(k)
            torch.testing.assert_close(special(emb, labels), combined(emb, labels))
    # Combined with m1 != 1 goes through acos: it agrees with the closed form at m1 -> 1.
    closed = CombinedMargin(16, 10, 64.0, 1.0, 0.3, 0.2)
    via_acos = CombinedMargin(16, 10, 64.0, 1.0 + 1e-9, 0.3, 0.2)
    via_acos.load_state_dict(closed.state_dict())
    torch.testing.assert_close(closed(emb, labels), via_acos(emb, labels), atol=2e-3, rtol=0)


def test_logits_are_float32_under_bf16_autocast() -> None:
    head = ArcFace(32, 7)
    emb = torch.randn(4, 32)
    labels = torch.tensor([0, 1, 2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(emb.bfloat16(), labels)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, head(emb.bfloat16().float(), labels))


def test_invalid_margins_are_errors() -> None:
    with pytest.raises(ValueError, match="m1 > 0"):
        CombinedMargin(2, 2, m2=4.0)
    with pytest.raises(ValueError, match="scale"):
        ArcFace(2, 2, scale=0.0)


@pytest.mark.parametrize("name", ["arcface", "cosface", "combined"])
def test_margin_configs_instantiate(name: str) -> None:
    cfg = OmegaConf.load(CONF_DIR / "margin" / f"{name}.yaml")
    assert cfg.warmup_epochs >= 0
    head = instantiate(cfg.head)(embedding_dim=16, num_classes=3)  # a partial: the task sizes it
    assert isinstance(head, CombinedMargin)
    assert head.weight.shape == (3, 16)
    assert head(torch.randn(2, 16), torch.tensor([0, 2])).shape == (2, 3)
