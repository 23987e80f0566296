"""ICAO Doc 9303 machine-readable zone: check digits, the TD1 and TD3 layouts, composing and
parsing.

Written from the specification (Part 3 for the character set, check digits, dates and names,
Part 4 for TD3, Part 5 for TD1), standard library only: the serving layer parses MRZs read from
images. Parsing separates two kinds of fault on purpose:

- a malformed MRZ (wrong shape, a character outside A-Z 0-9 `<`) cannot be read at all and raises
  `MRZError` naming the line and position;
- a wrong check digit or an impossible date is a *finding* about a readable MRZ: it is recorded
  in `MrzRecord.checks` and the rules layer decides what it means (an OCR slip, a forgery, an
  issuer's habit).

Issuers do not all follow the check-digit rules to the letter; `TOLERANCES` records, per issuing
state, which check digits it may leave as a filler `<` without that counting as invalid.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from idv.errors import IdvError

FILLER = "<"
ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")
WEIGHTS = (7, 3, 1)
CHECK_NAMES = ("document_number", "birth_date", "expiry_date", "optional_data", "composite")
EXPIRY_YEARS_AHEAD = 50  # expiry dates are read in the century window ending this far ahead

Status = Literal["valid", "invalid", "absent"]


class MRZError(IdvError, ValueError):
    """An MRZ that cannot be read or composed; the message names the line, field or position."""


def check_digit(text: str) -> str:
    """The 9303 check digit of `text`: weights 7-3-1 over values 0-9, A-Z = 10-35, `<` = 0."""
    total = 0
    for i, char in enumerate(text):
        if "0" <= char <= "9":
            value = ord(char) - ord("0")
        elif "A" <= char <= "Z":
            value = ord(char) - ord("A") + 10
        elif char == FILLER:
            value = 0
        else:
            raise MRZError(f"check digit: {char!r} at position {i + 1} is not A-Z, 0-9 or '<'")
        total += value * WEIGHTS[i % 3]
    return str(total % 10)


# --- layouts: data, so that composing and parsing read the same table -----------------------


@dataclass(frozen=True)
class Field:
    """One field of a layout: `line` and `start` are 1-based, as the specification counts."""

    name: str
    line: int
    start: int
    length: int


@dataclass(frozen=True)
class Layout:
    """A document format: its fields (tiling every line), which field each check digit covers,
    and the (line, first, last) position spans the composite check digit covers."""

    format: Literal["td1", "td3"]
    lines: int
    width: int
    fields: tuple[Field, ...]
    checked: tuple[tuple[str, str], ...]  # (check name, field); the digit is field `<name>_check`
    composite: tuple[tuple[int, int, int], ...]


TD1 = Layout(  # Part 5: ID cards, 3 lines of 30
    format="td1",
    lines=3,
    width=30,
    fields=(
        Field("document_code", 1, 1, 2),
        Field("issuing_state", 1, 3, 3),
        Field("document_number", 1, 6, 9),
        Field("document_number_check", 1, 15, 1),
        Field("optional_data", 1, 16, 15),
        Field("birth_date", 2, 1, 6),
        Field("birth_date_check", 2, 7, 1),
        Field("sex", 2, 8, 1),
        Field("expiry_date", 2, 9, 6),
        Field("expiry_date_check", 2, 15, 1),
        Field("nationality", 2, 16, 3),
        Field("optional_data_2", 2, 19, 11),
        Field("composite_check", 2, 30, 1),
        Field("name", 3, 1, 30),
    ),
    checked=(
        ("document_number", "document_number"),
        ("birth_date", "birth_date"),
        ("expiry_date", "expiry_date"),
    ),
    composite=((1, 6, 30), (2, 1, 7), (2, 9, 15), (2, 19, 29)),
)

TD3 = Layout(  # Part 4: passport data page, 2 lines of 44
    format="td3",
    lines=2,
    width=44,
    fields=(
        Field("document_code", 1, 1, 2),
        Field("issuing_state", 1, 3, 3),
        Field("name", 1, 6, 39),
        Field("document_number", 2, 1, 9),
        Field("document_number_check", 2, 10, 1),
        Field("nationality", 2, 11, 3),
        Field("birth_date", 2, 14, 6),
        Field("birth_date_check", 2, 20, 1),
        Field("sex", 2, 21, 1),
        Field("expiry_date", 2, 22, 6),
        Field("expiry_date_check", 2, 28, 1),
        Field("optional_data", 2, 29, 14),
        Field("optional_data_check", 2, 43, 1),
        Field("composite_check", 2, 44, 1),
    ),
    checked=(
        ("document_number", "document_number"),
        ("birth_date", "birth_date"),
        ("expiry_date", "expiry_date"),
        ("optional_data", "optional_data"),
    ),
    composite=((2, 1, 10), (2, 14, 20), (2, 22, 43)),
)

LAYOUTS = (TD1, TD3)


# --- tolerances -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    """What an issuer is known to do that the letter of 9303 does not allow.

    `filler_check_digit`: check digits (names from `CHECK_NAMES`) the issuer may leave as `<`;
    such a check reads 'absent' rather than 'invalid'. A digit that is present must still be
    right. (A `<` TD3 personal-number check over an all-filler personal number is ICAO's own
    rule and is tolerated for every issuer.)
    """

    filler_check_digit: frozenset[str] = frozenset()
    note: str = ""

    def __post_init__(self) -> None:
        unknown = sorted(self.filler_check_digit - set(CHECK_NAMES))
        if unknown:
            raise MRZError(f"tolerances: unknown check digit(s) {unknown}; known: {CHECK_NAMES}")


DEFAULT_ISSUER = "default"
TOLERANCES: dict[str, Tolerances] = {
    DEFAULT_ISSUER: Tolerances(note="the letter of ICAO 9303"),
    # Utopia is ICAO's fictional specimen issuer; this entry shows the form for a real one.
    "UTO": Tolerances(
        filler_check_digit=frozenset({"composite", "optional_data"}),
        note="example: an issuer that prints '<' for the composite and personal-number checks",
    ),
}


def tolerances_for(issuing_state: str) -> Tolerances:
    """The tolerances of an issuing state as written in the MRZ (`D<<` and `D` alike)."""
    return TOLERANCES.get(issuing_state.strip(FILLER), TOLERANCES[DEFAULT_ISSUER])


# --- dates ----------------------------------------------------------------------------------


def parse_mrz_date(yymmdd: str, field: str, *, pivot_year: int) -> date:
    """An MRZ date, its century chosen so that the year falls in `(pivot_year - 100, pivot_year]`.

    The MRZ has no century, so the caller says which window is plausible: for a birth date,
    `pivot_year` = the reference year (nobody is born in a later year); for an expiry date,
    the reference year + `EXPIRY_YEARS_AHEAD` (a document may expire in the future).
    """
    if len(yymmdd) != 6 or not yymmdd.isascii() or not yymmdd.isdigit():
        raise MRZError(f"{field}: {yymmdd!r} is not a date YYMMDD of 6 digits")
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    year = pivot_year - (pivot_year - yy) % 100
    try:
        return date(year, mm, dd)
    except ValueError:
        raise MRZError(
            f"{field}: {yymmdd!r} is no date (year {year}, month {mm}, day {dd})"
        ) from None


# --- names ----------------------------------------------------------------------------------

# Part 3 transliterations that are not "drop the diacritic" (the first of ICAO's options); the
# rest (É -> E, Ñ -> N, ...) come from Unicode decomposition, and 'ß'.upper() is already 'SS'.
_LETTERS = {"Ä": "AE", "Å": "AA", "Æ": "AE", "Ö": "OE", "Ø": "OE", "Œ": "OE", "Ü": "UE"}
_LETTERS |= {"Þ": "TH", "Ð": "D", "Đ": "D", "Ħ": "H", "Ł": "L"}
_SEPARATORS = frozenset(" -,")  # each becomes a filler (Part 3)
_OMITTED = frozenset("'’‘`")  # apostrophes are omitted: O'CONNOR -> OCONNOR (Part 3)


def transliterate(text: str, field: str) -> str:
    """A name component in MRZ characters: uppercase A-Z, its parts joined by single `<`."""
    out = []
    for i, char in enumerate(text):
        upper = char.upper()
        if char in _SEPARATORS:
            out.append(FILLER)
        elif char in _OMITTED:
            continue
        elif upper in _LETTERS:
            out.append(_LETTERS[upper])
        else:
            decomposed = unicodedata.normalize("NFKD", upper)
            base = "".join(c for c in decomposed if not unicodedata.combining(c))
            if not re.fullmatch("[A-Z]+", base):
                raise MRZError(f"{field}: {char!r} at position {i + 1} has no A-Z transliteration")
            out.append(base)
    return FILLER.join(part for part in "".join(out).split(FILLER) if part)


def mrz_name(surname: str, given_names: str, length: int) -> str:
    """The name field: surname, `<<`, given names, truncated to `length` and padded with `<`."""
    primary = transliterate(surname, "surname")
    if not primary:
        raise MRZError("surname: empty after transliteration; the primary identifier is required")
    secondary = transliterate(given_names, "given_names")
    name = primary + (FILLER * 2 + secondary if secondary else "")
    return name[:length].ljust(length, FILLER)


def _split_name(raw: str) -> tuple[str, str]:
    surname, _, given = raw.rstrip(FILLER).partition(FILLER * 2)
    return _words(surname), _words(given)


def _words(raw: str) -> str:
    return " ".join(part for part in raw.split(FILLER) if part)


# --- composing ------------------------------------------------------------------------------


def _code(
    value: str, field: str, length: int, alphabet: str = "A-Z<", required: bool = False
) -> str:
    """A fixed-width field padded with `<`; refuses what the MRZ cannot hold."""
    if not re.fullmatch(f"[{alphabet}]" + ("+" if required else "*"), value):
        raise MRZError(f"{field}: {value!r} must be characters {alphabet}")
    if len(value) > length:
        raise MRZError(f"{field}: {value!r} is longer than its {length} positions")
    return value.ljust(length, FILLER)


def _date_field(value: str, field: str, pivot_year: int) -> str:
    parse_mrz_date(value, field, pivot_year=pivot_year)
    return value


def _sex(value: str) -> str:
    if value not in ("M", "F", FILLER):
        raise MRZError(f"sex: {value!r} must be 'M', 'F' or '<' (unspecified)")
    return value


def _render(layout: Layout, values: dict[str, str]) -> list[str]:
    lines = []
    for n in range(1, layout.lines + 1):
        line = "".join(values[f.name] for f in layout.fields if f.line == n)
        assert len(line) == layout.width, (layout.format, n, line)
        lines.append(line)
    return lines


def _composite(layout: Layout, lines: Sequence[str]) -> str:
    return "".join(lines[ln - 1][first - 1 : last] for ln, first, last in layout.composite)


def _finish(layout: Layout, values: dict[str, str]) -> list[str]:
    values["composite_check"] = FILLER
    lines = _render(layout, values)
    values["composite_check"] = check_digit(_composite(layout, lines))
    return _render(layout, values)


def compose_td1(
    *,
    document_code: str = "I",
    issuing_state: str,
    document_number: str,
    surname: str,
    given_names: str,
    nationality: str,
    birth_date: str,
    sex: str,
    expiry_date: str,
    optional_data: str = "",
    optional_data_2: str = "",
) -> list[str]:
    """The three lines of a TD1 MRZ, every check digit computed.

    A document number over 9 characters follows Part 5's rule: its first 9 in positions 6-14,
    `<` in 15, the rest and its check digit opening optional data 1, then a `<` terminator.
    """
    number = _code(document_number, "document_number", 22, "A-Z0-9", required=True).rstrip(FILLER)
    optional = _code(optional_data, "optional_data", 15, "A-Z0-9<")
    if len(number) <= 9:
        head, check = number.ljust(9, FILLER), check_digit(number)
    else:
        head, check = number[:9], FILLER
        extension = number[9:] + check_digit(number) + FILLER + optional_data
        if len(extension) > 15:
            raise MRZError(
                f"document_number: {document_number!r} with optional_data {optional_data!r} does"
                " not fit optional data 1 (the extension, its check digit, '<', the data: 15)"
            )
        optional = extension.ljust(15, FILLER)
    today = date.today().year
    values = {
        "document_code": _code(document_code, "document_code", 2),
        "issuing_state": _code(issuing_state, "issuing_state", 3),
        "document_number": head,
        "document_number_check": check,
        "optional_data": optional,
        "birth_date": _date_field(birth_date, "birth_date", today),
        "sex": _sex(sex),
        "expiry_date": _date_field(expiry_date, "expiry_date", today + EXPIRY_YEARS_AHEAD),
        "nationality": _code(nationality, "nationality", 3),
        "optional_data_2": _code(optional_data_2, "optional_data_2", 11, "A-Z0-9<"),
        "name": mrz_name(surname, given_names, 30),
    }
    values["birth_date_check"] = check_digit(birth_date)
    values["expiry_date_check"] = check_digit(expiry_date)
    return _finish(TD1, values)


def compose_td3(
    *,
    document_code: str = "P",
    issuing_state: str,
    document_number: str,
    surname: str,
    given_names: str,
    nationality: str,
    birth_date: str,
    sex: str,
    expiry_date: str,
    optional_data: str = "",
) -> list[str]:
    """The two lines of a TD3 MRZ, every check digit computed.

    An empty personal number gets a `<` check digit, as Part 4 allows. TD3 has no rule for a
    passport number over 9 characters, so one is refused.
    """
    optional = _code(optional_data, "optional_data", 14, "A-Z0-9<")
    number = _code(document_number, "document_number", 9, "A-Z0-9", required=True)
    today = date.today().year
    values = {
        "document_code": _code(document_code, "document_code", 2),
        "issuing_state": _code(issuing_state, "issuing_state", 3),
        "name": mrz_name(surname, given_names, 39),
        "document_number": number,
        "document_number_check": check_digit(number),
        "nationality": _code(nationality, "nationality", 3),
        "birth_date": _date_field(birth_date, "birth_date", today),
        "birth_date_check": check_digit(birth_date),
        "sex": _sex(sex),
        "expiry_date": _date_field(expiry_date, "expiry_date", today + EXPIRY_YEARS_AHEAD),
        "expiry_date_check": check_digit(expiry_date),
        "optional_data": optional,
        "optional_data_check": FILLER if set(optional) == {FILLER} else check_digit(optional),
    }
    return _finish(TD3, values)


# --- parsing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """One check: the digit computed from the MRZ, the one printed in it, and the verdict.

    'absent': the printed digit is `<` where ICAO or the issuer's tolerances allow it.
    """

    expected: str
    found: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class MrzRecord:
    """A readable MRZ, fields without their padding, dates as the raw YYMMDD printed.

    `checks` holds every check digit (document_number, birth_date, expiry_date, optional_data
    for TD3, composite) and `dates` (calendar validity); none of them raised while parsing.
    """

    format: Literal["td1", "td3"]
    document_code: str
    issuing_state: str
    document_number: str
    surname: str
    given_names: str
    nationality: str
    birth_date: str
    sex: str
    expiry_date: str
    optional_data: str
    optional_data_2: str
    checks: dict[str, CheckResult] = dataclasses.field(hash=False)
    lines: tuple[str, ...] = ()

    @property
    def invalid_checks(self) -> list[str]:
        return [name for name, result in self.checks.items() if result.status == "invalid"]

    @property
    def valid(self) -> bool:
        return not self.invalid_checks

    def birth(self, today: date | None = None) -> date:
        """The birth date, placed in the century that puts it at or before `today`'s year."""
        year = (today or date.today()).year
        return parse_mrz_date(self.birth_date, "birth_date", pivot_year=year)

    def expiry(self, today: date | None = None) -> date:
        """The expiry date, within `EXPIRY_YEARS_AHEAD` years after `today`'s year."""
        year = (today or date.today()).year + EXPIRY_YEARS_AHEAD
        return parse_mrz_date(self.expiry_date, "expiry_date", pivot_year=year)


def _clean_lines(lines: Sequence[str] | str) -> list[str]:
    """The MRZ lines without surrounding whitespace or blank lines (OCR output has both)."""
    raw = lines.splitlines() if isinstance(lines, str) else list(lines)
    for n, line in enumerate(raw, start=1):
        if not isinstance(line, str):
            raise MRZError(f"line {n}: {type(line).__name__} is not a string")
    return [line.strip() for line in raw if line.strip()]


def _layout_of(lines: list[str]) -> Layout:
    for layout in LAYOUTS:
        if len(lines) == layout.lines and all(len(line) == layout.width for line in lines):
            if layout is TD3 and lines[0][0] == "V":
                raise MRZError(
                    "line 1 position 1: 'V' marks a visa (MRV-A), whose line 2 differs from TD3;"
                    " visas are not supported"
                )
            return layout
    lengths = ", ".join(str(len(line)) for line in lines) or "none"
    hint = " (TD2 or MRV-B, not supported)" if [len(x) for x in lines] == [36, 36] else ""
    raise MRZError(
        f"MRZ shape: {len(lines)} line(s) of length(s) {lengths}{hint}; expected TD1 (3 lines"
        " of 30) or TD3 (2 lines of 44)"
    )


def _check_characters(lines: list[str]) -> None:
    for n, line in enumerate(lines, start=1):
        for j, char in enumerate(line, start=1):
            if char not in ALPHABET:
                case = " (lowercase)" if char.islower() else ""
                raise MRZError(f"line {n} position {j}: {char!r}{case} is not A-Z, 0-9 or '<'")


def _check(name: str, covered: str, found: str, tol: Tolerances, filler_ok: bool) -> CheckResult:
    expected = check_digit(covered)
    if found == expected:
        return CheckResult(expected, found, "valid")
    if found == FILLER and (filler_ok or name in tol.filler_check_digit):
        return CheckResult(expected, found, "absent")
    return CheckResult(
        expected, found, "invalid", f"{name}: printed {found!r}, computed {expected!r}"
    )


def _dates_check(birth: str, expiry: str) -> CheckResult:
    """Calendar validity; a birth date with fillers is unknown in part (Part 3), not wrong."""
    year = date.today().year
    problems, unknown = [], False
    for value, name, pivot in (
        (birth, "birth_date", year),
        (expiry, "expiry_date", year + EXPIRY_YEARS_AHEAD),
    ):
        if name == "birth_date" and FILLER in value:
            unknown = True
            continue
        try:
            parse_mrz_date(value, name, pivot_year=pivot)
        except MRZError as error:
            problems.append(str(error))
    status: Status = "invalid" if problems else "absent" if unknown else "valid"
    return CheckResult("", "", status, "; ".join(problems))


def parse_mrz(lines: Sequence[str] | str, tolerances: Tolerances | None = None) -> MrzRecord:
    """Read a TD1 or TD3 MRZ (lines, or one string with newlines).

    Raises `MRZError` only for an MRZ that cannot be read (shape, characters); wrong check
    digits and impossible dates are reported in `checks`. `tolerances` defaults to those of the
    issuing state printed in the MRZ.
    """
    rows = _clean_lines(lines)
    layout = _layout_of(rows)
    _check_characters(rows)
    raw = {f.name: rows[f.line - 1][f.start - 1 : f.start - 1 + f.length] for f in layout.fields}
    tol = tolerances_for(raw["issuing_state"]) if tolerances is None else tolerances

    covered = {name: raw[source] for name, source in layout.checked}
    found = {name: raw[f"{name}_check"] for name, _ in layout.checked}
    number, optional = raw["document_number"].rstrip(FILLER), raw["optional_data"].rstrip(FILLER)
    if layout is TD1 and found["document_number"] == FILLER and optional[:1] not in ("", FILLER):
        # Part 5 long document number: the rest and its check digit open optional data 1.
        segment = raw["optional_data"].split(FILLER, 1)[0]
        number = raw["document_number"] + segment[:-1]
        covered["document_number"], found["document_number"] = number, segment[-1]
        optional = raw["optional_data"][len(segment) + 1 :].rstrip(FILLER)

    checks = {
        name: _check(name, covered[name], found[name], tol, filler_ok=False)
        for name in ("document_number", "birth_date", "expiry_date")
    }
    if layout is TD3:
        all_fillers = set(covered["optional_data"]) == {FILLER}
        checks["optional_data"] = _check(
            "optional_data", covered["optional_data"], found["optional_data"], tol, all_fillers
        )
    checks["composite"] = _check(
        "composite", _composite(layout, rows), raw["composite_check"], tol, filler_ok=False
    )
    checks["dates"] = _dates_check(raw["birth_date"], raw["expiry_date"])

    surname, given_names = _split_name(raw["name"])
    return MrzRecord(
        format=layout.format,
        document_code=raw["document_code"].rstrip(FILLER),
        issuing_state=raw["issuing_state"].rstrip(FILLER),
        document_number=number,
        surname=surname,
        given_names=given_names,
        nationality=raw["nationality"].rstrip(FILLER),
        birth_date=raw["birth_date"],
        sex=raw["sex"],
        expiry_date=raw["expiry_date"],
        optional_data=optional,
        optional_data_2=raw.get("optional_data_2", "").rstrip(FILLER),
        checks=checks,
        lines=tuple(rows),
    )
