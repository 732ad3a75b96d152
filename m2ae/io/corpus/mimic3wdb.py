"""MIMIC-III matched waveform database layout: folders ``pXX/pXXXXXX/`` with multi-segment master
headers ``pXXXXXX-YYYY-MM-DD-hh-mm.hea``; one record per segment holding II and/or PLETH (segments are
contiguous stretches; a master record can last days), subject id from the folder.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ...errors import InputError
from ...record import Record
from ..channels import ecg_rank, ppg_rank
from ..sources import open_source
from ..wfdb import read_wfdb_path
from .common import guard, read_opened

_MIMIC_MASTER = re.compile(r"^p\d{6}-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}\.hea$")


def matches(folder: Path) -> bool:
    """A folder holding at least one MIMIC master header (anywhere below it)."""
    return next(_mimic_masters(folder), None) is not None


def _mimic_masters(folder: Path) -> Iterator[Path]:
    for f in sorted(folder.rglob("p*.hea")):
        if _MIMIC_MASTER.match(f.name):
            yield f


def iterate(folder: Path) -> Iterator[Record | InputError]:
    """Records (or the InputError of each one not read) of the corpus at ``folder``."""
    import wfdb

    for master in _mimic_masters(folder):
        subject = master.parent.name if re.fullmatch(r"p\d{6}", master.parent.name) else master.name[:7]
        src = open_source(master)
        try:
            h = wfdb.rdheader(str(master.with_suffix("")))
        except Exception as e:
            yield InputError(f"{master}: not a valid WFDB header ({e})")
            continue
        if not isinstance(h, wfdb.MultiRecord):
            yield guard(master, read_wfdb_path, master.with_suffix(""), src, extra_meta={"subject_id": subject})
            continue
        offset = 0
        for seg, seg_len in zip(h.seg_name, h.seg_len):
            start_s = offset / h.fs
            offset += int(seg_len)
            if seg == "~" or seg.endswith("_layout") or int(seg_len) == 0:
                continue
            seg_path = master.parent / seg
            if not seg_path.with_suffix(".hea").exists():
                yield InputError(f"{master}: segment header {seg}.hea is missing")
                continue
            try:
                names = wfdb.rdheader(str(seg_path)).sig_name or []
            except Exception as e:
                yield InputError(f"{seg_path}.hea: not a valid WFDB header ({e})")
                continue
            if not any(ecg_rank(n) is not None or ppg_rank(n) is not None for n in names):
                continue  # e.g. an ABP-only stretch: nothing for this model, not an error
            extra = {"subject_id": subject, "record_id": f"{master.stem}/{seg}", "master_record": master.stem,
                     "offset_s": start_s}
            if h.base_datetime is not None:
                import datetime as dt

                extra["start_time"] = (h.base_datetime + dt.timedelta(seconds=start_s)).isoformat()
            yield guard(seg_path, read_opened, read_wfdb_path, seg_path, seg_path.with_suffix(".hea"),
                         extra_meta=extra)

