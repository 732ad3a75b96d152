"""VitalDB ``.vital`` files (gzip streams of device tracks such as ``SNUADC/ECG_II``, ``SNUADC/PLETH``).

Tracks are matched by name without their device prefix; SNUADC (VitalDB's 500 Hz analogue
recorder) wins over monitor re-exports of the same wave. The picked tracks are sampled on one grid
at the highest of their rates, and the NaN edges where neither track records are trimmed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..record import Record
from . import limits
from .assemble import add_channel, check_fs, make_record, merge_extra_meta, new_meta
from .channels import choose_channels
from .sources import Source


def check_stream(path: Path, name: str) -> None:
    """Refuse a .vital whose gzip stream expands past MAX_DECOMPRESSED_BYTES, or by more than
    MAX_COMPRESSION_RATIO once past COMPRESSION_FLOOR_BYTES (a zip bomb is refused within its first
    tens of MiB), counted before vitaldb holds the whole stream in memory."""
    import zlib

    total = consumed = 0
    d = zlib.decompressobj(31)  # gzip framing
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                consumed += len(chunk)
                while chunk:
                    total += len(d.decompress(chunk))  # <= ~64 MiB per 64 KiB read (deflate's 1032:1)
                    chunk = b""
                    if d.eof and d.unused_data:  # several gzip members one after the other
                        chunk, d = d.unused_data, zlib.decompressobj(31)
                    limits.check_decompressed(name, "the .vital gzip stream", total)
                    if total > limits.COMPRESSION_FLOOR_BYTES and total > limits.MAX_COMPRESSION_RATIO * consumed:
                        raise InputError(f"{name}: the .vital gzip stream expands {total / consumed:,.0f} times, "
                                         f"more than m2ae.io.limits.MAX_COMPRESSION_RATIO = "
                                         f"{limits.MAX_COMPRESSION_RATIO:g} (a compression bomb, not recorded signals)")
    except zlib.error as e:
        raise InputError(f"{name}: not a readable .vital file ({' '.join(str(e).split())[:120]})") from None
    if not d.eof:
        raise InputError(f"{name}: not a readable .vital file (the gzip stream is truncated)")


def _check_grid(vf: object, picked: dict[str, str], rate: float, source: str) -> None:
    """Track rates and the span the file declares, and the grid ``to_numpy`` would fill, against
    ``m2ae.io.limits`` before it is allocated (a 4 KB file may declare days at 50 MHz)."""
    trks = vf.trks  # type: ignore[attr-defined]
    for trk in picked.values():
        check_fs(trks[trk].srate, f"{source}: track {trk[:40]!r}")
    dtstart, dtend = vf.dtstart, vf.dtend  # type: ignore[attr-defined]
    span = float(dtend - dtstart)
    if not span > 0:
        raise InputError(f"{source}: the .vital file declares no time span (start {dtstart}, end {dtend})")
    present = max(sum(np.size(r.get("val", ())) for r in trks[trk].recs) for trk in picked.values())
    limits.check_grid(source, span * rate, present, rate, what=".vital file")
    limits.check_read(source, span * rate, len(picked))


def vital_tracks(names: list[str]) -> list[str]:
    """Track names without the device prefix ('SNUADC/ECG_II' -> 'ECG_II') for channel matching."""
    return [n.split("/", 1)[-1] for n in names]


def read_vital_path(path: Path, source: Source, fs: float | None = None, ecg: str | int | None = None,
                    ppg: str | int | None = None, extra_meta: dict[str, Any] | None = None) -> Record:
    """Read the .vital file at ``path``; ``fs`` (Hz) sets the grid; ``extra_meta`` is a corpus' ids/labels."""
    check_stream(path, source.name)
    import vitaldb

    vf = vitaldb.VitalFile(str(path))
    waves = [n for n, trk in vf.trks.items() if getattr(trk, "srate", 0) and trk.srate > 0]
    if not waves:
        raise InputError(f"{source.name}: the .vital file holds no waveform tracks")
    # SNUADC is VitalDB's 500 Hz analogue recorder: prefer it over monitor re-exports of the same wave.
    waves.sort(key=lambda n: (not n.startswith("SNUADC/"), n))
    short = vital_tracks(waves)
    # Overrides may name a track in full ('SNUADC/ECG_II') or without its device ('ECG_II').
    ecg = waves.index(ecg) if isinstance(ecg, str) and ecg in waves else ecg
    ppg = waves.index(ppg) if isinstance(ppg, str) and ppg in waves else ppg
    choice = choose_channels(short, source.name, ecg=ecg, ppg=ppg)
    picked = {m: waves[i] for m, i in (("ecg", choice.ecg), ("ppg", choice.ppg)) if i is not None}
    rate = float(fs) if fs is not None else max(vf.trks[t].srate for t in picked.values())
    _check_grid(vf, picked, rate, source.name)
    arr = vf.to_numpy(list(picked.values()), interval=1.0 / rate)
    meta = new_meta(source, "vital", units=True)
    if getattr(vf, "dtstart", None):
        import datetime as _dt

        meta["start_time"] = _dt.datetime.fromtimestamp(vf.dtstart, _dt.timezone.utc).isoformat()
    sig = {}
    for j, (m, trk) in enumerate(picked.items()):
        x = np.asarray(arr[:, j], dtype=np.float64)
        sig[m] = add_channel(meta, m, x, getattr(vf.trks[trk], "unit", "") or None, trk.split("/", 1)[-1])
        meta[f"{m}_column"] = trk
        meta[f"{m}_matched_by"] = getattr(choice, f"{m}_how")
    # Tracks start and stop at different times: trim the shared NaN edges, keep inner NaN gaps.
    both = np.zeros(len(arr), dtype=bool)
    for x in sig.values():
        both |= np.isfinite(x)
    if both.any():
        lo, hi = int(np.argmax(both)), len(both) - int(np.argmax(both[::-1]))
        sig = {m: x[lo:hi] for m, x in sig.items()}
    merge_extra_meta(meta, extra_meta)
    return make_record(source.name, rate, sig.get("ecg"), sig.get("ppg"), meta)


def read(source: Source, fs: float | None = None, ecg: str | int | None = None,
         ppg: str | int | None = None) -> Record:
    """Read an uploaded or on-disk .vital file (refused unless gzip-compressed)."""
    if not source.head(2) == b"\x1f\x8b":
        raise InputError(f"{source.name}: not a VitalDB .vital file (not gzip-compressed)")
    with source.on_disk() as path:
        return read_vital_path(path, source, fs=fs, ecg=ecg, ppg=ppg)
