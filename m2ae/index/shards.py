"""The resume state of an embedding: one shard per finished record in a work folder, and a done list.

A work folder (``<out>.partial/``) holds ``state.json`` (the model version that started it),
``shards/<key>.npz`` (fingerprints and waveforms) with ``shards/<key>.meta.parquet`` (metadata),
and ``done.jsonl``: one line per finished or skipped record, appended after its shard is complete.
Running the same embedding again skips what the done list names; a line cut by an interruption
is ignored, so that record is simply redone. Without a work folder everything stays in memory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ModelMismatchError
from .files import read_metadata, tidy_metadata, utc_now, write_metadata
from .waveforms import CompactWaveforms

DONE_FILE = "done.jsonl"
STATE_FILE = "state.json"


class ShardStore:
    """Per-record shards in a work folder (or in memory when ``work`` is None) plus the done list."""

    def __init__(self, work: Path | None, model_version: str):
        self.work = work
        self.done: dict[str, dict] = {}
        self.order: list[str] = []
        self.memory: dict[str, tuple[np.ndarray, pd.DataFrame, CompactWaveforms]] = {}
        if work is None:
            return
        (work / "shards").mkdir(parents=True, exist_ok=True)
        state = work / STATE_FILE
        if state.exists():
            old = json.loads(state.read_text()).get("model_version")
            if old != model_version:
                raise ModelMismatchError(
                    f"{work}: an interrupted embedding by model version {old} is here, but the model is version "
                    f"{model_version}; delete the folder or use the same model")
        else:
            state.write_text(json.dumps({"model_version": model_version, "started": utc_now()}))
        done_path = work / DONE_FILE
        if done_path.exists():
            for line in done_path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the interruption: that record is simply redone
                if entry.get("error") or (work / "shards" / f"{entry['key']}.npz").exists():
                    if entry["key"] not in self.done:
                        self.order.append(entry["key"])
                    self.done[entry["key"]] = entry

    def write(self, key: str, label: str, fp: np.ndarray, meta: pd.DataFrame, waves: CompactWaveforms) -> None:
        """Keep one record's fingerprints [n, D], metadata rows and waveforms, then mark it done."""
        if self.work is None:
            self.memory[key] = (fp, meta, waves)
        else:
            shards = self.work / "shards"
            write_metadata(tidy_metadata(meta), shards, f"{key}.meta")
            # The .npz appears only when complete; the done line is written after it.
            np.savez(shards / f"{key}.tmp.npz", fingerprints=fp, ecg=waves.ecg, ppg=waves.ppg,
                     ecg_step=waves.ecg_step, ppg_step=waves.ppg_step)
            os.replace(shards / f"{key}.tmp.npz", shards / f"{key}.npz")
        self._mark({"key": key, "label": label, "n": int(len(fp))})

    def skip(self, key: str, label: str, error: str) -> None:
        """Mark a record that cannot be used, with its one-line reason."""
        self._mark({"key": key, "label": label, "error": error})

    def _mark(self, entry: dict) -> None:
        if entry["key"] not in self.done:
            self.order.append(entry["key"])
        self.done[entry["key"]] = entry
        if self.work is not None:
            with open(self.work / DONE_FILE, "a") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()

    def read(self, key: str) -> tuple[np.ndarray, pd.DataFrame, CompactWaveforms]:
        if self.work is None:
            return self.memory[key]
        shards = self.work / "shards"
        with np.load(shards / f"{key}.npz", allow_pickle=False) as z:
            fp = z["fingerprints"]
            waves = CompactWaveforms(z["ecg"], z["ppg"], z["ecg_step"], z["ppg_step"])
        return fp, read_metadata(shards, f"{key}.meta"), waves

    def assemble(self) -> tuple[np.ndarray, pd.DataFrame, CompactWaveforms, list[dict]]:
        """All shards in the order they were done: (fingerprints [N, D], metadata, waveforms,
        skipped inputs as {"input", "error"})."""
        fps, metas, waves, skipped = [], [], [], []
        for key in self.order:
            entry = self.done[key]
            if entry.get("error"):
                skipped.append({"input": entry["label"], "error": entry["error"]})
                continue
            fp, meta, w = self.read(key)
            fps.append(fp)
            metas.append(meta)
            waves.append(w)
        return concat_parts(fps, metas, waves, skipped)


def concat_parts(fps: list[np.ndarray], metas: list[pd.DataFrame], waves: list[CompactWaveforms],
                 skipped: list[dict[str, str]]) -> tuple[np.ndarray, pd.DataFrame, CompactWaveforms, list]:
    """Shards' (fingerprints, metadata, waveforms) joined in order, with the skipped inputs; empty arrays
    when no shard held a window."""
    if not fps:
        return np.zeros((0, 0), np.float32), pd.DataFrame(), CompactWaveforms.empty(), skipped
    return (np.concatenate(fps), tidy_metadata(pd.concat(metas, ignore_index=True)),
            CompactWaveforms.concat(waves), skipped)
