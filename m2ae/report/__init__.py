"""Record reports: one window of a record as a PDF to file or hand over (``m2ae report``, the app's download).

``record_report_pdf`` is the one call: record → PDF bytes. :mod:`.content` gathers what the report shows
(record, window, signals, reconstructions, predictions with quality and familiarity, interval measurements,
nearest neighbours, re-identification risk, model version), :mod:`.figures` draws it (matplotlib, Agg) and
:mod:`.pdf` lays it out (fpdf2). Every page says "Not for clinical use".

>>> pdf = record_report_pdf(m2ae.load_record("r289.hea"), model=load_model())   # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

from ..record import Record, Windows
from .content import ReportContent, choose_window, report_content
from .pdf import CLINICAL_NOTICE, pdf_text, report_pdf

__all__ = ["record_report_pdf", "report_content", "report_pdf", "choose_window", "ReportContent", "pdf_text",
           "CLINICAL_NOTICE"]


def record_report_pdf(rec: Record, win: Windows | None = None, window: int | None = None, model: Any = None,
                      index: Any = None, subject_id: str | None = None) -> bytes:
    """The PDF report of ``rec`` as bytes.

    win : ``rec`` already cut (``m2ae.signal.preprocess``), to skip doing it again.
    window : the 10-s window to show (default: the first event's window, else the best-quality one).
    model : an ``M2AEModel`` (predictions, reconstructions) or None; index : a ``FingerprintIndex`` built
        by that model (neighbours, familiarity, re-identification risk) or None. subject_id : the record's
        subject when the file does not say (left out of the index searches). Bad input raises
        ``m2ae.errors.InputError``.
    """
    if win is None:
        from ..signal import preprocess

        win = preprocess(rec)
    return report_pdf(report_content(rec, win, window=window, model=model, index=index, subject_id=subject_id))
