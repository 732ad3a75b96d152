"""Compact neighbour waveforms: enough of each indexed window to draw it beside a query.

Each 10-s window (normalised, 125 Hz) is resampled to 62.5 Hz (625 samples; ECG is band-limited to
40 Hz and PPG to 8 Hz by the contract, so only the ECG's top 9 Hz are lost, which a thumbnail does
not show) and quantised to int8 with one step per window and channel. That is 1.25 kB per window for
both channels, so 12 k windows cost ~15 MB, and the index keeps the windows' centre/scale in its
metadata to put them back in the record's units. ``files.py`` writes and reads them
(``waveforms_*.npy``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contract import FS_HZ, WINDOW_SAMPLES

DOWNSAMPLE = 2
WAVEFORM_FS_HZ = FS_HZ / DOWNSAMPLE  # 62.5 Hz
WAVEFORM_SAMPLES = WINDOW_SAMPLES // DOWNSAMPLE  # 625
INT8_MAX = 127


@dataclass
class CompactWaveforms:
    """int8 windows per modality with per-window steps (value = code * step, NaN step = absent).

    ecg, ppg : int8 [N, 625]; ecg_step, ppg_step : float32 [N] (NaN where the modality was absent).
    """

    ecg: np.ndarray
    ppg: np.ndarray
    ecg_step: np.ndarray
    ppg_step: np.ndarray

    def __len__(self) -> int:
        return len(self.ecg_step)

    @classmethod
    def empty(cls) -> CompactWaveforms:
        z = np.zeros((0, WAVEFORM_SAMPLES), np.int8)
        e = np.zeros(0, np.float32)
        return cls(z, z.copy(), e, e.copy())

    @classmethod
    def from_windows(cls, ecg: np.ndarray | None, ppg: np.ndarray | None, n: int | None = None) -> CompactWaveforms:
        """Compress normalised contract windows ([N, 1250] float or None per modality)."""
        if n is None:
            present = ecg if ecg is not None else ppg
            if present is None:
                raise ValueError("CompactWaveforms.from_windows: give ECG, PPG or n")
            n = len(present)
        codes, steps = {}, {}
        for name, x in (("ecg", ecg), ("ppg", ppg)):
            codes[name], steps[name] = _quantise(x, n)
        return cls(codes["ecg"], codes["ppg"], steps["ecg"], steps["ppg"])

    @classmethod
    def concat(cls, parts: list[CompactWaveforms]) -> CompactWaveforms:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ecg", "ppg", "ecg_step", "ppg_step")))

    def take(self, ids: np.ndarray) -> CompactWaveforms:
        ids = np.asarray(ids, dtype=np.int64)
        return CompactWaveforms(self.ecg[ids], self.ppg[ids], self.ecg_step[ids], self.ppg_step[ids])

    def decode(self, ids: np.ndarray) -> dict[str, np.ndarray | float]:
        """Float32 normalised windows [n, 625] per modality (NaN rows where absent) and ``fs_hz``."""
        ids = np.asarray(ids, dtype=np.int64)
        out: dict[str, np.ndarray | float] = {"fs_hz": WAVEFORM_FS_HZ}
        for name in ("ecg", "ppg"):
            codes = np.asarray(getattr(self, name)[ids], dtype=np.float32)
            step = np.asarray(getattr(self, f"{name}_step")[ids], dtype=np.float32)
            out[name] = codes * step[:, None]  # NaN step -> NaN row: the modality was absent
        return out


def _quantise(x: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    if x is None:
        return np.zeros((n, WAVEFORM_SAMPLES), np.int8), np.full(n, np.nan, np.float32)
    from scipy.signal import resample_poly  # 0.6 s to import: only when windows are compressed (build time)

    x = np.asarray(x, dtype=np.float32)
    low = resample_poly(x, 1, DOWNSAMPLE, axis=1, padtype="line").astype(np.float32)[:, :WAVEFORM_SAMPLES]
    peak = np.abs(low).max(axis=1)
    step = np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)
    codes = np.clip(np.rint(low / step[:, None]), -INT8_MAX, INT8_MAX).astype(np.int8)
    return codes, step
