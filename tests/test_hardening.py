"""Issue 18's probes, from the outside: every bad input a clear error that names the file and
the row or key, or a correct result; crashes leave nothing half-done; signed bundles; offline
whatever the environment says."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idv.atomic import remove_stale
from idv.data.manifest import Manifest, ManifestError, write_manifest
from idv.data.synth.writer import CorpusDir
from idv.errors import IdvError
from idv.imaging import ImageReadError, read_image, to_rgb
from idv.serving import BundleError, load_bundle
from idv.serving.preprocess import prepare
from idv.serving.signing import SIGNATURE_FILE, generate_keypair, sign_bundle
from tests.conftest import make_corpus

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")


# ---- decoding every image mode on purpose ----------------------------------------------


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    levels = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(levels).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    image = read_image(tmp_path / "grey16.png")
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    np.testing.assert_allclose(image[..., 0], levels / 257.0, atol=0.5)
    assert (image == 255).mean() < 0.02  # convert("RGB") had 98% at 255


def test_float_images_are_scaled_or_refused(tmp_path: Path) -> None:
    unit = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(unit).save(tmp_path / "unit.tiff")
    image = read_image(tmp_path / "unit.tiff")
    np.testing.assert_allclose(image[..., 1], unit * 255, atol=0.5)  # not black
    Image.fromarray(unit * 200).save(tmp_path / "levels.tiff")
    np.testing.assert_allclose(read_image(tmp_path / "levels.tiff")[..., 2], unit * 200, atol=0.5)
    Image.fromarray(unit * 1000).save(tmp_path / "hdr.tiff")
    with pytest.raises(ImageReadError, match=r"hdr\.tiff: float image with values 0\.\.1000"):
        read_image(tmp_path / "hdr.tiff")
    nan = unit.copy()
    nan[3, 3] = np.nan
    Image.fromarray(nan).save(tmp_path / "nan.tiff")
    with pytest.raises(ImageReadError, match=r"nan\.tiff: float image with NaN"):
        read_image(tmp_path / "nan.tiff")


def test_alpha_palette_and_cmyk_are_explicit(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, :4, 3] = 255  # left half opaque, right half transparent
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    image = read_image(tmp_path / "alpha.png")
    assert (image[:, :4] == 200).all() and (image[:, 4:] == 0).all()  # composited over black
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert read_image(tmp_path / "palette.png").shape == (16, 16, 3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (16, 16, 3) and np.abs(cmyk.astype(int) - rgb).mean() < 12

    class Odd:
        mode = "I;32S"

    with pytest.raises(ImageReadError, match=r"odd\.img: unsupported image mode 'I;32S'"):
        to_rgb(Odd(), "odd.img")


def test_a_missing_file_is_the_callers_error_not_an_unreadable_image(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"selfie\.jpg: image file not found"):
        read_image(tmp_path / "selfie.jpg")
    with pytest.raises(FileNotFoundError, match="not a file"):
        read_image(tmp_path)


def test_a_decompression_bomb_names_the_file(tmp_path: Path, monkeypatch) -> None:
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 px > 2 x the limit
    with pytest.raises(ImageReadError, match=r"bomb\.png: image too large to decode safely"):
        read_image(tmp_path / "bomb.png")


def test_images_below_the_minimum_side_are_failures_to_acquire() -> None:
    spec = {"resize": {"height": 32, "width": 32, "interpolation": "linear"}, "min_side": 16}
    images = [np.zeros((1, 1, 3), np.uint8), np.zeros((40, 40, 3), np.uint8),
              np.zeros((0, 0, 3), np.uint8)]  # fmt: skip
    failures: set[int] = set()
    batch = prepare(images, spec, failures)
    assert batch.shape == (3, 3, 32, 32) and failures == {0, 2}
    with pytest.raises(ValueError, match=r"item 0 \(image 0\): image 1x1 is below .* 16 pixels"):
        prepare(images, spec)  # no cv2 assertion on the 0x0 array either


def test_a_1x1_capture_is_rejected_by_the_pad_bundle(pad_bundle, tmp_path: Path) -> None:
    spec = json.loads((pad_bundle["dir"] / "preprocess.json").read_text())["inputs"]["image"]
    assert spec["min_side"] == 16  # conf/export.yaml's min_image_side
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(tmp_path / "dot.png")
    bundle = load_bundle(pad_bundle["dir"], backend="onnxruntime")
    scores = bundle.score([str(tmp_path / "dot.png"), pad_bundle["files"][0]])
    assert np.isnan(scores[0]) and np.isfinite(scores[1])
    assert list(bundle.decide(scores))[0] == "reject"  # was `accept`


# ---- manifests: ids of every kind ---------------------------------------------------------


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("subject_id", None, "subject_id is null"),
        ("subject_id", "", "subject_id is empty"),
        ("sample_id", "  ", "sample_id is empty"),
        ("attack_type", None, "attack_type is null"),
        ("source_sample_id", "", "source_sample_id is empty"),
    ],
)
def test_null_or_empty_ids_are_refused_by_row(tmp_path: Path, column, value, message) -> None:
    frame = make_corpus(tmp_path, subjects=4, per_subject=2)
    if column == "source_sample_id":
        frame[column] = None
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    file = tmp_path / "manifest.parquet"
    write_manifest(frame, file)
    with pytest.raises(ManifestError, match=rf"manifest\.parquet: row 3 .*{message}") as err:
        Manifest.load(file)
    assert isinstance(err.value, IdvError)


def test_null_optional_ids_are_fine(tmp_path: Path) -> None:
    frame = make_corpus(tmp_path, subjects=4, per_subject=2)
    frame["source_sample_id"] = None
    write_manifest(frame, tmp_path / "manifest.parquet")
    assert len(Manifest.load(tmp_path / "manifest.parquet").frame) == len(frame)


def test_calibrate_names_a_non_parquet_scores_file(tmp_path: Path) -> None:
    from idv.calibration.thresholds import calibrate
    from tests.conftest import compose

    bad = tmp_path / "scores.parquet"
    bad.write_text("sample_id,score\nx,0.5\n")
    with pytest.raises(IdvError, match=rf"{bad}: not a readable \.parquet file"):
        calibrate(compose("calibrate", [f"scores={bad}"], tmp_path / "run"))


# ---- crashes leave nothing half-done -----------------------------------------------------


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    target.mkdir()
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".bundle.tmp-{dead}"  # what a kill -9 during idv-export leaves
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "model.onnx").write_bytes(b"x" * 1024)
    old = tmp_path / f".bundle.old-{dead}-0a1b2c3d"
    old.mkdir()
    live = tmp_path / f".bundle.tmp-{alive}-deadbeef"  # a concurrent writer's: kept
    live.mkdir()
    others = [tmp_path / f".gallery.tmp-{dead}", tmp_path / f".bundle.v2.tmp-{dead}-0a1b2c3d"]
    for other in others:  # other targets' temporaries: not ours to judge
        other.mkdir()
    assert sorted(p.name for p in remove_stale(target)) == sorted([stale.name, old.name])
    assert live.exists() and all(o.exists() for o in others) and not stale.exists()


def test_a_swap_killed_halfway_puts_the_previous_version_back(tmp_path: Path) -> None:
    target = tmp_path / "corpus"  # killed after `target -> .old`, before `new -> target`
    old = tmp_path / f".corpus.old-{_dead_pid()}-0a1b2c3d"
    old.mkdir()
    (old / "manifest.txt").write_text("previous")
    assert remove_stale(target) == []
    assert (target / "manifest.txt").read_text() == "previous" and not old.exists()


def test_a_killed_export_is_cleaned_by_the_next_one(pad_bundle, tmp_path: Path) -> None:
    from idv.export.bundle import export_bundle
    from idv.export.parity import ParityOptions

    target = tmp_path / "bundle"
    stale = tmp_path / f".bundle.tmp-{_dead_pid()}"
    stale.mkdir()
    (stale / "model.ts").write_bytes(b"half")
    export_bundle(pad_bundle["ckpt"], pad_bundle["thresholds"], target,
                  parity=ParityOptions(min_samples=100, batch_size=20))  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def _write_corpus(final: str, tag: str, rounds: int) -> None:
    for k in range(rounds):
        with CorpusDir(final) as tmp:
            for i in range(20):
                (tmp / "images" / f"{i}.txt").write_text(f"{tag}-{k}")
            time.sleep(0.01)
            (tmp / "manifest.txt").write_text(f"{tag}-{k}")


def test_concurrent_corpus_writers_each_swap_whole_corpora(tmp_path: Path) -> None:
    final = tmp_path / "corpus"
    _write_corpus(str(final), "seed", 1)
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_corpus, args=(str(final), t, 8)) for t in "ab"]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    assert [w.exitcode for w in writers] == [0, 0]  # no "Directory not empty"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # nothing set aside
    tag = (final / "manifest.txt").read_text()
    assert {p.read_text() for p in (final / "images").iterdir()} == {tag}  # one writer's


def test_a_failed_run_keeps_the_run_dir_consistent(tmp_path: Path) -> None:
    """A Hydra entry point wrapped like every idv CLI: a failing second run in the same run
    dir logs its traceback to the run's log and puts the first run's config back."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent('''
        import hydra
        from pathlib import Path
        from omegaconf import DictConfig
        from idv.cli import guarded

        @hydra.main(version_base="1.3", config_path=None, config_name=None)
        @guarded
        def main(cfg: DictConfig) -> None:
            if cfg.fail == "raise":
                raise ValueError("bad input in row 7")
            if cfg.fail == "exit":
                raise SystemExit(3)
            Path("result.txt").write_text(str(cfg.value))

        if __name__ == "__main__":
            main()
    '''))  # fmt: skip
    run_dir = tmp_path / "run"

    def run(*overrides: str) -> subprocess.CompletedProcess:
        args = [sys.executable, str(app), f"hydra.run.dir={run_dir}", "hydra.job.chdir=true"]
        return subprocess.run([*args, *overrides], capture_output=True, text=True)

    first = run("+fail=raise", "+value=0")  # a first run that fails: nothing to put back
    assert first.returncode != 0 and not (run_dir / "result.txt").exists()
    assert "value: 0" in (run_dir / ".hydra" / "failed" / "config.yaml").read_text()
    assert run("+fail=none", "+value=1").returncode == 0
    failed = run("+fail=raise", "+value=2")
    assert failed.returncode != 0
    assert (run_dir / "result.txt").read_text() == "1"
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "value: 1" in config  # the config of the outputs that are there
    assert "value: 2" in (run_dir / ".hydra" / "failed" / "config.yaml").read_text()
    log = (run_dir / "app.log").read_text()
    assert "run failed: ValueError: bad input in row 7" in log and "Traceback" in log
    assert run("+fail=exit", "+value=3").returncode == 3  # a non-zero exit is a failure too
    assert "value: 1" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert "value: 3" in (run_dir / ".hydra" / "failed" / "config.yaml").read_text()
    assert "run exited with status 3" in (run_dir / "app.log").read_text()


# ---- signed bundles -----------------------------------------------------------------------


def test_signed_bundles_verify_and_tampering_is_refused(pad_bundle, tmp_path, monkeypatch):
    from idv.serving.bundle import write_checksums

    generate_keypair(tmp_path / "owner.key", tmp_path / "owner.pub")
    generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    signed = tmp_path / "signed"
    shutil.copytree(pad_bundle["dir"], signed)
    sign_bundle(signed, tmp_path / "owner.key")
    assert load_bundle(signed, public_key=tmp_path / "owner.pub").signed_with
    monkeypatch.setenv("IDV_BUNDLE_PUBLIC_KEY", str(tmp_path / "owner.pub"))
    load_bundle(signed)  # the key from the environment
    with pytest.raises(BundleError, match="does not verify with .*other.pub"):
        load_bundle(signed, public_key=tmp_path / "other.pub")

    # An attacker edits a file and rewrites SHA256SUMS: the checksums pass, the signature not.
    rewritten = tmp_path / "rewritten"
    shutil.copytree(signed, rewritten)
    card = json.loads((rewritten / "model_card.json").read_text())
    card["intended_use"] = "anything"
    (rewritten / "model_card.json").write_text(json.dumps(card))
    write_checksums(rewritten)
    with pytest.raises(BundleError, match=r"rewritten: the signature in SHA256SUMS\.sig"):
        load_bundle(rewritten)
    (rewritten / SIGNATURE_FILE).unlink()  # deleting the signature does not bypass it
    with pytest.raises(BundleError, match=r"SHA256SUMS\.sig is missing, and a public key"):
        load_bundle(rewritten)
    (rewritten / SIGNATURE_FILE).write_text("not base64 at all!\n")
    with pytest.raises(BundleError, match=r"SHA256SUMS\.sig is not base64"):
        load_bundle(rewritten)
    (rewritten / SIGNATURE_FILE).write_text("AAAA\n")  # base64, but no Ed25519 signature
    with pytest.raises(BundleError, match="does not verify"):
        load_bundle(rewritten)
    monkeypatch.setenv("IDV_BUNDLE_PUBLIC_KEY", "")  # set but empty: refused, not ignored
    with pytest.raises(IdvError, match="IDV_BUNDLE_PUBLIC_KEY is set but empty"):
        load_bundle(rewritten)
    monkeypatch.delenv("IDV_BUNDLE_PUBLIC_KEY")
    (rewritten / SIGNATURE_FILE).unlink()
    load_bundle(rewritten)  # no key configured: checksums only, as before


def test_idv_export_signs_with_the_configured_key(pad_bundle, tmp_path: Path) -> None:
    from idv.export.bundle import export
    from tests.conftest import PARITY, compose

    generate_keypair(tmp_path / "owner.key", tmp_path / "owner.pub")
    overrides = [
        f"ckpt_path={pad_bundle['ckpt']}",
        f"thresholds={pad_bundle['thresholds']}",
        f"bundle_dir={tmp_path / 'bundle'}",
        f"signing_key={tmp_path / 'owner.key'}",
        *PARITY,
    ]
    export(compose("export", overrides, tmp_path / "run"))
    assert (tmp_path / "bundle" / SIGNATURE_FILE).is_file()
    load_bundle(tmp_path / "bundle", public_key=tmp_path / "owner.pub")


# ---- offline means offline --------------------------------------------------------------


def test_offline_switches_are_forced_unless_opted_in() -> None:
    script = (
        "import os, idv; print(os.environ['NO_ALBUMENTATIONS_UPDATE'], "
        "os.environ['HF_HUB_OFFLINE'], os.environ['WANDB_MODE'])"
    )
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "0", "HF_HUB_OFFLINE": "0",
           "WANDB_MODE": "online"}  # fmt: skip
    env.pop("IDV_ONLINE", None)
    forced = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert forced.stdout.split() == ["1", "1", "offline"], forced.stderr
    disabled = {**env, "WANDB_MODE": "disabled"}  # already more offline than ours: kept
    kept = subprocess.run([sys.executable, "-c", script], env=disabled, capture_output=True,
                          text=True)  # fmt: skip
    assert kept.stdout.split()[2] == "disabled", kept.stderr
    opted = subprocess.run([sys.executable, "-c", script], env={**env, "IDV_ONLINE": "1"},
                           capture_output=True, text=True)  # fmt: skip
    assert opted.stdout.split() == ["0", "0", "online"], opted.stderr


def test_every_loader_error_is_an_idv_error() -> None:
    from idv.data.manifest import ManifestError
    from idv.evaluation.benchmark_io import VendorFileError
    from idv.score_tables import ScoreTableError
    from idv.thresholds import ThresholdsError

    for cls in (ManifestError, VendorFileError, ScoreTableError, ThresholdsError, BundleError,
                ImageReadError):  # fmt: skip
        assert issubclass(cls, IdvError), cls
    assert issubclass(ManifestError, ValueError) and issubclass(ImageReadError, OSError)
