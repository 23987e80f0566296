"""Import an identity-document dataset (MIDV-500 / MIDV-2020 style) as a document corpus.

Two layouts (``layout=``), both with one folder per document type:

``generic`` (the project's own; what other datasets are converted into)::

    src/<document_type>/images/<name>.<jpg|jpeg|png|tif|tiff>
    src/<document_type>/annotations/<name>.json
        {"document_quad": [[x, y] x 4],
         "fields": {"<field name>": {"quad": [[x, y] x 4], "value": "<text>"}, ...}}

``<name>`` may contain sub-folders (``images/TS01/01.tif`` pairs with
``annotations/TS01/01.json``). Quads are 4 corners in pixels of that image, clockwise from
the document's (or field's) top-left corner; ``fields`` may be absent (no field annotated).
MIDV-500 maps onto it by moving ``<type>/ground_truth/<clip>/<frame>.json`` (``{"quad"}``) to
``annotations/`` as ``document_quad``; its template fields (``ground_truth/<type>.json``,
``field01``... in template coordinates) must first be projected onto each frame by the
template-to-frame homography: this importer does not do it.

``via`` (VGG Image Annotator JSON, as MIDV-2020 ships it), either MIDV-2020's own folders::

    src/images/<document_type>/<file>          e.g. midv2020/photo/images/alb_id/00.jpg
    src/annotations/<document_type>.json       e.g. midv2020/photo/annotations/alb_id.json

or ``src/<document_type>/images/<file>`` with any number of VIA files in
``src/<document_type>/annotations/``. A VIA file is a project (``{"_via_img_metadata": {...}}``)
or a bare export ``{"<key>": {"filename": "<file>", "regions": [...]}}`` (``filename`` defaults
to the key); ``<file>`` is relative to the type's images folder. Each region has
``shape_attributes`` (``polygon`` with 4 points, a repeated closing 5th allowed, or ``rect``)
and ``region_attributes`` (``field_name``, and ``value`` for a text field). The region named
``doc_quad`` is the document's quad; ``face``, ``photo`` and ``signature`` regions are image
zones, not text fields, and are not imported.

Every document is genuine: label 0, attack_type ``bona_fide``. ``subject_id`` is one physical
document: with ``instance_pattern=None`` the document type (MIDV-500: one physical document
per type, filmed many times); otherwise the type plus the instance that the regex finds in
``<name>`` (its group 1, or the whole match): MIDV-2020's ``\\d+`` turns ``alb_id`` /
``00.jpg`` into ``alb_id/00``, the same document in its photo, scan and template. Splits are
subject-disjoint. MRZ fields (``mrz``, ``mrz1``, ``mrz_line2``, ``MRZ line 1``, ...) also go
to the ``mrz`` column, joined by newlines in line-number order.

Bad input is an error naming the file (and the field or VIA key): invalid JSON, a quad that
is not 4 [x, y] numbers, a field without a value, an image that does not decode
(:func:`idv.imaging.read_image`), and an image without its annotation or an annotation without
its image (``on_missing='skip'`` imports the rest and logs the count instead). Everything is
checked before the corpus replaces a previous one, atomically (:class:`CorpusDir`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from PIL import Image

from idv.data.manifest import BONA_FIDE
from idv.data.sources.folder_per_identity import _check_paths
from idv.data.splits import assign_splits
from idv.data.synth.writer import CorpusDir, finish_manifest
from idv.errors import IdvError
from idv.imaging import read_image

log = logging.getLogger(__name__)

LAYOUTS = ("generic", "via")
ON_MISSING = ("error", "skip")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
ANY_IMAGE = "<" + "|".join(s[1:] for s in IMAGE_SUFFIXES) + ">"
DOC_QUAD = "doc_quad"  # the VIA region holding the document's corners (MIDV-2020)
IMAGE_REGIONS = frozenset({"face", "photo", "signature"})  # VIA zones without text
MRZ_FIELD = re.compile(r"mrz(?:[ _-]*(?:line)?[ _-]*(\d+))?", re.IGNORECASE)
UNKNOWN = "unknown"
JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
PROGRESS_EVERY = 1000

Fields = dict[str, dict[str, Any]]
Parse = Callable[[], tuple[list[float], Fields]]


class DocumentImportError(IdvError, ValueError):
    """A document dataset that cannot be imported; the message names the file and the key."""


@dataclass(frozen=True)
class Document:
    """One annotated image: its document type, name (relative, no suffix) and annotation."""

    document_type: str
    name: str
    image: Path
    annotation: str  # the annotation's file (and VIA key), as messages name it
    quad: list[float]  # x1, y1, ..., x4, y4
    fields: Fields  # name -> {"value": str, "quad": 8 floats}


def mrz_text(fields: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The MRZ fields' values joined by newlines in line order (no number first); None if none."""
    lines = []
    for name, field in fields.items():
        match = MRZ_FIELD.fullmatch(name.strip())
        if match:
            lines.append((int(match.group(1)) if match.group(1) else -1, name, field["value"]))
    return "\n".join(value for *_, value in sorted(lines)) if lines else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _quad(value: Any, where: str) -> list[float]:
    """Four [x, y] corners, flattened to the manifest's 8 floats."""
    ok = isinstance(value, list) and len(value) == 4
    ok = ok and all(isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) for p in value)
    if not ok:
        raise DocumentImportError(
            f"{where}: expected a quad of 4 [x, y] points (clockwise from top-left), got "
            f"{_short(value)}"
        )
    flat = [float(c) for point in value for c in point]
    if not all(math.isfinite(c) for c in flat):
        raise DocumentImportError(f"{where}: quad has a NaN or infinite coordinate: {flat}")
    return flat


def _field(value: Any, quad: list[float], where: str) -> dict[str, Any]:
    if value is None:
        raise DocumentImportError(f"{where}: the field has no value")
    if not isinstance(value, str):
        raise DocumentImportError(f"{where}: value {_short(value)} is not a string")
    return {"value": value, "quad": quad}


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DocumentImportError(f"{file}: not valid JSON ({err})") from None


def parse_generic(file: Path) -> tuple[list[float], Fields]:
    """The document quad and fields of one ``generic`` annotation file."""
    data = _read_json(file)
    if not isinstance(data, dict) or "document_quad" not in data:
        raise DocumentImportError(f"{file}: expected an object with 'document_quad' (and 'fields')")
    quad = _quad(data["document_quad"], f"{file}: document_quad")
    raw = data.get("fields", {})
    if not isinstance(raw, dict):
        raise DocumentImportError(f"{file}: fields: expected an object {{name: {{quad, value}}}}")
    fields: Fields = {}
    for name, spec in raw.items():
        where = f"{file}: field {name!r}"
        if not isinstance(spec, dict):
            raise DocumentImportError(f"{where}: expected an object with 'quad' and 'value'")
        fields[name] = _field(spec.get("value"), _quad(spec.get("quad"), f"{where}: quad"), where)
    return quad, fields


def _via_quad(shape: Any, where: str) -> list[float]:
    """A VIA polygon (4 points, or 5 closing the ring) or rect, as a quad."""
    kind = shape.get("name") if isinstance(shape, dict) else None
    if kind == "rect":
        x, y, w, h = (shape.get(k) for k in ("x", "y", "width", "height"))
        if not all(map(_is_number, (x, y, w, h))):
            raise DocumentImportError(f"{where}: rect needs numbers x, y, width, height: {shape}")
        points: Any = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    elif kind == "polygon":
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        if not (isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys)):
            raise DocumentImportError(f"{where}: polygon needs all_points_x / _y of equal length")
        points = [list(p) for p in zip(xs, ys, strict=True)]
        if len(points) == 5 and points[0] == points[-1]:
            points = points[:4]
    else:
        raise DocumentImportError(
            f"{where}: shape_attributes {_short(shape)} is not a 'polygon' or 'rect'"
        )
    return _quad(points, where)


def parse_via(entry: Any, where: str) -> tuple[list[float], Fields]:
    """The document quad (the ``doc_quad`` region) and text fields of one VIA image entry."""
    regions = entry.get("regions") if isinstance(entry, dict) else None
    if isinstance(regions, dict):  # VIA 1.x: {"0": region, "1": ...}
        regions = [regions[k] for k in sorted(regions, key=lambda k: (len(k), k))]
    if not isinstance(regions, list):
        raise DocumentImportError(f"{where}: expected an object with a 'regions' list")
    quad, fields = None, {}
    for i, region in enumerate(regions):
        attrs = region.get("region_attributes") if isinstance(region, dict) else None
        name = attrs.get("field_name") if isinstance(attrs, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise DocumentImportError(f"{where}: region {i}: no region_attributes.field_name")
        here, shape = f"{where}: field {name!r}", region.get("shape_attributes")
        if name in IMAGE_REGIONS:
            continue
        if name == DOC_QUAD:
            if quad is not None:
                raise DocumentImportError(f"{here}: a second {DOC_QUAD!r} region")
            quad = _via_quad(shape, here)
        elif name in fields:
            raise DocumentImportError(f"{here}: a second region of this field")
        else:
            fields[name] = _field(attrs.get("value"), _via_quad(shape, here), here)
    if quad is None:
        raise DocumentImportError(f"{where}: no {DOC_QUAD!r} region (the document's corners)")
    return quad, fields


def _images(folder: Path, *, keep_suffix: bool) -> dict[str, Path]:
    """Image files under `folder` by relative name (with or without suffix). Two files of one
    name (``a.png``, ``a.tif``) would share an annotation and a sample id: refused."""
    if not folder.is_dir():
        return {}
    found, by_name, ignored = {}, {}, []
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not file.is_file():
            continue
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            ignored.append(rel.as_posix())
            continue
        name = rel.with_suffix("").as_posix()
        if name in by_name:
            raise DocumentImportError(f"{by_name[name]}, {file}: two images named {name!r}")
        by_name[name] = file
        found[rel.as_posix() if keep_suffix else name] = file
    if ignored:
        log.info("%s: %d files are not images %s, ignored: %s", folder, len(ignored),
                 IMAGE_SUFFIXES, ignored[:20])  # fmt: skip
    return found


def _type_folders(src: Path) -> list[Path]:
    """``src/<document_type>/`` folders that hold ``images/`` or ``annotations/``."""
    folders, other = [], []
    for folder in sorted(p for p in src.iterdir() if not p.name.startswith(".")):
        is_type = folder.is_dir() and any((folder / d).is_dir() for d in ("images", "annotations"))
        (folders if is_type else other).append(folder)
    if other:
        log.info("%s: %d entries are not document-type folders, ignored: %s", src, len(other),
                 [p.name for p in other][:20])  # fmt: skip
    return folders


@dataclass(frozen=True)
class _Source:
    """One document type: its images and annotations under one key each, so they pair up."""

    document_type: str
    images: dict[str, Path]
    annotations: dict[str, tuple[str, Parse]]  # key -> (where, parse)
    missing_annotation: Callable[[str], str]  # what was expected, for the message
    missing_image: Callable[[str], str]


def _generic_sources(src: Path) -> Iterable[_Source]:
    for folder in _type_folders(src):
        notes = folder / "annotations"
        files = sorted(notes.rglob("*.json")) if notes.is_dir() else []
        annotations = {
            f.relative_to(notes).with_suffix("").as_posix(): (str(f), partial(parse_generic, f))
            for f in files
            if not any(p.startswith(".") for p in f.relative_to(notes).parts)
        }
        t = folder.name
        yield _Source(
            t,
            _images(folder / "images", keep_suffix=False),
            annotations,
            lambda key, t=t: f"expected {t}/annotations/{key}.json",
            lambda key, t=t: f"expected {t}/images/{key}.{ANY_IMAGE}",
        )


def _via_entries(files: list[Path]) -> dict[str, tuple[str, Parse]]:
    """Image file name -> (where, parse) over the VIA files of one document type."""
    entries: dict[str, tuple[str, Parse]] = {}
    for file in files:
        data = _read_json(file)
        meta = data.get("_via_img_metadata", data) if isinstance(data, dict) else None
        if not isinstance(meta, dict):
            raise DocumentImportError(f"{file}: expected a VIA object {{key: {{regions}}}}")
        for key, entry in meta.items():
            where = f"{file}: entry {key!r}"
            filename = (entry.get("filename") or key) if isinstance(entry, dict) else None
            if not isinstance(filename, str):
                raise DocumentImportError(f"{where}: expected an object with 'filename', 'regions'")
            filename = PurePosixPath(filename).as_posix()
            if filename in entries:
                raise DocumentImportError(f"{where}: {filename!r} is annotated twice (also "
                                          f"{entries[filename][0]})")  # fmt: skip
            entries[filename] = (where, partial(parse_via, entry, where))
    return entries


def _via_sources(src: Path) -> Iterable[_Source]:
    if (src / "images").is_dir() and (src / "annotations").is_dir():  # MIDV-2020's folders
        types = {p.name for p in (src / "images").iterdir() if p.is_dir()}
        types |= {p.stem for p in (src / "annotations").glob("*.json")}
        folders = []
        for t in sorted(n for n in types if not n.startswith(".")):
            file = src / "annotations" / f"{t}.json"
            folders.append((t, src / "images" / t, [file] if file.is_file() else []))
    else:
        folders = [
            (f.name, f / "images", sorted((f / "annotations").glob("*.json")))
            for f in _type_folders(src)
        ]
    for t, images, files in folders:
        names = ", ".join(str(f) for f in files) or "none"
        yield _Source(
            t,
            _images(images, keep_suffix=True),
            _via_entries(files),
            lambda key, t=t, names=names: f"no entry for {key!r} in {t}'s VIA file(s): {names}",
            lambda key, images=images: f"expected {images / key}",
        )


def list_documents(
    src: str | os.PathLike, *, layout: str = "generic", on_missing: str = "error"
) -> list[Document]:
    """Every annotated image of `src`, parsed and checked, sorted (document type, name)."""
    src = Path(src)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source dataset directory not found")
    sources = _generic_sources(src) if layout == "generic" else _via_sources(src)
    documents, unpaired = [], []
    for source in sources:
        for key in sorted(source.images.keys() | source.annotations.keys()):
            if key not in source.annotations:
                unpaired.append(f"{source.images[key]}: image without an annotation "
                                f"({source.missing_annotation(key)})")  # fmt: skip
            elif key not in source.images:
                where = source.annotations[key][0]
                unpaired.append(f"{where}: annotation without an image "
                                f"({source.missing_image(key)})")  # fmt: skip
            else:
                where, parse = source.annotations[key]
                quad, fields = parse()
                name = PurePosixPath(key).with_suffix("").as_posix() if layout == "via" else key
                documents.append(
                    Document(source.document_type, name, source.images[key], where, quad, fields)
                )
    if unpaired and on_missing == "error":
        raise DocumentImportError(
            f"{unpaired[0]} [{len(unpaired)} unpaired file(s) in all; on_missing=skip imports "
            "the rest]"
        )
    if unpaired:
        log.warning("%s: %d unpaired files skipped (on_missing=skip): %s", src, len(unpaired),
                    "; ".join(unpaired[:20]))  # fmt: skip
    if not documents:
        hint = ""
        if layout == "generic" and all((src / d).is_dir() for d in ("images", "annotations")):
            hint = "; images/ and annotations/ at the top are MIDV-2020's folders: layout=via?"
        raise DocumentImportError(
            f"{src}: no annotated images; expected the {layout!r} layout (see "
            f"idv.data.sources.id_documents){hint}"
        )
    return documents


def subject_of(document: Document, instance_pattern: str | None) -> str:
    """The physical document: its type, or its type plus the instance found in its name."""
    if instance_pattern is None:
        return document.document_type
    match = re.search(instance_pattern, document.name)
    if match is None:
        raise DocumentImportError(
            f"{document.image}: name {document.name!r} has no document instance "
            f"(instance_pattern {instance_pattern!r} does not match)"
        )
    instance = match.group(1) if match.re.groups else match.group(0)
    return f"{document.document_type}/{instance}"


def _store(document: Document, tmp: Path) -> tuple[str, bool]:
    """Write the image under images/<type>/: JPEG / PNG bytes copied, any other format
    re-encoded as lossless PNG (the decoded pixels). Returns (path, re-encoded)."""
    pixels = read_image(document.image)  # refuses what the corpus' readers could not decode
    with open(document.image, "rb") as handle:
        head = handle.read(len(PNG_MAGIC))
    copy = head.startswith(JPEG_MAGIC) or head.startswith(PNG_MAGIC)
    suffix = ".jpg" if head.startswith(JPEG_MAGIC) else ".png"
    rel = f"images/{document.document_type}/{document.name}{suffix}"
    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copyfile(document.image, tmp / rel)
    else:
        Image.fromarray(pixels).save(tmp / rel, format="PNG")
    return rel, not copy


def import_documents(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int,
    split_fractions: Mapping[str, float],
    layout: str = "generic",
    on_missing: str = "error",
    geography: Mapping[str, str] | None = None,
    instance_pattern: str | None = None,
    source_dataset: str | None = None,
) -> pd.DataFrame:
    """Import the dataset under `src` into the corpus directory `out`; returns the manifest.

    Every annotation is parsed and checked before anything is written, and `out` is replaced
    atomically, so a failure leaves any previous corpus intact. `geography` maps a document
    type to its country / region (others: 'unknown'); `source_dataset` defaults to the name of
    `src`.
    """
    src, out = Path(src), Path(out)
    _check_paths(src, out)
    assign_splits(pd.DataFrame({"subject_id": ["-"]}), seed=seed, fractions=split_fractions)
    if instance_pattern is not None:
        re.compile(instance_pattern)  # a bad regex fails now
    documents = list_documents(src, layout=layout, on_missing=on_missing)
    subjects = [subject_of(d, instance_pattern) for d in documents]
    geography = dict(geography or {})
    dataset = source_dataset or src.resolve().name
    rows, reencoded = [], 0
    with CorpusDir(out) as tmp:
        for document, subject in zip(documents, subjects, strict=True):
            rel, converted = _store(document, tmp)
            reencoded += converted
            t = document.document_type
            rows.append({
                "sample_id": f"{t}/{document.name}", "path": rel, "label": 0,
                "subject_id": subject, "attack_type": BONA_FIDE, "document_type": t,
                "template": t, "geography": geography.get(t, UNKNOWN),
                "source_dataset": dataset, "document_quad": document.quad,
                "fields": json.dumps(document.fields, ensure_ascii=False),
                "mrz": mrz_text(document.fields), "mask_path": None,
                "source_file": document.image.relative_to(src).as_posix(),
            })  # fmt: skip
            if len(rows) % PROGRESS_EVERY == 0:
                log.info("%s: %d / %d images", src, len(rows), len(documents))
        frame = finish_manifest(
            rows, tmp, seed=seed, fractions=split_fractions, stratify=("document_type",)
        )
    log.info(
        "%s: %d images of %d document types, %d physical documents; %d re-encoded as PNG",
        src, len(frame), frame["document_type"].nunique(), frame["subject_id"].nunique(),
        reencoded,
    )  # fmt: skip
    return frame
