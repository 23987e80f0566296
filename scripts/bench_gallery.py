"""1:N search benchmark: torch brute force vs FAISS flat / IVF / HNSW on structured embeddings.

    .venv/bin/python scripts/bench_gallery.py --sizes 100000 1000000 [--json out.json]

For each gallery size, side by side in one run: build time, queries per second (all queries in
one call after a short warm-up), memory (serialised faiss index, or the tensor's bytes for
torch) and recall against exact search (recall@1: share of queries whose top-1 id is the exact
top-1 id; recall@k: share of the exact top-k found in the top-k). FAISS rows go through
idv.serving.gallery.Gallery, the deployable code path (input checks and id mapping included).

Embeddings have structure, unlike isotropic random vectors (an ANN worst case): identity
centres are a low-rank Gaussian (--rank dimensions out of --dim) plus a small isotropic share,
L2-normalised; an enrolled image and its mated probe are the centre plus independent isotropic
noise, normalised. The noise is set so that the mean probe-mate cosine is about --genuine-cos
(1 / (1 + sigma^2)); the nearest non-mate cosine then follows from the rank and the gallery
size. Both are measured and printed. One enrolled image per identity; every probe is mated.

HNSW takes minutes to build at 1M on 2 cores (> 400 s), so it runs only at sizes up to
--skip-hnsw-above (default 100000); the output says where it was skipped. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch

from idv.serving.gallery import Gallery

WARMUP_QUERIES = 16
RECALL_GOAL = 0.99
SPEEDUP_GOAL = 10.0


@dataclass
class Data:
    """A gallery (one row per identity), mated probes and the row of each probe's mate."""

    gallery: np.ndarray
    ids: np.ndarray
    probes: np.ndarray
    mates: np.ndarray


@dataclass
class Row:
    size: int
    method: str
    params: str
    build_s: float
    qps: float
    nbytes: int
    recall1: float = float("nan")
    recallk: float = float("nan")
    mate_top1: float = float("nan")
    extra: dict = field(default_factory=dict)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise in place (float32) and return x."""
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(args: argparse.Namespace, size: int) -> Data:
    """Generate chunk by chunk into one preallocated float32 array to bound peak memory.

    Each chunk has its own seeded stream, so probes (built alongside their mates' chunk) and
    the gallery do not depend on the chunk size.
    """
    d, rank = args.dim, args.rank
    setup = np.random.default_rng([args.seed, size])
    basis = np.linalg.qr(setup.standard_normal((d, rank)))[0].T.astype(np.float32)  # (rank, d)
    mates = np.sort(setup.choice(size, size=args.queries, replace=False))
    sigma = np.float32(np.sqrt(1.0 / args.genuine_cos - 1.0))
    low, iso = np.float32(np.sqrt(1.0 - args.iso_share)), np.float32(np.sqrt(args.iso_share))
    gallery = np.empty((size, d), dtype=np.float32)
    probes = np.empty((args.queries, d), dtype=np.float32)

    def gaussian(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
        """Rows of expected squared norm 1."""
        return rng.standard_normal((n, dim), dtype=np.float32) / np.float32(np.sqrt(dim))

    for chunk, start in enumerate(range(0, size, args.chunk)):
        stop = min(size, start + args.chunk)
        rng = np.random.default_rng([args.seed, size, chunk])
        centres = low * (gaussian(rng, stop - start, rank) @ basis)
        centres += iso * gaussian(rng, stop - start, d)
        unit_rows(centres)
        gallery[start:stop] = centres + sigma * gaussian(rng, stop - start, d)
        unit_rows(gallery[start:stop])
        here = np.flatnonzero((mates >= start) & (mates < stop))
        probes[here] = centres[mates[here] - start] + sigma * gaussian(rng, len(here), d)
    unit_rows(probes)
    ids = np.array([f"id{i:07d}" for i in range(size)], dtype=object)
    return Data(gallery=gallery, ids=ids, probes=probes, mates=mates)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def torch_search(gallery: torch.Tensor, probes: np.ndarray, k: int, batch: int) -> np.ndarray:
    """Exact top-k rows by matmul + topk, batched over queries to bound the score matrix."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(probes), batch):
            q = torch.from_numpy(probes[start : start + batch])
            out.append(torch.topk(q @ gallery.T, k, dim=1).indices.numpy())
    return np.concatenate(out)


def query_speed(search: Callable[[np.ndarray], np.ndarray], probes: np.ndarray, repeats: int):
    """Rows found and queries per second (best of `repeats` full passes, after a warm-up)."""
    search(probes[:WARMUP_QUERIES])
    best, rows = float("inf"), None
    for _ in range(repeats):
        rows, seconds = timed(lambda: search(probes))
        best = min(best, seconds)
    return rows, len(probes) / best


def recall(rows: np.ndarray, exact: np.ndarray, ids: np.ndarray) -> tuple[float, float]:
    """recall@1 on ids (ties between equal vectors count as hits) and recall@k on rows."""
    top1 = float(np.mean(ids[np.maximum(rows[:, 0], 0)] == ids[exact[:, 0]]))
    found = [len(set(r[r >= 0]) & set(e)) for r, e in zip(rows, exact, strict=True)]
    return top1, float(np.sum(found) / exact.size)


def gallery_rows(gallery: Gallery, k: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda probes: gallery.search(probes, k).rows


def bench_size(args: argparse.Namespace, size: int, notes: list[str]) -> tuple[list[Row], dict]:
    data, gen_s = timed(lambda: make_data(args, size))
    print(f"\n[{size:,}] generated {size:,} x {args.dim} gallery in {gen_s:.1f} s", flush=True)
    k, rows_out = args.k, []

    def add(method: str, params: str, build_s: float, qps: float, nbytes: int, rows) -> Row:
        row = Row(size, method, params, build_s, qps, nbytes)
        row.recall1, row.recallk = recall(rows, exact, data.ids)
        row.mate_top1 = float(np.mean(rows[:, 0] == data.mates))
        rows_out.append(row)
        print(f"[{size:,}] {method} {params}: build {build_s:.1f} s, {qps:.0f} q/s", flush=True)
        return row

    # Exact FAISS flat first: it is the reference for every recall.
    flat, build = timed(lambda: built(Gallery("flat", threads=args.threads), data))
    found, flat_qps = query_speed(gallery_rows(flat, k), data.probes, args.repeats)
    exact = found
    add("faiss-flat", "exact", build, flat_qps, flat.nbytes(), found)
    del flat

    tensor, build = timed(lambda: torch.from_numpy(data.gallery))
    found, qps = query_speed(
        lambda p, t=tensor: torch_search(t, p, k, args.torch_batch), data.probes, args.repeats
    )
    add("torch-matmul", f"exact, batch {args.torch_batch}", build, qps, tensor.nbytes, found)
    del tensor

    for nlist, group in ivf_groups(args.ivf):
        for train_size, nprobes in group.items():
            g = Gallery(
                "ivf",
                nlist=nlist,
                nprobe=min(nprobes),
                train_size=train_size,
                threads=args.threads,
            )
            g, build = timed(lambda g=g: built(g, data))
            nbytes = g.nbytes()
            trained_on = min(size, train_size or 256 * nlist)
            for nprobe in nprobes:
                g.set_search_params(nprobe=nprobe)
                found, qps = query_speed(gallery_rows(g, k), data.probes, args.repeats)
                params = f"nlist {nlist}, nprobe {nprobe}, train {trained_on:,}"
                add("faiss-ivf", params, build, qps, nbytes, found)
            del g

    if size > args.skip_hnsw_above:
        note = (
            f"HNSW skipped at {size:,} (> --skip-hnsw-above {args.skip_hnsw_above:,}): its "
            "build takes > 400 s at 1M on 2 cores; pass a larger --skip-hnsw-above to run it"
        )
        notes.append(note)
        print(f"[{size:,}] {note}", flush=True)
    else:
        for (m, efc), ef_searches in hnsw_groups(args.hnsw).items():
            g = Gallery(
                "hnsw", M=m, ef_construction=efc, ef_search=min(ef_searches), threads=args.threads
            )
            g, build = timed(lambda g=g: built(g, data))
            nbytes = g.nbytes()
            for ef in ef_searches:
                g.set_search_params(ef_search=ef)
                found, qps = query_speed(gallery_rows(g, k), data.probes, args.repeats)
                add("faiss-hnsw", f"M {m}, efC {efc}, efS {ef}", build, qps, nbytes, found)
            del g

    stats = similarity_stats(data, exact)
    return rows_out, stats


def built(gallery: Gallery, data: Data) -> Gallery:
    gallery.enrol(data.gallery, data.ids)
    return gallery


def similarity_stats(data: Data, exact: np.ndarray) -> dict:
    """Cosine of each probe to its mate and to its nearest non-mate (from the exact top-k)."""
    mate_cos = np.einsum("ij,ij->i", data.probes, data.gallery[data.mates])
    first = np.argmax(exact != data.mates[:, None], axis=1)  # k >= 2: one is not the mate
    nearest = exact[np.arange(len(first)), first]
    non_mate_cos = np.einsum("ij,ij->i", data.probes, data.gallery[nearest])
    return {
        "mean_mate_cos": float(mate_cos.mean()),
        "mean_nearest_non_mate_cos": float(non_mate_cos.mean()),
        "p05_mate_cos": float(np.percentile(mate_cos, 5)),
        "p95_nearest_non_mate_cos": float(np.percentile(non_mate_cos, 95)),
        "mate_above_all_non_mates": float(np.mean(mate_cos > non_mate_cos)),
    }


def ivf_groups(specs: list[str]) -> list[tuple[int, dict[int | None, list[int]]]]:
    """'nlist:nprobe[:train_size]' specs grouped so each distinct index is built once."""
    groups: dict[int, dict[int | None, list[int]]] = {}
    for spec in specs:
        parts = [int(p) for p in spec.split(":")]
        if len(parts) not in (2, 3):
            raise SystemExit(f"--ivf {spec!r}: expected nlist:nprobe[:train_size]")
        nlist, nprobe, train = parts[0], parts[1], parts[2] if len(parts) == 3 else None
        groups.setdefault(nlist, {}).setdefault(train, []).append(nprobe)
    return [(nlist, {t: sorted(p) for t, p in g.items()}) for nlist, g in groups.items()]


def hnsw_groups(specs: list[str]) -> dict[tuple[int, int], list[int]]:
    """'M:ef_construction:ef_search' specs grouped by the graph they need."""
    groups: dict[tuple[int, int], list[int]] = {}
    for spec in specs:
        parts = [int(p) for p in spec.split(":")]
        if len(parts) != 3:
            raise SystemExit(f"--hnsw {spec!r}: expected M:ef_construction:ef_search")
        groups.setdefault((parts[0], parts[1]), []).append(parts[2])
    return {key: sorted(v) for key, v in groups.items()}


def print_table(rows: list[Row], stats: dict[int, dict], args: argparse.Namespace) -> None:
    print(
        f"\n1:N search, d={args.dim}, {args.queries} queries, top-{args.k}, "
        f"{args.threads} thread(s) (torch = faiss); recall against exact FAISS flat"
    )
    head = (
        f"{'gallery':>9} {'method':<13} {'params':<37} {'build s':>8} {'q/s':>8} "
        f"{'x torch':>8} {'x flat':>7} {'index MB':>9} {'R@1':>6} {f'R@{args.k}':>6} {'mate@1':>7}"
    )
    print(head)
    print("-" * len(head))
    for size in sorted(stats):
        here = [r for r in rows if r.size == size]
        base = {r.method: r.qps for r in here}
        for r in here:
            print(
                f"{r.size:>9,} {r.method:<13} {r.params:<37} {r.build_s:>8.1f} {r.qps:>8.0f} "
                f"{r.qps / base['torch-matmul']:>8.1f} {r.qps / base['faiss-flat']:>7.1f} "
                f"{r.nbytes / 2**20:>9.1f} {r.recall1:>6.3f} {r.recallk:>6.3f} {r.mate_top1:>7.3f}"
            )
        s = stats[size]
        print(
            f"{'':>9} cosines: mean probe-mate {s['mean_mate_cos']:.3f} (5th pct "
            f"{s['p05_mate_cos']:.3f}), mean nearest non-mate "
            f"{s['mean_nearest_non_mate_cos']:.3f} (95th pct "
            f"{s['p95_nearest_non_mate_cos']:.3f}); mate beats every non-mate for "
            f"{s['mate_above_all_non_mates']:.1%} of probes"
        )
        print(f"{'':>9} {verdict(here)}")


def verdict(rows: list[Row]) -> str:
    """The product goal, judged on the measurements: >= 10x torch brute force at R@1 >= 0.99."""
    torch_qps = next(r.qps for r in rows if r.method == "torch-matmul")
    ok = [r for r in rows if r.method in ("faiss-ivf", "faiss-hnsw") and r.recall1 >= RECALL_GOAL]
    if not ok:
        return f"goal: no approximate configuration reached recall@1 >= {RECALL_GOAL}"
    best = max(ok, key=lambda r: r.qps)
    ratio = best.qps / torch_qps
    met = "MET" if ratio >= SPEEDUP_GOAL else "NOT met"
    return (
        f"goal (>= {SPEEDUP_GOAL:.0f}x torch brute force at recall@1 >= {RECALL_GOAL}) {met}: "
        f"fastest such is {best.method} {best.params}, {ratio:.1f}x, recall@1 "
        f"{best.recall1:.3f}, built in {best.build_s:.0f} s"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch and faiss threads")
    parser.add_argument("--genuine-cos", type=float, default=0.7, help="target probe-mate cos")
    parser.add_argument("--rank", type=int, default=64, help="rank of the identity structure")
    parser.add_argument("--iso-share", type=float, default=0.1, help="isotropic share of centres")
    parser.add_argument(
        "--ivf",
        nargs="+",
        default=["1024:8", "1024:16", "1024:32", "4096:16:131072", "4096:32:131072"],
        help="nlist:nprobe[:train_size] (train_size default min(n, 256 * nlist))",
    )
    parser.add_argument(
        "--hnsw", nargs="+", default=["16:100:64", "16:100:128"], help="M:ef_construction:ef_search"
    )
    parser.add_argument("--skip-hnsw-above", type=int, default=100_000)
    parser.add_argument("--torch-batch", type=int, default=64, help="queries per torch matmul")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes (best is kept)")
    parser.add_argument("--chunk", type=int, default=65536, help="rows per generation chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if not 0 < args.genuine_cos < 1 or not 0 <= args.iso_share < 1:
        parser.error("--genuine-cos must be in (0, 1) and --iso-share in [0, 1)")
    if min(args.sizes) < args.queries or args.k < 2:
        parser.error("every size must be >= --queries, and --k >= 2 (nearest non-mate)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rows, stats, notes = [], {}, []
    for size in args.sizes:
        size_rows, stats[size] = bench_size(args, size, notes)
        rows += size_rows
    print_table(rows, stats, args)
    for note in notes:
        print(note)
    load = os.getloadavg()
    print(
        f"load average at the end (1/5/15 min): {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"on {os.cpu_count()} CPUs: above the CPU count, other work shared the cores"
    )
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak_gib:.1f} GiB")
    result = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": [vars(r) for r in rows],
        "similarity": {str(size): s for size, s in stats.items()},
        "notes": notes,
        "peak_rss_gib": peak_gib,
        "load_average_end": list(load),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
