"""Run configurations: TOML files (``configs/*.toml``) read into frozen dataclasses.

A configuration has three tables; every key is optional and defaults to the seed
tutorial's workflow (see ``configs/blobs.toml`` for a commented example)::

    name = "blobs"                 # output folder: models/<name>/
    [data]
    source = "blobs"               # "blobs" (built-in generator) or a .npy / .csv path
    n_samples = 300                # blobs only
    centers = 4
    cluster_std = 0.60
    random_state = 0
    [sweep]
    n_components = [1, 20]         # inclusive range of K
    covariance_types = ["full"]
    criterion = "bic"              # bic | aic | icl
    [fit]
    n_components = "best"          # an int, or "best" = the sweep's choice
    covariance_type = "best"
    n_init = 1
    tol = 1e-3
    reg_covar = 1e-6
    max_iter = 100
    random_state = 0

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["DataConfig", "SweepConfig", "FitConfig", "RunConfig", "load_config", "from_dict"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: str = "blobs"
    n_samples: int = 300
    centers: int = 4
    cluster_std: float = 0.60
    random_state: int = 0
    delimiter: str = ","  # for .csv sources
    skip_header: int = 0


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    n_components: tuple[int, int] = (1, 20)
    covariance_types: tuple[str, ...] = ("full",)
    criterion: str = "bic"


@dataclasses.dataclass(frozen=True)
class FitConfig:
    n_components: int | str = "best"
    covariance_type: str = "best"
    n_init: int = 1
    tol: float = 1e-3
    reg_covar: float = 1e-6
    max_iter: int = 100
    init_params: str = "kmeans"
    random_state: int = 0


@dataclasses.dataclass(frozen=True)
class RunConfig:
    name: str = "blobs"
    data: DataConfig = DataConfig()
    sweep: SweepConfig = SweepConfig()
    fit: FitConfig = FitConfig()


def _build(cls, table: dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in [{where}]; valid keys: {sorted(fields)}")
    kwargs = {}
    for key, value in table.items():
        default = fields[key].default
        if isinstance(default, tuple):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def from_dict(raw: dict[str, Any]) -> RunConfig:
    """Validate a parsed TOML document into a :class:`RunConfig`."""
    raw = dict(raw)
    sections = {"data": DataConfig, "sweep": SweepConfig, "fit": FitConfig}
    parts = {name: _build(cls, raw.pop(name, {}), name) for name, cls in sections.items()}
    top = _build(RunConfig, raw, "top level")
    cfg = dataclasses.replace(top, **parts)
    lo_hi = cfg.sweep.n_components
    if len(lo_hi) != 2 or not 1 <= lo_hi[0] <= lo_hi[1]:
        raise ValueError(f"[sweep] n_components must be [low, high] with 1 <= low <= high, "
                         f"got {list(lo_hi)}")
    if cfg.sweep.criterion not in ("bic", "aic", "icl"):
        raise ValueError(f"[sweep] criterion must be bic, aic or icl, got {cfg.sweep.criterion!r}")
    if not isinstance(cfg.fit.n_components, int) and cfg.fit.n_components != "best":
        raise ValueError(f"[fit] n_components must be an int or \"best\", "
                         f"got {cfg.fit.n_components!r}")
    return cfg


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run configuration."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No configuration file at {path}")
    with path.open("rb") as fh:
        return from_dict(tomllib.load(fh))
