"""Coupled ECG+PPG simulator: the model's pretraining source, with subject-level labels.

The PPG is driven beat by beat by the ECG: every R peak ejects a pulse that reaches the finger
after the pre-ejection period plus a transit time set by blood pressure and arterial stiffness,
plus the device's ECG/PPG delay. Subjects carry rhythm (NSR, AF, SB, ST, PVC; on request the ICU alarm
rhythms VT, VF, ASY, XB, XT), hypertension, age, sex and id labels. numpy + scipy only (runs on a
bare GPU box); vectorised over beats and windows.

>>> from m2ae.simulate import simulate_record, simulate_windows, sample_subject
>>> rec = simulate_record("PVC", duration_s=30, seed=1)          # an m2ae.Record with labels
>>> batch = simulate_windows(64, seed=0)                          # contract windows + label arrays
>>> batch["ecg"].shape
(64, 1250)
"""
from __future__ import annotations

from .record import simulate_record, write_cohort
from .subject import (PAT_RANGE_S, SubjectParams, sample_subject, sample_subject_table, subjects_to_table,
                      table_row)
from .windows import LABEL_KEYS, render_windows, simulate_windows, window_stream

__all__ = [
    "SubjectParams", "sample_subject", "sample_subject_table", "subjects_to_table", "table_row",
    "simulate_record", "write_cohort", "simulate_windows", "window_stream", "render_windows",
    "LABEL_KEYS", "PAT_RANGE_S",
]
