"""The report of an ``m2ae eval`` result: one headline row per model-vs-baseline comparison with its
verdict (``headline``), the count of verdicts per data set (``summarize_headline``) and the text
table the CLI prints (``format_table``)."""
from __future__ import annotations

import math
from typing import Any

from ..contract import MODALITIES
from . import metrics as M
from .cinc2015 import cinc2015_lines, cinc2015_rows
from .reconstruction import RECONSTRUCTION_SCORES
from .rhythm_section import rhythm_lines, rhythm_rows

# data sets with the shared sections (cross-modal, masked, retrieval), in report order
DATA_SETS = ("simulated_heldout", "real", "cinc2015")


def headline(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (data, task, baseline): the model's number beside the baseline's, and which is better.

    Rows: {"data", "task", "metric", "higher_is_better", "model", "baseline", "baseline_value",
    "model_better", "ci95", "verdict"}. model_better compares the two point estimates (None when
    either is missing); ci95 is the 95 % CI of model − baseline from resampling subjects (simulated)
    or records (real), and verdict is "better" / "worse" when that CI excludes 0, "tie" when it holds
    0 (None without a CI): a difference smaller than the data can resolve is not called a win.
    """
    rows: list[dict] = []

    def add(data, task, metric, hib, model_v, base_name, base_v, ci=None):
        ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (model_v, base_v))
        rows.append({"data": data, "task": task, "metric": metric, "higher_is_better": hib, "model": model_v,
                     "baseline": base_name, "baseline_value": base_v,
                     "model_better": (model_v > base_v if hib else model_v < base_v) if ok else None,
                     "ci95": ci, "verdict": M.verdict(ci, hib) if ok else None})

    for data in DATA_SETS:
        sec = res.get(data, {})
        if "cross_modal" not in sec:
            continue
        for task in ("ppg_to_ecg", "ecg_to_ppg"):
            cm = sec["cross_modal"][task]
            cis = cm.get("ci95_model_minus", {})
            for base in ("ridge", "mean_beat_template"):
                for metric in RECONSTRUCTION_SCORES:
                    add(data, task, metric, "nmse" not in metric, cm["model"][metric], base, cm[base][metric],
                        cis.get(base, {}).get(metric))
        for m in MODALITIES:
            e = sec["masked"][m]
            add(data, f"masked_50_complementary_{m}", "median_nmse_hidden", False, e["model"],
                "linear_interpolation", e["linear_interpolation"], e.get("ci95_model_minus_linear_interpolation"))
        for key, e in sec["retrieval"].items():
            add(data, key, "top1", True, e["model"], "features", e["features"], e.get("ci95_model_minus_features"))
        two = sec["retrieval"].get("ppg_to_paired_ecg_top1", {}).get("model_two_stage")
        if two is not None:
            pair = sec["retrieval"]["ppg_to_paired_ecg_top1"]
            add(data, "ppg_to_paired_ecg_top1_two_stage", "top1", True, two["top1"], "features", pair["features"],
                two.get("ci95_model_minus_features"))
            if "mean_beat_template_two_stage" in pair:
                tpl = pair["mean_beat_template_two_stage"]
                add(data, "ppg_to_paired_ecg_top1_two_stage", "top1", True, two["top1"], "mean_beat_template_two_stage",
                    tpl["top1"], tpl.get("ci95_model_two_stage_minus_this"))
        for head, e in (sec.get("heads") or {}).items():
            if not isinstance(e, dict) or "metric" not in e:
                continue
            for inp in ("both", "ecg", "ppg"):
                row = e.get(inp, {})
                base_name = "logistic_hrv_pat" if e["metric"] == "auroc" else "linear_hrv_pat"
                add(data, f"head_{head}_{inp}", e["metric"], e["metric"] == "auroc", row.get("model"), base_name,
                    row.get(f"baseline_{base_name}"), row.get("ci95_model_minus_baseline"))
    cinc2015_rows(res.get("cinc2015") or {}, add)  # record-level matching and the alarm heads
    rhythm_rows(res.get("cinc2015_rhythm") or {}, add)  # rhythm head vs alarm labels (validation split)
    return rows


def summarize_headline(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per data set: comparisons, model_better (point estimates), and better / tie / worse verdicts."""
    out = {}
    for data in DATA_SETS:
        mine = [r for r in rows if r["data"] == data and r["model_better"] is not None]
        if mine:
            verdicts = [r.get("verdict") for r in mine]
            out[data] = {"comparisons": len(mine), "model_better": int(sum(r["model_better"] for r in mine)),
                         **{v: verdicts.count(v) for v in ("better", "tie", "worse")}}
    return out


def format_table(res: dict[str, Any]) -> str:
    """Readable text table of ``run_eval``'s result."""
    lines = [f"m2ae eval — model {res['model'].get('name')} ({res['model'].get('version')}), {res['wall_time_s']} s"]

    def f(v):
        return "  n/a " if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:6.3f}"

    for name in DATA_SETS:
        sec = res.get(name, {})
        if name == "cinc2015" and not sec:
            continue  # a run that did not ask for the real-corpus section
        lines += ["", f"== {name}: {sec.get('data', sec.get('status', ''))}"]
        if "cross_modal" not in sec:
            continue
        lines.append(f"{'cross-modal (median)':34s} {'r':>6s} {'NMSE':>6s} {'r@lag':>6s} {'NMSE@lag':>8s}")
        for task in ("ppg_to_ecg", "ecg_to_ppg"):
            for who, m in sec["cross_modal"][task].items():
                if who in ("by_record", "ci95_model_minus"):
                    continue
                lines.append(f"  {task + ' ' + who:32s} {f(m['median_r'])} {f(m['median_nmse'])} "
                             f"{f(m['median_r_lagged'])} {f(m['median_nmse_lagged'])}")
            for rec_name, per in sec["cross_modal"][task].get("by_record", {}).items():
                lines.append(f"    {rec_name}: r@lag " + ", ".join(
                    f"{who} {f(m['median_r_lagged']).strip()}" for who, m in per.items())
                    + f" (lag {per['model']['median_lag_ms']:.0f} ms model, "
                      f"{per['mean_beat_template']['median_lag_ms']:.0f} ms template)")
        lines.append("masked 50% complementary (NMSE on hidden patches)")
        for m in MODALITIES:
            e = sec["masked"][m]
            lines.append(f"  {m:32s} model {f(e['model'])}   linear interpolation {f(e['linear_interpolation'])}")
        lines.append("retrieval top-1")
        for key, e in sec["retrieval"].items():
            lines.append(f"  {key:32s} model {f(e['model'])}   features {f(e['features'])}   chance {f(e['chance'])}")
            if "model_two_stage" in e:
                two = e["model_two_stage"]
                lines.append(f"  {key + ' two-stage':32s} model {f(two['top1'])}   (fingerprint shortlist of "
                             f"{two['shortlist']}, recall {f(two['shortlist_recall']).strip()}; re-ranked by "
                             "QRS-band correlation with the ECG rebuilt from PPG)")
            if "mean_beat_template_two_stage" in e:
                lines.append(f"  {key + ' two-stage template':32s} base  "
                             f"{f(e['mean_beat_template_two_stage']['top1'])}   (same stages, mean-beat template "
                             "at pulse peaks instead of the model's ECG)")
        if isinstance(sec.get("heads"), dict) and "status" not in sec["heads"]:
            lines.append("heads (AUROC or MAE): both / ECG only / PPG only — model vs baseline")
            for h, e in sec["heads"].items():
                if "metric" not in e:
                    continue
                cells = []
                for inp in ("both", "ecg", "ppg"):
                    row = e.get(inp, {})
                    b = row.get("baseline_logistic_hrv_pat", row.get("baseline_linear_hrv_pat"))
                    cells.append(f"{inp} {f(row.get('model'))} vs {f(b)}")
                lines.append(f"  {h + ' ' + e['metric']:32s} " + " | ".join(cells))
        lines += cinc2015_lines(sec) if name == "cinc2015" else []
        p = sec.get("privacy")
        if p is None:
            continue
        lines.append(f"privacy: re-identification {f(p['reidentification_top1']['model'])} "
                     f"(chance {f(p['reidentification_top1']['chance'])}); fingerprint→window NMSE "
                     f"ECG {f(p['fingerprint_decoder_nmse']['ecg'])} PPG {f(p['fingerprint_decoder_nmse']['ppg'])}")
        stress = sec.get("rhythm_without_p_waves") or {}
        if "without_p_waves" in stress:
            lines.append("stress: sinus rhythm called AF (share of windows), model vs baseline — "
                         "with P waves | without")
            for inp in ("both", "ecg", "ppg"):
                w, wo = stress["with_p_waves"].get(inp, {}), stress["without_p_waves"].get(inp, {})
                lines.append(f"  {inp:5s} {f(w.get('model'))} vs {f(w.get('baseline_logistic_hrv_pat'))} | "
                             f"{f(wo.get('model'))} vs {f(wo.get('baseline_logistic_hrv_pat'))}")
    lines += rhythm_lines(res.get("cinc2015_rhythm") or {})
    rows = [r for r in res.get("headline", []) if r["model_better"] is not None]
    if rows:
        lines += ["", "headline: model vs baseline, 95 % CI of model - baseline, verdict"]
        for r in rows:
            ci = r.get("ci95")
            ci_text = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci and all(math.isfinite(v) for v in ci) else "n/a"
            lines.append(f"  {r['data'][:9]:9s} {r['task'] + ' ' + r['metric']:52s} {f(r['model'])} vs "
                         f"{f(r['baseline_value'])} {r['baseline'][:28]:28s} {ci_text:18s} {r.get('verdict') or 'n/a'}")
    for data, c in summarize_headline(res.get("headline", [])).items():
        lines.append(f"\n{data}: of {c['comparisons']} comparisons with a baseline, the model is better in "
                     f"{c['better']}, tied in {c['tie']} and worse in {c['worse']} (95 % CI of the difference, "
                     f"resampling {'subjects' if data == 'simulated_heldout' else 'records'}; point estimates "
                     f"favour the model in {c['model_better']}; see JSON 'headline')")
    return "\n".join(lines)
