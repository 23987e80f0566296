"""idv-import-documents on tiny MIDV-style datasets the tests write (generic and VIA layouts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from idv.data.manifest import Manifest
from idv.data.sources.id_documents import (
    DocumentImportError,
    import_documents,
    list_documents,
    mrz_text,
)
from idv.errors import IdvError
from idv.imaging import ImageReadError, read_image
from tests.conftest import compose

FRACTIONS = {"train": 0.5, "val": 0.0, "calib": 0.25, "test": 0.25}
QUAD = [[2, 3], [38, 2], [39, 27], [1, 28]]
MRZ = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
COLUMNS = [
    "sample_id", "path", "label", "subject_id", "split", "attack_type", "document_type",
    "template", "geography", "source_dataset", "document_quad", "fields", "mrz", "mask_path",
    "source_file",
]  # fmt: skip


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (30, 40, 3), dtype=np.uint8)


def _points(k: int) -> list[list[int]]:
    return [[x + k, y] for x, y in QUAD]


def _annotation(k: int, mrz: bool = True) -> dict:
    fields = {
        "surname": {"quad": _points(1), "value": f"ERIKSSON{k}"},
        "number": {"quad": _points(2), "value": f"L89890{k}"},
    }
    if mrz:  # written line 2 first: the mrz column must follow the line numbers
        fields["mrz_line2"] = {"quad": _points(4), "value": MRZ[1]}
        fields["mrz_line1"] = {"quad": _points(3), "value": MRZ[0]}
    return {"document_quad": _points(k), "fields": fields}


def write_generic(root: Path) -> Path:
    """Two document types, 3 images each: PNG + JPEG, and a TIFF (re-encoded on import)."""
    files = {
        "alpha_passport": ("00.png", "01.png", "02.jpg"),
        "beta_id": ("00.jpg", "01.tif", "sub/02.jpg"),
    }
    for t, names in files.items():
        for k, name in enumerate(names):
            image = root / t / "images" / name
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_pixels(k + 10 * len(t))).save(image, quality=95)
            note = (root / t / "annotations" / name).with_suffix(".json")
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(json.dumps(_annotation(k, mrz=t == "alpha_passport")))
    return root


def via_region(name: str, xs, ys, value: str | None = None) -> dict:
    attrs = {"field_name": name} | ({} if value is None else {"value": value})
    shape = {"name": "polygon", "all_points_x": list(xs), "all_points_y": list(ys)}
    return {"shape_attributes": shape, "region_attributes": attrs}


def via_entry(filename: str, k: int) -> dict:
    regions = [
        via_region("doc_quad", [1, 39, 39, 1], [1 + k, 1, 29, 29]),
        via_region("face", [2, 10, 10, 2], [2, 2, 12, 12]),  # an image zone: not a text field
        via_region("mrz_line1", [1, 39, 39, 1, 1], [20, 20, 24, 24, 20], MRZ[1]),  # closed ring
        via_region("mrz_line0", [1, 39, 39, 1], [15, 15, 19, 19], MRZ[0]),
        {"shape_attributes": {"name": "rect", "x": 12, "y": 3, "width": 20, "height": 4},
         "region_attributes": {"field_name": "name", "value": f"ANNA {k}"}},
    ]  # fmt: skip
    return {"filename": filename, "size": 1234, "regions": regions, "file_attributes": {}}


def write_midv2020(root: Path) -> Path:
    """MIDV-2020's own folders: images/<type>/NN.jpg, annotations/<type>.json (a VIA project)."""
    for t in ("alb_id", "esp_id"):
        meta = {}
        for k in range(3):
            name = f"{k:02d}.jpg"
            (root / "images" / t).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_pixels(k)).save(root / "images" / t / name, quality=90)
            meta[f"{name}1234"] = via_entry(name, k)
        (root / "annotations").mkdir(exist_ok=True)
        project = {"_via_settings": {}, "_via_img_metadata": meta, "_via_attributes": {}}
        (root / "annotations" / f"{t}.json").write_text(json.dumps(project))
    return root


def _import(src: Path, out: Path, **kwargs) -> pd.DataFrame:
    return import_documents(src, out, seed=0, split_fractions=FRACTIONS, **kwargs)


@pytest.fixture(scope="module")
def generic(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("documents")
    src = write_generic(root / "src")
    frame = _import(src, root / "out", geography={"alpha_passport": "UTO"}, source_dataset="tiny")
    return src, root / "out", frame


def test_generic_import_writes_the_documented_manifest(generic) -> None:
    src, out, frame = generic
    manifest = Manifest.load(out / "manifest.parquet", labels=[0]).frame  # files exist
    assert list(manifest.columns) == COLUMNS
    pd.testing.assert_frame_equal(manifest, frame)
    assert len(manifest) == 6 and (manifest["label"] == 0).all()
    assert (manifest["attack_type"] == "bona_fide").all() and manifest["mask_path"].isna().all()
    assert (manifest["template"] == manifest["document_type"]).all()
    assert (manifest["subject_id"] == manifest["document_type"]).all()  # MIDV-500's rule
    assert set(manifest["source_dataset"]) == {"tiny"}
    geo = dict(zip(manifest["document_type"], manifest["geography"], strict=True))
    assert geo == {"alpha_passport": "UTO", "beta_id": "unknown"}
    rows = manifest.set_index("sample_id")
    assert sorted(rows.index) == [
        "alpha_passport/00",
        "alpha_passport/01",
        "alpha_passport/02",
        "beta_id/00",
        "beta_id/01",
        "beta_id/sub/02",
    ]
    row = rows.loc["alpha_passport/01"]
    assert list(row["document_quad"]) == [3.0, 3.0, 39.0, 2.0, 40.0, 27.0, 2.0, 28.0]
    fields = json.loads(row["fields"])
    assert list(fields) == ["surname", "number", "mrz_line2", "mrz_line1"]
    assert fields["surname"] == {"value": "ERIKSSON1", "quad": [3.0, 3, 39, 2, 40, 27, 2, 28]}
    assert row["mrz"] == "\n".join(MRZ)  # line order, not file order
    assert pd.isna(rows.loc["beta_id/00", "mrz"])  # no MRZ field
    assert len(json.loads(rows.loc["beta_id/00", "fields"])) == 2
    assert rows.loc["beta_id/sub/02", "source_file"] == "beta_id/images/sub/02.jpg"


def test_images_are_copied_or_re_encoded_and_readable(generic) -> None:
    src, out, frame = generic
    for row in frame.itertuples():
        original, stored = src / row.source_file, out / row.path
        assert row.path.startswith(f"images/{row.document_type}/")
        np.testing.assert_array_equal(read_image(stored), read_image(original))
        if original.suffix == ".tif":
            assert stored.suffix == ".png" and Image.open(stored).format == "PNG"
        else:  # JPEG and PNG: the bytes as they were
            assert stored.read_bytes() == original.read_bytes()
            assert stored.suffix == {".png": ".png", ".jpg": ".jpg"}[original.suffix]


def test_splits_are_subject_disjoint_and_deterministic(generic, tmp_path) -> None:
    src, _, frame = generic
    assert (frame.groupby("subject_id")["split"].nunique() == 1).all()
    again = _import(
        src, tmp_path / "again", geography={"alpha_passport": "UTO"}, source_dataset="tiny"
    )
    pd.testing.assert_frame_equal(again, frame)
    # One subject per physical document: the instance found in the name.
    by_instance = _import(src, tmp_path / "instances", instance_pattern=r"(\d+)$")
    assert by_instance["subject_id"].nunique() == 6
    assert "beta_id/02" in set(by_instance["subject_id"])
    assert (by_instance.groupby("subject_id")["split"].nunique() == 1).all()
    assert by_instance["split"].nunique() > 1
    assert set(by_instance["source_dataset"]) == {"src"}  # default: the source folder's name


def test_mrz_fields_are_recognised_by_name() -> None:
    def fields(*names: str) -> dict:
        return {n: {"value": n.upper(), "quad": []} for n in names}

    assert mrz_text(fields("MRZ line 2", "surname", "mrz1", "mrz_line_3")) == (
        "MRZ1\nMRZ LINE 2\nMRZ_LINE_3"
    )
    assert mrz_text(fields("mrz")) == "MRZ"
    assert mrz_text(fields("surname", "mrzone", "number")) is None


def test_via_layout_of_midv2020(tmp_path) -> None:
    src = write_midv2020(tmp_path / "photo")
    frame = _import(
        src, tmp_path / "out", layout="via", instance_pattern=r"\d+", geography={"alb_id": "ALB"}
    )
    Manifest.load(tmp_path / "out" / "manifest.parquet", labels=[0])
    assert len(frame) == 6 and frame["subject_id"].nunique() == 6
    row = frame.set_index("sample_id").loc["esp_id/02"]
    assert row["subject_id"] == "esp_id/02" and row["geography"] == "unknown"
    assert row["path"] == "images/esp_id/02.jpg" and row["source_file"] == "images/esp_id/02.jpg"
    assert list(row["document_quad"]) == [1.0, 3.0, 39.0, 1.0, 39.0, 29.0, 1.0, 29.0]
    fields = json.loads(row["fields"])
    assert sorted(fields) == ["mrz_line0", "mrz_line1", "name"]  # no face zone, no doc_quad
    assert fields["name"] == {"value": "ANNA 2", "quad": [12.0, 3, 32, 3, 32, 7, 12, 7]}
    assert fields["mrz_line1"]["quad"] == [1.0, 20, 39, 20, 39, 24, 1, 24]
    assert row["mrz"] == "\n".join(MRZ)


def test_via_export_per_document_type_folder(tmp_path) -> None:
    """The per-type folders of the generic layout with a bare VIA export (keys = file names)."""
    folder = tmp_path / "src" / "alb_id"
    (folder / "images").mkdir(parents=True)
    (folder / "annotations").mkdir()
    export = {}
    for k in range(2):
        Image.fromarray(_pixels(k)).save(folder / "images" / f"{k}.png")
        entry = via_entry(f"{k}.png", k)
        del entry["filename"]
        export[f"{k}.png"] = entry
    (folder / "annotations" / "via_export.json").write_text(json.dumps(export))
    documents = list_documents(tmp_path / "src", layout="via")
    assert [(d.document_type, d.name) for d in documents] == [("alb_id", "0"), ("alb_id", "1")]
    assert documents[1].annotation.endswith("via_export.json: entry '1.png'")


def test_the_entry_point_composes_and_imports(tmp_path) -> None:
    from idv.cli.import_documents import run

    src = write_generic(tmp_path / "src")
    cfg = compose(
        "import_documents", [f"source={src}", "seed=3", "+geography.beta_id=XYZ"], tmp_path
    )
    manifest = Manifest.load(run(cfg), labels=[0])
    assert manifest.file == tmp_path / "data" / "documents_import" / "manifest.parquet"
    assert set(manifest.frame["geography"]) == {"unknown", "XYZ"}
    via = write_midv2020(tmp_path / "midv2020")
    cfg = compose(
        "import_documents",
        [f"source={via}", f"out={tmp_path / 'via'}", "layout=via", "instance_pattern='\\d+'"],
        tmp_path,
    )
    frame = Manifest.load(run(cfg)).frame
    assert set(frame["geography"]) == {"ALB", "ESP"}  # the config's MIDV-2020 map
    assert frame["subject_id"].nunique() == 6


# ---- bad input: an error naming the file (and key); the previous corpus survives ---------


def _break(case: str, src: Path) -> tuple[type[Exception], str]:
    """Damage the generic fixture; returns the error type and what the message must name."""
    note = src / "beta_id" / "annotations" / "00.json"
    data = json.loads(note.read_text())
    if case == "not_json":
        note.write_text('{"document_quad": [[1, 2], ')
        return DocumentImportError, rf"{note}: not valid JSON"
    if case == "three_points":
        data["document_quad"] = data["document_quad"][:3]
        note.write_text(json.dumps(data))
        return DocumentImportError, rf"{note}: document_quad: expected a quad of 4 \[x, y\]"
    if case == "point_not_numbers":
        data["fields"]["number"]["quad"][2] = ["7", 8]
        note.write_text(json.dumps(data))
        return DocumentImportError, rf"{note}: field 'number': quad: expected a quad of 4"
    if case == "field_without_value":
        del data["fields"]["surname"]["value"]
        note.write_text(json.dumps(data))
        return DocumentImportError, rf"{note}: field 'surname': the field has no value"
    if case == "image_without_annotation":
        note.unlink()
        image = src / "beta_id" / "images" / "00.jpg"
        return DocumentImportError, rf"{image}: image without an annotation \(expected beta_id/"
    if case == "annotation_without_image":
        image = src / "beta_id" / "images" / "00.jpg"
        image.unlink()
        return DocumentImportError, rf"{note}: annotation without an image \(expected beta_id/"
    if case == "unreadable_image":
        image = src / "alpha_passport" / "images" / "01.png"
        image.write_bytes(image.read_bytes()[:60])  # truncated
        return ImageReadError, rf"{image}: cannot decode image"
    raise AssertionError(case)


BAD = ["not_json", "three_points", "point_not_numbers", "field_without_value",
       "image_without_annotation", "annotation_without_image", "unreadable_image"]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_named_and_the_previous_corpus_survives(case, tmp_path) -> None:
    src = write_generic(tmp_path / "src")
    out = tmp_path / "out"
    before = _import(src, out)
    error, message = _break(case, src)
    with pytest.raises(error, match=message) as caught:
        _import(src, out)
    assert isinstance(caught.value, IdvError)
    pd.testing.assert_frame_equal(Manifest.load(out / "manifest.parquet").frame, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temporary left


def test_unpaired_files_can_be_skipped_and_are_counted(tmp_path, caplog) -> None:
    src = write_generic(tmp_path / "src")
    (src / "beta_id" / "annotations" / "00.json").unlink()
    (src / "alpha_passport" / "images" / "02.jpg").unlink()
    with caplog.at_level(logging.WARNING, "idv.data.sources.id_documents"):
        frame = _import(src, tmp_path / "out", on_missing="skip")
    assert len(frame) == 4
    assert "2 unpaired files skipped (on_missing=skip)" in caplog.text
    assert "02.json: annotation without an image" in caplog.text
    with pytest.raises(DocumentImportError, match=r"\[2 unpaired file\(s\) in all"):
        _import(src, tmp_path / "out")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda e: e["regions"][3]["region_attributes"].pop("value"),
            r"entry '01.jpg1234': field 'mrz_line0': the field has no value",
        ),
        (lambda e: e["regions"].pop(0), r"entry '01.jpg1234': no 'doc_quad' region"),
        (
            lambda e: e["regions"][2]["shape_attributes"]["all_points_x"].pop(),
            r"entry '01.jpg1234': field 'mrz_line1': polygon needs all_points_x / _y of equal",
        ),
        (
            lambda e: e["regions"][4]["shape_attributes"].update(name="ellipse"),
            r"entry '01.jpg1234': field 'name': shape_attributes .* not a 'polygon' or 'rect'",
        ),
    ],
)
def test_bad_via_entries_name_the_file_key_and_field(change, message, tmp_path) -> None:
    src = write_midv2020(tmp_path / "photo")
    file = src / "annotations" / "esp_id.json"
    project = json.loads(file.read_text())
    change(project["_via_img_metadata"]["01.jpg1234"])
    file.write_text(json.dumps(project))
    with pytest.raises(DocumentImportError, match=rf"{file}: {message}"):
        _import(src, tmp_path / "out", layout="via")
    assert not (tmp_path / "out").exists()


def test_bad_arguments_fail_before_writing(tmp_path) -> None:
    src = write_generic(tmp_path / "src")
    with pytest.raises(ValueError, match="layout must be one of"):
        _import(src, tmp_path / "out", layout="midv")
    with pytest.raises(ValueError, match="on_missing must be one of"):
        _import(src, tmp_path / "out", on_missing="ignore")
    with pytest.raises(ValueError, match="outside src"):
        _import(src, src / "out")
    with pytest.raises(ValueError, match="unknown split"):
        import_documents(src, tmp_path / "out", seed=0, split_fractions={"x": 1.0})
    with pytest.raises(DocumentImportError, match=r"02.jpg: name 'sub/02' has no document"):
        _import(src, tmp_path / "out", instance_pattern=r"^\d+$")
    (tmp_path / "empty" / "alb_id" / "images").mkdir(parents=True)
    with pytest.raises(DocumentImportError, match="no annotated images"):
        _import(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DocumentImportError, match="MIDV-2020's folders: layout=via"):
        _import(write_midv2020(tmp_path / "midv2020"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
