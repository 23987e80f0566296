"""Fuzzing every loader of outside input (issue 18): a random corruption of a valid file ends
in the project's own error (`IdvError`) whose message names the file, and the row or key for
a structured corruption, or in a correct result; never a bare library exception.

Hypothesis runs derandomized (a fixed seed) with `max_examples` per target, so CI sees the
same cases every time; `IDV_FUZZ_EXAMPLES=500 pytest tests/test_fuzz_loaders.py` digs deeper.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from idv.data.manifest import Manifest, write_manifest
from idv.errors import IdvError
from idv.evaluation.benchmark_io import read_vendor_file
from idv.imaging import read_image
from idv.score_tables import read_detection_table
from idv.serving import load_bundle
from idv.serving.bundle import write_checksums
from idv.thresholds import Thresholds
from tests.conftest import make_corpus

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
EXAMPLES = int(os.environ.get("IDV_FUZZ_EXAMPLES", "30"))
# No shrinking: a failing case is reported as found (shrinking a bundle case runs thousands).
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def scratch() -> Iterator[Path]:
    """A directory for one example, removed after it (examples must not pile up on disk)."""
    with tempfile.TemporaryDirectory(prefix="idv-fuzz-") as tmp:
        yield Path(tmp)


def bundle_copy(source: Path, target: Path, writable: str) -> Path:
    """A bundle's copy whose files are hard links but `writable` and SHA256SUMS: real copies,
    to corrupt and re-sum without touching the source bundle."""
    shutil.copytree(source, target, copy_function=os.link)
    for name in {writable, "SHA256SUMS"}:
        (target / name).unlink()
        shutil.copy2(source / name, target / name)
    return target


# A byte-level corruption: (operation, position as a share of the length, payload).
BYTE_EDITS = st.tuples(
    st.sampled_from(["truncate", "flip", "insert", "delete", "zero"]),
    st.floats(0, 1),
    st.binary(min_size=1, max_size=16),
)
# A cell or a JSON value replaced by one of these.
ODD_VALUES = st.sampled_from(
    [None, "", " ", -1, 0, 1.5, 1e308, float("inf"), float("nan"), "x" * 3, True, [], {}]
)


def corrupt(data: bytes, edit: tuple[str, float, bytes]) -> bytes:
    op, where, payload = edit
    pos = min(int(where * len(data)), max(len(data) - 1, 0))
    if op == "truncate":
        return data[:pos]
    if op == "flip":
        return data[:pos] + bytes([data[pos] ^ (payload[0] | 1)]) + data[pos + 1 :]
    if op == "insert":
        return data[:pos] + payload + data[pos:]
    if op == "delete":
        return data[:pos] + data[pos + len(payload) :]
    return data[:pos] + b"\0" * len(payload) + data[pos + len(payload) :]


def outcome(load: Callable[[], Any], file: Path, *where: str) -> Any:
    """`load()`'s result, or None after an IdvError naming `file` (and one of `where`, the row
    or key of a structured corruption); any other exception fails the test."""
    try:
        return load()
    except IdvError as err:
        message = str(err)
        assert str(file) in message or file.name in message, f"file not named: {message}"
        if where:
            assert any(w in message for w in where), f"none of {where} named: {message}"
        return None
    except Exception as err:  # noqa: BLE001 - the point: nothing else may escape
        pytest.fail(f"bare {type(err).__name__} from {file.name}: {err}")


def _cell(frame: pd.DataFrame, row: int, column: str, value: Any) -> pd.DataFrame:
    """`frame` with one cell replaced; a value of another type than the column's turns the
    column into text (Parquet columns have one type), None stays a null."""
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    kind = type(frame[column].dropna().iloc[0]) if frame[column].notna().any() else str
    same = isinstance(value, kind) and isinstance(value, bool) == issubclass(kind, bool)
    if value is not None and not same:
        frame[column] = frame[column].map(lambda v: v if v is None else str(v))
        value = str(value)
    frame.at[row, column] = value
    return frame


def _keys(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a JSON document (dict keys and list indices)."""
    out = []
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else []
    )
    for k, v in items:
        out.append((*prefix, k))
        out += _keys(v, (*prefix, k))
    return out


def _edit_json(data: Any, path: tuple, value: Any, delete: bool) -> Any:
    data = json.loads(json.dumps(data))
    node = data
    for k in path[:-1]:
        node = node[k]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


# ---- manifests --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_manifest")
    write_manifest(make_corpus(root, subjects=6, per_subject=2), root / "manifest.parquet")
    return root / "manifest.parquet"


@FUZZ
@given(edit=BYTE_EDITS)
def test_manifest_bytes(manifest_file: Path, edit) -> None:
    with scratch() as tmp:
        file = tmp / "manifest.parquet"
        file.write_bytes(corrupt(manifest_file.read_bytes(), edit))
        shutil.copytree(manifest_file.parent / "img", tmp / "img")
        loaded = outcome(lambda: Manifest.load(file), file)
        assert loaded is None or len(loaded.frame) > 0


@FUZZ
@given(row=st.integers(0, 11), column=st.sampled_from(
    ["sample_id", "path", "label", "subject_id", "split", "attack_type", "geography"]),
    value=ODD_VALUES)  # fmt: skip
def test_manifest_cells(manifest_file: Path, row, column, value) -> None:
    frame = pd.read_parquet(manifest_file)
    with scratch() as tmp:
        file = tmp / "manifest.parquet"
        _cell(frame, row, column, value).to_parquet(file, index=False)
        shutil.copytree(manifest_file.parent / "img", tmp / "img")
        loaded = outcome(lambda: Manifest.load(file, labels=[0, 1]), file, f"row {row}", column)
    if loaded is not None:  # accepted: then every id is a real one
        assert loaded.frame["sample_id"].notna().all() and loaded.frame["subject_id"].notna().all()


# ---- score tables and vendor files ----------------------------------------------------------


@FUZZ
@given(edit=BYTE_EDITS)
def test_score_table_bytes(pad_bundle, edit) -> None:
    source = pad_bundle["evaluation"] / "tables" / "scores.parquet"
    with scratch() as tmp:
        file = tmp / "scores.parquet"
        file.write_bytes(corrupt(source.read_bytes(), edit))
        outcome(lambda: read_detection_table(file), file)


@FUZZ
@given(row=st.integers(0, 50), column=st.sampled_from(
    ["sample_id", "split", "label", "score", "acquired", "subject_id", "attack_type"]),
    value=ODD_VALUES)  # fmt: skip
def test_score_table_cells(pad_bundle, row, column, value) -> None:
    frame = pd.read_parquet(pad_bundle["evaluation"] / "tables" / "scores.parquet")
    with scratch() as tmp:
        file = tmp / "scores.parquet"
        _cell(frame, row, column, value).to_parquet(file, index=False)
        outcome(lambda: read_detection_table(file), file, f"row {row}", column)


@pytest.fixture(scope="module")
def vendor_csv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_vendor")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"sample_id": [f"s{i:03d}" for i in range(40)],
                          "score": rng.uniform(0, 1, 40).round(4)})  # fmt: skip
    frame.to_csv(root / "vendor.csv", index=False)
    (root / "vendor.meta.json").write_text(json.dumps({"score_direction": "higher_is_attack"}))
    return root / "vendor.csv"


@FUZZ
@given(edit=BYTE_EDITS, target=st.sampled_from(["csv", "meta", "parquet"]))
def test_vendor_file_bytes(vendor_csv: Path, edit, target) -> None:
    with scratch() as out:
        if target == "parquet":
            pd.read_csv(vendor_csv).to_parquet(out / "vendor.parquet", index=False)
            file = out / "vendor.parquet"
            file.write_bytes(corrupt(file.read_bytes(), edit))
            named = file
        else:
            shutil.copy(vendor_csv, out / "vendor.csv")
            shutil.copy(vendor_csv.with_suffix(".meta.json"), out / "vendor.meta.json")
            file = out / "vendor.csv"
            named = file if target == "csv" else out / "vendor.meta.json"
            named.write_bytes(corrupt(named.read_bytes(), edit))
        outcome(lambda: read_vendor_file(file), named)


# ---- thresholds -----------------------------------------------------------------------------


@FUZZ
@given(edit=BYTE_EDITS)
def test_thresholds_bytes(pad_bundle, edit) -> None:
    with scratch() as tmp:
        file = tmp / "thresholds.json"
        file.write_bytes(corrupt(pad_bundle["thresholds"].read_bytes(), edit))
        outcome(lambda: Thresholds.load(file), file)


@FUZZ
@given(pick=st.integers(0, 10_000), value=ODD_VALUES, delete=st.booleans())
def test_thresholds_keys(pad_bundle, pick, value, delete) -> None:
    data = json.loads(pad_bundle["thresholds"].read_text())
    path = _keys(data)[pick % len(_keys(data))]
    names = [str(k) for k in path if isinstance(k, str)]
    with scratch() as tmp:
        file = tmp / "thresholds.json"
        file.write_text(json.dumps(_edit_json(data, path, value, delete)))
        outcome(lambda: Thresholds.load(file), file, *names)


# ---- bundles (an honest user edits a file and re-sums it) ------------------------------------


@FUZZ
@given(name=st.sampled_from(["preprocess.json", "thresholds.json"]), pick=st.integers(0, 10_000),
       value=ODD_VALUES, delete=st.booleans())  # fmt: skip
def test_bundle_json_keys(pad_bundle, name, pick, value, delete) -> None:
    with scratch() as tmp:
        bundle = bundle_copy(pad_bundle["dir"], tmp / "bundle", name)
        data = json.loads((bundle / name).read_text())
        path = _keys(data)[pick % len(_keys(data))]
        (bundle / name).write_text(json.dumps(_edit_json(data, path, value, delete)))
        write_checksums(bundle)
        names = [str(k) for k in path if isinstance(k, str)]

        def load_and_score():
            scorer = load_bundle(bundle, backend="onnxruntime")
            return scorer.decide(scorer.score(pad_bundle["files"][:2]))

        decisions = outcome(load_and_score, bundle / name, *names)
    assert decisions is None or len(decisions) == 2


@FUZZ
@given(name=st.sampled_from(["model.onnx", "model.ts"]), edit=BYTE_EDITS)
def test_bundle_model_bytes(pad_bundle, name, edit) -> None:
    backend = "onnxruntime" if name == "model.onnx" else "torchscript"
    with scratch() as tmp:
        bundle = bundle_copy(pad_bundle["dir"], tmp / "bundle", name)
        (bundle / name).write_bytes(corrupt((bundle / name).read_bytes(), edit))
        write_checksums(bundle)

        def load_and_score():
            return load_bundle(bundle, backend=backend).score(pad_bundle["files"][:2])

        scores = outcome(load_and_score, bundle / name)
    assert scores is None or scores.shape == (2,)


# ---- images -------------------------------------------------------------------------------


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (24, 32, 3)).astype(np.uint8))
    buffer = io.BytesIO()
    if fmt == "JPEG+EXIF":  # an orientation tag: exif_transpose parses the EXIF block
        exif = Image.Exif()
        exif[0x0112] = 6
        exif[0x010F] = "camera maker"
        image.save(buffer, format="JPEG", exif=exif)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


ENCODED = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "JPEG+EXIF", "TIFF", "BMP", "WEBP")}


@FUZZ
@given(fmt=st.sampled_from(sorted(ENCODED)), edit=BYTE_EDITS)
def test_image_decoder(fmt, edit) -> None:
    with scratch() as tmp:
        file = tmp / f"image.{fmt.split('+')[0].lower()}"
        file.write_bytes(corrupt(ENCODED[fmt], edit))
        image = outcome(lambda: read_image(file), file)
    if image is not None:  # decoded: then as the contract says
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


# ---- capture sessions: the events table and a Balabit session file -----------------------


@pytest.fixture(scope="module")
def sessions_corpus(tmp_path_factory) -> Path:
    from idv.cli.synth import run
    from tests.conftest import compose

    root = tmp_path_factory.mktemp("fuzz_sessions")
    overrides = ["profile=tiny", "corpora=[sessions]", "sessions.sizes.tiny.subjects=6"]
    return run(compose("synth", overrides, root))["sessions"].parent


def _session_dataset(root: Path) -> Any:
    from idv.data.datasets import SessionDataset
    from idv.sessions.device import DEVICE_COLUMNS

    frame = pd.read_parquet(root / "manifest.parquet")
    species = ["bona_fide", "scripted", "replay", "humanised", "device_farm"]
    return SessionDataset(frame, root, {}, "eval", species, device=list(DEVICE_COLUMNS))


@FUZZ
@given(edit=BYTE_EDITS)
def test_events_table_bytes(sessions_corpus: Path, edit) -> None:
    with scratch() as tmp:
        shutil.copytree(sessions_corpus, tmp / "c")
        file = tmp / "c" / "events.parquet"
        file.write_bytes(corrupt(file.read_bytes(), edit))
        outcome(lambda: _session_dataset(tmp / "c"), file)


@FUZZ
@given(row=st.integers(0, 10_000), column=st.sampled_from(["t", "x", "y", "type", "sample_id"]),
       value=ODD_VALUES)  # fmt: skip
def test_events_table_cells(sessions_corpus: Path, row, column, value) -> None:
    with scratch() as tmp:
        shutil.copytree(sessions_corpus, tmp / "c")
        file = tmp / "c" / "events.parquet"
        frame = pd.read_parquet(file)
        frame["type"] = frame["type"].astype(str)
        row = row % len(frame)
        _cell(frame, row, column, value).to_parquet(file, index=False)
        outcome(lambda: _session_dataset(tmp / "c"), file, "session", "events table")


@FUZZ
@given(edit=BYTE_EDITS)
def test_balabit_session_bytes(edit) -> None:
    from idv.data.sources.mouse_dynamics import read_session

    lines = ["record timestamp,client timestamp,button,state,x,y"]
    lines += [
        f"{k * 0.02:.3f},{k * 0.02:.3f},NoButton,Move,{10 + k},{20 + 2 * k}" for k in range(20)
    ]
    with scratch() as tmp:
        file = tmp / "session_1"
        file.write_bytes(corrupt(("\n".join(lines) + "\n").encode(), edit))
        outcome(lambda: read_session(file), file)


@pytest.fixture(scope="module")
def graph_corpus(tmp_path_factory) -> Path:
    from idv.cli.synth import run
    from tests.conftest import compose

    root = tmp_path_factory.mktemp("fuzz_graph")
    overrides = ["profile=tiny", "corpora=[graph]", "graph.sizes.tiny.accounts=120",
                 "graph.faces.source=table"]  # fmt: skip
    return run(compose("synth", overrides, root))["graph"].parent


def _graph_tables(root: Path) -> Any:
    from idv.data.graph_tables import read_graph_tables

    return read_graph_tables(root, pd.read_parquet(root / "manifest.parquet"))


@FUZZ
@given(edit=BYTE_EDITS, name=st.sampled_from(["accounts.parquet", "links.parquet"]))
def test_graph_table_bytes(graph_corpus: Path, edit, name) -> None:
    with scratch() as tmp:
        shutil.copytree(graph_corpus, tmp / "c")
        file = tmp / "c" / name
        file.write_bytes(corrupt(file.read_bytes(), edit))
        outcome(lambda: _graph_tables(tmp / "c"), file)


@FUZZ
@given(row=st.integers(0, 10_000), column=st.sampled_from(
    ["account_id", "node_type", "node_key", "created_at"]), value=ODD_VALUES,
    name=st.sampled_from(["accounts.parquet", "links.parquet"]))  # fmt: skip
def test_graph_table_cells(graph_corpus: Path, row, column, value, name) -> None:
    with scratch() as tmp:
        shutil.copytree(graph_corpus, tmp / "c")
        file = tmp / "c" / name
        frame = pd.read_parquet(file)
        column = column if column in frame.columns else "f_claimed_age"
        row = row % len(frame)
        changed = _cell(frame, row, column, value)
        changed.to_parquet(file, index=False)
        # A changed account table can break a link's or a manifest row's reference: some row
        # is named, that of the table the reference fails in.
        where = (f"row {row}", column) if name == "links.parquet" else ("row ",)
        loaded = outcome(lambda: _graph_tables(tmp / "c"), file, *where)
    if loaded is not None:  # accepted: the changed value was a valid one
        assert loaded.accounts["account_id"].notna().all()


DOCUMENT_ANNOTATION = {
    "document_quad": [[0, 0], [100, 0], [100, 60], [0, 60]],
    "fields": {
        "number": {"quad": [[5, 5], [40, 5], [40, 12], [5, 12]], "value": "L898902C3"},
        "mrz_line1": {"quad": [[2, 40], [98, 40], [98, 48], [2, 48]], "value": "P<UTOERIKSSON"},
    },
}


@FUZZ
@given(edit=BYTE_EDITS)
def test_document_annotation_bytes(edit) -> None:
    from idv.data.sources.id_documents import parse_generic

    with scratch() as tmp:
        file = tmp / "card_01.json"
        file.write_bytes(corrupt(json.dumps(DOCUMENT_ANNOTATION).encode(), edit))
        outcome(lambda: parse_generic(file), file)


@FUZZ
@given(pick=st.integers(0, 10), value=ODD_VALUES)
def test_document_annotation_keys(pick, value) -> None:
    from idv.data.sources.id_documents import parse_generic

    data = json.loads(json.dumps(DOCUMENT_ANNOTATION))
    targets = [(data, "document_quad"), (data, "fields"),
               *[(f, k) for f in data["fields"].values() for k in ("quad", "value")]]  # fmt: skip
    parent, key = targets[pick % len(targets)]
    parent[key] = value
    with scratch() as tmp:
        file = tmp / "card_02.json"
        file.write_text(json.dumps(data))
        outcome(lambda: parse_generic(file), file)


@FUZZ
@given(edit=BYTE_EDITS)
def test_mrz_text(edit) -> None:
    """An MRZ as OCR hands it over: parsed, or an MRZError naming line / position / shape."""
    from idv.documents.mrz import MRZError, parse_mrz

    lines = [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ]
    text = "\n".join(lines)
    data = corrupt(text.encode(), edit).decode("latin-1")
    try:
        parse_mrz(data)
    except MRZError as err:
        assert any(w in str(err) for w in ("line", "position", "MRZ", "character")), str(err)
