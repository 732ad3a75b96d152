"""Tables as the app shows or offers them: nested model-card dicts flattened into rows, and any
table as CSV bytes for a download button."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd


def flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dict → [("a.b.c", leaf)] rows (model card tables); lists of numbers stay one value."""
    rows: list[tuple[str, Any]] = []
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            rows += flatten(v, f"{prefix}{k}.")
        return rows
    rows.append((prefix[:-1] if prefix.endswith(".") else prefix, tree))
    return rows


def find_entries(tree: Any, words: Sequence[str]) -> list[tuple[str, Any]]:
    """Flattened card rows whose key path contains any of ``words`` (e.g. privacy figures)."""
    return [(k, v) for k, v in flatten(tree) if any(w in k.lower() for w in words)]


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV bytes for ``st.download_button`` (in memory; nothing is written on the server)."""
    return frame.to_csv(index=False).encode("utf-8")
