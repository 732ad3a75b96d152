"""`m2ae train` and `m2ae heads fit`: pretraining (CPU, one GPU, torchrun DDP) and heads on a user's labels."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import InputError
from .output import emit


def cmd_train(args: argparse.Namespace) -> int:
    """``m2ae train [--config FILE] [--data DIR…] --out CKPT [--resume] [--set k=v]``."""
    from ..train import load_config, train

    base = {"data": list(args.data)} if args.data else {}
    if args.data:
        base["sim_fraction"] = 0.5
    cfg = load_config(args.config, args.set, base=base)
    if args.data:
        cfg.data = list(args.data)
        for p in cfg.data:
            if not Path(p).exists():
                raise InputError(f"{p}: training data not found")
    metrics = train(cfg, args.out, resume=args.resume)
    if int(os.environ.get("RANK", 0)) == 0:
        emit({"checkpoint": str(args.out), **metrics}, args.json,
             lambda m: f"wrote {args.out} (step {m.get('step')}, loss {m.get('loss', float('nan')):.4f})")
    return 0


def cmd_heads_fit(args: argparse.Namespace) -> int:
    from ..train.heads import fit_heads_from_cli

    return fit_heads_from_cli(args)


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train", help="pretrain M2AE (CPU, one GPU with AMP, or torchrun DDP)")
    s.add_argument("--config", help="JSON/TOML file with TrainConfig fields")
    s.add_argument("--data", nargs="*", default=[], help="folders/files/corpora; none = simulator only")
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
