"""Evaluation protocols beyond the default split, applied to a validated manifest.

- `default`: the manifest's own splits.
- `unseen_attack`: one attack species is removed from train, val and calib; test keeps it, so
  the test report shows how the detector copes with an attack it never saw.
- `cross_device`: train, val and calib keep only the `train_devices`; test keeps only the
  `test_devices` (capture devices never seen in training).
- `cross_species`: train, val and calib keep bona fide and the `fit_species`; test keeps bona
  fide and the `test_species` (e.g. `sbi_only`: fit on self-blended images, test on face
  swaps, reenactment and synthesis).
- `cross_group`: the same split on any manifest `column`: train, val and calib keep rows whose
  value is in `train_values`, test those in `test_values` (e.g. `cross_country`: documents of
  some issuers in training, another issuer's at test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from idv.data.manifest import BONA_FIDE

FIT_SPLITS = ("train", "val", "calib")


def _check_values(frame: pd.DataFrame, column: str, values: Sequence[str], what: str) -> None:
    if column not in frame.columns:
        raise ValueError(f"protocol {what} needs a {column!r} column in the manifest")
    unknown = sorted(set(values) - set(frame[column].astype(str)))
    if unknown:
        raise ValueError(
            f"protocol {what}: {column} value(s) {unknown} do not occur in the "
            f"manifest (known: {sorted(frame[column].astype(str).unique())})"
        )


def apply_protocol(frame: pd.DataFrame, protocol: Mapping[str, Any] | None) -> pd.DataFrame:
    """Return the rows the protocol keeps, in manifest order."""
    name = (protocol or {}).get("name", "default")
    if name == "default":
        return frame
    fit = frame["split"].isin(FIT_SPLITS)
    if name == "unseen_attack":
        held_out = (
            [protocol["species"]]
            if isinstance(protocol["species"], str)
            else list(protocol["species"])
        )
        _check_values(frame, "attack_type", held_out, name)
        keep = ~(fit & frame["attack_type"].isin(held_out))
    elif name == "cross_device":
        train, test = _disjoint(frame, protocol, "capture_device", "train_devices", "test_devices")
        keep = (fit & frame["capture_device"].isin(train)) | (
            ~fit & frame["capture_device"].isin(test)
        )
    elif name == "cross_group":
        column = protocol.get("column")
        if not column:
            raise ValueError("protocol cross_group needs a `column`")
        train, test = _disjoint(frame, protocol, column, "train_values", "test_values")
        keep = (fit & frame[column].isin(train)) | (~fit & frame[column].isin(test))
    elif name == "cross_species":
        fit_species, test_species = _disjoint(
            frame, protocol, "attack_type", "fit_species", "test_species"
        )
        bona = frame["attack_type"] == BONA_FIDE
        keep = (
            bona
            | (fit & frame["attack_type"].isin(fit_species))
            | (~fit & frame["attack_type"].isin(test_species))
        )
    else:
        raise ValueError(
            f"unknown protocol {name!r}; expected default, unseen_attack, cross_device, "
            "cross_species or cross_group"
        )
    return frame[keep.to_numpy()].reset_index(drop=True)


def _disjoint(
    frame: pd.DataFrame, protocol: Mapping[str, Any], column: str, fit_key: str, test_key: str
) -> tuple[list[Any], list[Any]]:
    """The protocol's fit and test values of `column`: present in the frame and disjoint."""
    name = protocol["name"]
    fit, test = list(protocol[fit_key]), list(protocol[test_key])
    _check_values(frame, column, fit + test, name)
    both = sorted(set(fit) & set(test))
    if both:
        raise ValueError(f"protocol {name}: {both} are in both {fit_key} and {test_key}")
    return fit, test
