"""Reading the MRZ and the compared visual-zone fields from a document capture, in numpy.

No generator ground truth is used: the reader finds the MRZ in the pixels (dark ink, deskewed
by the angle that sharpens the text rows, the longest rows at the bottom), cuts each line into
the ICAO fixed-pitch cells and classifies every cell by normalised cross-correlation with
glyph templates rendered from the shipped OCR-B font (a nearest-template recogniser of the
synthetic MRZ font: no training run, deterministic), restricted to the characters the ICAO
layout allows at that position (digits in dates and check digits, letters in names and
codes). Where a check digit fails and a low-confidence character has a runner-up that makes
every check pass, the runner-up is taken (what a real MRZ reader does); a confidently read
wrong digit stays wrong. The MRZ gives the issuer and the format, hence the template, whose
field boxes are placed through the MRZ's position and pitch; the compared fields (document
number, dates; DejaVu Sans Mono) are read the same way, and every character's match per cell
is kept (`Reading.visual_scores`) for the rules to verify the MRZ's value against the print.

`MrzReadError` (naming the image) when no MRZ can be read: the rules report it as
`unreadable`, never as a pass.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from idv.documents.mrz import LAYOUTS, Layout, MRZError, MrzRecord, parse_mrz, tolerances_for
from idv.documents.templates import (
    FIELD_FONT,
    FIELD_SIZE,
    MONO_ADVANCE_EM,
    MRZ_FONT,
    MRZ_PITCH_MM,
    MRZ_SHAPE,
    TEMPLATES,
    Template,
    TemplateError,
    template_for,
)
from idv.errors import IdvError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALPHABET = LETTERS + DIGITS + "<"
CELL = (20, 16)  # (height, width) every cell is resampled to before matching
GLYPH_INK = 0.6  # share of its cell a glyph's ink spans (OCR-B and DejaVu Sans Mono)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


class MrzReadError(IdvError, ValueError):
    """No MRZ could be read from the image (the message names the image and why)."""


@dataclass(frozen=True)
class ReaderOptions:
    """Tunables of the reader (serving copies them from preprocess.json `rules.reader`)."""

    ink_offset: float = 35.0  # a pixel is ink when this much darker than its neighbourhood
    max_skew_deg: float = 4.0
    skew_step_deg: float = 0.25
    min_line_share: float = 0.55  # an MRZ line spans at least this share of the image width
    repair_margin: float = 0.08  # runner-up allowed where best - second NCC is below this
    max_repairs: int = 8
    shift_px: int = 1  # cell search radius (resampled px) around the fitted grid's place


@dataclass
class Reading:
    """What the reader saw: the MRZ lines, their per-character confidence (NCC margin), the
    parsed record, and the visual-zone fields it read (name -> text)."""

    lines: list[str]
    confidence: list[np.ndarray]
    record: MrzRecord
    visual: dict[str, tuple[str, float]] = field(default_factory=dict)
    # Per visual-zone field, every character's NCC per cell ((cells, len(ALPHABET)), -inf where
    # the field's character class excludes it): the rules verify the MRZ's value against it.
    visual_scores: dict[str, np.ndarray] = field(default_factory=dict)
    repaired: int = 0
    # Where the MRZ was found, for placing the visual-zone boxes: its line boxes (y0, y1, x0,
    # x1), mean pitch and first-cell left edge, in the deskewed grey image `upright`.
    lines_found: list[tuple[int, int, int, int]] = field(default_factory=list)
    pitch: float = 0.0
    left: float = 0.0
    upright: np.ndarray | None = None


def _charset(layout: Layout) -> list[list[str]]:
    """The characters ICAO allows at each position of each line."""
    sets = [[ALPHABET] * layout.width for _ in range(layout.lines)]
    for f in layout.fields:
        if f.name.endswith("_check") or f.name.endswith("_date"):
            chars = DIGITS + "<" if f.name.endswith("_check") else DIGITS
        elif f.name == "sex":
            chars = "MFX<"
        elif f.name in ("document_code", "issuing_state", "nationality", "name"):
            chars = LETTERS + "<"
        else:
            chars = ALPHABET
        for k in range(f.length):
            sets[f.line - 1][f.start - 1 + k] = chars
    return sets


@functools.lru_cache(maxsize=8)
def _glyphs(font_path: str, pitch_em: float, chars: str) -> np.ndarray:
    """(len(chars), CELL h * w) zero-mean unit-norm templates: each glyph centred in a cell of
    `pitch_em` font sizes, cut from the cap top to the baseline, slightly blurred."""
    size = 64
    font = ImageFont.truetype(font_path, size)
    _, top, _, bottom = font.getbbox("0A")
    width = round(pitch_em * size)
    out = []
    for ch in chars:
        canvas = Image.new("L", (width, bottom - top), 255)
        x = (width - font.getlength(ch)) / 2
        ImageDraw.Draw(canvas).text((x, -top), ch, font=font, fill=0)
        cell = cv2.resize(np.asarray(canvas, np.float32), CELL[::-1], interpolation=cv2.INTER_AREA)
        out.append(cv2.GaussianBlur(255.0 - cell, (0, 0), 0.6))
    return _normalise(np.stack(out).reshape(len(chars), -1))


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def _ink(gray: np.ndarray, offset: float, edge_px: int = 0) -> np.ndarray:
    """Dark strokes: darker than their neighbourhood by `offset`. With `edge_px`, straight
    runs at least that long (the document's edges against the desk, scratches) are removed:
    no glyph is that long."""
    local = cv2.blur(gray, (31, 31))
    ink = ((gray < local - offset) & (gray < 150)).astype(np.uint8)
    if edge_px:
        vertical = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((edge_px, 1), np.uint8))
        horizontal = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, 2 * edge_px), np.uint8))
        ink &= ~(vertical | horizontal) & 1
    return ink.astype(bool)


def _deskew_angle(ink: np.ndarray, opts: ReaderOptions) -> float:
    """The rotation that makes the ink rows sharpest (max sum of squared row counts)."""
    ys, xs = np.nonzero(ink)
    if len(ys) < 50:
        return 0.0
    best, angle = -1.0, 0.0
    steps = np.arange(-opts.max_skew_deg, opts.max_skew_deg + 1e-9, opts.skew_step_deg)
    for deg in steps:
        t = np.deg2rad(deg)
        rows = np.rint(ys * np.cos(t) - xs * np.sin(t)).astype(np.int64)
        counts = np.bincount(rows - rows.min())
        score = float((counts.astype(np.float64) ** 2).sum())
        if score > best:
            best, angle = score, deg
    return float(angle)


def _rows(ink: np.ndarray) -> list[tuple[int, int]]:
    """Text rows: runs of image rows with ink."""
    profile = ink.sum(axis=1).astype(np.float32)
    if profile.max() <= 0:
        return []
    on = profile > 0.15 * profile.max()
    runs, start = [], None
    for y, v in enumerate(np.append(on, False)):
        if v and start is None:
            start = y
        elif not v and start is not None:
            if y - start >= 3:
                runs.append((start, y))
            start = None
    return runs


def _extent(ink: np.ndarray, y0: int, y1: int) -> tuple[int, int]:
    """The longest run of ink columns of a row band whose gaps stay below the band's height:
    a line of text (the MRZ has no wider gap), not the specks of the desk beyond it."""
    cols = np.flatnonzero(ink[y0:y1].sum(axis=0) >= 1)
    if len(cols) == 0:
        return 0, 0
    breaks = np.flatnonzero(np.diff(cols) > max(y1 - y0, 3))
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(cols) - 1]])
    k = int(np.argmax(cols[ends] - cols[starts]))
    return int(cols[starts[k]]), int(cols[ends[k]]) + 1


def _read_line(
    gray: np.ndarray,
    band: tuple[int, int],
    start: float,
    pitch: float,
    glyphs: np.ndarray,
    charset: list[str],
    shift: int,
) -> tuple[list[list[tuple[str, float]]], np.ndarray, np.ndarray]:
    """Each fixed-pitch cell of a line (one per `charset` entry): its best two candidates
    (character, NCC), searched `shift` resampled px around the cell's place, where the best
    one matched (image x of the cell's left edge), and every character's NCC at its best
    shift ((cells, len(ALPHABET)), -inf where `charset` does not allow it)."""
    y0, y1 = band
    count = len(charset)
    scale = CELL[1] / pitch
    pad = int(np.ceil(shift / scale)) + 1
    left = int(max(np.floor(start) - pad, 0))
    right = int(min(np.ceil(start + count * pitch) + pad, gray.shape[1]))
    strip = 255.0 - gray[y0:y1, left:right]
    size = (max(int(round((right - left) * scale)), CELL[1]), CELL[0])
    resampled = cv2.resize(strip, size, interpolation=cv2.INTER_AREA)
    offset = (start - left) * scale
    # Every cell at every shift at once: (count, shifts, CELL h * w) windows of the strip.
    shifts = np.arange(-shift, shift + 1)
    base = np.rint(offset + np.arange(count) * CELL[1]).astype(np.int64)
    first = base[:, None] + shifts[None, :]
    valid = (first >= 0) & (first + CELL[1] <= resampled.shape[1])
    columns = np.clip(first, 0, resampled.shape[1] - CELL[1])[..., None] + np.arange(CELL[1])
    windows = resampled[:, columns]  # (h, count, shifts, w)
    windows = windows.transpose(1, 2, 0, 3).reshape(count * len(shifts), -1)
    scores = (_normalise(windows) @ glyphs.T).reshape(count, len(shifts), -1)
    scores[~valid] = -np.inf
    allowed = np.array([[c in chars for c in ALPHABET] for chars in charset])
    scores = np.where(allowed[:, None, :], scores, -np.inf)
    best = scores.max(axis=1)  # (count, classes): each class at its best shift
    order = np.argsort(-best, axis=1)[:, :2]
    cells, found = [], np.full(count, np.nan)
    for j in range(count):
        top = [(ALPHABET[i], float(best[j, i])) for i in order[j] if np.isfinite(best[j, i])]
        if not top:
            cells.append([("<", 0.0), ("<", 0.0)])
            continue
        if len(top) == 1:
            top.append((top[0][0], -1.0))
        cells.append(top)
        found[j] = left + float(first[j, int(np.argmax(scores[j, :, order[j, 0]]))]) / scale
    return cells, found, best


def _fit_grid(found: np.ndarray, cells, start: float, pitch: float) -> tuple[float, float]:
    """The cell grid (start, pitch) that best explains where confident cells matched: a
    weighted line fit, so one misplaced estimate of the line's ends does not shift it all."""
    j = np.arange(len(found), dtype=np.float64)
    weight = np.array([max(c[0][1] - c[1][1], 0.0) * c[0][1] for c in cells])
    ok = np.isfinite(found) & (weight > 0)
    if ok.sum() < 4:
        return start, pitch
    coef = np.polyfit(j[ok], found[ok], 1, w=np.sqrt(weight[ok]))
    return float(coef[1]), float(coef[0])


def _read_fitted(
    gray: np.ndarray,
    band: tuple[int, int],
    start: float,
    pitch: float,
    glyphs: np.ndarray,
    charset: list[str],
    opts: ReaderOptions,
) -> tuple[list[list[tuple[str, float]]], float, float, np.ndarray]:
    """A fixed-pitch line read twice: widely around the estimated cells, then on the grid
    fitted to where the confident ones matched; returns the cells, that grid (start, pitch)
    and every character's NCC per cell on it (`_read_line`)."""
    cells, found, _ = _read_line(gray, band, start, pitch, glyphs, charset, 2 * opts.shift_px)
    start, pitch = _fit_grid(found, cells, start, pitch)
    cells, _, scores = _read_line(gray, band, start, pitch, glyphs, charset, opts.shift_px)
    return cells, start, pitch, scores


def read_mrz(image: np.ndarray, opts: ReaderOptions | None = None, name: str = "image") -> Reading:
    """Read the MRZ of an RGB uint8 capture (`name` for errors); the visual zone follows in
    `read_document`."""
    opts = opts or ReaderOptions()
    gray = image.astype(np.float32) @ _LUMA if image.ndim == 3 else image.astype(np.float32)
    h, w = gray.shape
    lower = gray[h // 2 :]
    angle = _deskew_angle(_ink(lower, opts.ink_offset), opts)
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    upright = cv2.warpAffine(gray, rotation, (w, h), flags=cv2.INTER_LINEAR, borderValue=255.0)
    ink = _ink(upright, opts.ink_offset, edge_px=max(int(0.06 * h), 5))
    lines = []
    for y0, y1 in _rows(ink[h // 2 :]):
        x0, x1 = _extent(ink, h // 2 + y0, h // 2 + y1)
        if x1 - x0 >= opts.min_line_share * w:
            lines.append((h // 2 + y0, h // 2 + y1, x0, x1))
    if lines:  # text rows, not the thin remnants of an edge
        tallest = max(y1 - y0 for y0, y1, _, _ in lines)
        lines = [line for line in lines if line[1] - line[0] >= 0.6 * tallest]
    lines = _bottom_block(lines)
    layout = next((lay for lay in LAYOUTS if lay.lines == len(lines)), None)
    if layout is None:
        raise MrzReadError(
            f"{name}: found {len(lines)} MRZ-like text line(s) (a TD1 has 3, a TD3 2): no MRZ read"
        )
    n = MRZ_SHAPE[layout.format][1]
    charsets = _charset(layout)
    cells, pitches, starts = [], [], []
    em = _pitch_em(layout.format)
    glyphs = _glyphs(str(MRZ_FONT), em, ALPHABET)
    for i, (y0, y1, x0, x1) in enumerate(lines):
        # The ink runs from the first glyph's left edge to the last one's right edge: n - 1
        # pitches plus about GLYPH_INK of one. A second pass reads on the grid fitted to
        # where the first pass's confident cells matched.
        pitch = (x1 - x0) / (n - 1 + GLYPH_INK)
        start = (x0 + x1) / 2 - n * pitch / 2
        line_cells, start, pitch, _ = _read_fitted(
            upright, (y0, y1), start, pitch, glyphs, charsets[i], opts
        )
        cells.append(line_cells)
        pitches.append(pitch)
        starts.append(start)
    text = ["".join(c[0][0] for c in line) for line in cells]
    margins = [
        np.array([c[0][1] - (c[1][1] if len(c) > 1 else -1.0) for c in line]) for line in cells
    ]
    record, repaired = _parse_with_repair(text, cells, margins, opts, name)
    return Reading(
        text if not repaired else list(record.lines), margins, record, repaired=repaired,
        lines_found=lines, pitch=float(np.mean(pitches)), left=float(np.mean(starts)),
        upright=upright,
    )  # fmt: skip


def _pitch_em(fmt: str) -> float:
    """The MRZ pitch in font sizes of a format's templates (one MRZ height per format)."""
    return next(t.mrz_pitch_em for t in TEMPLATES.values() if t.format == fmt)


def _bottom_block(lines: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The last run of long lines with regular spacing (the MRZ is the bottom block)."""
    if len(lines) <= 2:
        return lines
    block = [lines[-1]]
    for line in reversed(lines[:-1]):
        gap = block[-1][0] - line[1]
        height = block[-1][1] - block[-1][0]
        if gap > 2.5 * height:
            break
        block.append(line)
    return list(reversed(block))[-3:]


def _parse_with_repair(text, cells, margins, opts: ReaderOptions, name: str):
    try:
        # The checks under the tolerances of the issuer the MRZ names (idv.documents.mrz).
        tolerances = tolerances_for(parse_mrz(text).issuing_state)
        record = parse_mrz(text, tolerances)
    except MRZError as err:
        raise MrzReadError(
            f"{name}: the MRZ read ({' / '.join(text)}) does not parse: {err}"
        ) from err
    if record.valid:
        return record, 0
    weak = sorted(
        ((float(m[j]), i, j) for i, m in enumerate(margins) for j in range(len(m))
         if len(cells[i][j]) > 1 and m[j] < opts.repair_margin),
    )[: opts.max_repairs]  # fmt: skip
    for _, i, j in weak:
        trial = list(text)
        trial[i] = trial[i][:j] + cells[i][j][1][0] + trial[i][j + 1 :]
        try:
            candidate = parse_mrz(trial, tolerances)
        except MRZError:
            continue
        if candidate.valid:
            return candidate, 1
    return record, 0


def read_document(
    image: np.ndarray, opts: ReaderOptions | None = None, name: str = "image"
) -> Reading:
    """The MRZ and the compared visual-zone fields of an RGB uint8 capture."""
    reading = read_mrz(image, opts, name)
    record = reading.record
    try:
        template = template_for(record.issuing_state, record.format)
    except TemplateError:
        return reading  # an issuer without a template: the MRZ checks still run
    reading.visual, reading.visual_scores = _read_visual(reading, template, opts or ReaderOptions())
    return reading


def _read_visual(
    reading: Reading, t: Template, opts: ReaderOptions
) -> tuple[dict[str, tuple[str, float]], dict[str, np.ndarray]]:
    """The compared fields at the template's boxes, placed through the MRZ geometry: field ->
    (text, the smallest NCC margin of its characters), and field -> every character's NCC per
    cell (`_read_line`'s scores: what `idv.documents.rules.verify` checks the MRZ against)."""
    upright, x_left = reading.upright, reading.left
    ppm = reading.pitch / MRZ_PITCH_MM
    y_top = reading.lines_found[0][0]
    date = [DIGITS, DIGITS, "", DIGITS, DIGITS, "", DIGITS, DIGITS, DIGITS, DIGITS]
    charsets = {
        # Each character's class (letter or digit) as the MRZ has it: OCR's O / 0, S / 5
        # confusions are settled by the class, a forger's changed digit is still read.
        "document_number": [
            DIGITS if c.isdigit() else LETTERS for c in reading.record.document_number
        ],  # fmt: skip
        "birth_date": date,
        "expiry_date": date,
    }
    glyphs = _glyphs(str(FIELD_FONT), MONO_ADVANCE_EM, ALPHABET)
    out, matches = {}, {}
    for name, charset in charsets.items():
        box = t.fields[name]
        x0 = x_left + (box.x - t.mrz_left_mm) * ppm  # where the template prints the value
        y0 = y_top + (box.y - t.mrz_top_mm) * ppm
        char_pitch = MONO_ADVANCE_EM * FIELD_SIZE * box.h * ppm  # a fixed-pitch font
        bx0, by0 = int(max(x0 - 2.0 * ppm, 0)), int(max(y0 - 1.5 * ppm, 0))
        bx1, by1 = int(x0 + box.w * ppm), int(y0 + box.h * ppm * 2.0)
        region = upright[by0:by1, bx0:bx1]
        if region.shape[0] < 4 or region.shape[1] < 4:
            continue
        ink = _ink(region, opts.ink_offset)
        centre = y0 - by0 + 0.75 * box.h * ppm  # the value's cap-height middle, about
        rows = [r for r in _rows(ink) if r[1] - r[0] >= 0.5 * box.h * ppm]
        if not rows:
            continue
        ry0, ry1 = min(rows, key=lambda r: abs((r[0] + r[1]) / 2 - centre))
        cols = np.flatnonzero(ink[ry0:ry1].sum(axis=0) >= 1)
        near = cols[cols >= (x0 - bx0) - 1.5 * ppm]
        if len(near) == 0:
            continue
        start = float(near[0]) - (1 - GLYPH_INK) / 2 * char_pitch  # the first cell's left
        wide = [c or ALPHABET for c in charset]
        cells, _, _, scores = _read_fitted(
            region, (ry0, ry1), start, char_pitch, glyphs, wide, opts
        )
        kept = [c for c, allowed in zip(cells, charset, strict=True) if allowed]
        text = "".join(
            c[0][0] if allowed else "." for c, allowed in zip(cells, charset, strict=True)
        )
        margin = min(c[0][1] - c[1][1] for c in kept) if kept else 0.0
        out[name] = (text, float(margin))
        matches[name] = scores
    return out, matches
