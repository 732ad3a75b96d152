"""The PDF report download every page offers (sidebar): built by ``m2ae.report.record_report_pdf`` for the
current record and window, kept in the session per record + window so a download or a page switch does not
build it again (about 40 s for a 5-min record on a busy 2-core machine)."""
from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

REPORT_KEY = "_report_pdf"   # {(record key, window): PDF bytes}; only the last few are kept
KEEP = 4


def cached_report(session: MutableMapping[str, Any], record_key: str, window: int) -> bytes | None:
    """The PDF already built for this record and window in this session, or None."""
    return (session.get(REPORT_KEY) or {}).get((record_key, int(window)))


def build_report(session: MutableMapping[str, Any], record_key: str, rec: Any, win: Any, window: int,
                 model: Any = None, index: Any = None, subject_id: str | None = None) -> bytes:
    """Build (or reuse) the PDF report of window ``window`` of ``rec``; ``model``/``index`` may be None (the
    report then leaves out predictions, reconstructions, neighbours and re-identification risk). subject_id :
    the record's subject as the pages know it (``state.record_subject``), so the report's re-identification
    risk is the Similar patients page's. Raises ``m2ae.InputError``."""
    if (pdf := cached_report(session, record_key, window)) is not None:
        return pdf
    from m2ae.report import record_report_pdf

    pdf = record_report_pdf(rec, win=win, window=int(window), model=model, index=index, subject_id=subject_id)
    cache = dict(session.get(REPORT_KEY) or {})
    while len(cache) >= KEEP:
        cache.pop(next(iter(cache)))
    cache[(record_key, int(window))] = pdf
    session[REPORT_KEY] = cache
    return pdf


def report_file_name(record_name: str, window: int) -> str:
    """A safe download name: ``m2ae_report_<record>_w<window number from 1>.pdf``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", record_name.rsplit("/", 1)[-1]).strip("._") or "record"
    return f"m2ae_report_{stem[:60]}_w{int(window) + 1}.pdf"
