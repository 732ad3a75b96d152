"""The on-disk format of index and embedding folders: every file name, reader and writer in one place.

An index folder (``FingerprintIndex.save``; ``m2ae/index/README.md`` describes each file):

    manifest.json          format, model version/checkpoint, dims, count, index type, map, data, build command
    fingerprints.faiss     faiss.write_index of the CPU index
    metadata.parquet       one row per window (id = FAISS id = row); metadata.csv where pyarrow is missing
    waveforms_{ecg,ppg}.npy, waveforms_step.npy   int8 neighbour thumbnails (see ``waveforms.py``)
    familiarity.json       the out-of-distribution reference (``calibration.py`` makes it)

An embedding folder (``m2ae.index.embed``) holds ``fingerprints.npy``, the same metadata and
waveform files, and ``embed_manifest.json``. Folders are written to a temporary sibling and renamed
into place (``staged_folder``), files with a temp file and ``os.replace``: an interrupted write
leaves the previous version untouched.

The shipped index is package data (``m2ae/index/default``, found with ``importlib.resources``);
``$M2AE_INDEX`` points ``open_index`` elsewhere.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..errors import InputError
from .waveforms import CompactWaveforms

INDEX_FORMAT = "m2ae-index/1"
FAMILIARITY_FORMAT = "m2ae-familiarity/1"
INDEX_FILE = "fingerprints.faiss"
MANIFEST_FILE = "manifest.json"
METADATA = "metadata"                # metadata.parquet, or metadata.csv without pyarrow
METADATA_FILE = f"{METADATA}.parquet"
FAMILIARITY_FILE = "familiarity.json"
WAVEFORM_FILES = ("waveforms_ecg.npy", "waveforms_ppg.npy", "waveforms_step.npy")
EMBED_MANIFEST = "embed_manifest.json"
EMBED_FINGERPRINTS = "fingerprints.npy"
INDEX_ENV = "M2AE_INDEX"             # an index folder that replaces the shipped one


def default_index_dir() -> Path:
    """The index ``open_index`` opens without a path: ``$M2AE_INDEX``, else the shipped one."""
    override = os.environ.get(INDEX_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files("m2ae.index") / "default"))


def utc_now() -> str:
    """The current UTC time as ISO 8601 to the second (``2024-05-01T12:00:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def display_path(p: str | Path) -> str:
    """Paths inside the working directory as relative paths (a manifest stays portable), others as given."""
    s = str(p)
    try:
        q = Path(s)
        if q.is_absolute():
            return str(q.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        pass
    return s


def portable_source(source: str | Path, roots: list[str | Path]) -> str:
    """A record's ``source`` as an index ships it: ``display_path`` when that stays inside the working
    directory; otherwise, under one of the build's input folders, that folder's name + the path inside it
    (``../shared/data/cinc2015/records/r1.hea`` given ``../shared/data/cinc2015`` →
    ``cinc2015/records/r1.hea``), so no reader is shown a path of the machine that built the index."""
    shown = display_path(source)
    if not (shown.startswith("..") or Path(shown).is_absolute()):
        return shown
    try:
        q = Path(source).resolve()
        for root in roots:
            r = Path(root).resolve()
            if r.is_dir() and q.is_relative_to(r):
                return str(Path(r.name) / q.relative_to(r))
    except (ValueError, OSError):
        pass
    return shown


# --- whole folders and single files, atomically --------------------------------------------------

@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A temporary sibling of ``target`` to fill; it replaces ``target`` when the block succeeds and
    is removed when it fails (so an interrupted write leaves the previous folder untouched)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a finished folder into place; the old one is removed only after the rename succeeded."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private; the finished folder follows the umask
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, doc: Any, indent: int = 2) -> Path:
    """Write ``doc`` as JSON atomically (a temp file in the same folder, then os.replace)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=indent, default=_json_default)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _first_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 160 characters of it), for one-line errors."""
    lines = str(e).splitlines()
    return f"{type(e).__name__}: {lines[0][:160] if lines else ''}"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# --- manifest and FAISS index --------------------------------------------------------------------

def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    return write_json(Path(folder) / MANIFEST_FILE, manifest)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of an index folder; InputError (one line) when the folder is not a complete index."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such index folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not an index folder (expected a folder with {MANIFEST_FILE})")
    mf = folder / MANIFEST_FILE
    if not mf.exists():
        raise InputError(f"{folder}: not an index folder ({MANIFEST_FILE} missing)")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{mf}: corrupt manifest ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InputError(f"{mf}: not an m2ae index manifest (format {found!r}, expected {INDEX_FORMAT!r})")
    if not (folder / INDEX_FILE).exists():
        raise InputError(f"{folder}: {INDEX_FILE} missing (index folder incomplete)")
    return manifest


def write_faiss(folder: Path, index: Any) -> None:
    import faiss

    faiss.write_index(index, str(Path(folder) / INDEX_FILE))


def read_faiss(folder: Path) -> Any:
    import faiss

    path = Path(folder) / INDEX_FILE
    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:
        raise InputError(f"{path}: corrupt FAISS index ({str(e).strip().splitlines()[-1][:160]})") from None


# --- metadata tables -----------------------------------------------------------------------------

def tidy_metadata(meta: pd.DataFrame) -> pd.DataFrame:
    """Make metadata columns storable in parquet: label columns that are all numbers become float,
    other object columns become strings (missing stays missing)."""
    meta = meta.reset_index(drop=True).copy()
    for col in meta.columns:
        s = meta[col]
        if s.dtype != object:
            continue
        non_null = s.dropna()
        if len(non_null) and all(isinstance(v, (bool, np.bool_)) for v in non_null):
            meta[col] = s.astype("boolean")
        elif len(non_null) and all(isinstance(v, (int, float, np.integer, np.floating))
                                   and not isinstance(v, (bool, np.bool_)) for v in non_null):
            meta[col] = pd.to_numeric(s, errors="coerce").astype(float)
        else:
            meta[col] = s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                              ).astype(object)
    return meta


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401  (streamlit depends on it; CSV is the fallback)
    except ImportError:
        return False
    return True


def write_metadata(meta: pd.DataFrame, folder: Path, stem: str = METADATA) -> Path:
    """Write ``<folder>/<stem>.parquet`` (``.csv`` where pyarrow is missing); returns the file."""
    folder = Path(folder)
    if not _has_pyarrow():
        p = folder / f"{stem}.csv"
        meta.to_csv(p, index=False)
        return p
    p = folder / f"{stem}.parquet"
    meta.to_parquet(p, index=False)
    return p


def read_metadata(folder: Path, stem: str = METADATA) -> pd.DataFrame:
    """Read what ``write_metadata`` wrote; InputError (one line) when it is missing or damaged."""
    folder = Path(folder)
    p, c = folder / f"{stem}.parquet", folder / f"{stem}.csv"
    try:
        if p.exists():
            return pd.read_parquet(p)
        if c.exists():
            return pd.read_csv(c)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise InputError(f"{folder}: corrupt metadata table ({_first_line(e)})") from None
    raise InputError(f"{folder}: {p.name} missing (index folder incomplete)")


# --- compact waveforms ---------------------------------------------------------------------------

def write_waveforms(folder: Path, waves: CompactWaveforms) -> None:
    """int8 codes per modality and one [N, 2] float32 array of steps (ECG, PPG)."""
    folder = Path(folder)
    ecg_file, ppg_file, step_file = WAVEFORM_FILES
    np.save(folder / ecg_file, waves.ecg)
    np.save(folder / ppg_file, waves.ppg)
    np.save(folder / step_file, np.stack([waves.ecg_step, waves.ppg_step], axis=1))


def has_waveforms(folder: Path) -> bool:
    return (Path(folder) / WAVEFORM_FILES[0]).exists()


def read_waveforms(folder: Path, mmap: bool = True) -> CompactWaveforms:
    """The waveforms ``write_waveforms`` wrote; the int8 codes memory-mapped unless ``mmap=False``."""
    folder = Path(folder)
    ecg_file, ppg_file, step_file = WAVEFORM_FILES
    mode: Literal["r"] | None = "r" if mmap else None
    ecg = np.load(folder / ecg_file, mmap_mode=mode, allow_pickle=False)
    ppg = np.load(folder / ppg_file, mmap_mode=mode, allow_pickle=False)
    step = np.load(folder / step_file, allow_pickle=False)
    return CompactWaveforms(ecg, ppg, step[:, 0].astype(np.float32), step[:, 1].astype(np.float32))


# --- familiarity reference -----------------------------------------------------------------------

def write_familiarity(folder: Path, ref: dict[str, Any]) -> Path:
    """Write ``<folder>/familiarity.json`` atomically."""
    return write_json(Path(folder) / FAMILIARITY_FILE, ref, indent=1)


def read_familiarity(folder: Path) -> tuple[dict | None, str | None]:
    """(reference, None) from ``<folder>/familiarity.json``, or (None, why) when absent or unreadable."""
    p = Path(folder) / FAMILIARITY_FILE
    if not p.exists():
        return None, f"no {FAMILIARITY_FILE} in the index folder (run `m2ae index calibrate`)"
    try:
        ref = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{p}: unreadable ({type(e).__name__}); run `m2ae index calibrate`"
    if not isinstance(ref, dict) or ref.get("format") != FAMILIARITY_FORMAT or not isinstance(ref.get("modes"), dict):
        return None, f"{p}: not a {FAMILIARITY_FORMAT} file; run `m2ae index calibrate`"
    return ref, None


# --- embedding folders ---------------------------------------------------------------------------

def write_embeddings(out: Path, fingerprints: np.ndarray, metadata: pd.DataFrame, waves: CompactWaveforms,
                     manifest: dict[str, Any]) -> None:
    """Write an embedding folder atomically (see the module docstring)."""
    with staged_folder(out) as tmp:
        np.save(tmp / EMBED_FINGERPRINTS, fingerprints)
        write_metadata(metadata, tmp)
        write_waveforms(tmp, waves)
        write_json(tmp / EMBED_MANIFEST, manifest)


def read_embeddings(folder: Path) -> tuple[np.ndarray, pd.DataFrame, CompactWaveforms, dict[str, Any]]:
    """(fingerprints [N, D], metadata, waveforms, manifest) of an embedding folder, checked to agree."""
    folder = Path(folder)
    mf = folder / EMBED_MANIFEST
    if not mf.exists():
        raise InputError(f"{folder}: not an embedding folder ({EMBED_MANIFEST} missing)")
    try:
        manifest = json.loads(mf.read_text())
        fps = np.load(folder / EMBED_FINGERPRINTS, allow_pickle=False)
        waves = read_waveforms(folder, mmap=False)
    except (json.JSONDecodeError, ValueError, OSError) as e:
        raise InputError(f"{folder}: corrupt embedding folder ({_first_line(e)})") from None
    meta = read_metadata(folder)
    if not (len(fps) == len(meta) == len(waves)):
        raise InputError(f"{folder}: fingerprints ({len(fps)}), metadata ({len(meta)}) and waveforms ({len(waves)}) "
                         "disagree")
    return fps, meta, waves, manifest
