"""MTCNN wrapper and the folder-per-identity importer, on scikit-image's real photos."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from skimage import data

from idv.data.face_detect import Detection, FaceDetector
from idv.data.manifest import Manifest
from idv.data.sources.folder_per_identity import NAME_MAP, import_folder_corpus, pseudonym
from idv.faces.acquisition import AcquisitionPolicy, choose_face
from idv.faces.align import template
from tests.conftest import compose

SALT = "test-salt"
FRACTIONS = {"train": 0.5, "val": 0.0, "calib": 0.25, "test": 0.25}
STRICT = AcquisitionPolicy()  # the default: any second face refuses
DOMINANT = AcquisitionPolicy(dominance=2.0)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    """One MTCNN for the module: construction is cheap, the first detection is not."""
    return FaceDetector()


def portrait() -> np.ndarray:
    """An LFW-like 250x250 photo centred on the astronaut's face (face side ~80 px)."""
    return cv2.resize(data.astronaut()[0:300, 74:374], (250, 250), interpolation=cv2.INTER_AREA)


def pair() -> np.ndarray:
    """Two faces of the same size side by side: the face and its mirror image."""
    face = portrait()[:, 40:210]
    return np.ascontiguousarray(np.concatenate([face, face[:, ::-1]], axis=1))


def bystander() -> np.ndarray:
    """The portrait with a small copy of itself (face side ~32 px) in a corner."""
    image = portrait()
    image[150:250, 150:250] = cv2.resize(image, (100, 100), interpolation=cv2.INTER_AREA)
    return image


def save(image: np.ndarray, file: Path) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(file, quality=95)


def build_corpus(root: Path) -> dict[str, str]:
    """src/<identity>/<files>; returns relative file -> expected failure ('' = aligned)."""
    base = portrait()
    expected = {
        "Alice Example/a_0001.png": ("", base),
        "Alice Example/a_0002.jpg": ("", np.ascontiguousarray(base[:, ::-1])),
        "Alice Example/a_0003.jpg": ("", cv2.resize(base[20:230, 10:220], (180, 180))),
        "Bob Example/b_0001.jpg": (
            "",
            cv2.warpAffine(base, cv2.getRotationMatrix2D((125, 125), 15, 1.0), (250, 250)),
        ),
        "Bob Example/b_0002.JPG": ("no_face", cv2.resize(data.coffee(), (300, 200))),
        "Carol Example/c_0001.png": ("several_faces", pair()),
        "Carol Example/c_0002.jpg": ("", cv2.resize(base, (320, 320))),
        "Dan Example/d_0001.jpg": ("", base[10:240, 5:245]),
    }
    for rel, (_, image) in expected.items():
        save(image, root / rel)
    (root / "Bob Example/b_0003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "Bob Example/notes.txt").write_text("not an image")
    (root / "README").write_text("a top-level file, not an identity")
    (root / ".hidden").mkdir()
    out = {rel: failure for rel, (failure, _) in expected.items()}
    out["Bob Example/b_0003.jpg"] = "unreadable"
    return out


class Records(logging.Handler):
    """Collects log messages (caplog is per test; the import runs once per module)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def imported(tmp_path_factory, detector: FaceDetector):
    """The tiny corpus imported twice with the same seed (determinism), once with names."""
    root = tmp_path_factory.mktemp("faces_import")
    expected = build_corpus(root / "src")
    logger = logging.getLogger("idv.data.sources.folder_per_identity")
    records, level = Records(), logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        frames = [
            import_folder_corpus(
                root / "src",
                root / name,
                seed=7,
                split_fractions=FRACTIONS,
                salt=SALT,
                detector=detector,
                keep_names=name == "named",
            )
            for name in ("a", "named")
        ]
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    return root, expected, frames, records.messages


# ---- the detector -----------------------------------------------------------------------


def test_astronaut_is_one_confident_face(detector: FaceDetector) -> None:
    faces = detector.detect(data.astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert face.probability > 0.99
    assert face.box.dtype == np.float32 and face.box.shape == (4,)
    assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (5, 2)
    assert not face.landmarks.flags.writeable
    x1, y1, x2, y2 = face.box
    assert 150 < x1 < x2 < 300 and 40 < y1 < y2 < 200  # where her face is


def test_coffee_has_no_face_and_tiny_images_do_not_crash(detector: FaceDetector) -> None:
    assert detector.detect(data.coffee()) == []
    for shape in ((19, 19, 3), (5, 300, 3), (20, 20, 3)):
        assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_two_faces_side_by_side_are_two_faces(detector: FaceDetector) -> None:
    faces = detector.detect(pair())
    assert len(faces) == 2 and all(f.probability > 0.99 for f in faces)
    assert choose_face(faces, STRICT) == (None, "several_faces")


def test_min_probability_filters(detector: FaceDetector) -> None:
    (face,) = detector.detect(portrait())
    (same,) = FaceDetector(min_probability=face.probability).detect(portrait())
    assert same.probability == face.probability
    above = np.nextafter(face.probability, 2.0)
    assert FaceDetector(min_probability=above).detect(portrait()) == []


def test_detector_rejects_bad_input_and_options() -> None:
    with pytest.raises(ValueError, match="uint8"):
        FaceDetector().detect(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        FaceDetector().detect(np.zeros((50, 50), np.uint8))
    with pytest.raises(ValueError, match="thresholds"):
        FaceDetector(thresholds=(0.6, 0.7))
    with pytest.raises(ValueError, match="min_probability"):
        FaceDetector(min_probability=1.5)
    with pytest.raises(ValueError, match="threads"):
        FaceDetector(threads=0)


def test_detection_restores_torch_threads(detector: FaceDetector, monkeypatch) -> None:
    before, seen = torch.get_num_threads(), []
    original = detector.mtcnn.detect

    def recording_detect(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(detector.mtcnn, "detect", recording_detect)
    assert len(detector.detect(portrait())) == 1
    assert seen == [1] and torch.get_num_threads() == before


def test_weights_load_from_the_package_without_network(monkeypatch) -> None:
    """A fresh MTCNN loads pnet/rnet/onet from facenet_pytorch/data and never connects."""
    import facenet_pytorch

    data_dir = Path(facenet_pytorch.__file__).parent / "data"
    for net in ("pnet", "rnet", "onet"):
        assert (data_dir / f"{net}.pt").is_file()

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    loaded: list[Path] = []
    torch_load = torch.load

    def recording_load(file, *args, **kwargs):
        loaded.append(Path(file).resolve())
        return torch_load(file, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(torch, "load", recording_load)
    fresh = FaceDetector()
    assert fresh._mtcnn is None  # lazy: nothing built before the first use
    assert fresh.mtcnn is fresh.mtcnn  # built once
    assert sorted(p.name for p in loaded) == ["onet.pt", "pnet.pt", "rnet.pt"]
    assert all(p.parent == data_dir.resolve() for p in loaded)
    assert len(fresh.detect(portrait())) == 1


def test_dominance_ignores_small_bystanders(detector: FaceDetector) -> None:
    faces = detector.detect(bystander())
    assert len(faces) == 2
    assert choose_face(faces, STRICT) == (None, "several_faces")
    face, failure = choose_face(faces, DOMINANT)
    assert failure is None and face is max(faces, key=lambda f: f.side)
    # Equal faces stay ambiguous whatever the dominance.
    assert choose_face(detector.detect(pair()), DOMINANT)[1] == "several_faces"


def test_choose_face_on_made_up_detections() -> None:
    def det(side: float) -> Detection:
        return Detection(np.float32([0, 0, side, side]), 0.99, np.zeros((5, 2), np.float32))

    assert choose_face([], STRICT) == (None, "no_face")
    one = det(50)
    assert choose_face([one], STRICT) == (one, None)
    assert choose_face([one, det(25)], DOMINANT) == (one, None)  # exactly 1/2: bystander
    assert choose_face([one, det(26)], DOMINANT) == (None, "several_faces")


# ---- the importer -----------------------------------------------------------------------


def test_every_image_has_a_row_with_the_right_outcome(imported) -> None:
    root, expected, (frame, named), _ = imported
    assert len(frame) == len(expected)  # nothing dropped; README / notes.txt are not images
    names = {pseudonym(rel.split("/")[0], SALT): rel.split("/")[0] for rel in expected}
    by_file = dict(zip(named["source_file"], named["sample_id"], strict=True))
    rows = frame.set_index("sample_id")
    for rel, failure in expected.items():
        row = rows.loc[by_file[rel]]
        assert names[row["subject_id"]] == rel.split("/")[0]
        assert row["label"] == 0 and row["attack_type"] == "bona_fide"
        if failure:
            assert not row["acquired"] and row["failure"] == failure, rel
            assert row["path"].startswith("unaligned/") and row["landmarks"] is None
            copy = (root / "a" / row["path"]).read_bytes()
            assert copy == (root / "src" / rel).read_bytes()  # a byte copy of the original
        else:
            assert row["acquired"] and pd.isna(row["failure"]), rel
            assert row["path"].startswith("images/") and row["path"].endswith(".png")
            assert row["face_count"] == 1 and row["face_probability"] > 0.99
            crop = np.asarray(Image.open(root / "a" / row["path"]))
            assert crop.shape == (112, 112, 3)
            landmarks = np.asarray(row["landmarks"], dtype=np.float64).reshape(5, 2)
            # On the template up to the least-squares residual of a real face.
            assert np.linalg.norm(landmarks - template(112), axis=1).max() < 8.0
    assert (frame["failure"] == "several_faces").sum() == 1
    assert frame.loc[frame["failure"] == "several_faces", "face_count"].item() == 2
    # What another policy would change: every face's probability and size, and why.
    several = frame[frame["failure"] == "several_faces"].iloc[0]
    assert len(several["face_probabilities"]) == 2 and min(several["face_probabilities"]) > 0.99
    assert len(several["face_sides"]) == 2 and min(several["face_sides"]) > 60
    assert several["failure_detail"] == "2 faces, none chosen by the 'dominance (strict)' policy"
    unreadable = frame[frame["failure"] == "unreadable"].iloc[0]
    assert unreadable["failure_detail"].startswith("<file>: cannot decode image (")


def test_manifest_loads_and_splits_are_subject_disjoint(imported) -> None:
    root, _, (frame, _), _ = imported
    manifest = Manifest.load(root / "a" / "manifest.parquet", labels=[0])  # files exist
    loaded = manifest.frame
    assert list(loaded.columns[:6]) == ["sample_id", "path", "label", "subject_id", "split"] + [
        "attack_type"
    ]
    assert {"acquired", "failure", "landmarks", "source_sha256"} <= set(loaded.columns)
    assert "source_file" not in loaded.columns  # no names unless asked
    assert not (root / "a" / NAME_MAP).exists()
    assert loaded["acquired"].dtype == bool
    assert (loaded.groupby("subject_id")["split"].nunique() == 1).all()
    assert loaded["subject_id"].nunique() == 4 and loaded["split"].nunique() > 1
    assert loaded["subject_id"].str.fullmatch(r"S[0-9a-f]{12}").all()
    assert not loaded.astype(str).apply(lambda c: c.str.contains("Example")).any().any()
    pd.testing.assert_frame_equal(loaded, frame)


def test_same_seed_same_corpus(imported) -> None:
    root, _, (frame, named), _ = imported
    pd.testing.assert_frame_equal(frame, named.drop(columns="source_file"))
    for rel in frame["path"]:
        assert (root / "a" / rel).read_bytes() == (root / "named" / rel).read_bytes()
    names = pd.read_csv(root / "named" / NAME_MAP)
    assert sorted(names["identity"]) == ["Alice Example", "Bob Example"] + [
        "Carol Example",
        "Dan Example",
    ]
    assert (names["subject_id"] == names["identity"].map(lambda n: pseudonym(n, SALT))).all()


def test_summary_names_the_failed_files(imported) -> None:
    messages = "\n".join(imported[3])
    assert "1 x no_face: Bob Example/b_0002.JPG" in messages
    assert "1 x several_faces: Carol Example/c_0001.png" in messages
    assert "1 x unreadable: Bob Example/b_0003.jpg" in messages
    assert "9 images of 4 identities; 6 aligned, 3 failures to acquire" in messages
    assert "2 entries are not image files, not imported" in messages
    assert "'Bob Example/notes.txt'" in messages and "'README'" in messages


def test_bad_arguments_fail_before_writing(imported, tmp_path: Path) -> None:
    root = imported[0]
    kwargs = {"seed": 0, "split_fractions": FRACTIONS, "salt": SALT}
    with pytest.raises(ValueError, match="outside src"):
        import_folder_corpus(root / "src", root / "src" / "out", **kwargs)
    with pytest.raises(ValueError, match="outside src"):
        import_folder_corpus(root / "src", root, **kwargs)  # would swap src away
    with pytest.raises(FileNotFoundError):
        import_folder_corpus(tmp_path / "missing", tmp_path / "out", **kwargs)
    (tmp_path / "empty" / "Nobody").mkdir(parents=True)
    with pytest.raises(ValueError, match="no image files"):
        import_folder_corpus(tmp_path / "empty", tmp_path / "out", **kwargs)
    with pytest.raises(ValueError, match="unknown split"):
        import_folder_corpus(
            root / "src", tmp_path / "out", **kwargs | {"split_fractions": {"x": 1}}
        )
    with pytest.raises(ValueError, match="crop_size"):
        AcquisitionPolicy(crop_size=0)
    with pytest.raises(ValueError, match="dominance"):
        AcquisitionPolicy(dominance=1.0)
    assert not (tmp_path / "out").exists()


def test_cli_imports_with_the_config(tmp_path: Path) -> None:
    from idv.cli.import_faces import run

    src = tmp_path / "src"
    save(bystander(), src / "Erin Example" / "e_0001.jpg")
    save(pair(), src / "Erin Example" / "e_0002.jpg")
    save(portrait(), src / "Finn Example" / "f_0001.jpg")
    cfg = compose(
        "import_faces", [f"src={src}", "acquisition.policy.dominance=2", "seed=3"], tmp_path
    )
    manifest = Manifest.load(run(cfg))
    assert manifest.file == tmp_path / "data" / "imported_faces" / "manifest.parquet"
    frame = manifest.frame.sort_values("sample_id")
    assert frame["acquired"].tolist().count(True) == 2
    assert frame["failure"].dropna().tolist() == ["several_faces"]
