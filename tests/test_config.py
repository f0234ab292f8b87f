"""Run configurations (bayesgmm/config.py) on real TOML files.

Truth: the library's own classes for the keys and defaults a table mirrors
(``bayesgmm.Priors``, ``BayesianGaussianMixture``, ``GaussianMixture``), the README
for the documentation, and the messages issue 18 asked for."""

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from bayesgmm.config import (
    BayesConfig,
    ConfigError,
    DataConfig,
    FitConfig,
    PriorsConfig,
    RunConfig,
    SweepConfig,
    from_dict,
    load_config,
    reference,
    to_toml,
    toml_value,
)

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"top level": RunConfig, "data": DataConfig, "sweep": SweepConfig, "fit": FitConfig,
          "bayes": BayesConfig, "bayes.priors": PriorsConfig}


def test_shipped_config_is_the_default():
    assert load_config(ROOT / "configs" / "blobs.toml") == RunConfig()


@pytest.mark.parametrize("name", ["anisotropic", "iris"])
def test_shipped_configs_load_and_find_their_data(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the data path starts at the config file's folder
    cfg = load_config(ROOT / "configs" / f"{name}.toml")
    assert Path(cfg.data.path).is_file() and Path(cfg.data.path).parent == ROOT / "data"
    assert cfg.name == name
    header = Path(cfg.data.path).read_text().splitlines()[0].split(",")
    assert set(cfg.data.columns) <= set(header)


def test_anisotropic_config_runs_nuts():
    cfg = load_config(ROOT / "configs" / "anisotropic.toml")
    assert cfg.bayes is not None and cfg.bayes.method == "nuts"


def test_readme_lists_every_key_with_its_default():
    text = (ROOT / "configs" / "README.md").read_text()
    assert reference() in text
    rows = {}
    for line in text.splitlines():
        if line.startswith("### "):
            section = line[4:].strip("[]")
        m = re.match(r"\| `(\w+)` \| (.*?) \| (.*?) \|", line)
        if m:
            rows[(section, m.group(1))] = m.group(3)
    for section, cls in TABLES.items():
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default) or (cls is RunConfig and f.name in TABLES):
                continue
            want = "not set" if f.default is None else f"`{toml_value(f.default)}`"
            assert rows[(section, f.name)] == want, (section, f.name)


def test_priors_table_mirrors_bayesgmm_priors():
    from bayesgmm import Priors

    ours = {f.name: f.default for f in dataclasses.fields(PriorsConfig)}
    # the fit sets these from BayesianGaussianMixture's noise, component and df options
    from_options = {"noise_log_extent", "component", "df"}
    theirs = {f.name: f.default for f in dataclasses.fields(Priors)
              if f.name not in from_options}
    assert ours == theirs


def test_priors_table_reaches_bayesgmm_priors():
    """Every [bayes.priors] key, set away from its default, is the Priors the CLI builds."""
    from bayesgmm import Priors

    raw = {"scale_prior": "inverse_gamma", "scale_shape": 3.5, "marginalize_missing": True,
           "lkj_concentration": 4.0}
    cfg = from_dict({"bayes": {"priors": raw}}).bayes.priors
    priors = Priors(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
    assert {k: getattr(priors, k) for k in raw} == raw
    priors.validate(2)  # a prior the model accepts


def test_bayes_and_fit_defaults_are_the_estimators():
    from bayesgmm import BayesianGaussianMixture, GaussianMixture

    bayes = BayesianGaussianMixture().get_params()
    for f in dataclasses.fields(BayesConfig):
        if f.name not in ("interval", "seed", "priors"):
            assert bayes[f.name] == f.default, f.name
    em = GaussianMixture().get_params()
    for name in ("n_init", "tol", "reg_covar", "max_iter", "init_params", "missing"):
        assert em[name] == getattr(FitConfig(), name), name


def test_choices_are_their_owners_tuples():
    """[bayes] method, scale_prior and scale_spread keep literal choices (their owners
    import JAX, which reading a file does not): they equal the owners' tuples, so a value
    added there fails here. component, criterion and missing read their host owners'
    tuples: every value there is accepted and documented."""
    import bayesgmm.robust
    from bayesgmm.bayes import robust as bayes_robust
    from bayesgmm.bayes.inference import METHODS
    from bayesgmm.bayes.model import COMPONENTS, SCALE_PRIORS, SCALE_SPREADS
    from bayesgmm.selection import CRITERIA
    from bayesgmm.validation import MISSING_OPTIONS

    def meta(cls, name):
        return next(f for f in dataclasses.fields(cls) if f.name == name).metadata

    assert meta(BayesConfig, "method")["choices"] == METHODS
    assert meta(PriorsConfig, "scale_prior")["choices"] == SCALE_PRIORS
    assert meta(PriorsConfig, "scale_spread")["choices"] == SCALE_SPREADS
    # the Bayesian model's component families are the host RobustMixture's, read here
    assert COMPONENTS == bayes_robust.COMPONENTS == bayesgmm.robust.COMPONENTS
    read = {("bayes", "component"): COMPONENTS, ("sweep", "criterion"): CRITERIA,
            ("fit", "missing"): MISSING_OPTIONS}
    text = reference()
    for (table, key), owners in read.items():
        for value in owners:
            cfg = from_dict({table: {key: value}})
            assert getattr(getattr(cfg, table), key) == value
        kind = "one of " + ", ".join(toml_value(v) for v in owners)
        assert f"| `{key}` | {kind} |" in text
        with pytest.raises(ConfigError, match=f"{key} must be {kind}, got the string 'x'"):
            from_dict({table: {key: "x"}})


def test_bayes_accepts_exactly_the_bayesian_model_names():
    """[bayes] takes the covariance types bayesgmm.bayes.model samples (MODEL_NAMES) and
    names its canonical ones (MODEL_COVARIANCE_TYPES), from every name in the table."""
    from bayesgmm.bayes.model import MODEL_COVARIANCE_TYPES, MODEL_NAMES
    from bayesgmm.covariance import TABLE

    accepted = []
    for ct in TABLE:
        try:
            from_dict({"bayes": {}, "sweep": {"covariance_types": [ct]}})
        except ConfigError as err:
            assert err.what.startswith(f"[bayes] samples {' or '.join(MODEL_COVARIANCE_TYPES)}"
                                       " covariances"), err.what
        else:
            accepted.append(ct)
    assert tuple(accepted) == MODEL_NAMES


def test_one_integer_is_one_k_and_a_list_is_a_range():
    assert from_dict({"sweep": {"n_components": 5}}).sweep.n_components == (5, 5)
    assert from_dict({"sweep": {"n_components": [2, 7]}}).sweep.n_components == (2, 7)
    assert from_dict({"fit": {"n_components": 5}}).fit.n_components == 5


@pytest.mark.parametrize("raw,message", [
    ({"fit": {"tol": "1e-3"}},
     "[fit] tol must be a number, got the string '1e-3' — write tol = 1e-3 without quotes"),
    ({"bayes": {"n_chains": 2.5}}, "[bayes] n_chains must be an integer, got the number 2.5"),
    ({"fit": {"max_iter": True}}, "[fit] max_iter must be an integer, got the boolean true"),
    ({"sweep": {"covariance_types": "full"}},
     "[sweep] covariance_types must be a list of strings, got the string 'full'"),
    ({"data": {"columns": [1.5]}},
     "[data] columns must be a list of names or indices, got the list [1.5]"),
    ({"sweep": {"n_components": [1, 2, 3]}},
     "[sweep] n_components must be an integer K or a list [low, high] of integers"),
    ({"name": 3}, "name must be a string, got the integer 3"),
    ({"fit": 3}, "[fit] must be a table, got the integer 3"),
    ({"bayes": {"method": "mcmc"}},
     "[bayes] method must be one of \"nuts\", \"map\", \"svi\", got the string 'mcmc'"),
    ({"bayes": {"priors": {"mean_loc": "zero"}}},
     "[bayes.priors] mean_loc must be a number or a list of numbers, got the string 'zero'"),
    ({"bayes": {"priors": {"scale_prior": "gamma"}}},
     "[bayes.priors] scale_prior must be one of \"lognormal\", \"inverse_gamma\", got the "
     "string 'gamma'"),
    ({"bayes": {"priors": {"marginalize_missing": 1}}},
     "[bayes.priors] marginalize_missing must be true or false, got the integer 1"),
    ({"bayes": {"noise": "yes"}}, "[bayes] noise must be true or false, got the string 'yes'"),
    ({"bayes": {"sparse": 1}}, "[bayes] sparse must be true or false, got the integer 1"),
    ({"bayes": {"component": "cauchy"}},
     "[bayes] component must be one of \"gaussian\", \"t\", got the string 'cauchy'"),
    ({"bayes": {"component": "t", "df": "4"}},
     "[bayes] df must be a number, got the string '4' — write df = 4 without quotes"),
    ({"bayes": {"noise_volume": [1.0]}},
     "[bayes] noise_volume must be a string or a number, got the list [1.0]"),
])
def test_wrong_types_are_named(raw, message):
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert str(err.value).startswith(message), str(err.value)
    assert " — " in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("raw,match", [
    ({"fit": {"n_component": 3}}, "Unknown key"),
    ({"sweep": {"n_components": [5, 2]}}, "low <= high"),
    ({"sweep": {"criterion": "mdl"}}, "criterion"),
    ({"fit": {"n_components": "many"}}, "best"),
    ({"fit": {"tol": -1.0}}, r"\[fit\] tol must be >= 0, got -1.0"),
    ({"sweep": {"n_components": 0}}, r"\[sweep\] n_components must be >= 1"),
    ({"fit": {"init_params": "kmean"}}, r"\[fit\] .*init_params.*'kmean'"),
    ({"sweep": {"covariance_types": ["ful"]}}, "unknown covariance type 'ful'"),
    ({"bayes": {}, "fit": {"covariance_type": "tied"}}, r"\[bayes\] samples full or diag"),
    ({"bayes": {"interval": 1.5}}, r"\[bayes\] interval must be in \(0, 1\)"),
    ({"bayes": {"df": 4.0}}, (r"\[bayes\] df = 4.0 fixes the degrees of freedom of t "
                              r"components, but component = \"gaussian\" — set component")),
    ({"bayes": {"component": "t", "df": 0.0}}, r"\[bayes\] df must be > 0, got 0.0"),
    ({"bayes": {"noise_volume": "cube"}},
     r"\[bayes\] noise_volume must be one of \"box\", \"hypvol\", \"hull\" or a number"),
    ({"bayes": {"noise_volume": -2.0}}, r"\[bayes\] noise_volume must be a volume > 0"),
    ({"bayes": {}, "fit": {"covariance_type": "EEE"}},
     (r"\[bayes\] samples full or diag covariances \(mclust's VVI, VVV\), but the fit may "
      r"choose 'EEE'")),
    ({"name": "a/b"}, "plain folder name"),
    ({"fit": {"missing": "drop"}},
     r"\[fit\] missing must be one of \"error\", \"marginalize\", got the string 'drop'"),
])
def test_config_errors(raw, match):
    with pytest.raises(ValueError, match=re.compile(match, re.IGNORECASE)):
        from_dict(raw)


def test_bayes_takes_mclust_names_and_the_messy_data_options():
    """The sweep names mclust's models: VVV and VVI are the Bayesian model's full and
    diag, so [bayes] accepts them; noise, component, df and sparse are read as given
    and written back by to_toml."""
    raw = {"sweep": {"covariance_types": ["VVV", "VVI"]}, "fit": {"covariance_type": "VVI"},
           "bayes": {"noise": True, "noise_volume": 2.5, "component": "t", "df": 4,
                     "sparse": True}}
    cfg = from_dict(raw)
    b = cfg.bayes
    assert (b.noise, b.noise_volume, b.component, b.df, b.sparse) == (True, 2.5, "t", 4.0,
                                                                        True)
    assert isinstance(b.df, float) and from_dict(tomllib.loads(to_toml(cfg))) == cfg
    hull = from_dict({"bayes": {"noise": True, "noise_volume": "hull"}})
    assert hull.bayes.noise_volume == "hull"
    d = from_dict({"bayes": {}}).bayes
    assert (d.noise, d.noise_volume, d.component, d.df, d.sparse) == (False, "box", "gaussian",
                                                                        None, False)


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        from_dict({"fit": {"n_component": 3, "tolerance": 1}})
    what, fix = str(err.value).split(" — ")
    assert what == "unknown keys n_component, tolerance in [fit]"
    assert fix == "valid keys: " + ", ".join(sorted(f.name for f in
                                                     dataclasses.fields(FitConfig)))
    with pytest.raises(ConfigError, match="now path"):
        from_dict({"data": {"source": "x.csv"}})
    with pytest.raises(ConfigError, match="header row is detected"):
        from_dict({"data": {"skip_header": 1}})


def test_relative_path_resolves_against_the_config_folder(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "run.toml").write_text('[data]\npath = "../d.csv"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(tmp_path / "cfg" / "run.toml").data.path == str(tmp_path / "d.csv")
    assert (load_config(Path("..") / "cfg" / "run.toml").data.path
            == str(tmp_path / "d.csv"))


def test_toml_round_trip_of_every_table(tmp_path):
    cfg = from_dict({
        "name": "x", "data": {"path": "/d.csv", "columns": ["a", 2], "id_column": 0,
                              "header": True, "delimiter": ";"},
        "sweep": {"n_components": 3, "covariance_types": ["full", "diag"],
                  "criterion": "icl"},
        "fit": {"n_components": 3, "tol": 1e-4},
        "bayes": {"method": "svi", "priors": {"mean_loc": [0, 1.5], "mean_scale": 2}}})
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    assert load_config(tmp_path / "c.toml") == cfg
    assert cfg.bayes.priors.mean_loc == (0.0, 1.5) and cfg.bayes.priors.mean_scale == 2.0


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"no configuration file at .*nope\.toml"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[fit]\ntol = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML: .*line 2"):
        load_config(bad)


def test_covariance_types_all_is_mclusts_14(tmp_path):
    """As sweep(..., "all"): the string "all" is mclust's 14 models in its order."""
    from bayesgmm.selection import all_covariance_types

    (tmp_path / "c.toml").write_text('[sweep]\ncovariance_types = "all"\n')
    types = load_config(tmp_path / "c.toml").sweep.covariance_types
    assert types == tuple(all_covariance_types()) and len(types) == 14
    (tmp_path / "c.toml").write_text('[sweep]\ncovariance_types = "full"\n')
    with pytest.raises(ConfigError, match="covariance_types must be a list of strings"):
        load_config(tmp_path / "c.toml")


def test_a_config_of_your_data_without_a_name_is_named_by_its_file(tmp_path):
    """Without ``name``, a config of the user's data writes models/<its file's name>/,
    not the demo's models/blobs/ (which it replaced before); the demo keeps blobs."""
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "penguins.toml").write_text('[data]\npath = "d.csv"\n')
    assert load_config(tmp_path / "penguins.toml").name == "penguins"
    (tmp_path / "named.toml").write_text('name = "mine"\n[data]\npath = "d.csv"\n')
    assert load_config(tmp_path / "named.toml").name == "mine"
    (tmp_path / "demo.toml").write_text("[sweep]\nn_components = [1, 3]\n")
    assert load_config(tmp_path / "demo.toml").name == "blobs"
