"""A table's time column -> seconds and a sampling rate, with gaps placed on the sampling grid.

Shared by the CSV/TSV reader: numbers (seconds, milliseconds, Unix time), clock times
('h:mm:ss.fff') and date-times. A column whose stamps jump leaves NaN runs on a grid at the median
step; the grid is checked against ``m2ae.io.limits`` before it is allocated, so a small file whose
time jumps by days is refused rather than expanded.
"""
from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from ..errors import InputError
from . import limits
from .channels import normalize_name

TIME_NAMES = {"time", "times", "t", "timestamp", "timestamps", "elapsedtime", "seconds", "sec", "secs",
              "ms", "millis", "milliseconds", "timems", "timesec", "timeins", "timeinseconds",
              "datetime", "date", "clocktime", "timestampms", "tms", "ts", "zeit", "tiempo", "temps", "tempo"}
_EPOCH_2000_S, _EPOCH_2100_S = 946_684_800.0, 4_102_444_800.0
# Unit words are looked for in the first characters of a name only (names are not bounded in length).
_NAME_CHARS = 200
_STAMP_CHARS = 40  # longest date-time text tried ("2024-01-01T10:00:00.123456789+05:30" is 35)
_DATEUTIL_ROWS = 200_000  # date-times not in ISO 8601 are parsed value by value only up to this many rows


def _parse_clock(values: list[str]) -> np.ndarray | None:
    """'h:mm:ss.fff' / 'm:ss.fff' elapsed times (PhysioNet CSV exports) -> seconds, else None."""
    out = np.empty(len(values))
    for i, v in enumerate(values):
        parts = v.strip().strip("'\"[]").split(":")
        if len(parts) > 3 or any(len(p) > 32 for p in parts):
            return None
        try:
            secs = 0.0
            for p in parts:
                secs = secs * 60 + float(p)
        except ValueError:
            return None
        out[i] = secs
    return out


def time_seconds(col: Any, name: str, unit_hint: str, source: str, meta: dict[str, Any]) -> np.ndarray:
    """A time column (pandas Series) -> seconds from the first sample; clock times set ``meta['start_time']``."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):
        t = col.to_numpy(dtype=np.float64)
        low = (name[:_NAME_CHARS] + " " + unit_hint[:_NAME_CHARS]).lower()
        if re.search(r"(\[|\(|_|\b)ms\b|milli", low) or normalize_name(name) in ("ms", "timems", "millis",
                                                                                "milliseconds", "timestampms"):
            t = t / 1000.0
        elif not re.search(r"(\[|\(|_|\b)(s|sec|secs|seconds)\b", low):
            d = np.diff(t[np.isfinite(t)])
            if d.size and np.median(d) >= 1.0:
                # Without a unit, steps >= 1 cannot be seconds at >= 20 Hz: read them as milliseconds.
                t = t / 1000.0
                meta["notes"].append(f"time column {name.strip()!r} read as milliseconds")
        if not np.isfinite(t).any():
            return t
        t0 = t[np.isfinite(t)][0]
        if _EPOCH_2000_S <= t0 <= _EPOCH_2100_S:  # Unix time stamps: keep the clock time
            import datetime as dt

            meta["start_time"] = dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat()
        return t - t0
    values = col.astype(str).tolist()
    clock = _parse_clock(values)
    if clock is not None:
        return clock - clock[0]
    long = next((i for i, v in enumerate(values) if len(v) > _STAMP_CHARS), None)
    if long is not None:  # no date-time is this long; dateutil would spend seconds on each such value
        raise InputError(f"{source}: time column {name.strip()[:40]!r} has an unreadable value {values[long][:40]!r} "
                         f"at data row {long + 1}")
    with warnings.catch_warnings():  # pandas warns when it falls back to dateutil: one line of output only
        warnings.simplefilter("ignore")
        ts = pd.to_datetime(col, errors="coerce", format="ISO8601")
        if ts.isna().mean() > 0.01 and len(values) <= _DATEUTIL_ROWS:
            ts = pd.to_datetime(col, errors="coerce")  # other spellings, value by value (slow: bounded rows)
    if ts.isna().mean() > 0.01:
        bad = int(np.argmax(ts.isna().to_numpy()))
        raise InputError(f"{source}: time column {name.strip()!r} has an unreadable value {values[bad][:40]!r} "
                         f"at data row {bad + 1}")
    meta["start_time"] = ts.iloc[0].isoformat()
    return (ts - ts.iloc[0]).dt.total_seconds().to_numpy()


def fs_from_time(t: np.ndarray, name: str, source: str, meta: dict[str, Any]) -> tuple[float, np.ndarray | None]:
    """Sampling rate (Hz) from a time column (s); returns (fs, grid positions when the column has gaps).

    The span and, with gaps, the grid are checked against ``m2ae.io.limits`` before anything of
    that size is allocated.
    """
    ok = np.isfinite(t)
    if ok.sum() < 2:
        raise InputError(f"{source}: time column {name.strip()!r} has fewer than two readable values")
    tt = t[ok]
    d = np.diff(tt)
    if (d < 0).any():
        i = int(np.argmax(d < 0))
        raise InputError(f"{source}: time column {name.strip()!r} is not increasing "
                         f"(data row {i + 2}: {tt[i]:g} -> {tt[i + 1]:g} s)")
    if tt[-1] <= tt[0]:
        raise InputError(f"{source}: time column {name.strip()!r} does not advance ({tt[0]:g} s throughout)")
    limits.check_span(source, float(tt[-1] - tt[0]), 0.0)
    # Exported time stamps are often rounded (BIDMC: 100.02, 100.02, 100.03): judge the column by
    # its average rate and allow each stamp one sample interval of rounding.
    fs_avg = (len(tt) - 1) / (tt[-1] - tt[0])
    resid = tt - (tt[0] + np.arange(len(tt)) / fs_avg)
    if np.abs(resid).max() <= 1.0 / fs_avg:
        fs = fs_avg
        if abs(fs - round(fs)) <= 1e-3 * fs:
            fs = float(round(fs))
        return fs, None
    dt = float(np.median(d[d > 0]))
    fs_med = 1.0 / dt
    # Gaps: place samples on the sampling grid so missing stretches become NaN runs.
    fs = fs_med if abs(fs_med - round(fs_med)) > 1e-3 * fs_med else float(round(fs_med))
    n_grid = float((tt[-1] - tt[0]) * fs) + 1
    limits.check_grid(source, n_grid, len(tt), fs, what=f"time column {name.strip()[:40]!r}")
    pos = np.round((tt - tt[0]) * fs).astype(np.int64)
    if len(np.unique(pos)) != len(pos):
        return fs, None
    n_gaps = int((d > 1.5 * dt).sum())
    meta["notes"].append(f"time column has {n_gaps} gaps; missing samples set to NaN on a {fs:g} Hz grid")
    full = np.full(t.shape, -1, dtype=np.int64)
    full[ok] = pos
    return fs, full
