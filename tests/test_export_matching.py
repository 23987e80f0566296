"""idv-export and idv.serving for a matching task (face_match): an untrained embedder saved as
a Lightning-format checkpoint (no training run), thresholds from calibrate_matching on its own
comparison table, exported through export_bundle; parity, embed / verify / identify."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from skimage import data

from idv.calibration.matching import calibrate_matching
from idv.data.manifest import write_manifest
from idv.export.bundle import export_bundle
from idv.export.parity import ParityOptions
from idv.export.wrappers import EmbeddingScorer, build_wrapper
from idv.faces.align import ARCFACE_TEMPLATE_112
from idv.serving import load_bundle
from idv.serving.gallery import Gallery
from idv.serving.preprocess import prepare
from idv.tasks.scoring import Embeddings, search_table
from tests.conftest import compose, make_corpus

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
TOL = 1e-5
DIM = 32


@pytest.fixture(scope="module")
def matching(tmp_path_factory):
    """A face_match checkpoint (random weights, 32x32 input, 32-d embeddings) in Lightning's
    format, its thresholds.json, and its bundle."""
    base = tmp_path_factory.mktemp("export_matching")
    corpus = base / "corpus"
    frame = make_corpus(corpus, subjects=16, per_subject=3)
    frame = frame[frame["label"] == 0].reset_index(drop=True)  # bona fide faces only
    write_manifest(frame, corpus / "manifest.parquet")
    overrides = [
        "task=face_match",
        "debug=fast",
        f"data.manifest={corpus / 'manifest.parquet'}",
        "task.sampler.per_identity=2",
        "augment.image_size=32",
        f"model.embedding_dim={DIM}",
    ]
    cfg = compose("train", overrides, base / "train")
    run_config = OmegaConf.to_container(cfg, resolve=True)
    torch.manual_seed(0)
    net = instantiate(run_config["model"]).eval()
    ckpt = base / "best.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"run_config": run_config}}, ckpt)

    # Comparison table: every pair of images within a split, scored by the eager wrapper.
    wrapper = build_wrapper(net, run_config)
    spec = {"resize": {"height": 32, "width": 32, "interpolation": "linear"}}
    files = [str(corpus / p) for p in frame["path"]]
    with torch.inference_mode():
        emb = wrapper(torch.from_numpy(prepare(files, spec)))["embedding"].numpy()
    frame.loc[frame["split"].isin(["val", "train"]), "split"] = "calib"  # a test only
    rows = []
    for split, group in frame.groupby("split"):
        for i, j in itertools.combinations(group.index, 2):
            a, b = frame.loc[i], frame.loc[j]
            rows.append(
                {
                    "comparison_id": f"c{len(rows)}",
                    "sample_id_a": a["sample_id"],
                    "sample_id_b": b["sample_id"],
                    "protocol": "portrait_selfie",
                    "split": split,
                    "score": float(emb[i] @ emb[j]),
                    "acquired": True,
                    "genuine": a["subject_id"] == b["subject_id"],
                    "subject_id_a": a["subject_id"],
                    "subject_id_b": b["subject_id"],
                    "geography": b["geography"],
                }
            )
    table = pd.DataFrame(rows)
    embeddings = Embeddings(frame["sample_id"].tolist(), emb)
    search = pd.concat(
        [
            search_table(
                group, embeddings, enrolled_fraction=0.5, top_k=3, gallery={"index": "flat"}
            ).assign(split=split)
            for split, group in frame.groupby("split")
        ],
        ignore_index=True,
    )
    thresholds = calibrate_matching(
        table,
        targets=[0.2],
        search=search,
        fpir_targets=[0.5],
        min_subjects=2,
        bootstrap={"n_resamples": 20, "seed": 0},
    )
    (base / "thresholds.json").write_text(thresholds.to_json())
    result = export_bundle(
        ckpt,
        base / "thresholds.json",
        base / "bundle",
        parity=ParityOptions(min_samples=16, batch_size=8),
    )
    return {
        "dir": base / "bundle",
        "result": result,
        "net": net,
        "run_config": run_config,
        "files": files,
        "frame": frame,
        "thresholds": thresholds,
    }


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """Real and generated photos, one per outcome: scikit-image's astronaut (one face), its
    mirror image at another scale, a 2048-px upscale (downscaled before detection), coffee
    (no face), two faces side by side, a 20x20 image (too small) and a corrupt JPEG."""
    root = tmp_path_factory.mktemp("photos")
    astronaut = data.astronaut()
    images = {
        "astronaut": astronaut,
        "mirrored": cv2.resize(np.ascontiguousarray(astronaut[:, ::-1]), (400, 400)),
        "large": cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_LINEAR),
        "coffee": data.coffee(),
        "two_faces": np.concatenate([astronaut[:300, 100:350]] * 2, axis=1),
        "tiny": cv2.resize(astronaut[0:300, 74:374], (20, 20), interpolation=cv2.INTER_AREA),
    }
    files = {}
    for name, image in images.items():
        files[name] = root / f"{name}.png"
        Image.fromarray(np.ascontiguousarray(image)).save(files[name])
    files["corrupt"] = root / "corrupt.jpg"
    files["corrupt"].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return files


def _eager(matching, files) -> np.ndarray:
    spec = json.loads((matching["dir"] / "preprocess.json").read_text())
    with torch.inference_mode():
        return build_wrapper(matching["net"], matching["run_config"])(
            torch.from_numpy(prepare(files, spec["inputs"]["image"]))
        )["embedding"].numpy()


def test_wrapper_outputs_unit_norm_embeddings(matching) -> None:
    wrapper = build_wrapper(matching["net"], matching["run_config"])
    assert isinstance(wrapper, EmbeddingScorer)
    with torch.inference_mode():
        out = wrapper(torch.rand(3, 3, 32, 32) * 255)["embedding"]
    assert wrapper.output_names == ["embedding"]
    assert out.shape == (3, DIM) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_parity_passes_on_embeddings_and_pair_decisions(matching) -> None:
    parity = json.loads((matching["dir"] / "parity.json").read_text())
    assert parity == matching["result"].parity
    assert parity["passed"] and parity["failures"] == []
    assert parity["outputs"] == {"embedding": [DIM]} and parity["samples"] >= 16
    assert set(parity["formats"]) == {"torchscript", "onnx"}
    assert parity["formats"]["torchscript"]["method"] == "torch.jit.script + freeze"
    for item in parity["formats"].values():
        assert item["max_abs_diff"] <= TOL and item["decision_disagreements"] == 0
        for b in parity["batch_sizes"]:
            assert item[f"batch_{b}"]["max_abs_decision_value_diff"] <= 2 * TOL * DIM**0.5 + 1e-9
    assert parity["eager_vs_evaluation"]["max_abs_diff"]["embedding"] <= TOL
    assert set(parity["decisions"]) == {"match", "review", "non_match"}
    assert sum(parity["decisions"].values()) == parity["samples"]
    assert set(parity["thresholds"]) == {"id", "review_at_or_above", "threshold"}


def test_bundle_describes_alignment_card_and_thresholds(matching) -> None:
    spec = json.loads((matching["dir"] / "preprocess.json").read_text())
    image = spec["inputs"]["image"]
    assert "ArcFace template" in image["crop"] and "align_face" in image["crop"]
    np.testing.assert_allclose(image["alignment"]["template_112"], ARCFACE_TEMPLATE_112, atol=1e-4)
    assert spec["outputs"]["embedding"]["shape"] == ["batch", DIM]
    assert spec["primary_output"] == "embedding" and spec["schema_version"] == 2
    card = json.loads((matching["dir"] / "model_card.json").read_text())
    assert card["task"] == {"name": "face_match", "kind": "matching"}
    assert "1:N" in card["intended_use"] and "synthetic" in " ".join(card["limitations"])
    one_to_one, one_to_n = (e for e in card["thresholds"]["thresholds"] if e["segment"] == "global")
    assert (one_to_one["metric"], one_to_n["metric"]) == ("fmr", "fpir")
    assert set(one_to_one["test"]) == {"fmr", "fnmr"} and set(one_to_n["test"]) == {"fpir", "fnir"}
    text = (matching["dir"] / "model_card.md").read_text()
    assert "fpir <= 0.5, global: threshold" in text and "## Export parity" in text


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_embed_verify_identify(matching, backend) -> None:
    bundle = load_bundle(matching["dir"], backend=backend)
    files = matching["files"][:12]
    emb = bundle.embed(files, aligned=True)
    assert emb.shape == (12, DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, _eager(matching, files), atol=TOL, rtol=0)

    sims, decisions = bundle.verify(files[:4], files[:4], aligned=True)
    np.testing.assert_allclose(sims, 1.0, atol=1e-5)
    assert list(decisions) == ["match"] * 4
    sims2, _ = bundle.verify(emb[:1], emb)  # embeddings, one against many
    assert sims2.shape == (12,) and abs(sims2[0] - 1.0) < 1e-5

    gallery = Gallery()
    ids = matching["frame"]["subject_id"].to_numpy()[:12]
    gallery.enrol(emb, ids)
    found = bundle.identify(files[5:7], gallery, k=3, aligned=True)
    assert [c[0]["id"] for c in found] == list(ids[5:7])
    assert found[0][0]["rank"] == 1 and found[0][0]["decision"] == "match"
    # Candidates are decided at the 1:N (FPIR) threshold, not the 1:1 one.
    one_to_n = bundle.thresholds.global_entry("fpir")
    for candidate in found[1]:
        expected = bundle.thresholds.decide([candidate["similarity"]], metric="fpir")[0]
        assert candidate["decision"] == expected
    assert one_to_n.threshold != bundle.thresholds.global_entry().threshold
    assert len({c["id"] for c in found[0]}) == len(found[0])  # one candidate per identity

    sims = np.array([0.1, 0.9, np.nan])
    assert list(bundle.decide(sims)) == list(bundle.decide_similarities(sims))
    assert bundle.decide(sims)[2] == "non_match"  # a failure to acquire is never a match
    with pytest.raises(TypeError, match="Bundle.score is for detection bundles.*use .*embed"):
        bundle.score(files[:1])


def test_onnxruntime_matching_imports_no_torch(matching, photos) -> None:
    script = (
        "import json, sys\n"
        "from idv.serving import load_bundle\n"
        f"b = load_bundle({str(matching['dir'])!r}, backend='onnxruntime')\n"
        f"s, d = b.verify({matching['files'][:2]!r}, {matching['files'][1:3]!r}, aligned=True)\n"
        f"photo = b.acquire({str(photos['astronaut'])!r})[0]\n"
        "assert photo.acquired and photo.crop.shape == (112, 112, 3), photo.report()\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'sims': s.tolist()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert not any(m.split(".")[0] == "torch" for m in out["modules"])
    eager = _eager(matching, matching["files"][:3])
    expected = np.sum(eager[:2] * eager[1:3], axis=1)
    np.testing.assert_allclose(out["sims"], expected, atol=1e-5, rtol=0)


def test_detection_thresholds_are_refused_for_a_matching_checkpoint(matching, tmp_path) -> None:
    bad = {**matching["thresholds"].to_dict(), "kind": "detection"}
    (tmp_path / "t.json").write_text(json.dumps(bad))
    ckpt = Path(matching["result"].card["checkpoint"]["path"])
    with pytest.raises(ValueError, match="kind 'matching'"):
        export_bundle(ckpt, tmp_path / "t.json", tmp_path / "b")


# ---- photos: detection and alignment inside the bundle ----------------------------------


def test_the_bundle_carries_a_detector_in_parity_with_facenet(matching) -> None:
    spec = json.loads((matching["dir"] / "preprocess.json").read_text())["acquisition"]
    assert spec["policy"]["several_faces"] == "dominance" and spec["detector"]["min_face_size"]
    for stage in ("pnet", "rnet", "onet"):
        for name in ("model.ts", "model.onnx"):
            assert f"detector/{stage}/{name}" in matching["result"].files
    parity = json.loads((matching["dir"] / "parity.json").read_text())["detector"]
    assert set(parity) == {"torchscript", "onnxruntime"}
    for figures in parity.values():  # 4 real photos (4 faces) + the held-out crops (none)
        assert figures["images"] > 4 and figures["faces"] == 4
        assert figures["tolerance_px"] == 1.0 and figures["max_box_px"] < 0.01
    assert "Face detector (MTCNN in the bundle)" in (matching["dir"] / "model_card.md").read_text()


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_photos_are_detected_aligned_or_refused_with_a_reason(matching, photos, backend):
    from idv.data.face_detect import FaceDetector
    from idv.faces.align import align_face

    bundle = load_bundle(matching["dir"], backend=backend)
    order = ["astronaut", "mirrored", "large", "coffee", "two_faces", "tiny", "corrupt"]
    found = {name: a for name, a in zip(order, bundle.acquire([photos[n] for n in order]),
                                        strict=True)}  # fmt: skip
    outcome = {name: a.failure for name, a in found.items()}
    assert outcome == {
        "astronaut": None, "mirrored": None, "large": None, "coffee": "no_face",
        "two_faces": "several_faces", "tiny": "too_small", "corrupt": "unreadable",
    }  # fmt: skip
    # The crop is facenet-pytorch's MTCNN + align_face on the photo, within a pixel.
    (reference,) = FaceDetector().detect(data.astronaut())
    served = found["astronaut"].face
    assert np.abs(served.box - reference.box).max() < 1.0
    assert np.abs(served.landmarks - reference.landmarks).max() < 1.0
    expected = align_face(data.astronaut(), reference.landmarks)
    assert np.abs(found["astronaut"].crop.astype(int) - expected).mean() < 1.0
    # The 2048-px photo was detected at max_side and mapped back to its own pixels.
    large = found["large"]
    assert large.scale == pytest.approx(1024 / 2048)
    # MTCNN at another pyramid scale: the same box within a few percent of the face's side.
    assert np.abs(large.face.box / (2048 / 512) - reference.box).max() < 0.05 * reference.side
    # Each failure says why, with every face's probability and size for several_faces.
    report = found["two_faces"].report()
    assert len(report["faces"]) == 2 and all(f["probability"] > 0.9 for f in report["faces"])
    assert all(f["side"] > 100 for f in report["faces"]) and "policy" in report["detail"]
    assert "cannot decode" in found["corrupt"].detail and "corrupt.jpg" in found["corrupt"].detail
    assert "20x20" in found["tiny"].detail

    # embed / verify / identify: a failure is a NaN embedding, a non-match, no candidate.
    emb = bundle.embed([photos[n] for n in order])
    assert np.isfinite(emb[:3]).all() and np.isnan(emb[3:]).all()
    np.testing.assert_allclose(
        emb[0], bundle.embed(found["astronaut"].crop, aligned=True)[0], atol=TOL
    )
    sims, decisions = bundle.verify(photos["astronaut"], [photos[n] for n in order])
    assert np.isfinite(sims[:3]).all() and np.isnan(sims[3:]).all()
    assert abs(sims[0] - 1.0) < 1e-5 and list(decisions[3:]) == ["non_match"] * 4
    gallery = Gallery()
    gallery.enrol(emb[:3], ["a", "a", "a"])
    candidates = bundle.identify([photos["astronaut"], photos["coffee"]], gallery, k=1)
    assert candidates[0][0]["id"] == "a" and candidates[1] == []
    # Precomputed embeddings with a failure row pass through verify.
    again, _ = bundle.verify(emb[:1], emb)
    np.testing.assert_allclose(again, sims, atol=1e-5)
    with pytest.raises(ValueError, match="aligned=True"):
        bundle.embed(np.zeros((2, 3, 32, 32), np.float32))


def test_the_several_faces_policy_is_configuration(matching, photos) -> None:
    from idv.faces.acquisition import AcquisitionPolicy, acquire
    from idv.imaging import read_image

    bundle = load_bundle(matching["dir"], backend="onnxruntime")
    image = read_image(photos["two_faces"])
    for rule, failure in [("refuse", "several_faces"), ("largest", None), ("central", None)]:
        got = acquire(image, bundle.detector.detect, AcquisitionPolicy(several_faces=rule))
        assert got.failure == failure, rule
