"""Licence check of what `idv` imports and ships (run by scripts/run_tests.sh; docs/licences.md).

    python scripts/check_licences.py                  # table + summary; exit 1 on a failure
    python scripts/check_licences.py --json r.json    # ... and the full report as JSON
    python scripts/check_licences.py --markdown       # the DVC toolchain table of the docs

Checks, offline and from installed metadata only:
- the installed dependency closure of the `idv` distribution's `Requires-Dist` (extras such as
  `dev` left out, extras that a requirement asks for followed), each distribution's licence
  taken from `License-Expression`, else its trove classifiers, else its `License` field;
- that closure against what `idv/**/*.py` actually imports (an import the closure lacks is
  checked too; an import that maps to no installed distribution fails);
- the `toolchain` subtree (DVC: a program `idv` runs as a command, never imports) separately;
- every shipped data file under `idv/` (fonts, weights, tables) against the `LICENSES.md` of
  its own directory.

The allow list (`conf/licences.yaml`) is the only way past an unknown, dual or (toolchain only)
strong-copyleft verdict, so every exception is written down with its reason where CI reads it.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "conf/licences.yaml"
PACKAGE = "idv"
PACKAGE_DIR = ROOT / PACKAGE
LISTING = "LICENSES.md"

# Licence classes, by how bad they are: an AND of licences takes the worst of its parts.
PERMISSIVE = "permissive"
WEAK = "weak-copyleft"
DUAL = "dual"
UNKNOWN = "unknown"
STRONG = "strong-copyleft"
NONCOMMERCIAL = "non-commercial"
SEVERITY = {PERMISSIVE: 0, WEAK: 1, DUAL: 2, UNKNOWN: 3, STRONG: 4, NONCOMMERCIAL: 5}

OK, REPORT, ALLOWED, FAIL = "ok", "report", "allowed", "FAIL"
VIA_ORDER = {"direct": 0, "transitive": 1, "undeclared": 2, "toolchain": 3}

# SPDX ids (lower case -> canonical spelling) that need nothing beyond attribution.
_PERMISSIVE = (
    "MIT MIT-0 MIT-CMU BSD BSD-2-Clause BSD-3-Clause BSD-3-Clause-Clear 0BSD Apache-1.1 "
    "Apache-2.0 ISC PSF-2.0 Python-2.0 CNRI-Python Zlib Unlicense CC0-1.0 BSL-1.0 HPND "
    "ZPL-2.0 ZPL-2.1 X11 NCSA UPL-1.0 PostgreSQL AFL-3.0 CC-BY-3.0 CC-BY-4.0 Bitstream-Vera "
    "OFL-1.0 OFL-1.1 LicenseRef-Public-Domain LicenseRef-Permissive"
)
PERMISSIVE_IDS = {i.lower(): i for i in _PERMISSIVE.split()}
# Prefixes of SPDX id families (lower case): copyleft or non-commercial whatever the version.
FAMILIES = (
    ("cc-by-nc", NONCOMMERCIAL),
    ("licenseref-non-commercial", NONCOMMERCIAL),
    ("agpl", STRONG),
    ("gpl", STRONG),
    ("sspl", STRONG),
    ("lgpl", WEAK),
    ("mpl", WEAK),
    ("epl", WEAK),
    ("cddl", WEAK),
)
FAMILY_CASE = {"agpl": "AGPL", "gpl": "GPL", "lgpl": "LGPL", "mpl": "MPL", "epl": "EPL"}

# Trove classifiers, after "License :: " and "OSI Approved :: ".
TROVE = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "BSD License": "BSD",
    "Apache Software License": "Apache-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "ISC License (ISCL)": "ISC",
    "The Unlicense (Unlicense)": "Unlicense",
    "zlib/libpng License": "Zlib",
    "Zope Public License": "ZPL-2.1",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Universal Permissive License (UPL)": "UPL-1.0",
    "Academic Free License (AFL)": "AFL-3.0",
    "Public Domain": "LicenseRef-Public-Domain",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
    "Mozilla Public License 1.0 (MPL)": "MPL-1.0",
    "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "GNU Library or Lesser General Public License (LGPL)": "LGPL",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU General Public License (GPL)": "GPL",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Other/Proprietary License": "LicenseRef-Proprietary",
    "Freeware": "LicenseRef-Freeware",
    "Free for non-commercial use": "LicenseRef-Non-Commercial",
    "Free For Educational Use": "LicenseRef-Non-Commercial",
    "Free For Home Use": "LicenseRef-Non-Commercial",
}

# Free-text `License` spellings (lower case, single spaces, no trailing dot) -> SPDX.
_ALIAS_GROUPS = {
    "MIT": "mit|mit license|mit licence|the mit license|expat",
    "BSD": "bsd|bsd license|bsd licence|bsd-style|bsd style",
    "BSD-3-Clause": "new bsd|new bsd license|modified bsd|modified bsd license|revised bsd|"
    "3-clause bsd|3-clause bsd license|bsd 3-clause|bsd 3-clause license|bsd-3|bsd3",
    "BSD-2-Clause": "simplified bsd|2-clause bsd|bsd 2-clause|bsd 2-clause license|bsd-2|freebsd",
    "Apache-2.0": "apache|apache 2|apache 2.0|apache-2|apache2|apache license|apache license 2.0|"
    "apache license, version 2.0|apache license version 2.0|apache software license|"
    "apache software license 2.0|asl 2.0|apache license (2.0)",
    "PSF-2.0": "psf|psfl|psf license|python software foundation license|python",
    "MPL-2.0": "mpl|mpl 2|mpl 2.0|mpl2|mozilla public license 2.0",
    "ISC": "isc|isc license|iscl",
    "Unlicense": "unlicense|the unlicense",
    "Zlib": "zlib|zlib/libpng|zlib license",
    "ZPL-2.1": "zpl|zpl 2.1|zope public license",
    "HPND": "hpnd",
    "BSL-1.0": "boost|boost software license",
    "LicenseRef-Public-Domain": "public domain|public-domain",
    "CC0-1.0": "cc0|cc0 1.0",
    "OFL-1.1": "ofl|sil ofl|sil open font license|open font license",
    "Bitstream-Vera": "bitstream vera|dejavu|dejavu licence|dejavu license",
    "LGPL": "lgpl|gnu lgpl",
    "LGPL-2.0-only": "lgplv2",
    "LGPL-2.0-or-later": "lgplv2+",
    "LGPL-2.1-only": "lgplv2.1",
    "LGPL-3.0-only": "lgplv3",
    "LGPL-3.0-or-later": "lgplv3+",
    "GPL": "gpl|gnu gpl",
    "GPL-2.0-only": "gplv2|gpl v2|gpl-2|gpl2",
    "GPL-2.0-or-later": "gplv2+|gpl v2+",
    "GPL-3.0-only": "gplv3|gpl v3|gpl-3|gpl3",
    "GPL-3.0-or-later": "gplv3+|gpl v3+",
    "AGPL-3.0": "agpl",
    "AGPL-3.0-only": "agplv3",
    "AGPL-3.0-or-later": "agplv3+",
    "EPL-1.0": "eplv1|epl 1.0",
    "EPL-2.0": "eplv2|epl 2.0|eclipse public license",
    "LicenseRef-Proprietary": "proprietary",
}
ALIASES = {alias: spdx for spdx, names in _ALIAS_GROUPS.items() for alias in names.split("|")}

# Last resort for prose and whole licence texts: first match wins, worst cases first, so a
# text that mentions the GPL anywhere is never waved through as permissive.
KEYWORDS = (
    (
        r"non[- ]?commercial|research (purposes? )?only|academic use only",
        "LicenseRef-Non-Commercial",
    ),
    (r"\bnon[- ]permissive|\bnot permissive", "LicenseRef-Non-Permissive"),
    (r"affero|\bagpl", "AGPL-3.0"),
    (r"lesser general public|library general public|\blgpl", "LGPL"),
    (r"general public licen[cs]e|\bgpl", "GPL"),
    (r"mozilla public licen[cs]e|\bmpl\b", "MPL-2.0"),
    (r"eclipse public licen[cs]e", "EPL-2.0"),
    (r"proprietary", "LicenseRef-Proprietary"),
    (r"permission is hereby granted,? free of charge", "MIT"),
    (r"redistribution and use in source and binary forms.*neither the name", "BSD-3-Clause"),
    (r"redistribution and use in source and binary forms", "BSD-2-Clause"),
    (r"apache licen[cs]e", "Apache-2.0"),
    (r"python software foundation", "PSF-2.0"),
    (r"open font licen[cs]e|\bofl\b", "OFL-1.1"),
    (r"bitstream vera|dejavu", "Bitstream-Vera"),
    (r"public domain|\bcc0\b", "LicenseRef-Public-Domain"),
    (r"\bmit\b", "MIT"),
    (r"\bbsd\b", "BSD"),
    (r"\bpermissive\b", "LicenseRef-Permissive"),
)

_EXTENSIONS = (
    ".otf .ttf .woff .woff2 .pt .pth .ckpt .onnx .safetensors .bin .h5 .pb .tflite .pkl "
    ".joblib .npz .npy .parquet .arrow .feather .csv .tsv .json .jsonl .png .jpg .jpeg .zip .gz"
)
DEFAULT_EXTENSIONS = _EXTENSIONS.split()


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class Licence:
    """A licence as determined: the normalised expression, its class and where it came from."""

    expression: str
    klass: str
    source: str  # License-Expression | classifier | License | LICENSES.md | none
    found: str  # the raw text it was read from (first line), for the report


def classify_id(spdx_id: str) -> str:
    """The class of one licence id (a WITH exception is judged by its base licence)."""
    low = spdx_id.lower()
    if low in PERMISSIVE_IDS:
        return PERMISSIVE
    return next((k for prefix, k in FAMILIES if low.startswith(prefix)), UNKNOWN)


def _known(spdx_id: str) -> bool:
    return classify_id(spdx_id) != UNKNOWN or spdx_id.lower().startswith("licenseref-")


def _canonical(spdx_id: str) -> str:
    low = spdx_id.lower()
    if low in PERMISSIVE_IDS:
        return PERMISSIVE_IDS[low]
    prefix = next((p for p in FAMILY_CASE if low.startswith(p)), None)
    return spdx_id if prefix is None else FAMILY_CASE[prefix] + spdx_id[len(prefix) :]


_TOKEN = re.compile(r"\(|\)|[A-Za-z0-9.+:\-]+")


def parse_spdx(text: str) -> tuple[str, str] | None:
    """(normalised expression, class) of an SPDX expression, None when it is not one.

    AND takes the worst class of its parts; OR whose choices all share a class takes that
    class, and is `dual` otherwise (a choice someone has to make and write down)."""
    tokens = _TOKEN.findall(text)
    if not tokens or "".join(tokens) != re.sub(r"\s+", "", text):
        return None
    pos = 0

    def peek() -> str:
        return tokens[pos].upper() if pos < len(tokens) else ""

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr() -> tuple[str, str]:
        parts = [conj()]
        while peek() == "OR":
            take()
            parts.append(conj())
        if len(parts) == 1:
            return parts[0]
        classes = {k for _, k in parts}
        return " OR ".join(e for e, _ in parts), classes.pop() if len(classes) == 1 else DUAL

    def conj() -> tuple[str, str]:
        parts = [term()]
        while peek() == "AND":
            take()
            parts.append(term())
        if len(parts) == 1:
            return parts[0]
        worst = max((k for _, k in parts), key=SEVERITY.__getitem__)
        return " AND ".join(_group(e) for e, _ in parts), worst

    def term() -> tuple[str, str]:
        if peek() == "(":
            take()
            inner = expr()
            if take() != ")":
                raise ValueError("unbalanced")
            return f"({inner[0]})", inner[1]
        if peek() in {"", ")", "AND", "OR", "WITH"}:
            raise ValueError("expected a licence id")
        spdx_id = take()
        spdx_id = ALIASES.get(spdx_id.lower(), spdx_id)  # GPLv2, Apache, PSF, ...
        if not _known(spdx_id):
            raise ValueError(f"unknown id {spdx_id}")
        name = _canonical(spdx_id)
        if peek() == "WITH":
            take()
            name = f"{name} WITH {take()}"
        return name, classify_id(spdx_id)

    try:
        result = expr()
    except (ValueError, IndexError):
        return None
    return result if pos == len(tokens) else None


def _group(expression: str) -> str:
    """An expression made safe to join with AND / OR (in parentheses unless a single term)."""
    if " OR " not in expression and " AND " not in expression:
        return expression
    depth = 0
    for i, char in enumerate(expression):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and i < len(expression) - 1:
            return f"({expression})"
    return expression


def _alias(text: str) -> str | None:
    key = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".").strip()
    if key in ALIASES:
        return ALIASES[key]
    for suffix in (" license", " licence"):
        if key.endswith(suffix) and key[: -len(suffix)] in ALIASES:
            return ALIASES[key[: -len(suffix)]]
    return None


def _keyword(text: str) -> str | None:
    low = re.sub(r"\s+", " ", text.lower())
    return next((spdx for pattern, spdx in KEYWORDS if re.search(pattern, low)), None)


def _expression(text: str) -> tuple[str, str] | None:
    """Free text -> (expression, class): SPDX, a known spelling, "A | B", "X with exception"."""
    text = text.strip()
    if not text:
        return None
    if (parsed := parse_spdx(text)) is not None:
        return parsed
    if (alias := _alias(text)) is not None:
        return _canonical(alias), classify_id(alias)
    if match := re.fullmatch(r"(.+?)\s+with\s+(.*exception.*)", text, re.IGNORECASE):
        base = _alias(match[1]) or (parse_spdx(match[1]) or ("", ""))[0]
        if base and " " not in base:
            exception = re.sub(r"\W+", "-", match[2].strip()).strip("-")
            return f"{_canonical(base)} WITH {exception}", classify_id(base)
    parts = [p for p in re.split(r"\s+(?:\||or|/)\s+|\s*\|\s*", text, flags=re.IGNORECASE) if p]
    if len(parts) > 1:
        found = [_expression(p) or _fallback(p) for p in parts]
        if all(f is not None for f in found):
            joined = " OR ".join(dict.fromkeys(_group(e) for e, _ in found))
            return parse_spdx(joined) or (joined, DUAL)
    return None


def _fallback(text: str) -> tuple[str, str] | None:
    spdx = _keyword(text)
    return None if spdx is None else (_canonical(spdx), classify_id(spdx))


def classify_text(text: str, source: str = "License") -> Licence:
    """Any licence text -> a Licence: a one-line text as an expression or a known name first,
    then (and always for a whole licence pasted into the field) by keywords."""
    text = text.strip()
    first = text.splitlines()[0].strip() if text else ""
    found = first if len(first) <= 80 and text == first else first[:77] + "..."
    result = (_expression(text) if text == first else None) or _fallback(text)
    if result is None:
        return Licence("", UNKNOWN, source, found)
    return Licence(result[0], result[1], source, found)


def classify_classifiers(classifiers: Iterable[str]) -> Licence | None:
    """Trove `License ::` classifiers -> a Licence (several count as alternatives), or None."""
    found: list[str] = []
    parts: dict[str, str] = {}  # expression -> class
    for classifier in classifiers:
        if not classifier.startswith("License ::"):
            continue
        name = classifier.removeprefix("License ::").strip().removeprefix("OSI Approved").strip()
        name = name.removeprefix("::").strip()
        if not name:  # a bare "OSI Approved" says nothing about which licence
            continue
        found.append(name)
        spdx = TROVE.get(name)
        licence = Licence(_canonical(spdx), classify_id(spdx), "", "") if spdx else None
        licence = licence or classify_text(name)
        parts[_group(licence.expression or "LicenseRef-" + re.sub(r"\W+", "-", name))] = (
            licence.klass
        )
    if not parts:
        return None
    classes = set(parts.values())
    klass = classes.pop() if len(classes) == 1 else DUAL
    return Licence(" OR ".join(parts), klass, "classifier", "; ".join(found))


def licence_of(meta: Mapping[str, Any] | metadata.PackageMetadata) -> Licence:
    """A distribution's licence: License-Expression, else classifiers, else License."""
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        parsed = parse_spdx(expression)
        if parsed is not None:
            return Licence(parsed[0], parsed[1], "License-Expression", expression)
        return classify_text(expression, "License-Expression")
    if hasattr(meta, "get_all"):
        classifiers = list(meta.get_all("Classifier") or [])
    else:
        value = meta.get("Classifier") or []
        classifiers = [value] if isinstance(value, str) else list(value)
    by_trove = classify_classifiers(classifiers)
    if by_trove is not None:
        return by_trove
    text = (meta.get("License") or "").strip()
    if text and text.upper() != "UNKNOWN":
        return classify_text(text, "License")
    return Licence("", UNKNOWN, "none", "")


# --------------------------------------------------------------------------- the allow list


@dataclass(frozen=True)
class Allowed:
    """One written-down exception: what the licence is and why it passes."""

    name: str  # a distribution name, or a path under the repository for a shipped file
    licence: str
    reason: str
    scope: str = "any"  # "toolchain": only while nothing but the toolchain pulls it in


def load_config(path: Path = CONFIG) -> dict[str, Any]:
    """conf/licences.yaml, checked: every allow-list entry says what it is and why."""
    config = yaml.safe_load(path.read_text()) or {}
    allow: dict[str, Allowed] = {}
    for entry in config.get("allow", []):
        key = "package" if "package" in entry else "file"
        missing = [k for k in (key, "licence", "reason") if not str(entry.get(k, "")).strip()]
        scope = entry.get("scope", "any")
        if missing or scope not in {"any", "toolchain"}:
            raise ValueError(f"{path}: allow-list entry {entry!r} lacks {missing or 'a scope'}")
        name = canonicalize_name(entry[key]) if key == "package" else entry[key]
        allow[name] = Allowed(name, str(entry["licence"]), " ".join(entry["reason"].split()), scope)
    return {
        "toolchain": [canonicalize_name(n) for n in config.get("toolchain", [])],
        "extensions": config.get("shipped_extensions", DEFAULT_EXTENSIONS),
        "allow": allow,
    }


def judge(licence: Licence, via: str, entry: Allowed | None) -> tuple[str, str]:
    """(verdict, why) for one licence under the policy of docs/licences.md."""
    if licence.klass == PERMISSIVE:
        return OK, ""
    if licence.klass == WEAK:
        return REPORT, "weak copyleft: allowed as an unmodified, dynamically linked dependency"
    if licence.klass == NONCOMMERCIAL:
        return FAIL, "non-commercial licence (cannot be allow-listed)"
    what = {
        STRONG: "strong copyleft",
        DUAL: f"dual/multiple licences ({licence.expression}) with no allow-list entry",
        UNKNOWN: "licence unknown and not allow-listed",
    }[licence.klass]
    if entry is None:
        return FAIL, what
    if entry.scope == "toolchain" and via != "toolchain":
        return FAIL, f"{what}: the allow-list entry is for the toolchain only, but idv uses it"
    if licence.klass == STRONG and entry.scope != "toolchain":
        return FAIL, f"{what}: GPL/AGPL is allow-listed only as `scope: toolchain`"
    return ALLOWED, entry.reason


# --------------------------------------------------------------------------- dependencies


@dataclass
class PackageRow:
    """One distribution in the report."""

    name: str
    version: str
    licence: Licence
    via: str  # direct | transitive | toolchain | undeclared (imported, not required)
    required_by: list[str] = field(default_factory=list)
    imported: bool = False
    verdict: str = OK
    why: str = ""
    licence_files: list[str] = field(default_factory=list)


def installed() -> dict[str, metadata.Distribution]:
    """Canonical name -> the distribution that `import` would find (first on sys.path)."""
    index: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            index.setdefault(canonicalize_name(name), dist)
    return index


def requirements(dist: metadata.Distribution, extras: Iterable[str]) -> list[tuple[str, set[str]]]:
    """The (name, extras) that `dist` needs when installed with `extras` (none: no extras)."""
    wanted = ["", *extras]
    found = []
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
            found.append((canonicalize_name(req.name), set(req.extras)))
    return found


def closure(
    index: Mapping[str, metadata.Distribution], roots: Iterable[tuple[str, set[str]]]
) -> tuple[dict[str, set[str]], list[str]]:
    """Everything installed that `roots` pull in: name -> its parents; plus missing names."""
    parents: dict[str, set[str]] = {}
    extras: dict[str, set[str]] = {}
    missing: list[str] = []
    queue = [(name, wanted, "") for name, wanted in roots]
    while queue:
        name, wanted, parent = queue.pop()
        if name not in index:
            missing.append(f"{name} (required by {parent or PACKAGE})")
            continue
        seen = name in parents
        parents.setdefault(name, set()).update({parent} if parent else set())
        if seen and wanted <= extras[name]:
            continue
        extras.setdefault(name, set()).update(wanted)
        queue.extend((n, w, name) for n, w in requirements(index[name], extras[name]))
    return parents, sorted(set(missing))


# --------------------------------------------------------------------------- imports


@dataclass
class ImportUse:
    """A top-level module that `idv` imports, where, and whether only as an optional import."""

    module: str
    files: set[str] = field(default_factory=set)
    optional: bool = True  # every import of it sits in a `try: ... except ImportError`


class _Imports(ast.NodeVisitor):
    def __init__(self, path: str, uses: dict[str, ImportUse]) -> None:
        self.path, self.uses, self.guarded = path, uses, 0

    def visit_Try(self, node: ast.Try) -> None:
        catches = {
            n.id if isinstance(n, ast.Name) else ""
            for h in node.handlers
            for n in (ast.walk(h.type) if h.type is not None else [ast.Name("BaseException")])
        }
        guard = bool(catches & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
        self.guarded += guard
        for child in node.body:
            self.visit(child)
        self.guarded -= guard
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    def _use(self, module: str) -> None:
        use = self.uses.setdefault(module.split(".")[0], ImportUse(module.split(".")[0]))
        use.files.add(self.path)
        use.optional &= self.guarded > 0

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._use(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._use(node.module)


def scan_imports(package_dir: Path) -> tuple[dict[str, ImportUse], list[str]]:
    """Third-party top-level modules imported by the package's source; plus unparsable files."""
    uses: dict[str, ImportUse] = {}
    broken = []
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).as_posix()
        try:
            tree = ast.parse(path.read_bytes(), rel)
        except (SyntaxError, ValueError) as err:
            broken.append(f"{rel}: {err}")
            continue
        _Imports(rel, uses).visit(tree)
    skip = set(sys.stdlib_module_names) | {package_dir.name, "__future__"}
    return {m: u for m, u in sorted(uses.items()) if m not in skip}, broken


# --------------------------------------------------------------------------- shipped files


@dataclass
class FileRow:
    """One shipped data file in the report."""

    path: str
    licence: Licence
    verdict: str
    why: str = ""


def _is_separator(line: str) -> bool:
    return line.startswith("|") and "-" in line and set(line) <= set("|-: ")


def read_listing(listing: Path) -> dict[str, str]:
    """File name (or glob) -> licence text, from the markdown table(s) of a LICENSES.md.

    A table is recognised by a header row with a `file` column and a `licence`/`license`
    column; a file cell may name several files, each in backticks (or comma-separated)."""
    lines = listing.read_text(encoding="utf-8").splitlines()
    entries: dict[str, str] = {}
    columns: tuple[int, int] | None = None
    for i, line in enumerate(lines):
        if not line.strip().startswith("|"):
            columns = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if _is_separator(following):
            heads = [c.lower() for c in cells]
            file_col = next(
                (j for j, h in enumerate(heads) if h in {"file", "files", "path"}), None
            )
            licence_col = next((j for j, h in enumerate(heads) if "licen" in h), None)
            columns = None if file_col is None or licence_col is None else (file_col, licence_col)
            continue
        if columns is None or _is_separator(line):
            continue
        file_cell, licence_cell = (cells[c] if c < len(cells) else "" for c in columns)
        names = re.findall(r"`([^`]+)`", file_cell) or [n.strip() for n in file_cell.split(",")]
        for name in filter(None, names):
            entries[name] = licence_cell
    return entries


def shipped_files(package_dir: Path, extensions: Sequence[str]) -> list[Path]:
    """Data files under the package (fonts, weights, tables); templates (*.j2) are code."""
    exts = tuple(e.lower() for e in extensions)
    return sorted(
        p
        for p in package_dir.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(exts)
        and not p.name.endswith(".j2")
        and "__pycache__" not in p.parts
    )


def check_files(
    package_dir: Path, extensions: Sequence[str], allow: Mapping[str, Allowed]
) -> tuple[list[FileRow], list[str]]:
    """Each shipped file against the LICENSES.md of its directory; plus stale listings."""
    rows, stale = [], []
    listings: dict[Path, dict[str, str]] = {}
    base = package_dir.parent
    for path in shipped_files(package_dir, extensions):
        rel = path.relative_to(base).as_posix()
        listing = path.parent / LISTING
        if path.parent not in listings:
            listings[path.parent] = read_listing(listing) if listing.is_file() else {}
        entries = listings[path.parent]
        text = next((t for n, t in entries.items() if fnmatch.fnmatchcase(path.name, n)), None)
        if text is None:
            where = listing.relative_to(base).as_posix()
            licence = Licence("", UNKNOWN, LISTING, "")
            why = f"not listed in {where}" if listing.is_file() else f"no {where} next to it"
            verdict = FAIL
        else:
            licence = classify_text(text, LISTING)
            verdict, why = (OK, "") if licence.klass == PERMISSIVE else (FAIL, "")
            if verdict == FAIL:
                why = f"listed as {text!r}: {licence.klass}, a shipped file must be permissive"
        if verdict == FAIL and rel in allow:
            verdict, why = ALLOWED, allow[rel].reason
        rows.append(FileRow(rel, licence, verdict, why))
    for directory, entries in listings.items():
        names = [p.name for p in directory.iterdir()]
        for entry in entries:
            if not fnmatch.filter(names, entry):
                stale.append(
                    f"{(directory / LISTING).relative_to(base)} lists {entry}: no such file"
                )
    return rows, stale


# --------------------------------------------------------------------------- the report


@dataclass
class Report:
    """Everything the check found; `failures` decides the exit status."""

    packages: list[PackageRow]
    files: list[FileRow]
    imports: dict[str, list[str]]  # module -> distributions
    failures: list[str]
    warnings: list[str]

    def summary(self) -> str:
        """One line for the CI log."""
        vias = {v: sum(r.via == v for r in self.packages) for v in VIA_ORDER}
        counts = ", ".join(f"{n} {v}" for v, n in vias.items() if n)
        weak = sum(r.verdict == REPORT for r in self.packages)
        allowed = sum(r.verdict == ALLOWED for r in (*self.packages, *self.files))
        status = f"FAILED ({len(self.failures)} failing)" if self.failures else "OK"
        return (
            f"licences: {len(self.packages)} distributions ({counts}), {weak} weak copyleft, "
            f"{allowed} allow-listed; {len(self.files)} shipped files; "
            f"{len(self.imports)} imported modules; {status}"
        )


def build_report(config: Mapping[str, Any], package_dir: Path = PACKAGE_DIR) -> Report:
    """Run every check of the module docstring against the installed environment."""
    index = installed()
    allow: Mapping[str, Allowed] = config["allow"]
    failures: list[str] = []
    warnings: list[str] = []
    if PACKAGE not in index:
        raise SystemExit(f"check_licences: the `{PACKAGE}` distribution is not installed")
    direct = requirements(index[PACKAGE], [])
    toolchain_roots = [(n, e) for n, e in direct if n in config["toolchain"]]
    library, missing = closure(index, [(n, e) for n, e in direct if n not in config["toolchain"]])
    tools, tool_missing = closure(index, toolchain_roots)
    warnings += [f"required but not installed (not checked): {m}" for m in missing + tool_missing]

    uses, broken = scan_imports(package_dir)
    warnings += [f"could not parse {b}" for b in broken]
    module_dists = metadata.packages_distributions()
    imports: dict[str, list[str]] = {}
    imported: set[str] = set()
    for module, use in uses.items():
        dists = sorted({canonicalize_name(d) for d in module_dists.get(module, [])})
        imports[module] = dists
        imported.update(dists)
        if not dists:
            where = ", ".join(sorted(use.files)[:3])
            message = f"import {module} ({where}) maps to no installed distribution"
            if use.optional:
                warnings.append(f"{message} (optional import)")
            else:
                failures.append(f"{message}: its licence cannot be checked")

    direct_names = {n for n, _ in direct}
    rows: list[PackageRow] = []
    for name in sorted(set(library) | set(tools) | imported):
        if name == PACKAGE:
            continue
        if name in library or name in imported:
            via = "direct" if name in direct_names - set(config["toolchain"]) else "transitive"
            if name not in library:
                via = "undeclared"
                only = ", which only the toolchain requires" if name in tools else ""
                warnings.append(f"idv imports {name}{only}: declare it in its dependencies")
        else:
            via = "toolchain"
        dist = index.get(name)
        if dist is None:  # imported from a distribution that shadows another of its name
            warnings.append(f"idv imports {name}, which is not installed under that name")
            continue
        licence = licence_of(dist.metadata)
        verdict, why = judge(licence, via, allow.get(name))
        if name in allow and verdict in {OK, REPORT}:
            warnings.append(f"allow-list entry {name!r} is not needed: {licence.klass}")
        files = [f for f in dist.metadata.get_all("License-File") or []]
        parents = sorted((library.get(name, set()) | tools.get(name, set())) - {PACKAGE})
        rows.append(
            PackageRow(
                name=dist.metadata["Name"],
                version=dist.version,
                licence=licence,
                via=via,
                required_by=parents or [PACKAGE],
                imported=name in imported,
                verdict=verdict,
                why=why,
                licence_files=files,
            )
        )
        if verdict == FAIL:
            hint = f"; see its dist-info licence files: {', '.join(files[:3])}" if files else ""
            failures.append(
                f"{dist.metadata['Name']} {dist.version} ({via}, {licence.source}: "
                f"{licence.found or 'nothing'}): {why}{hint}"
            )
    rows.sort(key=lambda r: (VIA_ORDER[r.via], r.name.lower()))

    file_rows, stale = check_files(package_dir, config["extensions"], allow)
    warnings += stale
    failures += [f"{r.path}: {r.why}" for r in file_rows if r.verdict == FAIL]
    checked = {canonicalize_name(r.name) for r in rows} | {r.path for r in file_rows}
    warnings += [
        f"allow-list entry {n!r} matches nothing checked" for n in allow if n not in checked
    ]
    return Report(rows, file_rows, imports, failures, warnings)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def table(report: Report) -> str:
    """The plain-text table of the CI log."""
    head = ("package", "version", "licence as found", "class", "via", "verdict")
    lines = [
        (r.name, r.version, _cut(r.licence.found or "-", 50), r.licence.klass, r.via, r.verdict)
        for r in report.packages
    ]
    lines += [
        (r.path, "", _cut(r.licence.found or "-", 50), r.licence.klass, "shipped file", r.verdict)
        for r in report.files
    ]
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row).rstrip() for row in [head, *lines])


def toolchain_markdown(report: Report) -> str:
    """The table of docs/licences.md, "The DVC toolchain": DVC, its plugins (dvc-*), and every
    other toolchain package that is not plainly permissive; the rest named in one line."""
    rows = [r for r in report.packages if r.via == "toolchain"]
    shown = [r for r in rows if r.name.startswith("dvc") or r.licence.klass != PERMISSIVE]
    shown.sort(key=lambda r: (r.name != "dvc", not r.name.startswith("dvc-"), r.name.lower()))
    rest = sorted((r for r in rows if r not in shown), key=lambda r: r.name.lower())
    out = [
        "| package | version | licence as found | class | verdict | required by |",
        "|---|---|---|---|---|---|",
    ]
    for r in shown:
        found = r.licence.found.replace("|", "\\|") or "-"
        cells = [
            f"`{r.name}`",
            r.version,
            found,
            r.licence.klass,
            r.verdict,
            ", ".join(r.required_by),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        f"Also in the toolchain subtree, all permissive ({len(rest)}): "
        + ", ".join(f"`{r.name}`" for r in rest)
        + "."
    )
    return "\n".join(out)


def to_json(report: Report) -> dict[str, Any]:
    """The report as plain data (for --json)."""
    return {
        "summary": report.summary(),
        "ok": not report.failures,
        "packages": [asdict(r) for r in report.packages],
        "files": [asdict(r) for r in report.files],
        "imports": report.imports,
        "failures": report.failures,
        "warnings": report.warnings,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table and summary; 1 when anything fails the policy, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report here")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the allow list (YAML)")
    parser.add_argument("--markdown", action="store_true", help="print the docs' toolchain table")
    args = parser.parse_args(argv)
    report = build_report(load_config(args.config))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(report), indent=2, sort_keys=True) + "\n")
    if args.markdown:
        print(toolchain_markdown(report))
        return 0
    print(table(report))
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(report.summary())
    if report.failures:
        print("licence check FAILED:", file=sys.stderr)
        for failure in report.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
