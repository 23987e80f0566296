"""Bundle loader and scorer: torch only (TorchScript) or onnxruntime + numpy only (ONNX).

Nothing here imports Lightning, Hydra or the training code (`idv.tasks`, `idv.data`,
`idv.models`): a bundle written by `idv-export` is self-contained.

    from idv.serving import load_bundle
    bundle = load_bundle("bundle/pad", backend="onnxruntime")
    scores = bundle.score(["a.jpg", "b.png"])        # P(attack), float32 (N,)
    bundle.decide(scores, segment={"geography": "EU"})  # accept / review / reject

A matching bundle (face_match) embeds faces instead; it detects and aligns them in photos
itself (MTCNN inside the bundle, idv.faces), and a photo without one usable face is a
failure to acquire (NaN embedding, `non_match`), reported by `acquire`:

    faces = load_bundle("bundle/face_match", backend="onnxruntime")
    emb = faces.embed(["selfie.jpg"])                 # float32 (N, D), unit norm (NaN: no face)
    sims, decisions = faces.verify("portrait.jpg", ["selfie.jpg"])  # match / review / non_match
    faces.acquire(["group.jpg"])[0].report()          # failure, detail, each face found
    faces.embed(crops, aligned=True)                  # aligned ArcFace crops as they are
    from idv.serving.gallery import Gallery           # faiss, only for 1:N search
    faces.identify(["probe.jpg"], gallery, k=5)       # top-k candidates with decisions
"""

from idv.serving.bundle import Bundle, BundleError, load_bundle, verify_bundle

__all__ = ["Bundle", "BundleError", "load_bundle", "verify_bundle"]
