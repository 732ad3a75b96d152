"""The account of records a corpus run left out: counts per reason, a bounded list of names per reason.

A long pass over a corpus (``m2ae embed``, ``m2ae index build``, ``m2ae train --data``) must not stop at
one broken record, and must not hide what it left out either. Every record a run skips goes into one
``SkipReport`` with its one-line message; the report groups them by *reason* (the message without the
file name and without its details in brackets, e.g. ``no ECG or PPG column``), counts each, and keeps
at most ``max_names`` record names per reason, so a corpus of a million bad segments still gives a
report of a few lines.

>>> r = SkipReport()
>>> r.add("a.csv: no ECG or PPG column (columns: time, RESP)")
>>> r.add("p1.mat#2: unexpected RecursionError: maximum recursion depth exceeded")
>>> r.as_dict()["reasons"]["no ECG or PPG column"]["records"]
['a.csv']
"""
from __future__ import annotations

import re
from typing import Any

# A leading "where: " is a file or record name when it is a path (``/data/x.csv``) or one word that ends
# like a file name or holds a digit (``x.csv``, ``p1.mat#2``, ``r001``); plain words ("could not read
# as CSV: ...") and sentences ("no records found in /x (looked for: ...)") are not.
_NAME_LIKE = re.compile(r"(\.\w{1,8}(#\d+)?|#\d+)$|\d")


def _is_location(head: str) -> bool:
    if not head or " (" in head or head != head.strip():
        return False
    if " " not in head:
        return bool("/" in head or "\\" in head or _NAME_LIKE.search(head))
    return head.startswith(("/", "~", "./", "../")) and not head.endswith(")")


MAX_REASON_CHARS = 120


def split_message(message: str, record: str | None = None) -> tuple[str, str]:
    """``(record name, reason)`` of a skip message ``"<where>: <what> (<details>)"``.

    The reason drops the name, bracketed details and anything after a further ``": "`` or ``"; "``,
    so records that failed the same way share one reason. ``record`` names the record when known.
    """
    text = (str(message).strip().splitlines() or ["unknown reason"])[0]
    where = record
    if record and text.startswith(f"{record}: "):
        text = text[len(record) + 2:]
    else:
        head, sep, rest = text.partition(": ")
        if sep and rest and _is_location(head):
            where = where or head
            text = rest
    reason = text
    if reason.startswith("unexpected "):  # "unexpected RecursionError: ..." -> the exception type
        reason = reason.split(":", 1)[0]
    for cut in (" (", "; ", ": "):
        head = reason.split(cut, 1)[0].strip()
        if head:
            reason = head
    return (where or "?"), (reason[:MAX_REASON_CHARS] or "unknown reason")


class SkipReport:
    """Records left out of a corpus run, grouped by reason (see module docstring)."""

    def __init__(self, max_names: int = 10):
        self.max_names = int(max_names)
        self.total = 0
        self._reasons: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return self.total

    def add(self, message: str, record: str | None = None) -> None:
        """Count one skipped record under the reason of its one-line ``message``."""
        where, reason = split_message(message, record)
        entry = self._reasons.setdefault(reason, {"count": 0, "records": [], "example": " ".join(
            str(message).split())[:300]})
        entry["count"] += 1
        self.total += 1
        if len(entry["records"]) < self.max_names:
            entry["records"].append(where)

    def add_exception(self, record: str, exc: BaseException) -> None:
        """Count a record whose reading raised ``exc``: InputError by its message, others by their type."""
        from ...errors import InputError

        if isinstance(exc, InputError):
            self.add(str(exc), record)
        else:
            self.add(f"{record}: {unexpected(exc)}", record)

    def merge(self, other: SkipReport | dict[str, Any] | None) -> None:
        """Add another report (or its ``as_dict``) to this one; names stay bounded."""
        if other is None:
            return
        d = other.as_dict() if isinstance(other, SkipReport) else other
        for reason, v in (d.get("reasons") or {}).items():
            entry = self._reasons.setdefault(reason, {"count": 0, "records": [], "example": v.get("example", "")})
            entry["count"] += int(v.get("count", 0))
            self.total += int(v.get("count", 0))
            room = self.max_names - len(entry["records"])
            entry["records"].extend(list(v.get("records") or [])[:max(room, 0)])

    def as_dict(self) -> dict[str, Any]:
        """``{"skipped": N, "reasons": {reason: {"count": n, "records": [<= max_names names], "example": the
        first full message}}}``, most common reason first (JSON-ready; what manifests and model cards store)."""
        ordered = sorted(self._reasons.items(), key=lambda kv: (-kv[1]["count"], kv[0]))
        return {"skipped": self.total,
                "reasons": {k: {"count": v["count"], "records": list(v["records"]), "example": v["example"]}
                            for k, v in ordered}}

    def lines(self, max_reasons: int = 10) -> list[str]:
        """Human lines: ``skipped N record(s)`` then one ``  n x reason: names`` line per reason."""
        return report_lines(self.as_dict(), max_reasons)


def report_lines(report: dict[str, Any] | None, max_reasons: int = 10) -> list[str]:
    """The lines of a report dict (``SkipReport.as_dict``, e.g. read back from a manifest); [] when none."""
    if not report or not report.get("skipped"):
        return []
    out = [f"skipped {report['skipped']} record(s):"]
    reasons = list((report.get("reasons") or {}).items())
    for reason, v in reasons[:max_reasons]:
        names = list(v.get("records") or [])
        more = v["count"] - len(names)
        shown = ", ".join(names) + (f", … {more} more" if more > 0 else "")
        out.append(f"  {v['count']} x {reason}: {shown}")
    if len(reasons) > max_reasons:
        out.append(f"  … {len(reasons) - max_reasons} more reason(s)")
    return out


def unexpected(exc: BaseException) -> str:
    """One line for an exception no reader expected: ``unexpected <Type>: <message>`` (message cut)."""
    msg = " ".join(str(exc).split())[:200]
    return f"unexpected {type(exc).__name__}" + (f": {msg}" if msg else "")


def must_stop(exc: BaseException) -> bool:
    """True for what must end a run instead of skipping one record: Ctrl-C, exit, out of memory.

    ``MemoryError`` is an ``Exception`` subclass, so a bare ``except Exception`` would swallow it."""
    return isinstance(exc, (KeyboardInterrupt, SystemExit, MemoryError, GeneratorExit))
