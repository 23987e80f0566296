"""ICAO 9303 MRZ: the Utopia specimens, check digits, compose/parse round trips, corruption,
tolerances and refusals. The expected positions below are written out from the specification,
not read from the module's layout tables, so that they check those tables too."""

from __future__ import annotations

from datetime import date

import pytest

from idv.documents.mrz import (
    LAYOUTS,
    TOLERANCES,
    MRZError,
    Tolerances,
    check_digit,
    compose_td1,
    compose_td3,
    mrz_name,
    parse_mrz,
    parse_mrz_date,
    tolerances_for,
    transliterate,
)

TD3_SPECIMEN = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]
TD1_SPECIMEN = [
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
]
ANNA = dict(
    issuing_state="UTO",
    surname="Eriksson",
    given_names="Anna Maria",
    nationality="UTO",
    birth_date="740812",
    sex="F",
    expiry_date="120415",
)

DN, BD, ED, OD, CO = "document_number", "birth_date", "expiry_date", "optional_data", "composite"
# (line, first, last) -> the checks a change there breaks, per Parts 4 and 5.
TD3_COVERAGE = [
    (1, 1, 44, set()),
    (2, 1, 10, {DN, CO}),
    (2, 11, 13, set()),
    (2, 14, 20, {BD, CO}),
    (2, 21, 21, set()),
    (2, 22, 28, {ED, CO}),
    (2, 29, 43, {OD, CO}),
    (2, 44, 44, {CO}),
]
TD1_COVERAGE = [
    (1, 1, 5, set()),
    (1, 6, 15, {DN, CO}),
    (1, 16, 30, {CO}),
    (2, 1, 7, {BD, CO}),
    (2, 8, 8, set()),
    (2, 9, 15, {ED, CO}),
    (2, 16, 18, set()),
    (2, 19, 30, {CO}),
    (3, 1, 30, set()),
]


def mutate(char: str) -> str:
    """A different character whose value differs by 1, which every check digit detects."""
    if char.isdigit():
        return str((int(char) + 1) % 10)
    if char == "<":
        return "1"
    return "Y" if char == "Z" else chr(ord(char) + 1)


def replace(lines: list[str], line: int, position: int, char: str) -> list[str]:
    out = list(lines)
    text = out[line - 1]
    out[line - 1] = text[: position - 1] + char + text[position:]
    return out


def statuses(lines: list[str], **kwargs) -> dict[str, str]:
    return {name: r.status for name, r in parse_mrz(lines, **kwargs).checks.items()}


# --- specimens and check digits ------------------------------------------------------------


def test_td3_specimen() -> None:
    record = parse_mrz(TD3_SPECIMEN)
    assert record.valid and record.invalid_checks == []
    assert set(record.checks) == {DN, BD, ED, OD, CO, "dates"}
    assert all(r.status == "valid" for r in record.checks.values())
    assert (record.format, record.document_code, record.issuing_state) == ("td3", "P", "UTO")
    assert (record.surname, record.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert (record.document_number, record.nationality, record.sex) == ("L898902C3", "UTO", "F")
    assert (record.birth_date, record.expiry_date) == ("740812", "120415")
    assert (record.optional_data, record.optional_data_2) == ("ZE184226B", "")
    assert record.checks[CO].expected == record.checks[CO].found == "0"


def test_td1_specimen() -> None:
    record = parse_mrz("\n".join(TD1_SPECIMEN))
    assert record.valid
    assert set(record.checks) == {DN, BD, ED, CO, "dates"}
    assert all(r.status == "valid" for r in record.checks.values())
    assert (record.format, record.document_code, record.document_number) == (
        "td1",
        "I",
        "D23145890",
    )
    assert (record.surname, record.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert (record.optional_data, record.optional_data_2) == ("", "")
    assert record.checks[CO].found == "6"


@pytest.mark.parametrize(
    ("text", "digit"),
    [
        ("L898902C3", "6"),
        ("740812", "2"),
        ("120415", "9"),
        ("ZE184226B<<<<<", "1"),
        ("D23145890", "7"),
        ("D23145890734", "9"),  # the Part 5 long document number example
        ("L898902C3674081221204159ZE184226B<<<<<1", "0"),  # TD3 specimen composite
        ("D231458907<<<<<<<<<<<<<<<74081221204159<<<<<<<<<<<", "6"),  # TD1 specimen composite
        ("", "0"),
        ("<<<<", "0"),
    ],
)
def test_check_digit(text: str, digit: str) -> None:
    assert check_digit(text) == digit


@pytest.mark.parametrize(
    ("text", "at"), [("AB-1", "'-' at position 3"), ("a", "'a' at position 1")]
)
def test_check_digit_refuses_other_characters(text: str, at: str) -> None:
    with pytest.raises(MRZError, match=at):
        check_digit(text)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.format)
def test_layout_fields_tile_every_line(layout) -> None:
    for line in range(1, layout.lines + 1):
        fields = sorted((f for f in layout.fields if f.line == line), key=lambda f: f.start)
        position = 1
        for f in fields:
            assert f.start == position, (layout.format, line, f.name)
            position += f.length
        assert position == layout.width + 1


# --- composing -----------------------------------------------------------------------------


def test_compose_reproduces_the_specimens() -> None:
    assert (
        compose_td3(document_number="L898902C3", optional_data="ZE184226B", **ANNA) == TD3_SPECIMEN
    )
    assert compose_td1(document_number="D23145890", **ANNA) == TD1_SPECIMEN


def test_compose_td1_long_document_number_as_part_5() -> None:
    lines = compose_td1(document_number="D23145890734", **ANNA)
    assert lines[0] == "I<UTOD23145890<7349<<<<<<<<<<<"
    record = parse_mrz(lines)
    assert record.valid and record.document_number == "D23145890734"
    assert record.checks[DN].found == "9" and record.optional_data == ""


@pytest.mark.parametrize(
    ("number", "optional_data", "optional_data_2"),
    [
        ("D23145890", "", ""),
        ("X1", "ABC<123", "OPT2"),
        ("1234567890", "", "Z"),
        ("D23145890734", "XY12", ""),
        ("ABCDEFGHIJKLM", "", ""),
        ("A" * 22, "", ""),  # the longest: 13 more, their check digit and the terminator
        ("A" * 16, "ZZ<9", "12345678901"),
    ],
)
def test_td1_round_trip(number: str, optional_data: str, optional_data_2: str) -> None:
    lines = compose_td1(
        document_number=number, optional_data=optional_data, optional_data_2=optional_data_2, **ANNA
    )
    assert [len(line) for line in lines] == [30, 30, 30]
    record = parse_mrz(lines)
    assert record.valid, record.checks
    assert record.document_number == number
    assert (record.optional_data, record.optional_data_2) == (optional_data, optional_data_2)
    assert (record.surname, record.given_names, record.sex) == ("ERIKSSON", "ANNA MARIA", "F")


@pytest.mark.parametrize(("number", "optional_data"), [("L898902C3", ""), ("X", "123<<A")])
@pytest.mark.parametrize("sex", ["M", "F", "<"])
def test_td3_round_trip(number: str, optional_data: str, sex: str) -> None:
    fields = {**ANNA, "sex": sex, "given_names": "Anna-Maria O'Neil", "surname": "de la Cruz"}
    lines = compose_td3(document_number=number, optional_data=optional_data, **fields)
    record = parse_mrz(lines)
    assert record.valid, record.checks
    assert (record.document_number, record.optional_data, record.sex) == (
        number,
        optional_data,
        sex,
    )
    assert (record.surname, record.given_names) == ("DE LA CRUZ", "ANNA MARIA ONEIL")
    expected_od = "absent" if not optional_data else "valid"  # Part 4: `<` over an empty number
    assert record.checks[OD].status == expected_od


@pytest.mark.parametrize(
    ("surname", "given", "expected"),
    [
        ("O'Connor", "Seán", "OCONNOR<<SEAN"),  # apostrophes omitted, diacritics dropped
        ("Müller-Lüdenscheidt", "Jürgen", "MUELLER<LUEDENSCHEIDT<<JUERGEN"),
        ("Straße", "Åsa  Ærø", "STRASSE<<AASA<AEROE"),
        ("Łukasiewicz", "", "LUKASIEWICZ"),
        ("Thorsdottir", "Þóra", "THORSDOTTIR<<THORA"),
    ],
)
def test_names_transliterated(surname: str, given: str, expected: str) -> None:
    assert mrz_name(surname, given, 39) == expected.ljust(39, "<")


def test_long_name_truncated_to_the_field() -> None:
    name = mrz_name("Wolfeschlegelsteinhausenbergerdorff", "Hubert Blaine", 39)
    assert name == "WOLFESCHLEGELSTEINHAUSENBERGERDORFF<<HU"
    assert len(mrz_name("A" * 50, "B", 30)) == 30


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"birth_date": "7408"}, "birth_date"),
        ({"birth_date": "740230"}, "birth_date"),
        ({"expiry_date": "12O415"}, "expiry_date"),
        ({"sex": "X"}, "sex"),
        ({"surname": "Smith2"}, "surname"),
        ({"surname": "''"}, "surname"),
        ({"given_names": "李"}, "given_names"),
        ({"nationality": "utopia"}, "nationality"),
        ({"issuing_state": "UTOP"}, "issuing_state"),
        ({"document_code": "PPP"}, "document_code"),
    ],
)
def test_compose_refuses_what_cannot_be_encoded(change: dict[str, str], names: str) -> None:
    for compose, number in ((compose_td3, "L898902C3"), (compose_td1, "D23145890")):
        with pytest.raises(MRZError, match=names):
            compose(document_number=number, **{**ANNA, **change})


@pytest.mark.parametrize(
    ("compose", "number", "optional_data", "field"),
    [
        (compose_td3, "L898902C34", "", DN),  # TD3 has no long-number rule
        (compose_td3, "l898902c3", "", DN),
        (compose_td3, "", "", DN),
        (compose_td3, "L898902C3", "A" * 15, OD),
        (compose_td1, "A" * 23, "", DN),
        (compose_td1, "A" * 13, "TOO<LONGER", DN),
        (compose_td1, "D23145890", "A" * 16, OD),
        (compose_td1, "D23145890", "ab", OD),
    ],
)
def test_compose_refuses_numbers_and_data_that_do_not_fit(
    compose, number: str, optional_data: str, field: str
) -> None:
    with pytest.raises(MRZError, match=f"^{field}"):
        compose(document_number=number, optional_data=optional_data, **ANNA)


# --- corruption ----------------------------------------------------------------------------


def corruption_cases(name: str, lines: list[str], coverage):
    for line, first, last, broken in coverage:
        for position in range(first, last + 1):
            yield pytest.param(lines, line, position, broken, id=f"{name}-l{line}p{position}")


@pytest.mark.parametrize(
    ("lines", "line", "position", "broken"),
    [
        *corruption_cases("td3", TD3_SPECIMEN, TD3_COVERAGE),
        *corruption_cases("td1", TD1_SPECIMEN, TD1_COVERAGE),
    ],
)
def test_each_corrupted_character_is_detected(lines, line, position, broken) -> None:
    corrupted = replace(lines, line, position, mutate(lines[line - 1][position - 1]))
    record = parse_mrz(corrupted)
    assert set(record.invalid_checks) - {"dates"} == broken
    assert record.valid == (not broken and "dates" not in record.invalid_checks)


@pytest.mark.parametrize("position", [*range(6, 15), *range(16, 20)])  # not the `<` at 15
def test_corrupted_long_document_number_is_detected(position: int) -> None:
    lines = compose_td1(document_number="D23145890734", **ANNA)
    corrupted = replace(lines, 1, position, mutate(lines[0][position - 1]))
    assert set(parse_mrz(corrupted).invalid_checks) == {DN, CO}


# --- tolerances ----------------------------------------------------------------------------


def test_filler_composite_tolerated_for_uto_only() -> None:
    uto = replace(TD3_SPECIMEN, 2, 44, "<")
    assert statuses(uto)[CO] == "absent" and parse_mrz(uto).valid
    assert statuses(uto, tolerances=Tolerances())[CO] == "invalid"
    elsewhere = ["P<XXA" + uto[0][5:], uto[1]]
    assert statuses(elsewhere)[CO] == "invalid"  # issuing state is outside the composite
    assert statuses(elsewhere, tolerances=TOLERANCES["UTO"])[CO] == "absent"


@pytest.mark.parametrize(
    ("personal_number", "check", "default", "uto"),
    [
        ("<" * 14, "<", "absent", "absent"),  # ICAO's own rule, for every issuer
        ("<" * 14, "0", "valid", "valid"),
        ("ZE184226B<<<<<", "<", "invalid", "absent"),
        ("ZE184226B<<<<<", "1", "valid", "valid"),
        ("ZE184226B<<<<<", "2", "invalid", "invalid"),  # a printed digit must still be right
    ],
)
def test_personal_number_filler_check(personal_number, check, default, uto) -> None:
    line2 = TD3_SPECIMEN[1][:28] + personal_number + check
    lines = [TD3_SPECIMEN[0], line2 + check_digit(line2[:10] + line2[13:20] + line2[21:43])]
    assert statuses(lines, tolerances=Tolerances())[OD] == default
    assert statuses(lines)[OD] == uto


@pytest.mark.parametrize(("line", "position", "name"), [(2, 10, DN), (2, 20, BD), (2, 28, ED)])
def test_filler_check_digit_invalid_unless_tolerated(line, position, name) -> None:
    lines = replace(TD3_SPECIMEN, line, position, "<")
    assert statuses(lines)[name] == "invalid"
    assert statuses(lines, tolerances=Tolerances(frozenset({name})))[name] == "absent"


def test_tolerances_lookup() -> None:
    assert tolerances_for("UTO") is TOLERANCES["UTO"]
    assert tolerances_for("D<<") is TOLERANCES["default"] is tolerances_for("ZZZ")
    assert TOLERANCES["default"].filler_check_digit == frozenset()
    with pytest.raises(MRZError, match="unknown check digit"):
        Tolerances(frozenset({"name"}))


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yymmdd", "pivot", "expected"),
    [
        ("740812", 2025, date(1974, 8, 12)),
        ("250101", 2025, date(2025, 1, 1)),
        ("260101", 2025, date(1926, 1, 1)),
        ("000229", 2025, date(2000, 2, 29)),
        ("300101", 2075, date(2030, 1, 1)),
        ("760101", 2075, date(1976, 1, 1)),
    ],
)
def test_parse_mrz_date_century(yymmdd: str, pivot: int, expected: date) -> None:
    assert parse_mrz_date(yymmdd, "birth_date", pivot_year=pivot) == expected


@pytest.mark.parametrize("bad", ["991332", "990230", "990000", "9913", "74O812", "<<<<<<"])
def test_parse_mrz_date_refuses_impossible_dates(bad: str) -> None:
    with pytest.raises(MRZError, match=f"expiry_date: '{bad}'"):
        parse_mrz_date(bad, "expiry_date", pivot_year=2075)


def test_impossible_date_is_a_finding_not_an_error() -> None:
    line2 = "L898902C36UTO7408122F991332" + check_digit("991332") + TD3_SPECIMEN[1][28:43]
    lines = [TD3_SPECIMEN[0], line2 + check_digit(line2[:10] + line2[13:20] + line2[21:43])]
    record = parse_mrz(lines)
    assert record.invalid_checks == ["dates"] and not record.valid
    assert "expiry_date" in record.checks["dates"].detail
    with pytest.raises(MRZError, match="expiry_date"):
        record.expiry()


def test_unknown_birth_date_parts_are_absent() -> None:
    line2 = "L898902C36UTO74<<<<" + check_digit("74<<<<") + TD3_SPECIMEN[1][20:43]
    lines = [TD3_SPECIMEN[0], line2 + check_digit(line2[:10] + line2[13:20] + line2[21:43])]
    record = parse_mrz(lines)
    assert record.checks["dates"].status == "absent" and record.valid


def test_record_dates() -> None:
    record = parse_mrz(TD3_SPECIMEN)
    assert record.birth(date(2025, 6, 1)) == date(1974, 8, 12)
    assert record.expiry(date(2025, 6, 1)) == date(2012, 4, 15)


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (TD3_SPECIMEN[:1], r"1 line\(s\) of length\(s\) 44"),
        (TD3_SPECIMEN + TD3_SPECIMEN[:1], "3 line.* 44, 44, 44"),
        ([TD3_SPECIMEN[0][:43], TD3_SPECIMEN[1]], "43, 44"),
        (TD1_SPECIMEN[:2], "2 line.* 30, 30"),
        ([TD1_SPECIMEN[0], TD1_SPECIMEN[1], TD1_SPECIMEN[2] + "<"], "30, 30, 31"),
        (["I<UTO" + "<" * 31, "<" * 36], "TD2"),
        ("", "0 line"),
        (["V" + TD3_SPECIMEN[0][1:], TD3_SPECIMEN[1]], "line 1 position 1.*visa"),
        (replace(TD3_SPECIMEN, 1, 1, "p"), "line 1 position 1: 'p' \\(lowercase\\)"),
        (replace(TD3_SPECIMEN, 2, 5, " "), "line 2 position 5: ' '"),
        (replace(TD1_SPECIMEN, 3, 30, "«"), "line 3 position 30: '«'"),
        (replace(TD1_SPECIMEN, 2, 8, "-"), "line 2 position 8: '-'"),
    ],
)
def test_malformed_mrz_refused(lines, message: str) -> None:
    with pytest.raises(MRZError, match=message):
        parse_mrz(lines)


def test_input_forms() -> None:
    text = "\r\n  " + "\r\n".join(TD1_SPECIMEN) + "  \n\n"
    assert parse_mrz(text).checks == parse_mrz(tuple(TD1_SPECIMEN)).checks
    assert parse_mrz(text).lines == tuple(TD1_SPECIMEN)


def test_mrz_error_is_a_value_error() -> None:
    from idv.errors import IdvError

    assert issubclass(MRZError, IdvError) and issubclass(MRZError, ValueError)
    assert transliterate("Jean-Luc", "given_names") == "JEAN<LUC"
