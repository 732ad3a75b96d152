"""Parquet fingerprint shards: one file per batch of records, written atomically, read back in order.

One concept: the shard file format the Ray engine (``ray_engine.py``) writes and the index build
(``streaming.py``, ``ray_engine.assemble_shards``) reads. A shard holds the windows of a fixed batch
of records, one row per window:

    fingerprint         fixed_size_list<float32>[D]   the model's fingerprint (L2-normalised)
    wave_ecg, wave_ppg  fixed_size_list<int8>[625]    compact display waveforms (``waveforms.py``)
    wave_ecg_step, wave_ppg_step  float32             their quantisation steps
    record_key          string                        the item key (``sources.py``) the row came from
    …                                                 the window metadata columns (``prepare.window_metadata``)

and, in the Parquet schema metadata, ``m2ae_skipped`` (JSON list of {"input", "error"} for the
batch's records that could not be used) and ``m2ae_model_version``. A shard is written to a
temporary name in the same folder and renamed into place, so a file named ``<shard>.parquet`` is
always complete; a run that restarts treats exactly those as done.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .files import tidy_metadata
from .waveforms import CompactWaveforms

SHARD_SUFFIX = ".parquet"
# Columns the shard format adds beside the window metadata (a metadata column never uses these names).
FP_COL, KEY_COL = "fingerprint", "record_key"
WAVE_COLS = ("wave_ecg", "wave_ppg", "wave_ecg_step", "wave_ppg_step")
RESERVED = (FP_COL, KEY_COL, *WAVE_COLS)


def _fixed_list(x: np.ndarray, pa_type: Any) -> Any:
    import pyarrow as pa

    x = np.ascontiguousarray(x)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), type=pa_type), int(x.shape[1]))


def write_shard(path: Path, fingerprints: np.ndarray, metadata: pd.DataFrame, waves: CompactWaveforms,
                record_keys: list[str], skipped: list[dict[str, str]], model_version: str) -> Path:
    """Write one shard atomically (temporary file + rename); returns its path.

    fingerprints : float32 [n, D]; metadata : n rows; waves : n windows; record_keys : n item keys;
    skipped : the batch's unusable records as {"input", "error"} (kept in the schema metadata).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    fps = np.asarray(fingerprints, np.float32).reshape(len(metadata), -1)
    if len(metadata):
        table = pa.Table.from_pandas(tidy_metadata(metadata), preserve_index=False)
        table = table.append_column(KEY_COL, pa.array(record_keys, pa.string()))
        table = table.append_column(FP_COL, _fixed_list(fps, pa.float32()))
        table = table.append_column("wave_ecg", _fixed_list(waves.ecg, pa.int8()))
        table = table.append_column("wave_ppg", _fixed_list(waves.ppg, pa.int8()))
        table = table.append_column("wave_ecg_step", pa.array(np.asarray(waves.ecg_step, np.float32)))
        table = table.append_column("wave_ppg_step", pa.array(np.asarray(waves.ppg_step, np.float32)))
    else:  # a batch whose records were all skipped still leaves a shard, so a restart does not redo it
        table = pa.table({KEY_COL: pa.array([], pa.string())})
    meta = dict(table.schema.metadata or {})
    meta[b"m2ae_skipped"] = json.dumps(skipped).encode()
    meta[b"m2ae_model_version"] = str(model_version).encode()
    table = table.replace_schema_metadata(meta)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def shard_info(path: Path) -> dict[str, Any]:
    """Rows, model version and skipped records of a shard, from its footer only (no data read)."""
    import pyarrow.parquet as pq

    md = pq.read_metadata(path)
    kv = md.metadata or {}
    return {"rows": int(md.num_rows), "model_version": kv.get(b"m2ae_model_version", b"").decode(),
            "skipped": json.loads(kv.get(b"m2ae_skipped", b"[]").decode())}


def shard_dims(path: Path) -> int:
    """Fingerprint dimensions of a shard, from its schema (0 for a shard with no rows)."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return int(schema.field(FP_COL).type.list_size) if FP_COL in schema.names else 0


def read_shard_fingerprints(path: Path) -> np.ndarray:
    """Only the fingerprint column of a shard: float32 [n, D] (what a streaming index build reads)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=[FP_COL]) if shard_info(path)["rows"] else None
    if table is None or table.num_rows == 0:
        return np.zeros((0, 0), np.float32)
    col = table.column(FP_COL).combine_chunks()
    return col.values.to_numpy(zero_copy_only=False).reshape(len(col), -1).astype(np.float32, copy=False)


def read_shard_metadata(path: Path) -> pd.DataFrame:
    """Only the window metadata columns of a shard (no fingerprints, no waveforms)."""
    import pyarrow.parquet as pq

    names = [f for f in pq.read_schema(path).names if f not in RESERVED]
    if not shard_info(path)["rows"]:
        return pd.DataFrame()
    return pq.read_table(path, columns=names).to_pandas()


def read_shard(path: Path) -> tuple[np.ndarray, pd.DataFrame, CompactWaveforms, list[dict[str, str]]]:
    """(fingerprints [n, D], metadata rows, waveforms, skipped) of one shard."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    skipped = json.loads((table.schema.metadata or {}).get(b"m2ae_skipped", b"[]").decode())
    if table.num_rows == 0:
        return np.zeros((0, 0), np.float32), pd.DataFrame(), CompactWaveforms.empty(), skipped

    def fixed(name: str, dtype: Any) -> np.ndarray:
        col = table.column(name).combine_chunks()
        return col.values.to_numpy(zero_copy_only=False).reshape(len(col), -1).astype(dtype, copy=False)

    waves = CompactWaveforms(fixed("wave_ecg", np.int8), fixed("wave_ppg", np.int8),
                             table.column("wave_ecg_step").to_numpy().astype(np.float32),
                             table.column("wave_ppg_step").to_numpy().astype(np.float32))
    fps = fixed(FP_COL, np.float32)
    meta = table.drop_columns(list(RESERVED)).to_pandas()
    return fps, meta, waves, skipped
