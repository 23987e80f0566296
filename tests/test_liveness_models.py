"""Liveness building blocks: the clip network, score fusion, the clip dataset's challenge
input and targets, and CHROM / POS on a synthetic pulse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from idv.data.datasets import ClipDataset, collate
from idv.models.backbones import TimmBackbone
from idv.models.outputs import DetectionScores
from idv.models.rppg import HandcraftedLiveness, chrom, pos, pulse_snr
from idv.models.temporal import ClipClassifier, PulseSpectrum

AUGMENT = {"normalize": {"mean": [0.5] * 3, "std": [0.25] * 3}, "eval": [], "train": []}


@pytest.mark.parametrize("temporal", ["mean", "gru", "tcn"])
@pytest.mark.parametrize("frames", [1, 4])
def test_clip_network_shapes_and_challenge_pick(temporal: str, frames: int) -> None:
    torch.manual_seed(0)
    net = ClipClassifier(
        TimmBackbone("resnet10t", in_chans=6), challenges=["a", "b", "c"], temporal=temporal
    ).eval()
    x = torch.rand(2, frames, 3, 32, 32)
    out = net(x, torch.tensor([0, 2]))
    assert set(out) == {"attack", "noncompliance"}
    assert out["attack"].shape == (2, 1) and out["noncompliance"].shape == (2, 1)
    # The compliance logit is the asked challenge's: other prompt, other value, same attack.
    other = net(x, torch.tensor([1, 2]))
    assert torch.equal(other["attack"], out["attack"])
    assert not torch.equal(other["noncompliance"][0], out["noncompliance"][0])
    assert torch.equal(other["noncompliance"][1], out["noncompliance"][1])


def test_clip_network_scripts_and_rejects_bad_config() -> None:
    net = ClipClassifier(TimmBackbone("resnet10t", in_chans=6), challenges=2, temporal="gru")
    scripted = torch.jit.script(net.eval())
    x, c = torch.rand(3, 4, 3, 32, 32), torch.tensor([0, 1, 1])
    torch.testing.assert_close(scripted(x, c)["attack"], net(x, c)["attack"])
    # `performed`: every challenge's logit; noncompliance is minus the asked one's.
    full = ClipClassifier(TimmBackbone("resnet10t", in_chans=6), 2, performed_output=True)
    out = torch.jit.script(full.eval())(x, c)
    assert set(out) == {"attack", "noncompliance", "performed"}
    assert out["performed"].shape == (3, 2)
    torch.testing.assert_close(-out["noncompliance"][:, 0], out["performed"][[0, 1, 2], c])
    with pytest.raises(ValueError, match="temporal"):
        ClipClassifier(TimmBackbone("resnet10t"), challenges=2, temporal="lstm")
    with pytest.raises(ValueError, match="challenges"):
        ClipClassifier(TimmBackbone("resnet10t"), challenges=0)


BOX = [0.25, 0.75, 0.25, 0.75]


def test_pulse_spectrum_peaks_at_the_pulse_and_ignores_brightness() -> None:
    """A green oscillation of 3 cycles per clip under noise: the green axis' power peaks at
    bin 3; a constant offset changes nothing (detrended), a gain shifts all bins alike (log)."""
    t = torch.arange(16, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    frames = 0.05 * torch.randn(1, 16, 3, 8, 8, generator=g)
    frames[:, :, 1] += 0.2 * torch.sin(2 * torch.pi * 3 * t / 16).reshape(1, 16, 1, 1)
    # eps far below this toy clip's noise power, so the log-power property shows unbiased.
    pulse = PulseSpectrum(projections=1, cycles=8, hidden=4, box=BOX, eps=1e-12)
    with torch.no_grad():
        pulse.project.weight.copy_(torch.tensor([[0.0, 1.0, 0.0]]))
        power = pulse.spectrum(frames)[0, 0]
        assert int(power.argmax()) == 2  # bins are 1..8 cycles per clip
        torch.testing.assert_close(pulse.spectrum(frames + 0.7), pulse.spectrum(frames))
        shift = pulse.spectrum(3.0 * frames) - pulse.spectrum(frames)
        torch.testing.assert_close(
            shift, torch.full_like(shift, float(np.log(9.0))), atol=0.02, rtol=0
        )
    assert pulse.eval()(frames).shape == (1, 4)
    with pytest.raises(ValueError, match="box"):
        PulseSpectrum(projections=1, cycles=8, hidden=4, box=[0.8, 0.2, 0.0, 1.0])


def test_backbone_stride_sees_every_other_frame_and_pulse_every_frame() -> None:
    torch.manual_seed(0)
    backbone = TimmBackbone("resnet10t", in_chans=6)
    plain = ClipClassifier(backbone, 2, temporal="gru", backbone_stride=2).eval()
    x, c = torch.rand(2, 8, 3, 32, 32), torch.tensor([0, 1])
    odd = x.clone()
    odd[:, 1::2] = torch.rand(2, 4, 3, 32, 32)
    torch.testing.assert_close(plain(odd, c)["attack"], plain(x, c)["attack"])
    pulse = {"projections": 2, "cycles": 4, "hidden": 8, "box": BOX}
    net = ClipClassifier(backbone, 2, temporal="gru", backbone_stride=2, pulse=pulse).eval()
    assert not torch.allclose(net(odd, c)["attack"], net(x, c)["attack"])
    torch.testing.assert_close(torch.jit.script(net)(x, c)["attack"], net(x, c)["attack"])
    with pytest.raises(ValueError, match="backbone_stride"):
        ClipClassifier(backbone, 2, backbone_stride=0)


def test_fusion_rules() -> None:
    logits = {"a": torch.tensor([[0.0], [2.0]]), "b": torch.tensor([[1.0], [-2.0]])}
    pa, pb = torch.sigmoid(logits["a"][:, 0]), torch.sigmoid(logits["b"][:, 0])
    for rule, expected in (
        ("max", torch.maximum(pa, pb)),
        ("mean", (pa + pb) / 2),
        ("noisy_or", 1 - (1 - pa) * (1 - pb)),
    ):
        head = DetectionScores({"score": {"rule": rule, "of": ["a", "b"]}})
        torch.testing.assert_close(head(logits)["score"], expected)
        torch.testing.assert_close(torch.jit.script(head)(logits)["score"], expected)
    with pytest.raises(ValueError, match="rule"):
        DetectionScores({"score": {"rule": "min", "of": ["a"]}})


def _clip_corpus(root, sessions: int = 3, frames: int = 5) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for s in range(sessions):
        for k in range(frames):
            rel = f"s{s}/{k}.png"
            (root / f"s{s}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / rel)
            rows.append({
                "sample_id": f"s{s}_{k}", "session_id": f"s{s}", "frame_index": k, "path": rel,
                "label": s % 2, "attack_type": "bona_fide" if s % 2 == 0 else "replay",
                "subject_id": f"p{s}", "split": "test", "challenge": ["blink", "smile"][s % 2],
                "challenge_failed": float(s % 2), "performed": ["blink", "none"][s % 2],
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_clip_dataset_gives_the_challenge_index_and_targets(tmp_path) -> None:
    frame = _clip_corpus(tmp_path)
    ds = ClipDataset(
        frame, tmp_path, AUGMENT, "eval", ["bona_fide", "replay"], frames=3,
        challenges=["smile", "blink"], targets=["challenge_failed"],
        challenge_targets=["performed"],
    )  # fmt: skip
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch.frames.shape == (3, 3, 3, 16, 16)
    assert batch.challenge.tolist() == [1, 0, 1]
    assert batch.challenge_failed.tolist() == [0.0, 1.0, 0.0]
    assert batch.performed.tolist() == [[0.0, 1.0], [0.0, 0.0], [0.0, 1.0]]  # one-hot, none
    with pytest.raises(ValueError, match=r"session 's1': performed \['wave'\]"):
        ClipDataset(frame.replace({"none": "wave"}), tmp_path, AUGMENT, "eval",
                    ["bona_fide", "replay"], challenges=["smile", "blink"],
                    challenge_targets=["performed"])  # fmt: skip
    raw = ds.serving_inputs(1)
    assert raw["challenge"] == "smile" and len(raw["frames"]) == 3
    assert raw["frames"][-1].endswith("s1/4.png")
    with pytest.raises(ValueError, match=r"session 's0'.*\['jump'\]"):
        ClipDataset(frame.replace({"blink": "jump"}), tmp_path, AUGMENT, "eval",
                    ["bona_fide", "replay"], challenges=["smile", "blink"])  # fmt: skip
    with pytest.raises(ValueError, match="challenge_failed"):
        ClipDataset(frame.drop(columns="challenge_failed"), tmp_path, AUGMENT, "eval",
                    ["bona_fide", "replay"], targets=["challenge_failed"])  # fmt: skip


def _traces(pulse: bool, seed: int, n: int = 64, fps: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    base = np.array([150.0, 110.0, 90.0])
    wave = 0.01 * np.sin(2 * np.pi * 1.2 * t) if pulse else 0.0 * t
    light = 1.0 + 0.01 * rng.standard_normal(n)  # intensity noise common to all channels
    rgb = base * light[:, None] * (1 + np.outer(wave, [0.3, 1.0, 0.5]))
    return rgb + 0.3 * rng.standard_normal((n, 3))


@pytest.mark.parametrize("method", [chrom, pos])
def test_chrom_and_pos_find_a_pulse_under_intensity_noise(method) -> None:
    with_pulse = [pulse_snr(method(_traces(True, s)), 8.0) for s in range(10)]
    without = [pulse_snr(method(_traces(False, s)), 8.0) for s in range(10)]
    assert min(with_pulse) > max(without)
    freq = np.fft.rfftfreq(256, 1 / 8.0)
    peak = freq[np.argmax(np.abs(np.fft.rfft(method(_traces(True, 0)), 256)))]
    assert abs(peak - 1.2) < 0.1


def test_handcrafted_baseline_separates_still_from_moving_clips() -> None:
    rng = np.random.default_rng(0)

    def clip(moving: bool) -> list[np.ndarray]:
        base = rng.integers(60, 200, (24, 24, 3)).astype(np.float32)
        return [np.clip(base + (rng.normal(0, 12, base.shape) if moving else 0), 0, 255)
                .astype(np.uint8) for _ in range(6)]  # fmt: skip

    clips = [clip(k % 2 == 0) for k in range(40)]
    labels = np.array([k % 2 for k in range(40)])  # the still ones are attacks
    model = HandcraftedLiveness(fps=8.0).fit(clips[:30], labels[:30])
    scores = model.score(clips[30:])
    assert (scores[labels[30:] == 1] > scores[labels[30:] == 0].max()).all()
