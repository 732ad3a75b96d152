"""Session state and caches.

- The model and the index load once per server process (``st.cache_resource``) and are shared by
  every session; a missing checkpoint or index is reported, never raised, so pages still render.
- Per-record work (reading, preprocessing, fingerprints, reconstructions, predictions, attributions,
  neighbours) is kept in one server-wide ``memory.RecordStore`` keyed on the record's content hash:
  one copy per record shared by the sessions looking at it, bounded in bytes, freed when no session
  holds it (the session moved on, removed its upload, or ended). An upload over its budget
  (``memory.MAX_UPLOAD_MB`` raw, ``memory.MAX_RECORD_MB`` decoded) is refused with a clear error.
- Each session keeps its current record (uploads as bytes in memory, never on disk), the window
  index every page shares, and the page settings in ``st.session_state``. A refused record clears
  the session's record (pages then say there is none), and the error says what to try instead.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import m2ae
from m2ae.contract import INPUT_MODE_NAMES
from m2ae.io import uploads
from m2ae.record import Record, Windows

from . import memory
from .guard import short_message, with_way_forward
from .samples import SampleEntry, load_manifest

ROOT = Path(__file__).resolve().parents[2]


# Optional overrides (read at each use), e.g. to open the app on a researcher's own checkpoint/index:
# M2AE_MODEL (checkpoint .pt), M2AE_INDEX (index folder), M2AE_SAMPLE_DIR (folder with manifest.json).
def sample_dir() -> Path:
    return Path(os.environ.get("M2AE_SAMPLE_DIR") or ROOT / "sample_data")


def model_path() -> str | None:
    return os.environ.get("M2AE_MODEL") or None


def index_path() -> str | None:
    return os.environ.get("M2AE_INDEX") or None

RECORD_KEY = "record"      # CurrentRecord of this session
WINDOW_KEY = "window"      # window index shared by all pages
RESET_WINDOW_KEY = "_reset_window"
NOT_CLINICAL = "Demo model — not for clinical use"


@dataclass
class CurrentRecord:
    """What this session is looking at and how to read it again (cache key = ``key``)."""

    key: str
    name: str
    kind: str                                  # "sample" or "upload"
    path: str | None = None                    # sample file on the server
    files: dict[str, bytes] | None = None      # uploaded bytes, kept in memory only
    fs: float | None = None
    ecg: str | None = None
    ppg: str | None = None
    description: str = ""
    info: dict = field(default_factory=dict)


# --- model and index: once per server ----------------------------------------------------------

@st.cache_resource(show_spinner="Loading the model…")
def _load_model(path: str | None):
    model = m2ae.load_model(path)
    # One line per load in the server log: the benchmark counts them (one per server is the goal).
    print(f"m2ae app: model loaded (version {model_version(model)}, {model.device})", file=sys.stderr, flush=True)
    return model


@st.cache_resource(show_spinner="Opening the fingerprint index…")
def _open_index(path: str | None, version: str | None):
    # The index must come from the loaded model (its fingerprints live in the same space).
    return m2ae.open_index(path, model=version)


def get_model() -> tuple[Any | None, str | None]:
    """(model, None) or (None, why it is unavailable). Failures are not cached: a later run retries."""
    try:
        return _load_model(model_path()), None
    except Exception as e:  # missing checkpoint, missing module while the project is being built
        return None, short_message(e)


def get_index() -> tuple[Any | None, str | None]:
    model, _ = get_model()
    try:
        return _open_index(index_path(), None if model is None else model_version(model)), None
    except Exception as e:
        return None, short_message(e)


def model_version(model) -> str:
    v = getattr(model, "version", None)
    if callable(v):
        v = v()
    return str(v) if v is not None else str(id(model))


# --- records -----------------------------------------------------------------------------------

STORE = memory.RecordStore()


def _read_and_preprocess(src: CurrentRecord) -> tuple[Record, Windows]:
    with st.spinner("Reading and preprocessing the record…"):
        if src.kind == "sample":
            rec = m2ae.load_record(src.path, fs=src.fs, ecg=src.ecg, ppg=src.ppg)
        else:
            rec = uploads.read_upload(src.files or {}, fs=src.fs, ecg=src.ecg, ppg=src.ppg)
        # The decoded budget is checked before the windows are cut (they cost about as much again).
        decoded = memory.size_of(rec)
        if decoded > STORE.record_bytes // 2:
            raise m2ae.InputError(
                f"{src.name}: {rec.duration_s / 3600:.1f} h decoded is {memory.mb_text(decoded)}; one record may "
                f"use at most {memory.mb_text(STORE.record_bytes)} with its windows on this server — "
                "upload a shorter excerpt")
        win = m2ae.preprocess(rec)
    # A dead channel that preprocessing dropped (flat, no pulse) is left out of the record too, so
    # every page offers only the modalities the windows carry; the Record page says why.
    dead = {m: None for m in (win.meta.get("dropped") or {}) if getattr(rec, m, None) is not None}
    return (replace(rec, **dead) if dead else rec), win


def analyse(src: CurrentRecord) -> tuple[Record, Windows]:
    """Read and preprocess a record (one shared copy per content hash, held by this session).

    Raises InputError for bad files and for records over the memory budget.
    """
    memory.start_pruner(STORE)
    return STORE.get(src.key, memory.session_id(), lambda: _read_and_preprocess(src), kind=src.kind, name=src.name)


def samples() -> list[SampleEntry]:
    try:
        return load_manifest(sample_dir())
    except m2ae.InputError:
        return []


def sample_source(entry: SampleEntry) -> CurrentRecord:
    st_ = entry.path.stat()
    key = uploads.content_key("sample", str(entry.path), st_.st_mtime_ns, st_.st_size)
    return CurrentRecord(key=key, name=entry.name, kind="sample", path=str(entry.path),
                         description=entry.description, info=entry.info)


def upload_source(files: dict[str, bytes], fs=None, ecg=None, ppg=None) -> CurrentRecord:
    """The upload ``{file name: bytes}`` as this session's candidate record (``set_record`` reads it)."""
    key = uploads.content_key("upload", files, fs, ecg, ppg)
    main = sorted(files, key=lambda n: (not n.lower().endswith(".hea"), n))[0] if files else "upload"
    return CurrentRecord(key=key, name=main, kind="upload", files=dict(files), fs=fs, ecg=ecg, ppg=ppg,
                         description="uploaded (kept in memory only)")


def set_record(src: CurrentRecord) -> tuple[Record, Windows]:
    """Read ``src`` and make it the session's record (window 0).

    When it is refused, the session has no record any more (no page goes on showing the previous
    one) and the InputError carries the reader's message plus what to try instead, when there is a
    way forward.
    """
    try:
        raw = sum(len(b) for b in (src.files or {}).values())
        if raw > memory.MAX_UPLOAD_MB * memory.MB:
            raise m2ae.InputError(f"{src.name}: {raw / memory.MB:.0f} MB uploaded; one record may be at most "
                                  f"{memory.MAX_UPLOAD_MB} MB — upload a shorter excerpt")
        rec, win = analyse(src)
        if len(win) == 0:
            raise m2ae.InputError(f"{src.name}: no complete 10-s window (the record is {rec.duration_s:.1f} s long)")
    except m2ae.InputError as e:
        clear_record()
        channels = uploads.list_channels(src.files) if src.kind == "upload" and src.files else []
        raise m2ae.InputError(with_way_forward(short_message(e, limit=1000), channels, src.kind == "upload")) from None
    st.session_state[RECORD_KEY] = src
    # The window selector lives in the sidebar, drawn before the page: reset it on the next run.
    st.session_state[RESET_WINDOW_KEY] = True
    return rec, win


def clear_record() -> None:
    """The session has no record any more; its share of server memory is released."""
    st.session_state[RECORD_KEY] = None
    STORE.release(memory.session_id())


def forget_upload() -> None:
    """The user removed the upload: drop it (its bytes and decoded record) if it is the current record."""
    src = st.session_state.get(RECORD_KEY)
    if src is not None and src.kind == "upload":
        clear_record()


def current() -> tuple[CurrentRecord, Record, Windows] | None:
    """The session's record, loading the first sample on the session's first visit; None when there is
    none (never chosen, refused, or the upload was removed)."""
    if RECORD_KEY not in st.session_state:
        src = None
        for entry in samples():
            try:
                set_record(sample_source(entry))
                src = st.session_state[RECORD_KEY]
                break
            except m2ae.InputError:
                continue
    else:
        src = st.session_state[RECORD_KEY]
    if src is None:
        return None
    rec, win = analyse(src)
    return src, rec, win


def window_index(win: Windows) -> int:
    if st.session_state.pop(RESET_WINDOW_KEY, False):
        return 0
    i = int(st.session_state.get(WINDOW_KEY, 0) or 0)
    return int(np.clip(i, 0, max(len(win) - 1, 0)))


# --- model outputs per record (cached by content hash + settings) ---------------------------------

def _inputs(win: Windows, use: str = "both", window: int | None = None):
    sl = slice(None) if window is None else slice(window, window + 1)
    ecg = win.ecg[sl] if (win.ecg is not None and use in ("both", "ecg")) else None
    ppg = win.ppg[sl] if (win.ppg is not None and use in ("both", "ppg")) else None
    if ecg is None and ppg is None:
        raise m2ae.InputError(f"this record has no {use.upper()} to use")
    return ecg, ppg


@memory.per_record(STORE, "Computing fingerprints…")
def fingerprints(key: str, version: str, use: str, _model, _win: Windows) -> np.ndarray:
    ecg, ppg = _inputs(_win, use)
    return np.asarray(_model.fingerprint(ecg=ecg, ppg=ppg), dtype=np.float32)


@memory.per_record(STORE, "Running the heads…")
def predictions(key: str, version: str, use: str, _model, _win: Windows) -> dict:
    ecg, ppg = _inputs(_win, use)
    return _model.predict(ecg=ecg, ppg=ppg)


@memory.per_record(STORE, "Reconstructing…")
def reconstruction(key: str, version: str, window: int, mask_ratio: float, mode: str, seed: int,
                   _model, _win: Windows):
    ecg, ppg = _inputs(_win, "both", window)
    return _model.reconstruct(ecg=ecg, ppg=ppg, mask_ratio=mask_ratio, mode=mode, seed=seed)


@memory.per_record(STORE, "Computing attributions (Captum)…")
def explanation(key: str, version: str, window: int, head: str, target, method: str, use: str,
                _model, _win: Windows):
    ecg, ppg = _inputs(_win, use, window)
    return m2ae.explain(_model, head, ecg=ecg, ppg=ppg, target=target, method=method)


# Page settings kept across page visits (widget keys; buttons and charts must not be listed).
SETTINGS = frozenset({"recon_pattern", "recon_ratio", "recon_seed", "map_color", "map_values", "map_waveforms",
                      "map_search", "cohort_where", "cohort_name",
                      "sim_k", "sim_use", "sim_exclude", "sim_quality", "sim_require", "sim_show",
                      "pred_use", "pred_head", "pred_method"})
SETTING_PREFIXES = ("pred_class_",)


def persist_settings() -> None:
    """Keep page settings while the user visits other pages (called by the entry script every run).

    Streamlit forgets a widget's value at the end of a run that did not draw it; re-assigning the
    key through the Session State API in every run keeps it.
    """
    for k in list(st.session_state.keys()):
        if isinstance(k, str) and (k in SETTINGS or k.startswith(SETTING_PREFIXES)):
            st.session_state[k] = st.session_state[k]


def keep(**defaults) -> None:
    """Give page settings their first value (``persist_settings`` keeps them afterwards)."""
    for k, v in defaults.items():
        st.session_state[k] = st.session_state.get(k, v)


def require_record():
    """(src, rec, win, window index) for the page, or stop the page with a hint."""
    cur = current()
    if cur is None:
        st.info("No record yet: pick a sample or upload one on the Record page.")
        st.stop()
    src, rec, win = cur
    return src, rec, win, window_index(win)


def require_model():
    """The shared model, or a warning and None (pages still render what they can without it)."""
    model, why = get_model()
    if model is None:
        st.warning(f"The model is not available ({why}). Pages that need it show what they can.",
                   icon=":material/warning:")
    return model


def require_index():
    idx, why = get_index()
    if idx is None:
        st.warning(f"The fingerprint index is not available ({why}). Build one with `m2ae index build`.",
                   icon=":material/warning:")
    return idx


def index_id(idx) -> str:
    return f"{getattr(idx, 'path', None)}:{getattr(idx, 'count', 0)}:{getattr(idx, 'model_version', '')}"


# --- the record in the index: map position, familiarity, neighbours (m2ae.index.query) ------------


def input_choices(rec: Record) -> dict[str, str]:
    """{label: input mode} of the model inputs ``rec`` offers (ECG + PPG when it has both, each one alone),
    in the order the pages list them."""
    return {name: mode for mode, name in INPUT_MODE_NAMES.items()
            if (mode == "both" and len(rec.modalities) == 2) or mode in rec.modalities}


def record_subject(src: CurrentRecord, rec: Record) -> str | None:
    subject = rec.meta.get("subject_id") or src.info.get("subject_id")
    return None if subject is None else str(subject)


@memory.per_record(STORE, "Placing the record and checking how familiar it is…")
def _record_query(key: str, version: str, use: str, index_id: str, subject: str | None, _model, _idx,
                  _win: Windows):
    from m2ae.index.query import query_windows

    fp = fingerprints(key, version, use, _model, _win)
    return query_windows(_idx, _model, _win, use=use, fingerprints=fp, k=None, subject=subject)


def record_query(src: CurrentRecord, rec: Record, win: Windows, use: str):
    """The record's map positions and familiarity for input mode ``use`` (``m2ae.index.RecordQuery``;
    None when the model or index is unavailable). The record's own subject is left out of the
    familiarity search, as the reference's subjects are not in the index."""
    model, _ = get_model()
    idx, _ = get_index()
    if model is None or idx is None:
        return None
    return _record_query(src.key, model_version(model), use, index_id(idx), record_subject(src, rec), model, idx, win)


def record_familiarity(src: CurrentRecord, rec: Record, win: Windows, use: str) -> dict | None:
    """The record's familiarity for input mode ``use`` (None when the model or index is unavailable)."""
    query = record_query(src, rec, win, use)
    return None if query is None else query.familiarity


def neighbours(model, idx, src: CurrentRecord, rec: Record, win: Windows, i: int, use: str, k: int,
               exclude_own: bool, filters: dict | None):
    """The k indexed windows most similar to window ``i`` (a hit table); ``exclude_own`` leaves out
    this record's subject and record."""
    from m2ae.index.query import query_windows

    subject = record_subject(src, rec)
    fp = fingerprints(src.key, model_version(model), use, model, win)
    query = query_windows(idx, model, win, use=use, fingerprints=fp, k=k, window=i,
                          exclude_subject=subject if exclude_own else None,
                          exclude_record=(rec.meta.get("record_id") or None) if exclude_own else None,
                          filters=filters, familiarity=False, place=False)
    return query.neighbours


def warn_if_unfamiliar(src: CurrentRecord, rec: Record, win: Windows, i: int, use: str) -> dict | None:
    """A prominent warning when window ``i`` or the whole record is unlike the index's windows."""
    from m2ae.index.familiarity import warning_text

    fam = record_familiarity(src, rec, win, use)
    text = None if fam is None else warning_text(fam, i)
    if text:
        st.warning(f"**{text}**", icon=":material/report:")
    return fam
