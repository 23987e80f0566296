"""Datasets by modality (not by task): a task picks one in config (`data.dataset`).

Every dataset yields the same typed `Sample`: the shared fields (label, attack species index,
sample id) plus named model `inputs` (`image`, `frames`, `metadata`, ...) and named training
`targets` (`mask`, ...), so a task, a metric or the scorer reads what it needs by name, never by
position. `collate` makes a `Batch` of the same shape. Modalities here:

- `ImageDataset`: one image per sample (`path`), optionally a pixel mask (`mask_path`, a
  training target that goes through the same geometric augmentation as the image) and a
  metadata vector (manifest columns, an input);
- `ClipDataset`: one clip per session (`session_id`): T frames (`path` per frame, ordered by
  `frame_index`) through one augmentation draw, so that geometry stays consistent across frames.
A modality that needs files checks its path column here (the manifest checks only that every
file it names lies inside the corpus root).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from idv.data.augment.pipeline import Stage, build_transforms, reseed
from idv.data.augment.sbi import PseudoFakes
from idv.data.readers import ImageReadError, OnError, read_image
from idv.data.samplers import SampleKey
from idv.errors import InputError

log = logging.getLogger(__name__)

Target = Literal["label", "subject"]


class Sample(NamedTuple):
    """One item: named model inputs and training targets, and the shared fields."""

    inputs: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]
    label: int
    species: int
    sample_id: str


class Batch(NamedTuple):
    """A collated batch. `batch.image` (or any input / target name) reads `inputs` first, then
    `targets`; `n_skipped` counts unreadable samples dropped from it (skip mode)."""

    inputs: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]
    label: torch.Tensor
    species: torch.Tensor
    sample_id: list[str]
    n_skipped: int

    def __getattr__(self, name: str) -> torch.Tensor:
        if name in self.inputs:
            return self.inputs[name]
        if name in self.targets:
            return self.targets[name]
        raise AttributeError(f"the batch has no input or target {name!r}")


def collate(samples: list[Sample | None]) -> Batch:
    """Collate samples, dropping those a `skip`-mode dataset returned as None. The count
    travels with the batch so the task can log the run's total of skipped samples."""
    kept = [s for s in samples if s is not None]
    if not kept:
        raise ImageReadError("every sample of a batch was unreadable; see the warnings above")
    return Batch(
        inputs=default_collate([s.inputs for s in kept]),
        targets=default_collate([s.targets for s in kept]),
        label=torch.as_tensor([s.label for s in kept]),
        species=torch.as_tensor([s.species for s in kept]),
        sample_id=[s.sample_id for s in kept],
        n_skipped=len(samples) - len(kept),
    )


class ManifestDataset(Dataset):
    """What every modality shares: the items (one row per sample the dataset yields, with
    `sample_id`, `label`, `subject_id`, `attack_type` and the segment columns: what score tables
    are built from), labels, species indices, the augmentation pipeline and the
    `(index, seed)` reseeding of EpochSeededSampler keys.

    `species` lists the task's attack types in index order; `augment` is an augment config
    built for `stage` with the targets the modality needs; `target="subject"` makes the label
    the index of the sample's subject among the split's sorted subject ids (identity classes).
    With `on_error="skip"` an unreadable file is logged by name and its sample dropped; an
    image shorter than `min_side` pixels counts as unreadable.
    """

    input_names: tuple[str, ...] = ()
    target_names: tuple[str, ...] = ()
    required_columns: tuple[str, ...] = ()
    uses_transforms = True  # an image modality: the augment config's albumentations pipeline

    def __init__(
        self,
        frame: pd.DataFrame,
        root: str | Path,
        augment: Mapping[str, Any],
        stage: Stage,
        species: Sequence[str],
        *,
        seed: int | None = None,
        on_error: OnError = "fail",
        target: Target = "label",
        min_side: int = 1,
    ) -> None:
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
        if target not in ("label", "subject"):
            raise ValueError(f"target must be 'label' or 'subject', got {target!r}")
        missing = [c for c in self.required_columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs manifest column(s) {missing} "
                f"(columns: {sorted(frame.columns)})"
            )
        unknown = sorted(set(frame["attack_type"]) - set(species))
        if unknown:
            raise ValueError(
                f"attack types {unknown} are not in the task's species {list(species)}"
            )
        self.root = Path(root)
        self.on_error = on_error
        self.min_side = int(min_side)
        self.items = self.items_of(frame.reset_index(drop=True))
        self.sample_ids = self.items["sample_id"].astype(str).tolist()
        if target == "subject":
            self.labels = pd.factorize(self.items["subject_id"].astype(str), sort=True)[0]
        else:
            self.labels = self.items["label"].to_numpy(dtype=np.int64)
        index = {name: i for i, name in enumerate(species)}
        self.species = self.items["attack_type"].map(index).to_numpy(dtype=np.int64)
        self.transform = (
            build_transforms(
                augment, stage, seed=seed, additional_targets=self.additional_targets()
            )
            if self.uses_transforms
            else None
        )
        self.decoded: list[Any] | None = None
        self.item_seed: int | None = None

    # -------------------------------------------------------------------- per modality

    @classmethod
    def items_of(cls, frame: pd.DataFrame) -> pd.DataFrame:
        """The items a split's manifest rows make (default: one per row); score tables have
        one row per item."""
        return frame

    def additional_targets(self) -> dict[str, str]:
        """albumentations' `additional_targets` the modality needs (default: none)."""
        return {}

    def read(self, i: int) -> Any:
        """The decoded raw data of item i (cached by `cache_decoded`)."""
        raise NotImplementedError

    def to_sample(self, raw: Any, i: int) -> Sample:
        """Item i's Sample from its raw data, the transform applied."""
        raise NotImplementedError

    def serving_inputs(self, i: int) -> dict[str, Any]:
        """What a bundle is given for item i, per input name (files, not tensors): the export's
        parity gate feeds it through serving's preprocessing and compares with `self[i]`."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- shared

    def cache_decoded(self) -> None:
        """Decode every item once, up front (before workers fork, so they share the memory):
        on a small corpus decoding is most of the loading cost; augmentation still runs per
        sample. Unreadable files follow `on_error` here already."""
        self.decoded = [self._read(i) for i in range(len(self))]

    def _read(self, i: int) -> Any:
        try:
            raw = self.read(i)
            self._check_side(raw, i)
            return raw
        except ImageReadError as err:
            if self.on_error == "fail":
                raise
            log.warning("skipping unreadable sample %s: %s", self.sample_ids[i], err)
            return None

    def _check_side(self, raw: Any, i: int) -> None:
        """An image (or clip frame) shorter than `min_side` is unreadable for this run, as in
        serving (a 1x1 image is not resized up and scored); masks (2-D) are not images."""
        arrays = raw if isinstance(raw, list | tuple) else [raw]
        for image in arrays:
            if (
                isinstance(image, np.ndarray)
                and image.ndim == 3
                and min(image.shape[:2]) < self.min_side
            ):
                where = self.items["path"].iat[i] if "path" in self.items else self.sample_ids[i]
                raise ImageReadError(
                    f"{self.root / str(where)}: image {image.shape[1]}x{image.shape[0]} of "
                    f"sample {self.sample_ids[i]} is below the minimum side of {self.min_side} "
                    "pixels (data.min_image_side)"
                )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | SampleKey) -> Sample | None:
        """`key` is an index, or `(index, seed)` from an EpochSeededSampler: the augmentation
        of the sample is then reseeded from it (reproducible across resumes and workers)."""
        if isinstance(key, tuple):
            i, seed = key
            if self.transform is not None:
                reseed(self.transform, seed)
        else:
            i, seed = key, None
        self.item_seed = seed  # for per-sample draws beyond the transform (to_sample)
        raw = self.decoded[i] if self.decoded is not None else self._read(i)
        if raw is None:
            return None
        return self.to_sample(raw, i)

    def _sample(self, i: int, inputs: dict, targets: dict | None = None) -> Sample:
        return Sample(
            inputs, targets or {}, int(self.labels[i]), int(self.species[i]), self.sample_ids[i]
        )


class ImageDataset(ManifestDataset):
    """One image per sample (`path`). `mask=True`: a pixel mask per sample (`mask_path`, a
    greyscale image, values > 0 = 1; a sample without one has an all-zero mask), a training
    target augmented with the image's geometry. `metadata`: manifest columns stacked into a
    float32 vector input `metadata` (capture metadata for a detector that reads both).
    `pseudo_fakes` (training only; `idv.data.augment.sbi.PseudoFakes` fields): bona fide
    images become fresh self-blended attacks of its species with its probability, drawn
    from the sample's epoch seed (reproducible across resumes and workers)."""

    required_columns = ("path",)

    def __init__(
        self,
        frame: pd.DataFrame,
        root: str | Path,
        augment: Mapping[str, Any],
        stage: Stage,
        species: Sequence[str],
        *,
        mask: bool = False,
        metadata: Sequence[str] = (),
        pseudo_fakes: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.mask = bool(mask)
        self.pseudo_fakes = PseudoFakes(**dict(pseudo_fakes)) if pseudo_fakes else None
        if self.pseudo_fakes is not None and self.pseudo_fakes.species not in species:
            raise ValueError(
                f"ImageDataset: pseudo_fakes species {self.pseudo_fakes.species!r} is not in "
                f"the task's species {list(species)}"
            )
        if stage != "train":
            self.pseudo_fakes = None
        self.pseudo_species = (
            list(species).index(self.pseudo_fakes.species) if self.pseudo_fakes else -1
        )
        self.metadata = list(metadata)
        if self.mask and "mask_path" not in frame.columns:
            raise ValueError(f"ImageDataset(mask=True) needs a mask_path column ({list(frame)})")
        missing = [c for c in self.metadata if c not in frame.columns]
        if missing:
            raise ValueError(
                f"ImageDataset ({root}): metadata column(s) {missing} not in the manifest "
                f"(columns: {sorted(frame.columns)})"
            )
        self.input_names = ("image", "metadata") if self.metadata else ("image",)
        self.target_names = ("mask",) if self.mask else ()
        super().__init__(frame, root, augment, stage, species, **kwargs)
        self.paths = self.items["path"].astype(str).tolist()
        if self.metadata:
            values = np.array(self.items[self.metadata].to_numpy(dtype=np.float32))  # writable
            if not np.isfinite(values).all():
                row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
                raise ValueError(
                    f"ImageDataset: metadata of sample {self.sample_ids[row]!r} is not finite"
                )
            self.metadata_values = values

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        image = read_image(self.root / self.paths[i])
        if not self.mask:
            return image, None
        rel = self.items["mask_path"].iat[i]
        if rel is None or (isinstance(rel, float) and rel != rel):
            return image, np.zeros(image.shape[:2], np.uint8)
        mask = (read_image(self.root / str(rel))[..., 0] > 0).astype(np.uint8)
        if mask.shape != image.shape[:2]:
            raise InputError(
                f"{self.root / str(rel)}: the mask of sample {self.sample_ids[i]} is "
                f"{mask.shape[1]}x{mask.shape[0]}, its image {self.paths[i]} "
                f"{image.shape[1]}x{image.shape[0]}: a mask must match its image"
            )
        return image, mask

    def serving_inputs(self, i: int) -> dict[str, Any]:
        out: dict[str, Any] = {"image": str(self.root / self.paths[i])}
        if self.metadata:
            out["metadata"] = self.metadata_values[i]
        return out

    def to_sample(self, raw: tuple[np.ndarray, np.ndarray | None], i: int) -> Sample:
        image, mask = raw
        fake = None
        if self.pseudo_fakes is not None and self.labels[i] == 0:
            seed = [i] if self.item_seed is None else [self.item_seed, i]
            fake = self.pseudo_fakes(image, np.random.default_rng(seed))
            image = image if fake is None else fake
        if mask is None:
            out = self.transform(image=image)
            targets = {}
        else:
            out = self.transform(image=image, mask=mask)
            targets = {"mask": torch.as_tensor(np.asarray(out["mask"]), dtype=torch.float32)[None]}
        inputs = {"image": out["image"]}
        if self.metadata:
            inputs["metadata"] = torch.from_numpy(self.metadata_values[i])
        if fake is not None:
            return Sample(inputs, targets, 1, self.pseudo_species, self.sample_ids[i])
        return self._sample(i, inputs, targets)


class ClipDataset(ManifestDataset):
    """One clip per session: the manifest has one row per frame (`session_id`, `frame_index`,
    `path`), all frames of a session in one split with one label. An item is a session
    (sample_id = session_id, its first frame's other columns); `frames` of them are taken evenly
    spaced over the session (all of them when it has fewer: a clip is then padded by repeating
    its last frame) and augmented with one draw: albumentations' additional targets keep crop,
    flip and colour identical across frames. Input `frames`: (T, 3, H, W).

    `challenges`: the active-liveness prompts in index order; the session's `challenge` column
    becomes the input `challenge` (an int64 index). `targets`: manifest columns that are
    per-session training targets (float32 scalars, e.g. `challenge_failed`).
    `challenge_targets`: manifest columns naming a challenge (or `none`), each a one-hot float32
    target over `challenges` (e.g. `performed`: what the clip does, whatever was asked).
    `temporal_jitter` (training only): the picks keep their whole-frame stride but start at a
    random frame of the session (seeded like the augmentation), so an epoch does not always
    see the same frames of a session; evaluation always takes the fixed, evenly spaced ones."""

    required_columns = ("path", "session_id", "frame_index")
    input_names = ("frames",)

    def __init__(
        self,
        frame: pd.DataFrame,
        root: str | Path,
        augment: Mapping[str, Any],
        stage: Stage,
        species: Sequence[str],
        *,
        frames: int = 8,
        challenges: Sequence[str] = (),
        targets: Sequence[str] = (),
        challenge_targets: Sequence[str] = (),
        temporal_jitter: bool = False,
        **kwargs: Any,
    ) -> None:
        if frames < 1:
            raise ValueError(f"ClipDataset needs frames >= 1, got {frames}")
        self.frames = int(frames)
        self.jitter = bool(temporal_jitter) and stage == "train"
        self.challenges = list(challenges)
        self.column_targets = list(targets)
        self.challenge_targets = list(challenge_targets)
        if self.challenge_targets and not self.challenges:
            raise ValueError("ClipDataset: challenge_targets need the task's `challenges`")
        needed = (["challenge"] if self.challenges else []) + self.column_targets
        needed += self.challenge_targets
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"ClipDataset: manifest column(s) {missing} missing ({list(frame)})")
        self.input_names = ("frames", "challenge") if self.challenges else ("frames",)
        self.target_names = (*self.column_targets, *self.challenge_targets)
        super().__init__(frame, root, augment, stage, species, **kwargs)
        if self.challenges:
            index = {name: k for k, name in enumerate(self.challenges)}
            asked = self.items["challenge"].astype(str)
            unknown = sorted(set(asked) - set(index))
            if unknown:
                bad = self.sample_ids[int(np.flatnonzero(asked.isin(unknown))[0])]
                raise ValueError(
                    f"session {bad!r}: challenge(s) {unknown} not in the task's {self.challenges}"
                )
            self.challenge_index = asked.map(index).to_numpy(dtype=np.int64)
        values = self.items[self.column_targets].to_numpy(dtype=np.float32)
        if not np.isfinite(values).all():
            bad = self.sample_ids[int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])]
            raise ValueError(f"session {bad!r}: target(s) {self.column_targets} not finite")
        self.target_values = values
        self.one_hot = {name: self._one_hot(name) for name in self.challenge_targets}
        per_session = frame.sort_values(["session_id", "frame_index"], kind="stable").groupby(
            "session_id", sort=True
        )
        self.session_paths = [group["path"].astype(str).tolist() for _, group in per_session]
        self.frame_paths = [
            [paths[k] for k in self._indices(len(paths))] for paths in self.session_paths
        ]

    @classmethod
    def items_of(cls, frame: pd.DataFrame) -> pd.DataFrame:
        """One item per session: its first frame's row, sample_id = session_id."""
        ordered = frame.sort_values(["session_id", "frame_index"], kind="stable")
        per_session = ordered.groupby("session_id", sort=True)
        shared = [c for c in ("label", "split", "subject_id") if c in frame.columns]
        mixed = per_session[shared].nunique()
        bad = mixed.index[(mixed > 1).any(axis=1)]
        if len(bad):
            raise ValueError(
                f"session {bad[0]!r} mixes labels, splits or subjects across its frames"
            )
        items = per_session.first().reset_index()
        items["sample_id"] = items["session_id"].astype(str)
        return items

    def _one_hot(self, column: str) -> np.ndarray:
        """(items, challenges) float32: 1 at the named challenge, a zero row for `none`."""
        index = {name: k for k, name in enumerate(self.challenges)}
        named = self.items[column].astype(str).to_numpy()
        unknown = sorted(set(named) - set(index) - {"none"})
        if unknown:
            bad = self.sample_ids[int(np.flatnonzero(np.isin(named, unknown))[0])]
            raise ValueError(
                f"session {bad!r}: {column} {unknown} is neither `none` nor one of the task's "
                f"challenges {self.challenges}"
            )
        out = np.zeros((len(named), len(self.challenges)), dtype=np.float32)
        rows = np.flatnonzero(named != "none")
        out[rows, [index[n] for n in named[rows]]] = 1.0
        return out

    def _indices(self, count: int, rng: np.random.Generator | None = None) -> list[int]:
        """Which of a session's `count` stored frames make its clip: evenly spaced, or with
        `rng` (training jitter) a whole-frame stride from a random first frame (any frame
        for one); a session shorter than the clip repeats its last frame."""
        if rng is not None and self.frames == 1:
            chosen = [int(rng.integers(0, count))]
        elif count <= self.frames:
            chosen = list(range(count))
        elif rng is None:
            chosen = np.linspace(0, count - 1, self.frames).round().astype(int).tolist()
        else:
            stride = (count - 1) // (self.frames - 1)
            start = int(rng.integers(0, count - stride * (self.frames - 1)))
            chosen = [start + stride * k for k in range(self.frames)]
        return chosen + [chosen[-1]] * (self.frames - len(chosen))

    def additional_targets(self) -> dict[str, str]:
        return {f"image{k}": "image" for k in range(1, self.frames)}

    def read(self, i: int) -> list[np.ndarray]:
        paths = self.session_paths[i] if self.jitter else self.frame_paths[i]
        return [read_image(self.root / p) for p in paths]

    def serving_inputs(self, i: int) -> dict[str, Any]:
        out: dict[str, Any] = {"frames": [str(self.root / p) for p in self.frame_paths[i]]}
        if self.challenges:
            out["challenge"] = self.challenges[int(self.challenge_index[i])]
        return out

    def to_sample(self, raw: list[np.ndarray], i: int) -> Sample:
        if self.jitter:
            seed = self.item_seed if self.item_seed is not None else i
            raw = [raw[k] for k in self._indices(len(raw), np.random.default_rng(seed))]
        named = {"image" if k == 0 else f"image{k}": frame for k, frame in enumerate(raw)}
        out = self.transform(**named)
        frames = torch.stack([out["image" if k == 0 else f"image{k}"] for k in range(len(raw))])
        inputs = {"frames": frames}
        if self.challenges:
            inputs["challenge"] = torch.tensor(self.challenge_index[i])
        targets = {
            name: torch.tensor(self.target_values[i, k])
            for k, name in enumerate(self.column_targets)
        }
        targets.update({name: torch.from_numpy(v[i]) for name, v in self.one_hot.items()})
        return self._sample(i, inputs, targets)


class SessionDataset(ManifestDataset):
    """One capture session per manifest row (no files per sample): its events come from the
    corpus' events table (`events`: a Parquet file under the root with `sample_id`, `t`, `x`,
    `y`, `type`), checked by `idv.sessions.events.check_events` and turned into per-event
    features by `idv.sessions.features.event_features`, the function serving runs. Inputs:
    `events` float32 (max_events, F) zero-padded, `length` int64 (the real events), `device`
    float32 (D,) (the manifest's `device` columns, raw: the network standardises). A session
    longer than `max_events` keeps its first `max_events` events; the truncated sessions are
    counted in the log and in `truncated` (events dropped per item)."""

    uses_transforms = False
    input_names = ("events", "length", "device")

    def __init__(
        self,
        frame: pd.DataFrame,
        root: str | Path,
        augment: Mapping[str, Any],
        stage: Stage,
        species: Sequence[str],
        *,
        device: Sequence[str],
        max_events: int = 256,
        events: str | None = None,
        **kwargs: Any,
    ) -> None:
        from idv.data.events_table import EVENTS_NAME, read_events_table
        from idv.sessions.device import device_vector
        from idv.sessions.events import EventError, check_events
        from idv.sessions.features import event_features, screen_of

        if max_events < 1:
            raise ValueError(f"SessionDataset needs max_events >= 1, got {max_events}")
        self.device_columns = list(device)
        self.max_events = int(max_events)
        missing = [c for c in self.device_columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"SessionDataset ({root}): device column(s) {missing} not in the manifest "
                f"(columns: {sorted(frame.columns)})"
            )
        super().__init__(frame, root, augment, stage, species, **kwargs)
        self.events_file = self.root / (events or EVENTS_NAME)
        table = read_events_table(self.events_file, self.sample_ids)
        self.raw: list[dict[str, np.ndarray]] = []
        self.features: list[np.ndarray] = []
        self.devices = np.zeros((len(self), len(self.device_columns)), dtype=np.float32)
        self.truncated = np.zeros(len(self), dtype=np.int64)
        for i, sample_id in enumerate(self.sample_ids):
            where = f"{self.events_file}: session {sample_id!r}"
            if sample_id not in table:
                raise EventError(f"{where} has no events (the manifest lists it)")
            record = self.items.iloc[i][self.device_columns].to_dict()
            self.devices[i] = device_vector(record, self.device_columns, where)
            checked = check_events(table[sample_id], where, self.max_events)
            self.truncated[i] = checked.truncated
            self.raw.append(table[sample_id])
            width, height = screen_of(self.devices[i], self.device_columns)
            self.features.append(event_features(checked, float(width), float(height)))
        cut = np.flatnonzero(self.truncated)
        if cut.size:
            log.info(
                "%s: %d of %d sessions longer than max_events=%d were truncated (%d events "
                "dropped)", self.events_file, cut.size, len(self), self.max_events,
                int(self.truncated.sum()),
            )  # fmt: skip

    def read(self, i: int) -> np.ndarray:
        return self.features[i]

    def serving_inputs(self, i: int) -> dict[str, Any]:
        return {
            "events": self.raw[i],
            "device": dict(zip(self.device_columns, self.devices[i].tolist(), strict=True)),
        }

    def to_sample(self, raw: np.ndarray, i: int) -> Sample:
        from idv.sessions.features import padded

        inputs = {
            "events": torch.from_numpy(padded(raw, self.max_events)),
            "length": torch.tensor(len(raw), dtype=torch.int64),
            "device": torch.from_numpy(self.devices[i]),
        }
        return self._sample(i, inputs)


DatasetFactory = Callable[..., ManifestDataset]
# The dataset of a run config that names none (runs from before datasets were config): an
# image per manifest row.
IMPLICIT_DATASET = {"_target_": "idv.data.datasets.ImageDataset", "_partial_": True}
