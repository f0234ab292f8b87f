"""Run configurations: TOML files (``configs/*.toml``) read into frozen dataclasses.

Glossary: N samples (rows of the data), D features (its columns), K components.

A configuration has up to five tables; every key is optional and defaults to the seed
tutorial's workflow (a BIC sweep of K = 1..20 on the built-in blobs)::

    name = "iris"                  # output folder: models/<name>/
    [data]                         # a CSV/.npy file, or the built-in blobs
    [sweep]                        # the K range and covariance types compared
    [fit]                          # EM's settings, the chosen K
    [bayes]                        # present: a Bayesian fit (NUTS, MAP or SVI) after EM
    [bayes.priors]                 # bayesgmm.Priors' fields

``configs/README.md`` lists every key with its type and default; it is
:func:`reference` (a test holds them equal). Each field's ``metadata`` holds its
description (``doc``) and its allowed values (``choices``, ``min``, ``gt``), which
:func:`from_dict` enforces. Allowed values the host library defines are read from
their owner where they are checked, by a function-level import, so that this module
imports nothing of the library: ``choices_from`` names the tuple (the criteria, the
component families, ``missing``), and the covariance types, EM's settings and the
noise volumes are checked by their owners' code. The Bayesian owners
(:mod:`bayesgmm.bayes`) import JAX and NumPyro (1.5 s of CPU), which reading a file
does not: their tuples (the methods, the scale priors and spreads, the model's
covariance names) stay literals here, and ``tests/test_config.py`` holds each equal to
its owner's.

Errors are :class:`ConfigError` (a ``ValueError``) with two halves, what is wrong
(naming the table, the key and the value) and the fix: unknown keys list the valid ones,
a wrong TOML type is named as such ("tol must be a number, got the string '1e-3'").
Relative data paths resolve against the configuration file's folder.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "DataConfig", "SweepConfig", "FitConfig", "PriorsConfig",
           "BayesConfig", "RunConfig", "load_config", "from_dict", "to_toml", "reference",
           "toml_value"]

README_HINT = "see configs/README.md for every key, its type and its default"


class ConfigError(ValueError):
    """A configuration problem: ``what`` is wrong (table, key, value) and its ``fix``.

    ``str(error)`` is ``"<what> — <fix>"``, the command line's one-line message.
    """

    def __init__(self, what: str, fix: str = README_HINT):
        super().__init__(f"{what} — {fix}")
        self.what = what
        self.fix = fix


def _key(default, doc: str, **rules):
    """A dataclass field with its README description and validation rules: ``choices``
    (a tuple), or ``choices_from`` (``"module.NAME"``, the owner's tuple), ``min``,
    ``gt``."""
    return dataclasses.field(default=default, metadata={"doc": doc, **rules})


def _choices(meta) -> tuple | None:
    """A field's allowed values: its ``choices``, or the tuple ``choices_from`` names
    (imported here, when a value is checked or documented)."""
    if "choices_from" in meta:
        module, name = meta["choices_from"].rsplit(".", 1)
        return tuple(getattr(importlib.import_module(module), name))
    return meta.get("choices")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``[data]``: where the samples come from."""

    path: str = _key("", "a .csv or .npy file, relative to this configuration file's "
                         "folder; empty: the built-in blobs (n_samples, centers, "
                         "cluster_std, random_state)")
    columns: tuple[str | int, ...] = _key(
        (), "the feature columns, by header name or 0-based index; empty: every column "
            "but id_column and label_column")
    id_column: str | int | None = _key(
        None, "row ids for membership.csv, by name or index; not set: the row number")
    label_column: str | int | None = _key(
        None, "known classes, by name or index, only to report the adjusted Rand index")
    header: bool | str = _key("auto", 'whether the first CSV row holds column names; '
                                      '"auto": yes when any of its fields is not a number, '
                                      "no when all are (numbers and empty fields: set it)",
                              choices=("auto", True, False))
    delimiter: str = _key(",", "the CSV field separator")
    n_samples: int = _key(300, "blobs: number of samples", min=1)
    centers: int = _key(4, "blobs: number of centres", min=1)
    cluster_std: float = _key(0.60, "blobs: standard deviation of each blob", gt=0)
    random_state: int = _key(0, "blobs: seed of the generator", min=0)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """``[sweep]``: the models compared by an information criterion."""

    n_components: tuple[int, int] = _key(
        (1, 20), "the K compared: [low, high] (inclusive), or one integer K", min=1)
    covariance_types: tuple[str, ...] = _key(
        ("full",), 'a list of any of "full", "tied", "diag", "spherical" and mclust\'s 14 '
        'names ("EII" ... "VVV"; "full" is "VVV"), or "all" for mclust\'s 14')
    criterion: str = _key("bic", "the criterion that picks the best model (lower is "
                                 "better)", choices_from="bayesgmm.selection.CRITERIA")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """``[fit]``: the EM fit (its settings also serve every fit of the sweep)."""

    n_components: int | str = _key("best", 'an integer K, or "best": the sweep\'s choice')
    covariance_type: str = _key("best", 'a covariance type, or "best": the sweep\'s choice')
    n_init: int = _key(1, "EM restarts; the best lower bound wins", min=1)
    tol: float = _key(1e-3, "convergence threshold on the mean log-likelihood gain", min=0)
    reg_covar: float = _key(1e-6, "added to every covariance's diagonal", min=0)
    max_iter: int = _key(100, "EM iterations at most", min=1)
    init_params: str = _key("auto", 'initialisation: "auto" (the hierarchical start and '
                                    'the n_init k-means starts, best kept), "hc", "kmeans", '
                                    '"k-means++", "random" or "random_from_data"')
    random_state: int = _key(0, "seed of the initialisation", min=0)
    missing: str = _key("error", 'what an empty or NaN data cell means: "error" (refused, '
                                 'naming the cell) or "marginalize" (a value missing at '
                                 "random: the sweep's, the EM and the [bayes] fits use "
                                 "each row's observed features)",
                          choices_from="bayesgmm.validation.MISSING_OPTIONS")

    def chosen(self, best) -> tuple:
        """(K, covariance type) of the fit: ``n_components`` and ``covariance_type`` as
        given, or, where "best", the sweep's ``best`` row's (a mapping with those keys)."""
        return (_or_best(self.n_components, best["n_components"]),
                _or_best(self.covariance_type, best["covariance_type"]))

    def covariance_types(self, swept: tuple) -> tuple:
        """The covariance types the fit may use: its own, or where "best" the sweep's
        ``swept``."""
        return swept if _is_best(self.covariance_type) else (self.covariance_type,)


@dataclasses.dataclass(frozen=True)
class PriorsConfig:
    """``[bayes.priors]``: the fields of :class:`bayesgmm.Priors` (not set: data-scaled)."""

    weight_concentration: float = _key(1.0, "Dirichlet concentration of the weights", gt=0)
    weight_prior: str = _key("dirichlet", "the weights' prior",
                             choices=("dirichlet", "stick_breaking"))
    mean_loc: float | tuple[float, ...] | None = _key(
        None, "prior centre of every mean (a number or one per feature); not set: the "
              "data mean")
    mean_scale: float | tuple[float, ...] | None = _key(
        None, "prior std of the means; not set: 2 x the data std per feature")
    scale_loc: float | tuple[float, ...] | None = _key(
        None, "centre of the components' std devs' prior (its mode; the "
              "median for lognormal); not set: 0.5 x the data's spread (scale_spread)")
    scale_log_sd: float = _key(1.0, 'std of log(scales) (scale_prior = "lognormal" only)',
                               gt=0)
    lkj_concentration: float = _key(2.0, "LKJ concentration of each correlation matrix",
                                    gt=0)
    marginalize_missing: bool = _key(False, "treat NaN in the data as missing at random "
                                            "(set by the fit itself when the data has NaN)")
    scale_prior: str = _key("inverse_gamma", "the family of the components' std devs' "
                            "prior (inverse_gamma, mode scale_loc, keeps mass away from 0)",
                            choices=("lognormal", "inverse_gamma"))
    scale_shape: float = _key(5.0, 'InverseGamma shape of scale_prior = "inverse_gamma"',
                              gt=0)
    df_shape: float = _key(2.0, 'Gamma shape of the Student-t degrees of freedom\'s prior '
                           '(component = "t")', gt=0)
    df_rate: float = _key(0.1, 'Gamma rate of the Student-t degrees of freedom\'s prior',
                          gt=0)
    scale_spread: str = _key("qn", "the data's per-feature spread the default scale_loc is "
                             "half of: qn (robust to heavy tails and separated clusters) "
                             "or std (the default before issue 21)", choices=("qn", "std"))


@dataclasses.dataclass(frozen=True)
class BayesConfig:
    """``[bayes]``: a :class:`bayesgmm.BayesianGaussianMixture` at the EM fit's K."""

    method: str = _key("nuts", "the inference", choices=("nuts", "map", "svi"))
    n_chains: int = _key(4, "NUTS chains", min=1)
    n_warmup: int = _key(500, "NUTS warm-up iterations per chain (discarded)", min=0)
    n_draws: int = _key(500, "posterior draws per chain (NUTS) or from the guide (SVI)",
                        min=1)
    n_svi_steps: int = _key(3000, "SVI optimiser steps", min=1)
    target_accept_prob: float = _key(0.8, "NUTS target acceptance probability", gt=0)
    interval: float = _key(0.94, "probability of the membership credible intervals", gt=0)
    seed: int = _key(0, "seed of the inference", min=0)
    noise: bool = _key(False, "add a uniform noise component over the data's region "
                              "(mclust's noise): membership.csv labels a point -1 when the "
                              "noise is its most probable component, and proba.csv gains a "
                              "last column, noise")
    noise_volume: str | float = _key(
        "box", 'the noise region\'s volume: "box" (the bounding box), "hypvol", "hull", or '
               "a volume > 0 (noise = true only)")
    component: str = _key("gaussian", 'the components\' family: "t" for multivariate '
                                      "Student-t components (heavy tails)",
                          choices_from="bayesgmm.robust.COMPONENTS")
    df: float | None = _key(None, 'component = "t": every component\'s fixed degrees of '
                                  "freedom; not set: sampled (prior Gamma(df_shape, "
                                  "df_rate), [bayes.priors])", gt=0)
    sparse: bool = _key(False, "an over-fitted mixture: a sparse Dirichlet prior on the "
                               "weights (0.5 / K while [bayes.priors] weight_concentration "
                               "is left at 1), so components the data do not need empty")
    priors: PriorsConfig = _key(PriorsConfig(), "see [bayes.priors]")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole configuration file."""

    name: str = _key("blobs", "the output folder is models/<name>/ (not set: the config "
                                "file's name when [data] path is set)")
    data: DataConfig = _key(DataConfig(), "see [data]")
    sweep: SweepConfig = _key(SweepConfig(), "see [sweep]")
    fit: FitConfig = _key(FitConfig(), "see [fit]")
    bayes: BayesConfig | None = _key(None, "see [bayes]; not set: EM only")


TABLES = {"data": DataConfig, "sweep": SweepConfig, "fit": FitConfig, "bayes": BayesConfig,
          "bayes.priors": PriorsConfig}


def from_dict(raw: dict[str, Any], base: str | Path | None = None) -> RunConfig:
    """Validate a parsed TOML document into a :class:`RunConfig`.

    Parameters
    ----------
    raw : dict
        ``tomllib``'s result.
    base : path, optional
        The folder a relative ``[data] path`` resolves against (the configuration
        file's); default the current directory.

    Raises
    ------
    ConfigError
        Naming the table, the key and the value, and the fix.
    """
    raw = dict(raw)
    parts = {}
    for name in ("data", "sweep", "fit", "bayes"):
        if name in raw:
            parts[name] = _build(TABLES[name], _table(raw.pop(name), name), name)
    cfg = dataclasses.replace(_build(RunConfig, raw, "top level"), **parts)
    if cfg.data.path:
        path = Path(cfg.data.path).expanduser()
        if not path.is_absolute():
            path = (Path(base or ".") / path).resolve()
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(path)))
    _check_values(cfg)
    return cfg


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run configuration; relative data paths resolve against
    its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no configuration file at {path}",
                          "check the path (the shipped ones are in configs/)")
    try:
        # (utf-8-sig: Windows editors start a UTF-8 file with a byte-order mark)
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}",
                          "fix the syntax at that line") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}", "check the file") from None
    cfg = from_dict(raw, base=path.parent)
    if "name" not in raw and cfg.data.path:  # your data: not the demo's folder name
        stem = path.stem.strip()
        if stem and stem not in (".", ".."):
            cfg = dataclasses.replace(cfg, name=stem)
    return cfg


def toml_value(value) -> str:
    """``value`` written as TOML (``None`` has no TOML form: the caller omits it)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_toml(cfg: RunConfig) -> str:
    """The configuration as a TOML document that :func:`from_dict` reads back equal
    (keys left unset are omitted)."""
    lines = [f"name = {toml_value(cfg.name)}"]

    def table(header: str, obj) -> None:
        lines.append(f"\n[{header}]")
        nested = []
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                nested.append((f"{header}.{f.name}", v))
            elif v is not None:
                lines.append(f"{f.name} = {toml_value(v)}")
        for h, v in nested:
            table(h, v)

    for name in ("data", "sweep", "fit", "bayes"):
        if getattr(cfg, name) is not None:
            table(name, getattr(cfg, name))
    return "\n".join(lines) + "\n"


def reference() -> str:
    """Every key of every table as Markdown tables (key, type, default, meaning): the
    body of ``configs/README.md``."""
    out = []
    for header, cls in [("top level", RunConfig), *((f"[{t}]", c) for t, c in TABLES.items())]:
        out += [f"### {header}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            if header == "top level" and f.name in TABLES:
                continue
            if dataclasses.is_dataclass(f.default):
                continue
            default = "not set" if f.default is None else f"`{toml_value(f.default)}`"
            hint = typing.get_type_hints(cls)[f.name]
            out.append(f"| `{f.name}` | {_describe(hint, f.metadata)} | {default} | "
                       f"{f.metadata['doc']} |")
        out.append("")
    return "\n".join(out)


# ---- validation ------------------------------------------------------------------------


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"[{where}] must be a table, got {_got(value)}",
                          f"write it as a [{where}] section with key = value lines")
    return value


def _build(cls, table: dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(table) - set(fields))
    if unknown:
        label = "top level" if where == "top level" else f"[{where}]"
        fix = f"valid keys: {', '.join(sorted(fields))}"
        if where == "data" and "source" in unknown:
            fix = 'the data file\'s key is now path (path = "my.csv"); ' + fix
        if where == "data" and "skip_header" in unknown:
            fix = 'a header row is detected (or set header = true); ' + fix
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(unknown)} in {label}", fix)
    kwargs = {}
    for key, value in table.items():
        name = key if where == "top level" else f"[{where}] {key}"
        if dataclasses.is_dataclass(fields[key].default):  # a nested table
            sub = f"{where}.{key}"
            kwargs[key] = _build(TABLES[sub], _table(value, sub), sub)
            continue
        if cls is SweepConfig and key == "n_components" and _is_int(value):
            value = [value, value]  # one K
        if cls is SweepConfig and key == "covariance_types" and value == "all":
            from bayesgmm.selection import all_covariance_types  # (no JAX import)

            value = list(all_covariance_types())  # mclust's 14, as sweep(..., "all")
        kwargs[key] = _convert(value, hints[key], name, fields[key].metadata)
    return cls(**kwargs)


def _convert(value, hint, name: str, meta) -> Any:
    """``value`` as the field's type, or a ConfigError naming both types."""
    out = _as(value, hint)
    if out is _WRONG:
        fix = README_HINT
        if isinstance(value, str) and _number(value) is not None:
            fix = f"write {name.split()[-1]} = {value} without quotes"
        raise ConfigError(f"{name} must be {_describe(hint, meta)}, got {_got(value)}", fix)
    return out


_WRONG = object()


def _as(value, hint):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None):
                continue
            out = _as(value, option)
            if out is not _WRONG:
                return out
        return _WRONG
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            return _WRONG
        if len(args) == 2 and args[1] is Ellipsis:
            items = [_as(v, args[0]) for v in value]
        elif len(value) == len(args):
            items = [_as(v, a) for v, a in zip(value, args)]
        else:
            return _WRONG
        return _WRONG if any(i is _WRONG for i in items) else tuple(items)
    if hint is bool:
        return value if isinstance(value, bool) else _WRONG
    if hint is int:
        return value if _is_int(value) else _WRONG
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else _WRONG
    if hint is str:
        return value if isinstance(value, str) else _WRONG
    raise TypeError(f"no TOML form for {hint}")  # a field this module forgot


def _describe(hint, meta=None) -> str:
    """The type in words: "a number", "a list of strings", ..."""
    meta = meta or {}
    if _choices(meta) is not None:
        return "one of " + ", ".join(toml_value(c) for c in _choices(meta))
    if hint == tuple[int, int]:
        return "an integer K or a list [low, high] of integers"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))
    if origin is tuple:
        args = typing.get_args(hint)
        inner = _describe(args[0])
        plural = {"a string": "strings", "an integer": "integers", "a number": "numbers",
                  "a string or an integer": "names or indices"}[inner]
        return f"a list of {plural}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]


def _got(value) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, list):
        shown = toml_value(value) if _plain(value) else repr(value)
        return f"the list {shown}"
    if isinstance(value, dict):
        return "a table"
    return f"{type(value).__name__} {value!r}"  # TOML dates and times


def _plain(value) -> bool:
    return all(isinstance(v, str | int | float | bool) for v in value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _check_values(cfg: RunConfig) -> None:
    """Ranges and choices (field metadata), then the rules across keys."""
    tables = [("", cfg), ("[data] ", cfg.data), ("[sweep] ", cfg.sweep), ("[fit] ", cfg.fit)]
    if cfg.bayes is not None:
        tables += [("[bayes] ", cfg.bayes), ("[bayes.priors] ", cfg.bayes.priors)]
    for prefix, obj in tables:
        for f in dataclasses.fields(obj):
            _check_rules(getattr(obj, f.name), f.metadata, prefix + f.name)
    lo, hi = cfg.sweep.n_components
    if lo > hi:
        raise ConfigError(f"[sweep] n_components must be [low, high] with 1 <= low <= high, "
                          f"got [{lo}, {hi}]", f"write n_components = [{hi}, {lo}]")
    if not cfg.sweep.covariance_types:
        raise ConfigError("[sweep] covariance_types is empty",
                          'name at least one, e.g. covariance_types = ["full"]')
    if not (_is_int(cfg.fit.n_components) and cfg.fit.n_components >= 1
            or _is_best(cfg.fit.n_components)):
        raise ConfigError(f'[fit] n_components must be an integer K >= 1 or "best", got '
                          f"{_got(cfg.fit.n_components)}",
                          'write n_components = 3 (say) or "best" for the sweep\'s choice')
    _check_data(cfg.data)
    from bayesgmm.validation import repeated_models  # (no JAX import)

    twice = repeated_models(cfg.sweep.covariance_types)
    if twice:
        first, ct = twice[1][:2]
        same = "" if first == ct else f" ({first!r} is the same model)"
        raise ConfigError(f"[sweep] covariance_types names {ct!r} twice{same}",
                          "list each model once")
    if not cfg.name or "/" in cfg.name or "\\" in cfg.name or cfg.name in (".", ".."):
        raise ConfigError(f"name must be a plain folder name, got {cfg.name!r}",
                          'write name = "my-run"; use --out for another folder')
    if cfg.bayes is not None and not 0 < cfg.bayes.interval < 1:
        raise ConfigError(f"[bayes] interval must be in (0, 1), got {cfg.bayes.interval}",
                          "write interval = 0.94, say")
    if cfg.bayes is not None and not 0 < cfg.bayes.target_accept_prob < 1:
        raise ConfigError(f"[bayes] target_accept_prob must be in (0, 1), got "
                          f"{cfg.bayes.target_accept_prob}", "write target_accept_prob = 0.8")
    if cfg.bayes is not None:
        _check_bayes_options(cfg.bayes)
    _check_fit_options(cfg)


def _check_data(d: DataConfig) -> None:
    """``[data]``: a one-character delimiter; each column once, none of them the id or
    label column."""
    if len(d.delimiter) != 1:
        raise ConfigError(f"[data] delimiter must be one character, got {d.delimiter!r}",
                          'write delimiter = ";" (say), or "\\t" for tabs')
    columns = list(d.columns or ())
    twice = sorted({str(c) for c in columns if columns.count(c) > 1})
    if twice:
        raise ConfigError(f"[data] columns names {', '.join(map(repr, twice))} more than "
                          "once", "list each feature column once")
    for key in ("id_column", "label_column"):
        if getattr(d, key) is not None and getattr(d, key) in columns:
            raise ConfigError(f"[data] {key} {getattr(d, key)!r} is also in [data] columns",
                              f"leave it out of columns (the {key.split('_')[0]} is not a "
                              "feature)")


def _check_bayes_options(b: BayesConfig) -> None:
    """The messy-data options across keys: noise_volume's names and only with noise,
    df only with t."""
    from bayesgmm.robust import NOISE_VOLUMES  # here: the config module stays light

    if isinstance(b.noise_volume, str) and b.noise_volume not in NOISE_VOLUMES:
        raise ConfigError(f"[bayes] noise_volume must be one of "
                          f"{', '.join(map(toml_value, NOISE_VOLUMES))} or a number > 0, got "
                          f"{_got(b.noise_volume)}", 'write noise_volume = "box", say')
    if not isinstance(b.noise_volume, str) and not b.noise_volume > 0:
        raise ConfigError(f"[bayes] noise_volume must be a volume > 0, got {b.noise_volume}",
                          'write noise_volume = "box" (the bounding box), say')
    # (the default "box" cannot be told from one written: to_toml writes every key, so
    # each fit's config.toml holds it, noise or not; any other volume is the user's)
    if not b.noise and b.noise_volume != "box":
        raise ConfigError(f"[bayes] noise_volume = {toml_value(b.noise_volume)} sets the "
                          "noise component's volume, but noise = false (no noise "
                          "component)", "set noise = true, or remove noise_volume")
    if b.df is not None and b.component != "t":
        raise ConfigError(f"[bayes] df = {b.df} fixes the degrees of freedom of t "
                          f"components, but component = {toml_value(b.component)}",
                          'set component = "t", or remove df')


def _check_rules(value, meta, name: str) -> None:
    choices = _choices(meta)
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} must be {_describe(None, meta)}, got {_got(value)}",
                          f"write {name.split()[-1]} = {toml_value(choices[0])}, say")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if not math.isfinite(v):
            raise ConfigError(f"{name} must be finite, got {v}", "write a finite number")
        if "min" in meta and v < meta["min"]:
            raise ConfigError(f"{name} must be >= {meta['min']}, got {v}",
                              f"write a value of at least {meta['min']}")
        if "gt" in meta and v <= meta["gt"]:
            raise ConfigError(f"{name} must be > {meta['gt']}, got {v}",
                              f"write a value above {meta['gt']}")


def _is_best(value) -> bool:
    """Whether a [fit] value is "best": the sweep's choice."""
    return isinstance(value, str) and value == "best"


def _or_best(value, best):
    """A [fit] value, or ``best`` (the sweep's choice) where it is "best"."""
    return best if _is_best(value) else value


def _check_fit_options(cfg: RunConfig) -> None:
    """EM's own validation (:meth:`bayesgmm.fitting.FitOptions.check`) on every model the
    run will fit, and the Bayesian model's covariance types."""
    from bayesgmm.fitting import FitOptions

    f = cfg.fit
    types_ = f.covariance_types(cfg.sweep.covariance_types)
    for ct in dict.fromkeys((*cfg.sweep.covariance_types, *types_)):
        where = ("[fit] covariance_type" if ct == f.covariance_type
                 else "[sweep] covariance_types")
        try:
            FitOptions(n_components=1, covariance_type=ct, tol=f.tol, reg_covar=f.reg_covar,
                       max_iter=f.max_iter, n_init=f.n_init, init_params=f.init_params,
                       random_state=f.random_state).check()
        except ValueError as err:
            if "covariance_type" in str(err):
                from bayesgmm.covariance import TABLE

                raise ConfigError(f"{where} has an unknown covariance type {ct!r}",
                                  f"use one of {', '.join(map(repr, TABLE))}") from None
            raise ConfigError(f"[fit] {err}", README_HINT) from None
    if cfg.bayes is not None:
        from bayesgmm.covariance import TABLE

        # the types the Bayesian model samples: bayesgmm.bayes.model's MODEL_NAMES
        # (and MODEL_COVARIANCE_TYPES), by their rule on the table, since that module
        # imports JAX; each its own per-component relaxation, by scikit-learn's or
        # mclust's name (tests/test_config.py holds them equal)
        canonical = [ct for ct, ops in TABLE.items() if ops.bayes_type == ct]
        sampled = [ct for ct, ops in TABLE.items() if TABLE[ops.bayes_type] is ops]
        aliases = [ct for ct in sampled if ct not in canonical]
        wrong = [ct for ct in types_ if ct not in sampled]
        if wrong:
            raise ConfigError(
                f"[bayes] samples {' or '.join(canonical)} covariances (mclust's "
                f"{', '.join(aliases)}), but the fit may choose {', '.join(map(repr, wrong))}",
                f'set [fit] covariance_type = "{canonical[0]}", or keep only '
                f"{', '.join(sampled)} in [sweep] covariance_types")
