"""scripts/check_licences.py: licences are classified as the policy says, dual licences and
unknowns pass only through the allow list, shipped data files need a permissive LICENSES.md row,
and the real environment passes (offline, from installed metadata)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts/check_licences.py"
spec = importlib.util.spec_from_file_location("check_licences", SCRIPT)
lic = importlib.util.module_from_spec(spec)
sys.modules["check_licences"] = lic  # dataclasses look their module up while being defined
spec.loader.exec_module(lic)

P, W, D, U, S, N = (
    lic.PERMISSIVE,
    lic.WEAK,
    lic.DUAL,
    lic.UNKNOWN,
    lic.STRONG,
    lic.NONCOMMERCIAL,
)


@pytest.mark.parametrize(
    ("text", "expression", "klass"),
    [
        # SPDX ids and expressions (License-Expression, or a License field that is one)
        ("MIT", "MIT", P),
        ("Apache-2.0", "Apache-2.0", P),
        ("BSD-3-Clause", "BSD-3-Clause", P),
        ("GPL-3.0-or-later", "GPL-3.0-or-later", S),
        ("AGPL-3.0", "AGPL-3.0", S),
        ("CC-BY-NC-4.0", "CC-BY-NC-4.0", N),
        ("LGPL-2.1", "LGPL-2.1", W),
        ("LGPL-3.0-or-later", "LGPL-3.0-or-later", W),
        ("MPL-2.0", "MPL-2.0", W),
        ("EPL-2.0", "EPL-2.0", W),
        ("MIT OR GPL-2.0-only", "MIT OR GPL-2.0-only", D),
        ("Apache-2.0 OR BSD-3-Clause", "Apache-2.0 OR BSD-3-Clause", P),
        ("MPL-2.0 AND (Apache-2.0 OR MIT)", "MPL-2.0 AND (Apache-2.0 OR MIT)", W),
        ("MIT AND GPL-2.0-only", "MIT AND GPL-2.0-only", S),
        ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception", P),
        (
            "GPL-2.0-only WITH Classpath-exception-2.0",
            "GPL-2.0-only WITH Classpath-exception-2.0",
            S,
        ),
        ("mit or apache-2.0", "MIT OR Apache-2.0", P),
        ("LicenseRef-NVIDIA-Proprietary", "LicenseRef-NVIDIA-Proprietary", U),
        # free-text spellings of the License field
        ("MIT License", "MIT", P),
        ("Apache 2.0", "Apache-2.0", P),
        ("Apache License 2.0", "Apache-2.0", P),
        ("Apache License, Version 2.0", "Apache-2.0", P),
        ("Apache Software License", "Apache-2.0", P),
        ("BSD", "BSD", P),
        ("New BSD", "BSD-3-Clause", P),
        ("3-Clause BSD License", "BSD-3-Clause", P),
        ("PSF", "PSF-2.0", P),
        ("ISC", "ISC", P),
        ("The Unlicense", "Unlicense", P),
        ("HPND", "HPND", P),
        ("Zlib", "Zlib", P),
        ("ZPL-2.1", "ZPL-2.1", P),
        ("public domain", "LicenseRef-Public-Domain", P),
        ("GPLv2 | EPLv1", "GPL-2.0-only OR EPL-1.0", D),
        ("GPLv2 with linking exception", "GPL-2.0-only WITH linking-exception", S),
        ("Free for non-commercial use", "LicenseRef-Non-Commercial", N),
        ("for research purposes only", "LicenseRef-Non-Commercial", N),
        ("NVIDIA Proprietary Software", "LicenseRef-Proprietary", U),
        ("Dual License", "", U),
        ("Some bespoke terms, ask legal", "", U),
        ("", "", U),
    ],
)
def test_classify_text(text: str, expression: str, klass: str) -> None:
    found = lic.classify_text(text)
    assert (found.expression, found.klass) == (expression, klass)


def test_a_whole_licence_text_is_read_by_its_words() -> None:
    mit = "MIT License\n\nCopyright (c) 2024 X\n\nPermission is hereby granted, free of charge, ..."
    assert lic.classify_text(mit).klass == P
    bsd = "Copyright (c) X\nRedistribution and use in source and binary forms ... Neither the name"
    assert lic.classify_text(bsd).expression == "BSD-3-Clause"
    # A text that mentions the GPL anywhere is never read as permissive.
    mixed = "BSD 3-Clause\n...\nlibgfortran: GNU General Public License v3 with runtime exception"
    assert lic.classify_text(mixed).klass == S


@pytest.mark.parametrize(
    ("meta", "expression", "klass", "source"),
    [
        ({"Classifier": ["License :: OSI Approved :: MIT License"]}, "MIT", P, "classifier"),
        (
            {
                "Classifier": [
                    "License :: OSI Approved :: BSD License",
                    "License :: OSI Approved :: Apache Software License",
                ]
            },
            "BSD OR Apache-2.0",
            P,
            "classifier",
        ),
        (  # a permissive and a GPL classifier: which applies to what is for a person to say
            {
                "Classifier": [
                    "License :: OSI Approved :: MIT License",
                    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)",
                ]
            },
            "MIT OR GPL-2.0-only",
            D,
            "classifier",
        ),
        (
            {
                "Classifier": [
                    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)"
                ]
            },
            "LGPL-3.0-only",
            W,
            "classifier",
        ),
        (
            {"Classifier": ["License :: Other/Proprietary License"], "License": "Apache 2.0"},
            "LicenseRef-Proprietary",
            U,
            "classifier",
        ),
        (  # a bare "OSI Approved" says nothing: fall through to the License field
            {"Classifier": ["License :: OSI Approved"], "License": "EPL-2.0 OR GPL-2.0-or-later"},
            "EPL-2.0 OR GPL-2.0-or-later",
            D,
            "License",
        ),
        (  # License-Expression wins over classifiers and the License field
            {
                "License-Expression": "Apache-2.0",
                "Classifier": ["License :: OSI Approved :: GNU General Public License (GPL)"],
                "License": "GPL",
            },
            "Apache-2.0",
            P,
            "License-Expression",
        ),
        ({"Classifier": ["Programming Language :: Python"]}, "", U, "none"),
        ({"License": "UNKNOWN"}, "", U, "none"),
    ],
)
def test_licence_of_metadata(meta: dict, expression: str, klass: str, source: str) -> None:
    found = lic.licence_of(meta)
    assert (found.expression, found.klass, found.source) == (expression, klass, source)


def _allow(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "licences.yaml"
    path.write_text(text)
    return lic.load_config(path)["allow"]


def test_a_dual_licence_passes_only_when_allow_listed(tmp_path: Path) -> None:
    dual = lic.licence_of({"License-Expression": "MIT OR GPL-2.0-only"})
    assert lic.judge(dual, "transitive", None)[0] == lic.FAIL
    allow = _allow(
        tmp_path,
        "allow:\n- {package: Some_Pkg, licence: MIT OR GPL-2.0-only, reason: we take MIT}\n",
    )
    assert lic.judge(dual, "transitive", allow["some-pkg"]) == (lic.ALLOWED, "we take MIT")


def test_the_allow_list_cannot_pass_gpl_that_idv_uses(tmp_path: Path) -> None:
    gpl = lic.licence_of({"License": "GPLv2"})
    any_scope = lic.Allowed("x", "GPL-2.0", "please")
    tool_scope = lic.Allowed("x", "GPL-2.0", "a separate program", "toolchain")
    assert lic.judge(gpl, "toolchain", None)[0] == lic.FAIL
    assert lic.judge(gpl, "toolchain", any_scope)[0] == lic.FAIL  # must say scope: toolchain
    assert lic.judge(gpl, "transitive", tool_scope)[0] == lic.FAIL  # idv imports it
    assert lic.judge(gpl, "toolchain", tool_scope)[0] == lic.ALLOWED
    nc = lic.licence_of({"License-Expression": "CC-BY-NC-4.0"})
    assert lic.judge(nc, "toolchain", tool_scope)[0] == lic.FAIL  # never allow-listable
    assert lic.judge(lic.licence_of({"License": "LGPL-2.1"}), "direct", None)[0] == lic.REPORT
    unknown = lic.licence_of({})
    assert lic.judge(unknown, "direct", None)[0] == lic.FAIL
    assert lic.judge(unknown, "direct", any_scope)[0] == lic.ALLOWED


def test_an_allow_list_entry_needs_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reason"):
        _allow(tmp_path, "allow:\n- {package: x, licence: MIT}\n")
    with pytest.raises(ValueError, match="scope"):
        _allow(tmp_path, "allow:\n- {package: x, licence: MIT, reason: r, scope: everywhere}\n")


def test_the_closure_follows_requested_extras_and_skips_the_rest() -> None:
    def dist(*requires: str) -> SimpleNamespace:
        return SimpleNamespace(requires=list(requires))

    index = {
        "a": dist("b", 'f; extra == "dev"', 'g; python_version < "3"'),
        "b": dist("c[x]", "missing-one"),
        "c": dist("d", 'e; extra == "x"', 'f; extra == "y"'),
        "d": dist(),
        "e": dist(),
        "f": dist(),
        "g": dist(),
    }
    parents, missing = lic.closure(index, [("a", set())])
    assert sorted(parents) == ["a", "b", "c", "d", "e"]
    assert parents["e"] == {"c"}
    assert missing == ["missing-one (required by b)"]


def test_imports_are_scanned_from_the_source(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("import os\nimport numpy as np\nfrom pkg.sub import x\n")
    (pkg / "sub/__init__.py").write_text(
        "from . import y\nfrom torch.nn import Module\n"
        "try:\n    import onnxsim\nexcept ImportError:\n    onnxsim = None\n"
        "try:\n    import rich\nexcept:\n    pass\nfinally:\n    import scipy\n"
    )
    uses, broken = lic.scan_imports(pkg)
    assert sorted(uses) == ["numpy", "onnxsim", "rich", "scipy", "torch"]
    assert [m for m, u in uses.items() if u.optional] == ["onnxsim", "rich"]
    assert broken == []


def _package(tmp_path: Path, listing: str | None, name: str = "model.onnx") -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "assets").mkdir(parents=True)
    (pkg / "assets" / name).write_bytes(b"\0")
    (pkg / "assets" / "card.json.j2").write_text("{{ x }}")  # a template: code, not data
    if listing is not None:
        (pkg / "assets" / "LICENSES.md").write_text(
            f"# Assets\n\n| file | licence | source |\n|---|---|---|\n{listing}\n"
        )
    return pkg


def _verdicts(pkg: Path, allow: dict | None = None) -> list[tuple[str, str]]:
    rows, _ = lic.check_files(pkg, [".onnx", ".ttf", ".json"], allow or {})
    return [(r.path, r.verdict) for r in rows]


@pytest.mark.parametrize(
    ("row", "verdict"),
    [
        ("| `other.onnx` | MIT | x |", lic.FAIL),  # not listed
        ("| `model.onnx` | GPL-3.0 | x |", lic.FAIL),
        ("| `model.onnx` | GNU GPL v2 with font exception | x |", lic.FAIL),
        ("| `model.onnx` | CC-BY-NC-4.0 (research only) | x |", lic.FAIL),
        ("| `model.onnx` | LGPL-2.1 | x |", lic.FAIL),  # shipped files must be permissive
        ("| `model.onnx` | ask the vendor | x |", lic.FAIL),
        ("| `model.onnx` | public domain | x |", lic.OK),
        ("| `model.onnx` | SIL Open Font License 1.1 | x |", lic.OK),
        ("| `model.onnx` | MIT | x |", lic.OK),
        ("| `a.onnx`, `model.onnx` | Apache-2.0 | x |", lic.OK),
        ("| `*.onnx` | BSD-3-Clause | x |", lic.OK),
        ("| `model.onnx` | Bitstream Vera / DejaVu licence (permissive) | x |", lic.OK),
    ],
)
def test_a_shipped_file_needs_a_permissive_listing(tmp_path: Path, row: str, verdict: str) -> None:
    assert _verdicts(_package(tmp_path, row)) == [("pkg/assets/model.onnx", verdict)]


def test_a_shipped_file_without_a_listing_fails_unless_allow_listed(tmp_path: Path) -> None:
    pkg = _package(tmp_path, None)
    rows, _ = lic.check_files(pkg, [".onnx"], {})
    assert [(r.verdict, r.why) for r in rows] == [
        (lic.FAIL, "no pkg/assets/LICENSES.md next to it")
    ]
    allow = {"pkg/assets/model.onnx": lic.Allowed("pkg/assets/model.onnx", "MIT", "ours")}
    assert _verdicts(pkg, allow) == [("pkg/assets/model.onnx", lic.ALLOWED)]


def test_a_stale_listing_is_reported(tmp_path: Path) -> None:
    pkg = _package(tmp_path, "| `model.onnx` | MIT | x |\n| `gone.ttf` | MIT | x |")
    _, stale = lic.check_files(pkg, [".onnx"], {})
    assert stale == ["pkg/assets/LICENSES.md lists gone.ttf: no such file"]


def test_the_shipped_fonts_listing_is_read() -> None:
    entries = lic.read_listing(ROOT / "idv/documents/fonts/LICENSES.md")
    assert {"OCRB.otf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"} <= set(entries)


@pytest.fixture(scope="module")
def report() -> object:
    return lic.build_report(lic.load_config())


def test_the_installed_environment_passes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert lic.main(["--json", str(tmp_path / "r.json")]) == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["ok"] and not data["failures"]
    via = {p["name"]: p["via"] for p in data["packages"]}
    assert via["torch"] == "direct" and via["dvc"] == "toolchain"
    assert "pytest" not in via and "ruff" not in via  # the dev extra is not shipped
    assert "licences:" in capsys.readouterr().out


def test_every_import_maps_to_a_checked_distribution(report: object) -> None:
    checked = {lic.canonicalize_name(p.name) for p in report.packages}
    for module, dists in report.imports.items():
        assert dists and set(dists) <= checked, module
    assert [p.name for p in report.packages if p.via == "undeclared"] == []


def test_the_docs_show_the_toolchain_as_installed(report: object) -> None:
    docs = (ROOT / "docs/licences.md").read_text()
    assert lic.toolchain_markdown(report) in docs, (
        "docs/licences.md is out of date: paste `python scripts/check_licences.py --markdown`"
    )


def test_ci_runs_the_check() -> None:
    assert (
        ".venv/bin/python scripts/check_licences.py" in (ROOT / "scripts/run_tests.sh").read_text()
    )
