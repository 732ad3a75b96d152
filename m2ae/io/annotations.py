"""WFDB annotation files beside a record (``.atr``, ``.ann``, ``.alarm``, …) -> ``meta["events"]``.

Only the marked moments a person looks for are kept: rhythm changes (``+`` with ``(VT``), comments
and alarms (``"``), signal quality changes, artefacts, flutter/fibrillation start and end. Beat labels
(N, V, …) and waveform boundaries (P/T peaks, onsets) are left out: there are thousands of them and
the beat detector already marks beats. At most ``limits.MAX_EVENTS`` are kept, earliest first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import limits

# Beat and waveform-boundary symbols (wfdb.io.annotation.ann_labels): not events.
_NOT_EVENTS = set("NLRBAaJSVrFejnE/fQ?") | {"(", ")", "p", "t", "u", "`", "'", "^", "x", "*", "D", " "}
_DESCRIPTIONS = {"+": "rhythm change", '"': "comment", "~": "signal quality change", "|": "isolated artifact",
                 "!": "ventricular flutter wave", "[": "start of ventricular flutter/fibrillation",
                 "]": "end of ventricular flutter/fibrillation", "s": "ST change", "T": "T-wave change",
                 "=": "measurement", "@": "link"}
# Annotator names PhysioNet uses; a file with one of these that cannot be read gets a note.
KNOWN_ANNOTATORS = ("atr", "ann", "alarm", "qrs", "ecg", "apn", "arousal", "st", "16a", "sqrs", "wqrs", "gqrs",
                    "wabp", "ari", "man", "pu", "pu0", "pu1", "event", "events")
# Sibling files that are never annotations (data, headers, exports, documents).
_NOT_ANNOTATORS = {"hea", "dat", "mat", "csv", "tsv", "txt", "json", "npz", "npy", "edf", "bdf", "rec", "vital",
                   "zip", "gz", "png", "jpg", "pdf", "md", "html", "xml", "xws", "flac", "py", "bak", "tmp"}
_LABEL_CHARS = 200


def annotation_files(rec_path: Path, data_files: set[str]) -> list[Path]:
    """Files named like the record (``rec.*``) that may be annotations: not its header, data or exports."""
    folder, stem = rec_path.parent, rec_path.name
    found = []
    for p in sorted(folder.glob(f"{stem}.*"))[:64]:
        ext = p.name[len(stem) + 1:]
        if p.is_file() and ext and "." not in ext and ext.lower() not in _NOT_ANNOTATORS and p.name not in data_files:
            found.append(p)
    return found


def read_events(rec_path: Path, data_files: set[str], fs: float, meta: dict[str, Any]) -> None:
    """Non-beat annotations of every annotation file beside ``rec_path`` into ``meta['events']``
    (``{"time_s", "label", "annotator"}``; time in s at the record's rate ``fs`` in Hz)."""
    import wfdb

    events: list[dict[str, Any]] = []
    n_total = 0
    for p in annotation_files(rec_path, data_files):
        ext = p.name[len(rec_path.name) + 1:]
        if p.stat().st_size > limits.MAX_ANNOTATION_BYTES:
            meta["notes"].append(f"annotation file {p.name} skipped: larger than "
                                 f"{limits.MAX_ANNOTATION_BYTES / 2**20:.0f} MiB (m2ae.io.limits.MAX_ANNOTATION_BYTES)")
            continue
        try:
            ann = wfdb.rdann(str(rec_path), ext)
        except Exception:  # any sibling may be tried; only a known annotator's failure is worth saying
            if ext.lower() in KNOWN_ANNOTATORS:
                meta["notes"].append(f"annotation file {p.name} could not be read and was ignored")
            continue
        aux = list(ann.aux_note or [])
        for k, (sample, symbol) in enumerate(zip(ann.sample, ann.symbol)):
            if symbol in _NOT_EVENTS:
                continue
            note = (aux[k] if k < len(aux) else "").replace("\x00", "").strip()
            what = _DESCRIPTIONS.get(symbol, f"annotation {symbol!r}")
            label = f"{what}: {note}" if note else what
            n_total += 1
            if len(events) < limits.MAX_EVENTS:
                events.append({"time_s": float(sample) / fs, "label": label[:_LABEL_CHARS], "annotator": ext})
    if n_total > len(events):
        meta["notes"].append(f"{n_total - len(events)} annotations beyond the first {limits.MAX_EVENTS} left out "
                             f"(m2ae.io.limits.MAX_EVENTS)")
    if events:
        meta["events"] = sorted(events, key=lambda e: e["time_s"])
