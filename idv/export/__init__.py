"""Export: inference wrappers, TorchScript / ONNX formats, the parity gate, the model card, and
the self-contained bundle that `idv.serving` loads (`idv-export`, conf/export.yaml).

    from idv.export import export_bundle
    export_bundle("best.ckpt", "thresholds.json", "bundle/pad", evaluation_dir="eval/")

The submodules import torch (and the bundle step the training code); `idv.serving` imports
none of them.
"""

from idv.export.formats import EXPORTERS, Exported, export_formats
from idv.export.parity import ParityError, ParityOptions
from idv.export.wrappers import DetectionScorer, EmbeddingScorer, build_wrapper

__all__ = [
    "EXPORTERS",
    "EmbeddingScorer",
    "DetectionScorer",
    "Exported",
    "ExportResult",
    "ParityError",
    "ParityOptions",
    "build_wrapper",
    "export_bundle",
    "export_formats",
]


def __getattr__(name: str):
    # The bundle step pulls in the training code (checkpoint loading, datamodule): lazily.
    if name in ("export_bundle", "ExportResult", "export"):
        from idv.export import bundle

        return getattr(bundle, name)
    raise AttributeError(f"module 'idv.export' has no attribute {name!r}")
