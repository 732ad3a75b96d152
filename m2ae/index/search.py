"""Find indexed windows by their metadata: a safe predicate language, map search, density contours.

- ``where_mask(metadata, text)``: a bool mask from a predicate such as
  ``source == "cinc2015" and alarm_type == "VT" and true_alarm == true`` or
  ``label.rhythm in ["AF", "PVC"]``. A tiny parser of our own (no ``eval``, no ``DataFrame.query``):
  names must be metadata columns (``label.x`` and a bare ``x`` both mean ``label_x`` when that is the
  column), values are string / number / true / false / null literals or lists of them, operators are
  ``== != < <= > >= in, not in, contains`` joined by ``and``, ``or``, ``not`` and parentheses.
  ``==`` on text is case-insensitive; ``source == "cinc2015"`` also matches a source path that has
  ``cinc2015`` as one of its parts. Anything else is an ``InputError`` naming what and where.
- ``find_windows(metadata, query)``: the app's map search: words match record / subject / source
  as case-insensitive substrings, ``label:AF`` matches a label exactly, ``record:``, ``subject:``,
  ``source:`` restrict a word to one column; returns ids with their map positions and a view box.
- ``density_grid(xy)``: a smoothed 2-D histogram of map positions for contours on maps over
  ``DENSITY_ABOVE`` points (numpy + scipy, a few ms for 25 k points).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

DENSITY_ABOVE = 10_000  # maps with more points get density contours instead of (only) dots
MAX_WHERE_CHARS = 2_000
MAX_NESTING = 50
TEXT_COLUMNS = ("record", "subject_id", "source", "label_original_name")

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
)""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "contains", "true", "false", "null", "none"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}


@dataclass
class _Tok:
    kind: str  # str, num, op, name, kw, end
    value: Any
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].lstrip()[:20]
            raise InputError(f"where: unexpected {bad!r} at character {len(text) - len(text[pos:].lstrip()) + 1} "
                             "(allowed: column names, quoted text, numbers, true/false/null, lists [..], "
                             "== != < <= > >= in, not in, contains, and, or, not, parentheses)")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "str":
            value: Any = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif kind == "num":
            value = float(raw)
        elif kind == "name" and raw.lower() in _KEYWORDS:
            kind, value = "kw", raw.lower()
        else:
            value = raw
        out.append(_Tok(kind, value, start))
        pos = m.end()
    out.append(_Tok("end", None, len(text)))
    return out


class _Parser:
    """Recursive descent over the tokens, evaluating straight to bool masks over ``meta``."""

    def __init__(self, meta: pd.DataFrame, text: str):
        self.meta, self.text, self.toks, self.i = meta, text, _tokens(text), 0
        self.depth = 0

    def fail(self, what: str) -> InputError:
        t = self.toks[self.i]
        got = "the end" if t.kind == "end" else repr(self.text[t.pos:t.pos + 20].split()[0])
        return InputError(f"where: expected {what} at character {t.pos + 1}, got {got}")

    def peek(self, kind: str, value: Any = None) -> bool:
        t = self.toks[self.i]
        return t.kind == kind and (value is None or t.value == value)

    def take(self, kind: str, value: Any = None, what: str = "") -> _Tok:
        if not self.peek(kind, value):
            raise self.fail(what or (repr(value) if value else kind))
        self.i += 1
        return self.toks[self.i - 1]

    def parse(self) -> np.ndarray:
        mask = self.disjunction()
        if not self.peek("end"):
            raise self.fail("'and', 'or' or the end")
        return mask

    def disjunction(self) -> np.ndarray:
        mask = self.conjunction()
        while self.peek("kw", "or"):
            self.i += 1
            mask = mask | self.conjunction()
        return mask

    def conjunction(self) -> np.ndarray:
        mask = self.negation()
        while self.peek("kw", "and"):
            self.i += 1
            mask = mask & self.negation()
        return mask

    def negation(self) -> np.ndarray:
        self.depth += 1
        if self.depth > MAX_NESTING:  # "((((…" or "not not …" would otherwise hit Python's recursion limit
            raise InputError(f"where: nested deeper than {MAX_NESTING} parentheses / nots")
        try:
            return self._negation()
        finally:
            self.depth -= 1

    def _negation(self) -> np.ndarray:
        if self.peek("kw", "not"):
            self.i += 1
            return ~self.negation()
        if self.peek("op", "("):
            self.i += 1
            mask = self.disjunction()
            self.take("op", ")", "')'")
            return mask
        return self.comparison()

    def comparison(self) -> np.ndarray:
        col = self.column(self.take("name", what="a column name"))
        t = self.toks[self.i]
        if t.kind == "op" and t.value in _COMPARE:
            self.i += 1
            return compare(self.meta[col], t.value, self.literal())
        negate = False
        if self.peek("kw", "not"):
            self.i += 1
            negate = True
            if not self.peek("kw", "in"):
                raise self.fail("'in' after 'not'")
        if self.peek("kw", "in"):
            self.i += 1
            mask = is_in(self.meta[col], self.literal_list())
            return (~mask & self.meta[col].notna().to_numpy()) if negate else mask  # missing never matches
        if self.peek("kw", "contains"):
            self.i += 1
            needle = self.literal()
            return self.meta[col].astype(str).str.contains(str(needle), case=False, regex=False).to_numpy() \
                & self.meta[col].notna().to_numpy()
        raise self.fail("an operator (== != < <= > >= in, not in, contains)")

    def column(self, tok: _Tok) -> str:
        name = str(tok.value).replace(".", "_")
        cols = self.meta.columns
        for cand in (name, f"label_{name}"):
            if cand in cols:
                return cand
        shown = [str(c) for c in cols if not str(c).startswith(("fp_", "ecg_c", "ppg_c", "ecg_s", "ppg_s"))]
        raise InputError(f"where: unknown column {tok.value!r} at character {tok.pos + 1} "
                         f"(columns: {', '.join(shown[:24])}{', …' if len(shown) > 24 else ''}; "
                         "label_x may be written label.x or x)")

    def literal(self) -> Any:
        t = self.toks[self.i]
        if t.kind in ("str", "num"):
            self.i += 1
            return t.value
        if t.kind == "kw" and t.value in ("true", "false", "null", "none"):
            self.i += 1
            return {"true": True, "false": False}.get(t.value)
        raise self.fail("a value (quoted text, a number, true, false or null)")

    def literal_list(self) -> list[Any]:
        self.take("op", "[", "'[' opening a list")
        values = []
        if not self.peek("op", "]"):
            values.append(self.literal())
            while self.peek("op", ","):
                self.i += 1
                values.append(self.literal())
        self.take("op", "]", "',' or ']'")
        return values


def _text_equal(s: pd.Series, value: str) -> np.ndarray:
    low = s.astype(str).str.lower()
    v = value.lower()
    exact = np.array(low.eq(v).to_numpy(dtype=bool))
    if s.name == "source":  # a path: a whole path part counts ("cinc2015" in ../shared/data/cinc2015/records/r1)
        exact |= low.str.split(r"[/\\]").map(lambda parts: v in parts).to_numpy(dtype=bool)
    return exact & s.notna().to_numpy()


def compare(s: pd.Series, op: str, value: Any) -> np.ndarray:
    """Bool mask of ``s <op> value``; missing values never match (``!= null`` matches present ones)."""
    present = s.notna().to_numpy()
    if value is None:
        if op not in ("==", "!="):
            raise InputError(f"where: null can only be compared with == or != (got {op})")
        return ~present if op == "==" else present
    if isinstance(value, bool):
        if op not in ("==", "!="):
            raise InputError(f"where: true/false can only be compared with == or != (got {op})")
        vals = s.map(lambda v: str(v).lower() in ("true", "1", "1.0") if pd.notna(v) else False).to_numpy(dtype=bool)
        eq = (vals == value) & present
        return eq if op == "==" else ~eq & present
    if isinstance(value, float):
        num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            res = {"==": num == value, "!=": num != value, "<": num < value, "<=": num <= value,
                   ">": num > value, ">=": num >= value}[op]
        return res & np.isfinite(num)
    if op in ("==", "!="):
        eq = _text_equal(s, str(value))
        return eq if op == "==" else ~eq & present
    txt = s.astype(str).to_numpy()
    res = {"<": txt < value, "<=": txt <= value, ">": txt > value, ">=": txt >= value}[op]
    return np.asarray(res, dtype=bool) & present


def is_in(s: pd.Series, values: list[Any]) -> np.ndarray:
    mask = np.zeros(len(s), bool)
    for v in values:
        mask |= compare(s, "==", v)
    return mask


def where_mask(metadata: pd.DataFrame, text: str) -> np.ndarray:
    """Bool mask [N] of the metadata rows for which the predicate ``text`` holds (see the module docstring).

    Raises InputError (one line: what was expected, at which character) for anything outside the language.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("where: empty predicate (e.g. label.rhythm in [\"AF\", \"PVC\"])")
    if len(text) > MAX_WHERE_CHARS:
        raise InputError(f"where: predicate longer than {MAX_WHERE_CHARS} characters")
    return np.asarray(_Parser(metadata.reset_index(drop=True), text).parse(), dtype=bool)


# --- map search ------------------------------------------------------------------------------------

_FIELD = re.compile(r"^(record|subject|source|label):(.+)$", re.IGNORECASE)


def find_windows(metadata: pd.DataFrame, query: str, limit: int | None = None) -> dict[str, Any]:
    """Windows matching a map search, with their map positions, for the app to highlight and jump to.

    query : space-separated terms, all of which must match (quotes keep spaces in a term):
        a bare word matches record, subject_id, source or original name as a case-insensitive substring;
        ``label:AF`` matches any ``label_*`` text column exactly (case-insensitive);
        ``record:r1``, ``subject:sim0001``, ``source:cinc`` restrict the substring to one column.
    limit : keep at most this many rows in ``table`` (``n`` still counts all matches).
    Returns {"ids": int64 [n], "n": n, "table": DataFrame (id, record, subject_id, source, map_x, map_y,
    matched), "center": (x, y) or None, "bounds": (x0, x1, y0, y1) or None} (map units).
    """
    terms = [t.strip("\"'") for t in re.findall(r'"[^"]*"|\'[^\']*\'|\S+', query or "")]
    terms = [t for t in terms if t]
    if not terms:
        raise InputError("search: type a record name, subject, source or label:VALUE")
    meta = metadata.reset_index(drop=True)
    mask = np.ones(len(meta), bool)
    matched = pd.Series([""] * len(meta))
    for term in terms:
        hit = _term_hits(meta, term)
        mask &= hit[0]
        matched = matched.where(~hit[0] | (matched != ""), hit[1])
    ids = np.flatnonzero(mask).astype(np.int64)
    cols = [c for c in ("record", "subject_id", "source", "map_x", "map_y") if c in meta.columns]
    table = meta.loc[ids, cols].copy()
    table.insert(0, "id", ids)
    table["matched"] = matched.to_numpy()[ids]
    table = table.reset_index(drop=True)
    center = bounds = None
    if len(ids) and {"map_x", "map_y"} <= set(meta.columns):
        xy = meta.loc[ids, ["map_x", "map_y"]].to_numpy(float)
        center = (float(np.median(xy[:, 0])), float(np.median(xy[:, 1])))
        bounds = (float(xy[:, 0].min()), float(xy[:, 0].max()), float(xy[:, 1].min()), float(xy[:, 1].max()))
    return {"ids": ids, "n": int(len(ids)), "table": table.head(limit) if limit else table,
            "center": center, "bounds": bounds}


def _term_hits(meta: pd.DataFrame, term: str) -> tuple[np.ndarray, pd.Series]:
    """(rows one search term matches, the column it matched in) — see ``find_windows``."""
    m_field = _FIELD.match(term)
    if not m_field:
        return _any_column(meta, [c for c in TEXT_COLUMNS if c in meta.columns], term, exact=False)
    field, word = m_field.group(1).lower(), m_field.group(2)
    if field == "label":
        cols = [c for c in meta.columns if c.startswith("label_") and not pd.api.types.is_float_dtype(meta[c])]
        return _any_column(meta, cols, word, exact=True)
    return _any_column(meta, [{"subject": "subject_id"}.get(field, field)], word, exact=False)


def _contains(s: pd.Series, word: str) -> pd.Series:
    return s.astype(str).str.contains(word, case=False, regex=False) & s.notna()


def _any_column(meta: pd.DataFrame, cols: list[str], word: str, exact: bool) -> tuple[np.ndarray, pd.Series]:
    """(mask of rows where ``word`` equals (``exact``, case-insensitive) or is in any of ``cols``, the first
    such column's name per row)."""
    mask = np.zeros(len(meta), bool)
    which = pd.Series([""] * len(meta))
    for c in cols:
        s = meta[c]
        m = np.asarray((s.astype(str).str.lower().eq(word.lower()) & s.notna()) if exact else _contains(s, word),
                       dtype=bool)
        which = which.where(~m | (which != ""), c)
        mask |= m
    return mask, which


def density_grid(xy: Any, bins: int = 100, smooth_bins: float = 1.5, levels: int = 6) -> dict[str, Any]:
    """A smoothed density of map points on a regular grid, for contour lines over a dense map.

    xy : [N, 2] map positions; bins : grid cells per axis; smooth_bins : Gaussian smoothing width in cells.
    Returns {"x": [bins] cell centres, "y": [bins], "z": [bins(y), bins(x)] points per cell after smoothing
    (plotly's ``go.Contour(x, y, z)`` order), "levels": contour levels (quantiles of the non-empty cells),
    "n": N}.
    """
    from scipy.ndimage import gaussian_filter

    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"density_grid: need [N, 2] map positions, got shape {xy.shape}")
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not len(xy):
        raise InputError("density_grid: no finite map positions")
    pad = 0.05 * max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1e-6)
    xe = np.linspace(xy[:, 0].min() - pad, xy[:, 0].max() + pad, bins + 1)
    ye = np.linspace(xy[:, 1].min() - pad, xy[:, 1].max() + pad, bins + 1)
    h, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=[xe, ye])
    z = gaussian_filter(h, smooth_bins).T  # rows = y, as contour plots want
    nz = z[z > z.max() * 1e-3] if z.max() > 0 else z.ravel()
    lv = np.unique(np.quantile(nz, np.linspace(0.3, 0.95, levels))) if len(nz) else np.zeros(0)
    return {"x": (xe[:-1] + xe[1:]) / 2, "y": (ye[:-1] + ye[1:]) / 2, "z": z, "levels": lv, "n": int(len(xy))}


def needs_density(n_points: int) -> bool:
    """Whether a map of ``n_points`` gets density contours (over ``DENSITY_ABOVE`` points)."""
    return int(n_points) > DENSITY_ABOVE
