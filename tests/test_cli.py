"""The command line on real files, in-process (``main([...])``) and as ``python -m
bayesgmm``: its outputs, its one-line errors (issue 18) and its folders (configuration
files themselves: test_config.py; saved models: test_io.py).

Truth: the library called directly (a loaded model's ``predict_proba``), the files
written, the generating labels, and the messages and exit statuses the issue asks for."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.cli import main, run_workflow
from bayesgmm.config import from_dict, load_config
from bayesgmm.io import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
# in-process: leave JAX's global configuration (the compilation cache) alone
NO_CACHE = "--no-compilation-cache"


def _fit(argv, capsys):
    """(exit status, stdout, stderr lines) of ``bayesgmm fit ...``."""
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, [line for line in err.splitlines() if line]


def _assert_one_line_error(err_lines, *fragments):
    assert len(err_lines) == 1, err_lines
    line = err_lines[0]
    assert line.startswith("bayesgmm: error: ") and " — " in line, line
    assert "Traceback" not in line
    for f in fragments:
        assert f in line, (f, line)


def _two_blobs(seed: int) -> np.ndarray:
    """40 rows in 2-D: two blobs of 20, 6 apart."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0, 1, (20, 2)), rng.normal(6, 1, (20, 2))]


def _fit_then_predict(cfg: Path, new_data: Path, capsys) -> tuple[Path, list[dict]]:
    """``bayesgmm fit cfg`` into a folder beside it, then ``predict`` of ``new_data``:
    the folder and the membership table's rows (both commands must succeed)."""
    out = cfg.parent / "m"
    assert main(["fit", str(cfg), "--out", str(out), "--quiet", NO_CACHE]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), str(new_data), "--quiet", NO_CACHE]) == 0
    return out, list(csv.DictReader(capsys.readouterr().out.splitlines()))


def _nothing_left(folder: Path, out: Path):
    assert not out.exists()
    assert [p.name for p in folder.iterdir() if ".partial" in p.name] == []


@pytest.fixture
def csv_run(tmp_path):
    """A header CSV in data/, a config in cfg/ that names it relatively, by column name,
    with an id column and a label column; 3 well separated blobs."""
    rng = np.random.RandomState(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    y = np.repeat([0, 1, 2], 40)
    X = centres[y] + rng.normal(scale=0.7, size=(120, 2))
    (tmp_path / "data").mkdir()
    (tmp_path / "cfg").mkdir()
    with (tmp_path / "data" / "d.csv").open("w") as fh:
        fh.write("sample,width,unused,height,kind\n")
        for i, (row, k) in enumerate(zip(X, y)):
            fh.write(f"s{i},{row[0]:.6f},{i * 10},{row[1]:.6f},type{k}\n")
    cfg = tmp_path / "cfg" / "run.toml"
    cfg.write_text('name = "csv"\n[data]\npath = "../data/d.csv"\n'
                   'columns = ["width", "height"]\nid_column = "sample"\n'
                   'label_column = "kind"\n[sweep]\nn_components = [1, 4]\n')
    return tmp_path, cfg, X, y


def test_run_workflow_writes_everything(tmp_path):
    cfg = from_dict({"name": "t", "sweep": {"n_components": [2, 6]}})
    lines = []
    summary = run_workflow(cfg, tmp_path, log=lines.append)
    assert summary["n_components"] == 4 and summary["adjusted_rand_index"] >= 0.99
    for name in ("selection.png", "clusters.png", "membership.png", "sweep.csv",
                 "proba.csv", "params.npz", "meta.json", "config.toml", "summary.txt",
                 "membership.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert any("wrote:" in line for line in lines)
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 5
    assert load_config(tmp_path / "config.toml") == cfg
    proba = np.loadtxt(tmp_path / "proba.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    from matplotlib.image import imread

    for name in ("selection.png", "clusters.png", "membership.png"):
        image = imread(tmp_path / name)
        assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0, name


def test_feature_names_reach_the_model(csv_run):
    tmp_path, cfg, X, y = csv_run
    summary = run_workflow(load_config(cfg), tmp_path / "o", log=lambda line: None)
    assert summary["model"].feature_names_in_.tolist() == ["width", "height"]
    assert summary["model"].feature_names_in_.dtype == object


def test_demo_recovers_the_blobs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "blobs"), "--quiet", NO_CACHE]) == 0
    out = capsys.readouterr().out
    assert "best BIC: K=4 (VVV)" in out
    assert "adjusted Rand index against the known labels: 1.0000" in out
    assert (tmp_path / "blobs" / "clusters.png").stat().st_size > 0


def test_csv_with_header_columns_by_name_and_relative_path(csv_run, capsys, monkeypatch):
    tmp_path, cfg, X, y = csv_run
    monkeypatch.chdir(tmp_path / "cfg")  # not the folder the data path starts from...
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # ...nor this one: the config file's folder is
    out = tmp_path / "out"
    rc, stdout, err = _fit(["fit", str(cfg), "--out", str(out), NO_CACHE], capsys)
    assert rc == 0, err
    assert "best BIC: K=3" in stdout
    assert "2 features (width, height)" in stdout
    assert "adjusted Rand index against the known labels: 1.0000" in stdout
    assert "mean width" in stdout and "mean height" in stdout
    assert stdout == (out / "summary.txt").read_text()
    with (out / "membership.csv").open() as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["id", "label", "probability"]  # bayesgmm.io.write_table's header
    assert [r[0] for r in table[1:]] == [f"s{i}" for i in range(120)]
    # the saved model, reloaded, gives the table's labels and probabilities
    model = load_model(out)
    proba = model.predict_proba(X)
    np.testing.assert_array_equal([int(r[1]) for r in table[1:]], proba.argmax(1))
    np.testing.assert_allclose([float(r[2]) for r in table[1:]], proba.max(1), rtol=1e-5)
    assert not list(tmp_path.glob("**/*.partial"))


def test_show_and_predict_round_trip(csv_run, capsys):
    tmp_path, cfg, X, y = csv_run
    out = tmp_path / "out"
    assert main(["--quiet", "fit", str(cfg), "--out", str(out), NO_CACHE]) == 0
    fitted = capsys.readouterr().out
    assert main(["show", str(out)]) == 0
    assert capsys.readouterr().out == fitted
    # show validates the model before printing its summary: a damaged params.npz is a
    # one-line error naming the file, not the old summary of a model that cannot load
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in out.iterdir():
        (damaged / f.name).write_bytes(f.read_bytes())
    data = (damaged / "params.npz").read_bytes()
    (damaged / "params.npz").write_bytes(data[:len(data) // 2])
    assert main(["show", str(damaged)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "params.npz" in captured.err
    # predict on the same CSV: the columns are found by name, ids by the id column
    target = tmp_path / "pred.csv"
    assert main(["predict", str(out), str(tmp_path / "data" / "d.csv"), "--out",
                 str(target), NO_CACHE]) == 0
    assert target.read_text() == (out / "membership.csv").read_text()
    # a headerless file with just the two feature columns: rows numbered
    np.savetxt(tmp_path / "new.csv", X[:5], delimiter=",")
    assert main(["predict", str(out), str(tmp_path / "new.csv"), NO_CACHE]) == 0
    rows = [r.split(",") for r in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["id", "label", "probability"] and [r[0] for r in rows[1:]] == list(
        "01234")
    proba = load_model(out).predict_proba(X[:5])
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], proba.max(1), rtol=1e-5)


def test_predict_command(tmp_path, datasets, capsys):
    X = datasets["iris"]
    gm = GaussianMixture(3, random_state=0).fit(X)
    save_model(gm, tmp_path / "m")
    np.save(tmp_path / "x.npy", X[:5])
    argv = [NO_CACHE, "predict", str(tmp_path / "m"), str(tmp_path / "x.npy"), "--proba"]
    assert main(argv) == 0
    printed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",")
    np.testing.assert_allclose(printed, gm.predict_proba(X[:5]), atol=1e-5)


def test_one_integer_n_components_fits_that_k(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sweep]\nn_components = 5\n')
    rc, stdout, err = _fit(["fit", str(cfg), "--out", str(tmp_path / "o"), NO_CACHE], capsys)
    assert rc == 0, err
    assert "EM fit: K=5," in stdout and len(load_model(tmp_path / "o").weights_) == 5


def test_global_options_work_after_the_subcommand(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sweep]\nn_components = [3, 4]\n')
    rc, stdout, err = _fit(["fit", str(cfg), "--out", str(tmp_path / "o"), "--quiet",
                            NO_CACHE], capsys)
    assert rc == 0 and err == [] and "best BIC" in stdout
    rc, _, err = _fit(["fit", str(cfg), "--out", str(tmp_path / "o"), NO_CACHE], capsys)
    assert rc == 0 and any(line.startswith("data: 300 samples") for line in err)
    cfg.write_text('[fit]\ntol = "1e-3"\n')
    assert main(["fit", str(cfg), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(["fit", str(cfg)]) == 2
    assert "Traceback" not in capsys.readouterr().err


DATA = '[data]\npath = "d.csv"\n'


@pytest.mark.parametrize("case,csv_text,config,fragments", [
    ("tol as a string", None, '[fit]\ntol = "1e-3"\n',
     ["[fit] tol must be a number, got the string '1e-3'", "without quotes"]),
    ("unknown key", None, "[fit]\nn_component = 3\n",
     ["unknown key n_component in [fit]", "valid keys: covariance_type, init_params"]),
    ("TOML syntax", None, "[fit]\ntol = \n", ["is not valid TOML", "line 2"]),
    ("missing data file", None, '[data]\npath = "nope.csv"\n',
     ["nope.csv does not exist", "relative paths"]),
    ("a bad cell", "a,b\n1,2\n3,x\n4,5\n", DATA,
     ["d.csv line 3, column 'b': 'x' is not a finite number"]),
    ("an empty cell", "a,b\n1,2\n3,\n4,5\n", DATA,
     ["d.csv line 3, column 'b': '' is a missing value", 'set [fit] missing = "marginalize"']),
    ("a NaN cell", "a,b\n1,2\n3,4\nnan,5\n", DATA,
     ["d.csv line 4, column 'a': 'nan' is a missing value", '[fit] missing = "marginalize"']),
    ("a hole in a headerless first row", "1,\n3,4\n5,6\n", DATA,
     ["d.csv: its first row (1,) may be a header", "[data] header = true",
      "header = false"]),
    ("a pandas header", ",0,1\n0,1.5,2\n1,3,4\n2,5,6\n", DATA,
     ["d.csv: its first row (,0,1) may be a header", "header = false (data)"]),
    ("a hole in a first row read as data", "1,\n3,4\n5,6\n", DATA + "header = false\n",
     ["d.csv line 1, column 'column 1': '' is a missing value"]),
    ("a row of holes", "id,a,b\nr1,1,2\nr2,,\nr3,4,5\n",
     DATA + 'id_column = "id"\n[fit]\nmissing = "marginalize"\n',
     ["d.csv line 3 has no value in any feature column", "drop those rows"]),
    ("a ragged row", "a,b\n1,2\n3\n", DATA, ["d.csv line 3 has 1 fields"]),
    ("a folder as the data file", None, '[data]\npath = "."\n',
     ["is a folder, not a file", "check [data] path"]),
    ("a name twice in the header", "a,a,b\n1,2,3\n4,5,6\n7,8,1\n",
     DATA + 'columns = ["a", "b"]\n',
     ["[data] columns names the column 'a', but ",
      "d.csv's header has 2 columns named 'a' (0, 1)",
      "rename them in the header, or name the columns by 0-based index"]),
    ("the id column as the label column", "a,b,c\nr1,1,2\nr2,3,4\nr3,5,1\n",
     DATA + 'id_column = "a"\nlabel_column = "a"\n',
     ["[data] id_column and label_column are the same column ('a')"]),
    ("the id column by index as the label column by name", "a,b,c\nr1,1,2\nr2,3,4\n",
     DATA + 'id_column = 0\nlabel_column = "a"\n',
     ["[data] id_column and label_column are the same column ('a')"]),
    ("a feature column by index that is the id column by name", "a,b,c\nr1,1,2\nr2,3,4\n",
     DATA + 'id_column = "a"\ncolumns = [0, "b"]\n',
     ["[data] columns includes 'a', the id_column of", "drop it from columns"]),
    ("a feature column twice, by name and index", "a,b,c\n1,1,2\n2,3,4\n3,5,1\n",
     DATA + 'columns = ["b", 1, "c"]\n',
     ["[data] columns lists the column 'b' of", "twice"]),
    ("a value whose square overflows", "a,b\n1,2\n1e200,4\n5,6\n", DATA,
     ["d.csv line 3, column 'a': '1e200' is too large", "rescale that column"]),
    ("a prior per feature of other data", "a,b\n1,2\n3,4\n5,7\n8,1\n",
     DATA + '[sweep]\nn_components = 1\n[bayes]\nmethod = "map"\n'
            "[bayes.priors]\nmean_scale = [1, 2, 3]\n",
     ["[bayes.priors] mean_scale must be a number or 2 numbers (one per feature) for "
      "data of 2 features", "one per feature of", "(a, b)"]),
    ("a row with a field too many", "a,b\n1,2\n3,4,5\n6,7\n", DATA,
     ["d.csv line 3 has 3 fields, the first row has 2"]),
    ("column by a wrong name", "a,b\n1,2\n3,4\n", DATA + 'columns = ["a", "c"]\n',
     ["[data] columns: ", "has no column 'c'", "its columns are a, b"]),
    ("K over N", "a,b\n1,2\n3,4\n5,6\n", DATA + "[sweep]\nn_components = [1, 5]\n",
     ["[sweep] n_components asks for K=5", "has only 3 samples"]),
    ("a bad cell after blank lines", "a,b\n1,2\n\n\n3,4\n\n5,x\n", DATA,
     ["d.csv line 7, column 'b': 'x' is not a finite number"]),
    ("a semicolon file", "a;b\n1;2\n3;4\n", DATA,
     ["'1;2' is not a finite number; the file seems to separate its fields by ';'",
      "set [data] delimiter = \";\""]),
    ("a row of holes after a blank line", "id,a,b\n\nr1,1,2\nr2,,\nr3,4,5\n",
     DATA + 'id_column = "id"\n[fit]\nmissing = "marginalize"\n',
     ["d.csv line 4 has no value in any feature column"]),
    ("a delimiter of two characters", None, '[data]\ndelimiter = ", "\n',
     ["[data] delimiter must be one character, got ', '"]),
    ("an id column not declared", "id,a,b\nr1,1,2\nr2,3,4\n", DATA,
     ["column 'id': 'r1' is not a finite number", 'set [data] id_column = "id"']),
    ("a column twice", "a,b\n1,2\n3,4\n", DATA + 'columns = ["a", "a"]\n',
     ["[data] columns names 'a' more than once"]),
    ("the id column as a feature", "a,b\n1,2\n3,4\n",
     DATA + 'columns = ["a", "b"]\nid_column = "a"\n',
     ["[data] id_column 'a' is also in [data] columns"]),
    ("a model twice", None, '[sweep]\ncovariance_types = ["full", "VVV"]\n',
     ["[sweep] covariance_types names 'VVV' twice ('full' is the same model)"]),
    ("[fit] K of 0", None, "[fit]\nn_components = 0\n",
     ["[fit] n_components must be an integer K >= 1", "got the integer 0"]),
    ("no EM iteration", None, "[fit]\nmax_iter = 0\n", ["[fit] max_iter must be >= 1"]),
    ("a noise volume without noise", None, "[bayes]\nnoise_volume = 5\n",
     ["[bayes] noise_volume = 5.0 sets the noise component's volume, but noise = false",
      "set noise = true, or remove noise_volume"]),
])
def test_bad_input_is_one_line_exit_2_no_folder(tmp_path, capsys, case, csv_text, config,
                                                fragments):
    if csv_text is not None:
        (tmp_path / "d.csv").write_text(csv_text)
    cfg = tmp_path / "c.toml"
    cfg.write_text(config)
    out = tmp_path / "out"
    rc, stdout, err = _fit(["fit", str(cfg), "--out", str(out), "--quiet", NO_CACHE],
                           capsys)
    assert rc == 2 and stdout == ""
    _assert_one_line_error(err, *fragments)
    _nothing_left(tmp_path, out)


@pytest.mark.parametrize("argv,fragments", [
    (["fit"], ["the following arguments are required: config", "--help"]),
    (["fit", "x.toml", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ([], ["no command given"]),
    (["fit", "nope.toml"], ["no configuration file at nope.toml"]),
    (["show", "nope"], ["no model folder at nope"]),
    (["predict", "nope", "x.csv"], ["no model folder at nope"]),
])
def test_usage_errors_are_one_line(argv, fragments, capsys):
    assert main(argv) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(), *fragments)


def test_predict_names_a_damaged_folder_and_wrong_columns(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "params.npz").write_bytes(b"garbage")
    (tmp_path / "m" / "meta.json").write_text("{}")
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "x.npy")]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(),
                           f"cannot load the model in {tmp_path / 'm'}")
    save_model(GaussianMixture(2, random_state=0).fit(np.random.RandomState(0).normal(
        size=(50, 3))), tmp_path / "m3")
    assert main(["predict", str(tmp_path / "m3"), str(tmp_path / "x.npy"), NO_CACHE]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(),
                           "has 2 feature columns", "fitted on 3")
    # an empty cell for a model fitted without missing values: the fix is a refit
    (tmp_path / "holes.csv").write_text("a,b,c\n1,2,3\n4,,6\n")
    assert main(["predict", str(tmp_path / "m3"), str(tmp_path / "holes.csv"), NO_CACHE]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(),
                           "holes.csv line 3, column 'b': '' is a missing value",
                           'fitted with [fit] missing = "error"', "refit it")


def test_failed_fit_exits_1_and_keeps_the_old_folder(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sweep]\nn_components = [1, 2]\n')
    out = tmp_path / "out"
    assert main(["fit", str(cfg), "--out", str(out), "--quiet", NO_CACHE]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    # two identical points per component and no regularisation: a singular covariance
    (tmp_path / "d.csv").write_text("a,b\n" + "1,2\n" * 5 + "3,4\n")
    cfg.write_text('[data]\npath = "d.csv"\n[sweep]\nn_components = 2\n[fit]\nreg_covar = 0.0\n')
    assert main(["fit", str(cfg), "--out", str(out), "--quiet", NO_CACHE]) == 1
    _assert_one_line_error(capsys.readouterr().err.splitlines(), "the fit failed",
                           "reg_covar", "--debug")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # nor are the folders made for a new --out left behind
    deep = tmp_path / "new" / "deeper" / "out"
    assert main(["fit", str(cfg), "--out", str(deep), "--quiet", NO_CACHE]) == 1
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []


def test_a_folder_not_written_by_bayesgmm_is_never_replaced(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sweep]\nn_components = 2\n')
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert main(["fit", str(cfg), "--out", str(tmp_path / "mine"), "--quiet", NO_CACHE]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(), "was not written by bayesgmm")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_sweep_command(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "s"\n[sweep]\nn_components = [2, 5]\n'
                   'covariance_types = ["full", "diag"]\n')
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "s"), "--quiet", NO_CACHE]) == 0
    assert "best BIC: K=4" in capsys.readouterr().out
    rows = (tmp_path / "s" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 and (tmp_path / "s" / "selection.png").stat().st_size > 0
    assert not (tmp_path / "s" / "params.npz").exists()
    # show prints a sweep folder's summary (it has no model to load)
    assert main(["show", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out == (tmp_path / "s" / "summary.txt").read_text()


def test_missing_values_fit_with_the_key(csv_run, capsys):
    """Empty cells in the CSV: with [fit] missing = "marginalize" the sweep, the fit and
    predict take them; the fit is GaussianMixture(missing="marginalize")'s, and the
    complete rows get the generating labels."""
    tmp_path, cfg, X, y = csv_run
    rng = np.random.RandomState(1)
    holes = rng.random_sample(X.shape) < 0.1
    holes[holes.all(axis=1), 1] = False  # every row keeps one value
    lines = (tmp_path / "data" / "d.csv").read_text().splitlines()
    with (tmp_path / "data" / "d.csv").open("w") as fh:
        fh.write(lines[0] + "\n")
        for line, (no_width, no_height) in zip(lines[1:], holes):
            cells = line.split(",")  # sample,width,unused,height,kind
            cells[1], cells[3] = ("" if no_width else cells[1]), ("" if no_height else cells[3])
            fh.write(",".join(cells) + "\n")
    cfg.write_text(cfg.read_text().replace("[1, 4]", "[2, 4]")
                   + '[fit]\nmissing = "marginalize"\n')
    out = tmp_path / "out"
    rc, stdout, err = _fit(["fit", str(cfg), "--out", str(out), NO_CACHE], capsys)
    assert rc == 0, err
    assert any(f"{int(holes.sum())} missing values" in line for line in err), err
    assert "best BIC: K=3" in stdout and "EM fit: K=3," in stdout
    assert f"from {tmp_path / 'data' / 'd.csv'}; {int(holes.sum())} missing values" in stdout
    written = [[float(f"{v:.6f}") for v in row] for row in X]  # the file's values
    Xh = np.where(holes, np.nan, written)
    model = load_model(out)
    alone = GaussianMixture(3, missing="marginalize", random_state=0).fit(Xh)
    assert model.missing == "marginalize"
    np.testing.assert_allclose(model.means_, alone.means_, rtol=1e-6)
    sweep = list(csv.DictReader((out / "sweep.csv").open()))
    assert [int(r["n_components"]) for r in sweep] == [2, 3, 4]
    assert float(sweep[1]["bic"]) == pytest.approx(alone.bic(Xh), rel=1e-9)
    with (out / "membership.csv").open() as fh:
        labels = np.array([int(r["label"]) for r in csv.DictReader(fh)])
    assert len(labels) == 120
    from bayesgmm.metrics import adjusted_rand_score

    complete = ~holes.any(axis=1)
    assert adjusted_rand_score(y[complete], labels[complete]) == 1.0
    target = tmp_path / "pred.csv"
    assert main(["predict", str(out), str(tmp_path / "data" / "d.csv"), "--out",
                 str(target), NO_CACHE]) == 0
    assert target.read_text() == (out / "membership.csv").read_text()


@pytest.mark.usefixtures("standard_promotion")  # NumPyro's own code is not strict-clean
def test_bayes_map_run_writes_its_outputs(csv_run, capsys):
    tmp_path, cfg, X, y = csv_run
    cfg.write_text(cfg.read_text().replace("n_components = [1, 4]", "n_components = 3")
                   + '[bayes]\nmethod = "map"\ninterval = 0.9\n'
                   '[bayes.priors]\nlkj_concentration = 3.0\n')
    out = tmp_path / "out"
    rc, stdout, err = _fit(["fit", str(cfg), "--out", str(out), "--quiet", NO_CACHE], capsys)
    assert rc == 0, err
    assert "Bayesian fit (MAP)" in stdout and "no credible interval" in stdout
    # its summary is the MAP's values (ArviZ's spread and diagnostics of one draw: NaN)
    assert "MAP estimates" in stdout and "NaN" not in stdout
    with (out / "membership.csv").open() as fh:
        table = list(csv.reader(fh))
    # MAP is one parameter set: membership_table has no credible interval to write
    assert table[0] == ["id", "label", "probability"]
    assert [r[0] for r in table[1:]] == [f"s{i}" for i in range(120)]
    p = np.array([float(r[2]) for r in table[1:]])
    assert np.all((p >= 1 / 3 - 1e-6) & (p <= 1 + 1e-6))
    labels = np.array([int(r[1]) for r in table[1:]])
    from bayesgmm.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, labels) == 1.0
    for name in ("clusters.png", "membership.png", "selection.png", "config.toml"):
        assert (out / name).stat().st_size > 0
    saved = load_config(out / "config.toml").bayes
    assert saved.method == "map" and saved.priors.lkj_concentration == 3.0
    # the folder holds the Bayesian fit itself (not an EM stand-in): reloaded, its MAP
    # memberships are the table's
    model = load_model(out)
    assert type(model).__name__ == "BayesianGaussianMixture"
    proba = model.predict_proba(X)
    np.testing.assert_array_equal(labels, proba.argmax(1))
    np.testing.assert_allclose(p, proba.max(1), rtol=1e-5)


@pytest.mark.usefixtures("standard_promotion")  # NumPyro's own code is not strict-clean
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")  # MAP: one draw, sd NaN
def test_bayes_noise_t_and_sparse_options_reach_the_fit_and_its_outputs(csv_run):
    """[bayes] noise, component, df and sparse reach BayesianGaussianMixture; the noise
    column is named in proba.csv and its points are labelled -1 in membership.csv. The
    sweep's choice, mclust's VVV, is the Bayesian model's name as given."""
    tmp_path, _, X, y = csv_run
    far = np.array([[-9.0, 14.0], [15.0, -8.0], [16.0, 15.0], [-10.0, -9.0]])  # planted noise
    with (tmp_path / "data" / "d.csv").open("a") as fh:
        fh.writelines(f"n{i},{a},0,{b},noise\n" for i, (a, b) in enumerate(far))
    cfg = from_dict({"name": "noisy", "data": {"path": str(tmp_path / "data" / "d.csv"),
                                               "columns": ["width", "height"],
                                               "id_column": "sample"},
                     "sweep": {"n_components": 3},
                     "bayes": {"method": "map", "noise": True, "component": "t", "df": 4.0,
                               "sparse": True}})
    lines = []
    summary = run_workflow(cfg, tmp_path / "out", log=lines.append)
    out = tmp_path / "out"
    assert not any("relaxation" in line for line in lines)
    model = load_model(out)
    params = model.get_params()
    assert (params["noise"], params["component"], params["df"], params["sparse"],
            params["covariance_type"]) == (True, "t", 4.0, True, "VVV")
    assert model.priors_.weight_concentration == pytest.approx(0.5 / 3)
    np.testing.assert_array_equal(model.df_, [4.0, 4.0, 4.0])
    with (out / "proba.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["p0", "p1", "p2", "noise"]
    proba = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-4)
    with (out / "membership.csv").open() as fh:
        table = list(csv.reader(fh))
    labels = np.array([int(r[1]) for r in table[1:]])
    np.testing.assert_array_equal(labels, model.predict(np.vstack([X, far])))
    np.testing.assert_array_equal(labels[120:], -1)  # the planted points are the noise
    assert np.all(labels[:120] >= 0)
    from bayesgmm.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, labels[:120]) == 1.0
    text = summary["text"]
    assert "noise component, Student-t components, sparse weights" in text
    assert "no BIC" in text and "4 of 124 points labelled -1 (noise)" in text
    saved = load_config(out / "config.toml").bayes
    assert (saved.noise, saved.component, saved.df, saved.sparse) == (True, "t", 4.0, True)


def _saved_figures(monkeypatch) -> dict:
    """{PNG name: Figure} of the figures saved from now on: each real figure is kept as
    it is saved (and its PNG written as usual), so its Axes can be read afterwards."""
    from matplotlib.figure import Figure

    saved, savefig = {}, Figure.savefig

    def keep(fig, fname, *args, **kwargs):
        saved[Path(fname).name] = fig
        return savefig(fig, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


@pytest.mark.usefixtures("standard_promotion")  # NumPyro's own code is not strict-clean
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")  # MAP: one draw, sd NaN
def test_clusters_png_draws_the_noise_points(csv_run, monkeypatch):
    """clusters.png of a [bayes] noise fit left the points labelled -1 out (its title
    said "4 noise points not drawn"); it draws every row, the noise points black with a
    "noise" legend entry, as plot_ellipses draws them."""
    import matplotlib
    from matplotlib.image import imread

    tmp_path, _, X, y = csv_run
    far = np.array([[-9.0, 14.0], [15.0, -8.0], [16.0, 15.0], [-10.0, -9.0]])  # planted noise
    with (tmp_path / "data" / "d.csv").open("a") as fh:
        fh.writelines(f"n{i},{a},0,{b},noise\n" for i, (a, b) in enumerate(far))
    cfg = from_dict({"name": "noisy", "data": {"path": str(tmp_path / "data" / "d.csv"),
                                               "columns": ["width", "height"]},
                     "sweep": {"n_components": 3},
                     "bayes": {"method": "map", "noise": True}})
    figures = _saved_figures(monkeypatch)
    run_workflow(cfg, tmp_path / "out", log=lambda line: None)
    out = tmp_path / "out"
    with (out / "membership.csv").open() as fh:
        labels = np.array([int(r[1]) for r in list(csv.reader(fh))[1:]])
    np.testing.assert_array_equal(labels[120:], -1)  # the planted points are the noise
    assert np.all(labels[:120] >= 0)
    ax = figures["clusters.png"].axes[0]
    points = ax.collections[0]
    # every row, noise included, in the data's order (the CSV holds 6 decimals)
    np.testing.assert_allclose(points.get_offsets(), np.vstack([X, far]), atol=1e-6)
    faces = points.get_facecolors()
    np.testing.assert_array_equal(faces[120:], np.tile([0.0, 0.0, 0.0, 1.0], (4, 1)))
    # the components' points in their colours (tab10 by label), none black
    tab10 = np.asarray(matplotlib.colormaps["tab10"](np.arange(3)))
    np.testing.assert_allclose(faces[:120], tab10[labels[:120]])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[3:] == ["noise"] and all(t.startswith("component") for t in texts[:3])
    assert "not drawn" not in ax.get_title()
    image = imread(out / "clusters.png")
    assert (out / "clusters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.shape[0] > 200 and image[..., :3].std() > 0.05


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_one_feature_clusters_png_draws_the_noise_points(tmp_path, monkeypatch):
    """On one feature clusters.png is the density over the data's histogram: the noise
    points were left out of the histogram too; it now spans every row, and the legend
    names the noise."""
    from matplotlib.patches import Rectangle

    rng = np.random.RandomState(0)
    x = np.r_[rng.normal(-3, 0.5, 60), rng.normal(3, 0.5, 60), [-25.0, 30.0]]
    np.savetxt(tmp_path / "d.csv", x[:, None], delimiter=",", fmt="%.6f")
    cfg = from_dict({"name": "one", "data": {"path": str(tmp_path / "d.csv")},
                     "sweep": {"n_components": 2}, "bayes": {"method": "map", "noise": True}})
    figures = _saved_figures(monkeypatch)
    run_workflow(cfg, tmp_path / "out", log=lambda line: None)
    with (tmp_path / "out" / "membership.csv").open() as fh:
        labels = np.array([int(r[1]) for r in list(csv.reader(fh))[1:]])
    np.testing.assert_array_equal(labels[120:], -1)
    ax = figures["clusters.png"].axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    left = min(b.get_x() for b in bars)
    right = max(b.get_x() + b.get_width() for b in bars)
    np.testing.assert_allclose([left, right], [-25.0, 30.0], atol=1e-9)
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == "noise"
    assert (tmp_path / "out" / "clusters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["--help"], ["fit", "--help"], ["run", "--help"],
                                  ["sweep", "--help"], ["show", "--help"],
                                  ["predict", "--help"], ["demo", "--help"]])
def test_help_everywhere(argv, capsys):
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "example:" in text and "bayesgmm" in text and "--quiet" in text


def test_errors_as_a_subprocess(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sweep]\nn_components = [5, 2]\n")
    r = subprocess.run([sys.executable, "-m", "bayesgmm", "fit", str(cfg), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("bayesgmm: error: [sweep] n_components must be [low, high] with "
                        "1 <= low <= high, got [5, 2] — write n_components = [2, 5]\n")
    assert not (tmp_path / "o").exists()


def test_run_command_from_file(tmp_path):
    """A run on 60,000 rows in three clusters: the sweep runs on the host (N·K·F = 1.1e6
    at K=3, under engines.choose.HOST_SWEEP_WORK) and the final fit at K=3 compiles
    (over HOST_WORK = 2^20); the command line keeps its compiled programs on disk for
    the next process."""
    cfg = tmp_path / "c.toml"
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60_000, 2)) + 20.0 * np.repeat(np.eye(3, 2), 20_000, axis=0)
    np.savetxt(tmp_path / "d.csv", X, delimiter=",", fmt="%.6f")
    cfg.write_text(f'name = "x"\n[data]\npath = "{tmp_path / "d.csv"}"\n'
                   '[sweep]\nn_components = [1, 3]\n')
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "bayesgmm", "run", str(cfg), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert "best BIC: K=3" in r.stdout
    assert (tmp_path / "out" / "clusters.png").exists()
    # the command line keeps compiled programs for the next process (from jaxlib 0.10;
    # under 0.9 it leaves the cache off, quietly: test_compilation has why)
    from bayesgmm.compilation import cache_supported

    cache = tmp_path / "cache" / "bayesgmm" / "jax"
    if not cache_supported():
        assert not cache.exists() and "jaxlib" not in r.stderr, r.stderr
        return
    cached = list(cache.iterdir())
    assert len(cached) >= 2  # the fit's programs; JAX >= 0.10.1 adds a jnp.asarray one


def test_figures_pass_feature_names_where_a_plot_takes_them(tmp_path):
    """The plotting functions gain ``feature_names=`` (and a pairs grid) on another
    branch: the command line passes the names to any plot that takes them, and saves
    the figure a grid plot draws on."""
    from matplotlib.image import imread

    from bayesgmm.cli import _figure

    X = np.random.RandomState(0).normal(size=(30, 3))
    seen = []

    def scatter(X, *, ax=None, feature_names=None):
        seen.append(feature_names)
        ax.scatter(X[:, 0], X[:, 1])
        return ax

    def grid(X, *, feature_names=None):
        import matplotlib.pyplot as plt

        seen.append(feature_names)
        fig, axes = plt.subplots(3, 3, figsize=(6, 6))
        for (i, j), ax in np.ndenumerate(axes):
            ax.scatter(X[:, j], X[:, i], s=2)
        return axes

    _figure(tmp_path / "a.png", scatter, X, names=("a", "b", "c"), title="t")
    _figure(tmp_path / "g.png", grid, X, names=("a", "b", "c"), axes=False)
    assert seen == [["a", "b", "c"], ["a", "b", "c"]]
    for name in ("a.png", "g.png"):
        image = imread(tmp_path / name)
        assert image.shape[0] > 300 and image.std() > 0


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("quiet", [False, True])
def test_sweep_bar_on_a_terminal_unless_quiet(csv_run, quiet):
    """stderr a terminal: the sweep's tqdm bar is drawn there; --quiet silences it (and
    stderr not a terminal, as in every other test, shows no bar)."""
    import fcntl
    import pty
    import struct
    import termios

    tmp_path, cfg, X, y = csv_run
    primary, secondary = pty.openpty()
    # 24 rows x 80 columns: a new pseudo-terminal is 0 wide, where tqdm draws nothing
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    argv = [sys.executable, "-m", "bayesgmm", "fit", str(cfg), "--out", str(tmp_path / "o"),
            NO_CACHE] + (["--quiet"] if quiet else [])
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=secondary, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal is closed once drained
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert r.returncode == 0
    text = seen.decode(errors="replace")
    assert ("sweep:" in text and "fit/s" in text) is not quiet, text
    assert ("wrote:" in text) is not quiet


def test_a_folder_with_files_of_its_own_is_never_replaced(tmp_path, capsys):
    """A project folder holding the config (a name bayesgmm writes) and the user's data
    and notes: --out there is refused before anything is fitted, and nothing is deleted;
    a folder a command wrote is replaced while it holds only what it wrote (its
    manifest), and refused once a file of the user's is added."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "data.csv").write_text("x1,x2\n" + "".join(
        f"{a:.3f},{b:.3f}\n" for a, b in np.random.default_rng(0).normal(size=(40, 2))))
    (proj / "notes.txt").write_text("precious")
    (proj / "config.toml").write_text('[data]\npath = "data.csv"\n[sweep]\nn_components = 2\n')
    before = {p.name: p.read_bytes() for p in proj.iterdir()}
    assert main(["fit", str(proj / "config.toml"), "--out", str(proj), NO_CACHE]) == 2
    err = capsys.readouterr().err.splitlines()
    _assert_one_line_error(err, "holds files bayesgmm did not write (data.csv, notes.txt)",
                           "move them out")
    assert not any(line.startswith("sweep") for line in err)  # refused before fitting
    assert {p.name: p.read_bytes() for p in proj.iterdir()} == before
    out = tmp_path / "out"
    assert main(["fit", str(proj / "config.toml"), "--out", str(out), "--quiet",
                 NO_CACHE]) == 0
    written = set((out / ".bayesgmm-output").read_text().split())
    assert written == {p.name for p in out.iterdir()} - {".bayesgmm-output"}
    assert {"meta.json", "params.npz", "membership.csv"} <= written
    assert main(["fit", str(proj / "config.toml"), "--out", str(out), "--quiet",
                 NO_CACHE]) == 0
    (out / "my-plot.png").write_bytes(b"mine")
    capsys.readouterr()
    assert main(["fit", str(proj / "config.toml"), "--out", str(out), "--quiet",
                 NO_CACHE]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(), "(my-plot.png)")
    assert (out / "my-plot.png").read_bytes() == b"mine"


def test_predict_takes_the_fitted_columns_by_name(tmp_path, capsys):
    """New data whose columns are in another order, or that keeps the label column the
    fit left out, is read by the model's feature names: the labels equal the model's own
    predict on the columns in the fit's order (before: silently other labels, or an
    error about 3 columns)."""
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(0, 1, (30, 2)), rng.normal([6, 2], [1, 3], (30, 2))]
    rows = [f"p{i},{a:.4f},{b:.4f},{int(i >= 30)}\n" for i, (a, b) in enumerate(X)]
    (tmp_path / "d.csv").write_text("id,x1,x2,component\n" + "".join(rows))
    (tmp_path / "c.toml").write_text('[data]\npath = "d.csv"\nid_column = "id"\n'
                                     'label_column = "component"\n[sweep]\n'
                                     'n_components = 2\n[fit]\ncovariance_type = "full"\n')
    out = tmp_path / "m"
    assert main(["fit", str(tmp_path / "c.toml"), "--out", str(out), "--quiet",
                 NO_CACHE]) == 0
    model = load_model(out)
    truth = model.predict(X)
    swapped = "component,x2,id,x1\n" + "".join(
        f"{int(i >= 30)},{b:.4f},p{i},{a:.4f}\n" for i, (a, b) in enumerate(X))
    for name, text in (("same.csv", (tmp_path / "d.csv").read_text()),
                       ("swapped.csv", swapped)):
        (tmp_path / name).write_text(text)
        capsys.readouterr()
        assert main(["predict", str(out), str(tmp_path / name), "--quiet", NO_CACHE]) == 0
        table = list(csv.DictReader(capsys.readouterr().out.splitlines()))
        assert [r["id"] for r in table] == [f"p{i}" for i in range(60)]
        np.testing.assert_array_equal([int(r["label"]) for r in table], truth)
    assert main(["predict", str(out), str(tmp_path / "nope.csv"), NO_CACHE]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(), "nope.csv does not exist",
                           "bayesgmm predict MODEL_DIR DATA")
    (tmp_path / "renamed.csv").write_text(swapped.replace("x1", "y1"))
    assert main(["predict", str(out), str(tmp_path / "renamed.csv"), NO_CACHE]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(), "has no column 'x1'",
                           "fitted on the columns x1, x2")
    for bad, fragment in ((tmp_path / "nodir" / "x.csv", "does not exist"),
                          (tmp_path, "is a folder")):
        assert main(["predict", str(out), str(tmp_path / "d.csv"), "--out", str(bad),
                     NO_CACHE]) == 2
        _assert_one_line_error(capsys.readouterr().err.splitlines(), fragment)


def test_predict_refuses_an_id_index_that_now_points_at_a_feature(tmp_path, capsys):
    """An id column given by index is read by position: new data with the columns in
    another order would have a feature read as the ids; refused, naming the key and the
    fix. The fit's order still predicts."""
    X = _two_blobs(2)
    (tmp_path / "d.csv").write_text("id,x1,x2\n" + "".join(
        f"p{i},{a:.4f},{b:.4f}\n" for i, (a, b) in enumerate(X)))
    (tmp_path / "c.toml").write_text('[data]\npath = "d.csv"\nid_column = 0\n'
                                     '[sweep]\nn_components = 2\n')
    out, table = _fit_then_predict(tmp_path / "c.toml", tmp_path / "d.csv", capsys)
    assert [r["id"] for r in table] == [f"p{i}" for i in range(40)]
    (tmp_path / "moved.csv").write_text("x2,id,x1\n" + "".join(
        f"{b:.4f},p{i},{a:.4f}\n" for i, (a, b) in enumerate(X)))
    assert main(["predict", str(out), str(tmp_path / "moved.csv"), NO_CACHE]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(),
                           "column 0 (id_column = 0", "is 'x2', one of the model's features",
                           "set id_column to the id column's name")


def test_r_and_excel_csv_files_and_one_feature(tmp_path, capsys):
    """R's write.csv quotes the ids, Excel's "CSV UTF-8" starts with a byte-order mark
    (in the config too): the ids are read without their quotes and the first column's
    name without the mark. One feature column fits and draws its figure."""
    x = np.r_[np.linspace(-3, -1, 20), np.linspace(4, 6, 20)]
    (tmp_path / "r.csv").write_text('"id","x1"\n' + "".join(
        f'"r{i}",{v:.4f}\n' for i, v in enumerate(x)), encoding="utf-8-sig")
    (tmp_path / "c.toml").write_text('[data]\npath = "r.csv"\nid_column = "id"\n'
                                     '[sweep]\nn_components = [1, 2]\n',
                                     encoding="utf-8-sig")
    out = tmp_path / "m"
    assert main(["fit", str(tmp_path / "c.toml"), "--out", str(out), "--quiet",
                 NO_CACHE]) == 0
    table = list(csv.DictReader((out / "membership.csv").read_text().splitlines()))
    assert [r["id"] for r in table] == [f"r{i}" for i in range(40)]
    assert load_model(out).n_components == 2
    assert (out / "clusters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_debug_is_never_abbreviated(capsys):
    assert main(["--deb", "fit", "x.toml"]) == 2
    _assert_one_line_error(capsys.readouterr().err.splitlines(),
                           "unrecognized arguments: --deb")


def test_earlier_and_system_files_do_not_block_a_folder(tmp_path):
    """A folder an earlier version wrote for a Bayesian fit (its summary.csv among the
    model files, no manifest) is replaced; so is one where a file browser left its
    .DS_Store; a file of the user's is named."""
    from bayesgmm.cli import CLIError, check_output_folder

    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.toml", "summary.txt", "meta.json", "params.npz", "draws.npz",
                 "idata.nc", "summary.csv", "membership.csv", "trace.png", ".DS_Store"):
        (old / name).write_text("x")
    assert check_output_folder(old) == old.absolute()
    (old / "analysis.R").write_text("mine")
    with pytest.raises(CLIError, match=r"did not write \(analysis.R\)"):
        check_output_folder(old)


def test_predict_by_position_where_names_repeat(tmp_path, capsys):
    """A header that repeats a name (v, v, w) cannot be read by names: predict reads the
    columns by position, as the fit did (by name it read the first v twice)."""
    rng = np.random.default_rng(3)
    X = np.r_[rng.normal(0, 1, (25, 3)), rng.normal(5, 1, (25, 3))]
    (tmp_path / "d.csv").write_text("v,v,w\n" + "".join(f"{a:.4f},{b:.4f},{c:.4f}\n"
                                                         for a, b, c in X))
    (tmp_path / "c.toml").write_text('[data]\npath = "d.csv"\n[sweep]\nn_components = 2\n')
    out = tmp_path / "m"
    assert main(["fit", str(tmp_path / "c.toml"), "--out", str(out), "--quiet",
                 NO_CACHE]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "d.csv"), "--proba", "--quiet",
                 NO_CACHE]) == 0
    proba = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",")
    np.testing.assert_allclose(proba, load_model(out).predict_proba(X), rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("standard_promotion")  # NumPyro's own code is not strict-clean
def test_one_feature_bayes_run_samples_diag(tmp_path, capsys):
    """One feature column with [bayes]: the sweep's full covariance is sampled as diag
    (the same model at D = 1; its LKJ prior has no 1 x 1 form) instead of failing
    after the sweep."""
    x = np.r_[np.linspace(-3, -1, 20), np.linspace(4, 6, 20)]
    (tmp_path / "d.csv").write_text("x\n" + "".join(f"{v:.4f}\n" for v in x))
    (tmp_path / "c.toml").write_text('[data]\npath = "d.csv"\n[sweep]\nn_components = 2\n'
                                     '[bayes]\nmethod = "map"\n')
    out = tmp_path / "m"
    assert main(["fit", str(tmp_path / "c.toml"), "--out", str(out), NO_CACHE]) == 0
    assert "sampling diag, the same model as" in capsys.readouterr().err
    model = load_model(out)
    assert type(model).__name__ == "BayesianGaussianMixture"
    assert model.covariance_type == "diag" and model.n_components == 2


def test_data_in_small_units_warns_once_and_far_means_keep_their_digits(tmp_path, capsys):
    """On data in ten-thousandths the sweep and the chosen fit both meet reg_covar's
    units warning: one line on stderr, naming the fix; on data offset by 1e8 the
    summary's component means keep the digits that tell them apart."""
    rng = np.random.RandomState(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    X = centres[np.repeat([0, 1, 2], 40)] + rng.normal(scale=0.7, size=(120, 2))
    for name, data in (("small", X * 1e-4), ("far", X + 1e8)):
        np.savetxt(tmp_path / f"{name}.csv", data, delimiter=",", header="a,b",
                   comments="", fmt="%.17g")
        (tmp_path / f"{name}.toml").write_text(
            f'name = "{name}"\n[data]\npath = "{name}.csv"\n[sweep]\n'
            'n_components = [1, 4]\ncovariance_types = ["full", "diag"]\n')
    rc, _, err = _fit(["fit", str(tmp_path / "small.toml"), "--out",
                       str(tmp_path / "out_small"), NO_CACHE], capsys)
    assert rc == 0
    scale = [line for line in err if "DataScaleWarning" in line]
    assert len(scale) == 1 and "lower reg_covar to about" in scale[0], err
    rc, _, err = _fit(["fit", str(tmp_path / "far.toml"), "--out",
                       str(tmp_path / "out_far"), NO_CACHE], capsys)
    assert rc == 0 and not any("DataScaleWarning" in line for line in err)
    summary = (tmp_path / "out_far" / "summary.txt").read_text()
    table = summary.split("components (EM):\n")[1].splitlines()[1:4]
    firsts = sorted(float(row.split()[2]) - 1e8 for row in table)
    np.testing.assert_allclose(firsts, [0.0, 0.0, 6.0], atol=0.5)


@pytest.mark.parametrize("name,fragments", [
    ("complex", ["complex.npy holds complex numbers (complex128)", "X.real"]),
    ("objects", ["objects.npy holds Python objects (pickled data), which bayesgmm never "
                 "loads", "numpy.save"]),
    ("text", ["text.npy is not a NumPy .npy file", "never loads", "numpy.save"]),
    ("archive", ["archive.npy is a .npz archive, not one array", "numpy.save"]),
])
def test_npy_files_that_are_not_real_arrays_are_refused(tmp_path, capsys, name, fragments):
    """A .npy of complex numbers (its imaginary part was dropped), of Python objects or
    not a NumPy file at all (NumPy's advice was to load it unsafely, allow_pickle), or
    a .npz archive: one line, exit 2, from sweep as from predict, never that advice."""
    X = np.random.default_rng(0).normal(size=(40, 2))
    save_model(GaussianMixture(2, random_state=0).fit(X), tmp_path / "m")
    path = tmp_path / f"{name}.npy"
    if name == "complex":
        np.save(path, X + 1j * X)
    elif name == "objects":
        np.save(path, X.astype(object), allow_pickle=True)
    elif name == "text":
        path.write_text("1,2\n3,4\n")
    else:
        np.savez(tmp_path / "a.npz", X=X)
        (tmp_path / "a.npz").rename(path)
    (tmp_path / "c.toml").write_text(f'[data]\npath = "{path.name}"\n'
                                     "[sweep]\nn_components = 1\n")
    for argv in (["sweep", str(tmp_path / "c.toml"), "--out", str(tmp_path / "s")],
                 ["predict", str(tmp_path / "m"), str(path)]):
        assert main([*argv, "--quiet", NO_CACHE]) == 2, argv
        out, err = capsys.readouterr()
        assert out == ""
        _assert_one_line_error(err.splitlines(), *fragments)
        assert "allow_pickle" not in err and "pickle.load" not in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("proba", [False, True])
def test_predict_out_in_a_folder_that_cannot_be_written(tmp_path, capsys, proba):
    """--out in a folder no one may write (/proc, even as root): exit 2 before
    predicting, naming the user's path and its folder, not the writer's temporary file."""
    X = np.random.default_rng(0).normal(size=(40, 2))
    save_model(GaussianMixture(2, random_state=0).fit(X), tmp_path / "m")
    np.save(tmp_path / "x.npy", X)
    argv = ["predict", str(tmp_path / "m"), str(tmp_path / "x.npy"), "--out",
            "/proc/p.csv", "--quiet", NO_CACHE] + ["--proba"] * proba
    assert main(argv) == 2
    out, err = capsys.readouterr()
    _assert_one_line_error(err.splitlines(), "cannot write /proc/p.csv: its folder /proc "
                           "is not writable", "choose another --out")
    assert ".writing" not in err and out == ""


def test_a_constant_feature_column_is_refused_naming_it(tmp_path, capsys):
    """A feature column constant in every row would move the model search's choice
    (tests/test_validation.py): `fit` and `sweep` refuse it before any fit, naming the
    column by its header name and the key to change; new data to predict may be
    constant (one row is)."""
    X = _two_blobs(3)
    (tmp_path / "d.csv").write_text("x1,flag,x2\n" + "".join(
        f"{a:.4f},1,{b:.4f}\n" for a, b in X))
    (tmp_path / "all.toml").write_text('[data]\npath = "d.csv"\n[sweep]\nn_components = 2\n')
    (tmp_path / "named.toml").write_text('[data]\npath = "d.csv"\ncolumns = ["x1", "flag"]\n'
                                         '[sweep]\nn_components = 2\n')
    for command, cfg, fix in (("fit", "all.toml", "list the other feature columns in "
                               "[data] columns"),
                              ("sweep", "named.toml", "drop it from [data] columns")):
        assert main([command, str(tmp_path / cfg), "--out", str(tmp_path / command),
                     NO_CACHE]) == 2
        _assert_one_line_error(capsys.readouterr().err.splitlines(),
                               "the feature column 'flag' of", "is constant (1 in every row)",
                               fix)
        assert not (tmp_path / command).exists()
    (tmp_path / "ok.toml").write_text('[data]\npath = "d.csv"\ncolumns = ["x1", "x2"]\n'
                                      '[sweep]\nn_components = 2\n')
    (tmp_path / "one.csv").write_text("x1,flag,x2\n0.5,1,0.25\n")
    assert len(_fit_then_predict(tmp_path / "ok.toml", tmp_path / "one.csv", capsys)[1]) == 1
