"""The app server gives memory back (issue 12 item 5): the record store trims the C heap when it
drops a record, and sessions whose browser has gone are released, then closed after a grace period.

The whole server is measured by bench/bench_app_memory.py (headless Chromium); these are the pieces.
"""
from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from m2ae_ui import memory
from m2ae_ui.memory import MB, EndedSessions, RecordStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def trims():
    return []


def _store(trims: list[int]) -> RecordStore:
    # the trim is injected: a pruner thread left running by another test must not count here
    return RecordStore(store_bytes=40 * MB, record_bytes=16 * MB, idle_bytes=0, trim=lambda: trims.append(1))


def _array(mb: float):
    return lambda: np.zeros(int(mb * MB) // 8)


def test_store_trims_the_heap_only_when_it_drops_a_record(trims):
    store = _store(trims)
    store.get("up", "s1", _array(4), kind="upload")
    store.get("up", "s2", _array(4), kind="upload")
    store.release("s1")
    assert trims == [] and store.stats()["records"] == 1        # s2 still holds it: nothing freed
    store.release("s2")
    assert trims == [1] and store.stats()["records"] == 0       # dropped, then trimmed once
    store.release("s2")
    assert trims == [1]                                         # nothing held: no trim


def test_ended_sessions_are_due_after_the_grace_period_only():
    ended = EndedSessions(grace_s=30.0)
    assert ended.due({"a"}, now_s=100.0) == []
    assert ended.due({"a", "b"}, now_s=129.0) == []              # a: 29 s, b: 0 s
    assert ended.due({"a", "b"}, now_s=130.0) == ["a"]
    assert ended.due({"b"}, now_s=131.0) == []                   # a was handed out once, not again


def test_a_session_that_reconnects_starts_its_grace_period_again():
    ended = EndedSessions(grace_s=30.0)
    ended.due({"a"}, now_s=0.0)
    ended.due(set(), now_s=20.0)                                 # the browser came back
    assert ended.due({"a"}, now_s=40.0) == []                    # gone again at 40 s: 0 s so far
    assert ended.due({"a"}, now_s=70.0) == ["a"]


def test_prune_once_releases_then_closes_ended_sessions_and_trims(trims):
    store = _store(trims)
    store.get("up-a", "a", _array(2), kind="upload")
    store.get("up-b", "b", _array(2), kind="upload")
    closed: list[list[str]] = []
    hooks = dict(alive=lambda sid: sid == "b", disconnected=lambda: {"a"},
                 close=lambda ids: closed.append(sorted(ids)) or len(ids))
    ended = EndedSessions(grace_s=30.0)

    assert memory.prune_once(store, ended, now_s=0.0, **hooks) == (1, 0)
    assert store.stats()["sessions"] == 1 and store.stats()["records"] == 1   # a's upload freed, b's kept
    assert trims == [1] and closed == [[]]                      # a: gone, but within its grace period
    assert memory.prune_once(store, ended, now_s=31.0, **hooks) == (0, 1)
    assert closed == [[], ["a"]] and trims == [1, 1]            # closing is followed by a trim


def test_without_a_server_there_is_nothing_to_close():
    assert memory.disconnected_sessions() == set()
    assert memory.close_sessions(["a"]) == 0


ARENA_PROBE = """
import ctypes, sys, threading, time
sys.path.insert(0, sys.argv[1])
import serve
if sys.argv[2] != "none":
    assert serve.limit_malloc_arenas(int(sys.argv[2]))
go = threading.Barrier(7)
def work():
    keep = [bytearray(200_000) for _ in range(4)]   # a thread's first malloc picks (or makes) its arena
    go.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
go.wait()
ctypes.CDLL("libc.so.6").malloc_stats()             # one "Arena N:" block per arena, on stderr
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="malloc arenas are glibc's")
def test_the_server_caps_glibc_malloc_arenas():
    def arenas(cap: str) -> int:
        res = subprocess.run([sys.executable, "-c", ARENA_PROBE, str(ROOT / "app"), cap], capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        return len(re.findall(r"^Arena \d+:", res.stderr, flags=re.M))

    assert arenas("none") > 2          # six threads at once: glibc's default makes more than two
    assert arenas("2") <= 2


def test_streamlit_still_offers_what_the_pruner_reaches_into():
    # The pruner uses two private Streamlit attributes (there is no public list of sessions nor a way to
    # close one): fail here, loudly, when an upgrade renames them, instead of leaking quietly in production.
    import inspect

    from streamlit.runtime import Runtime
    from streamlit.runtime.session_manager import SessionManager

    assert "self._session_mgr" in inspect.getsource(Runtime.__init__)
    assert callable(getattr(Runtime, "_get_async_objs", None)) and callable(getattr(Runtime, "close_session", None))
    assert callable(getattr(SessionManager, "list_sessions", None))
    assert callable(getattr(SessionManager, "list_active_sessions", None))


def test_sessions_are_closed_before_streamlit_forgets_them():
    # closed too late, a session has already left Streamlit's reconnect cache and can no longer be closed
    from streamlit import config

    from m2ae_ui.memory import PRUNE_EVERY_S, REAP_AFTER_S

    ttl_s = float(config.get_option("server.disconnectedSessionTTL"))
    assert 60.0 <= REAP_AFTER_S and REAP_AFTER_S + PRUNE_EVERY_S < ttl_s, (REAP_AFTER_S, PRUNE_EVERY_S, ttl_s)
