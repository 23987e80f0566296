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

    .venv/bin/python scripts/bench_serving.py --photos outputs/face_match/bundle

measures a face bundle from photo to decision instead: `verify(photo, enrolled embedding)`
(decode the JPEG, detect with MTCNN, choose and align the face, embed, decide) per backend at
640x480 and 1920x1080, p50 / p99 on one thread, beside its parts: the decode alone, the
detection alone (MTCNN on the photo as served: downscaled to the policy's max_side) and the
crop-only figure (an aligned crop embedded and decided).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import idv  # noqa: F401,E402  (offline switches first)
from idv.export.formats import export_formats  # noqa: E402
from idv.export.preprocess import input_spec  # noqa: E402
from idv.export.wrappers import augment_of, build_wrapper  # noqa: E402
from idv.models.checkpoint import net_from_checkpoint  # noqa: E402
from idv.serving import load_bundle  # noqa: E402
from idv.serving.backends import load_backend  # noqa: E402

BLOCK_WARMUP = 5


def model_input(spec: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random model-ready batch of `n` for one preprocess.json input entry."""
    shape = [n, *spec["shape"][1:]]
    if spec["modality"] in ("image", "frames"):
        return rng.integers(0, 256, shape).astype(np.float32)
    if spec["modality"] == "category":
        return rng.integers(0, len(spec["values"]), shape).astype(np.int64)
    return rng.standard_normal(shape).astype(np.float32)


PHOTO_SIZES = ((640, 480), (1920, 1080))


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def photo_latency(bundle_dir: str, threads: int, iters: int, warmup: int) -> dict:
    """Photo-to-decision latency of a face bundle per backend and photo size (see the
    module docstring); runtimes take turns per size, in blocks."""
    from face_photos import save, scene

    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        files = {
            f"{w}x{h}": save(scene(w, h, h // 2, rng), Path(tmp) / f"{w}x{h}.jpg")
            for w, h in PHOTO_SIZES
        }
        from idv.faces.acquisition import downscale
        from idv.imaging import read_image

        bundles = {b: load_bundle(bundle_dir, backend=b, threads=threads)
                   for b in ("torchscript", "onnxruntime")}  # fmt: skip
        for size, file in files.items():
            decoded = read_image(file)
            for backend, bundle in bundles.items():
                (acquired,) = bundle.acquire(file)
                if not acquired.acquired:
                    raise RuntimeError(f"{file}: no face acquired ({acquired.report()})")
                enrolled = bundle.embed(acquired.crop, aligned=True)
                small = downscale(decoded, bundle.acquisition.max_side)[0]
                b, f, e, c, d = bundle, file, enrolled, acquired.crop, small
                calls = {
                    "photo_to_decision": lambda b=b, f=f, e=e: b.verify(f, e),
                    "decode": lambda f=f: read_image(f),
                    "detect": lambda b=b, d=d: b.detector.detect(d),
                    "crop_only": lambda b=b, c=c, e=e: b.verify(c, e, aligned=True),
                }
                for name, call in calls.items():
                    for _ in range(warmup):
                        call()
                    times = []
                    for _ in range(iters):
                        start = time.perf_counter()
                        call()
                        times.append(time.perf_counter() - start)
                    rows.setdefault(size, {}).setdefault(backend, {})[name] = _percentiles(times)
    print(f"{bundle_dir}: photo -> decision, {threads} thread(s), {iters} calls each")
    print(f"{'size':<11}{'backend':<13}" + "".join(f"{c + ' p50/p99 ms':>28}" for c in calls))
    for size, per_backend in rows.items():
        for backend, figures in per_backend.items():
            cells = "".join(
                f"{figures[c]['p50_ms']:>19.2f} /{figures[c]['p99_ms']:>7.2f}" for c in calls
            )
            print(f"{size:<11}{backend:<13}{cells}")
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", nargs="?", help="checkpoint written by idv-train")
    parser.add_argument("--photos", metavar="BUNDLE", help="a face bundle: photo -> decision")
    parser.add_argument("--threads", type=int, default=None, help="default: torch's default")
    parser.add_argument("--iters", type=int, default=300, help="single-item calls per runtime")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64, help="batch size for throughput")
    parser.add_argument("--batches", type=int, default=15, help="batches per runtime")
    parser.add_argument("--rounds", type=int, default=5, help="rotations of the runtimes")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.photos:
        result = photo_latency(args.photos, args.threads or 1, args.iters // 5, args.warmup // 5)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return result
    if not args.ckpt:
        parser.error("give a checkpoint, or --photos BUNDLE")

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
