"""The training configuration: ``TrainConfig`` (nanoGPT style) and ``load_config``.

A ``TrainConfig`` holds the architecture as one ``M2AEConfig`` (``cfg.model``) beside the data,
optimisation and system settings. Config files and ``--set`` overrides name every field flat
(``dim = 128`` as well as ``max_steps = 2000``): architecture keys are routed into ``cfg.model``. A
file may also give the architecture as a nested ``model`` table, the form a checkpoint's card
records (``training.config``), so a card's config can be fed back as a config file.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..model.m2ae import M2AEConfig

MODEL_KEYS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(M2AEConfig))


@dataclass
class TrainConfig:
    model: M2AEConfig = field(default_factory=M2AEConfig)  # architecture (dim, depths, fingerprint_dim, ...)
    # data
    data: list[str] = field(default_factory=list)  # corpus folders/files (m2ae.io.iter_corpus); empty = simulator only
    data_split: str = "train"                  # corpus records used: those whose meta labels' split is this
                                               # (records without a split label are used too); "" = every
                                               # record. Never "test": held-out records stay unread
    sim_fraction: float = 1.0                  # share of each batch from the simulator when corpora are given
    registry_fraction: float = 0.0             # share from real single-modality recordings shipped on PyPI
                                               # (m2ae.simulate.registry): masked reconstruction of that modality
    max_shift_s: float = 0.3                   # random ECG/PPG lag augmentation (device delays differ)
    sim_noise: bool = True
    sim_faint_p_share: float = 0.0             # share of simulated subjects with faint/no P waves (0.25
                                               # breaks the simulator's "no P wave = AF" shortcut)
    cache_dir: str = ""                        # where corpus segments are cached (default: <out>.cache)
    # optimisation
    batch_size: int = 64                       # per process
    max_steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.05
    beta2: float = 0.95
    grad_clip: float = 1.0
    w_envelope: float = 0.5                    # timing-tolerant envelope loss weight
    w_contrastive: float = 0.1                 # symmetric InfoNCE weight (ECG-only vs PPG-only of one window)
    w_subject: float = 0.0                     # subject-level supervised contrastive weight (needs
    windows_per_subject: int = 1               # > 1 windows per simulated subject in a batch)
    subject_views: str = "all"                 # fingerprints the subject term acts on: all | both
    init_from: str = ""                        # checkpoint whose weights start the run (fine-tuning)
    scenario_probs: list[float] = field(default_factory=lambda: [0.4, 0.15, 0.1, 0.175, 0.175])
    # complementary, random, block, ECG only, PPG only
    # system
    device: str = "auto"                       # auto | cpu | cuda
    amp: bool = True                           # bf16 autocast on CUDA
    compile: bool = False                      # torch.compile the model
    num_workers: int = 0                       # DataLoader worker processes generating batches
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000
    val_windows: int = 512                     # fixed validation batch (splits.VAL_SEED)
    val_real_records: int = 60                 # real validation: up to this many validation-split corpus
    val_real_windows: int = 6                  # records (seeded pick), their first windows with ECG + PPG
    time_budget_s: float = 0.0                 # > 0: stop (and checkpoint) once training ran this long
    stop_at_step: int = 0                      # > 0: stop (and checkpoint) after this step, keeping the
                                               # max_steps schedule (split a run across time-limited jobs)
    progress: bool = True

    def model_config(self) -> M2AEConfig:
        """The architecture part (``self.model``)."""
        return self.model

    if not TYPE_CHECKING:  # hidden from mypy, so library code is checked to say ``cfg.model.dim``
        def __getattr__(self, name: str) -> Any:
            # ``cfg.dim`` reads ``cfg.model.dim``: the flat names config files and ``--set`` use
            if name in MODEL_KEYS and "model" in self.__dict__:
                return getattr(self.model, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


TRAIN_KEYS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(TrainConfig)) - {"model"}


def _flat(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` with a nested ``model`` table spread into flat architecture keys."""
    nested = values.get("model")
    if nested is None:
        return dict(values)
    if not isinstance(nested, dict):
        raise InputError(f"{where}: 'model' must be a table of architecture fields, got {nested!r}")
    return {**{k: v for k, v in values.items() if k != "model"}, **nested}


def _read_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: config file not found")
    try:
        if p.suffix == ".toml":
            import tomllib

            loaded = tomllib.loads(p.read_text())
        else:
            loaded = json.loads(p.read_text())
    except Exception as e:
        raise InputError(f"{p}: not a valid {p.suffix.lstrip('.') or 'JSON'} config ({str(e).splitlines()[0]})") from e
    return _flat(loaded, str(p))


def _parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> {key: JSON value, or the bare string when it is not JSON}."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        if k not in TRAIN_KEYS | MODEL_KEYS:
            known = [f.name for f in dataclasses.fields(M2AEConfig)] + [
                f.name for f in dataclasses.fields(TrainConfig) if f.name != "model"]
            raise InputError(f"--set {k}: unknown config field (known: {', '.join(known)})")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v  # a bare string
    return out


def _check_types(obj: Any) -> None:
    """Booleans must be booleans and numbers numbers (floats coerced), judged by each field's default."""
    defaults = type(obj)()
    for f in dataclasses.fields(obj):
        default, v = getattr(defaults, f.name), getattr(obj, f.name)
        if isinstance(default, bool) and not isinstance(v, bool):
            raise InputError(f"config {f.name}: expected true/false, got {v!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise InputError(f"config {f.name}: expected a number, got {v!r}")
            setattr(obj, f.name, type(default)(v) if isinstance(default, float) else v)


def load_config(path: str | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> TrainConfig:
    """TrainConfig from defaults <- ``base`` <- JSON/TOML file <- ``key=value`` overrides.

    Every layer names fields flat (architecture keys too); ``base`` and the file may also nest the
    architecture under ``model``.
    """
    values = _flat(dict(base or {}), "config")
    if path:
        values.update(_read_file(path))
    values.update(_parse_overrides(overrides or []))
    unknown = set(values) - TRAIN_KEYS - MODEL_KEYS
    if unknown:
        raise InputError(f"config: unknown field(s) {', '.join(sorted(unknown))}")
    model = M2AEConfig(**{k: v for k, v in values.items() if k in MODEL_KEYS})
    cfg = TrainConfig(model=model, **{k: v for k, v in values.items() if k in TRAIN_KEYS})
    _check_types(model)
    _check_types(cfg)
    if cfg.subject_views not in ("all", "both"):
        raise InputError(f"config subject_views: expected 'all' or 'both', got {cfg.subject_views!r}")
    if not 0.0 <= cfg.sim_faint_p_share <= 1.0:
        raise InputError(f"config sim_faint_p_share: expected a share within 0-1, got {cfg.sim_faint_p_share}")
    if cfg.data_split is None:  # `--set data_split=null`: no split filter, as ""
        cfg.data_split = ""
    if cfg.data_split not in ("", "train", "validation"):
        raise InputError(f"config data_split: expected 'train', 'validation' or '' (every record), got "
                         f"{cfg.data_split!r}; the test split is held out and never trained on")
    if cfg.val_real_records < 0 or cfg.val_real_windows < 0:
        raise InputError("config: val_real_records and val_real_windows must be >= 0")
    if cfg.batch_size < 2 or cfg.max_steps < 1:
        raise InputError("config: batch_size must be >= 2 and max_steps >= 1")
    return cfg
