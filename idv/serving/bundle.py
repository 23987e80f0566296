"""Loading a verified bundle and scoring with it.

A bundle (written by `idv.export`) is one directory:

    model.ts          TorchScript inference wrapper (normalisation inside)
    model.onnx        the same wrapper in ONNX (+ model.onnx.data when weights are external)
    preprocess.json   the model's signature: one entry per named input (decode / resize /
                      normalisation of an image, ...) and per named output
    thresholds.json   decision thresholds from calibration (global and per segment)
    model_card.md     human model card
    model_card.json   the same, machine-readable
    parity.json       the export's parity figures (exported formats against the eager model)
    SHA256SUMS        sha256 of every other file (`sha256sum -c SHA256SUMS` format)
    SHA256SUMS.sig    optional: the model owner's Ed25519 signature of SHA256SUMS

`load_bundle` verifies every checksum first (a modified, missing or unlisted file is an error
naming it), then builds the serving class of the bundle's kind (thresholds.json's `kind`, looked
up in `idv.kinds`) on one backend. What a bundle does depends on that kind:

- detection (pad, ...): `score` images (P(attack)), `decide` on them;
- matching (face_match): `embed` aligned face crops into unit-norm embeddings, `verify` pairs
  (similarity = dot product) at the 1:1 threshold, `identify` probes against an
  `idv.serving.gallery.Gallery` (1:N) at the 1:N (FPIR) threshold.
Decisions follow thresholds.json's one rule (`idv.thresholds`): score >= threshold -> reject /
match; review_at_or_above <= score < threshold -> review; below -> accept / non_match; NaN (a
failure to acquire: nothing could be scored) -> reject / non_match.
Calling another kind's methods is an error that names the right ones. `Bundle.run` gives
every named output of any bundle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from idv import kinds
from idv.errors import IdvError
from idv.hashing import sha256_file
from idv.serving.backends import BACKENDS, MODEL_FILES, load_backend
from idv.serving.preprocess import prepare_inputs
from idv.serving.schema import SchemaError, check_preprocess
from idv.serving.signing import (
    SIGNATURE_FILE,
    SUMS_FILE,
    SignatureError,
    configured_public_key,
    verify_signature,
)
from idv.thresholds import Thresholds, ThresholdsError

UNSUMMED = (SUMS_FILE, SIGNATURE_FILE)  # the files SHA256SUMS does not list
PREPROCESS_VERSION = 2  # preprocess.json: one entry per named input and output


class BundleError(IdvError, RuntimeError):
    """A bundle that is incomplete, altered or inconsistent; the message names the file."""


def bundle_files(path: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of every file under a bundle directory but SHA256SUMS and its
    signature, sorted."""
    root = Path(path)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() not in UNSUMMED
    )


def write_checksums(path: str | os.PathLike) -> Path:
    """Write SHA256SUMS over every other file of the directory (sha256sum's format)."""
    root = Path(path)
    lines = [f"{sha256_file(root / name)}  {name}\n" for name in bundle_files(root)]
    (root / SUMS_FILE).write_text("".join(lines))
    return root / SUMS_FILE


def verify_bundle(path: str | os.PathLike) -> dict[str, str]:
    """Check SHA256SUMS against the directory; returns {file: sha256}. Raises BundleError naming
    the first file that is missing, modified or not listed."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle {root} is not a directory")
    sums = root / SUMS_FILE
    if not sums.is_file():
        raise BundleError(f"bundle {root}: {SUMS_FILE} is missing; the bundle cannot be verified")
    listed: dict[str, str] = {}
    for number, line in enumerate(sums.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        name = name.removeprefix("*")
        if not sep or len(digest) != 64 or not name:
            raise BundleError(f"{sums}: line {number} is not '<sha256>  <file>': {line!r}")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"{sums}: line {number} names a file outside the bundle: {name!r}")
        listed[name] = digest.lower()
    for name, digest in listed.items():
        file = root / name
        if not file.is_file():
            raise BundleError(f"bundle {root}: file {name!r} listed in {SUMS_FILE} is missing")
        actual = sha256_file(file)
        if actual != digest:
            raise BundleError(
                f"bundle {root}: file {name!r} was modified (sha256 {actual}, "
                f"{SUMS_FILE} says {digest})"
            )
    unlisted = sorted(set(bundle_files(root)) - set(listed))
    if unlisted:
        raise BundleError(
            f"bundle {root}: file(s) {unlisted} are not listed in {SUMS_FILE} (added after export?)"
        )
    return listed


def verify(
    path: str | os.PathLike, public_key: str | os.PathLike | None = None
) -> tuple[dict[str, str], str | None]:
    """`verify_bundle`, then the signature when a public key is given or in
    ``IDV_BUNDLE_PUBLIC_KEY``: ({file: sha256}, the key verified with or None)."""
    checksums = verify_bundle(path)
    key = configured_public_key(public_key)
    if key:
        try:
            verify_signature(path, key)
        except SignatureError as err:
            raise BundleError(str(err)) from err
    return checksums, key


class Bundle:
    """A verified bundle with one loaded backend: `run` (every named output), `decide` (the
    kind's decisions at the primary operating point). Subclasses per kind add the kind's
    methods (`idv.serving.detection.DetectionBundle`, `idv.serving.matching.MatchingBundle`)."""

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str = "torchscript",
        threads=None,
        public_key: str | os.PathLike | None = None,
        *,
        _verified: tuple[dict[str, str], str | None] | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.path = Path(path)
        # `_verified`: what `load_bundle` already checked, so the files are hashed once.
        self.checksums, self.signed_with = _verified or verify(self.path, public_key)
        self.preprocess = self._json("preprocess.json")
        if not isinstance(self.preprocess, dict):
            raise BundleError(f"bundle {self.path}: preprocess.json is not a JSON object")
        version = self.preprocess.get("schema_version")
        if version != PREPROCESS_VERSION:
            raise BundleError(
                f"bundle {self.path}: preprocess.json schema_version {version!r}, this code "
                f"reads version {PREPROCESS_VERSION}: re-export the bundle (idv-export)"
            )
        try:
            check_preprocess(self.preprocess)
        except SchemaError as err:
            raise BundleError(f"bundle {self.path}: preprocess.json {err}") from err
        if "thresholds.json" not in self.checksums:
            raise BundleError(f"bundle {self.path} has no thresholds.json")
        try:
            self.thresholds = Thresholds.load(self.path / "thresholds.json")
        except ThresholdsError as err:
            raise BundleError(f"bundle {self.path}: {err}") from err
        self.kind = self.thresholds.kind
        self.backend_name = backend
        self.threads = threads
        # The model's positional order: preprocess.json's keys are sorted when written.
        self.input_names = list(self.preprocess.get("input_order") or self.preprocess["inputs"])
        self.output_names = list(self.preprocess["outputs"])
        self.primary = self.preprocess["primary_output"]
        self.backend = self.load_model(MODEL_FILES[backend], self.input_names, f"({backend})")

    def load_model(self, name: str, input_names: list[str], what: str = "") -> Any:
        """The bundle's model file `name` (verified: in SHA256SUMS) on this bundle's backend;
        a missing file or one the runtime cannot read is a BundleError naming it."""
        if name not in self.checksums:
            raise BundleError(f"bundle {self.path} has no {name} {what}".rstrip())
        try:
            return load_backend(self.backend_name, self.path / name, input_names, self.threads)
        except (ImportError, MemoryError):  # the environment, not the file
            raise
        except Exception as err:  # noqa: BLE001 - any runtime's failure to read the file
            raise BundleError(
                f"bundle {self.path}: {name} cannot be loaded by {self.backend_name} "
                f"({type(err).__name__}: {err})"
            ) from err

    def _json(self, name: str) -> dict[str, Any]:
        file = self.path / name
        if name not in self.checksums:
            raise BundleError(f"bundle {self.path} has no {name}")
        try:
            return json.loads(file.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BundleError(f"bundle {self.path}: {name} is not valid JSON ({err})") from err

    def __getattr__(self, name: str) -> Any:
        """A method of another kind's bundle: an error that names this bundle's methods."""
        if not name.startswith("_"):
            for other in kinds.kinds():
                cls = other.serving
                if cls is not type(self) and hasattr(cls, name) and not hasattr(Bundle, name):
                    mine = sorted(
                        n for n in vars(type(self)) if not n.startswith("_") and n != "kind"
                    )
                    raise TypeError(
                        f"Bundle.{name} is for {other.name} bundles; {self.path} is a "
                        f"{self.kind} bundle (thresholds.json kind {self.kind!r}): use "
                        f"{' / '.join(mine)}"
                    )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the first image input."""
        size = next(s for s in self.preprocess["inputs"].values() if "resize" in s)["resize"]
        return int(size["height"]), int(size["width"])

    def prepare(self, inputs: Any) -> dict[str, np.ndarray]:
        """The model's named inputs from `inputs` (see idv.serving.preprocess.prepare_inputs)."""
        return prepare_inputs(inputs, self.preprocess)

    def run(self, inputs: Any, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Every named output of the model on `inputs` (any form `prepare` takes), batched; an
        item below the bundle's minimum image side is a failure to acquire: NaN outputs."""
        failures: set[int] = set()
        batch = prepare_inputs(inputs, self.preprocess, failures)
        n = len(next(iter(batch.values())))
        if n == 0:
            shapes = {k: v.get("shape", ["batch"]) for k, v in self.preprocess["outputs"].items()}
            return {k: np.zeros((0, *[d for d in s[1:] if isinstance(d, int)]), np.float32)
                    for k, s in shapes.items()}  # fmt: skip
        try:
            parts = [
                self.backend({k: v[i : i + batch_size] for k, v in batch.items()})
                for i in range(0, n, batch_size)
            ]
        except (ImportError, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001 - the runtime's error, with the file named
            raise BundleError(
                f"bundle {self.path}: {MODEL_FILES[self.backend_name]} failed on a batch of "
                f"{ {k: list(v.shape) for k, v in batch.items()} } ({type(err).__name__}: {err})"
            ) from err
        missing = [name for name in self.output_names if name not in parts[0]]
        if missing:
            raise BundleError(
                f"bundle {self.path}: {MODEL_FILES[self.backend_name]} has no output(s) "
                f"{missing} named in preprocess.json (outputs: {sorted(parts[0])})"
            )
        out = {name: np.concatenate([p[name] for p in parts]) for name in self.output_names}
        if failures:
            rows = sorted(failures)
            for name in out:
                out[name] = out[name].astype(np.float32, copy=True)
                out[name][rows] = np.nan
        return out

    def decide(self, values: Any, segment: Any = None) -> np.ndarray:
        """The decision of each value at the primary operating point (thresholds.json's one
        rule; NaN = failure to acquire); `segment`: one for all samples ({column: value}, or a
        bare value with one segment column) or one per sample."""
        return self.thresholds.decide(np.asarray(values, dtype=np.float64), segment)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, kind={self.kind!r}, "
            f"backend={self.backend_name!r})"
        )


def load_bundle(
    path: str | os.PathLike,
    backend: str = "torchscript",
    threads: int | None = None,
    public_key: str | os.PathLike | None = None,
) -> Bundle:
    """Verify a bundle's checksums (and, with a public key given or in
    ``IDV_BUNDLE_PUBLIC_KEY``, its signature: idv.serving.signing) and load it as its kind's
    serving class, on `backend` ('torchscript' needs torch; 'onnxruntime' needs onnxruntime
    and numpy, never torch)."""
    verified = verify(path, public_key)  # checksums and signature before any file is parsed
    try:
        kind = Thresholds.load(Path(path) / "thresholds.json").kind
    except (FileNotFoundError, ThresholdsError):  # Bundle names what is wrong
        return Bundle(path, backend, threads, public_key, _verified=verified)
    try:
        cls = kinds.get(kind).serving
    except kinds.KindError as err:
        raise BundleError(f"bundle {path}: {err}") from err
    return cls(path, backend, threads, public_key, _verified=verified)
