"""The two data types that flow through m2ae: a raw ``Record`` and its contract ``Windows``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .contract import FS_HZ, WINDOW_SAMPLES
from .errors import InputError


@dataclass
class Record:
    """One recording of ECG and/or PPG at one sampling rate.

    ecg, ppg : 1-D float arrays in the record's own units (mV for ECG when known; PPG often
        arbitrary units) or None when that modality is absent. Both share ``fs``.
    fs : sampling rate in Hz.
    meta : free-form provenance. Keys used across m2ae: ``source`` (file or corpus), ``record_id``,
        ``subject_id``, ``lead`` (ECG lead name), ``ecg_column``/``ppg_column`` (how channels were
        matched), ``units`` ({"ecg": "mV", "ppg": "au"}), ``labels`` (dict: rhythm, hypertension,
        age, sex, ...), ``start_time`` (ISO clock time, when the record has one), ``notes`` (list of
        strings: interpolated gaps, resampling, ...), ``events`` (list of ``{"time_s": float, "label":
        str}``: marked moments such as a monitor alarm or a WFDB annotation; see ``record_events``).
    ecg_leads : every ECG lead the source carried, lead name -> 1-D array in the same units and length
        as ``ecg`` (the model's input lead, named ``meta["lead"]``, is one of them); None when the
        source had one ECG lead or none. For display and for combining leads in beat detection.
    """

    ecg: np.ndarray | None
    ppg: np.ndarray | None
    fs: float
    meta: dict[str, Any] = field(default_factory=dict)
    ecg_leads: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        # Metadata comes from files (NPZ meta_json, WFDB comments, CSV headers): check its types once
        # here, so every later reader can trust them (a `units: 5` used to surface as a TypeError).
        self.meta = checked_meta(self.meta)
        name = self.meta.get("source", "record")
        if self.ecg is None and self.ppg is None:
            raise InputError(f"{name}: neither ECG nor PPG present")
        if not np.isfinite(self.fs) or self.fs <= 0:
            raise InputError(f"{name}: invalid sampling rate {self.fs!r} Hz")
        for mod in ("ecg", "ppg"):
            x = getattr(self, mod)
            if x is None:
                continue
            x = np.asarray(x)
            if x.ndim != 1:
                raise InputError(f"{name}: {mod.upper()} must be one channel (1-D), got shape {x.shape}")
            if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
                raise InputError(f"{name}: {mod.upper()} is not real numeric data (dtype {x.dtype})")
            setattr(self, mod, x.astype(np.float64, copy=False))
        if self.ecg is not None and self.ppg is not None and len(self.ecg) != len(self.ppg):
            raise InputError(
                f"{name}: ECG and PPG lengths differ ({len(self.ecg)} vs {len(self.ppg)} samples)"
            )
        self.fs = float(self.fs)
        if self.ecg_leads is not None:
            self.ecg_leads = _checked_leads(self.ecg_leads, self.n_samples, name)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The channels present, in contract order: ("ecg", "ppg"), ("ecg",) or ("ppg",)."""
        return tuple(m for m in ("ecg", "ppg") if getattr(self, m) is not None)

    @property
    def n_samples(self) -> int:
        """Length of the record in samples (both channels share it)."""
        x = self.ecg if self.ecg is not None else self.ppg
        assert x is not None, "__post_init__ refuses a record without ECG and PPG"
        return len(x)

    @property
    def duration_s(self) -> float:
        """Length of the record in s (``n_samples / fs``)."""
        return self.n_samples / self.fs


# --- metadata is data: JSON-like values, known keys with their types --------------------------------

_TEXT_KEYS = frozenset({"source", "lead", "ecg_column", "ppg_column", "start_time", "time_column", "name",
                        "ecg_matched_by", "ppg_matched_by", "matched_by", "corpus", "split", "reader", "format"})
_ID_KEYS = frozenset({"record_id", "subject_id", "case_id", "record"})
_BOOL_KEYS = frozenset({"ppg_flipped", "ecg_inverted"})
_TEXT_MAP_KEYS = frozenset({"units", "dropped"})          # {str: str}
_TEXT_LIST_KEYS = frozenset({"notes", "comments"})         # [str]
_MAX_DEPTH = 8                                             # nesting of JSON-like values kept


def _plain_value(v: Any, depth: int = 0) -> tuple[bool, Any]:
    """(ok, v as plain JSON-like data): str, int, float, bool, None, lists and str-keyed dicts of them.

    numpy scalars/arrays become Python numbers/lists; anything else (objects, bytes, deep nesting) is
    not data the app can show safely, so (False, None).
    """
    if isinstance(v, np.ndarray):
        v = v.tolist()
    elif isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (str, bool, int, float)):
        return True, v
    if depth >= _MAX_DEPTH:
        return False, None
    if isinstance(v, (list, tuple)):
        out = []
        for x in v:
            ok, x = _plain_value(x, depth + 1)
            if ok:
                out.append(x)
        return True, out
    if isinstance(v, dict):
        out_d = {}
        for k, x in v.items():
            ok, x = _plain_value(x, depth + 1)
            if ok and isinstance(k, (str, int, float)) and not isinstance(k, bool):
                out_d[str(k)] = x
        return True, out_d
    return False, None


def _key_label(key: Any) -> str:
    text = str(key)
    return repr(text if len(text) <= 40 else text[:39] + "…")


def checked_meta(meta: Any) -> dict[str, Any]:
    """``meta`` with every value plain JSON-like data and the known keys of the right type.

    Known keys: text (``source``, ``lead``, ``start_time``, column names …: numbers become text),
    ids (``record_id``, ``subject_id``: text or a number), flags (``ppg_flipped``), ``units`` and
    ``dropped`` ({str: str}), ``notes`` and ``comments`` ([str]; one string becomes a list),
    ``labels`` and ``annotations`` (dicts), ``events`` ([{"time_s": number, "label": str}]). A value
    of the wrong type is dropped and a note says which key; nothing raises. The dict is checked in
    place (readers may still add notes to it), unless ``meta`` was not a dict at all.
    """
    if not isinstance(meta, dict):
        return {"notes": [f"metadata was a {type(meta).__name__}, not a mapping, and was ignored"]}
    dropped: list[str] = []
    for key in list(meta):
        value = meta[key]
        if not isinstance(key, str):
            del meta[key]
            dropped.append(_key_label(key))
            continue
        fixed = _checked_value(key, value)
        if fixed is _BAD:
            del meta[key]
            dropped.append(_key_label(key))
        elif fixed is not value:
            meta[key] = fixed
    if dropped:
        notes = meta.setdefault("notes", [])
        notes.append(f"metadata {', '.join(dropped[:5])}{' …' if len(dropped) > 5 else ''} had the wrong type "
                     f"and {'was' if len(dropped) == 1 else 'were'} ignored")
    return meta


_BAD = object()


def _checked_value(key: str, value: Any) -> Any:
    """``value`` (the same object when already right), a fixed copy, or ``_BAD``."""
    if key in _TEXT_KEYS:
        if value is None or isinstance(value, str):  # None: known to be unknown (e.g. an unnamed lead)
            return value
        return str(value) if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else _BAD
    if key in _ID_KEYS:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return value
        return value.item() if isinstance(value, np.number) else (None if value is None else _BAD)
    if key in _BOOL_KEYS:
        return bool(value) if isinstance(value, (bool, np.bool_)) else (None if value is None else _BAD)
    if key in _TEXT_MAP_KEYS:
        if value is None:
            return None
        if not isinstance(value, dict):
            return _BAD
        if all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return value
        return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    if key in _TEXT_LIST_KEYS:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, (list, tuple)):
            return _BAD
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return value
        return [x if isinstance(x, str) else str(x) for x in value
                if isinstance(x, (str, int, float)) and not isinstance(x, bool)]
    if key == "events":
        if not isinstance(value, (list, tuple)):
            return _BAD
        return [{**ev, "label": str(ev.get("label", "event"))} for ev in (_plain_value(list(value))[1])
                if isinstance(ev, dict) and isinstance(ev.get("time_s"), (int, float))
                and not isinstance(ev.get("time_s"), bool)]
    if key in ("labels", "annotations") and not isinstance(value, dict):
        return _BAD
    ok, plain = _plain_value(value)
    if not ok:
        return _BAD
    return value if _same_plain(value) else plain


def _same_plain(value: Any, depth: int = 0) -> bool:
    """True when ``value`` already is plain JSON-like data (then it is kept as the same object)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if depth >= _MAX_DEPTH:
        return False
    if isinstance(value, list):
        return all(_same_plain(x, depth + 1) for x in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _same_plain(v, depth + 1) for k, v in value.items())
    return False


def _checked_leads(leads: dict[str, Any], n_samples: int, name: str) -> dict[str, np.ndarray] | None:
    out: dict[str, np.ndarray] = {}
    for lead, x in leads.items():
        x = np.asarray(x)
        if x.ndim != 1 or len(x) != n_samples:
            raise InputError(f"{name}: ECG lead {str(lead)!r} has shape {x.shape}, expected ({n_samples},)")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise InputError(f"{name}: ECG lead {str(lead)!r} is not real numeric data (dtype {x.dtype})")
        out[str(lead)] = x.astype(np.float64, copy=False)
    return out or None


def record_events(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The marked moments of a record, earliest first: ``[{"time_s": float, "label": str}, ...]``.

    Read from ``meta["events"]`` and from a monitor alarm in ``meta["labels"]`` (``alarm_time_s`` with
    ``alarm_type`` and ``true_alarm``, as the CinC 2015 corpus gives them). Entries without a finite
    time are skipped.

    >>> record_events({"labels": {"alarm_time_s": 300, "alarm_type": "Ventricular_Tachycardia"}})
    [{'time_s': 300.0, 'label': 'alarm: Ventricular_Tachycardia'}]
    """
    events: list[dict[str, Any]] = []
    for ev in meta.get("events") or []:
        try:
            t = float(ev["time_s"])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(t):
            events.append({"time_s": t, "label": str(ev.get("label", "event"))})
    labels = meta.get("labels") or {}
    try:
        raw_alarm = labels.get("alarm_time_s")
        t_alarm = float(raw_alarm) if raw_alarm is not None else float("nan")
    except (TypeError, ValueError):
        t_alarm = float("nan")
    if np.isfinite(t_alarm) and not any(abs(e["time_s"] - t_alarm) < 1e-6 for e in events):
        label = f"alarm: {labels.get('alarm_type', 'monitor alarm')}"
        if isinstance(labels.get("true_alarm"), bool):
            label += " (true)" if labels["true_alarm"] else " (false)"
        events.append({"time_s": t_alarm, "label": label})
    return sorted(events, key=lambda e: e["time_s"])


def event_window(win: Windows, events: list[dict[str, Any]]) -> int:
    """The window a review opens on: the first one whose 10 s end at or contain the first event.

    An alarm at ``t`` s is judged on what led up to it, so among the windows with start < t ≤ end the
    earliest-ending one is taken (a CinC alarm at 300 s → the 290–300 s window). An event after the
    last window gives the nearest window end; no events give window 0.
    """
    n = len(win)
    if not events or n == 0:
        return 0
    t = float(events[0]["time_s"])
    starts = np.asarray(win.starts_s, dtype=float)
    ends = starts + WINDOW_SAMPLES / float(win.fs)
    holding = np.flatnonzero((starts < t) & (t <= ends + 1e-6))
    if holding.size:
        return int(holding[np.argmin(ends[holding])])
    return int(np.argmin(np.abs(ends - t)))


@dataclass
class Windows:
    """A record cut to the signal contract: 10-s windows at 125 Hz, robust-normalised per channel.

    ecg, ppg : float32 [N, 1250] normalised windows, or None when the modality is absent.
    starts_s : float64 [N] window start in seconds from the record's start.
    ecg_center, ecg_scale, ppg_center, ppg_scale : float32 [N]; original units = norm * scale + center.
    ecg_quality, ppg_quality : float32 [N] in [0, 1]; NaN when the modality is absent.
    low_quality : bool [N]; True where a present channel is below ``QUALITY_THRESHOLD`` (kept, flagged).
    hr_ecg_bpm, hr_ppg_bpm : float32 [N] heart rate in bpm from R-peaks / pulse peaks; NaN (never 0)
        where unavailable, e.g. no beats detected or the modality absent.
    ecg_no_beats, ppg_no_beats : bool [N]; True where the detector found no beats to count in the
        window (fewer than 3 peaks, or no two beat intervals at 25–240 bpm, or no signal): "no beats
        detected", so that window's heart rate is NaN. Asystole shows as ECG windows all True; the
        windows are kept. None when the modality is absent (or was dropped, see ``meta["dropped"]``).
    pat_ms : float32 [N] median R-peak -> pulse-peak delay in ms (NaN unless both modalities).
    ecg_clean, ppg_clean : float64 [T] the whole filtered record at 125 Hz (original units), for display.
    ecg_leads_clean : every ECG lead of the record filtered like ``ecg_clean`` (lead name -> float64 [T]),
        or None when the record had a single lead.
    r_peaks, pulse_peaks : int64 sample indices at 125 Hz into ``*_clean``.
    r_peak_classes : int8 [len(r_peaks)] beat class of each R-peak: 0 normal, 1 ventricular (wide QRS or
        unlike the record's narrow beats), -1 not classed (``m2ae.signal.beats.BEAT_CLASSES``); None
        without ECG beats detection.
    meta : the record's meta plus processing notes (``notes``: list of plain sentences) and
        ``dropped`` ({modality: reason}: channels the record had but that were dead, e.g. a flat PPG;
        the windows then carry only the other modality).
    """

    ecg: np.ndarray | None
    ppg: np.ndarray | None
    starts_s: np.ndarray
    ecg_center: np.ndarray | None = None
    ecg_scale: np.ndarray | None = None
    ppg_center: np.ndarray | None = None
    ppg_scale: np.ndarray | None = None
    ecg_quality: np.ndarray | None = None
    ppg_quality: np.ndarray | None = None
    low_quality: np.ndarray | None = None
    hr_ecg_bpm: np.ndarray | None = None
    hr_ppg_bpm: np.ndarray | None = None
    pat_ms: np.ndarray | None = None
    ecg_clean: np.ndarray | None = None
    ppg_clean: np.ndarray | None = None
    r_peaks: np.ndarray | None = None
    pulse_peaks: np.ndarray | None = None
    ecg_no_beats: np.ndarray | None = None
    ppg_no_beats: np.ndarray | None = None
    ecg_leads_clean: dict[str, np.ndarray] | None = None
    r_peak_classes: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    fs: float = FS_HZ

    def __len__(self) -> int:
        return len(self.starts_s)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The channels present, in contract order: ("ecg", "ppg"), ("ecg",) or ("ppg",)."""
        return tuple(m for m in ("ecg", "ppg") if getattr(self, m) is not None)

    def to_original_units(self, modality: str, x_norm: np.ndarray,
                          window: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Map normalised windows [n, 1250] (e.g. a reconstruction) back to the record's units (mV for
        ECG when known, au for PPG); ``window`` picks the rows of ``center``/``scale`` they belong to."""
        center = getattr(self, f"{modality}_center")
        scale = getattr(self, f"{modality}_scale")
        if center is None or scale is None:
            # The modality was absent: no units to return to, stay normalised.
            return np.asarray(x_norm)
        return np.asarray(x_norm) * scale[window, None] + center[window, None]


def check_window_batch(x: npt.ArrayLike | None, name: str) -> np.ndarray | None:
    """Validate a user-supplied batch of contract windows: [N, 1250] or [1250], finite, real.

    ``x``: numpy array, torch tensor (detached, moved to the CPU) or nested lists; None passes through.
    Returns float32 [N, 1250]; anything else raises InputError naming ``name``.
    """
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"{name}: expected real numbers, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != WINDOW_SAMPLES:
        raise InputError(f"{name}: expected shape [N, {WINDOW_SAMPLES}] (10 s at 125 Hz), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"{name}: empty batch")
    if not np.isfinite(x).all():
        raise InputError(f"{name}: contains NaN or inf")
    return x.astype(np.float32, copy=False)
