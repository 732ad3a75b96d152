"""Lay a :class:`~m2ae.report.content.ReportContent` out as a PDF (A4 landscape) and return its bytes.

One concept: the PDF layout. Built with fpdf2: maintained, pure Python (no Cairo/Pango as WeasyPrint needs,
no compiled parts), small, and its core fonts need no font files; reportlab would do too but is larger and
its open-source part is older-style. Every page's footer says "Not for clinical use" with the model version.
Strings from files (record names, notes, labels) go through :func:`pdf_text` first: control characters are
shown escaped and characters outside the core fonts' Latin-1 are replaced, so a file cannot break the layout.
"""
from __future__ import annotations

import io
import math
import unicodedata
from typing import Any

from .content import ReportContent
from .figures import ECG_GRID_HEIGHT_MM, ECG_GRID_WIDTH_MM, ecg_grid_png, signals_png

CLINICAL_NOTICE = "Not for clinical use: research software; measurements and predictions are not validated."
MAX_FIELD_CHARS = 300
_PLAIN = {"\u2192": "->", "\u2190": "<-", "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2264": "<=",
          "\u2265": ">=", "\u2248": "~", "\u2026": "...", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
          "\u03c3": "sigma", "\u221a": "sqrt", "\u2022": "*"}


def pdf_text(value: Any, limit: int = MAX_FIELD_CHARS) -> str:
    """``value`` as a short, printable Latin-1 string for the PDF's core fonts: control characters escaped
    (``\\n``, ``\\x1b``), common symbols spelt out (``→`` as ``->``), anything else outside Latin-1 as ``?``,
    cut to ``limit`` characters."""
    s = unicodedata.normalize("NFKC", str(value))
    s = "".join(_PLAIN.get(c, c) if c.isprintable() else ascii(c)[1:-1] for c in s)
    s = s.encode("latin-1", errors="replace").decode("latin-1")
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.3g}"
    return pdf_text(v, 60)


def _pdf_class():
    from fpdf import FPDF

    class ReportPDF(FPDF):
        footer_text = CLINICAL_NOTICE

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 5, f"{self.footer_text}   Page {self.page_no()}/{{nb}}", align="C")

    return ReportPDF


def _heading(pdf: Any, text: str) -> None:
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, pdf_text(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)


def _line(pdf: Any, text: str, h: float = 4.5) -> None:
    pdf.multi_cell(0, h, pdf_text(text, 600), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: Any, header: list[str], rows: list[list[str]], widths: list[float]) -> None:
    pdf.set_font("Helvetica", "B", 8)
    for w, h in zip(widths, header):
        pdf.cell(w, 5, pdf_text(h), border=1)
    pdf.ln()
    pdf.set_font("Helvetica", "", 8)
    for row in rows:
        for w, v in zip(widths, row):
            pdf.cell(w, 5, pdf_text(v, int(w / 1.6)), border=1)
        pdf.ln()
    pdf.set_font("Helvetica", "", 9)


def _record_section(pdf: Any, c: ReportContent) -> None:
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, pdf_text(f"m2ae record report: {c.record_name}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    _line(pdf, f"Source: {c.source}   Channels: {', '.join(c.channels)}   Duration: {c.duration_s:.1f} s   "
               f"Rate: {c.fs_hz:g} Hz   Windows: {c.n_windows} x 10 s   Model version: {c.model_version}")
    for mod, why in c.dropped.items():
        _line(pdf, f"Dropped channel {mod}: {why}")
    for note in c.notes[:6]:
        _line(pdf, f"Note: {note}")
    for ev in c.events[:4]:
        _line(pdf, f"Event: {ev['label']} at {ev['time_s']:.1f} s")
    q = ", ".join(f"{m.upper()} {v:.2f}" for m, v in c.quality.items()) or "n/a"
    _line(pdf, f"Window {c.window} ({c.window_start_s:.0f}-{c.window_start_s + 10:.0f} s; {c.window_why}). "
               f"Quality: {q}{' - LOW QUALITY, flagged' if c.low_quality else ''}.")


def _intervals_section(pdf: Any, c: ReportContent) -> None:
    from ..signal.intervals import interval_rows

    _heading(pdf, "Interval measurements (median and IQR over the window's beats)")
    _table(pdf, ["measurement", "value", "beats / reason"],
           [list(r) for r in interval_rows(c.intervals)], [55, 60, 120])
    _line(pdf, "ECG delineated with NeuroKit2 (dwt) at 500 Hz; onset/offset where a wave is at 13.5 % of its "
               "peak; values from the median beat (T end by tangent), IQR over single beats; QTc with the median "
               "RR. Markers on the grid: P onset green, QRS on blue, QRS off purple, "
               "T off orange.")


def _model_section(pdf: Any, c: ReportContent) -> None:
    _heading(pdf, f"Predictions for window {c.window} (model {c.model_version})")
    if c.predictions:
        _table(pdf, ["head", "answer", "detail"], [list(p) for p in c.predictions], [35, 60, 160])
    else:
        _line(pdf, "No model given: no predictions or reconstructions.")
    _line(pdf, f"Quality: {', '.join(f'{m.upper()} {v:.2f}' for m, v in c.quality.items()) or 'n/a'}"
               f"{' (low-quality window: treat predictions with caution)' if c.low_quality else ''}. "
               f"Familiarity: {c.familiarity}")
    _heading(pdf, "Nearest neighbours in the index")
    if c.neighbours:
        keys = list(c.neighbours[0])
        _table(pdf, keys, [[_fmt(n.get(k)) for k in keys] for n in c.neighbours], [255 / len(keys)] * len(keys))
    else:
        _line(pdf, "No index given (or no neighbour found).")
    if c.index_note:
        _line(pdf, c.index_note)
    _heading(pdf, "Re-identification risk of this record")
    for text in c.reidentification_lines:
        _line(pdf, text)


def report_pdf(content: ReportContent) -> bytes:
    """The report of ``content`` as PDF bytes (2+ pages, A4 landscape)."""
    pdf = _pdf_class()(orientation="L", unit="mm", format="A4")
    pdf.footer_text = pdf_text(f"{CLINICAL_NOTICE} Model {content.model_version}.")
    pdf.set_margins(20, 12, 20)
    pdf.set_auto_page_break(True, margin=16)
    pdf.alias_nb_pages()
    pdf.add_page()
    _record_section(pdf, content)
    png = ecg_grid_png(content)
    if png is not None:
        _heading(pdf, f"ECG ({content.units.get('ecg', 'mV')}), 25 mm/s, 10 mm/mV, window {content.window}")
        y = pdf.get_y()
        pdf.image(io.BytesIO(png), x=pdf.l_margin, y=y, w=ECG_GRID_WIDTH_MM, h=ECG_GRID_HEIGHT_MM)
        pdf.set_y(y + ECG_GRID_HEIGHT_MM + 1)
    _intervals_section(pdf, content)
    pdf.add_page()
    _heading(pdf, "PPG (feet ^, peaks v) and cross-modal reconstructions")
    sig = signals_png(content)
    pdf.image(io.BytesIO(sig), x=pdf.l_margin, w=190)
    pdf.add_page()
    _model_section(pdf, content)
    return bytes(pdf.output())
