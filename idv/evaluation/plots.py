"""Plot tables (CSV, for `dvc plots`) and the same plots as PNG files (the offline view:
`dvc plots show` renders HTML that loads vega from a CDN, blank without the network)."""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Axes:
    """What the generic rates mean for one kind of decision (the positive class scores high)."""

    fpr: str
    fnr: str
    tpr: str
    score: str


DETECTION_AXES = Axes(
    "BPCER (bona fide rejected)",
    "APCER (attacks accepted)",
    "1 - APCER (attacks caught)",
    "score (P(attack))",
)
MATCHING_AXES = Axes(
    "FMR (impostors accepted)",
    "FNMR (genuine rejected)",
    "TAR = 1 - FNMR",
    "score (cosine similarity)",
)


def plot_tables(
    scores: pd.Series,
    positive: pd.Series,
    groups: pd.Series,
    score_range: tuple[float, float],
) -> dict[str, pd.DataFrame]:
    """ROC (fpr, tpr), DET (probit axes) and score histograms per group. `positive` marks the
    class that scores high (attacks for detection, genuine comparisons for matching), so the
    same columns serve every task and one `dvc plots` definition draws them all."""
    points = det_points(scores, positive)
    roc = pd.DataFrame(
        {"fpr": points["fpr"], "tpr": points["tpr"], "threshold": points["threshold"]}
    )
    det = pd.DataFrame(
        {
            "fpr": points["fpr"],
            "fnr": points["fnr"],
            "probit_fpr": points["probit_fpr"],
            "probit_fnr": points["probit_fnr"],
            "threshold": points["threshold"],
        }
    )
    finite = np.isfinite(roc["threshold"]) & np.isfinite(det["threshold"])
    edges = np.linspace(*score_range, HIST_BINS + 1)
    hist = []
    for name, group in pd.Series(scores).groupby(pd.Series(groups).to_numpy(), sort=True):
        counts, _ = np.histogram(np.clip(group, *score_range), bins=edges)
        hist.append(
            pd.DataFrame(
                {"bin_low": edges[:-1], "bin_high": edges[1:], "group": name, "count": counts}
            )
        )
    return {"roc": roc[finite], "det": det[finite], "score_hist": pd.concat(hist)}


def detection_plot_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Plot tables of the acquired rows of a detection score table (groups: species)."""
    rows = table[table["acquired"]] if "acquired" in table else table
    return plot_tables(rows["score"], rows["label"], rows["attack_type"], (0.0, 1.0))


def matching_plot_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Plot tables of the acquired rows of a comparison table (groups: genuine / impostor)."""
    rows = table[table["acquired"]] if "acquired" in table else table
    kind = np.where(rows["genuine"].astype(bool), "genuine", "impostor")
    return plot_tables(rows["score"], rows["genuine"].astype(int), pd.Series(kind), (-1.0, 1.0))


def write_plots(
    tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike, axes: Axes = DETECTION_AXES
) -> list[Path]:
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
        draw(ax, tables[name], axes)
        fig.tight_layout()
        with atomic_path(out_dir / f"{name}.png") as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append(out_dir / f"{name}.png")
    return written


def _roc(ax, frame: pd.DataFrame, axes: Axes) -> None:
    ax.plot(frame["fpr"], frame["tpr"])
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel=axes.fpr, ylabel=axes.tpr, title="ROC")


def _det(ax, frame: pd.DataFrame, axes: Axes) -> None:
    ax.plot(frame["probit_fpr"], frame["probit_fnr"])
    ticks = np.array([0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 0.9])
    ax.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set(xlabel=axes.fpr, ylabel=axes.fnr, title="DET (normal-deviate axes)")


def _hist(ax, frame: pd.DataFrame, axes: Axes) -> None:
    for name, group in frame.groupby("group", sort=True):
        ax.step(group["bin_low"], group["count"], where="post", label=str(name))
    ax.set(xlabel=axes.score, ylabel="count", title="Scores by class")
    ax.legend(fontsize="small")
