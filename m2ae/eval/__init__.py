"""``m2ae eval``: every number the project shows, each beside a simple baseline measured in the same run.

Data (the JSON names which one each number came from):
- ``simulated_heldout``: fresh simulated subjects from seeds disjoint from training
  (``m2ae.simulate.splits``), several windows each;
- ``real``: real paired ECG+PPG records (default: ``$M2AE_REAL_DATA``, else ``../shared/data/real``
  relative to the current directory; ``--data`` to choose), cut with ``m2ae.preprocess``; reported
  as ``{"status": "absent"}`` when missing;
- ``cinc2015``: the CinC 2015 real ICU alarm corpus' fixed **test** split (default
  ``$M2AE_CINC2015_DATA``, else ``../shared/data/cinc2015``; ``--cinc2015`` to choose), its windows
  cached after the first run; its baselines are fitted on the corpus' train split and its alarm
  models chosen on the validation split (``cinc2015``, ``alarm_section``, ``alarm_baselines``,
  ``alarm_rules``);
- ``simulated_train``: a small set of training-seed subjects on which the baselines (ridge,
  templates, logistic regression, the fingerprint decoder) are fitted in the same run. The model
  never sees the evaluation sets, and nothing is tuned on them.

Sections per data set, each from its own module, run in order by ``m2ae.eval.run``:
- ``cross_modal`` and ``masked`` (``reconstruction``): PPG→ECG, ECG→PPG from one modality alone
  (median Pearson r and NMSE per window, plain and after one best lag per record within ±1 s), and
  50 % complementary masking (NMSE on hidden patches);
- ``retrieval`` (``retrieval_scores``): same-subject top-1, PPG→paired-ECG top-1 among up to 1,000
  candidates by fingerprints alone and two-stage: fingerprint shortlist re-ranked by correlation with
  the ECG rebuilt from the PPG (``m2ae.eval.retrieval``);
- ``heads`` (``heads``): AUROC / MAE with both, ECG only, PPG only (labelled data only), and on
  simulated data ``rhythm_without_p_waves``, the rhythm head's stress test;
- ``privacy`` (``privacy``): re-identification rate, fingerprint→window decoder NMSE;
- ``familiarity`` (``familiarity_gate``): what the index's out-of-distribution gate flags.
The data sets are built in ``datasets``, the baselines fitted in ``baseline_fit``, and the headline
rows, verdicts and text table made in ``report``.

The heads are scored on their own, larger held-out set (``heads_subjects`` subjects x 2 windows,
seed ``EVAL_SEED + 2``): their labels are per subject, so 60 subjects cannot resolve a few points
of AUROC. Every comparison with a baseline carries the 95 % CI of model − baseline from resampling
whole subjects (simulated) or records (real), and a verdict: better / tie / worse (``headline``).

>>> from m2ae.eval import run_eval
>>> res = run_eval(sim_subjects=20)                                      # doctest: +SKIP
>>> res["simulated_heldout"]["cross_modal"]["ppg_to_ecg"]["model"]["median_r_lagged"]   # doctest: +SKIP
"""
from __future__ import annotations

from .baseline_fit import fit_baselines
from .datasets import EvalSet, real_set, simulated_set
from .report import format_table, headline, summarize_headline
from .retrieval import PairedRetrieval, paired_retrieval
from .run import run_eval

__all__ = ["run_eval", "format_table", "headline", "summarize_headline", "EvalSet", "fit_baselines", "real_set",
           "simulated_set", "paired_retrieval", "PairedRetrieval"]
