"""The signal contract every part of m2ae agrees on.

Canonical rate 125 Hz, windows of 10 s (1250 samples) cut into 25-sample (0.2 s) patches, so each
modality contributes 50 patches per window. Other rates are resampled, never rejected.
"""
from __future__ import annotations

FS_HZ: float = 125.0
WINDOW_S: float = 10.0
WINDOW_SAMPLES: int = 1250
PATCH_SAMPLES: int = 25
N_PATCHES: int = WINDOW_SAMPLES // PATCH_SAMPLES  # 50 per modality

ECG_BAND_HZ: tuple[float, float] = (0.5, 40.0)
PPG_BAND_HZ: tuple[float, float] = (0.5, 8.0)

MODALITIES: tuple[str, str] = ("ecg", "ppg")

# Rhythm classes: short code (used in labels, files, heads) -> the name a clinician writes.
RHYTHM_NAMES: dict[str, str] = {
    "NSR": "sinus rhythm",
    "AF": "atrial fibrillation",
    "SB": "sinus bradycardia",
    "ST": "sinus tachycardia",
    "PVC": "ventricular ectopy (PVCs)",
    # the rhythms ICU monitors alarm on (PhysioNet/CinC 2015 alarm types)
    "VT": "ventricular tachycardia",
    "VF": "ventricular flutter / fibrillation",
    "ASY": "asystole",
    "XB": "extreme bradycardia",
    "XT": "extreme tachycardia",
}
# Subject rhythms: what a simulated subject is drawn with by default (pretraining, cohorts, samples).
RHYTHM_CODES: tuple[str, ...] = ("NSR", "AF", "SB", "ST", "PVC")
# Alarm rhythms: simulated on request (``rhythms=``) and learnt by the rhythm head from real ICU alarms.
ALARM_RHYTHM_CODES: tuple[str, ...] = ("VT", "VF", "ASY", "XB", "XT")
# Every rhythm code, in the rhythm head's class order (the first five keep their old indices).
ALL_RHYTHM_CODES: tuple[str, ...] = RHYTHM_CODES + ALARM_RHYTHM_CODES

# Inputs outside these limits are refused with an InputError rather than guessed at.
MIN_FS_HZ: float = 20.0
MAX_FS_HZ: float = 10_000.0
MAX_FILE_BYTES: int = 512 * 1024 * 1024  # 512 MiB: larger files must be split or streamed
QUALITY_THRESHOLD: float = 0.5  # windows below this per-channel quality are flagged, not dropped

# The model's input modes ("both", "ecg", "ppg") as every page and report names them.
INPUT_MODE_NAMES: dict[str, str] = {"both": "ECG + PPG", "ecg": "ECG only", "ppg": "PPG only"}
