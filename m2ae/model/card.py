"""Model cards: what a checkpoint was trained on, how, and how it scores (from ``m2ae eval``).

The training facts live inside the checkpoint (``ckpt["card"]``); a JSON + Markdown copy lives
beside it so evaluation can add its results without rewriting the binary:

- shipped demo ``m2ae/model/m2ae-demo.pt`` -> ``m2ae/model/model_card.json`` + ``MODEL_CARD.md``
- any other ``X.pt`` -> ``X.card.json`` + ``X.card.md``

``load_model`` merges the JSON card over the checkpoint's, so ``model.card["eval"]`` is the latest
evaluation. Evaluation writes it with ``update_card(path, eval_results)``.
"""
from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import DEFAULT_CHECKPOINT, save_checkpoint
from ..jsonable import to_jsonable

NOT_FOR_CLINICAL_USE = ("Research demo, not for clinical use: trained on simulated signals; "
                        "probabilities are not diagnoses.")


def card_paths(checkpoint_path: str | Path | None = None) -> tuple[Path, Path]:
    """(json_path, markdown_path) of the card beside a checkpoint (default: the shipped one)."""
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else DEFAULT_CHECKPOINT
    if ckpt.suffix == ".json":
        return ckpt, ckpt.with_suffix(".md") if ckpt.name != "model_card.json" else ckpt.with_name("MODEL_CARD.md")
    if ckpt.resolve() == DEFAULT_CHECKPOINT.resolve():
        return ckpt.with_name("model_card.json"), ckpt.with_name("MODEL_CARD.md")
    return ckpt.with_suffix(".card.json"), ckpt.with_suffix(".card.md")


def read_card(checkpoint_path: str | Path | None = None) -> dict[str, Any]:
    """The JSON card beside a checkpoint, or {} when there is none."""
    json_path, _ = card_paths(checkpoint_path)
    if not json_path.exists():
        return {}
    return json.loads(json_path.read_text())


def write_card(checkpoint_path: str | Path | None, card: dict[str, Any]) -> tuple[Path, Path]:
    """Write the JSON and Markdown card beside a checkpoint. Returns both paths."""
    json_path, md_path = card_paths(checkpoint_path)
    card = to_jsonable(card)
    json_path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    md_path.write_text(render_markdown(card))
    return json_path, md_path


def portable_paths(obj: Any, cwd: str | Path | None = None, home: str | Path | None = None) -> Any:
    """``obj`` (JSON-like) with the absolute paths in its strings made portable before a card is shared:
    under the working folder → relative to it, under its parent → ``../…``, under the home folder → ``~/…``.

    >>> portable_paths({"p": "/w/repo/m2ae/x.pt", "how": "of /w/shared/data", "c": "/h/u/.cache"}, "/w/repo", "/h/u")
    {'p': 'm2ae/x.pt', 'how': 'of ../shared/data', 'c': '~/.cache'}
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    prefixes = [(f"{base}/", ""), (f"{base.parent}/", "../"), (f"{Path(home) if home else Path.home()}/", "~/")]
    prefixes = sorted(((p, r) for p, r in prefixes if p != "/"), key=lambda pr: -len(pr[0]))

    def fix(v: Any) -> Any:
        if isinstance(v, str):
            for p, r in prefixes:
                v = v.replace(p, r)
            return v
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v
    return fix(obj)


def save_checkpoint_and_card(path: str | Path, net: Any, heads: dict[str, Any] | None,
                             card: dict[str, Any]) -> str:
    """``save_checkpoint`` and the JSON + Markdown card beside it, the card stamped with the weights'
    ``version`` (the key indexes and the app check it by). Returns that version."""
    card["version"] = save_checkpoint(path, net, heads, card)
    write_card(path, card)
    return card["version"]


def update_card(path: str | Path, eval_results: dict[str, Any]) -> dict[str, Any]:
    """Store ``m2ae eval`` results in the card beside checkpoint ``path`` (or at card JSON ``path``).

    The checkpoint itself is not rewritten; ``load_model`` merges this card. Returns the new card.

    >>> update_card("m2ae/model/m2ae-demo.pt", {"simulated": {...}, "real": {...}})  # doctest: +SKIP
    """
    card = read_card(path)
    if not card and Path(path).suffix == ".pt":
        from .checkpoint import load_checkpoint

        card = dict(load_checkpoint(path).get("card", {}))
    card["eval"] = portable_paths(to_jsonable(eval_results))  # no machine's folders in a shared card
    card["eval_date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_card(path, card)
    return card


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"[{len(v)} values]"
    if isinstance(v, dict):
        return json.dumps(v)
    return str(v)


def _table(d: dict[str, Any], prefix: str = "") -> list[str]:
    rows = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and all(not isinstance(x, dict) for x in v.values()) and len(v) <= 12:
            rows.append(f"| {key} | {', '.join(f'{a}: {_fmt(b)}' for a, b in v.items())} |")
        elif isinstance(v, dict):
            rows.extend(_table(v, prefix=f"{key}."))
        else:
            rows.append(f"| {key} | {_fmt(v)} |")
    return rows


LABEL_SOURCES = {"real": "learnt from real labels", "simulated": "learnt from simulated labels",
                 "real+simulated": "learnt from real and simulated labels",  # the rhythm head (m2ae.train.rhythm_head)
                 "unknown": "labels of unknown origin"}


def head_labels_source(entry: dict[str, Any] | None) -> str:
    """Where a head's labels came from: "real", "simulated" or "unknown", from its card entry.

    The entry's ``labels_source`` when it has one; cards written before that field existed are read
    from ``training_data`` (the demo heads name ``m2ae.simulate``, the alarm heads ``real labels``)."""
    entry = entry or {}
    source = entry.get("labels_source")
    if source in LABEL_SOURCES:
        return str(source)
    text = str(entry.get("training_data", "")).lower()
    if "m2ae.simulate" in text or "simulat" in text:
        return "simulated"
    if "real labels" in text or "cinc2015" in text:
        return "real"
    return "unknown"


_TASK_NAMES = {"ppg_to_ecg": "PPG→ECG from PPG alone", "ecg_to_ppg": "ECG→PPG from ECG alone",
               "same_subject_top1": "same-subject retrieval",
               "ppg_to_paired_ecg_top1": "PPG→paired ECG, fingerprint only",
               "ppg_to_paired_ecg_top1_two_stage":
                   "PPG→paired ECG, two-stage (fingerprint shortlist 50 + lagged QRS-band correlation)",
               "ppg_to_ecg_record_top1": "patient matching: PPG-only → ECG-only fingerprint of the same record",
               "ppg_to_ecg_record_top5": "patient matching: PPG-only → ECG-only fingerprint of the same record",
               "ppg_to_ecg_record_top1_centred": "patient matching, fingerprints centred per input (train-split means)",
               "ppg_to_ecg_record_top5_centred": "patient matching, fingerprints centred per input (train-split means)",
               "alarm_VT": "VT alarm: true vs false", "alarm_other": "other alarms: true vs false",
               "alarm_all_types": "all alarms: true vs false",
               "alarm_VT_head_plus_classical": "VT alarm: alarm head + classical features (late fusion)",
               "alarm_other_head_plus_classical": "other alarms: alarm head + classical features (late fusion)",
               "alarm_all_types_head_plus_classical": "all alarms: alarm head + classical features (late fusion)"}
_METRIC_NAMES = {"median_r_lagged": "median r, lagged", "median_nmse_lagged": "median NMSE, lagged",
                 "median_r": "median r, plain (timing from the typical pulse arrival)",
                 "median_nmse_hidden": "NMSE on hidden patches", "top1": "top-1", "top5": "top-5", "auroc": "AUROC",
                 "mae": "MAE (years)", "challenge_score": "Challenge score, % (TP+TN)/(TP+TN+FP+5·FN)"}
_MODE_NAMES = {"both": "ECG+PPG", "ecg": "ECG only", "ppg": "PPG only"}
_DATA_NAMES = {"simulated_heldout": "simulated", "real": "real", "cinc2015": "real ICU (CinC 2015 test split)"}
README_TABLE_START, README_TABLE_END = "<!-- eval-table:start -->", "<!-- eval-table:end -->"


def task_label(task: str) -> str:
    """Readable name of a headline task key (``head_rhythm_ecg`` → "rhythm head (ECG only)")."""
    if task in _TASK_NAMES:
        return _TASK_NAMES[task]
    if task.startswith("masked_"):  # masked_50_complementary_ecg
        _, ratio, how, modality = task.split("_", 3)
        return f"{modality.upper()}, {ratio} % {how} mask"
    if task.startswith("head_"):    # head_rhythm_both
        name, mode = task[len("head_"):].rsplit("_", 1)
        return f"{name} head ({_MODE_NAMES.get(mode, mode)})"
    return task


def _value(v: float | None) -> str:
    return "n/a" if v is None or not np.isfinite(v) else (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}")


_VERDICT_CELLS = {"better": "better", "tie": "tie", "worse": "**worse**"}


def format_interval(ci: Sequence[float] | None) -> str:
    """A 95 % CI ``[low, high]`` (in the metric's own units) with signs, or n/a."""
    if not ci or len(ci) != 2 or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in ci):
        return "n/a"
    width = max(abs(ci[0]), abs(ci[1]))
    digits = 3 if width < 10 else 1
    return f"[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def headline_rows(headline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Eval headline rows with readable names (the README table, the app's Model card page)."""
    return [{"data": _DATA_NAMES.get(h["data"], h["data"]), "task": task_label(h["task"]),
             "metric": _METRIC_NAMES.get(h["metric"], h["metric"]), "model": h["model"],
             "baseline": h["baseline"].replace("_", " "), "baseline value": h["baseline_value"],
             "model − baseline, 95 % CI": format_interval(h.get("ci95")),
             "verdict": h.get("verdict") or "n/a"} for h in headline]


def render_headline_table(card: dict[str, Any]) -> str:
    """The eval headline of a card (``m2ae eval --write-card``) as a Markdown table: each model figure
    beside the baseline measured in the same run, plus one summary sentence. Empty without eval."""
    ev = card.get("eval") or {}
    if not ev.get("headline"):
        return ""
    lines = ["| data | task | metric | model | baseline | baseline value | model − baseline, 95 % CI | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in headline_rows(ev["headline"]):
        lines.append(f"| {r['data']} | {r['task']} | {r['metric']} | {_value(r['model'])} | {r['baseline']} | "
                     f"{_value(r['baseline value'])} | {r['model − baseline, 95 % CI']} | "
                     f"{_VERDICT_CELLS.get(r['verdict'], 'n/a')} |")
    counts = [f"of {v['comparisons']} {_DATA_NAMES.get(k, k)} comparisons the model is better in "
              f"{v.get('better', '?')}, "
              f"tied in {v.get('tie', '?')} and worse in {v.get('worse', '?')}"
              for k, v in (ev.get("summary") or {}).items()]
    joined = "; ".join(counts)
    sentence = (f"{joined[:1].upper() + joined[1:]} (better / worse: the 95 % CI of model − baseline, from "
                f"resampling whole subjects or records, excludes 0; eval date {card.get('eval_date', '?')}, "
                f"{ev.get('wall_time_s', float('nan')):.0f} s).")
    priv = (ev.get("simulated_heldout") or {}).get("privacy") or {}
    if priv:
        re_id, dec = priv["reidentification_top1"], priv["fingerprint_decoder_nmse"]
        sentence += (f" Privacy (simulated): re-identification top-1 from fingerprints {re_id['model']:.2f} "
                     f"(chance {re_id['chance']:.3f}); a ridge decoder from fingerprint to raw window reaches NMSE "
                     f"{dec['ecg']:.2f} (ECG) / {dec['ppg']:.2f} (PPG), where 1.0 is no better than the mean.")
    alarm = (ev.get("cinc2015") or {}).get("alarm") or {}
    if "all_types" in alarm:
        sentence += (f" Alarm rows (real ICU, CinC 2015 test split, {alarm['records']['test']['records']} records): "
                     f"head from {alarm['head_source'].split(':')[0].split(' (')[0]}; fitted, chosen "
                     f"(cross-validation) and thresholded on the train and validation splits. Anchor: "
                     f"{alarm['anchor']}.")
    stress = (ev.get("simulated_heldout") or {}).get("rhythm_without_p_waves") or {}
    if "without_p_waves" in stress:
        w, wo = stress["with_p_waves"], stress["without_p_waves"]

        def pct(row: dict[str, Any] | None, who: str) -> str:
            v = (row or {}).get(who)
            return "n/a" if v is None else f"{100 * v:.0f} %"

        sentence += (f" Stress test ({stress['subjects']} simulated sinus-rhythm subjects drawn without P waves): "
                     f"called AF in {pct(wo.get('ecg'), 'model')} of windows from ECG alone and "
                     f"{pct(wo.get('both'), 'model')} from ECG+PPG by the model, "
                     f"{pct(wo.get('ecg'), 'baseline_logistic_hrv_pat')} / "
                     f"{pct(wo.get('both'), 'baseline_logistic_hrv_pat')} by the HRV baseline "
                     f"(with P waves: {pct(w.get('ecg'), 'model')} / {pct(w.get('both'), 'model')} by the model).")
    return "\n".join(lines + ["", sentence])


def update_readme_table(readme_path: str | Path, card: dict[str, Any]) -> bool:
    """Replace the block between ``README_TABLE_START`` and ``README_TABLE_END`` in a README with
    ``render_headline_table(card)``. Returns whether the file changed."""
    path = Path(readme_path)
    text = path.read_text()
    a, b = text.find(README_TABLE_START), text.find(README_TABLE_END)
    if a < 0 or b < a:
        raise ValueError(f"{path}: no {README_TABLE_START} ... {README_TABLE_END} block")
    new = text[:a + len(README_TABLE_START)] + "\n" + render_headline_table(card) + "\n" + text[b:]
    if new != text:
        path.write_text(new)
    return new != text


def render_markdown(card: dict[str, Any]) -> str:
    """A readable Markdown model card from the card dict (all numbers come from the dict)."""
    lines = [f"# Model card: {card.get('name', 'M2AE')}", "", f"> {card.get('disclaimer', NOT_FOR_CLINICAL_USE)}", ""]
    if card.get("summary"):
        lines += [card["summary"], ""]
    sections = [("Model", "model"), ("Training data", "data"), ("Training run", "training"),
                ("Hardware", "hardware"), ("Equivalence checks", "equivalence"),
                ("Cross-modal timing (where `reconstruct` places a modality rebuilt from the other)", "timing")]
    for title, key in sections:
        if card.get(key):
            lines += [f"## {title}", "", "| field | value |", "| --- | --- |", *_table(card[key]), ""]
    if card.get("heads"):
        lines += ["## Task heads (frozen-fingerprint probes)", "",
                  "| head | labels | kind | outputs | shape (chosen on the calibration split) | trained on "
                  "| held-out metric | date |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, h in card["heads"].items():
            metric = ", ".join(f"{k}: {_fmt(v)}" for k, v in (h.get("metrics") or {}).items())
            outs = ", ".join(map(str, h.get("classes", []))) or h.get("unit", "")
            lines.append(f"| {name} | {head_labels_source(h)} | {h.get('kind', '')} | {outs} | {h.get('shape', '')} "
                         f"| {h.get('training_data', '')} "
                         f"| {metric} | {h.get('date', '')} |")
        for name, h in card["heads"].items():
            if h.get("definition"):
                lines.append(f"\n- **{name}**: {h['definition']}")
        lines.append("")
    if card.get("eval"):
        headline = render_headline_table(card)
        if headline:
            lines += [f"## Evaluation headline (`m2ae eval`, {card.get('eval_date', '')})", "", headline, ""]
        lines += [f"## Evaluation, every figure (`m2ae eval`, {card.get('eval_date', '')})", "", "| metric | value |",
                  "| --- | --- |", *_table(card["eval"]), ""]
    else:
        lines += ["## Evaluation", "", "Not yet evaluated: run `m2ae eval --write-card`.", ""]
    if card.get("limitations"):
        lines += ["## Limitations", "", *[f"- {x}" for x in card["limitations"]], ""]
    return "\n".join(lines)

