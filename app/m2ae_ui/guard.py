"""Keep every page usable: user mistakes become ``st.error`` lines, surprises a short message.

Streamlit's own control flow (``st.rerun``, ``st.switch_page``, ``st.stop``) raises BaseException
subclasses, which pass through untouched.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import streamlit as st

from m2ae.errors import InputError

log = logging.getLogger("m2ae.app")


def short_message(exc: BaseException, limit: int = 240) -> str:
    """The first line of an exception's message, trimmed (never a traceback)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def page_guard(what: str) -> Iterator[None]:
    """Run a page (or a part of one); show errors in place instead of a traceback page."""
    try:
        yield
    except InputError as e:
        st.error(short_message(e))
    except MemoryError:
        st.error(f"{what}: not enough memory for this record; try a shorter one.")
    except Exception as e:  # the page must survive anything; the server log keeps the traceback
        log.exception("%s failed", what)
        st.error(f"{what}: could not be shown ({type(e).__name__}: {short_message(e)}). "
                 "The rest of the app still works.")
