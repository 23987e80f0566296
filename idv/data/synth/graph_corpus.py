"""The synthetic identity graph: accounts over time, the attributes they used, and rings of
synthetic identities (conf/synth/graph.yaml; the tables: idv.data.graph_tables).

- **Legitimate structure**: mostly unique attributes; benign sharing (households share an
  address and often a device, a few public kiosks serve many accounts, offices and carriers
  share /24 blocks and webmail domains are shared by everyone: Zipf, so degrees follow a power
  law); a person with two accounts (one face cluster); new devices linked later.
- **Rings** (size 3-40, lognormal): a pool of devices reused by members (with rotation to
  fresh devices and second devices linked later), proxy IP blocks, documents of one
  sequential series, drop addresses, burner phones, disposable e-mail, a few base faces reused
  with small edits, creation in a burst (or spread over weeks: camouflage), links to
  legitimate accounts (mules, compromised devices). Each ring's `strength` in [0, 1] (0:
  hardest) scales its tell-tales. Rings start anywhere in time, so a share of them appears only
  after the training window.
- **Face clusters** come from 1:N search: every account's face embedding is searched in a
  FAISS gallery (`idv.serving.gallery`, as face_match's) and accounts matching at or above the
  threshold share a face node. The embeddings are a fixed table drawn here (`faces.source:
  table`) or the face_match bundle's embeddings of the face corpus (`bundle`: written by
  `idv.data.graph_faces`, thresholded at the bundle's calibrated FPIR threshold).
- **Account features** (`f_*`): the account's own signals (signup hour, form time, claimed age,
  disposable e-mail, VoIP phone), weakly different for ring members: what the tabular baseline
  sees. Sharing is what the graph adds.

The split is temporal: an account's `split` is the period of its `created_at`
(`periods`), so validation, calibration and test accounts are all created after every
training account; attribute nodes are shared across periods by design.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from idv.data.graph_tables import write_graph_tables
from idv.data.manifest import BONA_FIDE, write_manifest
from idv.data.splits import assign_splits
from idv.data.synth.writer import CorpusDir

RING = "ring"
# Attribute node types, in the order the graph lists them.
NODE_TYPES = ("device", "ip", "document", "phone", "email", "address", "face")


@dataclass
class _Links:
    """Links being written: account row, node type index, node key (int), time."""

    account: list[np.ndarray]
    kind: list[np.ndarray]
    key: list[np.ndarray]
    time: list[np.ndarray]

    def add(self, account, kind: str, key, time) -> None:
        account = np.atleast_1d(np.asarray(account, np.int64))
        self.account.append(account)
        self.kind.append(np.full(len(account), NODE_TYPES.index(kind), np.int8))
        self.key.append(np.broadcast_to(np.asarray(key, np.int64), account.shape).copy())
        self.time.append(np.broadcast_to(np.asarray(time, np.float64), account.shape).copy())

    def frame(self, ids: np.ndarray) -> pd.DataFrame:
        account = np.concatenate(self.account)
        kind = np.concatenate(self.kind)
        order = np.lexsort((np.concatenate(self.key), kind, account))
        return pd.DataFrame(
            {
                "account_id": ids[account[order]],
                "node_type": np.asarray(NODE_TYPES, dtype=object)[kind[order]],
                "node_key": np.concatenate(self.key)[order].astype(str),
                "created_at": np.concatenate(self.time)[order],
            }
        )


def _lerp(bounds: Sequence[float], strength: float) -> float:
    return float(bounds[0] + (bounds[1] - bounds[0]) * strength)


def _zipf_choice(rng: np.random.Generator, n_values: int, exponent: float, size: int):
    weights = 1.0 / np.arange(1, n_values + 1) ** exponent
    return rng.choice(n_values, size=size, p=weights / weights.sum())


def ring_sizes(n_members: int, cfg: Mapping[str, Any], rng: np.random.Generator) -> list[int]:
    """Ring sizes summing to `n_members` (the last ring takes the remainder, at least 3)."""
    lo, hi = (int(v) for v in cfg["size"])
    mean, sd = (float(v) for v in cfg["size_log"])
    sizes: list[int] = []
    while sum(sizes) < n_members:
        sizes.append(int(np.clip(round(rng.lognormal(mean, sd)), lo, hi)))
    excess = sum(sizes) - n_members
    if excess and sizes:
        sizes[-1] -= excess
        if sizes[-1] < lo:
            short = sizes.pop()
            if sizes:
                sizes[-1] += short
    return sizes


def generate_graph(
    cfg: Mapping[str, Any], n_accounts: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(accounts with their manifest columns, links, face embeddings per account): the whole
    graph in memory (the scale benchmark calls this without writing anything)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(17,)))
    days = float(cfg["days"])
    legit_cfg, ring_cfg = cfg["legitimate"], cfg["rings"]
    n_ring = int(round(n_accounts * float(ring_cfg["account_share"])))
    sizes = ring_sizes(n_ring, ring_cfg, rng) if n_ring >= int(ring_cfg["size"][0]) else []
    n_ring = sum(sizes)
    n_legit = n_accounts - n_ring
    geos = list(cfg["geographies"])
    feats = cfg["features"]
    links = _Links([], [], [], [])
    counter = {t: 0 for t in NODE_TYPES}

    def fresh(kind: str, n: int) -> np.ndarray:
        start = counter[kind]
        counter[kind] += n
        return np.arange(start, start + n, dtype=np.int64)

    # ---- legitimate accounts (rows 0 .. n_legit-1), vectorised
    t = np.sort(rng.uniform(0.0, days, n_legit))
    legit = np.arange(n_legit)
    geography = rng.choice(len(geos), n_legit)
    links.add(legit, "device", fresh("device", n_legit), t)
    document = fresh("document", n_legit)  # a random series each: unique
    links.add(legit, "phone", fresh("phone", n_legit), t)
    address = fresh("address", n_legit)
    device_of = np.asarray(links.key[0]).copy()
    # Households: a few accounts at one address, often on one device.
    in_household = np.flatnonzero(rng.random(n_legit) < float(legit_cfg["household_share"]))
    rng.shuffle(in_household)
    lo, hi = (int(v) for v in legit_cfg["household_size"])
    i = 0
    while i + lo <= len(in_household):
        members = in_household[i : i + int(rng.integers(lo, hi + 1))]
        address[members] = address[members[0]]
        shared = members[rng.random(len(members)) < float(legit_cfg["household_device"])]
        if len(shared) > 1:
            links.add(shared, "device", device_of[members[0]], t[shared])
        family = members[rng.random(len(members)) < float(legit_cfg["household_documents"])]
        if len(family) > 1:
            document[family] = fresh("document", 1)[0]
        i += len(members)
    links.add(legit, "address", address, t)
    links.add(legit, "document", document, t)
    kiosk = np.flatnonzero(rng.random(n_legit) < float(legit_cfg["kiosk_share"]))
    kiosk_keys = fresh("device", int(legit_cfg["kiosks"]))
    links.add(kiosk, "device", rng.choice(kiosk_keys, len(kiosk)), t[kiosk])
    n_blocks = max(8, int(n_accounts * float(legit_cfg["ip_blocks_per_account"])))
    blocks = fresh("ip", n_blocks)
    links.add(legit, "ip", blocks[_zipf_choice(rng, n_blocks, legit_cfg["ip_zipf"], n_legit)], t)
    domains = fresh("email", int(legit_cfg["email_domains"]))
    disposable = fresh("email", 8)
    disposable_user = rng.random(n_legit) < float(legit_cfg["disposable_email"])
    email = domains[_zipf_choice(rng, len(domains), legit_cfg["email_zipf"], n_legit)]
    email[disposable_user] = rng.choice(disposable, int(disposable_user.sum()))
    links.add(legit, "email", email, t)
    later = np.flatnonzero(rng.random(n_legit) < float(legit_cfg["new_device"]))
    lag = rng.uniform(*legit_cfg["new_device_days"], len(later))
    keep = t[later] + lag <= days
    links.add(later[keep], "device", fresh("device", int(keep.sum())), (t[later] + lag)[keep])

    dim = int(cfg["faces"]["dim"])
    faces = _unit(rng.standard_normal((n_accounts, dim)))
    twins = np.flatnonzero(rng.random(n_legit) < float(legit_cfg["same_face"]))
    if len(twins):
        other = rng.integers(0, n_legit, len(twins))
        faces[twins] = _edit(faces[other], float(cfg["faces"]["edit_noise"]), rng)
    same_person = dict(zip(twins.tolist(), other.tolist(), strict=True)) if len(twins) else {}

    def legit_features(n: int, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return _features(rng, n, feats, "legit", disposable_user if rows is None else None,
                         legit_cfg["voip_phone"])  # fmt: skip

    columns = {
        "created_at": list(t),
        "label": [0] * n_legit,
        "attack_type": [BONA_FIDE] * n_legit,
        "ring_id": [None] * n_legit,
        "geography": [geos[g] for g in geography],
        # The face each account shows: its own, or (a ring's) one of the ring's base faces.
        "face_base": [f"own:{same_person.get(i, i)}" for i in range(n_legit)],
    }
    features = legit_features(n_legit)

    # ---- rings (rows n_legit ..), one at a time
    row = n_legit
    ring_rows: list[dict[str, np.ndarray]] = []
    for r, size in enumerate(sizes):
        s = float(rng.uniform(0.0, 1.0))
        members = np.arange(row, row + size)
        row += size
        burst = rng.uniform(*ring_cfg["burst_days"])
        start = rng.uniform(0.0, days - burst)
        born = start + rng.uniform(0.0, burst, size)
        spread = rng.random(size) < float(ring_cfg["spread_share"])
        born[spread] = np.minimum(
            days, start + rng.uniform(0.0, float(ring_cfg["spread_days"]), int(spread.sum()))
        )
        pool = fresh("device", max(1, math.ceil(size * _lerp(ring_cfg["devices_per_member"], s))))
        on_pool = rng.random(size) < _lerp(ring_cfg["pool_device"], s)
        device = np.where(on_pool, rng.choice(pool, size), fresh("device", size))
        links.add(members, "device", device, born)
        rotates = np.flatnonzero(on_pool & (rng.random(size) < float(ring_cfg["rotate_share"])))
        when = born[rotates] + rng.uniform(*ring_cfg["rotate_days"], len(rotates))
        ok = when <= days
        links.add(members[rotates[ok]], "device", rng.choice(pool, int(ok.sum())), when[ok])
        proxies = fresh(
            "ip", int(rng.integers(ring_cfg["ip_blocks"][0], ring_cfg["ip_blocks"][1] + 1))
        )
        behind = rng.random(size) < _lerp(ring_cfg["ring_ip"], s)
        camouflage_ip = blocks[_zipf_choice(rng, n_blocks, legit_cfg["ip_zipf"], size)]
        links.add(members, "ip", np.where(behind, rng.choice(proxies, size), camouflage_ip), born)
        series = fresh("document", 1)[0]
        sequential = rng.random(size) < _lerp(ring_cfg["sequential_documents"], s)
        document = np.where(sequential, series, fresh("document", size))
        links.add(members, "document", document, born)
        burners = fresh("phone", max(1, size // 5))
        burner = rng.random(size) < _lerp(ring_cfg["burner_phone"], s)
        links.add(
            members,
            "phone",
            np.where(burner, rng.choice(burners, size), fresh("phone", size)),
            born,
        )
        drops = fresh(
            "address",
            int(rng.integers(ring_cfg["drop_addresses"][0], ring_cfg["drop_addresses"][1] + 1)),
        )
        dropped = rng.random(size) < _lerp(ring_cfg["drop_address"], s)
        links.add(
            members,
            "address",
            np.where(dropped, rng.choice(drops, size), fresh("address", size)),
            born,
        )
        throwaway = rng.random(size) < _lerp(ring_cfg["disposable_email"], s)
        popular = domains[_zipf_choice(rng, len(domains), legit_cfg["email_zipf"], size)]
        links.add(
            members, "email", np.where(throwaway, rng.choice(disposable, size), popular), born
        )
        mules = np.flatnonzero(rng.random(size) < float(ring_cfg["mule_link"]))
        if len(mules) and n_legit:
            victim = rng.integers(0, n_legit, len(mules))
            use_device = rng.random(len(mules)) < 0.5
            links.add(members[mules[use_device]], "device", device_of[victim[use_device]],
                      born[mules[use_device]])  # fmt: skip
            links.add(members[mules[~use_device]], "address", address[victim[~use_device]],
                      born[mules[~use_device]])  # fmt: skip
        base = _unit(
            rng.standard_normal(
                (max(1, math.ceil(size * _lerp(ring_cfg["faces_per_member"], s))), dim)
            )
        )
        which = rng.integers(0, len(base), size)
        faces[members] = _edit(base[which], float(cfg["faces"]["edit_noise"]), rng)
        columns["face_base"] += [f"ring_{r:05d}:{w}" for w in which]
        columns["created_at"] += list(born)
        columns["label"] += [1] * size
        columns["attack_type"] += [RING] * size
        columns["ring_id"] += [f"ring_{r:05d}"] * size
        home = geos[int(rng.integers(len(geos)))]
        columns["geography"] += [home] * size
        ring_rows.append(
            _features(rng, size, feats, "ring", throwaway, _lerp(ring_cfg["voip_phone"], s))
        )
    for part in ring_rows:
        features = {k: np.concatenate([v, part[k]]) for k, v in features.items()}

    ids = np.asarray([f"acct_{i:07d}" for i in range(n_accounts)], dtype=object)
    accounts = pd.DataFrame({"account_id": ids, **columns, **features})
    accounts["created_at"] = accounts["created_at"].astype(np.float64)
    return accounts, links.frame(ids), faces


def _features(rng, n: int, cfg, who: str, disposable, voip: float) -> dict[str, np.ndarray]:
    hour = rng.normal(*cfg[f"signup_hour_{who}"], n) % 24.0
    form = rng.normal(*cfg[f"form_seconds_log_{who}"], n)
    age = rng.normal(*cfg[f"age_{who}"], n)
    return {
        "f_signup_hour_sin": np.sin(2 * np.pi * hour / 24.0).astype(np.float32),
        "f_signup_hour_cos": np.cos(2 * np.pi * hour / 24.0).astype(np.float32),
        "f_form_seconds_log": ((form - 5.0) / 0.6).astype(np.float32),
        "f_claimed_age": ((age - 40.0) / 13.0).astype(np.float32),
        "f_disposable_email": np.asarray(
            disposable if disposable is not None else np.zeros(n), np.float32
        ),
        "f_voip_phone": (rng.random(n) < float(voip)).astype(np.float32),
    }


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _edit(base: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """A small edit of each face: the base plus isotropic noise, back on the unit sphere."""
    return _unit(base + rng.standard_normal(base.shape) * noise / math.sqrt(base.shape[1]))


def face_clusters(
    embeddings: np.ndarray, threshold: float, neighbours: int, times: np.ndarray | None = None
) -> np.ndarray:
    """A face cluster per row: rows whose embeddings match at or above `threshold` among each
    other's `neighbours` nearest (a FAISS flat gallery, as 1:N search), joined transitively."""
    from idv.serving.gallery import Gallery

    n = len(embeddings)
    gallery = Gallery.from_config({"index": "flat"})
    gallery.enrol(embeddings, np.arange(n).astype(str))
    found = gallery.search(embeddings, k=min(neighbours + 1, n))
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    hits = found.valid & (found.scores >= threshold) & (found.rows != np.arange(n)[:, None])
    for a, j in zip(*np.nonzero(hits), strict=True):
        ra, rb = root(a), root(int(found.rows[a, j]))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)], np.int64)


def face_source(face_cfg: Mapping[str, Any]) -> str:
    """`table` or `bundle`; `auto` is the bundle when the face_match bundle exists."""
    source = str(face_cfg.get("source", "table"))
    if source not in ("table", "bundle", "auto"):
        raise ValueError(f"faces.source must be table, bundle or auto, got {source!r}")
    if source == "auto":
        return "bundle" if (Path(face_cfg["bundle"]) / "thresholds.json").is_file() else "table"
    return source


def assign_periods(created_at: np.ndarray, days: float, periods: Mapping[str, float]) -> np.ndarray:
    """The split of each account: the period (consecutive shares of `days`) it was created in."""
    names = list(periods)
    edges = np.cumsum([float(periods[k]) for k in names]) * days
    if not math.isclose(edges[-1], days, rel_tol=1e-9):
        raise ValueError(
            f"periods {dict(periods)} must sum to 1 (they sum to {edges[-1] / days:g})"
        )
    index = np.searchsorted(edges, np.asarray(created_at), side="left")
    return np.asarray(names, dtype=object)[np.minimum(index, len(names) - 1)]


def generate_graph_corpus(
    cfg: Mapping[str, Any], profile: str, seed: int, out: str | Path, workers: int = 2
) -> pd.DataFrame:
    """Generate the graph corpus of `profile` size into `out` (atomically): accounts.parquet,
    links.parquet and the manifest (every account is labelled)."""
    del workers  # one process: the graph is generated jointly, in seconds
    size = cfg["sizes"][profile]
    accounts, links, faces = generate_graph(cfg, int(size["accounts"]), seed)
    face_cfg = cfg["faces"]
    threshold = float(face_cfg["threshold"])
    if face_source(face_cfg) == "bundle":
        from idv.data.graph_faces import bundle_faces

        faces, threshold = bundle_faces(face_cfg, accounts, seed)
    cluster = face_clusters(faces, threshold, int(face_cfg["neighbours"]))
    face_links = pd.DataFrame(
        {
            "account_id": accounts["account_id"],
            "node_type": "face",
            "node_key": cluster.astype(str),
            "created_at": accounts["created_at"],
        }
    )
    links = pd.concat([links, face_links], ignore_index=True)
    if cfg.get("split", "temporal") == "temporal":
        accounts["split"] = assign_periods(
            accounts["created_at"], float(cfg["days"]), cfg["periods"]
        )
    elif cfg["split"] == "random":  # the comparison that overstates: accounts drawn at random
        frame = accounts.assign(subject_id=accounts["account_id"])
        accounts["split"] = assign_splits(frame, seed=seed, fractions=cfg["periods"],
                                          stratify=("label",))  # fmt: skip
    else:
        raise ValueError(f"graph split must be temporal or random, got {cfg['split']!r}")
    manifest = accounts[["account_id", "label", "split", "attack_type", "created_at", "ring_id",
                         "geography"]].rename(columns={"account_id": "sample_id"})  # fmt: skip
    manifest.insert(3, "subject_id", manifest["sample_id"])
    nodes = accounts[["account_id", "created_at", *[c for c in accounts if c.startswith("f_")]]]
    with CorpusDir(out) as tmp:
        write_graph_tables(nodes, links, tmp)
        write_manifest(manifest.reset_index(drop=True), tmp / "manifest.parquet")
    return manifest
