"""Which rows a plotly box/lasso selection picked (the event ``st.plotly_chart(on_select=...)`` returns)."""
from __future__ import annotations

from typing import Any


def selected_rows(event: Any) -> list[int]:
    """Row numbers picked by a plotly box/lasso selection, sorted and unique.

    Points must carry their row number as ``customdata`` (first element when it is a list); the
    event is the dict-like object Streamlit returns (``event["selection"]["points"]``).
    """
    if not event:
        return []
    selection = event.get("selection") if hasattr(event, "get") else getattr(event, "selection", None)
    if not selection:
        return []
    points = selection.get("points") if hasattr(selection, "get") else getattr(selection, "points", None)
    rows: list[int] = []
    for p in points or []:
        cd = p.get("customdata") if hasattr(p, "get") else None
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is None:
            continue
        try:
            rows.append(int(cd))
        except (TypeError, ValueError):
            continue
    return sorted(set(rows))
