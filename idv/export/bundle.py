"""idv-export's logic: checkpoint + thresholds (+ evaluation) -> a verified, self-contained bundle.

Order: rebuild the network from the checkpoint (weights_only=True) and wrap it for inference;
export every format into a temporary sibling directory; run the parity gate on the files just
written (idv.export.parity); only then add thresholds.json (copied byte for byte),
preprocess.json, parity.json, the model card and SHA256SUMS, verify the result as serving will
(idv.serving.verify_bundle), and move it over the old bundle. A failed export leaves the previous
bundle exactly as it was; the temporary directory is removed either way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from idv import kinds
from idv.atomic import remove_stale, replace_dir, temporary_sibling
from idv.data.datasets import IMPLICIT_DATASET
from idv.data.manifest import Manifest
from idv.data.protocols import apply_protocol
from idv.export.card import build_card, card_markdown, code_revision, read_evaluation
from idv.export.face_detector import check_detector_parity, export_detector, reference_photos
from idv.export.formats import SERVING_BACKENDS, export_formats, format_records
from idv.export.parity import ParityOptions, check_parity, held_out_items
from idv.export.preprocess import decision_extras, input_spec, preprocess_spec
from idv.export.streaming import export_stream
from idv.export.wrappers import augment_of, build_wrapper
from idv.faces.acquisition import AcquisitionPolicy
from idv.faces.detection import DetectorSettings
from idv.hashing import sha256_file
from idv.imaging import read_image
from idv.models.checkpoint import net_from_checkpoint, run_config_of
from idv.progress import step
from idv.serving.backends import load_backend
from idv.serving.bundle import verify_bundle, write_checksums
from idv.serving.preprocess import prepare_inputs
from idv.serving.signing import sign_bundle
from idv.thresholds import Thresholds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    bundle_dir: Path
    files: dict[str, str]  # relative file -> sha256 (SHA256SUMS)
    parity: dict[str, Any]
    card: dict[str, Any]


def read_thresholds(
    path: str | os.PathLike, checkpoint_sha256: str, kind: str
) -> tuple[Thresholds, bytes]:
    """thresholds.json as bytes (copied verbatim) and typed (validated by
    `idv.thresholds.Thresholds`), checked against the model's task kind and, when calibration
    recorded its hash, against the checkpoint."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"thresholds file {file} not found (idv-calibrate writes it)")
    data = file.read_bytes()
    thresholds = Thresholds.from_json(data, str(file))
    if thresholds.kind != kind:
        raise ValueError(
            f"{file}: kind {thresholds.kind!r}, but the checkpoint's task is of kind {kind!r}: "
            "calibrate this task's scores"
        )
    recorded = ((thresholds.inputs or {}).get("checkpoint") or {}).get("sha256")
    if recorded and recorded != checkpoint_sha256:
        raise ValueError(
            f"{file} was calibrated on scores of another checkpoint (sha256 {recorded}); this "
            f"checkpoint's is {checkpoint_sha256}: calibrate this checkpoint's scores first"
        )
    return thresholds, data


def training_data(manifest: Manifest, protocol: Mapping[str, Any] | None) -> dict[str, Any]:
    """The manifest's hash and size (the corpus the run config names)."""
    frame, file = manifest.frame, manifest.file
    return {
        "manifest": str(file),
        "sha256": sha256_file(file),
        "bytes": file.stat().st_size,
        "samples": len(frame),
        "subjects": int(frame["subject_id"].nunique()),
        "samples_per_split": {k: int(v) for k, v in frame["split"].value_counts().items()},
        "samples_per_attack_type": {
            k: int(v) for k, v in frame["attack_type"].value_counts().items()
        },
        "protocol": (protocol or {}).get("name", "default"),
    }


def load_manifest(
    run_config: Mapping[str, Any], manifest: str | None, root: str | None
) -> tuple[Manifest, Mapping[str, Any] | None]:
    """The run's manifest (its data config; optionally another path: the checkpoint's may be
    relative to where training ran) and its protocol, for held-out samples and the card."""
    data = run_config["data"]
    file = Path(manifest or data["manifest"])
    if not file.is_file():
        raise FileNotFoundError(
            f"manifest {file} (from the checkpoint's run config) not found: run from the "
            "directory training ran in, or pass manifest=<path>"
        )
    corpus_root = root if (manifest or root) else data.get("root")
    return Manifest.load(file, root=corpus_root, labels=data.get("labels")), data.get("protocol")


def export_bundle(
    ckpt_path: str | os.PathLike,
    thresholds: str | os.PathLike,
    bundle_dir: str | os.PathLike,
    *,
    evaluation_dir: str | os.PathLike | None = None,
    formats: Sequence[str] | None = None,
    parity: ParityOptions | None = None,
    manifest: str | None = None,
    root: str | None = None,
    crop_note: str | None = None,
    min_image_side: int | None = None,
    signing_key: str | os.PathLike | None = None,
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
) -> ExportResult:
    """Write the bundle of `ckpt_path` into `bundle_dir` (replacing it only on success);
    `formats`: None for the task's `export_formats`; `crop_note`: None for the task's."""
    options = parity or ParityOptions()
    ckpt = Path(ckpt_path)
    net, run_config = net_from_checkpoint(ckpt)
    task = dict(run_config.get("task") or {})
    if crop_note:
        task["crop_note"] = crop_note
    run_config = {**run_config, "task": task}
    ckpt_sha = sha256_file(ckpt)
    thresholds_data, thresholds_bytes = read_thresholds(thresholds, ckpt_sha, task.get("kind"))
    evaluation = read_evaluation(evaluation_dir)
    wrapper = build_wrapper(net, run_config)
    augment = augment_of(run_config)
    corpus, protocol = load_manifest(run_config, manifest, root)
    frames = {s: apply_protocol(corpus.split(s), protocol) for s in ("test", "calib")}
    data = run_config.get("data") or {}
    dataset = instantiate(data.get("dataset") or IMPLICIT_DATASET, _convert_="all")
    held = held_out_items(
        frames,
        corpus.root,
        options.min_samples,
        dataset,
        augment,
        data.get("species") or [],
        options.max_samples,
    )
    # The training run's own minimum (data.min_image_side) unless the export overrides it.
    min_side = int(min_image_side or (run_config.get("data") or {}).get("min_image_side") or 1)
    inputs = {
        "inputs": {n: input_spec(n, augment, task, data, min_side) for n in wrapper.input_names}
    }
    first_two = {name: values[:2] for name, values in held.raw.items()}
    example = {k: torch.from_numpy(v) for k, v in prepare_inputs(first_two, inputs).items()}
    if any(len(v) < 2 for v in example.values()):
        example = {k: torch.cat([v, v]) for k, v in example.items()}
    with torch.inference_mode():
        shapes = {k: tuple(v.shape[1:]) for k, v in wrapper(**example).items()}
    spec = preprocess_spec(wrapper, run_config, augment, shapes, min_side)
    spec.update(decision_extras(task, shapes))
    formats = list(formats or task.get("export_formats") or ("torchscript", "onnx"))

    target = Path(bundle_dir)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"bundle_dir {target} exists and is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale(target):  # a killed export's temporary bundle
        log.info("removed %s, left by a process that no longer runs", stale)
    tmp = temporary_sibling(target)
    tmp.mkdir()
    try:
        exported = export_formats(wrapper, example, tmp, formats)
        with step(log, "parity gate") as note:
            report = check_parity(wrapper, net, exported, held, spec, thresholds_data, options)
            note["detail"] = f"{report['samples']} held-out samples, every format and output"
        if task.get("streaming"):
            with step(log, "streaming step") as note:
                whole = {SERVING_BACKENDS[f]: load_backend(SERVING_BACKENDS[f], e.path,
                                                           wrapper.input_names)
                         for f, e in exported.items()}  # fmt: skip
                spec["streaming"], report["streaming"] = export_stream(
                    net, tmp, formats, held.raw, spec, whole, options.stream_sessions,
                    options.tolerance,
                )  # fmt: skip
                note["detail"] = f"{report['streaming']}"
        if task.get("acquisition"):
            with step(log, "face detector") as note:
                spec["acquisition"], report["detector"] = _face_detector(
                    tmp, task["acquisition"], formats, held.raw.get("image") or [], options
                )
                note["detail"] = f"{report['detector']}"
        formats_info = format_records(exported)
        card = build_card(
            run_config=run_config,
            training_data=training_data(corpus, protocol),
            evaluation=evaluation,
            thresholds=thresholds_data,
            thresholds_sha256=sha256_file(thresholds),
            checkpoint={"path": str(ckpt), "sha256": ckpt_sha},
            formats=formats_info,
            parity=report,
            preprocess=spec,
            intended_use=intended_use,
            limitations=limitations,
            code=code_revision(),
        )
        (tmp / "thresholds.json").write_bytes(thresholds_bytes)
        _write_json(spec, tmp / "preprocess.json")
        _write_json(report, tmp / "parity.json")
        _write_json(card, tmp / "model_card.json")
        (tmp / "model_card.md").write_text(card_markdown(card))
        write_checksums(tmp)
        if signing_key:
            sign_bundle(tmp, signing_key)
        files = verify_bundle(tmp)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote bundle %s (%s)", target, ", ".join(sorted(files)))
    return ExportResult(target, files, report, card)


def _face_detector(
    tmp: Path,
    acquisition: Mapping[str, Any],
    formats: Sequence[str],
    held_images: Sequence[Any],
    options: ParityOptions,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """MTCNN's networks into the bundle (detector/), gated on parity with facenet-pytorch's
    MTCNN on real photos and held-out images; returns preprocess.json's `acquisition` and
    the parity figures."""
    settings = DetectorSettings.from_mapping(acquisition.get("detector") or {})
    policy = AcquisitionPolicy.from_mapping(acquisition.get("policy") or {})
    files = export_detector(tmp, formats)
    images = reference_photos() + [
        read_image(x) if isinstance(x, str | os.PathLike) else x
        for x in held_images[: options.detector_images]
    ]
    backends = [SERVING_BACKENDS[f] for f in formats]
    figures = check_detector_parity(tmp, images, settings, backends, options.detector_tolerance_px)
    spec = {
        "detector": settings.to_dict(),
        "policy": policy.to_dict(),
        "files": files,
        "note": (
            "Photos are accepted: MTCNN (detector/) finds faces, the policy chooses one or "
            "reports a failure to acquire, and the face is aligned onto the ArcFace template "
            "(idv.faces) before this model; aligned crops are taken as they are with "
            "aligned=True."
        ),
    }
    return spec, figures


def export(cfg) -> ExportResult:
    """`export_bundle` from the composed `export` config (conf/export.yaml), or the kind's own
    `export` part where its bundle is not one scorer per item (a graph's)."""
    kind = kinds.of_task(run_config_of(cfg.ckpt_path).get("task") or {})
    if "export" in kind.parts:
        return kind.export(cfg)
    p = cfg.parity
    card = cfg.get("card") or {}
    return export_bundle(
        cfg.ckpt_path,
        cfg.thresholds,
        cfg.bundle_dir,
        evaluation_dir=cfg.get("evaluation_dir"),
        formats=list(cfg.formats) if cfg.get("formats") else None,
        parity=ParityOptions(
            min_samples=int(p.min_samples),
            batch_size=int(p.batch_size),
            tolerance=float(p.tolerance),
            preprocess_tolerance=float(p.get("preprocess_tolerance", 1e-6)),
            detector_tolerance_px=float(p.get("detector_tolerance_px", 1.0)),
            detector_images=int(p.get("detector_images", 12)),
            stream_sessions=int(p.get("stream_sessions", 16)),
            max_samples=None if p.get("max_samples") is None else int(p.max_samples),
        ),
        manifest=cfg.get("manifest"),
        root=cfg.get("root"),
        crop_note=cfg.get("crop_note"),
        min_image_side=cfg.get("min_image_side"),
        signing_key=cfg.get("signing_key"),
        intended_use=card.get("intended_use"),
        limitations=[str(x) for x in (card.get("limitations") or [])],
    )


def _write_json(data: Mapping[str, Any], file: Path) -> None:
    file.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
