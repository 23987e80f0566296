"""Faces on real photos, torch-free: detection, 5-point alignment and the acquisition policy.

Training (the photo importers) and serving (a face bundle's `embed` / `verify` / `identify`)
share this package, so a photo becomes a crop, or a failure to acquire, the same way in both:

- `idv.faces.align`: the least-squares similarity onto the ArcFace template (every crop);
- `idv.faces.detection`: `Detection` (box, probability, 5 landmarks) and the detector settings;
- `idv.faces.mtcnn`: MTCNN's pyramid, box regression, NMS and landmarks in numpy, over its
  three networks run by any backend (ONNX Runtime in a bundle; facenet-pytorch's own nets in
  the parity tests);
- `idv.faces.acquisition`: downscale a large photo, detect, choose one face (the several-faces
  policy), refuse a face too small, align; the reason when no face is acquired.

Only numpy, Pillow and OpenCV are imported here (the serving layer's rule, tests/test_layers.py).
"""
