"""Download the PhysioNet/CinC Challenge 2015 training set into the layout ``iter_corpus`` reads.

``fetch_cinc2015(out)`` reads ``training/RECORDS`` of the PhysioNet database ``challenge-2015/1.0.0``,
downloads each record's WFDB header and the signal files the header names (``.mat``, as PhysioNet
serves them; kept as downloaded, RESP/ABP channels included), and writes::

    out/labels.csv        record, alarm_type (VT | other), true_alarm (0 | 1), original_name,
                          channels, has_ppg, seconds, challenge_alarm
    out/records/RECORDS   the database's record list (and ALARMS, when the server has it)
    out/records/<name>.hea + its signal files (e.g. a103l.hea + a103l.mat)

the same columns as the project's ``../shared/data/cinc2015`` copy (plus ``challenge_alarm``, the
Challenge's own alarm name: Asystole, Bradycardia, Tachycardia, Ventricular_Tachycardia,
Ventricular_Flutter_Fib), so ``m2ae.io.iter_corpus(out)`` reads it with its labels. The labels come
from each header's comment lines (``#Asystole`` / ``#False alarm``), else from ``ALARMS``
(``a103l,Asystole,0``). Records keep the Challenge names (``a103l``), which lie outside the fixed
r001–r550 split (``cinc2015_split``), so ``iter_corpus`` gives them no ``split``. The 750 records
are the project copy's 550 under their Challenge names plus the 200 the project holds out (and
a103l is the copy's r152, forced to test): a fetched corpus is not split the project's way, so
nothing the project evaluates on its test side may be trained, chosen or thresholded on it.

Resumable: every file is written as ``<file>.part`` and renamed when complete, so a file that
exists under its own name is complete and is not fetched again; an interrupted run starts again at
the files it had not finished (a ``.part`` is fetched anew, not appended to). The HTTP is plain
``urllib`` against a configurable base URL (PhysioNet's by default; the tests serve the same layout
from a local ``http.server``); ``wfdb`` only parses the headers. Network failures raise
``InputError`` (``could not reach <url>: <reason>``).
"""
from __future__ import annotations

import csv
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

PHYSIONET_FILES_URL = "https://physionet.org/files/"
CINC2015_DATABASE = "challenge-2015/1.0.0"
CINC2015_SUBDIR = "training"
VT_ALARM = "Ventricular_Tachycardia"  # the one alarm type the corpus tells apart (alarm_type "VT")
LABEL_COLUMNS = ("record", "alarm_type", "true_alarm", "original_name", "channels", "has_ppg", "seconds",
                 "challenge_alarm")
PPG_NAMES = ("PLETH", "PPG")
CHUNK_BYTES = 1 << 16
# A name from the server becomes a local file name: no separators, no "..", no hidden files.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
_VERDICT = re.compile(r"^(true|false)\s+alarm$", re.I)


@dataclass(frozen=True)
class FetchSummary:
    """What one ``fetch_cinc2015`` run did.

    ``records``: rows written to labels.csv; ``downloaded_files`` / ``downloaded_bytes``: files (and
    bytes) fetched this run; ``skipped_files``: files already complete on disk; ``problems``: one line
    per record left out of labels.csv, with the reason."""

    out: Path
    labels_csv: Path
    records: int
    downloaded_files: int
    skipped_files: int
    downloaded_bytes: int
    problems: list[str] = field(default_factory=list)


def _url(base_url: str, *parts: str) -> str:
    return "/".join([base_url.rstrip("/"), *(p.strip("/") for p in parts)])


def _open(url: str, timeout_s: float) -> Any:
    """The HTTP response for ``url``; InputError with one line for every way the request can fail."""
    req = urllib.request.Request(url, headers={"User-Agent": "m2ae data fetch (python urllib)"})
    try:
        return urllib.request.urlopen(req, timeout=timeout_s)
    except urllib.error.HTTPError as e:  # before URLError: HTTPError is one, but the server did answer
        raise InputError(f"{url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise InputError(f"could not reach {url}: {e.reason}") from e
    except (OSError, ValueError) as e:  # timeouts, resets, a malformed --base-url
        raise InputError(f"could not reach {url}: {e}") from e


def download(url: str, dest: Path, timeout_s: float = 60.0) -> int | None:
    """Fetch ``url`` into ``dest`` unless ``dest`` already exists (complete: see the module docstring).

    Returns the number of bytes written, or None when the file was already there. The body goes to
    ``dest.part`` first and is renamed only once the server's Content-Length (when sent) is met."""
    if dest.is_file():
        return None
    part = dest.with_name(dest.name + ".part")
    n = 0
    with _open(url, timeout_s) as resp:
        expected = resp.headers.get("Content-Length")
        with open(part, "wb") as f:
            while True:
                try:
                    chunk = resp.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as e:  # reset or timeout mid-body
                    raise InputError(f"could not reach {url}: download broke off after {n} bytes ({e}); "
                                     f"run again to resume") from e
                if not chunk:
                    break
                f.write(chunk)
                n += len(chunk)
    if expected is not None and expected.isdigit() and int(expected) != n:
        raise InputError(f"could not reach {url}: got {n} of {expected} bytes; run again to resume")
    os.replace(part, dest)
    return n


def _safe(name: str, where: str) -> str:
    if not _SAFE_NAME.match(name) or ".." in name:
        raise InputError(f"{where}: refusing the file name {name!r} (not a plain file name)")
    return name


def _record_names(text: str, where: str) -> list[str]:
    """Record names of a PhysioNet RECORDS file (one per line; blank lines ignored)."""
    names = [_safe(line.strip(), where) for line in text.splitlines() if line.strip()]
    if not names:
        raise InputError(f"{where}: lists no records")
    return names


def _alarm_table(text: str) -> dict[str, tuple[str, bool]]:
    """ALARMS rows ``a103l,Asystole,0`` -> {record: (Challenge alarm name, true alarm)}; bad rows skipped."""
    out: dict[str, tuple[str, bool]] = {}
    for row in csv.reader(text.splitlines()):
        if len(row) >= 3 and row[2].strip() in ("0", "1"):
            out[row[0].strip()] = (row[1].strip(), row[2].strip() == "1")
    return out


def alarm_from_comments(comments: list[str]) -> tuple[str, bool] | None:
    """(Challenge alarm name, true alarm) from a Challenge header's comments, e.g. ``["Asystole",
    "False alarm"]`` -> ``("Asystole", False)``; None when the comments do not say both."""
    verdict: bool | None = None
    alarm = ""
    for c in (c.strip() for c in comments):
        m = _VERDICT.match(c)
        if m:
            verdict = m.group(1).lower() == "true"
        elif c and not alarm and " " not in c:  # the alarm line is one word: Ventricular_Tachycardia
            alarm = c
    return (alarm, verdict) if alarm and verdict is not None else None


def _label_row(name: str, hea: Path, alarms: dict[str, tuple[str, bool]]) -> dict[str, str]:
    """One labels.csv row from a downloaded header (+ ALARMS); InputError when neither gives the alarm."""
    import wfdb

    try:
        h = wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as e:  # wfdb raises bare ValueError/IndexError/... for malformed headers
        raise InputError(f"{hea.name}: unreadable WFDB header ({e})") from e
    found = alarm_from_comments(list(h.comments or [])) or alarms.get(name)
    if found is None:
        raise InputError(f"{name}: neither the header comments nor ALARMS give the alarm type and verdict")
    alarm, true_alarm = found
    sig_names = [str(s) for s in (h.sig_name or [])]
    seconds = (h.sig_len or 0) / float(h.fs) if h.fs else 0.0
    return {"record": name, "alarm_type": "VT" if alarm == VT_ALARM else "other",
            "true_alarm": str(int(true_alarm)), "original_name": name, "channels": " ".join(sig_names),
            "has_ppg": str(int(any(s.upper() in PPG_NAMES for s in sig_names))), "seconds": f"{seconds:g}",
            "challenge_alarm": alarm}


def _signal_files(hea: Path) -> list[str]:
    """The signal file names a WFDB header points to (``a103l.mat``), each once, in order."""
    import wfdb

    try:
        h = wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as e:  # see _label_row
        raise InputError(f"{hea.name}: unreadable WFDB header ({e})") from e
    return [_safe(f, hea.name) for f in dict.fromkeys(h.file_name or [])]


def _fetch_record(name: str, base: str, folder: Path, timeout_s: float) -> list[int | None]:
    """Header first (it names the signal files), then the signal files; bytes per file, None if skipped."""
    hea = folder / f"{name}.hea"
    got = [download(f"{base}/{name}.hea", hea, timeout_s)]
    try:
        files = _signal_files(hea)
    except InputError:  # a bad header is this record's problem (reported with labels.csv), not the run's
        return got
    for fname in files:
        got.append(download(f"{base}/{fname}", folder / fname, timeout_s))
    return got


def _write_labels(path: Path, rows: list[dict[str, str]]) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(LABEL_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def fetch_cinc2015(out: str | Path, base_url: str = PHYSIONET_FILES_URL, limit: int | None = None,
                   workers: int = 4, timeout_s: float = 60.0, progress: bool = True) -> FetchSummary:
    """Download the Challenge 2015 training set (or its first ``limit`` records) into ``out``.

    out : folder to write (created); ``labels.csv`` + ``records/`` as in the module docstring.
    base_url : where PhysioNet's ``files/`` tree is served (``<base_url>/challenge-2015/1.0.0/training/``).
    limit : fetch only the first ``limit`` records of RECORDS (None: all 750).
    workers : parallel downloads (records at a time).
    timeout_s : per-request socket timeout in s.
    progress : show a progress bar (tqdm, on stderr).

    Raises InputError (one line) when the server cannot be reached or a file cannot be fetched;
    files completed before the failure stay, so running again resumes.
    """
    from tqdm import tqdm

    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    out = Path(out)
    folder = out / "records"
    folder.mkdir(parents=True, exist_ok=True)
    base = _url(base_url, CINC2015_DATABASE, CINC2015_SUBDIR)
    counts = {"downloaded": 0, "skipped": 0, "bytes": 0}

    def tally(results: list[int | None]) -> None:
        for r in results:
            counts["skipped" if r is None else "downloaded"] += 1
            counts["bytes"] += r or 0

    tally([download(f"{base}/RECORDS", folder / "RECORDS", timeout_s)])
    names = _record_names((folder / "RECORDS").read_text(errors="replace"), f"{base}/RECORDS")
    names = names[:limit] if limit is not None else names
    try:
        tally([download(f"{base}/ALARMS", folder / "ALARMS", timeout_s)])
    except InputError as e:
        if "HTTP 404" not in str(e):  # ALARMS is optional (the headers carry the labels); anything else is not
            raise
    alarms = _alarm_table((folder / "ALARMS").read_text(errors="replace")) if (folder / "ALARMS").is_file() else {}

    bar = tqdm(total=len(names), unit="record", desc="cinc2015", disable=not progress, file=sys.stderr)
    with bar, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_fetch_record, n, base, folder, timeout_s): n for n in names}
        try:
            for fut in as_completed(futures):
                tally(fut.result())  # re-raises the record's InputError (the URL that failed)
                bar.set_postfix_str(f"{counts['bytes'] / 1e6:.1f} MB new", refresh=False)
                bar.update(1)
        except BaseException:
            for fut in futures:  # a failure stops the run; what finished stays on disk for the next run
                fut.cancel()
            raise

    rows, problems = [], []
    for n in names:
        try:
            rows.append(_label_row(n, folder / f"{n}.hea", alarms))
        except InputError as e:
            problems.append(str(e))
    labels = out / "labels.csv"
    _write_labels(labels, rows)
    return FetchSummary(out=out, labels_csv=labels, records=len(rows), downloaded_files=counts["downloaded"],
                        skipped_files=counts["skipped"], downloaded_bytes=counts["bytes"], problems=problems)
