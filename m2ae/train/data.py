"""Training data: batches of contract windows from the simulator, from corpora, or a mix
(``m2ae.train.sources.build_source`` assembles them as a ``TrainConfig`` says).

Every batch is a pure function of ``(seed, rank, step)``: ``StepBatches[step]`` draws it from
``np.random.default_rng([PRETRAIN_SEED + seed, rank, step])``. So DataLoader workers parallelise
generation without changing results, DDP ranks see different data, and a resumed run continues
with exactly the batches it would have seen.

Each batch says which source every row came from (``"source"``: index into ``source_parts``), so
the loop can count the windows seen from real recordings and from the simulator.

Device-delay augmentation: windows are cropped from longer filtered segments, the PPG crop shifted
against the ECG crop by a uniform random lag in ``±max_shift_s`` (real devices differ in their
ECG->PPG acquisition delay; the model must not rely on one). Only numpy/scipy/torch are needed
here (runs on a bare GPU box).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..contract import FS_HZ, WINDOW_SAMPLES
from ..errors import InputError
from ..record import Record
from ..signal.crop import crop_pairs
from ..signal.filters import ecg_bandpass, fill_gaps, ppg_bandpass, ppg_fix_polarity, resample_to
from ..simulate.labelled import HEAD_LABEL_KEYS
from ..simulate.splits import PRETRAIN_SEED


class BatchSource(Protocol):
    """Anything that draws a batch of ``n`` contract windows from a random generator."""

    def batch(self, rng: np.random.Generator, n: int) -> dict[str, Any]: ...


@dataclass
class SimulatorSource:
    """Fresh simulated subjects for every batch (m2ae.simulate's vectorised generator).

    Each row is a new subject rendered for ``10 s + 2 * max_shift_s + margin`` at 125 Hz, band-passed
    as the contract prescribes, then cropped with a random ECG/PPG lag.
    """

    max_shift_s: float = 0.3
    noise: bool = True
    id_prefix: str = "sim"
    margin_s: float = 1.0
    windows_per_subject: int = 1   # > 1: each subject rendered that often (own drift, breathing, noise)
    faint_p_share: float = 0.0     # share of subjects drawn with faint or no P waves (0: none, as the
                                   # shipped demo was trained; > 0 draws extra numbers, so other batches)
    kind: str = "simulator"        # how the card counts its windows

    def batch(self, rng: np.random.Generator, n: int) -> dict[str, Any]:
        from ..simulate.core import synthesize
        from ..simulate.subject import faint_p_wave_factors, sample_subject_table

        k = max(1, int(self.windows_per_subject))
        n_subjects = -(-n // k)
        table = sample_subject_table(rng, n_subjects, id_prefix=self.id_prefix)
        if self.faint_p_share > 0:
            table["p_mv"] = table["p_mv"] * faint_p_wave_factors(rng, n_subjects, self.faint_p_share)
        group = np.repeat(np.arange(n_subjects), k)[:n]
        table = {key: v[group] for key, v in table.items()}
        duration = WINDOW_SAMPLES / FS_HZ + 2 * self.max_shift_s + self.margin_s
        sim = synthesize(table, duration, FS_HZ, rng, noise=self.noise)
        out: dict[str, Any] = crop_pairs(sim["ecg"], sim["ppg"], rng, self.max_shift_s)
        out["present_ecg"] = np.ones(n, bool)
        out["present_ppg"] = np.ones(n, bool)
        out["group"] = group.astype(np.int64)
        out["labels"] = {key: table[key] for key in HEAD_LABEL_KEYS}
        return out


@dataclass
class SegmentStore:
    """Filtered 125-Hz segments of many records in two flat float16 arrays (memory-mappable cache).

    ecg, ppg : [T_total] (zeros where a record lacks that modality); segments : int64 [K, 4] rows of
    (start, stop, has_ecg, has_ppg) into the flat arrays.
    """

    ecg: np.ndarray
    ppg: np.ndarray
    segments: np.ndarray
    names: list[str] = field(default_factory=list)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ecg.npy", self.ecg)
        np.save(folder / "ppg.npy", self.ppg)
        np.save(folder / "segments.npy", self.segments)
        (folder / "records.txt").write_text("\n".join(self.names) + "\n")

    @classmethod
    def load(cls, folder: Path) -> SegmentStore:
        folder = Path(folder)
        return cls(np.load(folder / "ecg.npy", mmap_mode="r", allow_pickle=False),
                   np.load(folder / "ppg.npy", mmap_mode="r", allow_pickle=False),
                   np.load(folder / "segments.npy", allow_pickle=False),
                   (folder / "records.txt").read_text().split("\n")[:-1])

    @classmethod
    def from_records(cls, records: Iterable[Record], min_len: int, progress: bool = False) -> SegmentStore:
        """Resample, fill short gaps, split at long ones, band-pass, fix PPG polarity; keep segments
        of at least ``min_len`` samples. ``records`` is any iterable of ``m2ae.Record``."""
        ecg_parts: list[np.ndarray] = []
        ppg_parts: list[np.ndarray] = []
        segs: list[tuple[int, int, bool, bool]] = []
        names: list[str] = []
        pos = 0
        it = records
        if progress:
            from tqdm import tqdm

            it = tqdm(records, desc="reading records", unit="rec")
        for rec in it:
            name = str(rec.meta.get("record_id", rec.meta.get("source", f"record{len(names)}")))
            filled: dict[str, np.ndarray] = {}
            bounds: np.ndarray | None = None
            for m in ("ecg", "ppg"):
                x = getattr(rec, m)
                if x is None:
                    continue
                y, seg, _ = fill_gaps(x, rec.fs, name=m.upper())
                filled[m] = y
                mask = np.zeros(len(y), bool)
                for a, b in seg:
                    mask[a:b] = True
                bounds = mask if bounds is None else (bounds & mask)
            assert bounds is not None  # a Record holds at least one modality
            # finite runs common to every present modality
            edges = np.diff(np.concatenate(([0], bounds.view(np.int8), [0])))
            for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                chans = {}
                for m, y in filled.items():
                    z = resample_to(y[start:stop], rec.fs, FS_HZ)
                    if len(z) < min_len:
                        break
                    z = ecg_bandpass(z, FS_HZ) if m == "ecg" else ppg_fix_polarity(ppg_bandpass(z, FS_HZ), FS_HZ)[0]
                    chans[m] = z.astype(np.float16)
                if len(chans) != len(filled):
                    continue
                L = len(next(iter(chans.values())))
                ecg_parts.append(chans.get("ecg", np.zeros(L, np.float16)))
                ppg_parts.append(chans.get("ppg", np.zeros(L, np.float16)))
                segs.append((pos, pos + L, "ecg" in chans, "ppg" in chans))
                pos += L
            names.append(name)
        if not segs:
            raise InputError(f"training data: no record segment is at least {min_len / FS_HZ:.1f} s long")
        return cls(np.concatenate(ecg_parts), np.concatenate(ppg_parts), np.asarray(segs, dtype=np.int64), names)


@dataclass
class SegmentSource:
    """Random windows from a ``SegmentStore`` (corpus records), lagged like the simulator's."""

    store: SegmentStore
    max_shift_s: float = 0.3
    kind: str = "corpus"           # how the card counts its windows: corpus | registry
    info: dict[str, Any] = field(default_factory=dict)  # the card's account of the records (corpus_data)

    def batch(self, rng: np.random.Generator, n: int) -> dict[str, Any]:
        S = int(round(self.max_shift_s * FS_HZ))
        T = WINDOW_SAMPLES + 2 * S
        seg = self.store.segments
        usable = np.maximum(seg[:, 1] - seg[:, 0] - T + 1, 0).astype(np.float64)
        k = rng.choice(len(seg), size=n, p=usable / usable.sum())
        starts = seg[k, 0] + (rng.random(n) * usable[k]).astype(np.int64)
        idx = starts[:, None] + np.arange(T)[None, :]
        has_e, has_p = seg[k, 2].astype(bool), seg[k, 3].astype(bool)
        ecg = np.asarray(self.store.ecg[idx], dtype=np.float64)
        ppg = np.asarray(self.store.ppg[idx], dtype=np.float64)
        out = crop_pairs(ecg, ppg, rng, self.max_shift_s, filtered=True)
        out["ecg"][~has_e] = 0.0
        out["ppg"][~has_p] = 0.0
        out["present_ecg"], out["present_ppg"] = has_e, has_p
        out["group"] = np.arange(n, dtype=np.int64)  # windows of one corpus record are not grouped
        return out


@dataclass
class MixedSource:
    """Each batch split across sources by ``weights`` (multinomial per batch)."""

    sources: list[BatchSource]
    weights: list[float]

    def batch(self, rng: np.random.Generator, n: int) -> dict[str, Any]:
        w = np.asarray(self.weights, dtype=float)
        counts = rng.multinomial(n, w / w.sum())
        parts = [s.batch(rng, int(c)) for s, c in zip(self.sources, counts) if c > 0]
        keys = ("ecg", "ppg", "present_ecg", "present_ppg")
        out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
        out["source"] = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        offsets = np.cumsum([0] + [len(p["ecg"]) for p in parts[:-1]])
        out["group"] = np.concatenate([p.get("group", np.arange(len(p["ecg"]))) + o for p, o in zip(parts, offsets)])
        perm = rng.permutation(n)
        return {k: v[perm] for k, v in out.items()}


class StepBatches(torch.utils.data.Dataset):
    """``dataset[step]`` -> the whole batch of that step as tensors (use DataLoader(batch_size=None))."""

    def __init__(self, source: BatchSource, batch_size: int, seed: int = 0, rank: int = 0, n_steps: int = 10**9):
        self.source, self.batch_size, self.seed, self.rank, self.n_steps = source, batch_size, seed, rank, n_steps

    def __len__(self) -> int:
        return self.n_steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([PRETRAIN_SEED + self.seed, self.rank, int(step)])
        b = self.source.batch(rng, self.batch_size)
        b.setdefault("group", np.arange(self.batch_size, dtype=np.int64))
        b.setdefault("source", np.zeros(self.batch_size, dtype=np.int64))
        return {k: torch.from_numpy(np.ascontiguousarray(b[k]))
                for k in ("ecg", "ppg", "present_ecg", "present_ppg", "group", "source")}
