"""The ``bayesgmm`` command line: fit a configured experiment, look at it, predict with it.

Glossary: N samples (rows), D features (columns), K components.

Commands (``bayesgmm COMMAND --help`` for each)::

    bayesgmm fit CONFIG [--out DIR]      sweep K, fit the best model (and [bayes]), write a folder
    bayesgmm run CONFIG                  the same as fit
    bayesgmm sweep CONFIG [--out DIR]    the sweep only: the criteria table and its figure
    bayesgmm show MODEL_DIR              print a fitted folder's summary again
    bayesgmm predict MODEL_DIR DATA      the membership table of new data
    bayesgmm demo [--out DIR]            the tutorial blobs end to end (models/blobs/)

Global options, anywhere on the line: ``--quiet`` (no progress lines on stderr),
``--debug`` (a traceback with errors), ``--no-compilation-cache`` (do not keep compiled
programs under ``$XDG_CACHE_HOME/bayesgmm/jax``).

Every user error is one line on stderr, ``bayesgmm: error: <what> — <fix>``, with exit
status 2 (usage, configuration, data); a failed fit exits with 1. An output folder is
written in a temporary sibling and renamed into place at the end, so a failed run leaves
nothing behind and an earlier folder is replaced only on success.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import inspect
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from bayesgmm.config import (ConfigError, DataConfig, RunConfig, load_config, to_toml,
                             toml_value)

__all__ = ["main", "run_workflow", "run_sweep", "load_data", "Dataset", "CLIError",
           "FitFailed"]

# Files that mark a folder as this program's output (one may be replaced by a new run)
OUTPUT_MARKERS = ("config.toml", "summary.txt", "meta.json", "params.npz")
#: The file in each folder a command writes that lists what it wrote: a later command
#: replaces that folder only while it holds nothing else (a user's files are never
#: deleted with it)
OUTPUT_MANIFEST = ".bayesgmm-output"
#: What the commands of earlier versions (without the manifest) wrote, besides figures
_LEGACY_OUTPUTS = frozenset(OUTPUT_MARKERS) | {
    "membership.csv", "proba.csv", "sweep.csv", "draws.npz", "idata.nc", "idata_raw.nc",
    "summary.csv"}
#: What file browsers and notebooks leave in any folder they open: not the user's work,
#: replaced with the folder
_SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".ipynb_checkpoints"})
UNCERTAIN = 0.9  # a point is "uncertain" when its largest membership probability is below


class CLIError(Exception):
    """A user error: ``what`` went wrong and its ``fix``; exit status ``status``."""

    status = 2

    def __init__(self, what: str, fix: str):
        super().__init__(f"{what} — {fix}")
        self.what, self.fix = what, fix


class FitFailed(CLIError):
    """The data and configuration were valid, the fit itself failed (exit status 1)."""

    status = 1


class Dataset(NamedTuple):
    X: np.ndarray  # (N, D) float64, finite; NaN marks a missing value (missing="marginalize")
    ids: np.ndarray  # (N,) row ids: the id column's values or the row numbers
    id_name: str  # the id column's name, "row" for row numbers
    labels: np.ndarray | None  # (N,) known classes (label_column), or None
    feature_names: tuple[str, ...] | None  # (D,) from the header, or None
    source: str  # the file, or a description of the built-in data


# ---- data ------------------------------------------------------------------------------


def load_data(cfg: DataConfig, *, n_features: int | None = None,
              missing: str = "error") -> Dataset:
    """The samples a :class:`bayesgmm.config.DataConfig` names.

    Parameters
    ----------
    cfg : DataConfig
        ``path`` empty: the built-in blobs; ``.npy``: a 2-D array; else a delimited text
        file whose header row is detected (``header = "auto"``).
    n_features : int, optional
        For new data (``predict``): when the named ``columns`` are absent because the
        file has no header, a file with exactly this many feature columns is taken as
        they are.
    missing : {"error", "marginalize"}
        ``[fit] missing``: with ``"marginalize"`` an empty or NaN feature cell is read as
        NaN (a missing value; every row still needs an observed feature and, for data
        to fit, every feature an observed row); with ``"error"`` it is refused, naming
        that key.

    Returns
    -------
    Dataset
        ``X`` of shape (N, D); every error is a :class:`CLIError` naming the file, the
        column, the row and the value.
    """
    holes = missing == "marginalize"
    if not cfg.path:
        from bayesgmm.datasets import make_blobs

        X, y = make_blobs(n_samples=cfg.n_samples, centers=cfg.centers,
                          cluster_std=cfg.cluster_std, random_state=cfg.random_state)
        return Dataset(X, np.arange(len(X)), "row", y, None,
                       f"built-in blobs (n_samples={cfg.n_samples}, centers={cfg.centers}, "
                       f"cluster_std={cfg.cluster_std}, random_state={cfg.random_state})")
    path = Path(cfg.path)
    if not path.is_file():
        raise CLIError(f"data file {path} " + ("is a folder, not a file" if path.is_dir()
                                               else "does not exist"),
                       "check [data] path (relative paths start at the config file's folder)")
    if path.suffix == ".npy":
        cells = _read_npy(path)
        names, n_cols = None, cells.shape[1]
    else:
        cells = None
        names, n_cols = _read_header(path, cfg.delimiter, cfg.header)
    pick = _ColumnPicker(path, names, n_cols)
    id_col = None if cfg.id_column is None else pick.index(cfg.id_column, "id_column")
    label_col = None if cfg.label_column is None else pick.index(cfg.label_column,
                                                                 "label_column")
    if id_col is not None and id_col == label_col:  # (by name or index: both resolved)
        raise CLIError(f"[data] id_column and label_column are the same column "
                       f"({pick.name(id_col)!r}) of {path}",
                       "set label_column to the column of known classes, or remove it")
    if cfg.columns:
        if n_features is not None and names is None and any(isinstance(c, str)
                                                            for c in cfg.columns):
            if n_cols != n_features:
                raise CLIError(f"{path} has no header row and {n_cols} columns; the model "
                               f"needs the {n_features} columns {list(cfg.columns)}",
                               "add the header row or keep only those columns")
            cols = list(range(n_cols))
        else:
            cols = [pick.index(c, "columns") for c in cfg.columns]
            # by name or index, resolved: one column twice, or an id/label as a feature
            twice = sorted({j for j in cols if cols.count(j) > 1})
            if twice:
                raise CLIError(f"[data] columns lists the column {pick.name(twice[0])!r} "
                               f"of {path} twice", "list each feature column once")
            for key, j in (("id_column", id_col), ("label_column", label_col)):
                if j is not None and j in cols:
                    raise CLIError(f"[data] columns includes {pick.name(j)!r}, the "
                                   f"{key} of {path}", f"drop it from columns, or change "
                                   f"{key}")
    else:
        cols = [j for j in range(n_cols) if j not in (id_col, label_col)]
    if not cols:
        raise CLIError(f"{path} has no feature columns left",
                       "name them in [data] columns")
    lines = None  # each data row's line in the file, where Python's csv read it
    if cells is None:  # NumPy's reader first; Python's csv where it fails, to name the cell
        read = _read_fast(path, cfg.delimiter, names is not None, cols, id_col, label_col,
                          holes, n_cols)
        if read is None:
            cells, lines = _read_text(path, cfg.delimiter, names is not None)
    if cells is not None:
        read = (_numeric(path, cells[:, cols], [pick.name(j) for j in cols],
                         header=names is not None, holes=holes,
                         new_data=n_features is not None, lines=lines,
                         delimiter=cfg.delimiter),
                cells[:, id_col] if id_col is not None else np.arange(len(cells)),
                cells[:, label_col] if label_col is not None else None)
    X, ids, labels = read
    if holes:
        _check_holes(path, X, [pick.name(j) for j in cols], header=names is not None,
                     fitting=n_features is None, delimiter=cfg.delimiter)
    from bayesgmm.validation import constant_feature

    found = constant_feature(X) if n_features is None else None  # data to fit
    if found is not None:
        j, value, where, count = found
        more = f"; {count} feature columns are constant" if count > 1 else ""
        raise CLIError(f"the feature column {pick.name(cols[j])!r} of {path} is constant "
                       f"({value:g} {where}{more}): it tells the clusters nothing, and the "
                       "model search's choice would move with it",
                       "list the other feature columns in [data] columns" if not cfg.columns
                       else "drop it from [data] columns" if count == 1
                       else "drop the constant ones from [data] columns")
    return Dataset(X, ids, pick.name(id_col) if id_col is not None else "row", labels,
                   tuple(names[j] for j in cols) if names is not None else None, str(path))


class _ColumnPicker:
    """Column names or indices of one file -> 0-based indices, with errors that list
    the columns there are."""

    def __init__(self, path: Path, names: list[str] | None, n_cols: int):
        self.path, self.names, self.n_cols = path, names, n_cols

    def index(self, column: str | int, key: str) -> int:
        if isinstance(column, int):
            if not -self.n_cols <= column < self.n_cols:
                raise CLIError(f"[data] {key}: column {column} is out of range; {self.path} "
                               f"has {self.n_cols} columns",
                               f"use an index from 0 to {self.n_cols - 1}")
            return column % self.n_cols
        if self.names is None:
            raise CLIError(f"[data] {key} names the column {column!r}, but {self.path} has "
                           "no header row", "name columns by 0-based index, or add a header")
        if column not in self.names:
            raise CLIError(f"[data] {key}: {self.path} has no column {column!r}",
                           f"its columns are {', '.join(self.names)}")
        where = [j for j, n in enumerate(self.names) if n == column]
        if len(where) > 1:  # (a header that repeats a name is read by position unless
            # a key names it: then which column it means is not known, not the first)
            raise CLIError(f"[data] {key} names the column {column!r}, but "
                           f"{self.path}'s header has {len(where)} columns named "
                           f"{column!r} ({', '.join(map(str, where))})",
                           "rename them in the header, or name the columns by 0-based "
                           "index")
        return where[0]

    def name(self, j: int) -> str:
        return self.names[j] if self.names is not None else f"column {j}"


def _read_npy(path: Path) -> np.ndarray:
    """The 2-D real array a ``.npy`` file holds. Never unpickled: NumPy's refusal of a
    file that is not a ``.npy`` (it takes it for a pickle) or of an array of Python
    objects advises loading it unsafely (``allow_pickle``), so it is replaced by a
    message that says bayesgmm does not, as :mod:`bayesgmm.io` does for a model's
    arrays. Complex numbers are refused, not cast (that drops the imaginary part)."""
    save = "save a numeric array with numpy.save(path, X.astype(float)), or use a CSV file"
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as err:
        raise CLIError(f"cannot read {path}: {err.strerror}", "check [data] path") from None
    if not magic:
        raise CLIError(f"{path} is empty", save)
    if magic.startswith(b"PK"):  # np.savez's zip archive, which np.load also opens
        raise CLIError(f"{path} is a .npz archive, not one array",
                       "save the data array alone with numpy.save, or use a CSV file")
    if magic != b"\x93NUMPY":  # (np.load would take it for a pickle and say so)
        raise CLIError(f"{path} is not a NumPy .npy file (NumPy reads such a file as "
                       "pickled data, which bayesgmm never loads)", save)
    problem = None
    try:
        a = np.load(path, allow_pickle=False)
    except ValueError as err:
        problem = (f"{path} holds Python objects (pickled data), which bayesgmm never loads"
                   if "allow_pickle" in str(err) else
                   f"cannot read {path} as a NumPy array: {err}")
    except (OSError, EOFError) as err:
        problem = f"cannot read {path} as a NumPy array: {err or 'the file is truncated'}"
    if problem is not None:  # (raised here: NumPy's advice is not even the context)
        raise CLIError(problem, save)
    if np.iscomplexobj(a):
        raise CLIError(f"{path} holds complex numbers ({a.dtype}); a Gaussian mixture is "
                       "fitted to real data", "save the real part (X.real), or the real "
                       "and imaginary parts as columns (numpy.hstack([X.real, X.imag]))")
    if a.ndim != 2:
        raise CLIError(f"{path} holds an array of shape {a.shape}",
                       "save a 2-D array of shape (n_samples, n_features)")
    return a


def _read_header(path: Path, delimiter: str, header) -> tuple[list[str] | None, int]:
    """(the header's names, or None where the first row is data; the number of columns).
    ``header="auto"``: a header when any field of the first row is not a number, data
    when every field is one; a row of numbers and empty cells is refused as ambiguous
    (a pandas header, ``,0,1``, and a data row with a missing value look alike)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            first = next((r for r in csv.reader(fh, delimiter=delimiter) if r and any(r)),
                         None)
    except (UnicodeDecodeError, csv.Error, OSError) as err:
        raise CLIError(f"cannot read {path} as delimited text: {err}",
                       "save it as a CSV file (UTF-8)") from None
    if first is None:
        raise CLIError(f"{path} is empty", "check [data] path")
    first = [c.strip() for c in first]
    if header == "auto":
        if all(c == "" or _is_number(c) for c in first) and "" in first:
            raise CLIError(f"{path}: its first row ({delimiter.join(first)}) may be a header "
                           "(a pandas index leaves the first name empty) or data with a "
                           "missing value",
                           "set [data] header = true (column names) or header = false (data)")
        header = not all(_is_number(c) for c in first)
    return (first if header else None), len(first)


def _read_fast(path: Path, delimiter: str, header: bool, cols, id_col, label_col,
               holes: bool = False, width: int | None = None):
    """(X, ids, labels) by NumPy's reader, or None where it cannot read the file (a bad
    cell, a ragged row, quoting, an empty cell; a NaN unless ``holes``) or a row has
    other than ``width`` fields (the first row's): then :func:`_read_text` reads it, and
    finds and names the problem."""
    def column(j):
        return np.loadtxt(path, delimiter=delimiter, skiprows=int(header), usecols=[j],
                          dtype=str, ndmin=1, comments=None, encoding="utf-8-sig",
                          quotechar='"')

    try:
        X = np.loadtxt(path, delimiter=delimiter, skiprows=int(header), usecols=cols,
                       dtype=np.float64, ndmin=2, comments=None, encoding="utf-8-sig",
                       quotechar='"')
        ids = column(id_col) if id_col is not None else np.arange(len(X))
        labels = column(label_col) if label_col is not None else None
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    if len(X) == 0 or not np.all(_usable(X, holes)):
        return None
    if width is not None and not _widths_agree(path, delimiter, width):
        return None
    return X, np.char.strip(ids) if ids.dtype.kind == "U" else ids, (
        None if labels is None else np.char.strip(labels))


def _widths_agree(path: Path, delimiter: str, width: int) -> bool:
    """Whether every row of the file has ``width`` fields (blank lines aside). NumPy's
    reader takes the ``usecols`` it is given and ignores the fields after them, so a row
    with a field too many (a stray delimiter, two rows run together) read as if it were
    whole; one pass of Python's csv reader (about half of NumPy's read) finds it."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return set(map(len, csv.reader(fh, delimiter=delimiter))) <= {0, width}
    except (UnicodeDecodeError, csv.Error, OSError):
        return False  # (_read_text names the problem)


def _read_text(path: Path, delimiter: str, header: bool) -> tuple[np.ndarray, np.ndarray]:
    """The data rows' cells as an (N, C) array of strings, by Python's csv reader, and
    each row's line in the file (blank lines are skipped); a ragged row or a file
    without data rows is a :class:`CLIError`."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            numbered = [(reader.line_num, r) for r in reader if r and any(r)]
    except (UnicodeDecodeError, csv.Error, OSError) as err:
        raise CLIError(f"cannot read {path} as delimited text: {err}",
                       "save it as a CSV file (UTF-8)") from None
    body = numbered[1:] if header else numbered
    if not body:
        raise CLIError(f"{path} has a header row and no data rows", "add the data rows")
    width = len(numbered[0][1])
    for line, r in body:
        if len(r) != width:
            raise CLIError(f"{path} line {line} has {len(r)} fields, the first row has {width}",
                           f"fix that line (delimiter is {delimiter!r})")
    return (np.array([[c.strip() for c in r] for _, r in body], dtype=object),
            np.array([line for line, _ in body]))


def _numeric(path: Path, cells: np.ndarray, names: list[str], *, header: bool,
             holes: bool = False, new_data: bool = False,
             lines: np.ndarray | None = None, delimiter: str = ",") -> np.ndarray:
    """The feature cells as float64, an empty cell as NaN where ``holes`` (``[fit]
    missing = "marginalize"``); an error names the first bad cell, and for an empty or
    NaN cell the key that accepts it (``new_data``: the fitted model's, for predict)."""
    if holes and cells.dtype == object:
        cells = np.where(cells == "", "nan", cells)
    try:
        X = cells.astype(np.float64)
    except (ValueError, TypeError):
        X = None
    if X is None or not np.all(_usable(X, holes)):
        for i, row in enumerate(cells):
            for j, value in enumerate(row):
                try:
                    number = float(value)
                except (ValueError, TypeError):
                    number = None
                if number is not None and _usable(np.float64(number), holes):
                    continue
                line = lines[i] if lines is not None else i + 1 + int(header)
                where = f"{path} line {line}, column {names[j]!r}"
                if number is not None and np.isfinite(number):  # above _usable's bound
                    raise CLIError(f"{where}: {str(value)!r} is too large: the squares a "
                                   "Gaussian mixture sums overflow above "
                                   f"{_max_magnitude():.3g}",
                                   "rescale that column (e.g. standardise it), or fix "
                                   "or drop that row")
                if str(value) == "" or number is not None and np.isnan(number):
                    raise CLIError(f"{where}: {str(value)!r} is a missing value",
                                   'the model was fitted with [fit] missing = "error": '
                                   'refit it with missing = "marginalize", or fill or drop '
                                   "that row" if new_data else
                                   'set [fit] missing = "marginalize" to fit data with '
                                   "missing values, or fill or drop that row")
                other = [sep for sep in (";", "\t", "|") if sep in str(value)]
                if other and delimiter == ",":  # a semicolon (tab, |) file read by commas
                    raise CLIError(f"{where}: {str(value)!r} is not a finite number; the "
                                   f"file seems to separate its fields by {other[0]!r}",
                                   f"set [data] delimiter = {toml_value(other[0])}")
                raise CLIError(f"{where}: {str(value)!r} is not a finite number",
                               "fix or drop that row; if the column holds ids or classes, "
                               f"set [data] id_column = {toml_value(names[j])} or "
                               "label_column, or list the feature columns in [data] columns"
                               if header else "fix or drop that row, or leave the column "
                               "out of [data] columns")
    return X


def _max_magnitude() -> float:
    from bayesgmm.validation import max_magnitude  # (no JAX import)

    return max_magnitude(np.float64)


def _usable(X: np.ndarray, holes: bool) -> np.ndarray:
    """Where the cells are values the library fits: finite and within its magnitude
    bound (:func:`bayesgmm.validation.max_magnitude`), or NaN where ``holes``. The
    library refuses the rest when the fit starts, which the command line reported as a
    failed fit (exit status 1): checked here, the cell's line and column are named as
    for any other bad cell (exit status 2)."""
    return (np.abs(X) <= _max_magnitude()) | (holes & np.isnan(X))


def _check_holes(path: Path, X: np.ndarray, names: list[str], *, header: bool,
                 fitting: bool, delimiter: str = ",") -> None:
    """What missing-data EM cannot use (:func:`bayesgmm.missing.check_missing`), named
    by the file's line and column: a row with no observed feature, and for data to fit
    a feature column with no observed row."""
    observed = ~np.isnan(X)
    empty = np.flatnonzero(~observed.any(axis=1))
    if empty.size:
        line = _read_text(path, delimiter, header)[1][empty[0]]  # (counting blank lines)
        raise CLIError(f"{path} line {line} has no value in any "
                       f"feature column ({empty.size} such rows)",
                       "drop those rows: a row with missing values needs one observed "
                       "feature")
    never = np.flatnonzero(~observed.any(axis=0)) if fitting else []
    if len(never):
        raise CLIError(f"{path} column {names[never[0]]!r} has no value in any row",
                       "leave it out of [data] columns")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- output folders ---------------------------------------------------------------------


def check_output_folder(out: Path) -> Path:
    """``out`` (absolute) if a command may write it: a folder that does not exist, an
    empty one, or one a command wrote that holds only what it wrote
    (:data:`OUTPUT_MANIFEST`); else a :class:`CLIError` naming what is in the way.
    Checked before any fitting, and again when the folder is replaced."""
    out = Path(out).absolute()
    if not out.exists():
        for parent in out.parents:
            if parent.exists() and not parent.is_dir():
                raise CLIError(f"cannot write {out}: {parent} is a file",
                               "choose another --out")
        return out
    if not out.is_dir():
        raise CLIError(f"the output {out} is a file", "choose another --out")
    names = {p.name for p in out.iterdir()}
    if not names:
        return out
    manifest = out / OUTPUT_MANIFEST
    if manifest.is_file():
        try:
            written = set(manifest.read_text().split()) | {OUTPUT_MANIFEST}
        except (OSError, UnicodeDecodeError):
            written = set()
    elif names & set(OUTPUT_MARKERS):  # an earlier version's folder
        written = {n for n in names if n in _LEGACY_OUTPUTS or n.endswith(".png")}
    else:
        raise CLIError(f"the output folder {out} exists and was not written by bayesgmm",
                       "choose another --out, or empty that folder")
    foreign = sorted(names - written - _SYSTEM_FILES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                          else "")
        raise CLIError(f"the output folder {out} holds files bayesgmm did not write "
                       f"({shown}); writing it would replace the whole folder",
                       "move them out, or choose another --out")
    return out


@contextlib.contextmanager
def staged_folder(out: Path):
    """Yield a temporary sibling of ``out`` (not yet created) to write into; on success
    it replaces ``out``; on any error it is removed and ``out`` is left as it was."""
    out = check_output_folder(out)
    created = [p for p in out.parents if not p.exists()]  # made here, removed on failure
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial",
                                     dir=out.parent))
    except OSError as err:
        raise CLIError(f"cannot write in {out.parent}: {err.strerror}",
                       "choose another --out") from None
    done = False
    try:
        stage = root / out.name
        yield stage
        stage.mkdir(exist_ok=True)
        (stage / OUTPUT_MANIFEST).write_text(
            "".join(f"{p.name}\n" for p in sorted(stage.iterdir())))
        if out.exists():
            out.rename(root / f"{out.name}.old")
        stage.rename(out)
        done = True
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for folder in created if not done else ():
            with contextlib.suppress(OSError):
                folder.rmdir()


# ---- the workflows ----------------------------------------------------------------------


def run_sweep(cfg: RunConfig, out_dir: str | Path | None = None, *,
              log: Callable[[str], None] = print, data: Dataset | None = None,
              progress: bool = False) -> dict:
    """The ``[sweep]`` of ``cfg``: the criteria table, and with ``out_dir`` its figure,
    ``sweep.csv``, ``summary.txt`` and ``config.toml``. Returns a summary dict with
    ``table`` (the :class:`bayesgmm.selection.SweepResult`) and ``text``. ``progress``:
    a tqdm bar on stderr, one tick per fitted (covariance type, K). Data with missing
    values (``[fit] missing = "marginalize"``) is swept by missing-data fits (the
    sweep's ``missing``)."""
    from bayesgmm.selection import sweep

    if out_dir is not None:
        check_output_folder(Path(out_dir))  # before the fits, not after them
    data = data or _load(cfg, log)
    lo, hi = cfg.sweep.n_components
    _check_enough_rows(data, hi, "[sweep] n_components")
    t0 = time.perf_counter()
    with _fit_errors():
        table = sweep(data.X, range(lo, hi + 1), cfg.sweep.covariance_types,
                       criterion=cfg.sweep.criterion, progress=progress, **_em_settings(cfg))
    best = table.best
    choice = (f"best {cfg.sweep.criterion.upper()}: K={best['n_components']} "
              f"({best['covariance_type']})")
    log(f"sweep K={lo}..{hi} over {', '.join(cfg.sweep.covariance_types)} in "
        f"{time.perf_counter() - t0:.2f} s; {choice}")
    summary = {"table": table, "choice": choice,
               "text": _header(cfg, data) + f"sweep: K={lo}..{hi}; {choice}\n{table!r}\n"}
    if out_dir is not None:
        with staged_folder(Path(out_dir)) as stage:
            stage.mkdir()
            _write_sweep(stage, cfg, table)
            (stage / "summary.txt").write_text(summary["text"])
            (stage / "config.toml").write_text(to_toml(cfg))
        log(f"wrote {out_dir}")
    return summary


def run_workflow(cfg: RunConfig, out_dir: str | Path, *,
                 log: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Sweep, fit the chosen model (then the ``[bayes]`` fit when configured), and write
    the model folder ``out_dir``: the saved model, ``summary.txt``, ``config.toml``,
    ``membership.csv``, ``proba.csv``, ``sweep.csv`` and PNG figures. Returns the
    summary as a dict (``text`` is ``summary.txt``; ``files`` the written paths;
    ``model`` the fitted estimator, with ``feature_names_in_`` when the data has a
    header). ``progress``: the sweep's tqdm bar on stderr. With ``[bayes] noise``,
    ``proba.csv`` has a last column ``noise`` and ``membership.csv`` labels the points
    the noise component claims ``-1``."""
    from bayesgmm import io as model_io
    from bayesgmm.estimators import GaussianMixture
    from bayesgmm.metrics import adjusted_rand_score
    from bayesgmm.validation import data_warnings_off

    check_output_folder(Path(out_dir))  # before the fits, not after them
    data = _load(cfg, log)
    _check_priors(cfg, data)
    swept = run_sweep(cfg, log=log, data=data, progress=progress)
    table, best = swept["table"], swept["table"].best
    K, ct = cfg.fit.chosen(best)
    _check_enough_rows(data, K, "[fit] n_components")
    X = data.X
    with _fit_errors(), data_warnings_off():  # (the sweep said it of these columns)
        gmm = GaussianMixture(K, covariance_type=ct, **_em_settings(cfg)).fit(X)
        proba = gmm.predict_proba(X)
    labels = proba.argmax(1)
    summary = {"n_components": int(K), "covariance_type": ct, "converged": gmm.converged_,
               "n_iter": gmm.n_iter_, "lower_bound": gmm.lower_bound_,
               "bic": gmm.bic(X), "aic": gmm.aic(X),
               "uncertain_points": int(np.sum(proba.max(1) < UNCERTAIN))}
    if data.labels is not None:
        summary["adjusted_rand_index"] = adjusted_rand_score(_codes(data.labels), labels)
    log(f"fit: K={K} {ct}, converged={gmm.converged_} in {gmm.n_iter_} iterations, "
        f"mean log-likelihood {gmm.lower_bound_:.4f}")
    text = [_header(cfg, data) + f"sweep: K={cfg.sweep.n_components[0]}.."
            f"{cfg.sweep.n_components[1]}; {swept['choice']}", repr(table), "",
            f"EM fit: K={K}, covariance_type={ct!r}, converged={gmm.converged_} in "
            f"{gmm.n_iter_} iterations, mean log-likelihood {gmm.lower_bound_:.4f}, "
            f"BIC {summary['bic']:.2f}, AIC {summary['aic']:.2f}"]
    if "adjusted_rand_index" in summary:
        text.append(f"adjusted Rand index against the known labels: "
                    f"{summary['adjusted_rand_index']:.4f}")
    text.append(f"membership: {summary['uncertain_points']} of {len(X)} points have max "
                f"p(z|x) < {UNCERTAIN}")
    text.append("components (EM):\n" + _component_table(gmm.weights_, gmm.means_, data))
    names = data.feature_names
    if names is not None:
        gmm.feature_names_in_ = np.asarray(names, dtype=object)
    model, interval, plot_params, prob = gmm, None, gmm.params_, 0.9
    if cfg.bayes is not None:
        prob = cfg.bayes.interval
        model, interval, bayes_text = _fit_bayes(cfg, data, K, ct, log, em=gmm)
        proba, labels = interval[0], interval[0].argmax(1)
        labels = np.where(labels == K, -1, labels)  # a noise component's column is last
        plot_params = _posterior_mean(model)
        text.append(bayes_text)
        if data.labels is not None:
            summary["bayes_adjusted_rand_index"] = adjusted_rand_score(_codes(data.labels),
                                                                       labels)
            text.append(f"adjusted Rand index of the Bayesian labels against the known "
                        f"labels: {summary['bayes_adjusted_rand_index']:.4f}")
        summary["bayes_method"] = cfg.bayes.method
        summary["bayes_warnings"] = list(model.warnings_)
    summary["text"] = "\n".join(text) + "\n"
    summary["model"] = model

    files = {}
    with staged_folder(Path(out_dir)) as stage:
        model_io.save(model, stage)
        files["model"] = stage
        files["summary"] = stage / "summary.txt"
        files["summary"].write_text(summary["text"])
        files["config"] = stage / "config.toml"
        files["config"].write_text(to_toml(cfg))
        files["membership_table"] = stage / "membership.csv"
        with _fit_errors("the membership table"):
            table_columns = model.membership_table(X, prob=prob)
        model_io.write_table(files["membership_table"], table_columns, row_ids=data.ids)
        files["proba"] = stage / "proba.csv"
        np.savetxt(files["proba"], proba, delimiter=",", fmt="%.6g",
                   header=",".join(_proba_columns(K, proba.shape[1])), comments="")
        files["sweep"] = _write_sweep(stage, cfg, table)
        files["selection"] = stage / "selection.png"
        files.update(_figures(stage, cfg, data, plot_params, labels, proba, interval,
                              model if cfg.bayes is not None else None))
    out = Path(out_dir)
    summary["files"] = {k: str(out / Path(v).name) if k != "model" else str(out)
                        for k, v in files.items()}
    log("wrote:")
    for name, path in summary["files"].items():
        log(f"  {name:<16} {path}")
    return summary


# ---- the command line --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as done:  # --help
            return int(done.code or 0)
        if not args.command:
            raise CLIError("no command given", "run 'bayesgmm --help' for the commands")
        log = _logger(args.quiet)
        with _one_line_warnings(log):
            return _COMMANDS[args.command](args, log)
    except (CLIError, ConfigError) as err:
        if debug:
            traceback.print_exc()
        print(f"bayesgmm: error: {_one_line(str(err))}", file=sys.stderr)
        return getattr(err, "status", 2)
    except KeyboardInterrupt:
        print("bayesgmm: error: interrupted — nothing was written", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk, a folder we may not write
        if debug:
            traceback.print_exc()
        print(f"bayesgmm: error: {_one_line(str(err))} — check the path and the free space",
              file=sys.stderr)
        return 1
    except Exception as err:  # a bug: still one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        print(f"bayesgmm: error: unexpected {type(err).__name__}: {_one_line(str(err))} — "
              "rerun with --debug and report the traceback", file=sys.stderr)
        return 1


def _cmd_fit(args, log) -> int:
    cfg = load_config(args.config)
    _compilation_cache(args)
    summary = run_workflow(cfg, args.out or Path("models") / cfg.name, log=log,
                           progress=_progress(args))
    print(summary["text"], end="")
    return 0


def _cmd_sweep(args, log) -> int:
    cfg = load_config(args.config)
    _compilation_cache(args)
    summary = run_sweep(cfg, args.out or Path("models") / f"{cfg.name}-sweep", log=log,
                        progress=_progress(args))
    print(summary["text"], end="")
    return 0


def _cmd_demo(args, log) -> int:
    _compilation_cache(args)
    summary = run_workflow(RunConfig(), args.out or Path("models") / "blobs", log=log,
                           progress=_progress(args))
    print(summary["text"], end="")
    return 0


def _cmd_show(args, log) -> int:
    folder = Path(args.model_dir)
    text = folder / "summary.txt"
    if text.is_file() and not (folder / "meta.json").exists():  # a sweep's folder
        print(text.read_text(), end="")
        return 0
    model = _load_model(folder)  # validates every file: a damaged model is an error
    if text.is_file():
        print(text.read_text(), end="")
        return 0
    print(f"{type(model).__name__} in {folder}\n"
          + _component_table(model.weights_, model.means_, None,
                             getattr(model, "feature_names_in_", None)))
    return 0


def _cmd_predict(args, log) -> int:
    from bayesgmm import io as model_io

    folder = Path(args.model_dir)
    model = _load_model(folder)
    if not Path(args.data).is_file():
        raise CLIError(f"data file {args.data} does not exist"
                       + (" (it is a folder)" if Path(args.data).is_dir() else ""),
                       "give the new data's file (CSV or .npy) after the model folder: "
                       "bayesgmm predict MODEL_DIR DATA")
    cfg, prob = DataConfig(), 0.94
    if (folder / "config.toml").is_file():  # the fit's columns, id column and interval
        try:
            run = load_config(folder / "config.toml")
            cfg, prob = run.data, (run.bayes.interval if run.bayes is not None else prob)
        except ConfigError as err:
            log(f"note: ignoring {folder / 'config.toml'} ({err.what})")
    cfg = dataclasses.replace(cfg, path=str(Path(args.data).absolute()), label_column=None)
    path = Path(cfg.path)  # a file (checked above); its header read once for the checks
    header = None if path.suffix == ".npy" else _read_header(path, cfg.delimiter,
                                                             cfg.header)[0]
    if cfg.id_column is not None:
        cfg = _keep_id_if_present(cfg, header)
        _check_id_position(cfg, model, folder, header)
    cfg = _model_columns(cfg, model, header)
    if args.out:
        _check_out_file(Path(args.out))
    _compilation_cache(args)
    data = load_data(cfg, n_features=int(model.n_features_in_),
                     missing=getattr(model, "missing", "error"))
    if data.X.shape[1] != model.n_features_in_:
        raise CLIError(f"{args.data} has {data.X.shape[1]} feature columns, the model in "
                       f"{folder} was fitted on {model.n_features_in_}",
                       "keep the same columns as the fit (see its config.toml)")
    if args.proba:
        with _fit_errors("predicting"):
            proba = model.predict_proba(data.X)
        text = "".join(",".join(f"{p:.6g}" for p in row) + "\n" for row in proba)
        if args.out:
            Path(args.out).write_text(text)
        else:
            print(text, end="")
    else:
        with _fit_errors("predicting"):
            table = model.membership_table(data.X, prob=prob)
        if args.out:
            model_io.write_table(args.out, table, row_ids=data.ids)
        else:  # the same writer, through a temporary file
            with tempfile.TemporaryDirectory() as tmp:
                path = model_io.write_table(Path(tmp) / "membership.csv", table,
                                            row_ids=data.ids)
                print(path.read_text(), end="")
    if args.out:
        log(f"wrote {args.out}")
    return 0


_COMMANDS = {"fit": _cmd_fit, "run": _cmd_fit, "sweep": _cmd_sweep, "show": _cmd_show,
             "predict": _cmd_predict, "demo": _cmd_demo}


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (raised, not printed with the usage)."""

    def __init__(self, *args, **kwargs):
        # no abbreviations: "--deb" is not --debug (main looks for the whole word)
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):
        raise CLIError(message, f"run '{self.prog} --help' for usage")


def _parser() -> argparse.ArgumentParser:
    def add_globals(p, defaults: bool):
        g = p.add_argument_group("global options (anywhere on the line)")
        default = {} if defaults else {"default": argparse.SUPPRESS}
        g.add_argument("--quiet", action="store_true", **default,
                       help="no progress lines on stderr")
        g.add_argument("--debug", action="store_true", **default,
                       help="show the traceback of an error")
        g.add_argument("--no-compilation-cache", action="store_true", **default,
                       help="do not reuse compiled programs from earlier runs (kept under "
                            "$XDG_CACHE_HOME/bayesgmm/jax)")

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="bayesgmm", formatter_class=fmt,
                     description="Gaussian mixture models from TOML configurations.",
                     epilog="example:\n  bayesgmm fit configs/iris.toml\n"
                            "  bayesgmm show models/iris\n"
                            "  bayesgmm predict models/iris data/iris.csv --out labels.csv\n\n"
                            "configuration keys: configs/README.md")
    add_globals(parser, True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name, help_, example, aliases=()):
        p = sub.add_parser(name, help=help_, description=help_, aliases=list(aliases),
                           formatter_class=fmt, epilog=f"example:\n  {example}")
        add_globals(p, False)
        return p

    for name, aliases in (("fit", ("run",)),):
        p = command(name, "sweep K, fit the chosen model (and the [bayes] fit), write the "
                    "model folder", "bayesgmm fit configs/anisotropic.toml --out models/a",
                    aliases)
        p.add_argument("config", help="a TOML file (see configs/README.md)")
        p.add_argument("--out", metavar="DIR", help="output folder (default models/<name>)")
    p = command("sweep", "compare K and covariance types by the configured criterion",
                "bayesgmm sweep configs/iris.toml")
    p.add_argument("config", help="a TOML file (see configs/README.md)")
    p.add_argument("--out", metavar="DIR", help="output folder (default models/<name>-sweep)")
    p = command("show", "print the summary of a fitted model folder",
                "bayesgmm show models/blobs")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by fit or demo")
    p = command("predict", "the membership table (id, label, probability) of new data",
                "bayesgmm predict models/iris data/iris.csv --out membership.csv")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a folder written by fit or demo")
    p.add_argument("data", metavar="DATA",
                   help=".csv (header detected; the fit's columns are selected) or .npy")
    p.add_argument("--out", "--output", dest="out", metavar="FILE",
                   help="write the CSV here instead of stdout")
    p.add_argument("--proba", action="store_true",
                   help="every component's probability instead of the table")
    p = command("demo", "the tutorial's blobs end to end: sweep, fit, figures",
                "bayesgmm demo --out models/blobs")
    p.add_argument("--out", metavar="DIR", help="output folder (default models/blobs)")
    return parser


# ---- helpers ---------------------------------------------------------------------------------


def _progress(args) -> bool:
    """Show tqdm bars: stderr is a terminal and ``--quiet`` was not given."""
    return not args.quiet and sys.stderr.isatty()


def _logger(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda message: None
    return lambda message: print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _one_line_warnings(log):
    """Library warnings as one progress line each (no file and source line), each text
    once (the sweep and the chosen fit warn alike about the same data)."""
    seen = set()

    def show(message, category, *rest):
        line = f"warning: {category.__name__}: {_one_line(str(message))}"
        if line not in seen:
            seen.add(line)
            log(line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _fit_errors(doing: str = "the fit"):
    """A library error inside a fit as :class:`FitFailed` (exit status 1)."""
    try:
        yield
    except (CLIError, KeyboardInterrupt):
        raise
    except Exception as err:
        raise FitFailed(f"{doing} failed: {type(err).__name__}: {err}",
                        "rerun with --debug for the traceback; check the data and "
                        "[fit] settings") from err


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _compilation_cache(args) -> None:
    from bayesgmm.compilation import cache_supported, enable_compilation_cache

    # Under jaxlib 0.9 the cache would print an error line per cached program: off,
    # quietly (the command line turns it on by itself; the library's function warns).
    if not args.no_compilation_cache and cache_supported():
        enable_compilation_cache()


def _load(cfg: RunConfig, log) -> Dataset:
    data = load_data(cfg.data, missing=cfg.fit.missing)
    log(_describe_data(data))
    return data


def _load_model(folder: Path):
    from bayesgmm.io import load_model

    if not folder.is_dir():
        raise CLIError(f"no model folder at {folder}",
                       "pass a folder written by 'bayesgmm fit' or 'bayesgmm demo'")
    if (folder / "summary.txt").is_file() and not (folder / "meta.json").exists():
        raise CLIError(f"{folder} holds a model search ('bayesgmm sweep'), not a model",
                       "fit and save one with 'bayesgmm fit' on the same config")
    from bayesgmm.io import ModelFormatError

    try:
        return load_model(folder)
    except ModelFormatError as err:  # its message names the file, the problem and the fix
        what, _, fix = str(err).rpartition("; ")
        raise CLIError(f"cannot load the model in {folder}: {what or err}",
                       f"{fix}, or fit it again with 'bayesgmm fit'" if what
                       else "fit it again with 'bayesgmm fit'") from err
    except Exception as err:  # the loader's own message names the file
        raise CLIError(f"cannot load the model in {folder}: {type(err).__name__}: {err}",
                       "pass a folder written by 'bayesgmm fit', or fit it again") from err


def _keep_id_if_present(cfg: DataConfig, header: list[str] | None) -> DataConfig:
    """New data may lack the fit's id column: then rows are numbered. ``header``: the new
    file's column names (None: no header row, or a .npy file)."""
    if isinstance(cfg.id_column, str) and Path(cfg.path).suffix != ".npy":
        if header is None or cfg.id_column not in header:
            return dataclasses.replace(cfg, id_column=None)
    return cfg


def _check_id_position(cfg: DataConfig, model, folder: Path, header: list[str] | None
                       ) -> None:
    """An id column given by index is read by position in new data (whose features are
    read by name): refuse new data (its column names ``header``) where that position
    holds one of the model's features, i.e. its columns are in another order than the
    fit's."""
    names = getattr(model, "feature_names_in_", None)
    path = Path(cfg.path)
    if not isinstance(cfg.id_column, int) or names is None or header is None:
        return
    if 0 <= cfg.id_column < len(header) and header[cfg.id_column] in [str(n) for n in names]:
        raise CLIError(f"{path}'s column {cfg.id_column} (id_column = {cfg.id_column} in "
                       f"{folder / 'config.toml'}) is {header[cfg.id_column]!r}, one of the "
                       "model's features: this file's columns are in another order than "
                       "the fit's", f"set id_column to the id column's name in "
                       f"{folder / 'config.toml'}, or keep the fit's column order")


def _model_columns(cfg: DataConfig, model, header: list[str] | None) -> DataConfig:
    """New data with a header row (its names ``header``): its feature columns taken by
    the names the model was fitted on (whatever their order there, and whichever columns
    the fit's config chose by index or left to the default), so that columns in another
    order, or a label column, are not fed to the model in their place."""
    names = getattr(model, "feature_names_in_", None)
    path = Path(cfg.path)
    if names is None or header is None:
        return cfg
    names = [str(n) for n in names]
    if any(names.count(n) > 1 or header.count(n) > 1 for n in names):
        # (a name repeated in the fit or in this file: by position, as before)
        return cfg
    missing = [n for n in names if n not in header]
    if missing:
        raise CLIError(f"{path} has no column {missing[0]!r}; the model was fitted on the "
                       f"columns {', '.join(map(str, names))} (its columns are "
                       f"{', '.join(header)})", "give the new data the fit's column names")
    return dataclasses.replace(cfg, columns=tuple(names))


def _check_out_file(out: Path) -> None:
    """``predict --out``: a file that can be written (checked before predicting). Its
    folder is tried by creating (and removing) a file there, the write's own test:
    permission bits (``os.access``) say nothing for root, nor for /proc, nor for a
    read-only mount; else the write failed after predicting, naming the writer's
    temporary file."""
    if out.is_dir():
        raise CLIError(f"--out {out} is a folder", "give a file name, e.g. labels.csv")
    folder = out.absolute().parent
    if not folder.is_dir():
        raise CLIError(f"cannot write {out}: the folder {folder} does not "
                       "exist", "create it first, or choose another --out")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{out.name}.",
                                         suffix=".test"):
            pass
    except OSError as err:
        raise CLIError(f"cannot write {out}: its folder {folder} is not writable "
                       f"({err.strerror})", "choose another --out") from None


def _check_enough_rows(data: Dataset, k: int, key: str) -> None:
    if data.X.shape[0] < k:
        raise CLIError(f"{key} asks for K={k}, but {data.source} has only "
                       f"{data.X.shape[0]} samples", f"lower {key.split()[-1]} below "
                       f"{data.X.shape[0] + 1}")


def _em_settings(cfg: RunConfig) -> dict:
    """One set of EM settings for the sweep's fits, the final one and (but the seed)
    the Bayesian fit's start."""
    f = cfg.fit
    return dict(random_state=f.random_state, n_init=f.n_init, tol=f.tol,
                reg_covar=f.reg_covar, max_iter=f.max_iter, init_params=f.init_params,
                missing=f.missing)


def _codes(labels: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(labels).astype(str), return_inverse=True)[1]


def _fit_bayes(cfg: RunConfig, data: Dataset, K: int, ct: str, log, *, em):
    """The ``[bayes]`` fit at K: (model, (mean, lower, upper) memberships, summary text).
    ``em`` is the command's EM fit at K, to compare with the one inference started from.
    """
    from bayesgmm.bayes import BayesianGaussianMixture
    from bayesgmm.bayes.model import MODEL_NAMES, check_model_type
    from bayesgmm.covariance import ops

    b = cfg.bayes
    priors = _priors(b)
    what = {"nuts": f"NUTS, {b.n_chains} chains x ({b.n_warmup} warm-up + {b.n_draws} draws)",
            "map": "MAP", "svi": f"SVI, {b.n_svi_steps} steps, {b.n_draws} draws"}[b.method]
    what += "".join(note for on, note in (
        (b.noise, ", noise component"), (b.component == "t", ", Student-t components"),
        (b.sparse, ", sparse weights"),
        (np.isnan(data.X).any(), ", missing values marginalised")) if on)
    if ct not in MODEL_NAMES:  # a constrained model (EEE): its per-component relaxation
        relaxed = ops(ct).bayes_type
        log(f"bayes: {ct} has no per-component Bayesian model; sampling {relaxed}, "
            f"its per-component relaxation")
        ct = relaxed
    if data.X.shape[1] == 1 and check_model_type(ct).correlated:
        log(f"bayes: one feature: sampling diag, the same model as {ct} there")
        ct = "diag"  # (its LKJ prior has no 1 x 1 form)
    log(f"bayes: {what} at K={K} ({ct}) ...")
    t0 = time.perf_counter()
    with _fit_errors("the Bayesian fit"):
        model = BayesianGaussianMixture(
            K, covariance_type=ct, method=b.method, priors=priors, n_chains=b.n_chains,
            n_warmup=b.n_warmup, n_draws=b.n_draws, n_svi_steps=b.n_svi_steps,
            target_accept_prob=b.target_accept_prob, random_state=b.seed, noise=b.noise,
            noise_volume=b.noise_volume, component=b.component, df=b.df, sparse=b.sparse,
            **{k: v for k, v in _em_settings(cfg).items() if k != "random_state"}).fit(data.X)
        interval = model.membership_interval(data.X, prob=b.interval)
        table = _summary_table(model, b.method)
    if data.feature_names is not None:
        model.feature_names_in_ = np.asarray(data.feature_names, dtype=object)
    seconds = time.perf_counter() - t0
    log(f"bayes: done in {seconds:.1f} s")
    mean, lower, upper = interval
    label = mean.argmax(1)
    rows = np.arange(len(mean))
    width = upper[rows, label] - lower[rows, label]
    holes = bool(np.isnan(data.X).any())  # bic is the Gaussian, complete-data density's
    text = [f"\nBayesian fit ({what}) in {seconds:.1f} s; " + (
                "no BIC (the noise or t model's density is not the Gaussian mixture's)"
                if b.noise or b.component == "t" else
                "no BIC (the data has missing values)" if holes else
                f"BIC at the MAP {model.bic(data.X):.2f}"),
            (f"membership: the {b.interval:.0%} credible interval of each point's label "
             f"probability has median width {np.median(width):.3f}; "
             f"{int(np.sum(width > 0.1))} of {len(width)} points wider than 0.1")
            if b.method != "map" else
            "membership: MAP is one parameter set, so no credible interval (use nuts or svi)",
            f"membership: {int(np.sum(mean.max(1) < UNCERTAIN))} of {len(mean)} points have "
            f"a posterior mean max p(z|x) < {UNCERTAIN}",
            "posterior summary (relabeled draws):" if b.method != "map" else
            "MAP estimates (one parameter set: no spread, no sampler diagnostics):",
            table.to_string()]
    start = model.em_.lower_bound_
    if start < em.lower_bound_ - 1e-3 * abs(em.lower_bound_):
        note = (f"the Bayesian fit started from its own EM fit, a poorer optimum (mean "
                f"log-likelihood {start:.4f} against {em.lower_bound_:.4f}); raise [fit] "
                "n_init or change [bayes] seed")
        log(f"warning: {note}")
        text.append(f"warning: {note}")
    text += [f"warning: {w}" for w in model.warnings_]
    text += ["components (posterior means; the labels of membership.csv):",
             _component_table(model.weights_, model.means_, data)]
    if b.noise:
        noise = int(np.sum(label == K))
        text.append(f"noise: weight {model.noise_weight_:.4f} (the components' weights sum "
                    f"to the rest); {noise} of {len(mean)} points labelled -1 (noise) in "
                    "membership.csv; proba.csv's last column is the noise")
    if b.component == "t":
        text.append("degrees of freedom (posterior means): "
                    + ", ".join(f"{v:.3g}" for v in np.asarray(model.df_)))
    return model, interval, "\n".join(text)


def _priors(b):
    """``[bayes.priors]`` as :class:`bayesgmm.bayes.Priors`."""
    from bayesgmm.bayes import Priors

    return Priors(**{f.name: getattr(b.priors, f.name)
                     for f in dataclasses.fields(b.priors)})


def _check_priors(cfg: RunConfig, data: Dataset) -> None:
    """``[bayes.priors]`` against the data's D features, before the sweep: a per-feature
    prior of another length is a configuration error (exit status 2), which the
    Bayesian fit's own check (:meth:`bayesgmm.bayes.Priors.validate`, the same call)
    reported as a failed fit (exit status 1) after the sweep and the EM fit."""
    if cfg.bayes is None:
        return
    try:
        _priors(cfg.bayes).validate(data.X.shape[1])
    except ValueError as err:
        names = f" ({', '.join(data.feature_names)})" if data.feature_names else ""
        raise CLIError(str(err).replace("Priors.", "[bayes.priors] "),
                       f"fix that key in [bayes.priors]: one number, or one per feature of "
                       f"{data.source}{names}") from None


def _summary_table(model, method: str):
    """The fit's summary table; of a MAP fit (one draw) only its values: ArviZ's
    ``kind="stats"`` (no ESS or R-hat of one draw, nor their shape warnings), the sd of
    one draw (NaN, with NumPy's warning) left out."""
    if method != "map":
        return model.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the sd of one draw
        table = model.summary(kind="stats")
    return table[["mean"]].rename(columns={"mean": "MAP"})


def _proba_columns(K: int, n_columns: int) -> list[str]:
    """proba.csv's header: ``p0``..``p{K-1}`` and, with a noise component, ``noise``."""
    return [f"p{k}" for k in range(K)] + ["noise"] * (n_columns - K)


def _posterior_mean(model):
    """The posterior-mean mixture of a Bayesian fit (batch shape ())."""
    from bayesgmm.params import GMMParams

    return GMMParams.from_sklearn(model.weights_, model.means_,
                                  covariance_type=model.covariance_type,
                                  covariances=model.covariances_)


def _header(cfg: RunConfig, data: Dataset) -> str:
    return f"bayesgmm: {cfg.name}\n{_describe_data(data)}\n"


def _describe_data(data: Dataset) -> str:
    """``data: N samples x D features (names) from SOURCE[; M missing values]``."""
    names = f" ({', '.join(data.feature_names)})" if data.feature_names else ""
    holes = int(np.isnan(data.X).sum())
    return (f"data: {data.X.shape[0]} samples x {data.X.shape[1]} features{names} from "
            f"{data.source}" + (f"; {holes} missing values" if holes else ""))


def _component_table(weights, means, data: Dataset | None, names=None) -> str:
    weights, means = np.asarray(weights), np.asarray(means)
    if names is None and data is not None:
        names = data.feature_names
    names = list(names) if names is not None else [f"x{j}" for j in range(means.shape[1])]
    head = ["component", "weight"] + [f"mean {n}" for n in names]
    digits = [_digits(means[:, j]) for j in range(means.shape[1])]
    rows = [[str(k), f"{weights[k]:.4f}"] + [f"{v:.{d}g}" for v, d in zip(means[k], digits)]
            for k in range(len(weights))]
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head, *rows])


def _digits(values, shown: int = 4) -> int:
    """Significant digits that show ``shown`` digits of the values' spread: 4 for data
    near the origin, more where the values sit far from it (means of data offset by 1e8
    all printed as 1e+08), at most 15."""
    values = np.asarray(values, np.float64)
    top, spread = np.max(np.abs(values)), np.ptp(values)
    if not (spread > 0 and np.isfinite(top) and top > spread):
        return shown
    return int(min(15, shown + np.ceil(np.log10(top / spread))))


def _write_sweep(stage: Path, cfg: RunConfig, table) -> Path:
    cols = ["n_components", "covariance_type", "bic", "aic", "icl", "lower_bound", "n_iter",
            "converged", "best"]
    path = stage / "sweep.csv"
    with path.open("w") as fh:
        fh.write(",".join(cols) + "\n")
        for i in range(len(table["bic"])):
            fh.write(",".join(str(table[c][i]) for c in cols) + "\n")
    _figure(stage / "selection.png", _plot("plot_selection"), table,
            title=f"{cfg.sweep.criterion.upper()} sweep, {cfg.name}: {len(table['bic'])} "
                  "models", size=(6, 4))
    return path


def _plot(name: str):
    """A :mod:`bayesgmm.plotting` function, or None where this version has none."""
    from bayesgmm import plotting

    return getattr(plotting, name, None)


def _figures(stage: Path, cfg: RunConfig, data: Dataset, params, labels, proba,
             interval, model=None) -> dict:
    """The PNG figures of a fit (with ``model``, a Bayesian fit: trace and rank plots
    of its relabeled draws); returns {name: path}. Points are drawn where every feature
    is observed (a row with a missing value has no place on the axes); a noise
    component's points (label -1) too, black and named in the legend, as
    :func:`bayesgmm.plotting.plot_ellipses` draws them."""
    X, names = data.X, data.feature_names
    complete = ~np.isnan(X).any(axis=1)  # (N,)
    kind = "EM" if cfg.bayes is None else ("MAP" if cfg.bayes.method == "map"
                                           else "posterior mean")
    files = {"clusters": stage / "clusters.png", "membership": stage / "membership.png"}
    title = f"{cfg.name}: K={params.n_components} ({params.covariance_type}, {kind})"
    if not complete.all():
        title += f"; {int(np.sum(~complete))} rows with missing values not drawn"
    if X.shape[1] == 1:  # one feature: the mixture's density over the data's histogram
        _figure(files["clusters"], functools.partial(_plot("plot_pairs"),
                                                     labels=labels[complete]),
                X[complete], params, names=names, axes=False)
        return {"clusters": files["clusters"], **_draws_figures(stage, cfg, model)}
    _figure(files["clusters"], _plot("plot_ellipses"), params, X[complete],
            labels[complete], names=names, title=title)
    _figure(files["membership"], functools.partial(
                _plot("plot_membership"), noise=proba.shape[1] > params.n_components),
            X[complete], proba[complete], names=names)
    if interval is not None and cfg.bayes.method != "map":  # MAP: one draw, no interval
        rows = np.arange(len(X))
        label = interval[0].argmax(1)
        uncertainty = interval[2][rows, label] - interval[1][rows, label]
        what = f"{cfg.bayes.interval:.0%} interval width of the label probability"
    else:
        uncertainty, what = 1.0 - proba.max(1), "1 - max p(z|x)"
    if _plot("plot_uncertainty") is not None:
        files["uncertainty"] = stage / "uncertainty.png"
        _figure(files["uncertainty"], _plot("plot_uncertainty"), X[complete],
                uncertainty[complete], names=names, title=f"membership uncertainty: {what}")
    if X.shape[1] > 2 and complete.any() and _plot("plot_pairs") is not None:
        files["pairs"] = stage / "pairs.png"
        _figure(files["pairs"], _plot("plot_pairs"), X[complete], params, names=names,
                axes=False)
    return files | _draws_figures(stage, cfg, model)


def _draws_figures(stage: Path, cfg: RunConfig, model) -> dict:
    """A Bayesian fit's trace (and, of several NUTS chains, rank) plots; {name: path}."""
    files = {}
    if model is not None and cfg.bayes.method != "map":  # draws to look at
        from bayesgmm.bayes import arviz as bayes_arviz

        plots = {"trace": bayes_arviz.plot_trace}
        if cfg.bayes.method == "nuts" and cfg.bayes.n_chains > 1:
            plots["rank"] = bayes_arviz.plot_rank
        for name, plot in plots.items():
            files[name] = stage / f"{name}.png"
            _figure(files[name], plot, model.idata_, ("weights", "means", "scales"),
                    axes=False)
    return files


def _figure(path: Path, plot, *args, names=None, title=None, size=(6, 5), axes=True):
    """Draw ``plot(*args)`` (with ``feature_names`` where it takes them) and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    takes = inspect.signature(plot).parameters
    kwargs = {"feature_names": list(names)} if names and "feature_names" in takes else {}
    if axes:
        fig, ax = plt.subplots(figsize=size)
        plot(*args, ax=ax, **kwargs)
        if names and not kwargs and "dims" in takes:  # label the axes ourselves
            i, j = takes["dims"].default
            ax.set_xlabel(names[i])
            ax.set_ylabel(names[j])
        if title:
            ax.set_title(title)
    else:  # a grid of axes: whatever it returns, save the figure that holds it
        from matplotlib.figure import Figure

        drawn = plot(*args, **kwargs)
        first = np.ravel(drawn)[0] if isinstance(drawn, np.ndarray) else drawn
        fig = first if isinstance(first, Figure) else getattr(first, "figure", None)
        fig = fig if isinstance(fig, Figure) else plt.gcf()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
