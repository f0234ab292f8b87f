"""MAP's optimiser: :func:`bayesgmm.bayes.inference.fit_map` (optax's Adam, decaying step
size, in one compiled ``lax.scan``) against the hand-written Adam loop it replaced (the
same arithmetic, replicated here) and optax's L-BFGS (zoom line search), on the same
potential, start and program layout.

    python benchmarks/map.py [--repeat N]   # cold times: the best of N fresh processes (3)

For each data set, dtype and optimiser: the final log posterior (higher is better; the
same model, so comparable within a row group), the steps taken, the step after which
the log density stayed within 1e-3 of its final value ("settled"), and the wall time of
``fit``'s MAP call cold (compilation included, a fresh process) and warm (the compiled
program reused on the same shapes), each with the process's CPU time beside it (on a
shared machine the CPU time moves less with the other processes' load). Data: the seed blobs (300 x 2, K=4, full) and a
harder set (2000 x 5, six overlapping blobs, K=6, full).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import _common  # noqa: F401
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from bayesgmm import GaussianMixture
from bayesgmm.bayes.inference import fit_map
from bayesgmm.bayes.inference.target import (bound_model, constrained, flat_potential,
                                             init_sites, unconstrained)
from bayesgmm.bayes.model import Priors
from bayesgmm.compilation import jit
from bayesgmm.datasets import make_blobs
from bayesgmm.validation import compute_scope

DATA = {
    "seed blobs 300x2 K=4": lambda: (make_blobs(n_samples=300, centers=4, cluster_std=0.60,
                                                random_state=0)[0], 4),
    "overlap 2000x5 K=6": lambda: (make_blobs(n_samples=2000, n_features=5, centers=6,
                                              cluster_std=2.5, random_state=3)[0], 6),
}
VARIANTS = ("handwritten adam", "fit_map (optax adam)", "optax lbfgs")


def handwritten_adam(lr0, lr1, n_steps):
    """The loop bayesgmm ran before optax, as a GradientTransformation (same arithmetic:
    Adam with bias correction, step size lr0 · decay^(t+1))."""
    decay = (lr1 / lr0) ** (1.0 / n_steps)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def init(f):
        return (jnp.zeros_like(f), jnp.zeros_like(f), jnp.zeros((), jnp.int32))

    def update(g, state, params=None):
        m, v, t = state
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        tt = (t + 1).astype(g.dtype)
        mhat, vhat = m / (1 - b1**tt), v / (1 - b2**tt)
        return -lr0 * decay**tt * mhat / (jnp.sqrt(vhat) + eps), (m, v, t + 1)

    return optax.GradientTransformation(init, update)


def make_runner(model, variant: str, n_steps: int):
    def run(X, init, lr0, lr1):
        z0 = unconstrained(model, X, init_sites(init, model, X.dtype))
        flat0, unravel = ravel_pytree(z0)
        loss = flat_potential(model, X, unravel)
        if variant == "handwritten adam":
            opt = handwritten_adam(lr0, lr1, n_steps)
        elif variant == "optax adam":
            decay = (lr1 / lr0) ** (1.0 / n_steps)
            opt = optax.adam(lambda count: lr0 * decay ** (count + 1).astype(lr0.dtype))
        else:
            opt = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(loss) if variant == "optax lbfgs" \
            else jax.value_and_grad(loss)

        def step(carry, _):
            f, state = carry
            value, g = value_and_grad(f, state=state) if variant == "optax lbfgs" \
                else value_and_grad(f)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            updates, state = opt.update(g, state, f, value=value, grad=g, value_fn=loss) \
                if variant == "optax lbfgs" else opt.update(g, state, f)
            return (optax.apply_updates(f, updates), state), value

        (f, _), trace = jax.lax.scan(step, (flat0, opt.init(flat0)), None, length=n_steps)
        return constrained(model, X, unravel(f)), jnp.concatenate([trace, loss(f)[None]])

    return jit(run)


def child(name: str, dtype: str, variant: str) -> None:
    X, K = DATA[name]()
    X = X.astype(dtype)
    gm = GaussianMixture(K, random_state=0).fit(X)
    priors = Priors().resolve(X)
    n_steps = 100 if variant == "optax lbfgs" else 800
    with compute_scope(X.dtype):
        model = bound_model(K, "full", priors)
        init = jax.tree_util.tree_map(np.asarray, gm.params_.astype(X.dtype))
        lr = (np.asarray(0.05, X.dtype), np.asarray(1e-3, X.dtype))
        out, runner = {}, None
        for label in ("cold", "warm"):
            t, cpu = time.perf_counter(), time.process_time()
            if variant.startswith("fit_map"):
                info = fit_map(jax.random.PRNGKey(0), X, init, n_components=K, priors=priors,
                               n_steps=n_steps).info
                lp = np.asarray(info.log_density, np.float64)
            else:
                runner = runner or make_runner(model, variant, n_steps)
                lp = -np.asarray(jax.device_get(runner(X, init, *lr))[1], np.float64)
            out[label] = time.perf_counter() - t
            out[label + " cpu"] = time.process_time() - cpu
        # the step at which the log density got within 1e-3 of its final value
        within = np.flatnonzero(np.abs(lp - lp[-1]) > 1e-3)
        out.update(lp=float(lp[-1]), n_steps=n_steps,
                   settled=int(within[-1] + 1) if within.size else 0)
    print(json.dumps(out))


def main():
    if {"-h", "--help"} & set(sys.argv[1:]):  # the module's docstring is its usage
        print(__doc__)
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        return child(*sys.argv[2:])
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    print(f"machine: {_common.machine()}\n")
    print(f"{'data':22} {'dtype':8} {'optimiser':20} {'final log post':>15} {'steps':>6} "
          f"{'settled':>8} {'cold s':>7} {'cpu s':>6} {'warm s':>7} {'cpu s':>6}")
    for name in DATA:
        for dtype in ("float64", "float32"):
            for variant in VARIANTS:
                runs = [subprocess.run([sys.executable, __file__, "--child", name, dtype,
                                        variant], capture_output=True, text=True)
                        for _ in range(repeat)]
                if any(r.returncode for r in runs):
                    print(f"{name:22} {dtype:8} {variant:20} failed: {runs[0].stderr[-300:]}")
                    continue
                outs = [json.loads(r.stdout.split("\n")[-2]) for r in runs]
                o = dict(outs[0], **{k: min(x[k] for x in outs)
                                     for k in ("cold", "warm", "cold cpu", "warm cpu")})
                print(f"{name:22} {dtype:8} {variant:20} {o['lp']:>15.4f} {o['n_steps']:>6} "
                      f"{o['settled']:>8} {o['cold']:>7.2f} {o['cold cpu']:>6.2f} {o['warm']:>7.3f} "
                      f"{o['warm cpu']:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
