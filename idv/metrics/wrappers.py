"""torchmetrics wrappers: cat-states of scores, so DDP gathers every sample before computing.

Operating-point metrics (EER, BPCER at an APCER) need all scores at once; averaging per-batch
or per-process values would be wrong, so the states are concatenated and the pure functions of
`idv.metrics.detection` run on the gathered arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from idv.metrics.detection import (
    apcer_per_species,
    auc,
    bpcer_at_worst_apcer,
    eer,
    pct,
)
from idv.metrics.verification import fnmr_fmr, threshold_at_fmr, verification_eer


class DetectionMetrics(Metric):
    """AUC, EER, BPCER at worst-species APCER targets, and per-species APCER at the EER
    threshold of the same data, from (score, label, species index) triples."""

    full_state_update = False
    higher_is_better = False

    def __init__(
        self, species: Sequence[str], apcer_targets: Sequence[float] = (0.01, 0.05, 0.1), **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.species = list(species)
        self.apcer_targets = tuple(apcer_targets)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("species_index", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, labels: torch.Tensor, species: torch.Tensor) -> None:
        self.scores.append(scores.detach().float().flatten())
        self.labels.append(labels.detach().flatten())
        self.species_index.append(species.detach().flatten())

    def compute(self) -> dict[str, torch.Tensor]:
        scores = dim_zero_cat(self.scores).cpu().numpy()
        labels = dim_zero_cat(self.labels).cpu().numpy()
        names = [self.species[i] for i in dim_zero_cat(self.species_index).cpu().tolist()]
        if labels.min() == labels.max():  # e.g. a sanity-check batch of one class
            return {}
        point = eer(scores, labels)
        result = {"auc": auc(scores, labels), "eer": point.rate}
        for target in self.apcer_targets:
            result[f"bpcer_at_worst_apcer_{pct(target)}"] = bpcer_at_worst_apcer(
                scores, labels, names, target
            )
        per_species = apcer_per_species(scores, labels, names, point.threshold)
        for name, value in per_species.items():
            result[f"apcer_{name}@eer_threshold"] = value
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in result.items()}


class VerificationMetrics(Metric):
    """EER and FNMR at FMR targets over every pair of the gathered embeddings (all-vs-all:
    genuine = same identity label), for model selection on held-out identities.

    Figures are plain rates: the resolution rules of the evaluation report (rule of three,
    impostor subjects) are not applied here, where only the ranking of checkpoints matters.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, fmr_targets: Sequence[float] = (0.01, 0.001), **kwargs) -> None:
        super().__init__(**kwargs)
        self.fmr_targets = tuple(fmr_targets)
        self.add_state("embeddings", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        self.embeddings.append(embeddings.detach().float())
        self.labels.append(labels.detach().flatten())

    def compute(self) -> dict[str, torch.Tensor]:
        x = dim_zero_cat(self.embeddings).cpu()
        y = dim_zero_cat(self.labels).cpu()
        i, j = torch.triu_indices(len(y), len(y), offset=1)
        scores = (x[i] * x[j]).sum(dim=1).numpy()
        genuine = (y[i] == y[j]).numpy()
        if genuine.all() or not genuine.any():  # e.g. a sanity-check batch of one identity
            return {}
        result = {"eer": verification_eer(scores, genuine).rate}
        for target in self.fmr_targets:
            threshold = threshold_at_fmr(scores, genuine, target)
            result[f"fnmr_at_fmr_{target:.0e}"] = fnmr_fmr(scores, genuine, [threshold])[0][0]
        return {k: torch.tensor(float(v), dtype=torch.float64) for k, v in result.items()}
