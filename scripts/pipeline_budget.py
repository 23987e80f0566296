"""Each stage of the default pipeline against its time budget (conf/pipeline_budget.yaml).

    python scripts/pipeline_budget.py --run [-- DVC REPRO ARGS]   # run `dvc repro`, time it
    python scripts/pipeline_budget.py [--timings FILE]            # judge a recorded run
    python scripts/pipeline_budget.py --markdown                  # the budget table (docs)

`--run` runs `dvc repro` itself, passing its output through, and times each stage from the
moment DVC announces it to the next announcement (so a stage's time includes DVC hashing and
caching its outputs); it writes the figures to outputs/pipeline_timings.json (atomically). A
stage DVC skipped counts 0 s and is marked `skipped`: time a clean clone (or `--force`) for a
budget. The verdict adds the tasks still to come at their planned budget to the measured
tasks and compares the whole with `total`. Exit status: dvc's on failure; with `--check`, 1
when a stage or the whole is over budget.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUDGET = ROOT / "conf/pipeline_budget.yaml"
TIMINGS = ROOT / "outputs/pipeline_timings.json"
RUNNING = re.compile(r"^Running stage '([^']+)'")
SKIPPED = re.compile(r"^Stage '([^']+)' (?:didn't change|is cached)")


def load_budget(path: Path = BUDGET) -> dict[str, Any]:
    """The budget file, checked: every task has every stage, and the budgets fit the total."""
    budget = yaml.safe_load(path.read_text())
    stages = budget["stages"]
    rows = {
        **budget["tasks"],
        **{t: budget["planned"]["budget"] for t in budget["planned"]["tasks"]},
    }
    for task, row in rows.items():
        if sorted(row) != sorted(stages):
            raise ValueError(f"{path}: task {task!r} budgets {sorted(row)}, expected {stages}")
    planned = sum(sum(row.values()) for row in rows.values())
    if planned > budget["total"]:
        raise ValueError(
            f"{path}: the stage budgets sum to {planned} s > total {budget['total']} s"
        )
    return budget


def markdown(budget: Mapping[str, Any]) -> str:
    """The budget table of docs/architecture.md."""
    stages = budget["stages"]
    head = ["task", *stages, "whole"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, values: Mapping[str, float], times: int = 1) -> None:
        cells = [str(values[s]) for s in stages] + [str(sum(values.values()) * times)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    for task, values in budget["tasks"].items():
        row(f"`{task}`", values)
    planned = budget["planned"]
    if planned["tasks"]:
        row(f"each to come ({', '.join(planned['tasks'])}), x{len(planned['tasks'])}",
            planned["budget"], len(planned["tasks"]))  # fmt: skip
    lines.append(f"| **all seven** | | | | | | **{budget['total']}** |")
    return "\n".join(lines)


def run(args: Sequence[str], out: Path = TIMINGS) -> tuple[int, dict[str, Any]]:
    """`dvc repro ARGS`, its output passed through, timed stage by stage."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    stages: dict[str, dict[str, Any]] = {}
    current: str | None = None
    mark = start

    def close(now: float) -> None:
        if current is not None:
            stages[current]["seconds"] = round(now - mark, 1)

    with subprocess.Popen(
        ["dvc", "repro", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, env=env,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            now = time.monotonic()
            if found := RUNNING.match(line):
                close(now)
                current, mark = found.group(1), now
                stages[current] = {"status": "ran", "seconds": None}
            elif found := SKIPPED.match(line):
                close(now)
                current, mark = None, now
                stages[found.group(1)] = {"status": "skipped", "seconds": 0.0}
        code = proc.wait()
    close(time.monotonic())
    timings = {
        "command": ["dvc", "repro", *args],
        "returncode": code,
        "wall_seconds": round(time.monotonic() - start, 1),
        "cpus": os.cpu_count(),
        "stages": stages,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(timings, indent=2) + "\n")
    tmp.replace(out)
    return code, timings


STAGE_VARIANT = re.compile(r"^([a-z]+)_\w+@(.+)$")


def budget_stage(name: str, stages: Sequence[str]) -> str:
    """A stage's budget line: `prepare_from_bundle@rings` is rings' prepare (a variant of a
    shared stage, for a task the shared `foreach` cannot express)."""
    found = STAGE_VARIANT.match(name)
    return f"{found[1]}@{found[2]}" if found and found[1] in stages else name


def verdict(budget: Mapping[str, Any], timings: Mapping[str, Any]) -> tuple[str, bool]:
    """The table of measured stages against their budgets, and whether all fit."""
    stages = {budget_stage(k, budget["stages"]): v for k, v in timings["stages"].items()}
    fits = True
    lines = [f"{'stage':24s} {'budget s':>9s} {'measured s':>11s}"]
    whole = 0.0
    for task, row in budget["tasks"].items():
        spent = 0.0
        for stage in budget["stages"]:
            name = f"{stage}@{task}"
            got = stages.get(name)
            if got is None:
                lines.append(f"{name:24s} {row[stage]:9d} {'not run':>11s}")
                continue
            seconds = got["seconds"] or 0.0
            spent += seconds
            over = seconds > row[stage]
            fits &= not over
            note = " OVER" if over else (" skipped" if got["status"] == "skipped" else "")
            lines.append(f"{name:24s} {row[stage]:9d} {seconds:11.1f}{note}")
        lines.append(f"{task + ' (whole)':24s} {sum(row.values()):9d} {spent:11.1f}")
        whole += spent
    unknown = sorted(set(stages) - {f"{s}@{t}" for t in budget["tasks"] for s in budget["stages"]})
    for name in unknown:  # a task of params.yaml without a budget line is over by definition
        fits = False
        lines.append(f"{name:24s} {'none':>9s} {stages[name]['seconds'] or 0.0:11.1f} NO BUDGET")
        whole += stages[name]["seconds"] or 0.0
    planned = budget["planned"]
    to_come = sum(planned["budget"].values()) * len(planned["tasks"])
    total = whole + to_come
    fits &= total <= budget["total"]
    lines += [
        f"{'measured tasks':24s} {'':9s} {whole:11.1f}",
        f"{'to come (budgeted)':24s} {to_come:9d}   ({len(planned['tasks'])} tasks)",
        f"{'all seven':24s} {budget['total']:9d} {total:11.1f}"
        f"{'' if total <= budget['total'] else ' OVER'}",
        f"(dvc repro wall {timings['wall_seconds']} s on {timings['cpus']} CPUs)",
    ]
    return "\n".join(lines), fits


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run `dvc repro` and time it")
    parser.add_argument("--timings", type=Path, default=TIMINGS, help="a recorded run")
    parser.add_argument("--budget", type=Path, default=BUDGET)
    parser.add_argument("--check", action="store_true", help="exit 1 when over budget")
    parser.add_argument("--markdown", action="store_true", help="print the budget table")
    parser.add_argument("dvc_args", nargs="*", help="after --: arguments of dvc repro")
    args = parser.parse_args(argv)
    budget = load_budget(args.budget)
    if args.markdown:
        print(markdown(budget))
        return 0
    if args.run:
        code, timings = run(args.dvc_args, args.timings)
        if code:
            return code
    else:
        if not args.timings.is_file():
            parser.error(f"{args.timings}: no recorded run (run with --run first)")
        timings = json.loads(args.timings.read_text())
    table, fits = verdict(budget, timings)
    print(f"\npipeline time against conf/pipeline_budget.yaml:\n{table}")
    return 0 if fits or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
