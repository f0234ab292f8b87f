"""bayesgmm.progress: verbose lines live from both engines, and tqdm bars.

Truth: scikit-learn's own verbose output from the same start (the same lines, times
aside); each fit's lower-bound history (FitInfo.history, ``lower_bounds_``); the
compiled program itself (``jax.make_jaxpr``: a callback only when asked for); the
clock (the first line is written long before a long fit returns); tqdm's counter."""

import re
import sys
import time
import warnings

import jax
import numpy as np
import pytest
from conftest import in_scope
from sklearn.mixture import GaussianMixture as SkGM

from bayesgmm import GaussianMixture, progress
from bayesgmm.engines import jax as compiled
from bayesgmm.engines import numpy as host
from bayesgmm.initialize import params_from_centers
from bayesgmm.progress import EMReport
from bayesgmm.selection import sweep

ENGINES = {"numpy": host, "jax": compiled}
ITERATION = re.compile(r"^  (?:Initialization (\d+), i|I)teration (\d+)\t time lapse "
                       r"[0-9.]+s\t ll change (\S+)$")
END = re.compile(r"^Initialization(?: (\d+))? (converged|did not converge)\. time lapse "
                 r"[0-9.]+s\t lower bound (\S+)\.$")
HEAD = re.compile(r"^(?:Initialization|Continuing initialization) (\d+)$")


def _parsed(out: str, pattern) -> list[tuple]:
    """(restart, *fields) of every line ``pattern`` matches; an unlabelled line belongs
    to the last ``Initialization r`` heading (the host engine runs restarts in turn)."""
    rows, current = [], 0
    for line in out.splitlines():
        if head := HEAD.match(line):
            current = int(head[1])
        elif m := pattern.match(line):
            rows.append((current if m[1] is None else int(m[1]), *m.groups()[1:]))
    return rows


def _iterations(out: str) -> list[tuple[int, int, float]]:
    """(restart, iteration, ll change) of every iteration line."""
    return [(r, int(n), float(c)) for r, n, c in _parsed(out, ITERATION)]


def _ends(out: str) -> list[tuple[int, bool, float]]:
    return [(r, what == "converged", float(lb)) for r, what, lb in _parsed(out, END)]


def _without_times(out: str) -> str:
    return re.sub(r"time lapse [0-9.]+s", "time lapse <t>", out)


def _changes(history, n_iter, interval, start=-np.inf):
    """The (iteration, change) pairs a report with ``interval`` prints, from a history."""
    h = np.asarray(history[:n_iter], np.float64)
    change = np.diff(np.concatenate([[start], h]))
    return [(n, change[n - 1]) for n in range(1, n_iter + 1) if n % interval == 0]


def _sk_start(X, K, ct="full"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = SkGM(K, covariance_type=ct, random_state=0, max_iter=1).fit(X)
    return dict(weights_init=s.weights_, means_init=s.means_, precisions_init=s.precisions_)


@pytest.mark.parametrize("engine", ["numpy", "jax"])
@pytest.mark.parametrize("verbose", [1, 2])
def test_verbose_lines_are_sklearns(datasets, capsys, engine, verbose):
    """From scikit-learn's start, in float64: the same lines as scikit-learn's
    verbose output (start, every second iteration with its lower-bound change, end
    with the lower bound), times aside."""
    X = datasets["aniso"]
    kw = dict(n_components=3, tol=1e-6, verbose=verbose, verbose_interval=2,
              **_sk_start(X, 3))
    SkGM(**kw).fit(X)
    theirs = capsys.readouterr().out
    with in_scope(np.float64):
        gm = GaussianMixture(engine=engine, **kw).fit(X)
    ours = capsys.readouterr().out
    assert gm.n_iter_ > 4  # several lines to compare
    assert _without_times(ours) == _without_times(theirs)
    if verbose == 2:
        np.testing.assert_allclose(
            _iterations(ours), [(0, n, c) for n, c in _changes(gm.lower_bounds_, gm.n_iter_, 2)],
            rtol=0, atol=1e-5)
        np.testing.assert_allclose(_ends(ours), [(0, True, gm.lower_bound_)], rtol=0,
                                   atol=1e-5)


@pytest.mark.parametrize("engine", ["numpy", "jax"])
def test_warm_start_lines_are_sklearns(datasets, capsys, engine):
    """warm_start: the second fit's first change is measured from the first fit's lower
    bound, in the lines as in scikit-learn's."""
    X = datasets["aniso"]
    kw = dict(n_components=3, warm_start=True, max_iter=2, verbose=2, verbose_interval=1,
              **_sk_start(X, 3))
    outs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=2 may stop short of convergence
        for model in (SkGM(**kw), GaussianMixture(engine=engine, **kw)):
            with in_scope(np.float64):
                model.fit(X)
                model.fit(X)
            outs.append(_without_times(capsys.readouterr().out))
    assert outs[0].count("Initialization 0") == 2
    assert outs[1] == outs[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", ["numpy", "jax"])
def test_every_restart_reported_as_its_history(blobs, capsys, engine, dtype):
    """Engine level, 3 restarts from k-means centres (a hard first pass, which is no
    iteration): each restart's lines, in order, give its iterations and lower-bound
    changes as in its FitInfo.history, and its end line its lower bound. The compiled
    engine runs them together, so its lines name the restart."""
    X = blobs[0].astype(dtype)
    centers = np.stack([X[[0, 50, 100, 150]], X[[1, 2, 3, 4]], X[[10, 90, 190, 290]]])
    start = params_from_centers(centers, 4, "full")
    with in_scope(dtype):
        _, _, infos = ENGINES[engine].fit_restarts(X, start, tol=1e-5, max_iter=60,
                                                   hard_start=True, report=EMReport(2, 3))
    out = capsys.readouterr().out
    lines = _iterations(out)
    rtol = 1e-5 if dtype == np.float32 else 1e-9
    for r in range(3):
        n = int(infos.n_iter[r])
        mine = [(i, c) for q, i, c in lines if q == r]
        expected = _changes(infos.history[r], n, 3)
        assert [i for i, _ in mine] == [i for i, _ in expected], r
        np.testing.assert_allclose([c for _, c in mine], [c for _, c in expected],
                                   rtol=rtol, atol=1e-5)
        (end,) = [e for e in _ends(out) if e[0] == r]
        assert end[1] == bool(infos.converged[r])
        assert end[2] == pytest.approx(float(infos.lower_bound[r]), abs=1e-5)
    heads = [line for line in out.splitlines() if HEAD.match(line)]
    assert heads == [f"Initialization {r}" for r in range(3)]
    labelled = "  Initialization 1, iteration 3\t" in out
    assert labelled == (engine == "jax")


def test_small_em_reports_the_screening_then_the_winner(blobs, capsys):
    """restart_screen_iter: every restart's screening iterations, then the winner's,
    headed and numbered on; the compiled and host engines report the same
    iterations. On these data the three k-means starts reach one optimum, so their
    screened lower bounds tie to round-off and which restart wins depends on the last
    bits of the BLAS in use (on an AVX-512 machine the two engines picked different
    ones): each engine's winner must be among the best screened, and the engines must
    agree on every restart's screening and on the winner's continuation."""
    X = blobs[0]
    out = {}
    for engine in ("numpy", "jax"):
        with in_scope(np.float64):
            gm = GaussianMixture(4, n_init=3, restart_screen_iter=2, tol=1e-8, verbose=2, init_params="kmeans",
                                 verbose_interval=1, random_state=1, engine=engine).fit(X)
        text = capsys.readouterr().out
        out[engine] = _iterations(text)
        winner = out[engine][-1][0]
        assert f"Continuing initialization {winner}" in text.splitlines()
        assert [i for q, i, _ in out[engine] if q == winner] == list(range(1, gm.n_iter_ + 1))
        for r in set(range(3)) - {winner}:
            assert [i for q, i, _ in out[engine] if q == r] == [1, 2]
        screened = {r: lb for r, converged, lb in _ends(text)[:3]}
        assert screened[winner] == max(screened.values()), screened
    # the continuation's lines under one label, whichever restart won
    same = lambda rows: sorted((q if i <= 2 else -1, i, c) for q, i, c in rows)  # noqa: E731
    np.testing.assert_allclose(same(out["numpy"]), same(out["jax"]), rtol=0, atol=1e-5)


def test_init_subsample_refinement_is_headed(capsys):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(3000, 2)) + c for c in ([0, 0], [6, 0])])
    GaussianMixture(2, init_subsample=500, verbose=1, verbose_interval=1, random_state=0,
                    engine="numpy").fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Initialization 0"
    assert "Refining the best initialization on all rows" in lines
    assert lines[-1] == "Initialization converged."


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", ["numpy", "jax"])
def test_verbose_changes_no_result(capsys, engine, dtype):
    """The reporting program (or loop) computes what the plain one does, bit for bit:
    a plain fit and small-EM (vmapped screening, then one restart), float32 and
    float64."""
    X = np.random.default_rng(0).normal(size=(3000, 3)).astype(dtype)
    for kw in (dict(), dict(n_init=3, restart_screen_iter=2)):  # vmapped, then not
        fits = [GaussianMixture(4, engine=engine, random_state=0, max_iter=15, verbose=v,
                                verbose_interval=1, **kw).fit(X) for v in (0, 2)]
        for name in ("weights_", "means_", "covariances_", "lower_bounds_", "n_iter_"):
            np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
    assert "teration 2\t time lapse" in capsys.readouterr().out


@pytest.mark.parametrize("engine", ["numpy", "jax"])
def test_silent_by_default(blobs, capfd, engine):
    """verbose=0 (the default), a sweep and a streamed fit without progress: nothing on
    stdout or stderr, from Python or from the compiled program."""
    X = blobs[0]
    GaussianMixture(4, n_init=2, random_state=0, engine=engine).fit(X)
    sweep(X, [1, 2], random_state=0, engine=engine)
    assert capfd.readouterr() == ("", "")


def test_no_callback_in_the_default_program(blobs):
    """The callback is in the EM program only when a report is asked for: in the
    traced program (``jax.make_jaxpr``) and in the entry points' lowered programs."""
    X = blobs[0]
    batch = params_from_centers(X[None, :4], 4, "full")
    one = params_from_centers(X[:4], 4, "full")
    args = (None, 1e-3, 1e-6, 5, None)  # sample_weight, tol, reg_covar, max_iter, chunk
    jaxpr = {}
    lowered = {}
    with in_scope(np.float64):
        for report in (False, True):
            jaxpr[report] = [
                str(jax.make_jaxpr(lambda x, p: compiled._fit(x, p, *args, report=report))(
                    X, one)),
                str(jax.make_jaxpr(lambda x, p: compiled._fit_restarts(
                    x, p, *args, report=report)[0].means)(X, batch))]
            kw = dict(max_iter=5, chunk_size=None, report=report)
            lowered[report] = [
                compiled._fit_jit.lower(X, one, None, 1e-3, 1e-6, **kw).as_text(),
                compiled._fit_restarts_jit.lower(X, batch, None, 1e-3, 1e-6, **kw).as_text()]
    for text in jaxpr[False] + lowered[False]:
        assert "while" in text and "callback" not in text  # the loop, without it
    for text in jaxpr[True]:
        assert "debug_callback" in text
    for text in lowered[True]:
        assert "callback" in text


def test_lines_are_live(capsys, monkeypatch):
    """A compiled fit of ~1-2 s (programs compiled beforehand): the first iteration's
    line is written long before the fit returns, and the lines come spread over the
    fit, not at its end."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200_000, 8)).astype(np.float32)
    start = params_from_centers(X[:16], 16, "full")
    run = lambda report, n: compiled.fit(X, start, tol=0.0, max_iter=n,  # noqa: E731
                                         report=report)
    with in_scope(np.float32):
        jax.block_until_ready(run(EMReport(2, 1), 30))  # compile
        t0 = time.perf_counter()
        jax.block_until_ready(run(None, 30))
        plain = time.perf_counter() - t0
    capsys.readouterr()

    stamps = []

    class Clocked:
        def write(self, s):
            stamps.append((time.perf_counter(), s))

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Clocked())
    with in_scope(np.float32):
        t0 = time.perf_counter()
        _, info = run(EMReport(2, 1), 30)
        t1 = time.perf_counter()
    monkeypatch.undo()
    lines = [(t, s) for t, s in stamps if s.startswith("  Iteration")]
    assert len(lines) == int(info.n_iter) == 30
    first, last = lines[0][0], lines[-1][0]
    assert t1 - t0 > 0.3, "the fit is too short to tell live from buffered"
    assert first - t0 < 0.5 * (t1 - t0), (first - t0, t1 - t0, plain)
    assert last - first > 0.5 * (t1 - t0), (last - first, t1 - t0)


def test_sweep_bar(blobs, capfd):
    """progress=True: a tqdm bar on stderr ticking once per (covariance type, K), and
    the same table as without it; verbose > 0 turns it on too."""
    X = blobs[0]
    kw = dict(n_components=[1, 2, 3], covariance_types=("full", "diag"), random_state=0)
    quiet = sweep(X, **kw)
    capfd.readouterr()
    shown = sweep(X, progress=True, **kw)
    out, err = capfd.readouterr()
    assert out == "" and "sweep" in err and "6/6" in err
    for key in ("bic", "aic", "icl", "lower_bound", "n_iter", "best"):
        np.testing.assert_array_equal(shown[key], quiet[key])
    sweep(X, verbose=1, **kw)
    assert "6/6" in capfd.readouterr().err


def test_fit_stream_bar(blobs, capfd):
    """fit_stream(progress=True): one tick per pass over the data, same fit."""
    X = blobs[0]
    start = params_from_centers(X[:4], 4, "full")
    with in_scope(np.float64):
        a, ia = compiled.fit_stream(X, start, tol=0.0, max_iter=7, chunk_size=128)
        capfd.readouterr()
        b, ib = compiled.fit_stream(X, start, tol=0.0, max_iter=7, chunk_size=128,
                                    progress=True)
    err = capfd.readouterr().err
    assert "streamed EM" in err and "7/7" in err and "3 blocks" in err
    np.testing.assert_array_equal(np.asarray(a.means), np.asarray(b.means))
    np.testing.assert_array_equal(ia.history, ib.history)


def test_bar_interface(capfd):
    """progress.bar: update/close and a context manager, silent when disabled."""
    with progress.bar(3, "work", enabled=False) as b:
        for _ in range(3):
            b.update()
    b.close()
    assert capfd.readouterr() == ("", "")
    with progress.bar(4, "work", enabled=True, unit="draw") as b:
        b.update(2)
        b.update()
        b.update(n=1)
    err = capfd.readouterr().err
    assert "work" in err and "4/4" in err and "draw" in err
    b = progress.bar(None, "count", enabled=True)
    b.update(5)
    b.close()
    assert "5" in capfd.readouterr().err


def test_em_report_validation():
    assert progress.em_report(0) is None
    assert isinstance(progress.em_report(2, 5), EMReport)
    with pytest.raises(ValueError, match="verbose_interval"):
        GaussianMixture(2, verbose=1, verbose_interval=0).fit(np.eye(4))
