"""The synthetic identity-document corpus: genuine ID cards (TD1) and passport data pages (TD3),
forgeries of them with their pixel masks, each photographed by a document camera.

Per identity of the faces corpus (same seed and index: the same person, the same geography,
and the faces corpus' subject -> split map, so a document can be matched against that
person's selfies without a leak across splits), genuine documents printed from the issuer's
template (`idv.documents.templates`): a guilloche / rosette background with a rainbow-print
gradient, the portrait (the person some years earlier), text fields (DejaVu; the fields a
reader compares with the MRZ in DejaVu Sans Mono) and an ICAO 9303 MRZ in OCR-B with correct
check digits (`idv.documents.mrz`). Per genuine document, forgeries of distinct species
(`source_sample_id`, same subject, so the same split), each with a random `attack_strength`:

- `portrait_substitution`: another person's face pasted into the portrait box and blended;
- `text_edit`: a visual-zone field re-rendered with another value in a near font (bold or
  resized), a shifted baseline or kerning, the patch locally re-compressed;
- `copy_move`: a region of the document copied elsewhere on it;
- `mrz_inconsistency`: an MRZ field rewritten (the visual zone left as printed), its check
  digits recomputed or, with `stale_check_share`, left as they were;
- `invalid_check_digit`: one MRZ check digit replaced;
- `recapture`: the captured document shown on a screen or printed, then photographed again.

The edits are digital forgeries of the genuine document's own capture (the camera's draws
replayed: a forgery differs from its source only where it was edited; the edit pasted into
the photo with the camera's blur and noise imitated in proportion to 1 - strength, see
`document_camera`); a recapture shows that capture on a screen or print and photographs it
again. The mask (`mask_path`, 255 = tampered) marks the pixels that changed (the whole
document for a recapture); genuine documents have none. Hard cases (`hard_case`: worn, strong
glare, off-angle) are drawn per genuine capture, so its forgeries share them. The document
camera: the document on a desk, perspective, glare spot, blur, noise, JPEG; the mask goes
through the same warp.
"""

from __future__ import annotations

import functools
import io
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from idv.data.augment.attacks import print_attack, screen_replay
from idv.data.manifest import BONA_FIDE
from idv.data.splits import assign_splits
from idv.data.synth.face_corpus import FACE_STRATA
from idv.data.synth.faces import Identity, render_face, sample_identity
from idv.data.synth.portrait import PORTRAIT_NUISANCE, earlier_capture
from idv.data.synth.writer import build_corpus, identity_rng, pick
from idv.documents.mrz import compose_td1, compose_td3
from idv.documents.templates import (
    COMPARED_FIELDS,
    FIELD_FONT,
    FIELD_SIZE,
    MRZ_FONT,
    MRZ_PITCH_MM,
    NEAR_FONT,
    TEMPLATES,
    Box,
    Template,
    TemplateError,
)

DOCUMENT_STRATA = ("label", "attack_type")
REQUIRED_FIELDS = (
    "surname", "given_names", "document_number", "birth_date", "expiry_date", "sex",
    "nationality",
)  # fmt: skip
LABELS = {
    "surname": "SURNAME", "given_names": "GIVEN NAMES", "document_number": "DOCUMENT NO.",
    "birth_date": "DATE OF BIRTH", "expiry_date": "DATE OF EXPIRY", "sex": "SEX",
    "nationality": "NATIONALITY",
}  # fmt: skip
# (line, position) of every check digit (ICAO 9303 parts 4 and 5).
CHECK_POSITIONS = {
    "td1": ((0, 14), (1, 6), (1, 14), (1, 29)),
    "td3": ((1, 9), (1, 19), (1, 27), (1, 42), (1, 43)),
}
_SYLLABLES = (
    "KA", "RI", "MO", "SEN", "TA", "LU", "VI", "NOR", "EL", "DA", "MIR", "AN", "OS", "BE", "LIN",
    "ZA", "TOR", "HA", "NE", "SO", "PEL", "RA", "QUI", "DO", "FEN",
)  # fmt: skip


# --------------------------------------------------------------------------------- printing


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, max(int(size), 4))


@functools.lru_cache(maxsize=8)
def _sans_font_path(bold: bool) -> str:
    """DejaVu Sans from matplotlib's wheel (a dependency): labels and names, never read."""
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)


def _background(name: str, ppm: float) -> np.ndarray:
    return _security(name, ppm)[0]


@functools.lru_cache(maxsize=32)
def _security(name: str, ppm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The template's security print, drawn once per process: a tinted paper, a rainbow-print
    gradient, guilloche waves and a rosette (deterministic from the template name); returns
    the printed background, the pattern's ink coverage (H, W) and its colour."""
    t = TEMPLATES[name]
    w, h = (round(v * ppm) for v in t.size_mm)
    rng = np.random.default_rng(sum(map(ord, name)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    hue = (t.hue + 0.18 * xx / w) % 1.0  # rainbow print: a slow hue sweep across the page
    hsv = np.stack([hue * 179, np.full_like(hue, 38), np.full_like(hue, 236)], -1)
    paper = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    ink = np.zeros((h, w), np.float32)
    for k in range(7):  # guilloche: interfering sinusoids
        f1, f2, ph = rng.uniform(0.03, 0.09), rng.uniform(0.005, 0.02), rng.uniform(0, 6.28)
        ink += np.cos(f1 * xx + 4.0 * np.sin(f2 * yy + ph) + k) > 0.985
    cx, cy, r = w * rng.uniform(0.55, 0.8), h * rng.uniform(0.3, 0.5), 0.3 * h
    rad, ang = np.hypot(xx - cx, yy - cy), np.arctan2(yy - cy, xx - cx)
    petals = r * (0.6 + 0.4 * np.cos(int(rng.integers(6, 13)) * ang))
    ink += (np.abs(rad - petals) < 0.8) | (np.abs(rad - 0.6 * petals) < 0.6)
    colour = cv2.cvtColor(
        np.array([[[(t.hue * 179 + 20) % 179, 120, 170]]], np.uint8), cv2.COLOR_HSV2RGB
    )[0, 0].astype(np.float32)
    alpha = np.clip(ink, 0, 1)[..., None] * 0.55
    # ICAO 9303's clear area: the MRZ band carries no dark background print.
    alpha[round((t.mrz_top_mm - 1.5) * ppm) :] *= 0.15
    background = (paper * (1 - alpha) + colour * alpha).astype(np.uint8)
    return background, np.clip(ink, 0, 1).astype(np.float32), colour


def overprint(
    image: np.ndarray, box: tuple[int, int, int, int], t: Template, ppm: float, amount: float
) -> np.ndarray:
    """The security pattern printed over a box of the document (the portrait): genuine
    documents carry it across the photo, a photo pasted later does not."""  # fmt: skip
    _, ink, colour = _security(t.name, ppm)
    x, y, w, h = box
    a = ink[y : y + h, x : x + w, None] * np.float32(amount)
    region = image[y : y + h, x : x + w].astype(np.float32)
    image[y : y + h, x : x + w] = (region * (1 - a) + colour * a).astype(np.uint8)
    return image


def _px(box: Box, ppm: float) -> tuple[int, int, int, int]:
    return (round(box.x * ppm), round(box.y * ppm), round(box.w * ppm), round(box.h * ppm))


def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    font_path: str,
    size: int,
    fill: tuple[int, int, int],
    spacing: float = 0.0,
) -> None:
    """Draw `text` with its top at xy[1]; `spacing` px added between characters (kerning)."""
    font = _font(font_path, size)
    if spacing == 0.0:
        draw.text(xy, text, font=font, fill=fill)
        return
    x = xy[0]
    for ch in text:
        draw.text((x, xy[1]), ch, font=font, fill=fill)
        x += font.getlength(ch) + spacing


@dataclass(frozen=True)
class Holder:
    """What a document says about its holder (visual zone and MRZ from the same values)."""

    surname: str
    given_names: str
    document_number: str
    birth: date
    expiry: date
    sex: str  # M | F

    def visual(self, t: Template) -> dict[str, str]:
        return {
            "surname": self.surname, "given_names": self.given_names,
            "document_number": self.document_number,
            "birth_date": self.birth.strftime(t.date_format),
            "expiry_date": self.expiry.strftime(t.date_format),
            "sex": self.sex, "nationality": t.issuing_state,
        }  # fmt: skip

    def mrz(self, t: Template) -> list[str]:
        values = dict(
            issuing_state=t.issuing_state, document_number=self.document_number,
            surname=self.surname, given_names=self.given_names, nationality=t.issuing_state,
            birth_date=self.birth.strftime("%y%m%d"), sex=self.sex,
            expiry_date=self.expiry.strftime("%y%m%d"),
        )  # fmt: skip
        if t.format == "td1":
            return compose_td1(document_code="I", **values)
        return compose_td3(document_code="P", **values)


def _name(rng: np.random.Generator, parts: tuple[int, int]) -> str:
    return "".join(
        _SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), rng.integers(*parts))
    )


def _holder(rng: np.random.Generator, identity: Identity, issued: date) -> Holder:
    age = {"18-29": (18, 30), "30-49": (30, 50), "50+": (50, 80)}[identity.age_band]
    birth = issued - timedelta(days=int(rng.integers(age[0] * 365, age[1] * 365)))
    given = " ".join(_name(rng, (2, 4)) for _ in range(int(rng.integers(1, 3))))
    letters = "".join(rng.choice(list(string.ascii_uppercase), 2))
    number = letters + "".join(str(d) for d in rng.integers(0, 10, 7))
    return Holder(
        surname=_name(rng, (2, 5)), given_names=given, document_number=number, birth=birth,
        expiry=issued + timedelta(days=int(rng.choice([5, 10])) * 365),
        sex="F" if identity.sex == "female" else "M",
    )  # fmt: skip


@dataclass
class Printed:
    """A printed document and where its parts landed (px boxes), for forgers and masks."""

    image: np.ndarray  # (H, W, 3) uint8
    fields: dict[str, tuple[int, int, int, int]]
    portrait: tuple[int, int, int, int]
    mrz_lines: list[tuple[int, int, int, int]]  # one box per line
    mrz: list[str]
    visual: dict[str, str]


def _mrz_font(t: Template, ppm: float) -> ImageFont.FreeTypeFont:
    return _font(str(MRZ_FONT), round(MRZ_PITCH_MM * ppm / t.mrz_pitch_em))


def _mrz_glyph(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont,
    ch: str,
    cell_x: float,
    top: float,
    pitch: float,
    shift: tuple[float, float] = (0.0, 0.0),
) -> None:
    """One MRZ character centred in its ICAO cell, its cap top at `top` (+ a forger's shift)."""
    cap_top = font.getbbox("0")[1]
    x = cell_x + (pitch - font.getlength(ch)) / 2 + shift[0]
    draw.text((x, top - cap_top + shift[1]), ch, font=font, fill=(18, 18, 22))


def _print_mrz(draw: ImageDraw.ImageDraw, t: Template, lines: list[str], ppm: float):
    """The MRZ in OCR-B at the ICAO pitch; returns each line's box."""
    font = _mrz_font(t, ppm)
    pitch = MRZ_PITCH_MM * ppm
    boxes = []
    for i, line in enumerate(lines):
        top = (t.mrz_top_mm + i * t.mrz_line_mm) * ppm
        for j, ch in enumerate(line):
            _mrz_glyph(draw, font, ch, t.mrz_left_mm * ppm + j * pitch, top, pitch)
        boxes.append(
            (round(t.mrz_left_mm * ppm), round(top), round(len(line) * pitch),
             round(t.mrz_height_mm * ppm))
        )  # fmt: skip
    return boxes


def field_font(t: Template, name: str) -> tuple[str, float]:
    """The font of a visual-zone field and its size in units of the field box height."""
    if name in COMPARED_FIELDS:
        return str(FIELD_FONT), FIELD_SIZE
    return _sans_font_path(bold=name == "surname"), 1.15


def print_document(
    t: Template,
    holder: Holder,
    portrait: np.ndarray,
    ppm: float,
    sample_id: str,
    overprint_amount: float = 0.0,
) -> Printed:
    """Print a genuine document of template `t` (px per mm `ppm`)."""
    missing = [f for f in REQUIRED_FIELDS if f not in t.fields]
    if missing:
        raise TemplateError(
            f"sample {sample_id}: template {t.name} has no field(s) {missing} (it defines "
            f"{sorted(t.fields)})"
        )
    image = Image.fromarray(_background(t.name, ppm).copy())
    draw = ImageDraw.Draw(image)
    ink, label_ink = (20, 24, 60), (70, 70, 90)
    _text(draw, (3.5 * ppm, 1.8 * ppm), f"{t.country}  {t.title}", _sans_font_path(True),
          round(3.2 * ppm), ink)  # fmt: skip
    visual = holder.visual(t)
    fields = {}
    for name in REQUIRED_FIELDS:
        box = t.fields[name]
        x, y, w, h = _px(box, ppm)
        _text(draw, (x, y - 1.9 * ppm), LABELS[name], _sans_font_path(False), round(1.6 * ppm),
              label_ink)  # fmt: skip
        path, rel = field_font(t, name)
        _text(draw, (x, y), visual[name], path, round(h * rel), ink)
        fields[name] = (x, y, w, h)
    px, py, pw, ph = _px(t.portrait, ppm)
    face = cv2.resize(portrait, (pw, ph), interpolation=cv2.INTER_AREA)
    image.paste(Image.fromarray(face), (px, py))
    lines = holder.mrz(t)
    boxes = _print_mrz(draw, t, lines, ppm)
    pixels = overprint(np.asarray(image).copy(), (px, py, pw, ph), t, ppm, overprint_amount)
    return Printed(pixels, fields, (px, py, pw, ph), boxes, lines, visual)


def _portrait(identity: Identity, rng: np.random.Generator, size: int, drift: float):
    younger = earlier_capture(identity, rng, drift)
    return render_face(younger, rng, size=size, nuisance=PORTRAIT_NUISANCE).image


# -------------------------------------------------------------------------------- forgeries


def _encode(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def _jpeg(patch: np.ndarray, quality: int) -> np.ndarray:
    """`patch` through a JPEG round trip (a forger's local re-compression, a camera)."""
    data = _encode(patch, quality)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(sigma, 0.3))


def _substitute_portrait(
    doc: Printed, donor: np.ndarray, t: Template, ppm: float, strength: float, rng, cfg
) -> tuple[np.ndarray, np.ndarray]:
    """Another face over the portrait, blended through a feathered box, its print tone off;
    the security overprint imitated by a careful forger (low strength), misregistered by a
    few pixels, and missing from a crude one."""
    x, y, w, h = doc.portrait
    image = doc.image.astype(np.float32)
    face = cv2.resize(donor, (w, h), interpolation=cv2.INTER_AREA)
    imitation = np.zeros(doc.image.shape, np.uint8)
    dx, dy = (
        int(v) for v in rng.integers(-cfg["overprint_shift_px"], cfg["overprint_shift_px"] + 1, 2)
    )
    imitation[y : y + h, x : x + w] = face
    amount = cfg["overprint"] * (1.0 - strength)
    sx, sy = max(x + dx, 0), max(y + dy, 0)
    face = overprint(imitation, (sx, sy, w, h), t, ppm, amount)[y : y + h, x : x + w]
    face = face.astype(np.float32)
    tone = 1.0 + rng.uniform(-1, 1, 3) * cfg["tone_shift"] * strength
    face = np.clip(face * tone + rng.normal(0, 3, face.shape) * strength, 0, 255)
    inset = int(round(rng.uniform(0, 0.12) * min(w, h)))
    mask = np.zeros(image.shape[:2], np.float32)
    mask[y + inset : y + h - inset, x + inset : x + w - inset] = 1.0
    alpha = _feather(mask, rng.uniform(*cfg["seam_sigma"]))[..., None]
    region = np.zeros_like(image)
    region[y : y + h, x : x + w] = face
    image = image * (1 - alpha) + region * alpha
    return np.clip(image, 0, 255).astype(np.uint8), (alpha[..., 0] > 0.1)


def _rewrite(
    doc: Printed,
    box: tuple[int, int, int, int],
    text: str,
    font_path: str,
    size: int,
    rng: np.random.Generator,
    strength: float,
    cfg: Mapping[str, Any],
    *,
    erase: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Erase a box to the security print behind it and draw `text` there: a forger's patch,
    shifted, kerned and locally re-compressed by `strength`."""
    x, y, w, h = box
    pad = max(2, h // 4)
    x0, y0, x1, y1 = max(x - pad, 0), max(y - pad, 0), x + w + pad, y + h + pad
    image = doc.image.copy()
    if erase:  # the forger's background: a blurred copy of the surrounding print
        patch = image[y0:y1, x0:x1].astype(np.float32)
        image[y0:y1, x0:x1] = cv2.medianBlur(patch.astype(np.uint8), 7)
    canvas = Image.fromarray(image)
    shift = rng.uniform(-1, 1, 2) * cfg["max_shift_px"] * strength
    spacing = rng.uniform(-1, 1) * cfg["max_kerning_px"] * strength
    _text(ImageDraw.Draw(canvas), (x + shift[0], y + shift[1]), text, font_path, size,
          (20, 24, 60), spacing=spacing)  # fmt: skip
    out = np.asarray(canvas).copy()
    quality = int(round(95 - strength * (95 - cfg["recompress_quality"])))
    out[y0:y1, x0:x1] = _jpeg(out[y0:y1, x0:x1], quality)
    mask = np.zeros(out.shape[:2], bool)
    mask[y0:y1, x0:x1] = np.any(out[y0:y1, x0:x1] != doc.image[y0:y1, x0:x1], axis=-1)
    mask[y0:y1, x0:x1] = cv2.dilate(mask[y0:y1, x0:x1].astype(np.uint8), np.ones((3, 3))) > 0
    return out, mask


def _edited_value(name: str, value: str, rng: np.random.Generator, t: Template, h: Holder):
    """Another plausible value of a field (what a forger writes)."""
    if name == "birth_date":
        return (h.birth - timedelta(days=int(rng.integers(400, 4000)))).strftime(t.date_format)
    if name == "expiry_date":
        return (h.expiry + timedelta(days=int(rng.integers(400, 3000)))).strftime(t.date_format)
    if name == "document_number":
        digits = list(value)
        i = int(rng.integers(2, len(digits)))
        digits[i] = str((int(digits[i]) + int(rng.integers(1, 10))) % 10)
        return "".join(digits)
    return _name(rng, (2, 5))


def _text_edit(doc: Printed, t: Template, holder: Holder, ppm, strength, rng, cfg):
    name = pick(rng, cfg["fields"])
    value = _edited_value(name, doc.visual[name], rng, t, holder)
    path, rel = field_font(t, name)
    if rng.random() < cfg["near_font_share"] and path == str(FIELD_FONT):
        path = str(NEAR_FONT)
    size = round(doc.fields[name][3] * rel * (1 + rng.uniform(-1, 1) * cfg["size_jitter"]))
    image, mask = _rewrite(doc, doc.fields[name], value, path, size, rng, strength, cfg)
    return image, mask, {"edited_field": name}


def _mrz_inconsistency(doc: Printed, t: Template, holder: Holder, ppm, strength, rng, cfg):
    """The MRZ of a holder with another birth date / expiry / number, check digits recomputed
    (or, with `stale_check_share`, the old ones kept), re-printed over the old MRZ."""
    name = pick(rng, cfg["fields"])
    days = int(rng.integers(400, 4000 if name == "birth_date" else 3000))
    if name == "birth_date":
        changed = replace(holder, birth=holder.birth - timedelta(days=days))
    elif name == "expiry_date":
        changed = replace(holder, expiry=holder.expiry + timedelta(days=days))
    else:
        number = _edited_value(name, holder.document_number, rng, t, holder)
        changed = replace(holder, document_number=number)
    lines = changed.mrz(t)
    stale = rng.random() < cfg["stale_check_share"]
    if stale:  # the forger changed the field's characters only
        lines = _keep_checks(lines, doc.mrz, t.format)
    image, mask = _reprint_mrz(doc, t, lines, ppm, rng, strength, cfg)
    return image, mask, {"edited_field": name, "stale_check": int(stale), "mrz": lines}


def _keep_checks(new: list[str], old: list[str], fmt: str) -> list[str]:
    """`new` with `old`'s check digits: what a forger who does not know the rule leaves."""
    lines = [list(line) for line in new]
    for line, pos in CHECK_POSITIONS[fmt]:
        lines[line][pos] = old[line][pos]
    return ["".join(line) for line in lines]


def _reprint_mrz(doc: Printed, t: Template, lines: list[str], ppm, rng, strength, cfg):
    """Re-print the MRZ characters that differ from the printed ones (a forger's patch)."""
    image = doc.image.copy()
    mask = np.zeros(image.shape[:2], bool)
    pitch = MRZ_PITCH_MM * ppm
    font = _mrz_font(t, ppm)
    shift = tuple(rng.uniform(-1, 1, 2) * cfg["max_shift_px"] * strength)
    for i, (new, old) in enumerate(zip(lines, doc.mrz, strict=True)):
        x0, top, _, h = doc.mrz_lines[i]
        for j, (a, b) in enumerate(zip(new, old, strict=True)):
            if a == b:
                continue
            cx0, cx1 = int(x0 + j * pitch), int(x0 + (j + 1) * pitch)
            y0, y1 = max(top - 2, 0), top + h + 2
            image[y0:y1, cx0:cx1] = cv2.medianBlur(image[y0:y1, cx0:cx1], 5)
            canvas = Image.fromarray(image)
            _mrz_glyph(ImageDraw.Draw(canvas), font, a, cx0, top, pitch, shift)
            image = np.asarray(canvas).copy()
            mask[y0:y1, cx0:cx1] = True
    ys, xs = np.nonzero(mask)
    if len(ys):
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        quality = int(round(95 - strength * (95 - cfg["recompress_quality"])))
        image[y0:y1, x0:x1] = _jpeg(image[y0:y1, x0:x1], quality)
    return image, mask


def _invalid_check_digit(doc: Printed, t: Template, holder, ppm, strength, rng, cfg):
    """One printed check digit replaced by another digit (the filler check of an empty TD3
    personal number is left alone: ICAO reads a 0 there as valid too)."""
    positions = [(line, pos) for line, pos in CHECK_POSITIONS[t.format]
                 if doc.mrz[line][pos].isdigit()]  # fmt: skip
    line, pos = positions[int(rng.integers(len(positions)))]
    lines = list(doc.mrz)
    new = str((int(lines[line][pos]) + int(rng.integers(1, 10))) % 10)
    lines[line] = lines[line][:pos] + new + lines[line][pos + 1 :]
    image, mask = _reprint_mrz(doc, t, lines, ppm, rng, strength, cfg)
    return image, mask, {"edited_field": f"check_{line}_{pos}", "mrz": lines}


def _copy_move(doc: Printed, t, holder, ppm, strength, rng, cfg):
    """A rectangle of the document pasted elsewhere on it (a digit block, a piece of the
    portrait or of the security print), its edge feathered by `strength`."""
    image = doc.image.astype(np.float32)
    hgt, wid = image.shape[:2]
    bw = int(wid * rng.uniform(*cfg["size_share"]))
    bh = int(hgt * rng.uniform(*cfg["size_share"]))
    sx, sy = int(rng.integers(0, wid - bw)), int(rng.integers(0, hgt - bh))
    for _ in range(20):  # a destination that does not overlap its source
        dx, dy = int(rng.integers(0, wid - bw)), int(rng.integers(0, hgt - bh))
        if abs(dx - sx) > bw or abs(dy - sy) > bh:
            break
    mask = np.zeros((hgt, wid), np.float32)
    mask[dy : dy + bh, dx : dx + bw] = 1.0
    alpha = _feather(mask, 0.3 + (1 - strength) * 2.0)[..., None]
    moved = np.zeros_like(image)
    moved[dy : dy + bh, dx : dx + bw] = image[sy : sy + bh, sx : sx + bw]
    out = np.clip(image * (1 - alpha) + moved * alpha, 0, 255).astype(np.uint8)
    return out, alpha[..., 0] > 0.1, {}


# ----------------------------------------------------------------------------------- camera


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Unit Gaussian sensor noise, drawn once per process (fixed seed): each capture takes a
    window at a random offset, so noise costs a slice, not a draw of every pixel."""
    return np.random.default_rng(0).standard_normal((1024, 1024, 3), dtype=np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    bank = _noise_bank()
    h, w = shape[:2]
    if h > bank.shape[0] or w > bank.shape[1]:
        return rng.standard_normal(shape, dtype=np.float32)
    y, x = int(rng.integers(0, bank.shape[0] - h + 1)), int(rng.integers(0, bank.shape[1] - w + 1))
    return bank[y : y + h, x : x + w]


def _background_desk(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A desk: one colour with a smooth texture (uint8)."""
    base = rng.uniform(40, 200, 3).astype(np.float32)
    small = rng.standard_normal((h // 8 + 1, w // 8 + 1), dtype=np.float32)
    texture = cv2.GaussianBlur(small, (0, 0), 1) * np.float32(rng.uniform(5, 25))
    small_desk = np.clip(base + texture[..., None], 0, 255).astype(np.uint8)
    return cv2.resize(small_desk, (w, h), interpolation=cv2.INTER_LINEAR)


def document_camera(
    doc: np.ndarray,
    mask: np.ndarray | None,
    rng: np.random.Generator,
    cfg: Mapping[str, Any],
    hard: str = "none",
    edited: np.ndarray | None = None,
    match: float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Photograph a printed document on a desk: perspective, glare, blur, noise; returns the
    capture (before its JPEG, which the writer adds) and the mask through the same warp.

    `edited` (the document with a forger's edit inside `mask`): a digital forgery of the
    capture. The genuine `doc` is photographed and the edit is pasted into the photo, through
    the same geometry and colour, with the camera's blur and noise imitated at `match` (a
    careful forger, 1, makes them consistent; a crude one, 0, pastes a clean patch): the
    inconsistency error-level and noise analyses look for."""
    h, w = doc.shape[:2]
    margin = cfg["margin"]
    cw, ch = round(w * (1 + 2 * margin)), round(h * (1 + 2 * margin))
    jitter = cfg["perspective"] * (cfg["off_angle_factor"] if hard == "off_angle" else 1.0)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    corners = rng.uniform(-1, 1, (4, 2)).astype(np.float32) * np.float32([w, h]) * jitter
    dst = src + np.float32([w * margin, h * margin]) + corners
    angle = np.deg2rad(rng.uniform(-1, 1) * cfg["rotation_deg"])
    centre = dst.mean(axis=0)
    rot = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (dst - centre) @ rot.T + centre
    homography = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    # The document is warped straight onto the desk (pixels outside it keep the desk).
    scene = _background_desk(rng, ch, cw)
    cv2.warpPerspective(
        doc, homography, (cw, ch), dst=scene, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_TRANSPARENT,
    )  # fmt: skip
    x = scene.astype(np.float32)
    if hard == "worn":
        inside = cv2.warpPerspective(np.ones((h, w), np.float32), homography, (cw, ch))
        x = _wear(x, inside, rng, cfg["wear"])
    glare = cfg["glare"]
    if hard == "glare" or rng.random() < glare["probability"]:
        strength = glare["strong"] if hard == "glare" else rng.uniform(*glare["amount"])
        gy, gx = rng.uniform(0.1, 0.9) * ch, rng.uniform(0.1, 0.9) * cw
        radius = rng.uniform(*glare["radius"]) * min(ch, cw)
        yy = ((np.arange(ch, dtype=np.float32) - gy) ** 2)[:, None]
        xx = ((np.arange(cw, dtype=np.float32) - gx) ** 2)[None, :]
        spot = np.exp(-(yy + xx) / np.float32(2 * radius**2)) * np.float32(strength)
        x += spot[..., None] * (255 - x)
    gain = rng.uniform(*cfg["exposure"], size=3).astype(np.float32)
    sigma = rng.uniform(*cfg["blur_sigma"])
    noise = np.float32(rng.uniform(*cfg["noise_sigma"]))
    x *= gain
    if sigma > 0.05:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    x += _noise(rng, x.shape) * noise
    moved = None
    if mask is not None:
        moved = cv2.warpPerspective(mask.astype(np.uint8), homography, (cw, ch)) > 0
    if edited is not None and moved is not None:
        patch = cv2.warpPerspective(edited.astype(np.float32), homography, (cw, ch)) * gain
        if sigma * match > 0.05:
            patch = cv2.GaussianBlur(patch, (0, 0), sigma * match)
        patch += _noise(rng, patch.shape) * noise * np.float32(match)
        alpha = cv2.GaussianBlur(moved.astype(np.float32), (0, 0), 0.7)[..., None]
        x = x * (1 - alpha) + patch * alpha
    return np.clip(x, 0, 255, out=x).astype(np.uint8), moved


def _wear(x: np.ndarray, inside: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
    """Fading and scratches of an old document (a hard genuine case)."""
    fade = (np.float32(rng.uniform(*cfg["fade"])) * inside)[..., None]
    x = x * (1 - fade) + 200.0 * fade
    scratches = np.zeros(inside.shape, np.uint8)
    hgt, wid = inside.shape
    for _ in range(int(rng.integers(*cfg["scratches"]))):
        p0 = (int(rng.integers(0, wid)), int(rng.integers(0, hgt)))
        p1 = (
            p0[0] + int(rng.integers(-wid // 3, wid // 3)),
            p0[1] + int(rng.integers(-hgt // 6, hgt // 6)),
        )
        cv2.line(scratches, p0, p1, 1, 1)
    return x + (scratches * inside)[..., None] * rng.uniform(30, 70)


def _recapture(capture: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """The captured document shown on a screen or printed, then photographed again."""
    if rng.random() < 0.5:
        return screen_replay(capture, strength, rng)
    return print_attack(capture, strength, rng)


# ----------------------------------------------------------------------------------- corpus


FORGERS = {
    "portrait_substitution": None,  # needs a donor face: handled in _render_identity
    "text_edit": _text_edit,
    "copy_move": _copy_move,
    "mrz_inconsistency": _mrz_inconsistency,
    "invalid_check_digit": _invalid_check_digit,
    "recapture": None,  # after the camera
}


def faces_split_map(cfg: Mapping[str, Any], profile: str, seed: int) -> dict[str, str]:
    """The faces corpus' subject -> split map (its identities, strata, fractions and seed),
    recomputed without reading the faces corpus: a person's documents land in the split of
    their selfies."""
    faces = cfg["faces"]
    count = int(faces["sizes"][profile]["identities"])
    rows = []
    for index in range(count):
        subject = f"S{index:05d}"
        rows.append(
            {
                "subject_id": subject,
                **sample_identity(identity_rng(seed, index), subject).demographics(),
            }
        )
    frame = pd.DataFrame(rows)
    split = assign_splits(
        frame, seed=seed, fractions=faces["split_fractions"], stratify=FACE_STRATA
    )
    return dict(zip(frame["subject_id"], split, strict=True))


def _write_png(path: Path, mask: np.ndarray) -> None:
    Image.fromarray((mask * 255).astype(np.uint8)).save(path, optimize=False, compress_level=1)


def _render_identity(
    index: int, out: Path, *, cfg: dict, seed: int, documents: int, per_doc: int | str
) -> list[dict]:
    rng = identity_rng(seed, index)
    subject = f"S{index:05d}"  # the faces corpus' identity of this index
    identity = sample_identity(rng, subject)
    geography = pick(rng, cfg["geographies"])
    issuers = [t for t in TEMPLATES.values() if t.geography == geography] or list(
        TEMPLATES.values()
    )
    ppm = float(cfg["px_per_mm"])
    folder = out / "images" / subject
    masks = out / "masks" / subject
    folder.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    common = {"subject_id": subject, "geography": geography, **identity.demographics()}
    forge = cfg["forgery"]

    quality = cfg["camera"]["jpeg_quality"]

    def write(
        sample_id: str, pixels: np.ndarray, mask: np.ndarray | None, row: dict, jpeg: int
    ) -> None:
        data = _encode(pixels, jpeg)
        (folder / f"{sample_id}.jpg").write_bytes(data)
        mask_rel = None
        if mask is not None:
            mask_rel = f"masks/{subject}/{sample_id}.png"
            _write_png(out / mask_rel, mask)
        rows.append({**common, "sample_id": sample_id, "path": f"images/{subject}/{sample_id}.jpg",
                     "mask_path": mask_rel, **row})  # fmt: skip

    for k in range(documents):
        t = issuers[int(rng.integers(len(issuers)))]
        issued = date(2018, 1, 1) + timedelta(days=int(rng.integers(0, 6 * 365)))
        holder = _holder(rng, identity, issued)
        portrait = _portrait(identity, rng, int(cfg["portrait_size"]), float(cfg["portrait_drift"]))
        doc_id = f"{subject}_d{k:02d}"
        printed = print_document(t, holder, portrait, ppm, doc_id, cfg["portrait_overprint"])
        hard = "none"
        if rng.random() < cfg["hard_share"]:
            hard = pick(rng, cfg["hard_cases"])
        shared = {"document_type": t.format, "template": t.name, "issuing_state": t.issuing_state,
                  "mrz": "\n".join(printed.mrz)}  # fmt: skip
        # One photo of the genuine document: its forgeries are edits of this very capture
        # (the camera's draws replayed), so a forgery differs from its source only where it
        # was edited, and nothing else about the capture tells the label.
        camera_seed = int(rng.integers(2**32))
        jpeg = int(rng.integers(quality[0], quality[1] + 1))
        camera = functools.partial(document_camera, cfg=cfg["camera"], hard=hard)
        pixels, _ = camera(printed.image, None, np.random.default_rng(camera_seed))
        write(doc_id, pixels, None, {
            "label": 0, "attack_type": BONA_FIDE, "source_sample_id": None, "attack_strength": 0.0,
            "hard_case": hard, "edited_field": None, **shared,
        }, jpeg)  # fmt: skip
        species_list = list(cfg["species"])
        chosen = (
            species_list
            if per_doc == "each"
            else list(rng.choice(species_list, size=int(per_doc), replace=False))
        )
        for a, species in enumerate(chosen):
            strength = float(rng.uniform(*cfg["strength"]))
            extra: dict[str, Any] = {}
            if species == "portrait_substitution":
                donor = _portrait(sample_identity(rng, f"{subject}_donor{k}{a}"), rng,
                                  int(cfg["portrait_size"]), 0.0)  # fmt: skip
                image, mask = _substitute_portrait(
                    printed, donor, t, ppm, strength, rng, forge["portrait"]
                )
            elif species == "recapture":
                image, mask = printed.image, np.ones(printed.image.shape[:2], bool)
            elif species in FORGERS and FORGERS[species] is not None:
                image, mask, extra = FORGERS[species](
                    printed, t, holder, ppm, strength, rng, forge[species]
                )
            else:
                raise KeyError(
                    f"unknown document forgery species {species!r}; known: {list(FORGERS)}"
                )
            replay = np.random.default_rng(camera_seed)
            if species == "recapture":  # a physical attack: the photo shown again, recaptured
                pixels, moved = camera(image, mask, replay)
                pixels = _recapture(pixels, strength, rng)
            else:  # a digital edit of the genuine document's photo
                pixels, moved = camera(
                    printed.image, mask, replay, edited=image, match=1.0 - strength
                )
            write(f"{doc_id}_f{a}", pixels, moved, {
                "label": 1, "attack_type": species, "source_sample_id": doc_id,
                "attack_strength": strength, "hard_case": hard,
                "edited_field": extra.get("edited_field"), **shared,
                "mrz": "\n".join(extra.get("mrz", printed.mrz)),
            }, jpeg)  # fmt: skip
    return rows


def generate_document_corpus(
    cfg: Mapping[str, Any], profile: str, seed: int, out: str | Path, workers: int = 2
) -> pd.DataFrame:
    """Render the document corpus of `profile` size into `out` (atomically); return its
    manifest (one row per capture; `mask_path` for forgeries)."""
    size = cfg["sizes"][profile]
    faces = int(cfg["faces"]["sizes"][profile]["identities"])
    identities = int(size["identities"])
    if identities > faces:
        raise ValueError(
            f"documents ({profile}): {identities} identities but the faces corpus has {faces}: "
            "a document's holder must be a faces-corpus identity"
        )
    split_of = faces_split_map(cfg, profile, seed)
    fn = functools.partial(
        _render_identity,
        cfg=dict(cfg),
        seed=seed,
        documents=int(size["documents_per_identity"]),
        per_doc=size["forgeries"],
    )
    return build_corpus(
        fn, identities, out, seed=seed, workers=workers, fractions=cfg["faces"]["split_fractions"],
        stratify=DOCUMENT_STRATA, split_of=split_of,
    )  # fmt: skip
