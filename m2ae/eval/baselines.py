"""Simple baselines that ``m2ae eval`` measures beside the model in the same run.

Every baseline is fitted only on simulated *training-seed* windows (never on the held-out sets or
on the real records) and sees the same normalised contract windows as the model.

- ``PatchRidge``: cross-modal reconstruction by ridge regression. Each 25-sample target patch is
  predicted from the other modality's samples in a ±``context_s`` neighbourhood (a learned linear
  filter shared by all patches, so it can absorb the ECG→PPG delay).
- ``MeanBeatTemplate``: the training set's mean ECG beat (around R peaks) and mean PPG beat (around
  pulse peaks) placed at every detected beat of the other modality, shifted by the training median
  pulse-arrival delay; each sample takes the template value of its nearest beat.
- ``beat_features`` / ``feature_matrix``: HRV (mean interval, SDNN, RMSSD, irregularity),
  pulse-arrival delay and Welch band powers — the classic hand-made features used for the
  retrieval and head baselines.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..contract import FS_HZ, PATCH_SAMPLES
from ..signal.rhythm import rr_irregularity
from ..signal.timing import arrival_delays_s

SPECTRAL_BANDS_HZ: tuple[tuple[float, float], ...] = ((0.5, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0), (5.0, 8.0),
                                                      (8.0, 15.0), (15.0, 40.0))


# --- peaks --------------------------------------------------------------------------------------

def window_peaks(x: np.ndarray, modality: str, fs_hz: float = FS_HZ) -> list[np.ndarray]:
    """Beat positions (sample indices) in each normalised window [N, T]: R peaks for ECG, pulse peaks for PPG.

    The same detectors ``m2ae.preprocess`` uses (neurokit2 underneath); a window where detection
    fails gives no beats.
    """
    from ..signal.peaks import detect_pulse_peaks, detect_r_peaks

    detect = detect_r_peaks if modality == "ecg" else detect_pulse_peaks
    return [detect(row, fs_hz) for row in np.asarray(x, np.float64)]


# --- hand-made features -------------------------------------------------------------------------

HRV_NAMES = ("hr_bpm", "ibi_mean_s", "sdnn_s", "rmssd_s", "irregularity", "max_jump", "n_beats")


def beat_features(peaks: list[np.ndarray], fs_hz: float = FS_HZ) -> np.ndarray:
    """HRV features per window from beat positions → [N, 7] (``HRV_NAMES``; NaN with < 3 beats)."""
    out = np.full((len(peaks), len(HRV_NAMES)), np.nan)
    for i, pk in enumerate(peaks):
        out[i, 6] = len(pk)
        if len(pk) < 3:
            continue
        ibi = np.diff(pk) / fs_hz
        d = np.diff(ibi)
        m = ibi.mean()
        out[i, :6] = (60.0 / m, m, ibi.std(), np.sqrt(np.mean(d ** 2)) if len(d) else 0.0,
                      rr_irregularity(pk / fs_hz, min_beats=3), np.abs(d).max() / m if len(d) else 0.0)
    return out


def spectral_features(x: np.ndarray, fs_hz: float = FS_HZ) -> np.ndarray:
    """Log relative Welch power in ``SPECTRAL_BANDS_HZ`` per window → [N, 7]."""
    from scipy.signal import welch

    f, pxx = welch(np.asarray(x, np.float64), fs=fs_hz, nperseg=256, axis=-1)
    total = pxx[:, (f >= 0.5) & (f <= 40)].sum(axis=1) + 1e-12
    bands = [pxx[:, (f >= lo) & (f < hi)].sum(axis=1) / total for lo, hi in SPECTRAL_BANDS_HZ]
    return np.log(np.stack(bands, axis=1) + 1e-6)


def pat_features(r_peaks: list[np.ndarray], pulse_peaks: list[np.ndarray], fs_hz: float = FS_HZ) -> np.ndarray:
    """Pulse-arrival features per window → [N, 2]: median and IQR of R→pulse delay (s)."""
    out = np.full((len(r_peaks), 2), np.nan)
    for i, (r, p) in enumerate(zip(r_peaks, pulse_peaks)):
        d = arrival_delays_s(r, p, fs_hz)
        if len(d):
            out[i] = np.median(d), np.subtract(*np.percentile(d, [75, 25]))
    return out


def feature_matrix(ecg: np.ndarray | None, ppg: np.ndarray | None, r_peaks: list[np.ndarray] | None = None,
                   pulse_peaks: list[np.ndarray] | None = None, fs_hz: float = FS_HZ) -> np.ndarray:
    """The baseline feature vector of each window for the modalities given.

    ECG: HRV from R peaks + ECG band powers; PPG: HRV from pulse peaks + PPG band powers; both: all of
    these + pulse-arrival delay. Peaks are detected when not given.
    """
    parts = []
    if ecg is not None:
        if r_peaks is None:
            r_peaks = window_peaks(ecg, "ecg", fs_hz)
        parts += [beat_features(r_peaks, fs_hz), spectral_features(ecg, fs_hz)]
    if ppg is not None:
        if pulse_peaks is None:
            pulse_peaks = window_peaks(ppg, "ppg", fs_hz)
        parts += [beat_features(pulse_peaks, fs_hz), spectral_features(ppg, fs_hz)]
    if ecg is not None and ppg is not None and r_peaks is not None and pulse_peaks is not None:
        parts.append(pat_features(r_peaks, pulse_peaks, fs_hz))
    return np.concatenate(parts, axis=1)


# --- cross-modal reconstruction baselines -------------------------------------------------------

class PatchRidge:
    """Rebuild one modality from the other: ridge regression of each 25-sample patch on the source's
    samples within ±``context_s`` of that patch (one filter shared across positions).

    >>> ridge = PatchRidge().fit(ppg_train, ecg_train)   # doctest: +SKIP
    >>> ecg_hat = ridge.predict(ppg_test)                # [N, 1250]  # doctest: +SKIP
    """

    def __init__(self, context_s: float = 1.2, alpha: float = 10.0, fs_hz: float = FS_HZ,
                 patch_samples: int = PATCH_SAMPLES):
        self.context = int(round(context_s * fs_hz))
        self.alpha = alpha
        self.patch = patch_samples
        self.model: Any = None  # the fitted sklearn Ridge

    def _design(self, src: np.ndarray) -> np.ndarray:
        src = np.asarray(src, np.float64)
        pad = np.pad(src, ((0, 0), (self.context, self.context)))
        view = np.lib.stride_tricks.sliding_window_view(pad, self.patch + 2 * self.context, axis=1)[:, ::self.patch]
        return view.reshape(-1, view.shape[-1])  # [N * L, patch + 2 context]

    def fit(self, src: np.ndarray, dst: np.ndarray) -> PatchRidge:
        """Fit the shared filter on paired windows: source [N, T] → target [N, T]."""
        from sklearn.linear_model import Ridge

        y = np.asarray(dst, np.float64).reshape(-1, self.patch)
        self.model = Ridge(alpha=self.alpha).fit(self._design(src), y)
        return self

    def predict(self, src: np.ndarray) -> np.ndarray:
        """The target modality [N, T] rebuilt from source windows [N, T]."""
        n, t = np.asarray(src).shape
        return self.model.predict(self._design(src)).reshape(n, t)


class MeanBeatTemplate:
    """Mean-beat templates of ECG (around R peaks) and PPG (around pulse peaks) from training windows,
    placed at the other modality's beats shifted by the training median R→pulse delay."""

    def __init__(self, half_width_s: float = 1.0, fs_hz: float = FS_HZ):
        self.half = int(round(half_width_s * fs_hz))
        self.fs = fs_hz
        self.templates: dict[str, np.ndarray] = {}
        self.delay_samples = 0

    def _mean_beat(self, x: np.ndarray, peaks: list[np.ndarray]) -> np.ndarray:
        acc, cnt = np.zeros(2 * self.half + 1), np.zeros(2 * self.half + 1)
        offsets = np.arange(-self.half, self.half + 1)
        for row, pk in zip(np.asarray(x, np.float64), peaks):
            for p in pk:
                idx = p + offsets
                ok = (idx >= 0) & (idx < len(row))
                acc[ok] += row[idx[ok]]
                cnt[ok] += 1
        return acc / np.maximum(cnt, 1)

    def fit(self, ecg: np.ndarray, ppg: np.ndarray, r_peaks: list[np.ndarray],
            pulse_peaks: list[np.ndarray]) -> MeanBeatTemplate:
        """Mean beats of the training windows and their median R→pulse delay (samples)."""
        self.templates = {"ecg": self._mean_beat(ecg, r_peaks), "ppg": self._mean_beat(ppg, pulse_peaks)}
        delays = np.concatenate([arrival_delays_s(r, p, self.fs) for r, p in zip(r_peaks, pulse_peaks)]
                                or [np.zeros(0)])
        self.delay_samples = int(round(np.median(delays) * self.fs)) if len(delays) else 0
        return self

    def place(self, target: str, beats: list[np.ndarray], n_samples: int) -> np.ndarray:
        """Windows [N, n_samples] of ``target``'s template at each beat (nearest beat wins)."""
        tpl = self.templates[target]
        out = np.zeros((len(beats), n_samples))
        grid = np.arange(n_samples)
        for i, b in enumerate(beats):
            b = np.sort(np.asarray(b))
            if len(b) == 0:
                continue
            j = np.clip(np.searchsorted(b, grid), 1, max(len(b) - 1, 1)) if len(b) > 1 else np.zeros(n_samples, int)
            if len(b) > 1:
                left, right = b[j - 1], b[j]
                nearest = np.where(np.abs(grid - left) <= np.abs(right - grid), left, right)
            else:
                nearest = np.full(n_samples, b[0])
            off = grid - nearest
            ok = np.abs(off) <= self.half
            out[i, ok] = tpl[off[ok] + self.half]
        return out

    def ecg_from_ppg(self, pulse_peaks: list[np.ndarray], n_samples: int) -> np.ndarray:
        """ECG windows [N, n_samples]: the ECG template one training delay before each pulse peak."""
        return self.place("ecg", [np.asarray(p) - self.delay_samples for p in pulse_peaks], n_samples)

    def ppg_from_ecg(self, r_peaks: list[np.ndarray], n_samples: int) -> np.ndarray:
        """PPG windows [N, n_samples]: the PPG template one training delay after each R peak."""
        return self.place("ppg", [np.asarray(r) + self.delay_samples for r in r_peaks], n_samples)
