"""The metadata-shortcut check: can a label be read off the files without looking at them?

A synthetic PAD corpus in which file size, JPEG quality, image size or mean brightness give
the label away would let a detector score well for the wrong reason. This fits classifiers on
those features alone, cross-validated by subject, and reports their AUC (near 0.5 is healthy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from idv.data.manifest import Manifest

FEATURES = ("file_size", "jpeg_quant", "width", "height", "mean_brightness")


def metadata_features(manifest: Manifest) -> pd.DataFrame:
    """Per-sample file metadata; `jpeg_quant` is the mean luminance quantisation step
    (a monotone proxy of the JPEG quality; 0 for lossless files)."""
    rows = []
    for rel in manifest.frame["path"]:
        path = manifest.abspath(rel)
        with Image.open(path) as image:
            quant = getattr(image, "quantization", None) or {}
            luma = np.mean(quant[0]) if 0 in quant else 0.0
            pixels = np.asarray(image.convert("L"), dtype=np.float32)
            rows.append(
                {
                    "file_size": path.stat().st_size,
                    "jpeg_quant": luma,
                    "width": image.width,
                    "height": image.height,
                    "mean_brightness": float(pixels.mean()),
                }
            )
    return pd.DataFrame(rows, columns=list(FEATURES))


def metadata_shortcut_auc(manifest: Manifest, folds: int = 5) -> dict[str, float]:
    """Out-of-fold ROC AUC of a linear and a boosted-tree classifier on metadata alone.

    Folds are grouped by subject, as real splits are; returns one AUC per classifier.
    """
    x = metadata_features(manifest).to_numpy(dtype=np.float64)
    y = manifest.frame["label"].to_numpy()
    groups = manifest.frame["subject_id"].to_numpy()
    models = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "boosted_trees": HistGradientBoostingClassifier(max_iter=100, random_state=0),
    }
    result = {}
    for name, model in models.items():
        scores = np.zeros(len(y))
        for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
            model.fit(x[train], y[train])
            scores[test] = model.predict_proba(x[test])[:, 1]
        result[name] = float(roc_auc_score(y, scores))
    return result
