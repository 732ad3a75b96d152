"""What to embed: inputs (files, folders, Records, corpus readers, simulated subjects) as items, and
a record read back from an item with what a nearby ``manifest.json`` knows about it.

Each item has a stable key (a hash of the file's path and size, or of a Record's content) that names
its shard, so an interrupted embedding resumes where it stopped.

>>> items, streams = expand_sources(["sample_data/"])        # doctest: +SKIP
>>> load_item(items[0]).fs                                    # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Collection, Iterable, Iterator

import numpy as np

from ..errors import InputError
from ..record import Record

# Files a folder may hold that are records (WFDB records are opened through their .hea).
RECORD_SUFFIXES = (".hea", ".csv", ".tsv", ".npz", ".npy", ".edf", ".vital")
# Files that sit beside records in corpora and are not records themselves.
NOT_RECORDS = frozenset({"manifest", "labels", "subjects", "readme", "license", "records", "metadata", "index",
                         "clinical_data", "ptbxl_database", "scp_statements"})
# Manifest entry fields that describe the file, not the subject (the rest are labels).
NOT_LABELS = frozenset({"path", "subject_id", "record_id", "name", "seed", "description", "kind", "format",
                        "fs_hz", "duration_s", "modalities", "file_notes", "source", "licence", "command"})


@dataclass
class EmbedItem:
    """One record to embed. kind: "path" (a file), "record" (a ``Record``) or "simulated"
    (``payload`` = (SubjectParams, record seed, duration_s) for ``m2ae.simulate.simulate_record``)."""

    key: str
    kind: str
    payload: Any
    label: str


def find_record_files(folder: Path) -> list[Path]:
    """Record files under ``folder`` (recursively, sorted), one per record (WFDB via its .hea)."""
    from ..io.corpus import wfdb_segment_headers

    files = []
    segments = wfdb_segment_headers(folder.rglob("*.hea"))
    for p in sorted(folder.rglob("*")):
        if p in segments:
            continue
        if not p.is_file() or p.suffix.lower() not in RECORD_SUFFIXES or p.name.startswith("."):
            continue
        if p.stem.lower() in NOT_RECORDS:
            continue
        if any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        files.append(p)
    return files


def safe_name(name: str) -> str:
    """``name`` with every character other than letters, digits, ``-_.`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _path_key(p: Path) -> str:
    st = p.stat()
    h = hashlib.sha1(f"{p.resolve()}|{st.st_size}".encode()).hexdigest()[:16]
    return f"{safe_name(p.stem)[:40]}-{h}"


def record_item(rec: Record) -> EmbedItem:
    """An item for a ``Record`` held in memory, keyed by a hash of its identity and first samples."""
    h = hashlib.sha1()
    h.update(json.dumps({k: str(rec.meta.get(k)) for k in ("source", "record_id", "subject_id")}).encode())
    h.update(str(rec.fs).encode())
    for x in (rec.ecg, rec.ppg):
        if x is not None:
            h.update(np.ascontiguousarray(x[:5000], dtype=np.float64).tobytes())
            h.update(str(len(x)).encode())
    name = str(rec.meta.get("record_id") or rec.meta.get("subject_id") or "record")
    key = f"{safe_name(name)[:40]}-{h.hexdigest()[:16]}"
    return EmbedItem(key, "record", rec, str(rec.meta.get("record_id") or rec.meta.get("source") or "record"))


class CorpusStream:
    """The records of one corpus folder (``iter_corpus``, records under 10 s left out), with the
    ``report`` (``SkipReport``) of every record it skipped and why, filled as it is iterated."""

    def __init__(self, path: str | Path, layout: str | None = None, splits: Collection[str] | None = None):
        from ..io.corpus import SkipReport

        self.path, self.layout, self.splits = Path(path), layout, splits
        self.report = SkipReport()

    def __iter__(self) -> Iterator[Record]:
        from ..io import iter_corpus
        from ..io.corpus import SkipReport

        self.report = SkipReport()  # a second pass counts afresh
        return iter_corpus(self.path, self.layout, min_duration_s=10.0, split=self.splits, report=self.report)

    def __repr__(self) -> str:
        return f"CorpusStream({str(self.path)!r}, {self.layout!r})"


def run_skip_report(streams: Iterable[Any], skipped: Iterable[dict[str, str]]) -> dict[str, Any]:
    """Every record a run left out, counted per reason (``SkipReport.as_dict``): what the corpus streams
    skipped (``CorpusStream.report``) plus the embedder's own refusals (``{"input", "error"}`` entries)."""
    from ..io.corpus import SkipReport

    report = SkipReport()
    for stream in streams:
        report.merge(getattr(stream, "report", None))
    for s in skipped:
        report.add(str(s.get("error", "")), str(s.get("input") or s.get("label") or "?"))
    return report.as_dict()


def expand_sources(sources: Any, splits: Collection[str] | None = None) -> tuple[list[EmbedItem], list[Iterable]]:
    """Split inputs into a list of items (files, folders expanded, Records) and record streams.

    A str/Path is a file or a folder (searched recursively, see ``find_record_files``); a
    ``Record`` is embedded as is; any other iterable is a stream of Records (a corpus reader).
    Missing paths and empty folders raise InputError (one line). ``splits``: for corpus folders with a
    record split (cinc2015), only records on these sides, e.g. ``("train", "validation")``.
    """
    if isinstance(sources, (str, Path, Record)):
        sources = [sources]
    items: list[EmbedItem] = []
    streams: list[Iterable] = []
    for src in sources:
        if isinstance(src, EmbedItem):
            items.append(src)
        elif isinstance(src, Record):
            items.append(record_item(src))
        elif isinstance(src, (str, Path)):
            p = Path(src)
            if not p.exists():
                raise InputError(f"{p}: no such file or folder")
            if p.is_dir():
                from ..io import detect_layout

                layout = detect_layout(p)
                if layout not in (None, "folder"):  # a known corpus: its reader knows subjects and labels
                    streams.append(CorpusStream(p, layout, splits))
                    continue
                files = find_record_files(p)
                if not files:
                    from ..io.corpus import no_records_error

                    raise no_records_error(p, "folder" if layout is None else layout)
                items += [EmbedItem(_path_key(f), "path", str(f), str(f)) for f in files]
            else:
                items.append(EmbedItem(_path_key(p), "path", str(p), str(p)))
        elif hasattr(src, "__iter__"):
            streams.append(src)
        else:
            raise InputError(f"cannot embed {type(src).__name__!r}: give paths, Records or an iterable of Records")
    seen, unique = set(), []
    for it in items:  # the same file named twice (e.g. a folder and a file in it) is embedded once
        if it.key not in seen:
            seen.add(it.key)
            unique.append(it)
    return unique, streams


def simulated_items(n_subjects: int, seed: int = 0, duration_s: float = 60.0) -> list[EmbedItem]:
    """Items for ``n_subjects`` simulated subjects: the same subjects and record seeds as
    ``m2ae simulate --subjects N --seed S`` writes (rhythms cycle NSR, AF, SB, ST, PVC), rendered
    inside the workers, never on disk. Subject ids are ``sim000000``... for seed 0 (as the simulator
    names them) and ``sim-s<seed>-000000``... otherwise (``m2ae.simulate.record.cohort_subjects``)."""
    from ..simulate.record import cohort_subjects

    n_subjects = int(n_subjects)
    if n_subjects < 1:
        raise InputError(f"--simulate must be a positive number of subjects, got {n_subjects}")
    items = []
    for i, (subject, record_seed) in enumerate(cohort_subjects(n_subjects, seed)):
        items.append(EmbedItem(f"sim-{seed}-{i:06d}-{duration_s:g}", "simulated",
                               (subject, record_seed, float(duration_s)), f"simulated {subject.subject_id}"))
    return items


def manifest_meta_for(path: str | Path, levels: int = 3) -> dict[str, Any]:
    """Subject id, record id and labels a ``manifest.json`` near ``path`` lists for it.

    Sample folders and simulated cohorts describe their files in a ``manifest.json`` (``records``:
    entries with ``path`` relative to the manifest, ``subject_id``, ``record_id``/``name`` and
    ``labels`` as a dict or as flat columns). Formats such as CSV cannot carry labels themselves, so
    this is where they come from. Returns {} when no manifest within ``levels`` folders lists it.
    """
    p = Path(path).resolve()
    folder = p.parent
    for _ in range(levels):
        mf = folder / "manifest.json"
        if mf.is_file():
            entry = _manifest_entry(mf, folder, p)
            if entry is not None:
                return _entry_meta(entry)
        if folder.parent == folder:
            break
        folder = folder.parent
    return {}


def _manifest_entry(mf: Path, folder: Path, target: Path) -> dict[str, Any] | None:
    """The entry of ``mf`` whose ``path`` (relative to ``folder``) is ``target``, None when none is."""
    try:
        doc = json.loads(mf.read_text())
    except (OSError, ValueError):
        doc = None
    entries = doc.get("records") if isinstance(doc, dict) else doc
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict) or not e.get("path"):
            continue
        try:
            if (folder / e["path"]).resolve() == target:
                return e
        except OSError:
            continue
    return None


def _entry_meta(e: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if e.get("subject_id"):
        out["subject_id"] = str(e["subject_id"])
    rid = e.get("record_id") or e.get("name")
    if rid:
        out["record_id"] = str(rid)
    labels = e.get("labels")
    if not isinstance(labels, dict):
        labels = {k: v for k, v in e.items() if k not in NOT_LABELS and not isinstance(v, (dict, list))}
    if labels:
        out["labels"] = labels
    return out


def load_path(path: str | Path, read_kwargs: dict | None = None) -> Record:
    """``load_record`` plus what a nearby ``manifest.json`` knows about the file (subject, labels);
    what the file itself says wins."""
    from ..io import load_record

    rec = load_record(path, **(read_kwargs or {}))
    extra = manifest_meta_for(path)
    for key in ("subject_id", "record_id"):
        if key in extra and not rec.meta.get(key):
            rec.meta[key] = extra[key]
    if extra.get("labels"):
        rec.meta["labels"] = {**extra["labels"], **(rec.meta.get("labels") or {})}
    return rec


def load_item(item: EmbedItem, read_kwargs: dict | None = None) -> Record:
    """The Record an item stands for (read from its file, simulated, or the Record itself)."""
    if item.kind == "record":
        return item.payload
    if item.kind == "path":
        return load_path(item.payload, read_kwargs)
    if item.kind == "simulated":
        from ..simulate import simulate_record

        subject, record_seed, duration_s = item.payload
        return simulate_record(subject, duration_s=duration_s, seed=record_seed)
    raise ValueError(f"unknown item kind {item.kind!r}")
