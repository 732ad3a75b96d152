"""Rhythm section of ``m2ae eval``: does the rhythm head (or its stated abstention) agree with the CinC 2015
alarm labels on the **validation** split, beside the rule checker (``m2ae.eval.alarm_rules``)?

Data: every validation record's window that ends at the alarm (290–300 s; ``m2ae.train.alarm_data``'s
cached windows, the same cache the alarm section reads), in the record's best input (ECG+PPG, else ECG
only, else PPG only). The head's answer per record: its top class, or *abstains* when it says the input
is outside what it knows or the call is uncertain (``Head.present``: ``outside`` / ``uncertain``).

- **true alarms**: the head *agrees* when it calls the alarm's rhythm (a VT alarm: VT; an "other" alarm:
  any of VF, asystole, extreme brady- or tachycardia, which the corpus does not tell apart), *abstains*,
  or is *wrong* (a confident other class: what must not happen);
- **false alarms** (no rhythm truth): how often the head wrongly *confirms* the alarm (calls the alarm's
  rhythm) — over-calling.

Baseline: the rule checker's criterion for the alarm type, on the same 10-s window (Challenge thresholds,
nothing fitted): it agrees on a true alarm / confirms a false one when the criterion is met. Rates carry
95 % CIs from resampling records (``metrics.group_bootstrap_ci``), and model − rule checker a paired CI.
The validation split chose the head's temperature and its abstention levels (``m2ae.train.rhythm_head``),
so these rates are not a held-out estimate; the test split is kept for that and not read here.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import metrics as M

if TYPE_CHECKING:
    from ..model import M2AEModel
    from ..train.alarm_data import AlarmRecord

SPLIT = "validation"
CAVEAT = ("validation split: it also set the rhythm head's temperature and abstention levels, so these rates are "
          "optimistic; the test split is kept out")


def head_calls(model: M2AEModel, records: Sequence[AlarmRecord]) -> tuple[list[str | None], list[str]]:
    """Per record: the rhythm head's call on its 290–300 s window in its best input ("OUTSIDE" / "UNCERTAIN"
    when the head abstains; None when the record has no window) and which input was read."""
    import torch

    from ..train.alarm import available_mode

    head = model.heads["rhythm"]
    calls: list[str | None] = [None] * len(records)
    modes = [available_mode(r) or "none" for r in records]
    for mode in ("both", "ecg", "ppg"):  # one batch per input mode
        who = [k for k, r in enumerate(records) if modes[k] == mode]
        if not who:
            continue
        pairs = [records[k].window(0) for k in who]  # the mode guarantees the channels it names are there
        e = np.stack([w[0] for w in pairs if w[0] is not None]) if mode != "ppg" else None
        p = np.stack([w[1] for w in pairs if w[1] is not None]) if mode != "ecg" else None
        t = torch.from_numpy(model.fingerprint(ecg=e, ppg=p)).to(model.device)
        with torch.inference_mode():
            res = head.present(head(t), t)
        outside = res.get("outside", np.zeros(len(who), bool))
        top = res["probabilities"].argmax(1)
        for i, k in enumerate(who):
            calls[k] = ("OUTSIDE" if outside[i] else "UNCERTAIN" if res["uncertain"][i]
                        else res["classes"][int(top[i])])
    return calls, modes


def _rate(flags: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, Any]:
    """Share of True with its record-bootstrap 95 % CI (one row per record)."""
    flags = np.asarray(flags, float)
    if not len(flags):
        return {"n": 0, "count": 0, "rate": None, "ci95": None}
    return {"n": int(len(flags)), "count": int(flags.sum()), "rate": float(flags.mean()),
            "ci95": M.group_bootstrap_ci(lambda rows: float(flags[rows].mean()), groups, seed=seed)}


def rhythm_section(model: M2AEModel, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                   seed: int = 0, records: Sequence[str] | None = None) -> dict[str, Any]:
    """The section (see the module docstring); {"status": ...} when the corpus or the rhythm head is missing."""
    from ..train.alarm_data import default_cinc2015_dir, load_alarm_records
    from ..train.rhythm_head import ALARM_RHYTHMS
    from .alarm_rules import record_rules

    t0 = time.time()
    head = model.heads.get("rhythm")
    if head is None or not set(ALARM_RHYTHMS["VT"] + ALARM_RHYTHMS["other"]) <= set(head.spec.get("classes", [])):
        return {"status": "skipped: the checkpoint's rhythm head has no ICU alarm rhythm classes "
                          "(m2ae heads fit-alarm fits one)"}
    path = Path(data_dir) if data_dir is not None else default_cinc2015_dir()
    if not (path / "labels.csv").is_file():
        return {"status": f"absent: no CinC 2015 corpus at {path} (--cinc2015 DIR or $M2AE_CINC2015_DATA)"}
    recs = [r for r in load_alarm_records(path, splits=(SPLIT,), cache_dir=cache_dir, records=records)
            if r.alarm_type in ALARM_RHYTHMS]
    if not recs:
        return {"status": f"no {SPLIT} records"}
    calls, modes = head_calls(model, recs)
    truth = np.array([r.true_alarm for r in recs])
    kinds = np.array([r.alarm_type for r in recs])
    names = np.array([r.name for r in recs])
    call = np.array([c if c is not None else "NONE" for c in calls], dtype=object)
    in_set = np.array([c in ALARM_RHYTHMS[k] for c, k in zip(call, kinds)])
    abstain = np.isin(call, ["OUTSIDE", "UNCERTAIN", "NONE"])
    rules = np.array([bool(record_rules(r, backs=(0,))["called_true"]) if r.modalities else False for r in recs])
    out: dict[str, Any] = {"data": f"CinC 2015 {SPLIT} split: {len(recs)} records, the 290-300 s window each, in its "
                                   "best input (ECG+PPG, else ECG only, else PPG only)",
                           "caveat": CAVEAT, "by_type": {}}
    for kind in (*ALARM_RHYTHMS, "all"):
        sel = np.ones(len(recs), bool) if kind == "all" else kinds == kind
        t, f = sel & truth, sel & ~truth
        e: dict[str, Any] = {
            "true_alarms": {"head_agrees": _rate(in_set[t], names[t], seed),
                            "head_abstains": _rate(abstain[t], names[t], seed),
                            "head_wrong_class": _rate(~in_set[t] & ~abstain[t], names[t], seed),
                            "rule_checker_agrees": _rate(rules[t], names[t], seed)},
            "false_alarms": {"head_confirms": _rate(in_set[f], names[f], seed),
                             "head_abstains": _rate(abstain[f], names[f], seed),
                             "rule_checker_confirms": _rate(rules[f], names[f], seed)}}
        if t.any():
            a, b = in_set[t].astype(float), rules[t].astype(float)
            e["true_alarms"]["ci95_head_minus_rule_checker"] = M.difference_ci(a, b, names[t], np.mean, seed)
        if f.any():
            a, b = in_set[f].astype(float), rules[f].astype(float)
            e["false_alarms"]["ci95_head_minus_rule_checker"] = M.difference_ci(a, b, names[f], np.mean, seed)
        out["by_type"][kind] = e
    labels, counts = np.unique(call[truth], return_counts=True)
    out["calls_on_true_alarms"] = {str(k): int(v) for k, v in zip(labels, counts)}
    labels, counts = np.unique(call[~truth], return_counts=True)
    out["calls_on_false_alarms"] = {str(k): int(v) for k, v in zip(labels, counts)}
    out["inputs"] = {m: modes.count(m) for m in sorted(set(modes))}
    out["wall_time_s"] = round(time.time() - t0, 1)
    return out


def rhythm_rows(sec: dict[str, Any], add: Any) -> None:
    """Headline rows (through ``report.headline``'s row maker ``add``): agreement on true alarms (higher is
    better) and confirmation of false alarms (lower is better), head vs rule checker, all alarm types."""
    e = (sec.get("by_type") or {}).get("all")
    if not e:
        return
    t, f = e["true_alarms"], e["false_alarms"]
    add("cinc2015_validation", "rhythm_true_alarm_agreement", "rate", True, t["head_agrees"]["rate"],
        "rule_checker", t["rule_checker_agrees"]["rate"], t.get("ci95_head_minus_rule_checker"))
    add("cinc2015_validation", "rhythm_false_alarm_confirmed", "rate", False, f["head_confirms"]["rate"],
        "rule_checker", f["rule_checker_confirms"]["rate"], f.get("ci95_head_minus_rule_checker"))


def rhythm_lines(sec: dict[str, Any]) -> list[str]:
    """Text-table lines of the section."""
    if not sec:
        return []
    if "by_type" not in sec:
        return ["", f"== rhythm head vs alarm labels: {sec.get('status', '')}"]

    def r(x: dict[str, Any]) -> str:
        if x.get("rate") is None:
            return "  n/a"
        ci = x.get("ci95") or [float("nan")] * 2
        return f"{x['count']:3d}/{x['n']:<3d} {x['rate']:5.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"

    lines = ["", f"== rhythm head vs alarm labels — {sec['data']}", f"  ({sec['caveat']})"]
    for kind, e in sec["by_type"].items():
        t, f = e["true_alarms"], e["false_alarms"]
        lines.append(f"  {kind:5s} true alarms: head agrees {r(t['head_agrees'])}  abstains {r(t['head_abstains'])}  "
                     f"wrong class {r(t['head_wrong_class'])}  | rule checker {r(t['rule_checker_agrees'])}")
        lines.append(f"  {kind:5s} false alarms: head confirms {r(f['head_confirms'])}  abstains "
                     f"{r(f['head_abstains'])}  | rule checker {r(f['rule_checker_confirms'])}")
    return lines
