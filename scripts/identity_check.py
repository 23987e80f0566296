"""Identity check of a refactor: the same pipeline before and after must give the same results.

    python scripts/identity_check.py --old <repo before> --new <repo after>

Both are repository checkouts on which `dvc repro` has run (same profile). For every task of
the new checkout's params.yaml it checks, and prints one line per check:

1. the new score tables (`outputs/<task>/evaluate/tables/*.parquet`) equal the old ones: the
   same rows (matched on their ids) and columns, scores within `--tolerance` (1e-6), every
   other column identical;
2. the OLD tables judged by the NEW code (`idv-evaluate scores=... [search=...]` and
   `idv-calibrate scores=...`, in a temporary directory, with this checkout's tools) give
   byte-identical `metrics.json` and `segments.csv`, and a `thresholds.json` identical but for
   its `inputs` block (paths and hashes of the files it was computed from).

Exit status 1 when any check fails. The profile and review share are read from the old
checkout's params.yaml.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

KEYS = {  # score table file -> the columns that identify a row
    "scores.parquet": (
        ["split", "comparison_id"],  # comparison tables
        ["split", "sample_id"],  # detection tables
    ),
    "search.parquet": (["split", "search_id", "rank"],),
}


def _key(table: pd.DataFrame, name: str) -> list[str]:
    for key in KEYS[name]:
        if all(c in table.columns for c in key):
            return key
    raise ValueError(f"{name}: none of the id columns {KEYS[name]} present")


def compare_tables(old: Path, new: Path, tolerance: float) -> str | None:
    """None when equal (scores within tolerance), else what differs."""
    a, b = pd.read_parquet(old), pd.read_parquet(new)
    if set(a.columns) != set(b.columns):
        only_old, only_new = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        return f"columns differ: only old {only_old}, only new {only_new}"
    key = _key(a, old.name)
    a = a.sort_values(key, kind="stable", na_position="first").reset_index(drop=True)
    b = b[a.columns].sort_values(key, kind="stable", na_position="first").reset_index(drop=True)
    if len(a) != len(b) or not a[key].equals(b[key]):
        return f"rows differ ({len(a)} old, {len(b)} new)"
    sa, sb = a["score"].to_numpy(np.float64), b["score"].to_numpy(np.float64)
    both_nan = np.isnan(sa) & np.isnan(sb)
    diff = np.where(both_nan, 0.0, np.abs(sa - sb))
    if not (diff <= tolerance).all():
        return f"max |score diff| {np.nanmax(diff):.3g} > {tolerance:g}"
    for column in (c for c in a.columns if c != "score"):
        if not a[column].astype(str).equals(b[column].astype(str)):
            return f"column {column!r} differs"
    return None


def run(tool: str, *args: str) -> None:
    bin_dir = Path(sys.executable).parent
    done = subprocess.run([str(bin_dir / tool), *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def rejudge(old: Path, task: str, profile: str, review_share: float, out: Path) -> list[str]:
    """Judge the old tables with this checkout's code; compare with the old outputs."""
    tables = old / "outputs" / task / "evaluate" / "tables"
    search = tables / "search.parquet"
    evaluate = out / "evaluate"
    extra = [f"search={search}"] if search.is_file() else []
    run(
        "idv-evaluate",
        f"task={task}",
        f"profile={profile}",
        f"scores={tables / 'scores.parquet'}",
        *extra,
        f"hydra.run.dir={evaluate}",
    )
    calibrate = out / "calibrate"
    run(
        "idv-calibrate",
        f"task={task}",
        f"profile={profile}",
        f"review_share={review_share}",
        f"scores={tables / 'scores.parquet'}",
        *extra,
        f"ckpt_path={old / 'outputs' / task / 'train/checkpoints/best.ckpt'}",
        f"hydra.run.dir={calibrate}",
    )
    problems = []
    for name in ("metrics.json", "segments.csv"):
        before = (old / "outputs" / task / "evaluate" / name).read_bytes()
        if (evaluate / name).read_bytes() != before:
            problems.append(f"{name} differs")
    before = json.loads((old / "outputs" / task / "calibrate/thresholds.json").read_text())
    after = json.loads((calibrate / "thresholds.json").read_text())
    before.pop("inputs", None)
    after.pop("inputs", None)
    if before != after:
        problems.append("thresholds.json differs (inputs aside)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout before the change")
    parser.add_argument("--new", type=Path, required=True, help="checkout after the change")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args()
    params = yaml.safe_load((args.old / "params.yaml").read_text())
    tasks = yaml.safe_load((args.new / "params.yaml").read_text())["tasks"]
    profile, share = params["profile"], params["calibrate"]["review_share"]
    failed = 0
    for task in tasks:
        for name in ("scores.parquet", "search.parquet"):
            old = args.old / "outputs" / task / "evaluate/tables" / name
            if not old.is_file():
                continue
            problem = compare_tables(
                old, args.new / "outputs" / task / "evaluate/tables" / name, args.tolerance
            )
            failed += problem is not None
            verdict = "identical" if problem is None else f"DIFFERS: {problem}"
            print(f"{task:12s} tables/{name:16s} {verdict}")
        with tempfile.TemporaryDirectory() as tmp:
            problems = rejudge(args.old, task, profile, share, Path(tmp))
        failed += bool(problems)
        verdict = "identical" if not problems else "DIFFERS: " + "; ".join(problems)
        print(f"{task:12s} old tables judged anew: metrics, segments, thresholds {verdict}")
    print(f"profile {profile}: {'all identical' if not failed else f'{failed} check(s) failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
