"""Keep every page usable: user mistakes become ``st.error`` lines, surprises a short message.

Streamlit's own control flow (``st.rerun``, ``st.switch_page``, ``st.stop``) raises BaseException
subclasses, which pass through untouched.
"""
from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

import streamlit as st

from m2ae.errors import InputError

from .text import plain

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
    except InputError as e:  # its message names files and columns: shown as text, never markup
        st.error(plain(short_message(e, limit=600)))
    except MemoryError:
        st.error(f"{what}: not enough memory for this record; try a shorter one.")
    except Exception as e:  # the page must survive anything; the server log keeps the traceback
        log.exception("%s failed", what)
        st.error(f"{what}: could not be shown ({type(e).__name__}: {plain(short_message(e))}). "
                 "The rest of the app still works.")


_DEAD_WORDS = r"(flat|no pulse|dead|no finite|all NaN|constant|unusable)"


def with_way_forward(message: str, channels: list[str], upload: bool, limit: int = 240) -> str:
    """``message`` (why a record was refused) plus what the user can do about it, when something can.

    channels : the channel names the upload offers (for the mapping form); upload : False for a
    sample (nothing to remap); limit : characters in all (the reason is cut, the way forward kept
    whole). Built from the reader's words, which are not a contract: a message
    this does not recognise passes through unchanged.

    >>> with_way_forward("r065.hea: PPG is a flat line", ["II", "PLETH"], True).split(" — ")[1]
    'way forward: choose PPG "(none: leave out)" in the form below to analyse the ECG alone.'
    """
    low = message.lower()
    hint = None
    dead = {m for m in ("ECG", "PPG") if re.search(rf"\b{m}\b[^;—]*?{_DEAD_WORDS}", message, re.IGNORECASE)}
    if upload and len(dead) == 1:
        other = ({"ECG", "PPG"} - dead).pop()
        hint = (f'choose {dead.pop()} "(none: leave out)" in the form below to analyse the {other} alone'
                + (", or pick another channel for it" if len(channels) > 2 else ""))
    elif upload and "rate" in low and ("fs" in low or "sampling" in low or " hz" in low):
        hint = "give the sampling rate in the form below"
    elif upload and channels and any(w in low for w in ("column", "channel", "recognis", "recogniz")) and not (
            "no usable channel" in low and len(channels) <= 2):  # both channels dead: remapping cannot help
        hint = "choose the ECG and PPG channels in the form below"
    elif "no complete 10-s window" in low or "at least 10 s" in low:
        hint = "the app needs at least one 10-s stretch of signal"
    if hint is None or "way forward" in low:
        return message if len(message) <= limit else message[: limit - 1] + "…"
    tail = f" — way forward: {hint}."
    room = max(40, limit - len(tail))
    return (message if len(message) <= room else message[: room - 1] + "…") + tail
