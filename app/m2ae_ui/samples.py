"""The sample records the app offers: ``sample_data/manifest.json`` read into ``SampleEntry`` rows.

Where the folder is (``M2AE_SAMPLE_DIR`` or the checkout's ``sample_data/``) is ``state.sample_dir``'s
business; this module only reads a manifest.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2ae.errors import InputError


@dataclass(frozen=True)
class SampleEntry:
    """One record of ``sample_data/``: a display name, the file to open and what it is."""

    name: str
    path: Path
    description: str = ""
    info: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.name} — {self.description}" if self.description else self.name


def load_manifest(root: str | Path) -> list[SampleEntry]:
    """The sample records listed in ``root/manifest.json`` (``[]`` when there is none yet).

    Accepts a list of entries or ``{"records": [...]}``; each entry needs a path (``path``/``file``)
    relative to ``root``; ``name``/``id`` and ``description``/``title`` are shown to the user.
    Entries whose file is missing are left out.
    """
    root = Path(root)
    manifest = root / "manifest.json"
    if not manifest.exists():
        return []
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{manifest}: not valid JSON ({e})") from e
    entries = doc.get("records", doc.get("samples", [])) if isinstance(doc, dict) else doc
    if isinstance(entries, dict):  # {name: entry}
        entries = [{"name": k, **v} for k, v in entries.items()]
    out = []
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue
        rel = entry.get("path") or entry.get("file") or entry.get("filename")
        if not rel:
            continue
        path = root / rel
        if not path.exists():
            continue
        name = str(entry.get("name") or entry.get("id") or Path(rel).stem)
        desc = str(entry.get("description") or entry.get("title") or "")
        out.append(SampleEntry(name=name, path=path, description=desc, info=entry))
    return out
