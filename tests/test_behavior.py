"""Behaviour (bot vs human): session events and features, the sessions corpus, the session
dataset and models, the exported bundle with its streaming step, and the Balabit importer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from idv.data.datasets import SessionDataset
from idv.data.manifest import Manifest
from idv.data.sources.mouse_dynamics import MouseDynamicsError, import_mouse_dynamics
from idv.models.sequence import SessionClassifier
from idv.models.session_baseline import HandcraftedSession
from idv.sessions.device import DEVICE_COLUMNS, device_sessions
from idv.sessions.events import EventError, check_events, events_of_rows
from idv.sessions.features import FEATURES, TYPE_OFFSET, StreamingFeatures, event_features
from idv.sessions.statistics import STATISTICS, session_statistics
from tests.conftest import compose, fast_bundle

SPECIES = ["bona_fide", "scripted", "replay", "humanised", "device_farm"]
DEVICE = list(DEVICE_COLUMNS)


def session(n: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(0, 30, n))
    t[3] = t[2]  # equal timestamps are allowed
    return {"t": t, "x": rng.uniform(0, 800, n), "y": rng.uniform(0, 600, n),
            "type": rng.choice(["move", "down", "up", "key"], n).astype(object)}  # fmt: skip


# ------------------------------------------------------------------------ events, features


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.update(
                t=np.array([], float), x=np.array([]), y=np.array([]), type=np.array([])
            ),
            "empty session",
        ),  # fmt: skip
        (lambda s: s["x"].__setitem__(7, np.nan), "event 7 has x = nan"),
        (lambda s: s["t"].__setitem__(9, -1.0), "time goes backwards at event 9"),
        (lambda s: s["type"].__setitem__(4, "scroll"), "event 4 has type 'scroll'"),
        (lambda s: s.update(y=s["y"][:-1]), "different lengths"),
    ],
)
def test_bad_events_are_refused_by_session_and_event(change, message) -> None:
    s = session()
    change(s)
    with pytest.raises(EventError, match=message) as err:
        check_events(s, "sessions.parquet: session 'H1'")
    assert "session 'H1'" in str(err.value)


def test_long_sessions_keep_their_first_events_and_say_how_many_were_dropped() -> None:
    checked = check_events(session(50), "s", max_events=20)
    assert len(checked) == 20 and checked.truncated == 30
    assert check_events(session(10), "s", max_events=20).truncated == 0
    records = [{"t": 0, "x": 1, "y": 2, "type": "move"}, {"t": 5, "x": 3, "y": 2}]
    with pytest.raises(EventError, match=r"event 1 has no \['type'\]"):
        events_of_rows(records, "payload")


def test_streaming_features_equal_the_vectorised_ones() -> None:
    s = check_events(session(80, seed=3), "s")
    whole = event_features(s, 800, 600)
    stream = StreamingFeatures(800, 600)
    rows = np.asarray([stream.update(t, x, y, int(k)) for t, x, y, k in
                       zip(s.t, s.x, s.y, s.type, strict=True)], dtype=np.float32)  # fmt: skip
    assert whole.shape == (80, len(FEATURES))
    np.testing.assert_allclose(rows, whole, rtol=0, atol=1e-6)
    assert np.isfinite(whole).all() and (whole[:, TYPE_OFFSET:].sum(axis=1) == 1).all()
    stats = session_statistics(whole)
    assert stats.shape == (len(STATISTICS),) and np.isfinite(stats).all()


def test_a_time_scaled_replay_moves_off_the_display_frame_a_person_moves_on() -> None:
    """`frame_offset`: a person's moves on a 60 Hz display (jitter, a dropped frame now and
    then) average near 0; the same trace replayed 15% faster or slower sits well off it."""
    rng = np.random.default_rng(0)
    frames = 1000 / 60 * np.where(rng.random(199) < 0.05, 2, 1) + rng.normal(0, 1.2, 199)
    human = np.cumsum(np.r_[0.0, frames]).round(1)
    column = FEATURES.index("frame_offset")

    def features(t: np.ndarray, kinds: list[str] | None = None) -> np.ndarray:
        kinds = kinds or ["move"] * len(t)
        rows = [{"t": v, "x": 10 + i, "y": 20, "type": k}
                for i, (v, k) in enumerate(zip(t, kinds, strict=True))]  # fmt: skip
        return event_features(events_of_rows(rows, "s"), 800, 600)

    def offset(t: np.ndarray, kinds: list[str] | None = None) -> np.ndarray:
        return features(t, kinds)[:, column]

    assert abs(offset(human)[1:].mean()) < 0.15
    # frame_mean: the running mean of the move intervals' offsets, the session's at its end
    whole = features(human * 0.85)
    running = whole[:, FEATURES.index("frame_mean")]
    np.testing.assert_allclose(running[-1], whole[1:, column].mean(), atol=1e-6)
    np.testing.assert_allclose(running[5], whole[1:6, column].mean(), atol=1e-6)
    assert offset(human * 0.85)[1:].mean() < -0.5 and offset(human * 1.15)[1:].mean() > 0.5
    # only between two moves: a key press's interval says nothing about the display
    assert offset(human[:3], ["move", "key", "move"]).tolist() == [0.0, 0.0, 0.0]


def test_device_sessions_count_only_earlier_sessions_of_the_split_in_the_window() -> None:
    day = 86_400_000.0
    frame = pd.DataFrame({
        "device_id": ["d", "d", "d", "d", "d", "e"],
        "split": ["train", "train", "train", "test", "train", "train"],
        "started_at_ms": [0.0, 1 * day, 2 * day, 1.5 * day, 20 * day, 1 * day],
    })  # fmt: skip
    counts = device_sessions(frame, window_ms=7 * day)
    # train: 0, 1, 2 earlier within 7 days; the test session never counts a train one (nor
    # the reverse); 20 days later the window is empty; another device counts apart.
    assert counts.tolist() == [0, 1, 2, 0, 0, 0]


# -------------------------------------------------------------------------------- corpus


@pytest.fixture(scope="module")
def sessions_root(tiny_root: Path) -> Path:
    return tiny_root / "data" / "sessions" / "tiny"


def test_sessions_corpus_is_valid_with_every_species_and_an_events_table(sessions_root) -> None:
    manifest = Manifest.load(sessions_root / "manifest.parquet", labels=[0, 1])
    frame = manifest.frame
    assert set(frame["attack_type"]) == set(SPECIES)
    assert (frame["label"] == (frame["attack_type"] != "bona_fide")).all()
    assert set(DEVICE) <= set(frame.columns)
    events = pd.read_parquet(sessions_root / "events.parquet")
    assert set(events["sample_id"]) == set(frame["sample_id"])
    assert events.groupby("sample_id").size().reindex(frame["sample_id"]).tolist() == (
        frame["n_events"].tolist()
    )
    for sample_id, rows in events.groupby("sample_id"):
        check_events({c: rows[c].to_numpy() for c in ("t", "x", "y")} |
                     {"type": rows["type"].astype(str).to_numpy()}, sample_id)  # fmt: skip
    bots = frame[frame["label"] == 1]
    assert bots["attack_strength"].between(0, 1).all() and bots["attack_strength"].std() > 0.1
    farms = frame[frame["attack_type"] == "device_farm"]
    assert farms.groupby("device_id").size().max() > 1  # devices shared across sessions
    assert set(frame["hard_case"]) >= {"none", "elderly"}


def test_sessions_corpus_is_deterministic(tmp_path) -> None:
    from idv.cli.synth import run

    paths = [run(compose("synth", ["profile=tiny", "corpora=[sessions]",
                                   "sessions.sizes.tiny.subjects=30"], tmp_path / k))["sessions"]
             for k in ("a", "b")]  # fmt: skip
    a, b = (pd.read_parquet(p) for p in paths)
    pd.testing.assert_frame_equal(a, b)
    ea, eb = (pd.read_parquet(p.parent / "events.parquet") for p in paths)
    pd.testing.assert_frame_equal(ea, eb)


# ------------------------------------------------------------------------ dataset, models


def test_session_dataset_pads_counts_truncation_and_names_a_missing_session(sessions_root) -> None:
    frame = Manifest.load(sessions_root / "manifest.parquet").split("train")
    ds = SessionDataset(frame, sessions_root, {}, "train", SPECIES, device=DEVICE, max_events=32)
    sample = ds[0]
    assert sample.inputs["events"].shape == (32, len(FEATURES))
    assert 1 <= int(sample.inputs["length"]) <= 32 and sample.inputs["device"].shape == (10,)
    long = frame["n_events"] > 32
    assert (ds.truncated > 0).tolist() == long.tolist()
    assert (ds.truncated[long.to_numpy()] == frame.loc[long, "n_events"] - 32).all()
    extra = frame.iloc[:1].assign(sample_id="ghost")
    with pytest.raises(ValueError, match="session 'ghost' has no events"):
        SessionDataset(pd.concat([frame, extra]), sessions_root, {}, "eval", SPECIES, device=DEVICE)
    with pytest.raises(ValueError, match=r"device column\(s\) \['wheel'\]"):
        SessionDataset(frame, sessions_root, {}, "eval", SPECIES, device=["wheel"])


def test_gru_streaming_step_equals_the_whole_session_score_of_every_prefix() -> None:
    torch.manual_seed(0)
    net = SessionClassifier(len(FEATURES), 10, encoder="gru").eval()
    events = torch.randn(2, 12, len(FEATURES))
    device = torch.rand(2, 10) * 5
    state = net.initial_state(2)
    with torch.no_grad():
        for k in range(12):
            logit, *rest = net.step(events[:, k], state["state"], state["total"], state["peak"],
                                    state["count"], device)  # fmt: skip
            state = dict(zip(["state", "total", "peak", "count"], rest, strict=True))
            whole = net(events, torch.tensor([k + 1, k + 1]), device)
            torch.testing.assert_close(logit, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_padding_never_reaches_the_score(encoder) -> None:
    torch.manual_seed(0)
    net = SessionClassifier(len(FEATURES), 10, encoder=encoder, max_events=40).eval()
    events = torch.randn(3, 20, len(FEATURES))
    length = torch.tensor([20, 7, 1])
    padded = torch.cat([events, torch.randn(3, 20, len(FEATURES)) * 100], dim=1)
    for k, n in enumerate(length):
        events[k, n:] = 0
    with torch.no_grad():
        short = net(events, length, torch.zeros(3, 10))
        long = net(padded, length, torch.zeros(3, 10))
    torch.testing.assert_close(short, long, rtol=0, atol=1e-5)


def test_handcrafted_baseline_separates_the_tiny_corpus(sessions_root) -> None:
    manifest = Manifest.load(sessions_root / "manifest.parquet")
    train = SessionDataset(
        manifest.split("train"), sessions_root, {}, "eval", SPECIES, device=DEVICE
    )
    test = SessionDataset(manifest.split("test"), sessions_root, {}, "eval", SPECIES, device=DEVICE)
    scores = (
        HandcraftedSession(seed=0)
        .fit(train.features, train.devices, train.labels)
        .score(test.features, test.devices)
    )
    from idv.metrics.detection import auc

    assert scores.shape == (len(test),) and auc(scores, test.labels) > 0.7


# -------------------------------------------------------------------------------- bundle


@pytest.fixture(scope="module")
def behavior_bundle(tiny_root: Path, tmp_path_factory):
    """debug=fast behaviour training on the tiny corpus, evaluated, calibrated (val pooled
    into calib, a loose target), exported with its streaming step."""
    made = fast_bundle(
        tiny_root, tmp_path_factory.mktemp("behavior"), "behavior",
        ["targets=[0.6]", "min_subjects=2", "bootstrap.n_resamples=50"],
        ["parity.min_samples=64", "parity.batch_size=20", "parity.stream_sessions=6"],
        pool_val=True,
    )  # fmt: skip
    events = pd.read_parquet(tiny_root / "data/sessions/tiny/events.parquet")
    manifest = pd.read_parquet(tiny_root / "data/sessions/tiny/manifest.parquet")
    table = pd.read_parquet(made["evaluate"] / "tables/scores.parquet")
    return {"dir": made["dir"], "events": events, "manifest": manifest, "scores": table}


def _session_of(bundle_fixture, sample_id: str) -> tuple[dict, dict]:
    rows = bundle_fixture["events"]
    rows = rows[rows["sample_id"] == sample_id]
    row = bundle_fixture["manifest"].set_index("sample_id").loc[sample_id]
    events = {c: rows[c].to_numpy() for c in ("t", "x", "y")}
    events["type"] = rows["type"].astype(str).to_numpy()
    return events, {c: float(row[c]) for c in DEVICE}


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_bundle_scores_sessions_as_evaluation_did_and_streams_to_the_same_score(
    behavior_bundle, backend
) -> None:
    from idv.serving import load_bundle

    bundle = load_bundle(behavior_bundle["dir"], backend=backend)
    assert bundle.preprocess["input_order"] == ["events", "length", "device"]
    table = behavior_bundle["scores"].set_index("sample_id")
    ids = [i for i in behavior_bundle["manifest"]["sample_id"] if i in table.index][:6]
    pairs = [_session_of(behavior_bundle, i) for i in ids]
    scores = bundle.score({"events": [p[0] for p in pairs], "device": [p[1] for p in pairs]})
    np.testing.assert_allclose(scores, table.loc[ids, "score"].to_numpy(), atol=1e-5)
    events, device = pairs[0]
    stream = bundle.stream(device)
    assert math.isnan(stream.score)
    n = min(len(events["t"]), 256)
    for k in range(n):
        stream.update(events["t"][k], events["x"][k], events["y"][k], events["type"][k])
    assert stream.score == pytest.approx(float(scores[0]), abs=1e-5)
    assert bundle.decide(scores).tolist()[0] in ("accept", "review", "reject")


def test_bundle_refuses_bad_sessions_by_event_and_counts_truncation(
    behavior_bundle, caplog
) -> None:
    from idv.serving import load_bundle

    bundle = load_bundle(behavior_bundle["dir"], backend="onnxruntime")
    events, device = _session_of(behavior_bundle, behavior_bundle["manifest"]["sample_id"][0])
    broken = {**events, "t": events["t"][::-1].copy()}
    with pytest.raises(EventError, match="session 0: time goes backwards at event 1"):
        bundle.score({"events": [broken], "device": [device]})
    with pytest.raises(EventError, match="device 'webdriver'"):
        bundle.score({"events": [events], "device": [{**device, "webdriver": float("nan")}]})
    stream = bundle.stream(device)
    stream.update(10.0, 1.0, 1.0, "move")
    with pytest.raises(EventError, match="stream event 1: time goes backwards"):
        stream.update(5.0, 1.0, 1.0, "move")
    with pytest.raises(EventError, match="stream event 1: t, x, y"):
        stream.update(11.0, float("nan"), 1.0, "move")
    long = {c: np.concatenate([v] * (300 // len(v) + 1)) for c, v in events.items()}
    long["t"] = np.arange(len(long["x"]), dtype=float) * 10
    with caplog.at_level("WARNING"):
        bundle.score({"events": [long], "device": [device]})
    assert "1 of 1 sessions longer than max_events=256" in caplog.text
    stream = bundle.stream(device)
    for k in range(len(long["t"])):
        stream.update(long["t"][k], long["x"][k], long["y"][k], long["type"][k])
    assert stream.events == 256 and stream.truncated == len(long["t"]) - 256


# ----------------------------------------------------------------------- Balabit importer


def _write_session(file: Path, rows: list[tuple]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    lines = ["record timestamp,client timestamp,button,state,x,y"]
    lines += [",".join(str(v) for v in r) for r in rows]
    file.write_text("\n".join(lines) + "\n")


def _balabit(root: Path, users: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for u in range(users):
        for part, count in (("training_files", 2), ("test_files", 2)):
            for s in range(count):
                t = np.cumsum(rng.uniform(0.005, 0.05, 40))
                rows = [
                    (
                        f"{t[k] + 1:.3f}",
                        f"{t[k]:.3f}",
                        "NoButton",
                        "Move",
                        int(rng.integers(0, 1000)),
                        int(rng.integers(0, 700)),
                    )
                    for k in range(40)
                ]
                rows[20] = (rows[20][0], rows[20][1], "Left", "Pressed", *rows[20][4:])
                rows[21] = (rows[21][0], rows[21][1], "Left", "Released", *rows[21][4:])
                _write_session(root / part / f"user{u}" / f"session_{part[:2]}{u}{s}", rows)
    labels = [f"session_te{u}{s},{int(s == 1)}" for u in range(users) for s in range(2)]
    (root / "public_labels.csv").write_text("filename,is_illegal\n" + "\n".join(labels[:-1]) + "\n")
    return root


FRACTIONS = {"train": 0.5, "val": 0.0, "calib": 0.25, "test": 0.25}


def test_balabit_import_makes_an_impostor_vs_owner_session_corpus(tmp_path) -> None:
    src = _balabit(tmp_path / "balabit")
    frame = import_mouse_dynamics(src, tmp_path / "out", seed=0, fractions=FRACTIONS)
    manifest = Manifest.load(tmp_path / "out" / "manifest.parquet", labels=[0, 1])
    assert len(frame) == 6 * 4 - 1  # the unlabelled test session is skipped (and logged)
    assert set(manifest.frame["attack_type"]) == {"bona_fide", "impostor"}
    assert (manifest.frame["label_meaning"] == "impostor_vs_owner").all()
    assert frame.groupby("subject_id")["split"].nunique().max() == 1
    events = pd.read_parquet(tmp_path / "out" / "events.parquet")
    first = events[events["sample_id"] == frame["sample_id"].iloc[0]]
    assert first["t"].iloc[0] == 0.0 and set(first["type"].astype(str)) == {"move", "down", "up"}
    ds = SessionDataset(manifest.frame, tmp_path / "out", {}, "eval",
                        ["bona_fide", "impostor"], device=DEVICE)  # fmt: skip
    assert len(ds) == len(frame)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("1", "0.5", "NoButton", "Move", "1", "1"), "time goes backwards at event 5"),
        (("1", "2.0", "NoButton", "Hover", "1", "1"), "row 6: state 'Hover'"),
        (("1", "2.0", "NoButton", "Move", "abc", "1"), "row 6: x 'abc' is not a number"),
    ],
)
def test_balabit_bad_rows_are_named_and_nothing_is_written(tmp_path, row, message) -> None:
    src = _balabit(tmp_path / "balabit", users=2)
    bad = src / "training_files" / "user0" / "session_bad"
    rows = [(str(k), f"{1 + k * 0.01:.2f}", "NoButton", "Move", "5", "5") for k in range(5)]
    _write_session(bad, [*rows, row])
    with pytest.raises(MouseDynamicsError if "row" in message else EventError, match=message) as e:
        import_mouse_dynamics(src, tmp_path / "out", seed=0, fractions=FRACTIONS)
    assert "session_bad" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_torchscript_takes_its_inputs_in_its_own_order_whatever_the_bundle_lists(
    behavior_bundle,
) -> None:
    """preprocess.json's inputs are written with sorted keys (device, events, length): a
    bundle without `input_order` (liveness: challenge, frames) must still feed TorchScript in
    the module's own order."""
    from idv.serving.backends import load_backend

    backend = load_backend("torchscript", behavior_bundle["dir"] / "model.ts",
                           ["device", "events", "length"])  # fmt: skip
    assert backend.input_names == ["events", "length", "device"]
    out = backend({"device": np.ones((2, 10), np.float32) * 100,
                   "events": np.zeros((2, 5, len(FEATURES)), np.float32),
                   "length": np.array([5, 3])})  # fmt: skip
    assert out["score"].shape == (2,)


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("streaming", "state", "hidden"), 0, "streaming.state.hidden"),
        (("streaming", "events_input"), "device", "streaming.events_input"),
        (("inputs", "events", "max_events"), -1, "inputs.events.max_events"),
        # a bundle of another feature set (before frame_offset / frame_mean): never misread
        (
            ("inputs", "events", "features"),
            [f for f in FEATURES if not f.startswith("frame")],
            "inputs.events.features",
        ),
        (("inputs", "length", "of"), "device", "inputs.length.of"),
        (("input_order",), ["events"], "input_order"),
    ],
)
def test_a_corrupt_session_preprocess_json_is_refused_by_key(
    behavior_bundle, tmp_path, path, value, key
) -> None:
    import json
    import shutil

    from idv.serving import load_bundle
    from idv.serving.bundle import BundleError, write_checksums

    copy = tmp_path / "bundle"
    shutil.copytree(behavior_bundle["dir"], copy)
    spec = json.loads((copy / "preprocess.json").read_text())
    node = spec
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    (copy / "preprocess.json").write_text(json.dumps(spec))
    write_checksums(copy)
    with pytest.raises(BundleError, match=key.replace(".", r"\.")):
        load_bundle(copy, backend="onnxruntime")
