"""Plot tables (CSV, for `dvc plots`) and the same plots as PNG files (the offline view:
`dvc plots show` renders HTML that loads vega from a CDN, blank without the network)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import norm  # noqa: E402

from idv.atomic import atomic_path  # noqa: E402
from idv.metrics.ranking import det_points  # noqa: E402

HIST_BINS = 20


def detection_plot_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """ROC (BPCER vs 1 - APCER), DET (probit axes) and score histograms by class and species,
    from the acquired rows of a detection score table."""
    rows = table[table["acquired"]] if "acquired" in table else table
    points = det_points(rows["score"], rows["label"])
    roc = pd.DataFrame(
        {"bpcer": points["fpr"], "one_minus_apcer": points["tpr"], "threshold": points["threshold"]}
    )
    det = pd.DataFrame(
        {
            "bpcer": points["fpr"],
            "apcer": points["fnr"],
            "probit_bpcer": points["probit_fpr"],
            "probit_apcer": points["probit_fnr"],
            "threshold": points["threshold"],
        }
    )
    finite = np.isfinite(roc["threshold"]) & np.isfinite(det["threshold"])
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    hist = []
    for species, group in rows.groupby("attack_type", sort=True):
        counts, _ = np.histogram(np.clip(group["score"], 0.0, 1.0), bins=edges)
        hist.append(
            pd.DataFrame(
                {"bin_low": edges[:-1], "bin_high": edges[1:], "species": species, "count": counts}
            )
        )
    return {"roc": roc[finite], "det": det[finite], "score_hist": pd.concat(hist)}


def write_plots(tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike) -> list[Path]:
    """`<name>.csv` for dvc plots and `<name>.png` for people, atomically."""
    out_dir = Path(out_dir)
    written = []
    for name, frame in tables.items():
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)
        written.append(out_dir / f"{name}.csv")
    figures = {"roc": _roc, "det": _det, "score_hist": _hist}
    for name, draw in figures.items():
        if name not in tables:
            continue
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        draw(ax, tables[name])
        fig.tight_layout()
        with atomic_path(out_dir / f"{name}.png") as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append(out_dir / f"{name}.png")
    return written


def _roc(ax, frame: pd.DataFrame) -> None:
    ax.plot(frame["bpcer"], frame["one_minus_apcer"])
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="BPCER (bona fide rejected)", ylabel="1 - APCER (attacks caught)", title="ROC")


def _det(ax, frame: pd.DataFrame) -> None:
    ax.plot(frame["probit_bpcer"], frame["probit_apcer"])
    ticks = np.array([0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 0.9])
    ax.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set(xlabel="BPCER", ylabel="APCER", title="DET (normal-deviate axes)")


def _hist(ax, frame: pd.DataFrame) -> None:
    for species, group in frame.groupby("species", sort=True):
        ax.step(group["bin_low"], group["count"], where="post", label=str(species))
    ax.set(xlabel="score (P(attack))", ylabel="samples", title="Scores by class and species")
    ax.legend(fontsize="small")
