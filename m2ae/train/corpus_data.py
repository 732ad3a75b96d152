"""Real corpus records for training: which records and channels enter, cached as filtered segments,
and what the model card says about them; plus the fixed real validation windows.

Training reads the records on one side of the corpus' split (``TrainConfig.data_split``, "train" by
default; records without a split label are used as well). The cinc2015 layout knows each record's
split from its name, so the validation and test records are never opened for training, and the test
records are never opened at all here. Dead channels (``m2ae.signal.usable.dead_channel_reasons``:
flat, all zeros, a sensor that fell off) are dropped from a record before it is segmented, and
counted; a record with no channel left is skipped. What was read is written beside the segment cache
(``manifest.json``) and goes into the card: corpus layouts, records (count, names, SHA-256 of the
names), hours, channels dropped and the split file.

Model selection uses the validation side: ``real_validation_windows`` picks up to
``val_real_records`` validation-split records with ECG and PPG (seeded), and takes the first
``val_real_windows`` back-to-back 10-s windows of each (no lag shift), cached beside the segments.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..contract import FS_HZ, WINDOW_S, WINDOW_SAMPLES
from ..errors import InputError
from ..record import Record
from .config import TrainConfig
from .data import SegmentStore

VALIDATION_SPLIT = "validation"
MANIFEST_FILE = "manifest.json"
VALIDATION_FILE = "validation_windows.npz"
VALIDATION_MANIFEST_FILE = "validation_manifest.json"
# A change to what enters the cache (the dead-channel rule, the segmenting) must rebuild old caches.
CACHE_FORMAT = 2


def cache_dir(cfg: TrainConfig, out: str | Path) -> Path:
    """Where corpus segments are cached: ``cfg.cache_dir``, else ``<out>.cache`` beside the checkpoint."""
    return Path(cfg.cache_dir) if cfg.cache_dir else Path(str(out) + ".cache")


def record_name(rec: Record) -> str:
    """The record's name as the card lists it (``record_id``, else its source)."""
    return str(rec.meta.get("record_id", rec.meta.get("source", "record")))


def new_report() -> dict[str, Any]:
    """An empty account of the records ``usable_records`` passed on and what it dropped."""
    from ..io.corpus import SkipReport

    return {"records": [], "layouts": Counter(), "record_s": 0.0, "channels_dropped": Counter(),
            "dropped_channels": {}, "records_without_usable_channel": {}, "skips": SkipReport()}


def usable_records(records: Iterable[Record], report: dict[str, Any]) -> Iterator[Record]:
    """``records`` with dead channels removed (a record with none left is skipped), tallied in ``report``
    (``new_report``): names, layouts, duration, channels dropped with the reason per record."""
    from ..signal.usable import dead_channel_reasons

    from ..io.corpus.report import must_stop, unexpected

    for rec in records:
        name = record_name(rec)
        try:
            dead = dead_channel_reasons(rec)
        except Exception as e:  # one record's surprise must not end the pass over the corpus
            if must_stop(e):
                raise
            report["skips"].add(f"{name}: {unexpected(e)}", name)
            continue
        if dead:
            report["channels_dropped"].update(list(dead))  # count modalities, not reasons
            report["dropped_channels"][name] = dict(dead)
            kept = {m: getattr(rec, m) for m in rec.modalities if m not in dead}
            if not kept:
                report["records_without_usable_channel"][name] = dict(dead)
                continue
            notes = list(rec.meta.get("notes", [])) + [f"{m.upper()} dropped for training: {why}"
                                                       for m, why in dead.items()]
            rec = Record(ecg=kept.get("ecg"), ppg=kept.get("ppg"), fs=rec.fs, meta={**rec.meta, "notes": notes})
        report["records"].append(name)
        report["layouts"][str(rec.meta.get("corpus", "unknown"))] += 1
        report["record_s"] += rec.duration_s
        yield rec


def log_skips(report: dict[str, Any]) -> None:
    """Say on the ``m2ae.train`` logger (stderr by default) which corpus records were left out, per reason."""
    import logging

    from ..io.corpus import report_lines

    lines = report_lines(report["skips"].as_dict())
    if lines:
        logging.getLogger("m2ae.train").warning("training data: %s", "\n".join(lines))


def names_sha256(names: Iterable[str]) -> str:
    """SHA-256 (hex, first 16) of the sorted record names, one a line: a short check of which records."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def split_file_card() -> dict[str, Any]:
    """The committed CinC 2015 split the records were chosen by: package path, seed and content hash."""
    from importlib import resources

    from ..io.corpus.cinc2015_split import SPLIT_FILE, SPLIT_SEED

    text = (resources.files("m2ae.io.corpus") / SPLIT_FILE).read_text()
    return {"path": f"m2ae/io/corpus/{SPLIT_FILE}", "seed": SPLIT_SEED,
            "sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}


def report_card(report: dict[str, Any], split: str, paths: list[str]) -> dict[str, Any]:
    """The card's account of ``report`` (``usable_records``): what real data was used and what was dropped."""
    names = list(report["records"])
    card: dict[str, Any] = {
        "corpora": list(paths), "layouts": dict(report["layouts"]),
        "split": split or "every record (no split filter)",
        "records": len(names), "record_names": names, "record_names_sha256": names_sha256(names),
        "record_hours": round(report["record_s"] / 3600, 3),
        "channels_dropped": {m: int(report["channels_dropped"].get(m, 0)) for m in ("ecg", "ppg")},
        "dropped_channels": report["dropped_channels"],
        "records_without_usable_channel": report["records_without_usable_channel"],
        # records the corpus readers could not use, counted per reason (names bounded)
        "skipped_records": report["skips"].as_dict(),
    }
    if "cinc2015" in report["layouts"]:
        card["split_file"] = split_file_card()
    return card


def _key(cfg: TrainConfig, **extra: Any) -> dict[str, Any]:
    """What a cache was built from; a cache whose key differs is rebuilt."""
    return {"format": CACHE_FORMAT, "data": [str(Path(p).resolve()) for p in cfg.data], **extra}


def _fresh(folder: Path, manifest: str, key: dict[str, Any], data_file: str) -> dict[str, Any] | None:
    """The cached manifest when ``folder`` holds ``data_file`` built from ``key``, else None."""
    try:
        m = json.loads((folder / manifest).read_text())
    except (OSError, ValueError):
        return None
    return m if m.get("key") == key and (folder / data_file).exists() else None


def corpus_store(cfg: TrainConfig, cache: Path, min_len: int, rank: int = 0) -> tuple[SegmentStore, dict[str, Any]]:
    """The training records of ``cfg.data`` (``cfg.data_split`` side, dead channels dropped) as filtered
    segments of at least ``min_len`` samples at 125 Hz, and their card entry. Rank 0 builds a missing or
    stale cache in ``cache``; other ranks wait for it."""
    from ..io import iter_corpus

    key = _key(cfg, split=cfg.data_split, min_len=min_len)
    if rank == 0 and _fresh(cache, MANIFEST_FILE, key, "segments.npy") is None:
        report = new_report()
        records = iter_corpus(cfg.data, min_duration_s=min_len / FS_HZ, split=cfg.data_split or None,
                             report=report["skips"])
        store = SegmentStore.from_records(usable_records(records, report), min_len=min_len, progress=cfg.progress)
        log_skips(report)
        store.save(cache)
        card = report_card(report, cfg.data_split, cfg.data)
        card["segment_hours"] = round(float((store.segments[:, 1] - store.segments[:, 0]).sum()) / FS_HZ / 3600, 3)
        (cache / MANIFEST_FILE).write_text(json.dumps({"key": key, "card": card}, indent=1) + "\n")
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    manifest = _fresh(cache, MANIFEST_FILE, key, "segments.npy")
    if manifest is None:
        raise InputError(f"{cache}: the corpus segment cache is missing or was built from other data")
    return SegmentStore.load(cache), manifest["card"]


def _first_paired_windows(rec: Record, k: int) -> np.ndarray:
    """Up to ``k`` back-to-back contract windows [n, 2, 1250] (filtered, robust-normalised ECG and PPG)
    from the start of ``rec``'s finite stretches; empty when it has no 10 s of both channels."""
    from ..signal.filters import robust_normalise

    if rec.ecg is None or rec.ppg is None or k <= 0:
        return np.zeros((0, 2, WINDOW_SAMPLES), np.float32)
    from ..io.corpus.report import must_stop

    try:
        store = SegmentStore.from_records([rec], min_len=WINDOW_SAMPLES)
    except Exception as e:  # no stretch of 10 s without a long gap (InputError), or a record that breaks it
        if must_stop(e):
            raise
        return np.zeros((0, 2, WINDOW_SAMPLES), np.float32)
    starts = [a for start, stop, has_e, has_p in store.segments if has_e and has_p
              for a in range(int(start), int(stop) - WINDOW_SAMPLES + 1, WINDOW_SAMPLES)][:k]
    if not starts:
        return np.zeros((0, 2, WINDOW_SAMPLES), np.float32)
    idx = np.asarray(starts)[:, None] + np.arange(WINDOW_SAMPLES)[None, :]
    # normalised as training batches are (crop_pairs): per window, scale floored across the windows
    pair = [robust_normalise(np.asarray(x[idx], np.float64), axis=-1)[0] for x in (store.ecg, store.ppg)]
    return np.stack(pair, axis=1).astype(np.float32)


def real_validation_windows(cfg: TrainConfig, cache: Path) -> dict[str, Any] | None:
    """The fixed real validation set: ``{"ecg", "ppg"}`` float32 [N, 1250], ``"record"`` int [N] (index
    into ``card["record_names"]``) and ``"card"`` (records, windows, dropped channels), or None when the
    corpora have no validation-split record with ECG and PPG. Only records labelled "validation" are
    read; which ones is seeded (``m2ae.simulate.splits.VAL_SEED``). Cached in ``cache``."""
    from ..io import iter_corpus
    from ..simulate.splits import VAL_SEED

    key = _key(cfg, split=VALIDATION_SPLIT, records=cfg.val_real_records, windows=cfg.val_real_windows,
               seed=VAL_SEED)
    manifest = _fresh(cache, VALIDATION_MANIFEST_FILE, key, VALIDATION_FILE)
    if manifest is None:
        report = new_report()
        records = iter_corpus(cfg.data, min_duration_s=WINDOW_S, split=VALIDATION_SPLIT, report=report["skips"])
        labelled = (r for r in records if (r.meta.get("labels") or {}).get("split") == VALIDATION_SPLIT)
        found = {record_name(r): _first_paired_windows(r, cfg.val_real_windows)
                 for r in usable_records(labelled, report)}
        eligible = sorted(n for n, w in found.items() if len(w))
        rng = np.random.default_rng(VAL_SEED)
        if len(eligible) > cfg.val_real_records:
            eligible = sorted(eligible[i] for i in rng.choice(len(eligible), cfg.val_real_records, replace=False))
        card = report_card(report, VALIDATION_SPLIT, cfg.data)
        card.update(records_read=card.pop("records"), records=len(eligible), record_names=eligible,
                    record_names_sha256=names_sha256(eligible), windows_per_record=cfg.val_real_windows,
                    seed=VAL_SEED)
        if not eligible:
            return None
        w = np.concatenate([found[n] for n in eligible])
        rec_idx = np.concatenate([np.full(len(found[n]), i) for i, n in enumerate(eligible)])
        card["windows"] = int(len(w))
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / VALIDATION_FILE, ecg=w[:, 0], ppg=w[:, 1], record=rec_idx)
        manifest = {"key": key, "card": card}
        (cache / VALIDATION_MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    with np.load(cache / VALIDATION_FILE, allow_pickle=False) as z:
        return {"ecg": z["ecg"], "ppg": z["ppg"], "record": z["record"].astype(np.int64), "card": manifest["card"]}
