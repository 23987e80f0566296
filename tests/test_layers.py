"""The layer rules of docs/architecture.md, enforced by importing: every module of a layer is
imported in a fresh interpreter where the packages it must not use raise ImportError. A rule
broken anywhere (even in a lazily imported helper module) fails here, naming the module."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import idv

BLOCKER = """
import importlib, importlib.abc, json, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("blocked by the layer rule: " + name)
sys.meta_path.insert(0, Block())
failed = {{}}
for module in {modules!r}:
    try:
        importlib.import_module(module)
    except Exception as err:
        failed[module] = f"{{type(err).__name__}}: {{err}}"
print(json.dumps(failed))
"""
TRAINING = ["lightning", "pytorch_lightning", "hydra", "omegaconf", "albumentations", "timm"]


def modules(package: str) -> list[str]:
    """Every module of an idv package (the package itself included)."""
    root = __import__(package, fromlist=["_"])
    found = [package]
    if hasattr(root, "__path__"):
        found += [m.name for m in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")]
    return found


# (layer, the modules it consists of, what they must never import)
RULES = [
    (
        "serving: torch-free-capable, no training stack or code",
        modules("idv.serving")
        + modules("idv.faces")
        + modules("idv.sessions")
        + modules("idv.documents")
        + modules("idv.graphs")
        + ["idv.thresholds", "idv.kinds", "idv.imaging", "idv.atomic", "idv.capture_metadata"]
        + ["idv.errors"],
        [
            *TRAINING,
            "torch",
            "torch_geometric",
            "pandas",
            "idv.tasks",
            "idv.data",
            "idv.models",
            "idv.export",
        ],
    ),
    (
        "models: plain nn.Modules, no Lightning",
        modules("idv.models"),
        ["lightning", "pytorch_lightning", "idv.tasks", "idv.evaluation", "idv.export"],
    ),
    (
        "evaluation: tables -> metrics, no tasks and no serving",
        modules("idv.evaluation"),
        ["lightning", "pytorch_lightning", "torch", "idv.tasks", "idv.serving", "idv.export"],
    ),
    (
        "calibration: tables -> thresholds",
        modules("idv.calibration"),
        ["lightning", "torch", "idv.tasks", "idv.serving", "idv.export", "idv.evaluation"],
    ),
    (
        "metrics: pure functions (and torchmetrics wrappers)",
        [m for m in modules("idv.metrics") if m != "idv.metrics.wrappers"],
        ["lightning", "torch", "idv.tasks", "idv.evaluation", "idv.calibration", "idv.serving"],
    ),
    (
        "export: models, calibration and data, never the tasks",
        modules("idv.export"),
        ["lightning", "pytorch_lightning", "idv.tasks", "idv.evaluation"],
    ),
    (
        "nothing imports idv.cli",
        [m for m in modules("idv") if not m.startswith("idv.cli")],
        ["idv.cli"],
    ),
]


@pytest.mark.parametrize("rule, layer, blocked", RULES, ids=[r[0].split(":")[0] for r in RULES])
def test_layer_imports_nothing_it_must_not(rule: str, layer: list[str], blocked: list[str]):
    script = BLOCKER.format(blocked=blocked, modules=layer)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert failed == {}, f"{rule}: {failed}"


def test_every_layer_rule_covers_real_modules() -> None:
    assert idv.__name__ == "idv"
    for rule, layer, _ in RULES:
        assert len(layer) > 1, rule
    assert "idv.serving.gallery" in RULES[0][1] and "idv.faces.mtcnn" in RULES[0][1]
    assert "idv.evaluation.benchmark_core" in RULES[2][1]
