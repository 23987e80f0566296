"""idv-export and idv.serving on the session's tiny PAD checkpoint: parity gate, atomic bundle,
checksums, model card, and a serving path that needs neither the training code nor torch."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from idv.atomic import replace_dir
from idv.data.augment.pipeline import build_transforms
from idv.data.readers import read_image
from idv.export import formats
from idv.export.bundle import export_bundle
from idv.export.card import REQUIRED_FIELDS
from idv.export.parity import ParityError, ParityOptions
from idv.export.wrappers import DetectionScorer, augment_of, build_wrapper
from idv.hashing import sha256_file
from idv.serving import BundleError, load_bundle, verify_bundle
from idv.serving.bundle import SUMS_FILE, write_checksums
from idv.serving.preprocess import normalise, prepare
from idv.thresholds import Thresholds, decide

# torch 2.14 deprecates torch.jit (script, trace, freeze, load): expected, see platform notes.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
TOL = 1e-5


@pytest.fixture(scope="module")
def bundle(pad_bundle):
    """The tiny PAD checkpoint's bundle (tests/conftest.py's `pad_bundle`)."""
    return pad_bundle


def _eager_scores(bundle, files) -> np.ndarray:
    """The scores idv-evaluate would give: the network on the evaluation transform."""
    transform = build_transforms(augment_of(bundle["run_config"]), "eval")
    images = torch.stack([transform(image=read_image(f))["image"] for f in files])
    with torch.inference_mode():
        return torch.sigmoid(bundle["net"](images)[:, 0]).numpy()


# ------------------------------------------------------------------------------------- export


def test_parity_passes_for_both_formats_at_batch_1_and_larger(bundle) -> None:
    parity = json.loads((bundle["dir"] / "parity.json").read_text())
    assert parity["passed"] and parity["failures"] == []
    assert parity["samples"] >= 100 and parity["batch_sizes"] == [1, 20]
    assert set(parity["samples_per_split"]) == {"test", "calib"}
    assert "below the default 256" in parity["note"]  # a tiny corpus says so
    assert set(parity["formats"]) == {"torchscript", "onnx"}
    assert parity["outputs"] == {"score": []} and parity["primary_output"] == "score"
    for item in parity["formats"].values():
        for b in (1, 20):
            assert item[f"batch_{b}"]["max_abs_diff"]["score"] <= TOL
        assert item["max_abs_diff_per_output"]["score"] <= TOL
        assert item["decision_disagreements"] == 0
    assert parity["preprocess"]["max_abs_diff"] <= 1e-6
    assert parity["eager_vs_evaluation"]["max_abs_diff"]["score"] <= TOL
    assert parity["formats"]["onnx"]["method"] == "torch.onnx.export(dynamo=True)"
    # The wrapper scripts (no silent fall-back to tracing, which fixes control flow)
    assert parity["formats"]["torchscript"]["method"] == "torch.jit.script + freeze"
    assert (bundle["dir"] / "model.ts").is_file() and (bundle["dir"] / "model.onnx").is_file()


def test_broken_export_fails_with_the_figure_and_keeps_the_previous_bundle(
    bundle, monkeypatch
) -> None:
    before = {f: sha256_file(bundle["dir"] / f) for f in [*verify_bundle(bundle["dir"]), SUMS_FILE]}
    original = formats.EXPORTERS["onnx"]

    def perturbed(wrapper, example, out_dir):
        bad = copy.deepcopy(wrapper)
        with torch.no_grad():
            bad.net.head.fc.bias += 0.5  # a logit shift of 0.5: scores move by up to ~0.12
        return original(bad, example, out_dir)

    monkeypatch.setitem(formats.EXPORTERS, "onnx", perturbed)
    with pytest.raises(ParityError, match=r"onnx: max \|score diff\| \S+ > tolerance 1e-05") as err:
        export_bundle(
            bundle["ckpt"],
            bundle["thresholds"],
            bundle["dir"],
            evaluation_dir=bundle["evaluation"],
            parity=ParityOptions(min_samples=20, batch_size=20),  # fails either way
        )
    report = err.value.report
    assert report["formats"]["onnx"]["max_abs_diff"] > 1e-3
    assert report["formats"]["torchscript"]["passed"]
    after = {f: sha256_file(bundle["dir"] / f) for f in [*verify_bundle(bundle["dir"]), SUMS_FILE]}
    assert after == before  # the previous bundle, untouched
    assert [p.name for p in bundle["dir"].parent.iterdir() if ".tmp-" in p.name] == []


def test_too_few_held_out_samples_is_a_clear_error(bundle, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"min_samples=100000 .* hold only \d+.*lower"):
        export_bundle(
            bundle["ckpt"],
            bundle["thresholds"],
            tmp_path / "b",
            parity=ParityOptions(min_samples=100000),
        )
    assert not (tmp_path / "b").exists()


def test_thresholds_of_another_checkpoint_are_refused(bundle, tmp_path) -> None:
    data = json.loads(bundle["thresholds"].read_text())
    data["inputs"]["checkpoint"] = {"path": "other.ckpt", "sha256": "0" * 64}
    other = tmp_path / "thresholds.json"
    other.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="another checkpoint"):
        export_bundle(bundle["ckpt"], other, tmp_path / "b")


def test_replace_dir_swaps_whole_bundles(tmp_path, monkeypatch) -> None:
    import idv.atomic as module

    for exchange in (True, False):
        target, new = tmp_path / f"b{exchange}", tmp_path / f".b{exchange}.tmp"
        target.mkdir()
        (target / "old.txt").write_text("old")
        new.mkdir()
        (new / "new.txt").write_text("new")
        if not exchange:
            monkeypatch.setattr(module, "_exchange", lambda a, b: False)
        replace_dir(new, target)
        assert [p.name for p in target.iterdir()] == ["new.txt"]
        assert not new.exists()  # the old bundle is gone with it
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_wrapper_normalises_inside_like_the_evaluation_transform(bundle) -> None:
    wrapper = build_wrapper(bundle["net"], bundle["run_config"])
    assert isinstance(wrapper, DetectionScorer)
    files = bundle["files"][:8]
    spec = json.loads((bundle["dir"] / "preprocess.json").read_text())
    assert wrapper.input_names == ["image"] and wrapper.output_names == ["score"]
    image = spec["inputs"]["image"]
    with torch.inference_mode():
        served = wrapper(torch.from_numpy(prepare(files, image)))["score"].numpy()
        as_uint8 = wrapper(torch.from_numpy(prepare(files, image)).to(torch.uint8))["score"]
    np.testing.assert_allclose(served, _eager_scores(bundle, files), atol=TOL, rtol=0)
    np.testing.assert_array_equal(served, as_uint8.numpy())


# -------------------------------------------------------------------------------- preprocessing


def test_serving_preprocessing_matches_the_evaluation_transform(bundle, tmp_path) -> None:
    """Real corpus files (up- or downscaled to the input size) plus awkward ones: a rotated
    JPEG with an EXIF orientation tag, a grey PNG and an RGBA PNG, larger than the input."""
    rng = np.random.default_rng(1)
    extra = []
    pixels = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW on display
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif)
    Image.fromarray(pixels[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([pixels, pixels[..., :1]])).save(tmp_path / "rgba.png")
    extra = [str(tmp_path / n) for n in ("rotated.jpg", "grey.png", "rgba.png")]
    files = bundle["files"][:40] + extra
    spec = json.loads((bundle["dir"] / "preprocess.json").read_text())["inputs"]["image"]
    served = normalise(prepare(files, spec), spec)
    transform = build_transforms(augment_of(bundle["run_config"]), "eval")
    evaluated = np.stack([transform(image=read_image(f))["image"].numpy() for f in files])
    assert served.shape == evaluated.shape
    assert np.abs(served - evaluated).max() <= 1e-6
    assert prepare(extra[0], spec).shape == (1, 3, *served.shape[2:])
    assert read_image(extra[0]).shape == (130, 90, 3)  # the EXIF rotation was applied


# ------------------------------------------------------------------------------------- serving


def test_load_bundle_verifies_checksums(bundle, tmp_path) -> None:
    def fresh(name: str) -> Path:
        copy_dir = tmp_path / name
        shutil.copytree(bundle["dir"], copy_dir)
        return copy_dir

    modified = fresh("modified")
    with (modified / "preprocess.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(BundleError, match=r"'preprocess\.json' was modified"):
        load_bundle(modified)

    missing = fresh("missing")
    (missing / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"'model\.onnx' listed in SHA256SUMS is missing"):
        load_bundle(missing, backend="onnxruntime")

    added = fresh("added")
    (added / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match=r"extra\.bin.*not listed"):
        load_bundle(added)

    unsummed = fresh("unsummed")
    (unsummed / SUMS_FILE).unlink()
    with pytest.raises(BundleError, match="SHA256SUMS is missing"):
        load_bundle(unsummed)


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_score_and_decide_agree_with_eager(bundle, backend) -> None:
    files = bundle["files"]
    served = load_bundle(bundle["dir"], backend=backend)
    scores = served.score(files, batch_size=7)
    assert scores.dtype == np.float32 and scores.shape == (len(files),)
    np.testing.assert_allclose(scores, _eager_scores(bundle, files), atol=TOL, rtol=0)

    # The other input forms give the same scores.
    images = [read_image(f) for f in files[:5]]
    np.testing.assert_allclose(served.score(images), scores[:5], atol=1e-6, rtol=0)
    batch = served.prepare(files[:5])["image"]
    np.testing.assert_allclose(served.score(torch.from_numpy(batch)), scores[:5], atol=1e-6)
    np.testing.assert_allclose(served.score({"image": files[:5]}), scores[:5], atol=1e-6)
    assert set(served.run(files[:5])) == {"score"}
    resized = batch.transpose(0, 2, 3, 1).astype(np.uint8)
    np.testing.assert_allclose(served.score(resized), scores[:5], atol=1e-6, rtol=0)

    glob = served.thresholds.global_entry()
    rule = served.thresholds.decision
    expected = decide(scores, glob.review_at_or_above, glob.threshold, rule)
    assert list(served.decide(scores)) == list(expected)
    assert list(served.decide(files)) == list(expected)
    assert list(served.decide([0.0, float("nan"), 1.0])) == ["accept", "reject", "reject"]


def test_decide_uses_a_segment_s_own_thresholds(bundle, tmp_path) -> None:
    """A segment with its own threshold (edited in here, checksums rewritten) decides with it;
    any other segment, or none, with the global one."""
    edited = tmp_path / "edited"
    shutil.copytree(bundle["dir"], edited)
    data = json.loads((edited / "thresholds.json").read_text())
    entry = next(
        e
        for e in data["thresholds"]
        if e["operating_point"]["primary"] and e["segment"]["column"] == "geography"
    )
    entry["source"], entry["review_at_or_above"] = "own", 0.0
    entry["threshold"] = 0.0  # everything from this segment: reject
    (edited / "thresholds.json").write_text(json.dumps(data))
    write_checksums(edited)
    served = load_bundle(edited, backend="onnxruntime")
    scores = np.array([0.0, 0.5, 1.0])
    value = entry["segment"]["value"]
    assert list(served.decide(scores, segment={"geography": value})) == ["reject"] * 3
    assert list(served.decide(scores, segment=value)) == ["reject"] * 3
    glob = list(served.decide(scores))
    assert list(served.decide(scores, segment={"geography": "elsewhere"})) == glob
    per_sample = served.decide(scores, segment=[value, None, {"geography": "elsewhere"}])
    assert list(per_sample) == ["reject", glob[1], glob[2]]


BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("blocked in this test: " + name)
sys.meta_path.insert(0, Block())
"""
TRAINING = ["lightning", "pytorch_lightning", "hydra", "omegaconf", "albumentations", "timm"]
TRAINING += ["idv.tasks", "idv.data", "idv.models", "idv.export", "idv.cli"]


def _serve_in_subprocess(bundle_dir: Path, files: list[str], backend: str, blocked: list[str]):
    script = BLOCKER.format(blocked=blocked) + (
        "import json\n"
        "from idv.serving import load_bundle\n"
        f"b = load_bundle({str(bundle_dir)!r}, backend={backend!r})\n"
        f"s = b.score({files!r})\n"
        "d = b.decide(s)\n"
        "roots = ('torch', 'lightning', 'hydra', 'idv')\n"
        "mods = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "print(json.dumps({'scores': s.tolist(), 'decisions': list(d), 'modules': mods}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_onnxruntime_backend_imports_no_torch(bundle) -> None:
    files = bundle["files"][:10]
    out = _serve_in_subprocess(bundle["dir"], files, "onnxruntime", [*TRAINING, "torch"])
    assert not any(m.split(".")[0] == "torch" for m in out["modules"])
    np.testing.assert_allclose(out["scores"], _eager_scores(bundle, files), atol=TOL, rtol=0)


def test_bundle_is_self_contained(bundle, tmp_path) -> None:
    """Moved elsewhere, with Lightning, Hydra and the training code unimportable, the bundle
    still loads and scores image files with both backends."""
    moved = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(bundle["dir"], moved)
    files = bundle["files"][:10]
    expected = _eager_scores(bundle, files)
    for backend in ("torchscript", "onnxruntime"):
        out = _serve_in_subprocess(moved, files, backend, TRAINING)
        assert set(out["modules"]) & {"idv.tasks", "idv.data", "idv.models", "lightning"} == set()
        np.testing.assert_allclose(out["scores"], expected, atol=TOL, rtol=0)
        assert set(out["decisions"]) <= {"accept", "review", "reject"}


# ------------------------------------------------------------------------------- card and sums


def test_model_card_has_the_required_fields(bundle) -> None:
    card = json.loads((bundle["dir"] / "model_card.json").read_text())
    for field in REQUIRED_FIELDS:
        assert field in card, field
    assert card["task"] == {"name": "pad", "kind": "detection"}
    assert card["intended_use"] and card["limitations"]
    manifest = Path(bundle["run_config"]["data"]["manifest"])
    data = card["training_data"]
    assert data["sha256"] == sha256_file(manifest)
    assert data["samples"] == len(pd.read_parquet(manifest)) and data["bytes"] > 0
    metrics = card["evaluation"]["metrics"]
    assert "interval" in metrics["test/eer"] and len(metrics["test/eer"]["interval"]) == 2
    segments = card["evaluation"]["segments"] + card["evaluation"]["demographic_groups"]
    assert {s["column"] for s in segments} >= {"geography"}
    assert all("interval" in r for s in segments for r in s["rates"].values())
    assert card["thresholds"]["sha256"] == sha256_file(bundle["thresholds"])
    glob = card["thresholds"]["thresholds"][0]
    assert glob["segment"] == "global" and glob["metric"] == "apcer_worst"
    assert set(glob) >= {"threshold", "review_at_or_above", "test"}
    assert set(glob["test"]) >= {"apcer_worst", "bpcer", "review_share"}
    revision = card["code"]["revision"]
    assert revision == "unknown" or len(revision) == 40
    assert card["checkpoint"]["sha256"] == sha256_file(bundle["ckpt"])
    assert card["run_config"] == bundle["run_config"]
    text = (bundle["dir"] / "model_card.md").read_text()
    assert "## Intended use" in text and "## Evaluation" in text and data["sha256"] in text


def test_checksums_cover_every_file(bundle) -> None:
    root = bundle["dir"]
    listed = {}
    for line in (root / SUMS_FILE).read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    on_disk = {p.name for p in root.iterdir() if p.name != SUMS_FILE}
    assert set(listed) == on_disk
    expected = {"model.ts", "model.onnx", "thresholds.json", "preprocess.json", "parity.json"}
    assert on_disk >= expected | {"model_card.md", "model_card.json"}
    assert all(sha256_file(root / n) == d for n, d in listed.items())
    assert (root / "thresholds.json").read_bytes() == bundle["thresholds"].read_bytes()
    assert bundle["result"].files == listed


# ------------------------------------------------------------------------------ format fallbacks


class _Unscriptable(nn.Module):
    """Traces but does not script (variadic forward), like facenet's InceptionResnetV1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 1)

    def forward(self, x, **kwargs):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_fallbacks_trace_and_legacy_onnx_keep_a_dynamic_batch(tmp_path, monkeypatch) -> None:
    """A module that does not script is traced (with checks); a failing dynamo exporter falls
    back to dynamo=False. Both still take any batch size."""
    import onnxruntime as ort

    torch.manual_seed(0)
    wrapper = DetectionScorer(_Unscriptable(), [0.5] * 3, [0.25] * 3, ["score"], "score").eval()
    original = torch.onnx.export

    def no_dynamo(*args, **kwargs):
        if kwargs.get("dynamo", True):
            raise RuntimeError("dynamo exporter unavailable (test)")
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    example = {"image": torch.rand(2, 3, 16, 16) * 255}
    out = formats.export_formats(wrapper, example, tmp_path)
    assert out["torchscript"].method == "torch.jit.trace + freeze"
    assert out["onnx"].method == "torch.onnx.export(dynamo=False)"
    assert "dynamo exporter failed" in out["onnx"].notes[0]
    scripted = torch.jit.load(str(out["torchscript"].path))
    session = ort.InferenceSession(str(out["onnx"].path), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        x = torch.rand(n, 3, 16, 16) * 255
        with torch.inference_mode():
            expected = wrapper(x)["score"].numpy()
            np.testing.assert_allclose(scripted(x)["score"].numpy(), expected, atol=TOL, rtol=0)
        assert [o.name for o in session.get_outputs()] == ["score"]
        got = session.run(None, {"image": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)


def test_decisions_may_differ_only_within_the_tolerance_of_a_threshold(bundle, monkeypatch):
    """A format off by less than the tolerance flips a decision only for a sample that close to
    a threshold: counted and reported, not failed. A flip anywhere else fails the gate."""
    import idv.export.parity as parity

    files = bundle["files"][:10]
    held = parity.HeldOut.of_images(files, augment_of(bundle["run_config"]))
    spec = json.loads((bundle["dir"] / "preprocess.json").read_text())
    wrapper = build_wrapper(bundle["net"], bundle["run_config"])
    with torch.inference_mode():
        eager = wrapper(torch.from_numpy(prepare(files, spec["inputs"]["image"])))["score"].numpy()
    data = json.loads((bundle["dir"] / "thresholds.json").read_text())
    glob = next(
        e
        for e in data["thresholds"]
        if e["operating_point"]["primary"] and e["segment"]["column"] is None
    )
    cut = float(eager[0]) + 2e-6  # sample 0 sits just below the reject threshold
    glob.update(review_at_or_above=min(cut, 1e-9), threshold=cut)
    thresholds = Thresholds.from_dict(data)
    shift = np.zeros(len(files), np.float32)
    shift[0] = 4e-6  # within the tolerance, across the threshold

    def fake_backend(name, path, input_names, threads=None):
        def run(x):
            score = wrapper(torch.from_numpy(x["image"]))["score"].detach().numpy()
            return {"score": score + shift[: len(score)]}

        return run

    monkeypatch.setattr(parity, "load_backend", fake_backend)
    item = formats.Exported("onnx", bundle["dir"] / "model.onnx", ("model.onnx",), "fake")
    options = ParityOptions(min_samples=10, batch_size=len(files))
    args = (wrapper, bundle["net"], {"onnx": item}, held, spec, thresholds, options)
    report = parity.check_parity(*args)
    assert report["near_threshold_samples"] >= 1
    assert report["formats"]["onnx"]["near_threshold_disagreements"] == 1
    assert report["formats"]["onnx"]["decision_disagreements"] == 0

    shift[0] = 0.0
    glob.update(review_at_or_above=0.0, threshold=float(eager[1]) + 0.05)
    shift[1] = 0.1  # far across the threshold (and over the tolerance)
    args = (*args[:5], Thresholds.from_dict(data), options)
    with pytest.raises(ParityError, match=r"onnx: 1 decision\(s\) differ") as err:
        parity.check_parity(*args)
    assert "max |score diff| 0.1 > tolerance" in str(err.value)
