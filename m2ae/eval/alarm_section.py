"""Alarm section of ``m2ae eval`` on the CinC 2015 corpus: true vs false ICU alarm on the **test**
split, the alarm head(s) against the classical baseline (``alarm_baselines``) and the rule checker
(``alarm_rules``).

Every method gives one score per record and decides with a threshold set on the train and validation
records (the head's own, stored in its spec and set on its out-of-fold scores; for the classical
baseline ``m2ae.train.alarm_scores.best_threshold`` on its out-of-fold scores, for the rule checker,
which learns nothing, on its scores); the rule checker is also reported as written (criterion met =
score ≥ 1). Reported per alarm type (VT, other) on the test split: AUROC, TPR, TNR and the Challenge
score 100 (TP+TN)/(TP+TN+FP+5 FN), and over both types pooled: the Challenge score. Each comparison
carries the 95 % CI of model − baseline from resampling test records (``metrics.group_bootstrap_ci``). A late
fusion of the head with the classical baseline (``alarm_fusion``) is judged against the classical
baseline alone: does the fingerprint add to the hand-made features?

When the checkpoint carries no alarm head, one is fitted in the run with ``m2ae.train.alarm``'s
protocol (chosen by cross-validation over the train and validation records, refitted on all of them)
and the section says so. Other checkpoints (``checkpoints``: the simulator-only one in ``m2ae eval``) are
scored as further baselines the same way: their own alarm heads, or heads fitted in the run with that
protocol.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..train.alarm import (MODES, RECORD_SCORES, alarm_heads_of, fingerprint_rows, fit_alarm_heads, head_logit,
                           head_oof_logit, in_mode)
from ..train.alarm_selection import ALARM_TYPES, DEV_SPLITS, per_record
from ..train.alarm_scores import best_threshold, challenge_score, confusion
from ..train.alarm_data import AlarmRecord, split_counts
from . import metrics as M
from .alarm_baselines import fit_classical
from .alarm_fusion import FUSION_HOW, fuse_scores
from .alarm_rules import record_rules

if TYPE_CHECKING:
    from ..model import Head, M2AEModel

UNSCORED = 1e6  # score of a record no method can read: above every real score, so it is called true
ANCHOR = ("PhysioNet/CinC Challenge 2015, event 1 (real-time): the winning entry scored 81.39 on the "
          "Challenge's hidden test set, over all five alarm types and with arterial pressure as well")
BASELINES = ("classical_logistic", "rule_checker")


def alarm_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUROC of ``score``, and TPR, TNR, Challenge score (%) of calling true where score >= threshold."""
    c = confusion(y, score >= threshold)
    pos, neg = c["tp"] + c["fn"], c["tn"] + c["fp"]
    return {"auroc": M.auroc(y.astype(float), score), "tpr": c["tp"] / pos if pos else float("nan"),
            "tnr": c["tn"] / neg if neg else float("nan"), "challenge_score": challenge_score(**c),
            "threshold": float(threshold), **c, "n": int(len(y))}


def _head_scores(model: M2AEModel, heads: dict[str, Head], records: Sequence[AlarmRecord], rows: Any,
                 mode: str | None = None) -> np.ndarray:
    """Per-record logit of P(true alarm) from the head of each record's alarm type (NaN: no rows), over
    the rows of ``mode`` (default: as the head's spec says, ``record_score``)."""
    out = np.full(len(records), np.nan)
    types = np.array([r.alarm_type for r in records])
    for t, head in heads.items():
        use = mode or RECORD_SCORES.get(head.spec.get("record_score", "best_mode"), "available")
        keep = in_mode(rows, records, use) & np.isin(rows.back, head.spec.get("windows_back", [0]))
        keep &= types[rows.record] == t
        sub = rows.take(keep)
        if len(sub.X):
            val = per_record(head_logit(head, sub.X), sub, len(records))
            out[types == t] = val[types == t]
    return out


def _head_threshold(head: Head, alarm_type: str, y: np.ndarray, p: np.ndarray) -> float:
    """The head's stored threshold on P(true) for ``alarm_type``, or one set on ``p`` (scores of held-out records)."""
    stored = (head.spec.get("threshold") or {}).get(alarm_type)
    return float(stored) if stored is not None else best_threshold(y, p)


def _one_metric(metric: str, y: np.ndarray, score: np.ndarray, threshold: float) -> float:
    """AUROC or Challenge score alone (the bootstrap calls this thousands of times)."""
    if metric == "auroc":
        return M.auroc(y.astype(float), score)
    return challenge_score(**confusion(y, score >= threshold))


def _ci(y: np.ndarray, a: np.ndarray, ta: float, b: np.ndarray, tb: float, metric: str, seed: int) -> list[float]:
    """95 % CI of metric(a) − metric(b) on the same records, resampling records."""
    def stat(rows: np.ndarray) -> float:
        return _one_metric(metric, y[rows], a[rows], ta) - _one_metric(metric, y[rows], b[rows], tb)
    return M.group_bootstrap_ci(stat, np.arange(len(y)), seed=seed)


def _alarm_heads(model: M2AEModel, records: Sequence[AlarmRecord],
                 rows: Any) -> tuple[dict[str, Head], str, dict[str, Any]]:
    """({alarm type: head}, where the heads come from, their cards): the checkpoint's own, else fitted
    in this run with ``m2ae heads fit-alarm``'s protocol (reads train and validation only)."""
    heads = alarm_heads_of(model)
    if heads:
        source = "the checkpoint's alarm head(s): " + ", ".join(sorted({h.name for h in heads.values()}))
        return heads, source, {h.name: (model.card.get("heads") or {}).get(h.name, {}) for h in heads.values()}
    fitted, head_cards = fit_alarm_heads(model, records, rows)
    source = ("fitted in this run (the checkpoint has no alarm head) on the train and validation splits, chosen by "
              "cross-validation, as `m2ae heads fit-alarm` does; not stored in the checkpoint")
    return {t: h for h in fitted.values() for t in h.spec["alarm_types"]}, source, head_cards


def _p_true(model: M2AEModel, heads: dict[str, Head], records: Sequence[AlarmRecord],
            rows: Any) -> tuple[np.ndarray, int]:
    """(P(true alarm) per record, how many records no head could read): such a record (no window) is
    called true, an alarm is never silenced unseen."""
    logit = np.nan_to_num(_head_scores(model, heads, records, rows), nan=UNSCORED)
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50))), int((logit >= UNSCORED).sum())


def _oof_p_true(model: M2AEModel, heads: dict[str, Head], records: Sequence[AlarmRecord], rows: Any) -> np.ndarray:
    """P(true alarm) per train and validation record from a model that never saw it (NaN elsewhere):
    each type's head refitted fold by fold with its own settings (``head_oof_logit``). A head fitted
    before cross-validation learnt from the train split only: its own scores of the validation records."""
    out = np.full(len(records), np.nan)
    types = np.array([r.alarm_type for r in records])
    split = np.array([r.split for r in records])
    for head in {id(h): h for h in heads.values()}.values():  # a joint head serves both types: refit it once
        its = {t: h for t, h in heads.items() if h is head}
        oof = head_oof_logit(head, records, rows)
        if oof is None:
            oof = np.where(split == "validation", _head_scores(model, its, records, rows), np.nan)
        mine = np.isin(types, list(its))
        out[mine] = 1.0 / (1.0 + np.exp(-np.clip(oof[mine], -50, 50)))
    return out


def alarm_section(model: M2AEModel, records: Sequence[AlarmRecord], seed: int = 0,
                  checkpoints: dict[str, M2AEModel] | None = None) -> dict[str, Any]:
    """The alarm section (see the module docstring); ``records`` holds the train, validation and test records.

    checkpoints : other checkpoints compared as baselines ({name: model}, e.g. the simulator-only one),
        each with its own alarm heads, or heads fitted here with the same protocol when it has none.
    """
    records = list(records)
    y = np.array([r.true_alarm for r in records], bool)
    types = np.array([r.alarm_type for r in records])
    split = np.array([r.split for r in records])
    rows = fingerprint_rows(model, records)
    heads, source, head_cards = _alarm_heads(model, records, rows)
    model_p, unscored = _p_true(model, heads, records, rows)
    classical_fit, classical, classical_desc = fit_classical(records)
    classical = np.nan_to_num(classical, nan=UNSCORED)
    dev = np.isin(split, DEV_SPLITS)
    # the scores thresholds and the fusion are set on: out-of-fold on train + validation (an unreadable
    # record: P = 1 / UNSCORED, called true), the refitted models' on test
    model_set = np.where(dev, np.nan_to_num(_oof_p_true(model, heads, records, rows), nan=1.0), model_p)
    classical_set = np.where(dev, np.nan_to_num(classical_fit.oof, nan=UNSCORED), classical)
    rules = [record_rules(r) for r in records]
    rule_score = np.array([min(o["score"], UNSCORED) for o in rules])
    scores = {"model": model_p, "classical_logistic": classical, "rule_checker": rule_score}
    other_heads: dict[str, dict[str, Head]] = {}
    other_source: dict[str, str] = {}
    for name, other in (checkpoints or {}).items():
        other_rows = fingerprint_rows(other, records)
        other_heads[name], other_source[name], _ = _alarm_heads(other, records, other_rows)
        scores[name] = _p_true(other, other_heads[name], records, other_rows)[0]
    baselines = (*BASELINES, *other_heads)

    out: dict[str, Any] = {
        "data": "CinC 2015 test split (real ICU alarms); fitted, chosen (cross-validation) and thresholded on the "
                "train and validation splits",
        "records": split_counts(records), "head_source": source, "anchor": ANCHOR,
        "heads": {n: {k: c.get(k) for k in ("shape", "inputs", "calibration", "threshold", "selection")}
                  for n, c in head_cards.items()},
        "classical_logistic": classical_desc,
        "rule_checker": {"how": "m2ae.eval.alarm_rules: the Challenge's alarm criteria on the detected beats of "
                                "the last 20 s (VT: >= 5 consecutive beats >= 120 ms wide above 100 bpm; asystole "
                                "> 4 s without a beat on ECG and PPG; brady < 40 bpm for 5 beats; tachy > 140 bpm "
                                "for 17 beats; VF: 3-8 Hz power without organised beats); graded score = progress "
                                "towards the criterion, threshold set on the train and validation records "
                                "('as_written': score >= 1)"},
        "unscored_records_called_true": {"model": unscored,
                                         "classical_logistic": int((classical >= UNSCORED).sum()),
                                         "rule_checker": int((rule_score >= UNSCORED).sum())},
        "checkpoints": {n: {"version": o.version, "path": str(o.path), "head_source": other_source[n]}
                        for n, o in (checkpoints or {}).items()},
        "head_plus_classical": {"how": FUSION_HOW},
    }
    test = split == "test"
    called: dict[str, np.ndarray] = {k: np.zeros(len(records), bool)
                                     for k in (*scores, "rule_as_written", "head_plus_classical")}
    thresholds: dict[str, dict[str, float]] = {k: {} for k in scores}
    for t in ALARM_TYPES:
        if t not in heads:  # a checkpoint whose alarm heads cover the other type only
            out[t] = {"status": f"no alarm head for {t} alarms in this checkpoint"}
            continue
        val, te = dev & (types == t), test & (types == t)
        thresholds["model"][t] = _head_threshold(heads[t], t, y[val], model_set[val])
        for name, h in other_heads.items():
            thresholds[name][t] = (_head_threshold(h[t], t, y[val], scores[name][val]) if t in h
                                   else best_threshold(y[val], scores[name][val]))
        thresholds["classical_logistic"][t] = best_threshold(y[val], classical_set[val])
        thresholds["rule_checker"][t] = best_threshold(y[val], rule_score[val])
        entry: dict[str, Any] = {k: alarm_metrics(y[te], s[te], thresholds[k][t]) for k, s in scores.items()}
        entry["rule_checker"]["as_written"] = alarm_metrics(y[te], rule_score[te], 1.0)
        for k, s in scores.items():
            called[k][te] = s[te] >= thresholds[k][t]
        called["rule_as_written"][te] = rule_score[te] >= 1.0
        entry["model_by_input"] = {}
        for mode in MODES:
            s_mode = _head_scores(model, {t: heads[t]}, records, rows, mode)
            ok = te & np.isfinite(s_mode)
            entry["model_by_input"][mode] = {"auroc": M.auroc(y[ok].astype(float), s_mode[ok]), "n": int(ok.sum())}
        entry["ci95_model_minus"] = {
            b: {m: _ci(y[te], model_p[te], thresholds["model"][t], scores[b][te], thresholds[b][t], m, seed)
                for m in ("auroc", "challenge_score")} for b in baselines}
        entry["head_plus_classical"] = _fused_entry(model_set, classical_set, y, types == t, split, thresholds, t,
                                                    called["head_plus_classical"], seed)
        entry["rule_criteria_met"] = {c: int(sum(1 for o, keep in zip(rules, te) if keep and o["called_true"]
                                                 and o["criterion"] == c))
                                      for c in ("vt", "asystole", "brady", "tachy", "vf", "no usable channel")}
        out[t] = entry
    pooled: dict[str, Any] = {}
    for k in (*scores, "rule_as_written", "head_plus_classical"):
        c = confusion(y[test], called[k][test])
        pos, neg = c["tp"] + c["fn"], c["tn"] + c["fp"]
        pooled[k] = {"challenge_score": challenge_score(**c), "tpr": c["tp"] / pos if pos else float("nan"),
                     "tnr": c["tn"] / neg if neg else float("nan"), **c, "n": int(test.sum())}

    def pooled_ci(b: str, a: str = "model") -> list[float]:
        yt, ca, cb = y[test], called[a][test], called[b][test]
        return M.group_bootstrap_ci(lambda r: challenge_score(**confusion(yt[r], ca[r]))
                                    - challenge_score(**confusion(yt[r], cb[r])), np.arange(len(yt)), seed=seed)
    pooled["ci95_model_minus"] = {b: {"challenge_score": pooled_ci(b)} for b in baselines}
    pooled["head_plus_classical"]["ci95_minus_classical_logistic"] = pooled_ci("classical_logistic",
                                                                               "head_plus_classical")
    out["all_types"] = pooled
    out["thresholds"] = thresholds
    return out


def _fused_entry(model_p: np.ndarray, classical: np.ndarray, y: np.ndarray, of_type: np.ndarray,
                 split: np.ndarray, thresholds: dict[str, dict[str, float]], alarm_type: str,
                 called: np.ndarray, seed: int) -> dict[str, Any]:
    """Test metrics of the head + classical late fusion for one alarm type (``alarm_fusion``), with the
    95 % CIs of fused − classical and fused − head; fills ``called`` on the type's test records.
    ``model_p`` and ``classical`` hold out-of-fold scores on the train and validation records, which
    choose the fusion, and the refitted models' scores on the test records."""
    idx = np.flatnonzero(of_type & np.isin(split, (*DEV_SPLITS, "test")))
    fused, threshold, chosen = fuse_scores(model_p[idx], classical[idx], y[idx], np.isin(split[idx], DEV_SPLITS),
                                           UNSCORED)
    te = split[idx] == "test"
    yt, ft = y[idx][te], fused[te]
    called[idx[te]] = ft >= threshold
    entry: dict[str, Any] = {**alarm_metrics(yt, ft, threshold), **chosen}
    entry["ci95_minus"] = {
        b: {m: _ci(yt, ft, threshold, s[idx][te], thresholds[b][alarm_type], m, seed)
            for m in ("auroc", "challenge_score")}
        for b, s in (("classical_logistic", classical), ("model", model_p))}
    return entry


def alarm_rows(sec: dict[str, Any], add: Any) -> None:
    """Headline rows of an alarm section through ``add(data, task, metric, higher_is_better, model,
    baseline, baseline_value, ci)`` (``m2ae.eval.report.headline``'s row maker)."""
    if not sec or "all_types" not in sec:
        return
    for t in ALARM_TYPES:
        e = sec[t]
        if "model" not in e:
            continue
        for b in e["ci95_model_minus"]:
            for metric in ("auroc", "challenge_score"):
                add("cinc2015", f"alarm_{t}", metric, True, e["model"][metric], b, e[b][metric],
                    e["ci95_model_minus"][b][metric])
        fused = e.get("head_plus_classical")
        if fused:  # does the fingerprint add to the hand-made features?
            for metric in ("auroc", "challenge_score"):
                add("cinc2015", f"alarm_{t}_head_plus_classical", metric, True, fused[metric], "classical_logistic",
                    e["classical_logistic"][metric], fused["ci95_minus"]["classical_logistic"][metric])
    pooled = sec["all_types"]
    for b in pooled["ci95_model_minus"]:
        add("cinc2015", "alarm_all_types", "challenge_score", True, pooled["model"]["challenge_score"], b,
            pooled[b]["challenge_score"], pooled["ci95_model_minus"][b]["challenge_score"])
    fused_all = pooled.get("head_plus_classical")
    if fused_all and "ci95_minus_classical_logistic" in fused_all:
        add("cinc2015", "alarm_all_types_head_plus_classical", "challenge_score", True, fused_all["challenge_score"],
            "classical_logistic", pooled["classical_logistic"]["challenge_score"],
            fused_all["ci95_minus_classical_logistic"])


def alarm_lines(sec: dict[str, Any]) -> list[str]:
    """The text-table lines of an alarm section."""
    if not sec or "all_types" not in sec:
        return []

    def f(v: Any) -> str:
        return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"

    lines = [f"alarm true vs false (test split; head: {sec['head_source'][:90]})",
             f"  {'':30s} {'AUROC':>6s} {'TPR':>6s} {'TNR':>6s} {'score':>6s}  (Challenge score, %)"]
    for t in (t for t in ALARM_TYPES if "model" in sec[t]):
        for who in ("model", *sec[t]["ci95_model_minus"]):
            m = sec[t][who]
            lines.append(f"  {t + ' ' + who:30s} {f(m['auroc']):>6s} {f(m['tpr']):>6s} {f(m['tnr']):>6s} "
                         f"{f(m['challenge_score']):>6s}")
        m = sec[t].get("head_plus_classical")
        if m:
            lines.append(f"  {t + ' head + classical (fused)':30s} {f(m['auroc']):>6s} {f(m['tpr']):>6s} "
                         f"{f(m['tnr']):>6s} {f(m['challenge_score']):>6s}")
    p = sec["all_types"]
    lines.append("  all types, Challenge score: " + ", ".join(
        f"{who} {f(p[who]['challenge_score'])}"
        for who in ("model", *p["ci95_model_minus"], "rule_as_written", "head_plus_classical") if who in p)
        + "  (anchor: 81.39, Challenge 2015 event-1 winner, hidden test set, five types + arterial pressure)")
    return lines
