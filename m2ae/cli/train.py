"""`m2ae train`, `m2ae heads fit|refit-demo|fit-alarm` and `m2ae recipe demo`: pretraining (CPU, one GPU,
torchrun DDP), heads on a user's labels or the simulator's, and the recipe of the shipped checkpoint."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from .output import emit


def cmd_train(args: argparse.Namespace) -> int:
    """``m2ae train [--config FILE] [--data DIR…] --out CKPT [--resume] [--set k=v]``."""
    from ..train import load_config, train

    base: dict[str, Any] = {"data": list(args.data)} if args.data else {}
    if args.data:
        base["sim_fraction"] = 0.5
    cfg = load_config(args.config, args.set, base=base)
    if args.data:
        cfg.data = list(args.data)
        for p in cfg.data:
            if not Path(p).exists():
                raise InputError(f"{p}: training data not found")
    metrics = train(cfg, args.out, resume=args.resume, card_extra={"recipe": train_command_line(args)})
    if int(os.environ.get("RANK", 0)) == 0:
        emit({"checkpoint": str(args.out), **metrics}, args.json,
             lambda m: f"wrote {args.out} (step {m.get('step')}, loss {m.get('loss', float('nan')):.4f})")
    return 0


def train_command_line(args: argparse.Namespace) -> str:
    """The ``m2ae train`` command line as given (the card's ``recipe``), rebuilt from the parsed options."""
    import shlex

    parts = ["m2ae", "train"]
    if args.config:
        parts += ["--config", args.config]
    if args.data:
        parts += ["--data", *args.data]
    parts += ["--out", str(args.out)]
    if args.resume:
        parts.append("--resume")
    if args.set:
        parts += ["--set", *args.set]
    return shlex.join(parts)


def cmd_heads_fit(args: argparse.Namespace) -> int:
    """``m2ae heads fit --labels CSV [--model CKPT] --out CKPT``: heads on a user's labelled records."""
    from ..train.labels import fit_heads_from_labels

    result = fit_heads_from_labels(args.labels, args.model, args.out)
    emit(result, args.json,
         lambda r: "\n".join([f"wrote {args.out}"] + [f"  {k}: test {v['metrics']}" for k, v in r["heads"].items()]))
    return 0


def cmd_heads_refit_demo(args: argparse.Namespace) -> int:
    """``m2ae heads refit-demo [--model CKPT] --out CKPT [--subjects N]``: the demo heads (simulator)."""
    from ..train.demo_heads import refit_demo_heads

    for k, v in refit_demo_heads(args.model, args.out, args.subjects)["heads"].items():
        print(k, v["shape"], v["metrics"])
    return 0


def cmd_heads_fit_alarm(args: argparse.Namespace) -> int:
    """``m2ae heads fit-alarm --data DIR [--model CKPT] --out CKPT``: alarm heads on CinC 2015 real labels."""
    from ..train.alarm import fit_alarm_checkpoint
    from ..train.alarm_data import default_cinc2015_dir

    data = Path(args.data) if args.data else default_cinc2015_dir()
    result = fit_alarm_checkpoint(data, args.model, args.out, cache_dir=args.cache, quiet=args.json,
                                  rhythm=not args.no_rhythm)
    emit(result, args.json, lambda r: "\n".join(
        [f"wrote {args.out}"] + [f"  {k}: {v['shape']}; held-out {v['metrics']}; threshold {v.get('threshold')}"
                                 for k, v in r["heads"].items()]))
    return 0


def cmd_recipe_demo(args: argparse.Namespace) -> int:
    """``m2ae recipe demo --config FILE --out DIR [--set k=v]``: the shipped checkpoint's recipe."""
    from ..train.demo_recipe import run_demo_recipe

    run_demo_recipe(args.config, args.out, args.set, head_subjects=args.head_subjects,
                    head_epochs=args.head_epochs, train_ckpt=args.train_ckpt)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train", help="pretrain M2AE (CPU, one GPU with AMP, or torchrun DDP)")
    s.add_argument("--config", help="JSON/TOML file with TrainConfig fields")
    s.add_argument("--data", nargs="*", default=[], help="folders/files/corpora; none = simulator only. Only "
                   "records on the config's data_split side (default train) or without a split label train")
    s.add_argument("--out", required=True, help="checkpoint path (.pt)")
    s.add_argument("--resume", action="store_true", help="resume from --out if it exists")
    s.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    s.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("heads", help="task heads on frozen fingerprints")
    hs = s.add_subparsers(dest="heads_command", metavar="ACTION")
    f = hs.add_parser("fit", help="fit heads from a labels CSV (columns: path, and one per label)")
    f.add_argument("--labels", required=True, help="CSV with a 'path' column and label columns")
    f.add_argument("--model", help="checkpoint (default: shipped)")
    f.add_argument("--out", required=True, help="output checkpoint with the new heads")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_heads_fit)
    f = hs.add_parser("refit-demo", help="refit the demo heads (simulated labels) on a checkpoint's weights")
    f.add_argument("--model", default=None, help="checkpoint (default: shipped)")
    f.add_argument("--out", required=True, help="output checkpoint (same weights, new heads, card beside it)")
    f.add_argument("--subjects", type=int, default=1500, help="simulated subjects in the heads' training split")
    f.set_defaults(func=cmd_heads_refit_demo)
    f = hs.add_parser("fit-alarm", help="fit the true/false ICU alarm head(s) on CinC 2015 real labels "
                                        "(train + validation splits; chosen by cross-validation, "
                                        "thresholded on out-of-fold scores)")
    f.add_argument("--data", default=None, help="CinC 2015 corpus (default: $M2AE_CINC2015_DATA, else "
                                                "../shared/data/cinc2015 relative to the current directory)")
    f.add_argument("--model", default=None, help="checkpoint (default: shipped)")
    f.add_argument("--out", required=True, help="output checkpoint (same weights, its heads + the alarm heads)")
    f.add_argument("--cache", default=None, help="cache of preprocessed windows (default: $M2AE_CACHE_DIR, "
                                                 "else ~/.cache/m2ae)")
    f.add_argument("--no-rhythm", action="store_true", help="keep the checkpoint's rhythm head (default: refit it "
                                                            "on the true alarms' rhythms + the simulator)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_heads_fit_alarm)

    s = sub.add_parser("recipe", help="recipes that make a released checkpoint end to end")
    rs = s.add_subparsers(dest="recipe_command", metavar="RECIPE")
    r = rs.add_parser("demo", help="the shipped demo checkpoint: pretrain, fit heads, check CUDA == CPU, write card")
    r.add_argument("--config", default="configs/demo.toml", help="JSON/TOML file with TrainConfig fields")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    r.add_argument("--head-subjects", type=int, default=1500, help="simulated subjects in the heads' training split")
    r.add_argument("--head-epochs", type=int, default=40)
    r.add_argument("--train-ckpt", default=None, help="training checkpoint (default: OUT/train.pt)")
    r.set_defaults(func=cmd_recipe_demo)
