"""Document templates: where each zone of an issuer's ID card (TD1) or passport data page (TD3)
sits, shared by the synthetic corpus (which prints them) and the reader (which reads them back).

Geometry is in millimetres of the physical document (ICAO 9303 sizes: TD1 85.6 x 54, TD3
125 x 88); the MRZ is printed at the ICAO pitch of 2.54 mm per character. A reader finds the
MRZ in the image first, learns the issuing state from it, and maps this template's boxes
through the MRZ's position and pitch: it never needs the generator's ground truth.

The issuers are fictional (ICAO's own specimens use `UTO`, Utopia); each has a TD1 and a TD3
template, so a `cross_country` protocol can hold one issuer's layouts out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FONT_DIR = Path(__file__).resolve().parent / "fonts"
MRZ_FONT = FONT_DIR / "OCRB.otf"
FIELD_FONT = FONT_DIR / "DejaVuSansMono.ttf"  # the visual-zone fields a reader compares
NEAR_FONT = FONT_DIR / "DejaVuSansMono-Bold.ttf"  # a forger's near font

MRZ_PITCH_MM = 2.54  # ICAO 9303: 10 characters per inch
OCRB_CAP_EM = 0.72  # OCR-B's cap height, in font sizes: an MRZ is printed at height / this
SIZES_MM = {"td1": (85.6, 54.0), "td3": (125.0, 88.0)}
MRZ_SHAPE = {"td1": (3, 30), "td3": (2, 44)}  # lines, characters per line
# Compared fields: visual-zone fields printed in the field font with a known length, which the
# rules read and compare with the MRZ.
COMPARED_FIELDS = ("document_number", "birth_date", "expiry_date")
FIELD_SIZE = 1.25  # the compared fields' font size, in units of their box height
MONO_ADVANCE_EM = 0.602  # DejaVu Sans Mono's advance width, in font sizes


@dataclass(frozen=True)
class Box:
    """An axis-aligned box on the document, mm from its top-left corner."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Template:
    """One issuer's layout of one document format."""

    issuing_state: str
    format: str  # td1 | td3
    country: str
    geography: str
    title: str
    date_format: str  # visual zone dates: "%d.%m.%Y" etc. (day, month, 4-digit year)
    hue: float  # background tint, 0-1
    portrait: Box
    fields: dict[str, Box] = field(default_factory=dict)
    mrz_top_mm: float = 0.0  # top of the first MRZ line's characters
    mrz_left_mm: float = 0.0  # left edge of the first MRZ character cell
    mrz_line_mm: float = 4.2  # baseline-to-baseline distance of the MRZ lines
    mrz_height_mm: float = 2.9  # character height in the MRZ

    @property
    def name(self) -> str:
        return f"{self.issuing_state}-{self.format}"

    @property
    def size_mm(self) -> tuple[float, float]:
        return SIZES_MM[self.format]

    @property
    def mrz_shape(self) -> tuple[int, int]:
        return MRZ_SHAPE[self.format]

    @property
    def mrz_pitch_em(self) -> float:
        """The MRZ pitch in font sizes (what the printer uses and the reader's glyphs need)."""
        return MRZ_PITCH_MM * OCRB_CAP_EM / self.mrz_height_mm


def _td1(state: str, country: str, geography: str, hue: float, date_format: str, shift: float):
    """An ID card: portrait left, fields right, MRZ in the bottom third; `shift` moves the
    field column (issuers differ)."""
    x = 29.0 + shift
    return Template(
        issuing_state=state, format="td1", country=country, geography=geography,
        title="IDENTITY CARD", date_format=date_format, hue=hue,
        portrait=Box(3.5, 8.5, 22.0, 27.0),
        fields={
            "surname": Box(x, 9.5, 52.0, 3.2),
            "given_names": Box(x, 15.0, 52.0, 3.2),
            "document_number": Box(x, 20.5, 30.0, 3.0),
            "birth_date": Box(x, 26.0, 30.0, 3.0),
            "expiry_date": Box(x, 31.5, 30.0, 3.0),
            "sex": Box(x + 33.0, 26.0, 6.0, 3.0),
            "nationality": Box(x + 33.0, 31.5, 12.0, 3.0),
        },
        mrz_top_mm=38.8, mrz_left_mm=4.7, mrz_line_mm=4.6, mrz_height_mm=3.0,
    )  # fmt: skip


def _td3(state: str, country: str, geography: str, hue: float, date_format: str, shift: float):
    """A passport data page: portrait left, two field columns, MRZ at the bottom."""
    x = 41.0 + shift
    return Template(
        issuing_state=state, format="td3", country=country, geography=geography,
        title="PASSPORT", date_format=date_format, hue=hue,
        portrait=Box(5.0, 15.0, 31.0, 40.0),
        fields={
            "document_number": Box(x + 40.0, 15.0, 36.0, 3.6),
            "surname": Box(x, 22.0, 78.0, 3.8),
            "given_names": Box(x, 29.0, 78.0, 3.8),
            "nationality": Box(x, 36.0, 30.0, 3.6),
            "birth_date": Box(x, 43.0, 36.0, 3.6),
            "sex": Box(x + 45.0, 43.0, 8.0, 3.6),
            "expiry_date": Box(x, 50.0, 36.0, 3.6),
        },
        mrz_top_mm=70.5, mrz_left_mm=6.5, mrz_line_mm=6.6, mrz_height_mm=3.4,
    )  # fmt: skip


_ISSUERS = (  # state, country, geography, hue, date format, field-column shift (mm)
    ("UTO", "UTOPIA", "EU", 0.58, "%d.%m.%Y", 0.0),
    ("NRD", "NORDLAND", "NA", 0.08, "%d %m %Y", 1.5),
    ("ZAL", "ZALORIA", "LATAM", 0.33, "%d/%m/%Y", -1.0),
    ("KIR", "KIRANA", "APAC", 0.83, "%d-%m-%Y", 0.8),
    ("OBA", "OBANDA", "AF", 0.15, "%d.%m.%Y", -0.5),
)

TEMPLATES: dict[str, Template] = {
    t.name: t
    for state, country, geo, hue, fmt, shift in _ISSUERS
    for t in (
        _td1(state, country, geo, hue, fmt, shift),
        _td3(state, country, geo, hue, fmt, shift),
    )
}


class TemplateError(KeyError):
    """No template for an issuer / format (names what was asked and what exists)."""


def template_for(issuing_state: str, fmt: str) -> Template:
    """The template of `issuing_state`'s `fmt` document (TemplateError naming the known ones)."""
    name = f"{issuing_state}-{fmt}"
    if name not in TEMPLATES:
        raise TemplateError(f"no document template {name!r}; known: {sorted(TEMPLATES)}")
    return TEMPLATES[name]
