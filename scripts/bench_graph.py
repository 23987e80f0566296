"""Scale benchmark of task=rings: the heterogeneous GNN over the identity graph at 10k-1M accounts.

    .venv/bin/python scripts/bench_graph.py [--sizes 10000 100000 1000000] [--threads 2]
    .venv/bin/python scripts/bench_graph.py --quick          # 2k and 10k accounts, fewer steps

Each size runs in a fresh subprocess (so sizes do not pollute each other's memory), on
--threads torch threads, and prints one table row:

- build: the synthetic graph generated in memory (`idv.data.synth.graph_corpus.generate_graph`,
  conf/synth/graph.yaml, nothing written), factorised (`GraphCorpus.from_tables`), the
  snapshot at the end of the training period (`periods.train`: the training accounts' last
  creation time, as `GraphDataset` takes it), its node features (`attribute_features`,
  `share_counts`) and its `HeteroData`. Face clusters come from a fixed embedding table: the
  cluster is the drawn face (each distinct `face_base` of the generator is one face node);
  rendering or searching a million faces would take an hour, so the bench neither runs the
  face pipeline nor `face_clusters`' FAISS search (`faces.source` is `table`, by hand).
  Nodes: accounts + attribute nodes of the training snapshot; edges: its links (account ->
  attribute; `HeteroData` holds each in both directions).
- full-batch training: one epoch is forward + backward + AdamW step of `RingDetector`
  (conf/model/rings.yaml, the task's losses and optimizer) on the whole training snapshot,
  every training account scored; the median of --epochs epochs after one warm-up.
- memory: `train GB` is the RSS high-water mark of the full-batch phase (the peak is reset
  through /proc/self/clear_refs once the graph is built, else RSS is sampled with psutil);
  `peak GB` is the subprocess' high-water mark over the whole run, generation included.
- mini-batch: seed accounts per second for batches of --batch training accounts through the
  project's own sampler (`idv.graphs.subgraph.k_hop`, hops = layers = 2, then `hetero_data`,
  forward, backward, AdamW step), after one warm-up batch; `sub accts`: accounts per batch
  subgraph (mean).
- scoring: one account's latency through its k-hop subgraph (k_hop + hetero_data + eager
  forward, inference mode), the median of --calls calls; `sub/acct`: its subgraph's accounts.

A size that fails (out of memory, a timeout) prints its failure in its row; the next runs.
The capacity plan for 10M+ accounts follows the table: epoch time and training memory
extrapolated linearly from the measured sizes (per account of the training snapshot).
Timings are from whatever machine runs this (here a shared 2-core VM). Not part of CI; the
test (tests/test_bench_graph.py) runs --quick --sizes 500.

Capacity plan for 10M+ accounts
-------------------------------

Measured here (the defaults: 2 threads on a shared 2-core VM with 23.5 GB of RAM, another
job on the cores): the training snapshot of the 1M-account graph (549k accounts, 3.3M nodes,
4.0M links) trains full-batch in 67 s an epoch at a 10.1 GB peak. The linear fit over 10k /
100k / 1M gives 126 us and 17 KiB per snapshot account (intercepts -1.9 s, +1.2 GB): at 10M
accounts ~1,250 s an epoch and ~165 GB, so full-batch training stops fitting this machine
around 1.4M snapshot accounts (~2.5M in the graph: the training period holds 55%), a 256 GB
machine around 16M. The epoch time grew faster than linearly from 100k to 1M (3.3 s to 67 s,
under load): treat the 10M time as optimistic. k_hop mini-batches of 1024 seeds pulled the
whole snapshot at every size (33 seeds/s at 1M), one account's subgraph 42k accounts at 1M
(7.7%, 469 ms to score).

Full-batch training stops fitting on one machine around the size where the extrapolated
training memory exceeds the machine's RAM (printed above for this one). Beyond one machine,
or to bound memory below that, the existing engines are:

- PyG's distributed training, `torch_geometric.distributed`: the graph partitioned with
  `Partitioner` (per-machine `LocalGraphStore` / `LocalFeatureStore`), mini-batches from
  `DistNeighborLoader` (temporal with `time_attr`); it needs pyg-lib, and PyG deprecated the
  module in 2.7 (unmaintained since: PyG points to its distributed-training tutorial and to
  cuGraph-PyG instead). Alternatives: GraphLearn-for-PyTorch (GLT), or DGL's DistDGL.
- Mini-batch neighbour sampling on one machine: PyG's `NeighborLoader` (`num_neighbors`
  fan-outs, temporal sampling with `time_attr` so a seed sees only the past), which needs
  pyg-lib or torch-sparse: not installable on this machine. With it, a `NeighborLoader` over
  `GraphDataset.graph` with `input_nodes=("account", scored)` plugs in as the training loader.
- The project's own sampler (`k_hop`, `task.dataset.batch_accounts`) gives exact 2-hop
  neighbourhoods (the scores of the whole graph) but has no fan-out cap: a hub node (a webmail
  domain, a carrier's IP block, a kiosk) pulls its whole neighbourhood, so one account's
  subgraph grows with the graph (the `sub/acct` column). At 10M+ cap degrees (drop or sample
  the links of attribute nodes above a degree, keeping the degree features computed on the
  whole snapshot) or sample fan-outs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAN_MARK = "Capacity plan for 10M+ accounts\n-------------------------------\n"
RESULT = "RESULT "
GB = 1024.0**3
DEFAULT_SIZES = [10_000, 100_000, 1_000_000]
QUICK_SIZES = [2_000, 10_000]


def load_yaml(relative: str) -> dict:
    return yaml.safe_load((ROOT / relative).read_text())


def graph_config() -> dict:
    """conf/synth/graph.yaml, faces from the fixed table (its `${...}` paths are never read)."""
    cfg = load_yaml("conf/synth/graph.yaml")
    cfg["faces"] = {**cfg["faces"], "source": "table"}
    return cfg


class Peak:
    """RSS high-water mark (bytes) of a block: the kernel's (VmHWM, reset through
    /proc/self/clear_refs on entry), else psutil sampled every few milliseconds."""

    def __init__(self) -> None:
        self.bytes = 0
        self.exact = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Peak:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.exact = True
        except OSError:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.bytes = max(self.bytes, process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        now = psutil.Process().memory_info().rss
        self.bytes = max(self.bytes, now, high_water() if self.exact else 0)


def high_water() -> int:
    """The process' RSS high-water mark (bytes) since start or the last reset."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def log(size: int, message: str) -> None:
    print(f"[{size:,}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- one size (the subprocess)


def run_size(size: int, args: argparse.Namespace, out: dict) -> None:
    """Measure one size into `out` (emitted after each phase: a crash keeps what was done)."""
    import torch
    import torch.nn.functional as F

    import idv  # noqa: F401  (offline switches first)
    from idv.data.graph import GraphCorpus, hetero_data
    from idv.data.graph_tables import GraphTables
    from idv.data.synth.graph_corpus import assign_periods, generate_graph
    from idv.graphs.structure import attribute_features, share_counts
    from idv.graphs.subgraph import Adjacency, k_hop
    from idv.models.graph import RingDetector

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    task, model_cfg = load_yaml("conf/task/rings.yaml"), load_yaml("conf/model/rings.yaml")
    node_types = list(task["node_types"])
    hops = int(task["layers"])
    cfg = graph_config()
    peak = high_water()
    out["base_bytes"] = psutil.Process().memory_info().rss  # the interpreter, torch, PyG

    # ---- build
    start = time.perf_counter()
    accounts, links, faces = generate_graph(cfg, size, args.seed)
    del faces  # the face table is not searched: the cluster is the drawn face (docstring)
    face_links = pd.DataFrame(
        {
            "account_id": accounts["account_id"],
            "node_type": "face",
            "node_key": pd.factorize(accounts["face_base"])[0].astype(str),
            "created_at": accounts["created_at"],
        }
    )
    links = pd.concat([links, face_links], ignore_index=True)
    split = assign_periods(accounts["created_at"], float(cfg["days"]), cfg["periods"])
    label = accounts["label"].to_numpy(np.int64)
    generate_s = time.perf_counter() - start
    log(size, f"generated {len(accounts):,} accounts, {len(links):,} links in {generate_s:.1f} s")

    start = time.perf_counter()
    corpus = GraphCorpus.from_tables(
        GraphTables(accounts, links, Path(f"<synthetic graph of {size} accounts>")), node_types
    )
    factorise_s = time.perf_counter() - start
    del accounts, links, face_links
    gc.collect()

    start = time.perf_counter()
    at = float(corpus.created[split == "train"].max())
    snapshot, rows, _ = corpus.snapshot(at)
    snapshot_s = time.perf_counter() - start

    start = time.perf_counter()
    attributes = attribute_features(snapshot)
    share = share_counts(snapshot)
    scored = np.flatnonzero(split[rows] == "train")
    graph = hetero_data(snapshot, attributes, share, scored)
    features_s = time.perf_counter() - start
    target = torch.from_numpy(label[rows[scored]].astype(np.float32))
    del corpus
    gc.collect()
    peak = max(peak, high_water())
    out.update(
        build_s=generate_s + factorise_s + snapshot_s + features_s,
        generate_s=generate_s,
        factorise_s=factorise_s,
        snapshot_s=snapshot_s,
        features_s=features_s,
        snapshot_day=at,
        accounts=int(snapshot.n_accounts),
        scored=int(len(scored)),
        rings=int(target.sum()),
        nodes=int(snapshot.n_accounts + snapshot.n_nodes.sum()),
        edges=int(len(snapshot.link_account)),
        build_peak_bytes=peak,
    )
    log(size, f"built in {out['build_s']:.1f} s: {out['nodes']:,} nodes, {out['edges']:,} edges")
    emit(out)

    # ---- full-batch training
    net = RingDetector(
        node_types,
        account_features=snapshot.own.shape[1],
        rules=model_cfg["rules"],
        hidden=int(model_cfg["hidden"]),
        layers=hops,
        conv=str(model_cfg["conv"]),
        dropout=float(model_cfg["dropout"]),
        heads=int(model_cfg["heads"]),
    )
    opt_cfg = task["optimizer"]
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=float(opt_cfg["lr"]), weight_decay=float(opt_cfg["weight_decay"])
    )
    losses = {
        name: (float(spec["weight"]), float(spec.get("pos_weight", 1.0)))
        for name, spec in task["module"]["outputs"].items()
        if float(spec["weight"]) > 0
    }

    def step(batch, goal: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = net(batch)
        loss = sum(
            weight
            * F.binary_cross_entropy_with_logits(
                logits[name], goal, pos_weight=torch.tensor(pos_weight)
            )
            for name, (weight, pos_weight) in losses.items()
        )
        loss.backward()
        optimizer.step()

    net.train()
    times = []
    with Peak() as train_peak:
        for _ in range(1 + args.epochs):
            start = time.perf_counter()
            step(graph, target)
            times.append(time.perf_counter() - start)
    peak = max(peak, train_peak.bytes)
    out.update(
        epoch_s=statistics.median(times[1:]),
        warmup_s=times[0],
        train_peak_bytes=train_peak.bytes,
        train_peak_exact=train_peak.exact,
        peak_bytes=peak,
    )
    log(size, f"full-batch epoch {out['epoch_s']:.2f} s (warm-up {times[0]:.2f} s)")
    emit(out)
    del graph
    gc.collect()

    # ---- mini-batch throughput through k_hop
    with Peak() as batch_peak:
        start = time.perf_counter()
        adjacency = Adjacency.of(snapshot)
        out["adjacency_s"] = time.perf_counter() - start
        rng = np.random.default_rng(args.seed)
        n_batch = min(args.batch, len(scored))

        def mini_batch() -> int:
            chunk = np.sort(rng.choice(len(scored), size=n_batch, replace=False))
            sub = k_hop(snapshot, adjacency, scored[chunk], hops)
            batch = hetero_data(
                snapshot, attributes, share, np.arange(len(chunk)), sub.accounts, sub.links
            )
            step(batch, target[torch.from_numpy(chunk)])
            return len(sub.accounts)

        mini_batch()  # warm-up
        start = time.perf_counter()
        sub_accounts = [mini_batch() for _ in range(args.batches)]
        elapsed = time.perf_counter() - start
    peak = max(peak, batch_peak.bytes)
    out.update(
        seeds_per_s=n_batch * args.batches / elapsed,
        batch_seeds=n_batch,
        batch_sub_accounts=float(np.mean(sub_accounts)),
        peak_bytes=peak,
    )
    log(size, f"mini-batch {out['seeds_per_s']:.0f} seeds/s ({n_batch} seeds a batch)")
    emit(out)

    # ---- single-account scoring through its k-hop subgraph
    net.eval()
    picks = rng.choice(scored, size=args.calls + args.score_warmup)
    latencies, sub_sizes = [], []
    with torch.inference_mode():
        for k, seed in enumerate(picks):
            start = time.perf_counter()
            sub = k_hop(snapshot, adjacency, np.array([seed]), hops)
            one = hetero_data(snapshot, attributes, share, np.arange(1), sub.accounts, sub.links)
            net(one)
            if k >= args.score_warmup:
                latencies.append(time.perf_counter() - start)
                sub_sizes.append(len(sub.accounts))
    peak = max(peak, high_water())
    out.update(
        score_ms=1000.0 * statistics.median(latencies),
        score_p90_ms=1000.0 * float(np.percentile(latencies, 90)),
        score_sub_accounts=float(np.median(sub_sizes)),
        peak_bytes=peak,
    )
    log(size, f"scoring p50 {out['score_ms']:.1f} ms")


def emit(out: dict) -> None:
    print(RESULT + json.dumps(out), flush=True)


def child(args: argparse.Namespace) -> int:
    out: dict = {"size": args.child}
    try:
        run_size(args.child, args, out)
    except BaseException as error:  # MemoryError, a torch allocation failure, ^C
        traceback.print_exc()
        out["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:120]
        emit(out)
        return 1
    out["ok"] = True
    emit(out)
    return 0


# ---------------------------------------------------------------- the driver


def run_child(size: int, args: argparse.Namespace) -> dict:
    """One size in a fresh interpreter: its last RESULT line, and its failure if any."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(size)]
    for name in ("threads", "epochs", "batch", "batches", "calls", "score_warmup", "seed"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning threads stall on a shared machine
    failure = None
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, text=True, timeout=args.timeout, env=env, cwd=ROOT
        )
        stdout, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout or ""
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        code, failure = None, f"timeout after {args.timeout:g} s"
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT)]
    out = json.loads(lines[-1][len(RESULT) :]) if lines else {"size": size}
    if failure is None and code != 0:
        if code is not None and code < 0:
            failure = f"killed by signal {-code}" + (" (out of memory?)" if code == -9 else "")
        else:
            failure = out.get("error") or f"exit {code}"
    if failure:
        out["error"] = failure
    return out


COLUMNS = (
    # header, key, format, scale
    ("accounts", "size", "{:,.0f}", 1.0),
    ("build s", "build_s", "{:.1f}", 1.0),
    ("nodes", "nodes", "{:,.0f}", 1.0),
    ("edges", "edges", "{:,.0f}", 1.0),
    ("epoch s", "epoch_s", "{:.3f}", 1.0),
    ("train GB", "train_peak_bytes", "{:.2f}", GB),
    ("peak GB", "peak_bytes", "{:.2f}", GB),
    ("seeds/s", "seeds_per_s", "{:,.0f}", 1.0),
    ("sub accts", "batch_sub_accounts", "{:,.0f}", 1.0),
    ("score ms", "score_ms", "{:.1f}", 1.0),
    ("sub/acct", "score_sub_accounts", "{:,.0f}", 1.0),
)


def cell(result: dict, key: str, spec: str, scale: float) -> str:
    value = result.get(key)
    return "-" if value is None else spec.format(value / scale)


def print_table(results: list[dict]) -> None:
    widths = [max(len(h), 10) for h, *_ in COLUMNS]
    print("  ".join(h.rjust(w) for (h, *_), w in zip(COLUMNS, widths, strict=True)) + "  status")
    for r in results:
        cells = [cell(r, k, s, d).rjust(w) for (_, k, s, d), w in zip(COLUMNS, widths, strict=True)]
        print("  ".join(cells) + "  " + ("FAILED: " + r["error"] if "error" in r else "ok"))
    print("\nbuild, seconds by step (generate / factorise / snapshot / features):")
    for r in results:
        if "build_s" in r:
            steps = " / ".join(
                f"{r[k]:.2f}" for k in ("generate_s", "factorise_s", "snapshot_s", "features_s")
            )
            print(f"  {r['size']:>11,}  {steps}  (snapshot day {r['snapshot_day']:.1f}, "
                  f"{r['accounts']:,} accounts, {r['rings']:,} in rings)")  # fmt: skip


def linear(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(slope, intercept): least squares."""
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(slope), float(intercept)


def capacity_plan(results: list[dict], threads: int) -> None:
    memory = psutil.virtual_memory()
    print("\n" + PLAN_MARK)
    done = [r for r in results if "epoch_s" in r and "train_peak_bytes" in r]
    if not done:
        print("no size finished full-batch training: nothing to extrapolate")
    else:
        xs = [float(r["accounts"]) for r in done]
        per_link = float(np.mean([r["edges"] / r["accounts"] for r in done]))
        times, peaks = [r["epoch_s"] for r in done], [r["train_peak_bytes"] for r in done]
        if len(done) == 1:  # one size: the line through it and the empty process
            xs, times, peaks = [0.0, *xs], [0.0, *times], [done[0]["base_bytes"], *peaks]
        t_slope, t_icpt = linear(xs, times)
        m_slope, m_icpt = linear(xs, peaks)
        sizes = ", ".join(f"{r['accounts']:,}" for r in done)
        print(f"Linear fit over the measured training snapshots ({sizes} accounts; "
              f"{per_link:.1f} links per account), {threads} threads:")  # fmt: skip
        print(f"  full-batch epoch: {t_slope * 1e6:.2f} us per account "
              f"(intercept {t_icpt:+.2f} s)")  # fmt: skip
        print(f"  full-batch training memory: {m_slope / 1024:.2f} KiB per account "
              f"(intercept {m_icpt / GB:+.2f} GB)")  # fmt: skip
        for n in (10_000_000, 30_000_000, 100_000_000):
            print(f"  {n / 1e6:>4.0f}M accounts: ~{t_slope * n + t_icpt:,.0f} s per epoch, "
                  f"~{(m_slope * n + m_icpt) / GB:,.1f} GB")  # fmt: skip
        ram = memory.total
        print(f"This machine: {ram / GB:.1f} GB of RAM ({memory.available / GB:.1f} GB "
              f"available now), {psutil.cpu_count()} cores.")  # fmt: skip
        if m_slope > 0:
            fits = (ram - m_icpt) / m_slope
            print(f"Full-batch training stops fitting on this machine around {fits / 1e6:.1f}M "
                  f"accounts in the training snapshot (extrapolated memory > RAM); a 256 GB "
                  f"machine: ~{(256 * GB - m_icpt) / m_slope / 1e6:.0f}M.")  # fmt: skip
    sampled = [r for r in results if "score_sub_accounts" in r]
    if sampled:
        r = sampled[-1]
        batch, one = (r[k] / r["accounts"] for k in ("batch_sub_accounts", "score_sub_accounts"))
        print(f"k_hop at {r['accounts']:,} accounts: a batch of {r['batch_seeds']:,} seeds pulled "
              f"{batch:.0%} of the snapshot's accounts, one account {one:.1%} (hubs: no fan-out "
              "cap).")  # fmt: skip
    print()
    print(__doc__.split(PLAN_MARK, 1)[1].split("\n\n", 1)[1].rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help=f"accounts (default {DEFAULT_SIZES})")
    parser.add_argument(
        "--quick", action="store_true", help=f"sizes {QUICK_SIZES} unless --sizes, fewer steps"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--epochs", type=int, help="timed full-batch epochs (default 3; quick 2)")
    parser.add_argument("--batch", type=int, default=1024, help="seed accounts per mini-batch")
    parser.add_argument("--batches", type=int, help="timed mini-batches (default 5; quick 2)")
    parser.add_argument("--calls", type=int, default=50, help="timed single-account scorings")
    parser.add_argument("--score-warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per size")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.epochs = args.epochs or (2 if args.quick else 3)
    args.batches = args.batches or (2 if args.quick else 5)
    if args.child is not None:
        return child(args)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    model = load_yaml("conf/model/rings.yaml")
    print(f"task=rings scale bench: RingDetector conv={model['conv']} hidden={model['hidden']} "
          f"layers={load_yaml('conf/task/rings.yaml')['layers']}, {args.threads} torch threads, "
          f"{args.epochs} epochs after 1 warm-up, {args.batches} mini-batches of {args.batch}, "
          f"{args.calls} scorings; each size in a fresh subprocess", flush=True)  # fmt: skip
    print("load average at start (1/5/15 min): "
          + " / ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)  # fmt: skip
    results = []
    for size in sizes:
        results.append(run_child(size, args))
    print("load average at end (1/5/15 min): " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))
    print()
    print_table(results)
    capacity_plan(results, args.threads)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
