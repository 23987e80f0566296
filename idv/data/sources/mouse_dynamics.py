"""Import a mouse-dynamics corpus in the Balabit layout as a session corpus.

Layout (the Balabit Mouse Dynamics Challenge): `src/training_files/<user>/<session>` and
`src/test_files/<user>/<session>`, each a CSV with the header `record timestamp,client
timestamp,button,state,x,y`, and optionally `src/public_labels.csv` (`filename,is_illegal`)
labelling test sessions.

**Its labels are owner-vs-impostor, not bot-vs-human**: a session is label 1 (species
`impostor`) when it was not made by the user whose folder holds it (`is_illegal = 1`); every
training session and every test session labelled 0 is its owner's (`bona_fide`). Test
sessions without a label are skipped and counted. The manifest says so in its
`label_meaning` column, and the behaviour task reports such a corpus as a protocol of its own
(`impostor` is no bot species: conf/task/behavior.yaml's species do not include it, so a
run on it names its own species list), never pooled with the synthetic bot figures.

Events: `t` = client timestamp (s) x 1000 from the session's first record; state `Move` and
`Drag` are moves, `Pressed` a down, `Released` an up, `Up` / `Down` (scroll wheel) moves at
the pointer. The corpus has no device record: `screen_w` / `screen_h` are the session's
largest coordinates + 1 (a lower bound), the other device columns 0, `device_record` =
`absent`. Splits are by user (subject-disjoint). Bad input (a missing column, an unknown
state, a coordinate that is not a number, time going backwards, an empty session) is an
error naming the file and the row; nothing is written unless every session imports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from idv.data.events_table import EVENTS_NAME, write_events_table
from idv.data.manifest import BONA_FIDE
from idv.data.synth.writer import CorpusDir, finish_manifest
from idv.errors import IdvError
from idv.sessions.device import DEVICE_COLUMNS
from idv.sessions.events import check_events

log = logging.getLogger(__name__)
COLUMNS = ("record timestamp", "client timestamp", "button", "state", "x", "y")
STATES = {"Move": "move", "Drag": "move", "Pressed": "down", "Released": "up",
          "Up": "move", "Down": "move"}  # fmt: skip
IMPOSTOR = "impostor"
LABEL_MEANING = "impostor_vs_owner"


class MouseDynamicsError(IdvError, ValueError):
    """A session file that cannot be imported; the message names the file and the row."""


def read_session(file: Path) -> dict[str, np.ndarray]:
    """One session file as checked event columns (t ms, x, y, type names)."""
    try:
        frame = pd.read_csv(file, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise MouseDynamicsError(f"{file}: not a readable session CSV ({err})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise MouseDynamicsError(f"{file}: missing column(s) {missing} (header {list(frame)})")
    if frame.empty:
        raise MouseDynamicsError(f"{file}: an empty session (no records)")
    states = frame["state"].astype(str).str.strip()
    unknown = np.flatnonzero(~states.isin(list(STATES)))
    if unknown.size:
        row = int(unknown[0])
        raise MouseDynamicsError(
            f"{file}: row {row + 1}: state {states.iat[row]!r} is not one of {sorted(STATES)}"
        )
    values = {}
    for column in ("client timestamp", "x", "y"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy())
        if bad.size:
            row = int(bad[0])
            raise MouseDynamicsError(
                f"{file}: row {row + 1}: {column} {frame[column].iat[row]!r} is not a number"
            )
        values[column] = numbers.to_numpy(dtype=np.float64)
    t = (values["client timestamp"] - values["client timestamp"][0]) * 1000.0
    events = {"t": t, "x": values["x"], "y": values["y"], "type": states.map(STATES).to_numpy()}
    check_events(events, f"{file} (event k = row k + 1)")
    return events


def _labels(src: Path) -> dict[str, int]:
    file = src / "public_labels.csv"
    if not file.is_file():
        return {}
    table = pd.read_csv(file)
    if not {"filename", "is_illegal"} <= set(table.columns):
        raise MouseDynamicsError(f"{file}: needs columns filename, is_illegal ({list(table)})")
    return {str(f): int(v) for f, v in zip(table["filename"], table["is_illegal"], strict=True)}


def import_mouse_dynamics(
    src: str | Path, out: str | Path, *, seed: int, fractions: Mapping[str, float]
) -> pd.DataFrame:
    """Import the corpus under `src` into `out` (manifest + events.parquet, atomically)."""
    src = Path(src)
    labels = _labels(src)
    rows, events, unlabelled = [], [], 0
    for part in ("training_files", "test_files"):
        for user_dir in sorted(p for p in (src / part).glob("*") if p.is_dir()):
            for file in sorted(p for p in user_dir.iterdir() if p.is_file()):
                if part == "test_files" and file.name not in labels:
                    unlabelled += 1
                    continue
                illegal = labels.get(file.name, 0) if part == "test_files" else 0
                session = read_session(file)
                device = dict.fromkeys(DEVICE_COLUMNS, 0.0)
                device["screen_w"] = float(session["x"].max()) + 1
                device["screen_h"] = float(session["y"].max()) + 1
                rows.append({
                    "sample_id": f"{user_dir.name}_{file.name}", "label": illegal,
                    "subject_id": user_dir.name, "attack_type": IMPOSTOR if illegal else BONA_FIDE,
                    "source_part": part, "label_meaning": LABEL_MEANING,
                    "device_record": "absent", "n_events": len(session["t"]), **device,
                })  # fmt: skip
                events.append(session)
    if not rows:
        raise MouseDynamicsError(f"{src}: no session files under training_files/ or test_files/")
    if unlabelled:
        log.warning("%s: %d test sessions have no label in public_labels.csv: skipped", src,
                    unlabelled)  # fmt: skip
    with CorpusDir(out) as tmp:
        frame = finish_manifest(rows, tmp, seed=seed, fractions=fractions, stratify=("label",))
        write_events_table(frame["sample_id"].tolist(), events, tmp / EVENTS_NAME)
    return frame
