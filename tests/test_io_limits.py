"""Limits before allocation: small files that declare huge records are refused (or read) cheaply.

Each bomb runs ``m2ae.load_record`` in a subprocess, so its peak resident memory (VmHWM) and
time are its own: every one must stay under 500 MB and 5 s (the bound issue 12 sets), and a refusal
must be one line naming the limit's setting.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from m2ae.errors import InputError
from m2ae.io import limits, load_record

ROOT = Path(__file__).resolve().parents[1]
PEAK_MB, SECONDS = 500, 5.0

_PROBE = """
import json, sys, time
import pandas, scipy.signal, wfdb, m2ae  # imported before the clock starts: their cost is not the file's

def peak_mb():
    # VmHWM, not ru_maxrss: ru_maxrss survives fork + exec, so it would report the pytest parent's size.
    return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM")) / 1024

for path in sys.argv[1:]:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current size, so each file's peak is its own
    base = peak_mb()
    t = time.perf_counter()
    try:
        rec = m2ae.load_record(path)
        out = {"ok": True, "n": rec.n_samples, "fs": rec.fs, "notes": rec.meta.get("notes", [])}
    except m2ae.InputError as e:
        out = {"ok": False, "error": str(e)}
    out.update(path=path, s=time.perf_counter() - t, peak_mb=peak_mb(), base_mb=base)
    rec = None
    print(json.dumps(out), flush=True)
"""


def probe_all(paths: list[Path]) -> dict[str, dict]:
    """``load_record`` on each path in one fresh interpreter: result, seconds, peak resident MB."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, "-c", _PROBE, *map(str, paths)], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return {(r := json.loads(line))["path"]: r for line in out.stdout.strip().splitlines()}


_RESULTS: dict[str, dict] = {}


def probe(path: Path) -> dict:
    """The probe's result for one bomb (all bombs of this module are probed together, once)."""
    res = _RESULTS.get(str(path)) or probe_all([path])[str(path)]
    assert res["peak_mb"] < PEAK_MB, res
    assert res["s"] < SECONDS, res
    return res


def gap_csv(path: Path, jump_s: float, rows: int = 1600, fs: float = 250.0) -> Path:
    """A ~40 KB CSV at ``fs`` whose last time stamp jumps to ``jump_s``."""
    lines = [f"{i / fs:.4f},{np.sin(i / 10):.3f},{np.cos(i / 10):.3f}" for i in range(rows)]
    lines[-1] = f"{jump_s},0.1,0.2"
    path.write_text("time,II,PLETH\n" + "\n".join(lines) + "\n")
    return path


def _npy_bytes(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def npz_with_unused_gigabyte(path: Path) -> Path:
    t = np.arange(5000) / 250
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("ecg.npy", _npy_bytes(np.sin(2 * np.pi * t)))
        z.writestr("ppg.npy", _npy_bytes(np.cos(2 * np.pi * t)))
        z.writestr("fs.npy", _npy_bytes(np.array(250.0)))
        with z.open("junk.npy", "w", force_zip64=True) as f:
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (2**27,)})
            f.write(head.getvalue())
            for _ in range(64):
                f.write(bytes(1 << 24))  # 1 GiB of zeros, ~1 MB compressed
    return path


def npz_declaring_huge_shape(path: Path) -> Path:
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ecg.npy", head.getvalue() + bytes(1000))
        z.writestr("fs.npy", _npy_bytes(np.array(250.0)))
    return path


def vital_file(path: Path, seconds: float, srate: float, n: int = 1000) -> Path:
    import vitaldb

    vf = vitaldb.VitalFile()
    t0 = 1_600_000_000.0
    vf.dtstart, vf.dtend = t0, t0 + seconds
    x = np.sin(np.arange(n) / 10).astype(np.float32)
    vf.add_track("SNUADC/ECG_II", [{"dt": t0, "val": x}], srate=srate, unit="mV")
    vf.add_track("SNUADC/PLETH", [{"dt": t0, "val": x}], srate=srate, unit="")
    vf.to_vital(str(path))
    return path


_VITAL_CASES = [(1e6, 500, "MAX_RECORD_S"), (30_000, 500, "MAX_GRID_EXPANSION"), (60, 5e7, "outside the supported range")]


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """Every bomb file of this module, probed together in one subprocess (one import of m2ae)."""
    d = tmp_path_factory.mktemp("bombs")
    files = {f"gap_{j:g}": gap_csv(d / f"gap_{j:g}.csv", j) for j in (3e5, 3e6, 1e5)}
    (d / "oneline.csv").write_text(",".join(str(i % 97) for i in range(6_500_000)))
    files["oneline"] = d / "oneline.csv"
    files["npz_unused"] = npz_with_unused_gigabyte(d / "unused.npz")
    files["npz_shape"] = npz_declaring_huge_shape(d / "shape.npz")
    try:
        import vitaldb  # noqa: F401
    except ImportError:
        pass
    else:
        for k, (seconds, srate, _) in enumerate(_VITAL_CASES):
            files[f"vital_{k}"] = vital_file(d / f"bomb{k}.vital", seconds, srate)
    _RESULTS.update(probe_all(list(files.values())))
    return files


@pytest.mark.parametrize("jump_s, setting", [(3e5, "MAX_RECORD_S"), (3e6, "MAX_RECORD_S"),
                                              (1e5, "MAX_GRID_EXPANSION")])
def test_csv_time_jump_is_refused_before_the_gap_grid(bombs, jump_s, setting):
    res = probe(bombs[f"gap_{jump_s:g}"])
    assert not res["ok"] and f"m2ae.io.limits.{setting}" in res["error"], res
    assert "\n" not in res["error"]


def test_csv_with_real_gaps_still_reads(tmp_path):
    """A gap of a few seconds (well within the expansion allowed) still becomes NaN on the grid."""
    rec = load_record(gap_csv(tmp_path / "short_gap.csv", 12.0))
    assert rec.fs == 250.0 and rec.n_samples == 3001 and np.isnan(rec.ecg).sum() == 3001 - 1600


def test_twenty_megabyte_single_line(bombs):
    assert bombs["oneline"].stat().st_size > 18_000_000
    res = probe(bombs["oneline"])
    assert not res["ok"] and "m2ae.io.limits.MAX_LINE_CHARS" in res["error"], res


def test_npz_unused_gigabyte_member_is_never_decompressed(bombs):
    assert bombs["npz_unused"].stat().st_size < 2_000_000
    res = probe(bombs["npz_unused"])
    assert res["ok"] and res["n"] == 5000, res


def test_npz_member_declaring_a_huge_shape(bombs):
    res = probe(bombs["npz_shape"])
    assert not res["ok"] and "m2ae.io.limits.MAX_DECOMPRESSED_BYTES" in res["error"], res


def test_npy_header_declaring_more_than_the_file_holds(tmp_path):
    p = tmp_path / "liar.npy"
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (1000, 2)})
    p.write_bytes(head.getvalue() + bytes(800))
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_record(p, fs=100, ecg=0)
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (10**11,)})
    p.write_bytes(head.getvalue() + bytes(800))
    with pytest.raises(InputError, match="m2ae.io.limits.MAX_RECORD_SAMPLES"):
        load_record(p, fs=100, ecg=0)


@pytest.mark.parametrize("case", range(len(_VITAL_CASES)))
def test_vital_declared_span_and_rate_checked_first(bombs, case):
    pytest.importorskip("vitaldb")
    p = bombs[f"vital_{case}"]
    assert p.stat().st_size < 20_000
    res = probe(p)
    assert not res["ok"] and _VITAL_CASES[case][2] in res["error"], res


def test_vital_gzip_bomb(tmp_path, monkeypatch):
    p = tmp_path / "zeros.vital"
    with gzip.open(p, "wb") as g:
        g.write(b"VITA" + bytes(8 << 20))
    monkeypatch.setattr(limits, "MAX_DECOMPRESSED_BYTES", 4 << 20)
    with pytest.raises(InputError, match="m2ae.io.limits.MAX_DECOMPRESSED_BYTES"):
        load_record(p)


def test_vital_compression_ratio(tmp_path, monkeypatch):
    p = tmp_path / "zeros.vital"
    with gzip.open(p, "wb") as g:
        g.write(b"VITA" + bytes(8 << 20))
    monkeypatch.setattr(limits, "COMPRESSION_FLOOR_BYTES", 1 << 20)
    with pytest.raises(InputError, match=r"expands [\d,]+ times.*m2ae\.io\.limits\.MAX_COMPRESSION_RATIO"):
        load_record(p)


def _edf_header(ns: int, n_records: int, duration: float, spr: list[int], labels: list[str]) -> bytes:
    fixed = (b"0".ljust(8) + b"X".ljust(80) + b"Y".ljust(80) + b"01.01.20" + b"00.00.00"
             + str(256 * (ns + 1)).encode().ljust(8) + b"".ljust(44) + str(n_records).encode().ljust(8)
             + str(duration).encode().ljust(8) + str(ns).encode().ljust(4))
    per = b"".join(lb.encode().ljust(16) for lb in labels) + b" " * 80 * ns + b"mV".ljust(8) * ns
    per += b"-1".ljust(8) * ns + b"1".ljust(8) * ns + b"-32768".ljust(8) * ns + b"32767".ljust(8) * ns
    per += b" " * 80 * ns + b"".join(str(n).encode().ljust(8) for n in spr) + b" " * 32 * ns
    return fixed + per


def test_edf_header_declaring_days_at_a_high_rate(tmp_path):
    p = tmp_path / "bomb.edf"
    p.write_bytes(_edf_header(2, 10**7, 1.0, [250, 250], ["ECG II", "Pleth"]) + bytes(2000))
    with pytest.raises(InputError, match=r"truncated|m2ae\.io\.limits\.MAX_RECORD_S"):
        load_record(p)
    p.write_bytes(_edf_header(2, 1, 1.0, [5 * 10**7, 250], ["ECG II", "Pleth"]) + bytes(2000))
    with pytest.raises(InputError, match=r"outside the supported range|truncated"):
        load_record(p)


def test_wfdb_header_declaring_more_than_its_data(tmp_path):
    (tmp_path / "big.hea").write_text("big 2 250 900000000\nbig.dat 16 200/mV 16 0 0 0 0 II\n"
                                      "big.dat 16 200 16 0 0 0 0 PLETH\n")
    (tmp_path / "big.dat").write_bytes(struct.pack("<2000h", *([0] * 2000)))
    with pytest.raises(InputError, match="truncated"):
        load_record(tmp_path / "big.hea")


def test_wfdb_sig_len_over_the_sample_limit(tmp_path, monkeypatch):
    from m2ae.io import write_record
    from m2ae.record import Record

    t = np.arange(5000) / 250
    hea = write_record(Record(np.sin(t), np.cos(t), 250.0, {}), tmp_path / "rec", "wfdb")
    monkeypatch.setattr(limits, "MAX_RECORD_SAMPLES", 4000)
    with pytest.raises(InputError, match=r"5,000 samples per channel .*m2ae\.io\.limits\.MAX_RECORD_SAMPLES"):
        load_record(hea)


def test_csv_rows_over_the_sample_limit(tmp_path, monkeypatch):
    p = tmp_path / "long.csv"
    p.write_text("time,II\n" + "\n".join(f"{i / 100},{i % 7}" for i in range(3000)))
    monkeypatch.setattr(limits, "MAX_RECORD_SAMPLES", 2000)
    with pytest.raises(InputError, match=r"m2ae\.io\.limits\.MAX_RECORD_SAMPLES"):
        load_record(p)


def test_each_limit_is_a_named_setting():
    for name in ("MAX_RECORD_S", "MAX_RECORD_SAMPLES", "MAX_READ_SAMPLES", "MAX_DECOMPRESSED_BYTES",
                 "MAX_GRID_EXPANSION", "MAX_LINE_CHARS", "MAX_COLUMNS", "MAX_EVENTS"):
        assert getattr(limits, name) > 0
    with pytest.raises(InputError, match=r"x: .*m2ae\.io\.limits\.MAX_COLUMNS"):
        limits.check_columns("x", limits.MAX_COLUMNS + 1)
