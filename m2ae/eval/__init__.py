"""``m2ae eval``: every number the project shows, each beside a simple baseline measured in the same run.

Data (the JSON names which one each number came from):
- ``simulated_heldout``: fresh simulated subjects from seeds disjoint from training
  (``m2ae.simulate.splits``), several windows each;
- ``real``: real paired ECG+PPG records (default ``<repo>/../shared/data/real``; ``--data`` to
  choose), cut with ``m2ae.preprocess``; reported as ``{"status": "absent"}`` when missing;
- ``simulated_train``: a small set of training-seed subjects on which the baselines (ridge,
  templates, logistic regression, the fingerprint decoder) are fitted in the same run. The model
  never sees the evaluation sets, and nothing is tuned on them.

Sections per data set: ``cross_modal`` (PPG→ECG, ECG→PPG from one modality alone: median Pearson r
and NMSE per window, plain and after one best lag per record within ±1 s), ``masked`` (50 %
complementary masking, NMSE on hidden patches), ``retrieval`` (same-subject top-1, PPG→paired-ECG
top-1 among up to 1,000 candidates by fingerprints alone and two-stage: fingerprint shortlist re-ranked
by correlation with the ECG rebuilt from the PPG, ``m2ae.eval.retrieval``), ``heads`` (AUROC / MAE with both, ECG only, PPG only; labelled
data only) and ``privacy`` (re-identification rate, fingerprint→window decoder NMSE).

The heads are scored on their own, larger held-out set (``heads_subjects`` subjects x 2 windows,
seed ``EVAL_SEED + 2``): their labels are per subject, so 60 subjects cannot resolve a few points
of AUROC. Every comparison with a baseline carries the 95 % CI of model − baseline from resampling
whole subjects (simulated) or records (real), and a verdict: better / tie / worse (``headline``).

>>> from m2ae.eval import run_eval
>>> res = run_eval(sim_subjects=20)                                      # doctest: +SKIP
>>> res["simulated_heldout"]["cross_modal"]["ppg_to_ecg"]["model"]["median_r_lagged"]   # doctest: +SKIP
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import FS_HZ, MODALITIES, PATCH_SAMPLES
from ..errors import InputError
from . import metrics as M
from .baselines import MeanBeatTemplate, PatchRidge, beat_features, feature_matrix, window_peaks
from .retrieval import QRS_BAND_HZ, PairedRetrieval, paired_retrieval

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REAL_DIR = ROOT.parent / "shared" / "data" / "real"
MAX_LAG_S = 1.0
N_CANDIDATES = 1000
SHORTLIST = 50  # two-stage paired retrieval: candidates kept by the fingerprint stage per query
RECORD_SUFFIXES = (".hea", ".csv", ".tsv", ".npz", ".npy", ".edf", ".vital")


@dataclass
class EvalSet:
    """Normalised contract windows of one data source plus what each metric needs.

    group : [N] subject id (simulated) or record id (real); lags are searched per group.
    labels : {label: [N]} (simulated only).
    """

    name: str
    description: str
    ecg: np.ndarray
    ppg: np.ndarray
    group: np.ndarray
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    r_peaks: list[np.ndarray] | None = None
    pulse_peaks: list[np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ecg)

    def peaks(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if self.r_peaks is None:
            self.r_peaks = window_peaks(self.ecg, "ecg")
        if self.pulse_peaks is None:
            self.pulse_peaks = window_peaks(self.ppg, "ppg")
        return self.r_peaks, self.pulse_peaks

    def subset(self, idx: np.ndarray) -> "EvalSet":
        rp, pp = self.r_peaks, self.pulse_peaks
        return EvalSet(self.name, self.description, self.ecg[idx], self.ppg[idx], self.group[idx],
                       {k: v[idx] for k, v in self.labels.items()},
                       None if rp is None else [rp[i] for i in idx], None if pp is None else [pp[i] for i in idx],
                       dict(self.info))


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"eval: {msg}", file=sys.stderr, flush=True)


# --- data -------------------------------------------------------------------------------------

def simulated_set(name: str, n_subjects: int, windows_per_subject: int, seed: int) -> EvalSet:
    """Simulated paired windows: ``n_subjects`` subjects drawn from ``seed``, ``windows_per_subject``
    independent 10-s windows each, with the labels the heads are defined on (rhythm, hypertension,
    age, sex, risk). Uses the same generator as head fitting (``m2ae.simulate.labelled.subject_windows``,
    the simulator under the signal contract) so labels mean exactly what the heads were trained on."""
    from ..simulate.labelled import subject_windows

    sim = subject_windows(int(n_subjects), int(windows_per_subject), seed=seed)
    labels = {k: np.asarray(sim[k]) for k in ("rhythm", "hypertension", "age", "sex", "risk") if k in sim}
    group = np.asarray(sim["subject_id"]).astype(str)
    n_windows = len(group)
    return EvalSet(name, f"simulated: {n_subjects} subjects x {windows_per_subject} windows of 10 s, seed {seed}",
                   np.asarray(sim["ecg"], np.float32), np.asarray(sim["ppg"], np.float32), group, labels,
                   info={"seed": seed, "subjects": int(n_subjects), "windows": n_windows,
                         "windows_per_subject": int(windows_per_subject)})


def _record_paths(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in RECORD_SUFFIXES and not f.name.lower().startswith("readme"):
                    found.append(f)
    return found


def real_set(paths: list[Path]) -> tuple[EvalSet | None, dict]:
    """Windows + peaks of every paired record under ``paths`` (m2ae.preprocess); never raises for data.

    Returns (set or None, info) where info lists the records used, skipped and why.
    """
    from .. import load_record, preprocess

    existing = [p for p in paths if p.exists()]
    if not existing:
        return None, {"status": "absent", "paths": [str(p) for p in paths]}
    ecg, ppg, group, rpk, ppk = [], [], [], [], []
    used, skipped = [], []
    for f in _record_paths(existing):
        try:
            rec = load_record(f)
            if rec.ecg is None or rec.ppg is None:
                skipped.append({"record": f.name, "why": "not paired (needs both ECG and PPG)"})
                continue
            win = preprocess(rec)
        except Exception as e:  # noqa: BLE001 - one unreadable record is reported, never fatal to the run
            skipped.append({"record": f.name, "why": str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"})
            continue
        if len(win) == 0:
            skipped.append({"record": f.name, "why": "shorter than one 10-s window"})
            continue
        starts = np.round(np.asarray(win.starts_s) * win.fs).astype(int)
        width = win.ecg.shape[1]
        for i, s in enumerate(starts):
            for peaks, out in ((win.r_peaks, rpk), (win.pulse_peaks, ppk)):
                if peaks is None:
                    out.append(None)
                else:
                    pk = np.asarray(peaks)
                    out.append(pk[(pk >= s) & (pk < s + width)] - s)
        ecg.append(win.ecg)
        ppg.append(win.ppg)
        group += [f.stem] * len(win)
        n_low = int(np.sum(win.low_quality)) if win.low_quality is not None else None
        used.append({"record": f.name, "windows": len(win), "low_quality_windows": n_low,
                     "duration_s": round(rec.duration_s, 1)})
    if not used:
        return None, {"status": "no paired records", "paths": [str(p) for p in existing], "skipped": skipped}
    rpk = None if any(p is None for p in rpk) else rpk
    ppk = None if any(p is None for p in ppk) else ppk
    s = EvalSet("real", "real paired records: " + ", ".join(u["record"] for u in used),
                np.concatenate(ecg).astype(np.float32), np.concatenate(ppg).astype(np.float32), np.asarray(group),
                r_peaks=rpk, pulse_peaks=ppk)
    info = {"status": "ok", "paths": [str(p) for p in existing], "records": used, "skipped": skipped,
            "windows": len(s), "note": "all windows scored, low-quality ones included"}
    s.info = info
    return s, info


# --- baselines fitted on simulated training-seed data ------------------------------------------

@dataclass
class Baselines:
    ridge: dict[str, PatchRidge]            # target modality -> ridge from the other modality
    template: MeanBeatTemplate
    head_models: dict[str, dict[str, Any]]  # head -> input set -> (scaler stats, sklearn model)
    fp_decoder: dict[str, Any]              # modality -> Ridge from fingerprint to window
    feature_train: dict[str, np.ndarray]    # input set -> train features (for standardising)


def _input_sets(s: EvalSet) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    return {"both": (s.ecg, s.ppg), "ecg": (s.ecg, None), "ppg": (None, s.ppg)}


def _features(s: EvalSet) -> dict[str, np.ndarray]:
    rp, pp = s.peaks()
    return {name: feature_matrix(e, p, rp if e is not None else None, pp if p is not None else None)
            for name, (e, p) in _input_sets(s).items()}


def _label_targets(head, values: np.ndarray) -> tuple[np.ndarray, list | None]:
    """Labels → (class index per window, classes) for classifiers, or float values for regressors."""
    spec = head.spec
    if spec.get("kind") != "classification":
        return np.asarray(values, np.float64), None
    classes = list(spec["classes"])
    values = np.asarray(values)
    if values.dtype.kind in "biu":
        # simulator labels are class indices (rhythm: index into RHYTHM_CODES; sex: 1 = male; bool)
        idx = values.astype(np.int64)
        return np.where((idx >= 0) & (idx < len(classes)), idx, -1), classes
    as_str = [str(c).lower() for c in classes]
    out = np.array([as_str.index(str(v).lower()) if str(v).lower() in as_str else -1 for v in values])
    return out, classes


def fit_baselines(train: EvalSet, model) -> Baselines:
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    rp, pp = train.peaks()
    ridge = {"ecg": PatchRidge().fit(train.ppg, train.ecg), "ppg": PatchRidge().fit(train.ecg, train.ppg)}
    template = MeanBeatTemplate().fit(train.ecg, train.ppg, rp, pp)
    feats = _features(train)
    head_models: dict[str, dict[str, Any]] = {}
    for name, head in model.heads.items():
        label = train.labels.get(name)
        if label is None:
            continue
        y, classes = _label_targets(head, label)
        head_models[name] = {}
        for inp, X in feats.items():
            Xs, = M.standardize(X)
            if classes is None:
                ok = np.isfinite(y)
                head_models[name]["_y_mean"] = float(np.mean(y[ok]))
                head_models[name][inp] = LinearRegression().fit(Xs[ok], y[ok])
            else:
                ok = y >= 0
                if len(np.unique(y[ok])) < 2:
                    continue
                head_models[name][inp] = LogisticRegression(max_iter=2000, C=1.0).fit(Xs[ok], y[ok])
    fp = model.fingerprint(ecg=train.ecg, ppg=train.ppg)
    fp_decoder = {m: Ridge(alpha=1.0).fit(fp, getattr(train, m)) for m in MODALITIES}
    return Baselines(ridge, template, head_models, fp_decoder, feats)


# --- sections ---------------------------------------------------------------------------------

# headline metric -> per-window score it is the median of (m2ae.eval.metrics.reconstruction_scores)
RECONSTRUCTION_SCORES = {"median_r_lagged": "r_lag", "median_nmse_lagged": "nmse_lag", "median_r": "r"}


def cross_modal_section(model, s: EvalSet, base: Baselines, by_record: bool = False, seed: int = 0) -> dict:
    """PPG→ECG and ECG→PPG from one modality alone: model vs ridge vs mean-beat template.

    by_record : also report every record's own medians (real data: few records, each its own device).
    Each task also holds ``ci95_model_minus``: {baseline: {metric: [low, high]}}, the 95 % CI of the
    model's median minus the baseline's, resampling subjects/records (``M.difference_ci``).
    """
    max_lag = int(MAX_LAG_S * FS_HZ)
    rp, pp = s.peaks()
    T = s.ecg.shape[1]
    out = {}
    for target, source, mode in (("ecg", "ppg", "ecg_from_ppg"), ("ppg", "ecg", "ppg_from_ecg")):
        truth, src = getattr(s, target), getattr(s, source)
        # placed at the card's pulse-arrival delay, one move per record/subject (what the app shows)
        rec = model.reconstruct(**{source: src}, mode=mode, timing_groups=s.group)[target]["prediction"]
        tpl = base.template.ecg_from_ppg(pp, T) if target == "ecg" else base.template.ppg_from_ecg(rp, T)
        preds = {"model": rec, "ridge": base.ridge[target].predict(src), "mean_beat_template": tpl}
        scores = {k: M.reconstruction_scores(v, truth, s.group, max_lag) for k, v in preds.items()}
        entry = {k: M.summarize_reconstruction(v, FS_HZ) for k, v in scores.items()}
        entry["ci95_model_minus"] = {
            b: {metric: M.difference_ci(scores["model"][key], scores[b][key], s.group, seed=seed)
                for metric, key in RECONSTRUCTION_SCORES.items()}
            for b in ("ridge", "mean_beat_template")}
        if by_record:
            entry["by_record"] = {
                str(g): {k: M.summarize_reconstruction({key: val[s.group == g] for key, val in v.items()}, FS_HZ)
                         for k, v in scores.items()}
                for g in np.unique(s.group)}
        out[f"{source}_to_{target}"] = entry
    out["settings"] = {"max_lag_s": MAX_LAG_S, "lag_per": "subject" if s.labels else "record",
                       "windows": len(s)}
    return out


def masked_section(model, s: EvalSet, seed: int) -> dict:
    """50 % complementary masking: NMSE on the hidden patches, model vs linear interpolation."""
    rec = model.reconstruct(ecg=s.ecg, ppg=s.ppg, mask_ratio=0.5, mode="complementary", seed=seed)
    out = {}
    for m in MODALITIES:
        truth, mask = getattr(s, m), rec[m]["mask"]
        model_nmse = M.nmse(rec[m]["prediction"], truth, mask)
        interp_nmse = M.nmse(M.interpolate_masked(truth, mask), truth, mask)
        out[m] = {"model": M._median(model_nmse), "linear_interpolation": M._median(interp_nmse),
                  "ci95_model_minus_linear_interpolation": M.difference_ci(model_nmse, interp_nmse, s.group, seed=seed)}
    out["settings"] = {"mask_ratio": 0.5, "mode": "complementary", "seed": seed,
                       "metric": "median NMSE over windows, on hidden patches only", "windows": len(s)}
    return out


def retrieval_section(s: EvalSet, fps: dict[str, np.ndarray], feats: dict[str, np.ndarray],
                      feature_train: dict[str, np.ndarray], n_candidates: int, seed: int, model=None,
                      template: MeanBeatTemplate | None = None) -> dict:
    """Same-subject top-1 and PPG→paired-ECG top-1: fingerprints vs hand-made feature vectors.

    With ``model``, the paired task also gets ``model_two_stage`` (``paired_retrieval``: fingerprint
    shortlist of ``SHORTLIST``, re-ranked by lag-tolerant correlation with the ECG the model rebuilds
    from the PPG) on the same queries and candidates; with ``template`` too, the same two stages with
    the mean-beat template ECG (placed at the detected pulse peaks) instead of the model's ECG, to show
    what the model's reconstruction adds over classical beat timing."""
    n_groups = len(np.unique(s.group))
    both_f, = M.standardize(feature_train["both"], feats["both"])[1:]
    hits_model = M.same_subject_hits(fps["both"], s.group)
    hits_features = M.same_subject_hits(both_f, s.group, metric="euclidean")
    same = {"model": float(np.nanmean(hits_model)), "features": float(np.nanmean(hits_features)),
            "ci95_model_minus_features": M.difference_ci(hits_model, hits_features, s.group, np.nanmean, seed),
            "chance": 1.0 / n_groups if n_groups else float("nan"),
            "subjects": n_groups, "windows": len(s), "embedding": "fingerprint from ECG+PPG"}
    rng = np.random.default_rng(seed)
    k = min(n_candidates, len(s))
    idx = np.sort(rng.choice(len(s), size=k, replace=False))
    # cross-modal features: the HRV part is comparable between R peaks and pulse peaks
    rp, pp = s.peaks()
    hrv_e, hrv_p = beat_features([rp[i] for i in idx]), beat_features([pp[i] for i in idx])
    hrv_train = np.concatenate([feature_train["ecg"][:, :hrv_e.shape[1]], feature_train["ppg"][:, :hrv_p.shape[1]]])
    _, hrv_e, hrv_p = M.standardize(hrv_train, hrv_e, hrv_p)
    query_group = s.group[idx]
    hits_model, hits_features = M.paired_hits(fps["ppg"][idx], fps["ecg"][idx]), M.paired_hits(hrv_p, hrv_e, "euclidean")
    paired = {"model": float(np.mean(hits_model)), "features": float(np.mean(hits_features)),
              "ci95_model_minus_features": M.difference_ci(hits_model, hits_features, query_group, np.mean, seed),
              "chance": 1.0 / k, "candidates": k,
              "embedding": "query: fingerprint from PPG only; candidates: fingerprints from ECG only"}
    if model is not None:
        two = paired_retrieval(model, s.ppg[idx], s.ecg[idx], shortlist=SHORTLIST, max_lag_s=MAX_LAG_S,
                               query_fingerprints=fps["ppg"][idx], candidate_fingerprints=fps["ecg"][idx])
        hits_two = two.hits()
        paired["model_two_stage"] = {
            "top1": two.top1_accuracy(), "shortlist": two.shortlist,
            "ci95_model_minus_features": M.difference_ci(hits_two, hits_features, query_group, np.mean, seed),
            "shortlist_recall": two.shortlist_recall(), "stage1_top1": two.stage1_top1_accuracy(),
            "how": f"m2ae.eval.retrieval.paired_retrieval: stage 1 keeps the {two.shortlist} candidates whose "
                   "ECG-only fingerprint is most cosine-similar to the query's PPG-only fingerprint; stage 2 "
                   "re-ranks them by the max normalised cross-correlation within ±"
                   f"{MAX_LAG_S:g} s between the model's ECG reconstructed from the query PPG alone and each "
                   f"candidate ECG, both band-passed to the QRS band ({QRS_BAND_HZ[0]:g}-{QRS_BAND_HZ[1]:g} Hz) "
                   "(correlation only, the fingerprint cosine is not added; shortlist_recall = "
                   "fraction of true pairs that survive stage 1)"}
        if template is not None:
            ecg_tpl = template.ecg_from_ppg([pp[i] for i in idx], s.ecg.shape[1])
            two_tpl = paired_retrieval(model, s.ppg[idx], s.ecg[idx], shortlist=SHORTLIST, max_lag_s=MAX_LAG_S,
                                       query_fingerprints=fps["ppg"][idx], candidate_fingerprints=fps["ecg"][idx],
                                       ecg_estimate=ecg_tpl)
            paired["mean_beat_template_two_stage"] = {
                "top1": two_tpl.top1_accuracy(), "shortlist": two_tpl.shortlist,
                "ci95_model_two_stage_minus_this": M.difference_ci(
                    hits_two, two_tpl.hits(), query_group, np.mean, seed),
                "how": "baseline for model_two_stage: the same fingerprint shortlist and the same lag-tolerant "
                       "QRS-band correlation, but against the mean-beat template ECG placed at the query's detected "
                       "pulse peaks (fitted on simulated_train) instead of the model's reconstruction"}
    return {"same_subject_top1": same, "ppg_to_paired_ecg_top1": paired}


def _head_outputs(model, head, fp: np.ndarray) -> np.ndarray:
    """A head's calibrated outputs for fingerprints [N, D]: logits [N, C] or (mean, sd) [N, 2]."""
    import torch

    with torch.inference_mode():
        return head(torch.from_numpy(fp).to(model.device)).float().cpu().numpy()


def _baseline_class_probabilities(lm, X: np.ndarray, n_classes: int) -> np.ndarray:
    """A fitted baseline classifier's probabilities [N, n_classes] (zero for classes it never saw)."""
    full = np.zeros((len(X), n_classes))
    full[:, lm.classes_] = lm.predict_proba(X)
    return full


def heads_section(model, s: EvalSet, fps: dict[str, np.ndarray], feats: dict[str, np.ndarray], base: Baselines,
                  seed: int = 0) -> dict:
    """Each head's AUROC (macro one-vs-rest for >2 classes) or MAE with both / ECG only / PPG only,
    with ``ci95_model_minus_baseline``: the 95 % CI of model − baseline, resampling subjects."""
    out = {}
    for name, head in model.heads.items():
        if name not in s.labels:
            out[name] = {"status": f"no '{name}' labels in this data"}
            continue
        y, classes = _label_targets(head, s.labels[name])
        entry: dict[str, Any] = {"metric": "auroc" if classes else "mae"}
        ok = (y >= 0) if classes else np.isfinite(y)
        y_ok, group_ok = y[ok], s.group[ok]
        everything = np.arange(len(y_ok))

        def score(rows, output, y_ok=y_ok, classes=classes):  # AUROC or MAE on a subset of rows
            return (M.auroc(y_ok[rows], output[rows], classes=range(len(classes))) if classes
                    else M.mae(y_ok[rows], output[rows]))

        for inp, fp in fps.items():
            raw = _head_outputs(model, head, fp)[ok]
            row: dict[str, float] = {}
            if classes:
                probs = np.exp(raw - raw.max(1, keepdims=True))
                model_out = probs / probs.sum(1, keepdims=True)
            else:
                model_out = raw[:, 0]
            lm = base.head_models.get(name, {}).get(inp)
            base_out = None
            if lm is not None:
                _, X = M.standardize(base.feature_train[inp], feats[inp])
                base_out = (_baseline_class_probabilities(lm, X[ok], len(classes)) if classes
                            else lm.predict(X[ok]))
            row["model"] = score(everything, model_out)
            if base_out is not None:
                base_name = "baseline_logistic_hrv_pat" if classes else "baseline_linear_hrv_pat"
                row[base_name] = score(everything, base_out)
                if not classes:
                    row["train_mean"] = M.mae(y_ok, np.full(len(y_ok), base.head_models[name]["_y_mean"]))
                row["ci95_model_minus_baseline"] = M.group_bootstrap_ci(
                    lambda rows, mo=model_out, bo=base_out: score(rows, mo) - score(rows, bo), group_ok, seed=seed)
            entry[inp] = row
        if classes:
            entry["classes"] = list(classes)
        out[name] = entry
    return out


P_WAVE_STRESS_SEED_OFFSET = 1  # EVAL_SEED + 1: its own held-out stream of sinus-rhythm subjects
HEADS_SEED_OFFSET = 2          # EVAL_SEED + 2: the heads' held-out subjects
HEADS_SUBJECTS = 600
HEADS_WINDOWS_PER_SUBJECT = 2
# The baselines are fitted on as many subjects as the demo heads (m2ae.train.heads.refit_demo_heads):
# with 80 they were weaker than they can be (ridge plain r 0.07 → 0.15, rhythm AUROC 0.96 → 0.99).
BASELINE_TRAIN_SUBJECTS = 1500


def p_wave_stress_section(model, base: Baselines, n_subjects: int, seed: int) -> dict:
    """What does the rhythm head key on? Regular sinus rhythm drawn with and without P waves (small
    or absent P waves are common on real monitor leads): the share of windows called AF by the head
    and by the HRV baseline, per input. A head that reads beat irregularity stays near 0 without
    P waves; one that learned "no P wave = AF" from the simulator does not."""
    from ..simulate.labelled import subject_windows

    head = model.heads.get("rhythm")
    if head is None or "AF" not in head.spec.get("classes", []):
        return {"status": "no rhythm head with an AF class"}
    classes = list(head.spec["classes"])
    af = classes.index("AF")
    out: dict[str, Any] = {"subjects": int(n_subjects), "seed": int(seed), "rhythm": "NSR",
                           "metric": "share of windows called AF (argmax); lower is better"}
    for variant, scale in (("with_p_waves", 1.0), ("without_p_waves", 0.0)):
        d = subject_windows(int(n_subjects), 2, seed, rhythm="NSR", p_wave_scale=scale)
        s = EvalSet(variant, "", np.asarray(d["ecg"], np.float32), np.asarray(d["ppg"], np.float32),
                    np.asarray(d["subject_id"]).astype(str), {})
        feats = _features(s)
        entry = {}
        for inp, (e, p) in _input_sets(s).items():
            logits = _head_outputs(model, head, model.fingerprint(ecg=e, ppg=p))
            row = {"model": float(np.mean(logits.argmax(1) == af))}
            lm = base.head_models.get("rhythm", {}).get(inp)
            if lm is not None:
                _, X = M.standardize(base.feature_train[inp], feats[inp])
                called = _baseline_class_probabilities(lm, X, len(classes)).argmax(1)
                row["baseline_logistic_hrv_pat"] = float(np.mean(called == af))
            entry[inp] = row
        out[variant] = entry
    return out


def privacy_section(model, s: EvalSet, fps: dict[str, np.ndarray], base: Baselines) -> dict:
    """Re-identification rate from fingerprints and how well fingerprints alone rebuild the window."""
    n_groups = len(np.unique(s.group))
    decoder = {m: M._median(M.nmse(base.fp_decoder[m].predict(fps["both"]), getattr(s, m))) for m in MODALITIES}
    return {
        "reidentification_top1": {"model": M.same_subject_top1(fps["both"], s.group),
                                  "chance": 1.0 / n_groups if n_groups else float("nan"), "subjects": n_groups,
                                  "how": "nearest other window's subject, fingerprints from ECG+PPG"},
        "fingerprint_decoder_nmse": {**decoder, "how": "ridge from fingerprint to the raw window, fitted on "
                                     "simulated training subjects; median NMSE (1.0 = no better than the window mean)"},
    }


def familiarity_section(index, model, s: EvalSet, fps: dict[str, np.ndarray]) -> dict:
    """Out-of-distribution gate (``m2ae.index.familiarity``) per input mode: the share of windows
    flagged unfamiliar (top-1 similarity to the index below the 1 % quantile of unseen simulated
    windows) and of groups (subjects / records) whose median top-1 is below the subject-level 1 %
    quantile."""
    from ..index.familiarity import familiarity

    out: dict[str, Any] = {}
    for mode, fp in fps.items():
        fam = familiarity(index, fp, mode, model=model)
        if not fam["calibrated"]:
            return {"status": f"not calibrated: {fam['note']}"}
        top1 = np.asarray(fam["top1"])
        groups = np.unique(s.group)
        flagged = [bool(np.median(top1[s.group == g]) < fam["record_threshold"]) for g in groups]
        out[mode] = {"windows_flagged": round(fam["share_unfamiliar"], 4), "median_top1": fam["median_top1"],
                     "window_threshold": fam["threshold"], "groups_flagged": round(float(np.mean(flagged)), 4),
                     "groups": int(len(groups)), "group_threshold": fam["record_threshold"]}
    out["how"] = (f"top-1 cosine similarity to {index.count} windows of {index.path}; thresholds = 1 % quantiles of "
                  f"{index.familiarity_reference['data']} (windows; per-subject medians for groups)")
    return out


def evaluate_set(model, s: EvalSet, base: Baselines, n_candidates: int, seed: int, quiet: bool,
                 recon_idx: np.ndarray | None = None, index=None, heads_set: EvalSet | None = None) -> dict:
    """Every section on ``s``; the heads on ``heads_set`` instead when given (a larger labelled set)."""
    from ..model.inference import fingerprints_by_mode

    _log(f"{s.name}: fingerprints of {len(s)} windows (ECG+PPG, ECG only, PPG only)", quiet)
    fps = fingerprints_by_mode(model, s.ecg, s.ppg)
    _log(f"{s.name}: peaks and baseline features", quiet)
    feats = _features(s)
    r = s if recon_idx is None else s.subset(recon_idx)
    _log(f"{s.name}: cross-modal and masked reconstruction on {len(r)} windows", quiet)
    out: dict[str, Any] = {"data": s.description, "windows": len(s)}
    out["cross_modal"] = cross_modal_section(model, r, base, by_record=not s.labels, seed=seed)
    out["masked"] = masked_section(model, r, seed)
    _log(f"{s.name}: retrieval, heads, privacy", quiet)
    out["retrieval"] = retrieval_section(s, fps, feats, base.feature_train, n_candidates, seed, model=model,
                                         template=base.template)
    if heads_set is not None:
        _log(f"{heads_set.name}: heads on {len(heads_set)} windows", quiet)
        out["heads"] = {"data": heads_set.description,
                        **heads_section(model, heads_set, fingerprints_by_mode(model, heads_set.ecg, heads_set.ppg),
                                        _features(heads_set), base, seed=seed)}
    elif s.labels:
        out["heads"] = heads_section(model, s, fps, feats, base, seed=seed)
    else:
        out["heads"] = {"status": "no labels in this data"}
    out["privacy"] = privacy_section(model, s, fps, base)
    if isinstance(index, str):
        out["familiarity"] = {"status": index}
    elif index is not None:
        out["familiarity"] = familiarity_section(index, model, s, fps)
    return out


# --- entry points -----------------------------------------------------------------------------

def run_eval(model=None, data=None, sim_subjects: int = 60, seed: int | None = None,
             train_subjects: int = BASELINE_TRAIN_SUBJECTS, train_windows_per_subject: int = 2,
             n_candidates: int = N_CANDIDATES,
             recon_windows_per_subject: int = 5, heads_subjects: int = HEADS_SUBJECTS, quiet: bool = True) -> dict:
    """Evaluate ``model`` (an M2AEModel, a checkpoint path, or None for the shipped one).

    data : paths of real paired records/folders; None = ``<repo>/../shared/data/real``; [] = none.
    sim_subjects : held-out simulated subjects; each gets enough windows that PPG→ECG retrieval has
        up to ``n_candidates`` candidates.
    seed : first held-out simulator seed (default: ``m2ae.simulate.splits`` evaluation seed).
    heads_subjects : held-out simulated subjects the heads are scored on (2 windows each, seed + 2).
    Returns a JSON-able dict (see module docstring); NaN where a metric is undefined.
    """
    from ..model import load_model
    from ..simulate import splits

    t0 = time.time()
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model)
    if int(sim_subjects) < 2:
        raise InputError(f"--sim-subjects: need at least 2 held-out subjects, got {sim_subjects}")
    if int(heads_subjects) < 2:
        raise InputError(f"--heads-subjects: need at least 2 held-out subjects, got {heads_subjects}")
    if int(n_candidates) < 2:
        raise InputError(f"--candidates: need at least 2 retrieval candidates, got {n_candidates}")
    eval_seed = splits.EVAL_SEED if seed is None else int(seed)
    used_for_training = {splits.HEADS_TRAIN_SEED: "head fitting", splits.HEADS_CAL_SEED: "head calibration",
                         splits.VAL_SEED: "pretraining validation"}
    if eval_seed in used_for_training:
        raise InputError(f"--seed: {eval_seed} is the {used_for_training[eval_seed]} split, not held out "
                         f"(default {splits.EVAL_SEED})")
    train_seed = splits.HEADS_TRAIN_SEED
    windows_per_subject = max(2, math.ceil(n_candidates / sim_subjects))

    _log(f"simulating {train_subjects} training-seed subjects for the baselines", quiet)
    train = simulated_set("simulated_train", train_subjects, train_windows_per_subject, train_seed)
    _log(f"simulating {sim_subjects} held-out subjects x {windows_per_subject} windows", quiet)
    held = simulated_set("simulated_heldout", int(sim_subjects), windows_per_subject, eval_seed)
    _log("fitting baselines on the training-seed subjects", quiet)
    base = fit_baselines(train, model)

    result: dict[str, Any] = {
        "model": {"path": model.path, "version": model.version, "name": model.card.get("name")},
        "data": {"simulated_train": {"role": "fits the baselines only", **train.info},
                 "simulated_heldout": held.info},
    }
    recon_idx = _first_per_group(held.group, recon_windows_per_subject)
    try:  # the familiarity gate needs the shipped (or $M2AE_INDEX) index made by this model
        from ..index import open_index

        fam_index = open_index(model=model)
    except InputError as e:
        fam_index = f"no index for this model: {str(e).splitlines()[0][:200]}"
    _log(f"simulating {heads_subjects} held-out subjects x {HEADS_WINDOWS_PER_SUBJECT} windows for the heads", quiet)
    heads_held = simulated_set("simulated_heads_heldout", int(heads_subjects), HEADS_WINDOWS_PER_SUBJECT,
                               eval_seed + HEADS_SEED_OFFSET)
    result["data"]["simulated_heads_heldout"] = {"role": "scores the heads only", **heads_held.info}
    result["simulated_heldout"] = evaluate_set(model, held, base, n_candidates, eval_seed, quiet, recon_idx,
                                               index=fam_index, heads_set=heads_held)
    _log("stress test: sinus rhythm without P waves", quiet)
    result["simulated_heldout"]["rhythm_without_p_waves"] = p_wave_stress_section(
        model, base, max(20, int(sim_subjects) // 2), eval_seed + P_WAVE_STRESS_SEED_OFFSET)

    if isinstance(data, (str, Path)):
        data = [data]
    paths = [DEFAULT_REAL_DIR] if data is None else [Path(p) for p in data]
    real, info = real_set(paths) if paths else (None, {"status": "absent", "paths": []})
    result["data"]["real"] = info
    result["real"] = evaluate_set(model, real, base, n_candidates, eval_seed, quiet, index=fam_index) if real is not None \
        else {"status": info["status"]}
    result["baselines"] = {
        "ridge": "sklearn Ridge (alpha 10): each 25-sample patch of the target from the other modality's samples "
                 "within ±1.2 s, one filter for all positions; fitted on simulated_train",
        "mean_beat_template": "simulated_train's mean ECG beat (around R peaks) / mean PPG beat (around pulse "
                              "peaks) placed at every detected beat of the other modality, shifted by the "
                              "training median R→pulse delay; nearest beat wins",
        "linear_interpolation": "np.interp across the hidden patches from the same modality's visible samples",
        "features": "z-scored hand-made features, Euclidean nearest neighbour. Same-subject: HRV (rate, SDNN, "
                    "RMSSD, irregularity) of both modalities + Welch band powers + pulse-arrival delay; "
                    "PPG→ECG pairs: HRV from pulse peaks vs HRV from R peaks",
        "logistic_hrv_pat / linear_hrv_pat": "sklearn LogisticRegression / LinearRegression on the same features "
                                             "(per input: ECG-only, PPG-only, or both + delay), fitted on simulated_train",
        "train_mean": "age MAE when always predicting the simulated_train mean age",
        "mean_beat_template_two_stage": "PPG→paired-ECG retrieval with the model's fingerprint shortlist, re-ranked "
                                        "by lag-tolerant correlation with the mean-beat template ECG at the query's "
                                        "pulse peaks (instead of the model's ECG rebuilt from the PPG)",
        "fingerprint_decoder": "sklearn Ridge (alpha 1) from the ECG+PPG fingerprint to each raw window, fitted on "
                               "simulated_train",
    }
    result["settings"] = {"max_lag_s": MAX_LAG_S, "n_candidates": n_candidates, "fs_hz": FS_HZ,
                          "patch_samples": PATCH_SAMPLES, "eval_seed": eval_seed, "train_seed": train_seed,
                          "nmse": "MSE / variance of the target window (0 perfect, 1 = window mean)"}
    result["headline"] = headline(result)
    result["summary"] = summarize_headline(result["headline"])
    result["wall_time_s"] = round(time.time() - t0, 1)
    return result


def headline(res: dict) -> list[dict]:
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

    for data in ("simulated_heldout", "real"):
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
    return rows


def summarize_headline(rows: list[dict]) -> dict:
    """Per data set: comparisons, model_better (point estimates), and better / tie / worse verdicts."""
    out = {}
    for data in ("simulated_heldout", "real"):
        mine = [r for r in rows if r["data"] == data and r["model_better"] is not None]
        if mine:
            verdicts = [r.get("verdict") for r in mine]
            out[data] = {"comparisons": len(mine), "model_better": int(sum(r["model_better"] for r in mine)),
                         **{v: verdicts.count(v) for v in ("better", "tie", "worse")}}
    return out


def _first_per_group(group: np.ndarray, k: int) -> np.ndarray:
    keep, seen = [], {}
    for i, g in enumerate(group):
        if seen.get(g, 0) < k:
            keep.append(i)
            seen[g] = seen.get(g, 0) + 1
    return np.asarray(keep)


def format_table(res: dict) -> str:
    """Readable text table of ``run_eval``'s result."""
    lines = [f"m2ae eval — model {res['model'].get('name')} ({res['model'].get('version')}), {res['wall_time_s']} s"]

    def f(v):
        return "  n/a " if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:6.3f}"

    for name in ("simulated_heldout", "real"):
        sec = res.get(name, {})
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
        p = sec["privacy"]
        lines.append(f"privacy: re-identification {f(p['reidentification_top1']['model'])} "
                     f"(chance {f(p['reidentification_top1']['chance'])}); fingerprint→window NMSE "
                     f"ECG {f(p['fingerprint_decoder_nmse']['ecg'])} PPG {f(p['fingerprint_decoder_nmse']['ppg'])}")
        stress = sec.get("rhythm_without_p_waves") or {}
        if "without_p_waves" in stress:
            lines.append("stress: sinus rhythm called AF (share of windows), model vs baseline — with P waves | without")
            for inp in ("both", "ecg", "ppg"):
                w, wo = stress["with_p_waves"].get(inp, {}), stress["without_p_waves"].get(inp, {})
                lines.append(f"  {inp:5s} {f(w.get('model'))} vs {f(w.get('baseline_logistic_hrv_pat'))} | "
                             f"{f(wo.get('model'))} vs {f(wo.get('baseline_logistic_hrv_pat'))}")
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


__all__ = ["run_eval", "format_table", "headline", "summarize_headline", "EvalSet", "fit_baselines", "real_set", "simulated_set",
           "paired_retrieval", "PairedRetrieval"]
