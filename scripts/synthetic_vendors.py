"""Two synthetic face-matching vendors, made from our own idv-evaluate tables, to try idv-benchmark.

    python scripts/synthetic_vendors.py \\
        --scores outputs/face_match/evaluate/tables/scores.parquet \\
        --search outputs/face_match/evaluate/tables/search.parquet \\
        --out outputs/face_match/vendors

For the split (default test) it writes, in the vendor formats idv-benchmark reads:

- `acme_1to1.csv`, `globex_1to1.csv`: 1:1 comparisons of one protocol (default portrait_selfie,
  the task's calibration protocol). Acme is better than ours: every similarity is pulled a
  share of the way towards the truth (+1 genuine, -1 impostor), plus a little noise; Globex is
  worse: Gaussian noise is added. Acme names comparisons by `comparison_id`, Globex by the pair
  `sample_id_a`, `sample_id_b` (half of them swapped: the order does not matter). Both give a
  `decision` at their own threshold (the 99.9th percentile of their impostor scores).
- `acme_1toN.csv`, `globex_1toN.csv`: 1:N searches, one row per returned candidate. Each
  keeps our candidate list of every probe (the same enrolment list) and re-ranks it after the
  same perturbations (pulled towards the mate / away from the others, or noise). Globex's
  decisions are 1 / 0, Acme's match / non_match: both spellings are accepted.

Each vendor leaves a few items out (failures to acquire by omission) and declares a few more
as acquired=false; what we could not acquire, they cannot either. Latency and cost per item
are made up. Seeded: the same arguments write the same files. Needs pandas and numpy only.
It prints the files and the idv-benchmark command lines that judge them against ours.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

VENDORS = {  # name -> (pull towards the truth, noise sigma, latency median ms, cost per item)
    "acme": (0.15, 0.02, 120.0, 0.002),
    "globex": (0.0, 0.15, 300.0, 0.001),
}


def perturb(
    scores: np.ndarray, truth: np.ndarray, pull: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Similarities moved `pull` of the way to +1 (truth) / -1 (not), then noised. Not clipped
    to [-1, 1]: clipping would tie the noisiest scores at the edges (a vendor's scores need
    not be cosines; idv-benchmark checks a range only where one is declared)."""
    target = np.where(truth, 1.0, -1.0)
    return scores + pull * (target - scores) + rng.normal(0.0, sigma, len(scores))


def _unanswered(n: int, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(left out, declared acquired=false): disjoint masks of about `share` and `share / 2`."""
    draw = rng.random(n)
    return draw < share, (draw >= share) & (draw < 1.5 * share)


def _split_rows(table: pd.DataFrame, split: str, what: str) -> pd.DataFrame:
    if "split" in table.columns:
        table = table[table["split"] == split]
    if table.empty:
        raise SystemExit(f"{what}: no rows of split {split!r}")
    return table.reset_index(drop=True)


def _acquired(table: pd.DataFrame) -> np.ndarray:
    if "acquired" not in table.columns:
        return np.ones(len(table), dtype=bool)
    return table["acquired"].astype(bool).to_numpy()


def comparisons(
    ours: pd.DataFrame, name: str, rng: np.random.Generator, unanswered: float
) -> pd.DataFrame:
    """One vendor's 1:1 file from our comparison rows of one split and protocol."""
    pull, sigma, latency, cost = VENDORS[name]
    genuine = ours["genuine"].astype(bool).to_numpy()
    ok = _acquired(ours)
    base = np.where(ok, ours["score"].to_numpy(np.float64), 0.0)
    score = perturb(base, genuine, pull, sigma, rng)
    left_out, declared = _unanswered(len(ours), unanswered, rng)
    declared |= ~ok  # what we could not acquire, they cannot either
    answered = ~declared
    impostors = score[~genuine & answered]
    threshold = float(np.quantile(impostors, 0.999)) if len(impostors) else 0.5
    if name == "acme":
        frame = pd.DataFrame({"comparison_id": ours["comparison_id"], "provider": name})
    else:  # by the pair, in either order
        swap = rng.random(len(ours)) < 0.5
        a, b = ours["sample_id_a"].to_numpy(), ours["sample_id_b"].to_numpy()
        frame = pd.DataFrame(
            {"sample_id_a": np.where(swap, b, a), "sample_id_b": np.where(swap, a, b)}
        ).assign(provider=name)
    frame["score"] = np.where(answered, np.round(score, 6), np.nan)
    match = score >= threshold
    if name == "acme":
        frame["decision"] = np.where(answered, np.where(match, "match", "non_match"), None)
    else:  # 1 / 0 (1 = match), the other accepted spelling
        frame["decision"] = np.where(answered, match.astype(int), None)
    frame["acquired"] = answered
    frame["latency_ms"] = np.round(rng.lognormal(np.log(latency), 0.4, len(ours)), 1)
    frame["cost"] = cost
    return frame[~left_out].reset_index(drop=True)


def searches(
    ours: pd.DataFrame, name: str, rng: np.random.Generator, unanswered: float
) -> pd.DataFrame:
    """One vendor's 1:N file from our search rows of one split: the same candidates per
    probe, re-ranked after perturbing their scores."""
    pull, sigma, latency, cost = VENDORS[name]
    ours = ours.reset_index(drop=True)
    key = "search_id" if "search_id" in ours.columns else "probe_sample_id"
    probes = list(dict.fromkeys(ours[key]))
    left_out, declared = _unanswered(len(probes), unanswered, rng)
    latencies = np.round(rng.lognormal(np.log(latency * 3), 0.4, len(probes)), 1)
    rows = []
    groups = ours.groupby(key, sort=False)
    for i, search in enumerate(probes):
        if left_out[i]:
            continue
        group = groups.get_group(search)
        probe = group["probe_sample_id"].iloc[0]
        base = {"probe_sample_id": probe, "provider": name}
        extra = {"latency_ms": latencies[i], "cost": cost * 5}
        ok = bool(_acquired(group)[0])
        listed = group[group["rank"].notna()] if ok else group.iloc[:0]
        if declared[i] or not ok or listed.empty:  # an empty candidate list stays empty
            empty = {"rank": None, "candidate_subject_id": None, "score": np.nan}
            rows.append({**base, **empty, "acquired": not (declared[i] or not ok), **extra})
            continue
        mate = (listed["candidate_subject_id"] == listed["probe_subject_id"]).to_numpy()
        score = perturb(listed["score"].to_numpy(np.float64), mate, pull, sigma, rng)
        order = np.argsort(-score, kind="stable")
        for rank, j in enumerate(order, start=1):
            rows.append(
                {
                    **base,
                    "rank": rank,
                    "candidate_subject_id": listed["candidate_subject_id"].iloc[j],
                    "score": round(float(score[j]), 6),
                    "acquired": True,
                    **extra,
                }
            )
    frame = pd.DataFrame(rows)
    frame["rank"] = frame["rank"].astype("Int64")
    return frame


def command(mode: str, manifest: str, files: list[Path], ours: str, split: str, protocol: str):
    args = ["idv-benchmark", "task=face_match", f"manifest={manifest}"]
    if mode == "search":
        args.append("mode=search")
    else:
        args.append(f"comparison_protocol={protocol}")
    if split != "test":
        args.append(f"split={split}")
    args += [
        f"vendor_files=[{','.join(str(f) for f in files)}]",
        f"ours={ours}",
        f"hydra.run.dir=outputs/face_match/benchmark/{mode}",
    ]
    return " ".join(shlex.quote(a) for a in args)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores", required=True, help="our comparison table (scores.parquet)")
    parser.add_argument("--search", required=True, help="our search table (search.parquet)")
    parser.add_argument("--out", default="outputs/face_match/vendors", help="where the files go")
    parser.add_argument("--split", default="test")
    parser.add_argument("--protocol", default="portrait_selfie", help="the 1:1 protocol")
    parser.add_argument("--manifest", default="data/faces/default/manifest.parquet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--unanswered",
        type=float,
        default=0.01,
        help="share of items left out (half as many more are declared acquired=false)",
    )
    args = parser.parse_args(argv)

    ours_1to1 = _split_rows(pd.read_parquet(args.scores), args.split, args.scores)
    if "protocol" in ours_1to1.columns:
        ours_1to1 = ours_1to1[ours_1to1["protocol"] == args.protocol].reset_index(drop=True)
        if ours_1to1.empty:
            raise SystemExit(f"{args.scores}: no comparisons of protocol {args.protocol!r}")
    ours_1ton = _split_rows(pd.read_parquet(args.search), args.split, args.search)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for k, name in enumerate(VENDORS):
        rng = np.random.default_rng([args.seed, k])
        for mode, frame in (
            ("1to1", comparisons(ours_1to1, name, rng, args.unanswered)),
            ("1toN", searches(ours_1ton, name, rng, args.unanswered)),
        ):
            path = out / f"{name}_{mode}.csv"
            frame.to_csv(path, index=False)
            written[f"{name}_{mode}"] = path
    print("Synthetic vendors (acme: better than ours, globex: worse) written:")
    for path in written.values():
        print(f"  {path}")
    print("\nJudge them against ours, 1:1 and 1:N:")
    files_1to1 = [written[f"{n}_1to1"] for n in VENDORS]
    files_1ton = [written[f"{n}_1toN"] for n in VENDORS]
    split, protocol = args.split, args.protocol
    print("  " + command("comparison", args.manifest, files_1to1, args.scores, split, protocol))
    print("  " + command("search", args.manifest, files_1ton, args.search, split, protocol))
    return written


if __name__ == "__main__":
    main(sys.argv[1:])
