"""Which channel of a file is the ECG and which the PPG, judged from channel names.

Every reader hands its column/channel/track names to ``choose_channels``: ``--ecg``/``--ppg``
overrides win, then the best-ranked name (ECG lead II first, then a generic ECG, then another lead;
PPG PLETH/PPG/BVP). The chosen columns are written into ``Record.meta`` by ``ChannelChoice.to_meta``.

>>> c = choose_channels(["Time [s]", "V", "ECG II", "PLETH"], "x.csv", exclude=(0,))
>>> (c.ecg, c.ppg, lead_from_name(c.ecg_name))
(2, 3, 'II')
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError

# Lead names after normalisation (lower case, no spaces/punctuation). II first: it is the lead the
# signal contract prefers, and the one most monitors (and MIMIC/BIDMC/VitalDB) record.
_LEAD_II = ("ii", "mlii")
_OTHER_LEADS = ("i", "iii", "avr", "avl", "avf", "v", "v1", "v2", "v3", "v4", "v5", "v6", "mli",
                "mliii", "mlv", "mv1", "mv2", "mv5", "cm5", "ds1", "d1", "d2", "d3", "mcl", "mcl1", "mcl6")
_ECG_PREFIXES = ("ecg", "ekg", "lead")
# What may follow an ECG prefix without naming a lead ("ECG raw", "ECG (mV)").
_NO_LEAD_SUFFIXES = ("signal", "raw", "wave", "filtered", "mv", "uv")
_PPG_EXACT = ("pleth", "ppg", "bvp", "spo2wave", "plethwave", "plethysmogram", "photoplethysmogram",
              "pulseoximetry", "pulseox", "pulseoximeter", "spo2pleth", "pleth1", "ppg1")
_PPG_PREFIXES = ("pleth", "ppg", "bvp", "spo2wave")
# Words that look like channel names but hold numerics derived from a channel (rates, saturation).
_NOT_A_WAVE = ("hr", "rate", "pulse", "spo2", "pr", "bpm", "resp", "rr")
# Override values that leave a modality out.
_NONE_WORDS = ("none", "-", "no", "off", "")

_BRACKETS = re.compile(r"[\[(][^\[\]()]*[\])]")
_PUNCT = re.compile(r"[\s_\-.,:;/\\'\"`|#]+")
# Voltage units a name may end with after a space or underscore ("II µV", "ECG_uV"). A bare "V" is
# not among them: it is also a lead name ("ECG V"); "II [V]" in brackets is read as volts.
_UNIT_WORDS = ("mv", "uv", "µv", "μv", "nv", "millivolt", "millivolts", "microvolt", "microvolts")
_TRAILING_UNIT = re.compile(r"[\s_]+(" + "|".join(_UNIT_WORDS) + r")$")
_UNIT_IN_BRACKETS = re.compile(r"[\[(]([^\[\]()]{1,24})[\])]")
# Names are matched on their first characters only: a name is not bounded in length, and regular
# expressions over a megabyte-long "name" must stay cheap.
_NAME_CHARS = 200


def normalize_name(name: Any) -> str:
    """``' Lead II [mV]'`` -> ``'leadii'``: case, spaces, punctuation and a unit (in brackets or a
    trailing µV/uV/mV word, as in ``'II µV'``) dropped."""
    s = str(name)[:_NAME_CHARS].strip().lower()
    s = _BRACKETS.sub("", s)
    s = _TRAILING_UNIT.sub("", s.strip())
    return _PUNCT.sub("", s)


def unit_from_name(name: Any) -> str | None:
    """The unit a channel name carries: in brackets (``'II [mV]'``, ``'ECG (uV)'``, ``'PLETH [NU]'``) or
    as a trailing voltage word (``'II µV'``, ``'ECG_uV'``); None when the name has none."""
    s = str(name)[:_NAME_CHARS].strip()
    if m := _UNIT_IN_BRACKETS.search(s):
        return m.group(1).strip() or None
    if m := _TRAILING_UNIT.search(s.lower()):
        return s[len(s) - len(m.group(1)):]
    return None


def ecg_rank(name: Any) -> int | None:
    """How good a name is as the ECG channel: 0 lead II, 1 generic ECG, 2 another lead, None no ECG."""
    n = normalize_name(name)
    if not n:
        return None
    rest = n
    for p in _ECG_PREFIXES:
        if rest.startswith(p):
            rest = rest[len(p):]
            if rest.startswith("lead"):
                rest = rest[4:]
            break
    else:
        # A bare lead name ("II", "MLII", "V5") counts only as a whole name.
        if n in _LEAD_II:
            return 0
        if n in _OTHER_LEADS:
            return 2
        return None
    if rest in _LEAD_II or rest == "2" and n.startswith("lead"):
        return 0
    if rest in _OTHER_LEADS:
        return 2
    if rest == "" or rest.isdigit() or rest in _NO_LEAD_SUFFIXES:
        return 1
    if any(w in rest for w in _NOT_A_WAVE):
        return None
    return 1


def ppg_rank(name: Any) -> int | None:
    """How good a name is as the PPG channel: 0 exact (PLETH, PPG, BVP…), 1 prefixed, None no PPG."""
    n = normalize_name(name)
    if not n:
        return None
    if n in _PPG_EXACT:
        return 0
    for p in _PPG_PREFIXES:
        if n.startswith(p):
            rest = n[len(p):]
            if any(rest.startswith(w) for w in _NOT_A_WAVE):
                return None
            return 1
    return None


def lead_from_name(name: str | None) -> str | None:
    """'ECG_II' -> 'II', 'Lead V5' -> 'V5'; None when the lead is unknown ('ECG') or the name is
    not an ECG name at all (a column picked with --ecg)."""
    if not name or ecg_rank(name) is None:
        return None
    n = normalize_name(name)
    for p in _ECG_PREFIXES:
        if n.startswith(p):
            n = n[len(p):]
    n = n[4:] if n.startswith("lead") else n
    if not n or n.isdigit() or n in _NO_LEAD_SUFFIXES:
        return None
    return {"avr": "aVR", "avl": "aVL", "avf": "aVF"}.get(n, n.upper())


def list_names(names: list[str], limit: int = 20) -> str:
    """Names for an error message: the first ``limit``, then how many more there are."""
    shown = [str(n).strip() or "<blank>" for n in names[:limit]]
    more = f", … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(shown) + more


def _find_override(names: list[str], want: str | int, source: str, flag: str) -> int:
    """Resolve ``--ecg/--ppg``: an exact or normalised column name, else a 0-based column index."""
    if isinstance(want, (int, np.integer)):
        idx = int(want)
    else:
        w = str(want).strip()
        exact = [i for i, n in enumerate(names) if str(n).strip() == w]
        if len(exact) > 1:
            raise InputError(f"{source}: {flag} {w!r} is ambiguous: columns {', '.join(map(str, exact[:10]))} "
                             f"(0-based) are all named so; pass the column's index instead")
        if exact:
            return exact[0]
        wn = normalize_name(w)
        hits = [i for i, n in enumerate(names) if wn and normalize_name(n) == wn]
        if len(hits) >= 1:
            return hits[0]
        if not re.fullmatch(r"-?\d+", w):
            raise InputError(f"{source}: {flag} column {w!r} not found (columns: {list_names(names)})")
        idx = int(w)
    if not -len(names) <= idx < len(names):
        raise InputError(f"{source}: {flag} index {idx} out of range: the file has {len(names)} channels "
                         f"({list_names(names)})")
    return idx % len(names)


@dataclass
class ChannelChoice:
    """The columns chosen for ECG and PPG (0-based, None = absent), their names and how they were found."""

    ecg: int | None
    ppg: int | None
    ecg_name: str | None = None
    ppg_name: str | None = None
    ecg_how: str | None = None  # "name" or "override"
    ppg_how: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. which of two same-named columns was used

    def to_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Record the chosen columns in ``meta`` (``ecg_column``, ``ecg_matched_by``, same for PPG) and
        the choice's notes in ``meta['notes']``."""
        if self.ecg is not None:
            meta["ecg_column"], meta["ecg_matched_by"] = self.ecg_name, self.ecg_how
        if self.ppg is not None:
            meta["ppg_column"], meta["ppg_matched_by"] = self.ppg_name, self.ppg_how
        for note in self.notes:
            if note not in meta.setdefault("notes", []):
                meta["notes"].append(note)
        return meta


def ecg_lead_columns(names: list[str], choice: ChannelChoice, exclude: tuple[int, ...] = ()) -> list[int]:
    """Every column holding an ECG lead: the chosen ECG column first, then the other ECG-named
    columns (never the PPG or an excluded one, e.g. a time column); [] without an ECG."""
    if choice.ecg is None:
        return []
    skip = {choice.ecg, choice.ppg, *exclude}
    return [choice.ecg] + [i for i, n in enumerate(names) if i not in skip and ecg_rank(n) is not None]


def choose_channels(names: list[str], source: str, ecg: str | int | None = None,
                    ppg: str | int | None = None, exclude: tuple[int, ...] = ()) -> ChannelChoice:
    """Pick the ECG and PPG channels among ``names``; overrides win, then the best-ranked names.

    ``ecg``/``ppg`` may be a column name, a 0-based index (int or digit string), or ``"none"`` to
    leave that modality out; columns in ``exclude`` (a time column) are never picked by name.
    Raises InputError listing the columns when nothing is recognised.
    """
    names = [str(n) for n in names]
    choice = ChannelChoice(None, None)
    wants = {"ecg": ecg, "ppg": ppg}
    skip = {m for m, w in wants.items() if isinstance(w, str) and w.strip().lower() in _NONE_WORDS}
    # Overrides first, so a column the user assigned is not also picked by name for the other modality.
    for mod in ("ecg", "ppg"):
        want = wants[mod]
        if mod not in skip and want is not None:
            idx = _find_override(names, want, source, f"--{mod}")
            setattr(choice, mod, idx)
            setattr(choice, f"{mod}_name", names[idx].strip())
            setattr(choice, f"{mod}_how", "override")
    taken = set(exclude) | {i for i in (choice.ecg, choice.ppg) if i is not None}
    for mod, rank in (("ecg", ecg_rank), ("ppg", ppg_rank)):
        if mod in skip or wants[mod] is not None:
            continue
        ranked = [(r, i) for i, n in enumerate(names) if i not in taken and (r := rank(n)) is not None]
        if not ranked:
            continue
        idx = min(ranked)[1]
        setattr(choice, mod, idx)
        setattr(choice, f"{mod}_name", names[idx].strip())
        setattr(choice, f"{mod}_how", "name")
    for mod in ("ecg", "ppg"):
        idx = getattr(choice, mod)
        if idx is None or getattr(choice, f"{mod}_how") != "name":
            continue
        same = [i for i, n in enumerate(names) if n.strip() == names[idx].strip()]
        if len(same) > 1:
            choice.notes.append(f"{len(same)} columns are named {names[idx].strip()[:40]!r} (0-based "
                                f"{', '.join(map(str, same[:10]))}); {mod.upper()} used column {idx}, the first")
    if choice.ecg is not None and choice.ecg == choice.ppg:
        raise InputError(f"{source}: the same column {names[choice.ecg].strip()!r} was chosen for ECG and PPG")
    if choice.ecg is None and choice.ppg is None:
        raise InputError(f"{source}: no ECG or PPG column recognised (columns: {list_names(names)}); "
                         f"pass --ecg COLUMN and/or --ppg COLUMN")
    return choice
