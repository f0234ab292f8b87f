"""engines.choose: every work threshold at its boundary (one below, at, one above), the
padding buckets, score padding capped by the fitted size, and bad arguments.

Truth is the documented rule of each threshold, computed here from the work formula
(N·K·F, N·K·D, M·N·K·F, N·(K_pad - K)·F) rather than copied from choose's output."""

import pytest

from bayesgmm.covariance import n_moment_features, ops
from bayesgmm.engines import choose as choose_mod
from bayesgmm.engines.choose import (ENGINES, HOST_DRAW_WORK, HOST_SEEDING_WORK, HOST_WORK,
                                     PAD_BELOW_WORK, PAD_UP_TO, TASKS, Choice, check_engine,
                                     choose)

CT = "full"
D, K = 2, 4
F = n_moment_features(D, ops(CT).full_moments)  # 6: [1, x1, x2, x1², x1x2, x2²]


def test_feature_count_is_the_moments_table_width():
    assert F == 1 + D + D * (D + 1) // 2
    assert n_moment_features(D, ops("diag").full_moments) == 1 + 2 * D


@pytest.mark.parametrize("task", ["fit", "score"])
def test_host_work_boundary_with_the_real_threshold(task):
    """The largest N whose pass N·K·F fits HOST_WORK runs on the host; one more row
    compiles."""
    n_max = HOST_WORK // (K * F)
    assert choose(task, "auto", n_max, K, D, CT).engine == "numpy"
    assert choose(task, "auto", n_max + 1, K, D, CT).engine == "jax"


@pytest.mark.parametrize("task", ["fit", "score"])
def test_host_work_below_at_above(monkeypatch, task):
    monkeypatch.setattr(choose_mod, "HOST_WORK", 1000 * K * F)
    got = [choose(task, "auto", n, K, D, CT) for n in (999, 1000, 1001)]
    assert [c.engine for c in got] == ["numpy", "numpy", "jax"]
    assert got[0].n_padded == got[1].n_padded == K  # the host never pads


def test_user_engine_overrides_the_threshold():
    small, large = 10, 10 * HOST_WORK
    assert choose("fit", "jax", small, K, D, CT).engine == "jax"
    assert choose("fit", "numpy", large, K, D, CT) == Choice("numpy", K)
    assert choose("draws", "numpy", large, K, D, CT, n_draws=100).engine == "numpy"
    assert choose("draws", "jax", small, K, D, CT).engine == "jax"


def test_seeding_boundary_ignores_the_engine(monkeypatch):
    """k-means++ seeding runs on the host while N·K·D <= HOST_SEEDING_WORK, whatever
    the engine (its draws equal the compiled seeding's)."""
    n_max = HOST_SEEDING_WORK // (K * D)
    for engine in ENGINES:
        assert choose("seed", engine, n_max, K, D, CT) == Choice("numpy", K)
        assert choose("seed", engine, n_max + 1, K, D, CT) == Choice("jax", K)
    monkeypatch.setattr(choose_mod, "HOST_SEEDING_WORK", 500 * K * D)
    assert [choose("seed", "jax", n, K, D, CT).engine for n in (499, 500, 501)] == [
        "numpy", "numpy", "jax"]


def test_draws_boundary(monkeypatch):
    """Scoring M draws runs on the host while M·N·K·F <= HOST_DRAW_WORK; compiled, it is
    not padded."""
    M = 8
    n_max = HOST_DRAW_WORK // (M * K * F)
    assert choose("draws", "auto", n_max, K, D, CT, n_draws=M).engine == "numpy"
    assert choose("draws", "auto", n_max + 1, K, D, CT, n_draws=M) == Choice("jax", K)
    monkeypatch.setattr(choose_mod, "HOST_DRAW_WORK", M * 300 * K * F)
    assert [choose("draws", "auto", n, K, D, CT, n_draws=M).engine
            for n in (299, 300, 301)] == ["numpy", "numpy", "jax"]


def _expected_bucket(N, K_, F_):
    """PAD_BELOW_WORK's rule: the next power of two if its waste fits, then larger powers
    of two up to PAD_UP_TO while theirs does; else K itself."""
    waste_ok = lambda p: N * (p - K_) * F_ <= PAD_BELOW_WORK  # noqa: E731
    p = 1
    while p < K_:
        p *= 2
    if not waste_ok(p):
        return K_
    while p < PAD_UP_TO and waste_ok(2 * p):
        p *= 2
    return p


@pytest.mark.parametrize("N,K_", [(300, 1), (300, 3), (300, 20), (300, 32), (300, 33),
                                  (10**6, 5), (10**6, 17), (10**7, 9), (10**8, 3)])
def test_padding_buckets(N, K_):
    got = choose("fit", "jax", N, K_, D, CT).n_padded
    assert got == _expected_bucket(N, K_, F)
    assert got >= K_


def test_padding_bucket_boundaries(monkeypatch):
    """Small data pads every K up to PAD_UP_TO into one program; the waste budget stops
    the doubling one step early, at, and one row late."""
    assert {choose("fit", "jax", 300, k, D, CT).n_padded for k in range(1, 33)} == {PAD_UP_TO}
    assert choose("fit", "jax", 300, 33, D, CT).n_padded == 64  # next power of two only
    N, K_ = 1000, 5
    budget = N * (16 - K_) * F  # exactly the waste of padding 5 -> 16
    for waste, expected in ((budget - 1, 8), (budget, 16), (budget + 1, 16)):
        monkeypatch.setattr(choose_mod, "PAD_BELOW_WORK", waste)
        assert choose("fit", "jax", N, K_, D, CT).n_padded == expected
    monkeypatch.setattr(choose_mod, "PAD_BELOW_WORK", N * (8 - K_) * F - 1)
    assert choose("fit", "jax", N, K_, D, CT).n_padded == K_  # even 8 wastes too much


def test_score_padding_is_capped_by_the_fitted_size():
    """Scoring reuses the fitted programs: never padded beyond the size fitted at."""
    bucket = choose("score", "jax", 300, 3, D, CT).n_padded
    assert bucket == PAD_UP_TO
    assert choose("score", "jax", 300, 3, D, CT, fitted_padded=4).n_padded == 4
    assert choose("score", "jax", 300, 3, D, CT, fitted_padded=1000).n_padded == bucket
    # fitting ignores fitted_padded; on the host nothing pads
    assert choose("fit", "jax", 300, 3, D, CT, fitted_padded=4).n_padded == bucket
    assert choose("score", "numpy", 300, 3, D, CT, fitted_padded=4) == Choice("numpy", 3)


def test_bad_engine_and_task_are_refused():
    with pytest.raises(ValueError, match=r"Invalid value for 'engine': 'gpu'.*'auto'"):
        choose("fit", "gpu", 10, K, D, CT)
    with pytest.raises(ValueError, match="'engine' should be one of"):
        check_engine(None)
    assert check_engine("numpy") == "numpy"
    with pytest.raises(ValueError, match=r"Unknown task 'predict'.*'fit'"):
        choose("predict", "auto", 10, K, D, CT)
    with pytest.raises(ValueError, match="'covariance_type' should be in"):
        choose("fit", "auto", 10, K, D, "banana")
    assert set(TASKS) == {"fit", "score", "seed", "draws"}
