"""Serving speed of a detection checkpoint: eager wrapper vs TorchScript vs ONNX Runtime.

    .venv/bin/python scripts/bench_serving.py outputs/pad/train/checkpoints/best.ckpt

Exports the checkpoint's inference wrapper (idv.export.formats, as idv-export does; no parity
gate or bundle here) into a temporary directory, loads each format with its serving backend
(idv.serving.backends) and prints, side by side: single-item latency p50 / p99 and batch
throughput, all from model-ready numpy input (preprocessing excluded; every named input of the
wrapper, from its preprocess.json entry: an image, a clip of frames, a category index, a
vector), with the same thread
count for every runtime. Runtimes take turns in blocks of calls over several rounds, so a noisy
machine slows all of them alike. The last line is the ratio of eager to the faster served backend at
single-item p50 (goal: >= 2x).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import idv  # noqa: F401  (offline switches first)
from idv.export.formats import export_formats
from idv.export.preprocess import input_spec
from idv.export.wrappers import augment_of, build_wrapper
from idv.models.checkpoint import net_from_checkpoint
from idv.serving.backends import load_backend

BLOCK_WARMUP = 5


def model_input(spec: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random model-ready batch of `n` for one preprocess.json input entry."""
    shape = [n, *spec["shape"][1:]]
    if spec["modality"] in ("image", "frames"):
        return rng.integers(0, 256, shape).astype(np.float32)
    if spec["modality"] == "category":
        return rng.integers(0, len(spec["values"]), shape).astype(np.int64)
    return rng.standard_normal(shape).astype(np.float32)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", help="checkpoint written by idv-train")
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default")
    parser.add_argument("--iters", type=int, default=300, help="single-item calls per runtime")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64, help="batch size for throughput")
    parser.add_argument("--batches", type=int, default=15, help="batches per runtime")
    parser.add_argument("--rounds", type=int, default=5, help="rotations of the runtimes")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    net, run_config = net_from_checkpoint(args.ckpt)
    wrapper = build_wrapper(net, run_config)
    augment = augment_of(run_config)
    specs = {
        n: input_spec(n, augment, run_config.get("task") or {}, run_config.get("data") or {})
        for n in wrapper.input_names
    }
    rng = np.random.default_rng(0)
    single = {n: model_input(spec, 1, rng) for n, spec in specs.items()}
    batch = {n: model_input(spec, args.batch, rng) for n, spec in specs.items()}

    def eager(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            named = {k: torch.from_numpy(v) for k, v in x.items()}
            return {k: v.numpy() for k, v in wrapper(**named).items()}

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        example = {k: torch.from_numpy(v[:2].copy()) for k, v in batch.items()}
        exported = export_formats(wrapper, example, tmp, ["torchscript", "onnx"])
        names = wrapper.input_names
        runtimes = {
            "eager": eager,
            "torchscript": load_backend(
                "torchscript", exported["torchscript"].path, names, threads
            ),
            "onnxruntime": load_backend("onnxruntime", exported["onnx"].path, names, threads),
        }
        for fn in runtimes.values():  # warm-up (TorchScript's profiling executor, ORT arenas)
            for _ in range(args.warmup):
                fn(single)
            for _ in range(3):
                fn(batch)
        # Blocks of calls per runtime, rotated: runtimes must not alternate call by call, as
        # ONNX Runtime's and OpenMP's worker threads spin for a while after each call and
        # would steal the cores from the next runtime's call. The first calls of a block are
        # dropped for the same reason.
        latency = {name: [] for name in runtimes}
        batch_times = {name: [] for name in runtimes}
        rounds = max(1, min(args.rounds, args.iters))
        for _ in range(rounds):
            for name, fn in runtimes.items():
                for _ in range(BLOCK_WARMUP):
                    fn(single)
                for _ in range(args.iters // rounds):
                    start = time.perf_counter()
                    fn(single)
                    latency[name].append(time.perf_counter() - start)
                fn(batch)
                for _ in range(max(1, args.batches // rounds)):
                    start = time.perf_counter()
                    fn(batch)
                    batch_times[name].append(time.perf_counter() - start)

    rows = {}
    for name in runtimes:
        lat = np.asarray(latency[name]) * 1e3
        rows[name] = {
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "throughput_items_s": float(args.batch / np.median(batch_times[name])),
        }
    served = min(("torchscript", "onnxruntime"), key=lambda n: rows[n]["p50_ms"])
    ratio = rows["eager"]["p50_ms"] / rows[served]["p50_ms"]
    arch = run_config["model"].get("backbone", {}).get("name", run_config["model"]["_target_"])
    shapes = ", ".join(
        f"{n} {'x'.join(map(str, v.shape[1:])) or 'scalar'}" for n, v in single.items()
    )
    print(
        f"{args.ckpt}: {arch}, input {shapes}, {threads} thread(s), "
        f"{len(latency['eager'])} single-item "
        f"calls and {sum(map(len, batch_times.values())) // len(runtimes)} batches of "
        f"{args.batch} per runtime ({rounds} rounds)"
    )
    print(f"{'runtime':<13}{'p50 ms':>10}{'p99 ms':>10}{'items/s @' + str(args.batch):>14}")
    for name, row in rows.items():
        print(
            f"{name:<13}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['throughput_items_s']:>14.1f}"
        )
    verdict = "meets" if ratio >= 2.0 else "misses"
    gain = rows[served]["throughput_items_s"] / rows["eager"]["throughput_items_s"]
    print(
        f"single-item p50: {served} is {ratio:.2f}x eager ({verdict} the 2x goal); "
        f"throughput {gain:.2f}x"
    )
    result = {
        "checkpoint": str(args.ckpt),
        "threads": threads,
        "inputs": {n: list(v.shape[1:]) for n, v in single.items()},
        "runtimes": rows,
        "fastest_served": served,
        "single_p50_speedup": ratio,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
