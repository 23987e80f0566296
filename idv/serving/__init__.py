"""Bundle loader and scorer: torch only (TorchScript) or onnxruntime + numpy only (ONNX).

Nothing here imports Lightning, Hydra or the training code (`idv.tasks`, `idv.data`,
`idv.models`): a bundle written by `idv-export` is self-contained.

    from idv.serving import load_bundle
    bundle = load_bundle("bundle/pad", backend="onnxruntime")
    scores = bundle.score(["a.jpg", "b.png"])        # P(attack), float32 (N,)
    bundle.decide(scores, segment={"geography": "EU"})  # accept / review / reject

A matching bundle (face_match) embeds aligned face crops instead:

    faces = load_bundle("bundle/face_match", backend="onnxruntime")
    emb = faces.embed(["selfie.jpg"])                 # float32 (N, D), unit norm
    sims, decisions = faces.verify("portrait.jpg", ["selfie.jpg"])  # match / review / non_match
    from idv.serving.gallery import Gallery           # faiss, only for 1:N search
    faces.identify(["probe.jpg"], gallery, k=5)       # top-k candidates with decisions
"""

from idv.serving.bundle import Bundle, BundleError, load_bundle, verify_bundle

__all__ = ["Bundle", "BundleError", "load_bundle", "verify_bundle"]
