"""Strings that came from a file (names, metadata, labels, notes, reader messages) shown as text, never markup.

Streamlit renders Markdown in ``st.markdown``, ``st.caption``, ``st.subheader``, ``st.info/warning/error``,
``st.metric`` and widget labels: an uploaded WFDB label ``age: ![x](http://host/p.png)`` would make the
reader's browser fetch that image, and ``:red[…]``, ``$…$`` or ``:material/…:`` would restyle the page.
Plotly titles, legends and hover text take a subset of HTML. So:

- ``plain(s)``: for any Markdown context; every Markdown/Streamlit special character is backslash-escaped,
  line breaks are flattened and bare URLs are kept from becoming links (a zero-width space after
  "http"), so the text reads exactly as in the file, on one line, and nothing in it is clickable.
- ``plain_html(s)``: for Plotly strings (titles, trace names, axis titles, hover); HTML-escaped.
- ``plain_list(items)``: ``plain`` of each item joined with ", ".
- ``unplain(s)``: the text a reader sees for ``plain`` output (backslash escapes removed), for tests.

Table cells (``st.dataframe``) and selectbox options are drawn as text by Streamlit and need no escaping.

>>> plain("![x](y.png)")
'\\\\!\\\\[x\\\\]\\\\(y\\\\.png\\\\)'
>>> plain_html("<img src=x>")
'&lt;img src=x&gt;'
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones Markdown, GFM
# (tables, strikethrough, autolinks), Streamlit directives (:red[…], :material/…:, emoji shortcodes)
# and KaTeX ($…$) give a meaning to. "/" breaks bare-URL autolinks ("http://…" stays text).
_SPECIAL = frozenset("\\`*_{}[]()#+-.!|<>~$:&/=\"'")
MAX_CHARS = 500  # a file-derived string longer than this is cut: no page needs more of one name or label


def _one_line(value: Any, limit: int | None) -> str:
    text = "" if value is None else " ".join(str(value).split())  # None: nothing known, nothing shown
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


# GFM turns bare URLs into links *after* parsing (escapes cannot stop it): a zero-width space after
# the scheme / "www" keeps a file's URL as plain, unclickable text that reads the same.
_AUTOLINK = re.compile(r"(?i)\b(?:https?|ftp|mailto)(?=:)|\bwww(?=\.)")
_ZWSP = "\u200b"


def plain(value: Any, limit: int | None = MAX_CHARS) -> str:
    """``value`` as literal text inside Markdown (``st.markdown``, captions, alerts, metric labels)."""
    text = _AUTOLINK.sub(lambda m: m.group(0) + _ZWSP, _one_line(value, limit))
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def plain_html(value: Any, limit: int | None = MAX_CHARS) -> str:
    """``value`` as literal text inside Plotly's HTML subset (titles, legend names, axis titles, hover)."""
    return html.escape(_one_line(value, limit), quote=True)


def plain_list(items: Iterable[Any], sep: str = ", ", limit: int | None = MAX_CHARS) -> str:
    """Each item ``plain`` (one line), joined with ``sep`` (``sep`` itself is not escaped)."""
    return sep.join(plain(x, limit) for x in items)


def unplain(markdown: str) -> str:
    """What the reader sees for Markdown written by ``plain``: backslash escapes removed.

    >>> unplain(plain("nsr_wfdb.hea [x](y)"))
    'nsr_wfdb.hea [x](y)'
    """
    return re.sub(r"\\(.)", r"\1", markdown).replace(_ZWSP, "")
