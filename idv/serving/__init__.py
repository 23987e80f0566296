"""Bundle loader and scorer: torch only (TorchScript) or onnxruntime + numpy only (ONNX).

Nothing here imports Lightning, Hydra or the training code (`idv.tasks`, `idv.data`,
`idv.models`): a bundle written by `idv-export` is self-contained.

    from idv.serving import load_bundle
    bundle = load_bundle("bundle/pad", backend="onnxruntime")
    scores = bundle.score(["a.jpg", "b.png"])        # P(attack), float32 (N,)
    bundle.decide(scores, segment={"geography": "EU"})  # accept / review / reject
"""

from idv.serving.bundle import Bundle, BundleError, load_bundle, verify_bundle

__all__ = ["Bundle", "BundleError", "load_bundle", "verify_bundle"]
