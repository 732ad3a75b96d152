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
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import DEFAULT_CHECKPOINT
from ..jsonable import to_jsonable

NOT_FOR_CLINICAL_USE = ("Research demo, not for clinical use: trained on simulated signals; "
                        "probabilities are not diagnoses.")


def card_paths(checkpoint_path=None) -> tuple[Path, Path]:
    """(json_path, markdown_path) of the card beside a checkpoint (default: the shipped one)."""
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else DEFAULT_CHECKPOINT
    if ckpt.suffix == ".json":
        return ckpt, ckpt.with_suffix(".md") if ckpt.name != "model_card.json" else ckpt.with_name("MODEL_CARD.md")
    if ckpt.resolve() == DEFAULT_CHECKPOINT.resolve():
        return ckpt.with_name("model_card.json"), ckpt.with_name("MODEL_CARD.md")
    return ckpt.with_suffix(".card.json"), ckpt.with_suffix(".card.md")


def read_card(checkpoint_path=None) -> dict:
    """The JSON card beside a checkpoint, or {} when there is none."""
    json_path, _ = card_paths(checkpoint_path)
    if not json_path.exists():
        return {}
    return json.loads(json_path.read_text())


def write_card(checkpoint_path, card: dict) -> tuple[Path, Path]:
    """Write the JSON and Markdown card beside a checkpoint. Returns both paths."""
    json_path, md_path = card_paths(checkpoint_path)
    card = to_jsonable(card)
    json_path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    md_path.write_text(render_markdown(card))
    return json_path, md_path


def update_card(path, eval_results: dict) -> dict:
    """Store ``m2ae eval`` results in the card beside checkpoint ``path`` (or at card JSON ``path``).

    The checkpoint itself is not rewritten; ``load_model`` merges this card. Returns the new card.

    >>> update_card("m2ae/model/m2ae-demo.pt", {"simulated": {...}, "real": {...}})  # doctest: +SKIP
    """
    card = read_card(path)
    if not card and Path(path).suffix == ".pt":
        from .checkpoint import load_checkpoint

        card = dict(load_checkpoint(path).get("card", {}))
    card["eval"] = to_jsonable(eval_results)
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


def _table(d: dict, prefix: str = "") -> list[str]:
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


def render_markdown(card: dict) -> str:
    """A readable Markdown model card from the card dict (all numbers come from the dict)."""
    lines = [f"# Model card: {card.get('name', 'M2AE')}", "", f"> {card.get('disclaimer', NOT_FOR_CLINICAL_USE)}", ""]
    if card.get("summary"):
        lines += [card["summary"], ""]
    sections = [("Model", "model"), ("Training data", "data"), ("Training run", "training"),
                ("Hardware", "hardware"), ("Equivalence checks", "equivalence")]
    for title, key in sections:
        if card.get(key):
            lines += [f"## {title}", "", "| field | value |", "| --- | --- |", *_table(card[key]), ""]
    if card.get("heads"):
        lines += ["## Task heads (frozen-fingerprint probes)", "",
                  "| head | kind | outputs | trained on | held-out metric | date |", "| --- | --- | --- | --- | --- | --- |"]
        for name, h in card["heads"].items():
            metric = ", ".join(f"{k}: {_fmt(v)}" for k, v in (h.get("metrics") or {}).items())
            outs = ", ".join(map(str, h.get("classes", []))) or h.get("unit", "")
            lines.append(f"| {name} | {h.get('kind', '')} | {outs} | {h.get('training_data', '')} | {metric} | {h.get('date', '')} |")
        for name, h in card["heads"].items():
            if h.get("definition"):
                lines.append(f"\n- **{name}**: {h['definition']}")
        lines.append("")
    if card.get("eval"):
        lines += [f"## Evaluation (`m2ae eval`, {card.get('eval_date', '')})", "", "| metric | value |",
                  "| --- | --- |", *_table(card["eval"]), ""]
    else:
        lines += ["## Evaluation", "", "Not yet evaluated: run `m2ae eval --write-card`.", ""]
    if card.get("limitations"):
        lines += ["## Limitations", "", *[f"- {x}" for x in card["limitations"]], ""]
    return "\n".join(lines)
