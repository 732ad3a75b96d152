"""`m2ae eval`: the metrics table of a checkpoint against baselines (simulated held-out and real data)."""
from __future__ import annotations

import argparse

from .output import emit


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the evaluation, optionally write it into the model card, print table or JSON; exit code 0."""
    from ..eval import format_table, run_eval

    res = run_eval(model=args.model, data=args.data, sim_subjects=args.sim_subjects, seed=args.seed,
                   n_candidates=args.candidates, heads_subjects=args.heads_subjects, quiet=args.json,
                   cinc2015=False if args.no_cinc2015 else args.cinc2015, cinc2015_cache=args.cinc2015_cache)
    if args.write_card:
        from ..model.card import update_card
        from ..model.checkpoint import DEFAULT_CHECKPOINT

        update_card(args.model or DEFAULT_CHECKPOINT, res)
    emit(res, args.json, format_table)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``m2ae eval`` on the CLI's subparsers."""
    s = sub.add_parser("eval", help="evaluate a checkpoint against baselines (the metrics table)")
    s.add_argument("--model", help="checkpoint (default: shipped)")
    s.add_argument("--data", nargs="*", default=None,
                   help="real paired records (default: $M2AE_REAL_DATA, else ../shared/data/real relative to the "
                        "current directory)")
    s.add_argument("--sim-subjects", type=int, default=60, help="held-out simulated subjects")
    s.add_argument("--candidates", type=int, default=1000, help="candidates for PPG->ECG pair retrieval")
    s.add_argument("--heads-subjects", type=int, default=600,
                   help="held-out simulated subjects the heads are scored on (default 600, 2 windows each)")
    s.add_argument("--seed", type=int, default=None,
                   help="held-out simulator seed (default: m2ae.simulate.splits.EVAL_SEED)")
    s.add_argument("--cinc2015", default=None, metavar="DIR",
                   help="CinC 2015 corpus for the real ICU section, scored on its test split (default: "
                        "$M2AE_CINC2015_DATA, else ../shared/data/cinc2015 relative to the current directory; "
                        "a note when absent)")
    s.add_argument("--no-cinc2015", action="store_true", help="skip the CinC 2015 section")
    s.add_argument("--cinc2015-cache", default=None, metavar="DIR",
                   help="where its preprocessed windows are cached (default: $M2AE_CACHE_DIR, else ~/.cache/m2ae)")
    s.add_argument("--write-card", action="store_true", help="write the results into the model card")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)
