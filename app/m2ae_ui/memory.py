"""Server memory for records: one shared copy per record, bounded in bytes, freed when no session uses it.

Streamlit's ``st.cache_data`` bounds entries, not bytes, and keeps them after every session has gone:
sixteen long uploads held whole (Record + Windows) kept a server at 4 GB after its users left. Here:

- ``RecordStore.get`` holds one decoded record (any object, e.g. ``(Record, Windows)``) per content key,
  shared by the sessions that look at it. A record costs at most ``MAX_RECORD_MB`` (decoded samples
  and windows); all records together, with what was computed from them, at most ``STORE_MB``. Above either
  the record is refused with an ``InputError`` that states the budget.
- ``RecordStore.memo`` keeps what pages compute from a record (fingerprints, predictions,
  reconstructions …) inside that record's entry, LRU within ``DERIVED_MB`` per record.
- Each session holds one record. When it moves to another record, clears it, or its browser session
  ends (``prune``), the record is released: an upload no session holds is dropped at once; a sample
  stays warm for the next visitor while the idle ones fit in ``IDLE_MB``.
- After dropping, the C heap is trimmed (glibc ``malloc_trim``) so freed pages go back to the system.
- A session whose browser stayed away for ``REAP_AFTER_S`` is closed (Streamlit itself never frees
  it: see ``EndedSessions``), with its session state and uploaded files.

Sizes are bytes of numpy arrays / tensors plus a shallow estimate of other objects. Nothing here
imports streamlit (state.py passes the session ids and says which sessions are still alive).
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import inspect
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from m2ae.errors import InputError

MB = 1 << 20
MAX_UPLOAD_MB = 200    # raw bytes of one upload (all its files): the same as server.maxUploadSize
MAX_RECORD_MB = 256    # one record decoded: its samples and windows
DERIVED_MB = 64        # per record: fingerprints, predictions, reconstructions, attributions (LRU)
STORE_MB = 1536        # every record held at once, for all sessions together
IDLE_MB = 64           # records no session holds (samples), kept warm for the next visitor


def mb_text(nbytes: float) -> str:
    """Bytes as a short MB figure for messages: "256 MB", "0.0625 MB"."""
    return f"{nbytes / MB:.3g} MB"


def size_of(obj: Any, _depth: int = 0) -> int:
    """Approximate bytes held by ``obj``: arrays and tensors exactly, containers and dataclasses
    recursively (8 levels), anything else by ``sys.getsizeof``."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) + 112
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):  # a torch tensor, without importing torch
        return int(obj.element_size() * obj.nelement()) + 112
    if _depth >= 8:
        return sys.getsizeof(obj)
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + sum(size_of(k, _depth + 1) + size_of(v, _depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sys.getsizeof(obj) + sum(size_of(x, _depth + 1) for x in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sys.getsizeof(obj) + sum(size_of(getattr(obj, f.name, None), _depth + 1)
                                        for f in dataclasses.fields(obj))
    if hasattr(obj, "memory_usage") and hasattr(obj, "columns"):  # a pandas DataFrame
        try:
            return int(obj.memory_usage(deep=True).sum())
        except Exception:  # an estimate only
            pass
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sys.getsizeof(obj) + size_of(vars(obj), _depth + 1)
    return sys.getsizeof(obj)


def trim_heap() -> None:
    """Give freed heap pages back to the system (glibc); a no-op elsewhere.

    Why: glibc raises its mmap threshold after a large array is freed, so the next large arrays come
    from the heap, and freeing them leaves the process's resident size where it was.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclasses.dataclass
class _Entry:
    value: Any
    nbytes: int
    kind: str                                   # "upload" or "sample"
    sessions: set[str] = dataclasses.field(default_factory=set)
    derived: OrderedDict = dataclasses.field(default_factory=OrderedDict)  # memo key -> (value, nbytes)
    derived_bytes: int = 0

    @property
    def total(self) -> int:
        return self.nbytes + self.derived_bytes


class RecordStore:
    """Decoded records shared by sessions, bounded in bytes (see the module docstring)."""

    def __init__(self, store_bytes: int = STORE_MB * MB, record_bytes: int = MAX_RECORD_MB * MB,
                 derived_bytes: int = DERIVED_MB * MB, idle_bytes: int = IDLE_MB * MB,
                 trim: Callable[[], None] = trim_heap) -> None:
        self.trim = trim                                          # called after a record is dropped
        self.store_bytes, self.record_bytes = store_bytes, record_bytes
        self.derived_limit, self.idle_bytes = derived_bytes, idle_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()   # least recently used first
        self._held: dict[str, str] = {}                           # session id -> key it holds
        self._lock = threading.RLock()
        self._key_locks: dict[str, threading.Lock] = {}

    # --- records -----------------------------------------------------------------------------

    def get(self, key: str, session: str, compute: Callable[[], Any], kind: str = "upload",
            name: str = "record") -> Any:
        """The record under ``key`` (computed once by ``compute`` when absent), now held by ``session``.

        Raises InputError (and holds nothing for the session) when the record is over its budget or
        the store is full of records that live sessions hold.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._hold(session, key)
                return entry.value
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # two sessions opening the same sample compute it once
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._hold(session, key)
                    return entry.value
            self.release(session)  # what the session held before is not needed while this is read
            try:
                value = compute()
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
            nbytes = size_of(value)
            with self._lock:
                if nbytes > self.record_bytes:
                    raise InputError(f"{name}: needs {mb_text(nbytes)} of memory once decoded; one record may "
                                     f"use at most {mb_text(self.record_bytes)} on this server — "
                                     "upload a shorter excerpt")
                self._make_room(nbytes)
                if self.used_bytes() + nbytes > self.store_bytes:
                    raise InputError(f"{name}: the server is holding as many records as its memory budget allows "
                                     f"({mb_text(self.store_bytes)} for {len(self._held)} sessions); "
                                     "try again in a few minutes or upload a shorter record")
                self._entries[key] = _Entry(value=value, nbytes=nbytes, kind=kind)
                self._hold(session, key)
                return value

    def release(self, session: str) -> None:
        """``session`` no longer holds its record (it moved on, cleared it, or ended)."""
        dropped = False
        with self._lock:
            key = self._held.pop(session, None)
            entry = self._entries.get(key) if key is not None else None
            if key is not None and entry is not None:
                entry.sessions.discard(session)
                if not entry.sessions:
                    if entry.kind == "upload":  # private to whoever uploaded it: never kept for others
                        del self._entries[key]
                        dropped = True
                    dropped = self._trim_idle() or dropped
        if dropped:
            self.trim()

    def prune(self, is_active: Callable[[str], bool]) -> int:
        """Release the records of sessions that ``is_active`` says have ended; returns how many."""
        with self._lock:
            gone = [s for s in self._held if not is_active(s)]
        for s in gone:
            self.release(s)
        return len(gone)

    # --- what pages compute from a record ---------------------------------------------------------

    def memo(self, key: str, what: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` cached in record ``key``'s entry under ``what`` (uncached when the record is
        not held, or the result alone is over the per-record budget for derived results)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and what in entry.derived:
                entry.derived.move_to_end(what)
                return entry.derived[what][0]
        value = compute()
        nbytes = size_of(value)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or nbytes > self.derived_limit or what in entry.derived:
                return value
            entry.derived[what] = (value, nbytes)
            entry.derived_bytes += nbytes
            while entry.derived_bytes > self.derived_limit and len(entry.derived) > 1:
                _, (_, n) = entry.derived.popitem(last=False)
                entry.derived_bytes -= n
        return value

    # --- bookkeeping -------------------------------------------------------------------------------

    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.total for e in self._entries.values())

    def stats(self) -> dict[str, int]:
        """{"records", "held", "sessions", "bytes"}: for the server log and the tests."""
        with self._lock:
            return {"records": len(self._entries), "held": sum(1 for e in self._entries.values() if e.sessions),
                    "sessions": len(self._held), "bytes": self.used_bytes()}

    def clear(self) -> None:
        """Forget every record (tests; a new checkpoint)."""
        with self._lock:
            self._entries.clear()
            self._held.clear()
        self.trim()

    def _hold(self, session: str, key: str) -> None:
        if self._held.get(session) != key:
            self.release(session)
            self._held[session] = key
        entry = self._entries[key]
        entry.sessions.add(session)
        self._entries.move_to_end(key)

    def _trim_idle(self) -> bool:
        idle = [(k, e) for k, e in self._entries.items() if not e.sessions]   # least recently used first
        total = sum(e.total for _, e in idle)
        dropped = False
        for k, e in idle:
            if total <= self.idle_bytes:
                break
            del self._entries[k]
            total -= e.total
            dropped = True
        return dropped

    def _make_room(self, nbytes: int) -> None:
        """Drop idle records (least recently used first) until ``nbytes`` more fit, if they can."""
        for k in [k for k, e in self._entries.items() if not e.sessions]:
            if self.used_bytes() + nbytes <= self.store_bytes:
                return
            del self._entries[k]


# --- Streamlit glue (imported lazily: the store itself runs without a server) ---------------------

PRUNE_EVERY_S = 15.0
# A browser whose connection drops (a network blip, a laptop lid) resumes its session, state and all,
# if it comes back within this many seconds: as close to Streamlit's own promise
# (server.disconnectedSessionTTL, 120 s by default) as the pruner allows, since it plus PRUNE_EVERY_S must
# stay under that TTL, or the session is gone from Streamlit's cache before it can be closed.
REAP_AFTER_S = 90.0
_pruner: threading.Thread | None = None


class EndedSessions:
    """Which disconnected sessions have been gone for ``grace_s`` seconds (and so should be closed).

    Why: Streamlit keeps a disconnected session (its session state, uploaded files and widget
    states: ~2 MB of heap each after a 10-minute upload) in a TTL cache that never shuts it down: it
    is dropped only when another session disconnects, and even then its uploaded files stay in the
    server's upload manager. Twenty sessions that had left kept the server 22 % above its baseline.
    """

    def __init__(self, grace_s: float = REAP_AFTER_S) -> None:
        self.grace_s = grace_s
        self._since: dict[str, float] = {}     # session id -> when it was first seen disconnected (s)

    def due(self, disconnected: set[str], now_s: float) -> list[str]:
        """The sessions of ``disconnected`` seen disconnected for ``grace_s`` or more at ``now_s``;
        they are forgotten here (the caller closes them). A session that reconnected is forgotten too."""
        for sid in [s for s in self._since if s not in disconnected]:
            del self._since[sid]
        for sid in disconnected:
            self._since.setdefault(sid, now_s)
        gone = [sid for sid, t in self._since.items() if now_s - t >= self.grace_s]
        for sid in gone:
            del self._since[sid]
        return gone


def session_id() -> str:
    """This browser session's id ("bare" outside a Streamlit run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "bare"


def session_alive(sid: str) -> bool:
    """False once the browser session ``sid`` has ended; always True without a server (AppTest)."""
    from streamlit import runtime

    if not runtime.exists():
        return True
    return runtime.get_instance().is_active_session(sid)


def disconnected_sessions() -> set[str]:
    """Ids of the sessions Streamlit keeps for a reconnect (their browser has gone)."""
    from streamlit import runtime

    if not runtime.exists():
        return set()
    mgr = runtime.get_instance()._session_mgr  # Streamlit has no public list of sessions
    active = {info.session.id for info in mgr.list_active_sessions()}
    return {info.session.id for info in mgr.list_sessions()} - active


def close_sessions(ids: list[str], timeout_s: float = 10.0) -> int:
    """Close the sessions ``ids`` on the server's event loop (Streamlit requires that thread): their
    session state and uploaded files are dropped. Returns how many were closed (0 without a server)."""
    from streamlit import runtime

    if not ids or not runtime.exists():
        return 0
    rt = runtime.get_instance()
    loop = rt._get_async_objs().eventloop  # the loop Streamlit runs sessions on
    done = threading.Event()

    def close() -> None:
        try:
            for sid in ids:
                rt.close_session(sid)
        finally:
            done.set()
    loop.call_soon_threadsafe(close)
    return len(ids) if done.wait(timeout_s) else 0


def prune_once(store: RecordStore, ended: EndedSessions, now_s: float,
               alive: Callable[[str], bool] = session_alive,
               disconnected: Callable[[], set[str]] = disconnected_sessions,
               close: Callable[[list[str]], int] = close_sessions) -> tuple[int, int]:
    """One pruner tick: release the records of sessions whose browser has gone, then close those gone
    for ``ended.grace_s``. Returns (sessions released, sessions closed).

    ``alive``, ``disconnected`` and ``close`` are the server's session hooks, given as arguments so a
    test can fake them without touching the running pruner of another server in the same process."""
    released = store.prune(alive)
    closed = close(ended.due(disconnected(), now_s))
    if closed:
        gc.collect()   # a session's objects reference each other: refcounts alone never free them
        store.trim()
    return released, closed


def _prune_forever(store: RecordStore) -> None:
    # Streamlit has no "session ended" callback: every few seconds, release what ended sessions hold,
    # so their memory returns even when nobody else visits.
    ended = EndedSessions()
    while True:
        time.sleep(PRUNE_EVERY_S)
        try:
            released, closed = prune_once(store, ended, time.monotonic())
            if released or closed:
                print(f"m2ae app: released the records of ended sessions ({released}), closed {closed} sessions "
                      f"gone over {ended.grace_s:.0f} s; now {store.stats()}", file=sys.stderr, flush=True)
        except Exception:  # never let the pruner die; the next tick retries
            pass


def start_pruner(store: RecordStore) -> None:
    """Start the background thread that releases ended sessions' records and closes them (once per server)."""
    from streamlit import runtime

    global _pruner
    if _pruner is None and runtime.exists():
        _pruner = threading.Thread(target=_prune_forever, args=(store,), name="m2ae-record-pruner", daemon=True)
        _pruner.start()


def per_record(store: RecordStore, spinner: str):
    """Cache a function of ``(key, settings…, _model, _win…)`` in ``store``'s entry for record ``key``.

    Arguments whose names start with "_" are not part of the cache key (as with st.cache_data), except
    the model's identity: another checkpoint with the same weights version must not share results.
    """
    def decorate(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            import streamlit as st

            bound = sig.bind(*args, **kwargs)
            what = (fn.__name__, *(id(v) if n.startswith("_") else repr(v)
                                   for n, v in bound.arguments.items() if not n.startswith("_") or n == "_model"))

            def compute():
                with st.spinner(spinner):
                    return fn(*args, **kwargs)
            return store.memo(bound.arguments["key"], what, compute)
        return wrapper
    return decorate
