"""Per-record preparation for embedding: read, preprocess, one metadata row per window, thumbnails.

``prepared_stream`` yields prepared records in order, reading and preprocessing them in torch
DataLoader workers when there are cores to spare (the model itself runs in the main process), and
corpus readers' records one at a time in this process. A record that cannot be used comes back as
its one-line reason (``error``) instead of windows.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.corpus.report import must_stop, unexpected
from ..record import Record, Windows
from .sources import EmbedItem, load_item, record_item, safe_name
from .waveforms import CompactWaveforms


def window_metadata(rec: Record, win: Windows, source_label: str | None = None) -> pd.DataFrame:
    """One metadata row per window of a record.

    Columns: record, subject_id, start_s (s from the record start), window (index in the record),
    source, modalities ("ecg+ppg" / "ecg" / "ppg"), lead, ecg_quality / ppg_quality ([0, 1], NaN when
    absent), low_quality (a present channel below the threshold; kept, flagged), hr_ecg_bpm,
    hr_ppg_bpm, pat_ms, ecg_center / ecg_scale / ppg_center / ppg_scale (window normalisation, to
    show waveforms in the record's units), dropped (the record's dead channels that preprocessing
    left out, "PPG: <reason>", "" when none), then ``label_<name>`` for each of the record's labels.
    """
    n = len(win)
    meta = rec.meta or {}
    source = str(meta.get("source") or source_label or "record")
    record = str(meta.get("record_id") or Path(source).stem or source)
    subject = meta.get("subject_id")
    subject = str(subject) if subject not in (None, "") else record

    def col(name: str) -> np.ndarray:
        v = getattr(win, name, None)
        return np.full(n, np.nan, np.float32) if v is None else np.asarray(v, dtype=np.float32)

    low = win.low_quality if win.low_quality is not None else np.zeros(n, bool)
    df = pd.DataFrame({
        "record": record,
        "subject_id": subject,
        "start_s": np.asarray(win.starts_s, dtype=np.float64),
        "window": np.arange(n, dtype=np.int32),
        "source": source,
        "modalities": "+".join(win.modalities),
        "lead": str(meta.get("lead")) if rec.ecg is not None and meta.get("lead") else None,
        "ecg_quality": col("ecg_quality"),
        "ppg_quality": col("ppg_quality"),
        "low_quality": np.asarray(low, dtype=bool),
        "hr_ecg_bpm": col("hr_ecg_bpm"),
        "hr_ppg_bpm": col("hr_ppg_bpm"),
        "pat_ms": col("pat_ms"),
        "ecg_center": col("ecg_center"),
        "ecg_scale": col("ecg_scale"),
        "ppg_center": col("ppg_center"),
        "ppg_scale": col("ppg_scale"),
        "dropped": "; ".join(f"{m.upper()}: {r}" for m, r in (win.meta.get("dropped") or {}).items()),
    })
    labels = meta.get("labels") or {}
    if isinstance(labels, dict):
        for k, v in labels.items():
            df[f"label_{safe_name(str(k))}"] = [v] * n if not isinstance(v, (list, dict)) else [json.dumps(v)] * n
    return df


def prepare(item: EmbedItem, stride_s: float = 10.0, read_kwargs: dict | None = None) -> dict[str, Any]:
    """Load and preprocess one item: its windows, metadata rows and compact waveforms, or the
    one-line reason it cannot be used (``error``)."""
    from ..signal import preprocess

    try:
        rec = load_item(item, read_kwargs)
        win = preprocess(rec, stride_s=stride_s)
        if len(win) == 0:
            raise InputError(f"{item.label}: no usable 10-s window (record lasts {rec.duration_s:.1f} s)")
        meta = window_metadata(rec, win, item.label)
        waves = CompactWaveforms.from_windows(win.ecg, win.ppg, n=len(win))
        return {"key": item.key, "label": item.label, "ecg": win.ecg, "ppg": win.ppg, "meta": meta, "waves": waves}
    except InputError as e:
        return {"key": item.key, "label": item.label, "error": (str(e).splitlines() or ["unreadable"])[0]}
    except Exception as e:  # one record's surprise (a reader bug, a corrupt file) must not end a long run
        if must_stop(e):  # Ctrl-C and MemoryError still stop it
            raise
        return {"key": item.key, "label": item.label, "error": f"{item.label}: {unexpected(e)}"}


class _ItemDataset:
    """Map-style dataset over embed items; each element is one prepared record."""

    def __init__(self, items: list[EmbedItem], stride_s: float, read_kwargs: dict | None):
        self.items, self.stride_s, self.read_kwargs = items, stride_s, read_kwargs

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return prepare(self.items[i], self.stride_s, self.read_kwargs)


def _identity(x: Any) -> Any:
    return x


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # workers do numpy/scipy work; model threads stay in the main process


def default_workers() -> int:
    """DataLoader workers: none on a 2-core box (workers would fight the model for the cores)."""
    n = os.cpu_count() or 1
    return 0 if n <= 2 else min(8, n - 2)


def prepared_stream(items: list[EmbedItem], streams: list[Iterable], num_workers: int, stride_s: float,
                    read_kwargs: dict | None, done: set[str]) -> Iterator[dict[str, Any]]:
    """``prepare`` of every item and streamed Record whose key is not in ``done``, in order."""
    todo = [it for it in items if it.key not in done]
    if todo:
        if num_workers > 0:
            from torch.utils.data import DataLoader

            dataset: Any = _ItemDataset(todo, stride_s, read_kwargs)  # map-style: __len__ + __getitem__
            loader: Iterable[dict[str, Any]] = DataLoader(
                dataset, batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=_identity,
                worker_init_fn=_worker_init, prefetch_factor=4, persistent_workers=False)
            yield from loader
        else:
            for it in todo:
                yield prepare(it, stride_s, read_kwargs)
    for stream in streams:  # corpus readers: iterate in this process, one record at a time
        for rec in guarded_stream(stream):
            if isinstance(rec, StreamError):
                yield {"key": f"stream-error-{safe_name(rec.name)[:60]}", "label": rec.name, "error": rec.message}
                continue
            if not isinstance(rec, Record):
                name = f"{stream!r}"[:80]
                yield {"key": f"stream-item-{id(rec)}", "label": name,
                       "error": f"{name}: the corpus reader gave a {type(rec).__name__}, not a Record"}
                continue
            it = record_item(rec)
            if it.key not in done:
                yield prepare(it, stride_s, read_kwargs)


def stream_name(stream: Any) -> str:
    """How a record stream is named in skip reports: its path, else its repr (80 characters)."""
    return str(getattr(stream, "path", "")) or f"{stream!r}"[:80]


def guarded_stream(stream: Iterable) -> Iterator[Any]:
    """The items of a record stream; an exception the stream raises (which ends it) becomes one last
    item, an ``InputError`` naming the stream, so the run goes on with the next stream."""
    it = iter(stream)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except Exception as e:
            if must_stop(e):
                raise
            name = stream_name(stream)
            msg = str(e) if isinstance(e, InputError) else f"{name}: {unexpected(e)}"
            yield StreamError(name, msg)
            return
        yield rec


class StreamError:
    """A stream that stopped, passed on as one skipped item."""

    def __init__(self, name: str, message: str):
        self.name, self.message = name, message
