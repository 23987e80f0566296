"""Failures to acquire of a face bundle on a generated photo set, as a table.

    .venv/bin/python scripts/face_acquisition_figures.py outputs/face_match/bundle

Writes the labelled set of scripts/face_photos.py (real faces in scenes, rotated faces,
no-face photos and noise, several faces side by side, tiny images and tiny faces, corrupt
files) into a temporary directory, runs `MatchingBundle.acquire` on every file (ONNX Runtime
by default: decode, detect, choose, align) and prints, per expected outcome, the outcomes it
got, then each miss with its reason. `--json` also writes every image's report.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from face_photos import failure_set  # noqa: E402

import idv  # noqa: F401,E402  (offline switches first)
from idv.faces.acquisition import FAILURES  # noqa: E402
from idv.serving import load_bundle  # noqa: E402

OUTCOMES = ("acquired", *FAILURES)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="a face_match bundle (idv-export) with a detector")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the reports here")
    args = parser.parse_args(argv)

    bundle = load_bundle(args.bundle, backend=args.backend, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        photos = failure_set(Path(tmp), args.seed)
        reports = {
            expected: [a.report() for a in bundle.acquire(files)]
            for expected, files in photos.items()
        }
    for rows in reports.values():
        for row in rows:
            row["source"] = Path(row["source"]).name
    expect = {"one_face": "acquired"}
    width = max(map(len, OUTCOMES)) + 2
    print(f"{args.bundle} ({args.backend}): {sum(map(len, reports.values()))} photos")
    print(f"{'expected':<15}{'n':>4}" + "".join(f"{o:>{width}}" for o in OUTCOMES))
    table, misses = {}, []
    for expected, rows in reports.items():
        got = Counter(row["failure"] or "acquired" for row in rows)
        table[expected] = {o: got.get(o, 0) for o in OUTCOMES}
        print(f"{expected:<15}{len(rows):>4}" + "".join(f"{got.get(o, 0):>{width}}"
                                                         for o in OUTCOMES))  # fmt: skip
        want = expect.get(expected, expected)
        misses += [(expected, r) for r in rows if (r["failure"] or "acquired") != want]
    for expected, row in misses:
        faces = ", ".join(f"p {f['probability']:.3f} side {f['side']:.0f}" for f in row["faces"])
        found = f"; faces: {faces}" if faces else ""
        outcome = row["failure"] or "acquired"
        print(f"  expected {expected}: {row['source']} -> {outcome} ({row['detail']}{found})")
    result = {"bundle": str(args.bundle), "backend": args.backend, "table": table,
              "reports": reports}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
