"""Progress while it happens: scikit-learn's ``verbose`` lines, live from inside a compiled
EM loop, and tqdm bars for loops of fits.

Glossary: N samples, D features, K components, R restarts (``n_init``).

Both kinds of report are off by default, in library calls and in tests.

``verbose`` lines (:class:`EMReport`)
    scikit-learn's meaning and words (``sklearn/mixture/_base.py``,
    ``_print_verbose_msg_*``). ``verbose=1``: ``Initialization r`` when an
    initialisation starts, ``  Iteration n`` every ``verbose_interval`` iterations and
    ``Initialization converged.`` (or ``did not converge.``) when it ends.
    ``verbose=2`` adds the seconds since the previous line of that initialisation and
    the change of the lower bound (``ll change``; ``inf`` at the first iteration of a
    fresh fit, whose previous bound is ``-inf``), and the final lower bound. Lines go to
    ``sys.stdout`` (looked up at each line, so pytest's capture and redirections see
    them) and are flushed as they are written.

Live from a compiled fit
    :mod:`bayesgmm.engines.jax` puts a ``jax.debug.callback`` into the body of its EM
    ``while_loop`` only when a report is asked for: a static flag, so the default
    program has no callback in it (``jax.make_jaxpr`` shows none) and runs as fast as
    before. The callback calls :func:`on_iteration` on the host after every iteration;
    that forwards to the report installed by :func:`reporting` around the compiled call
    (one program serves every report: a report is not part of the compiled program).
    The host engine (:mod:`bayesgmm.engines.numpy`) calls the same report from its
    Python loop. Either way each line is printed when its iteration has run, not after
    the fit.

Restarts
    The compiled engine runs the R restarts together (``vmap``), in lockstep: every
    restart is reported, each line naming its initialisation (``  Initialization 2,
    iteration 10 ...``, ``Initialization 2 converged. ...``), rather than a best-so-far
    that could change its mind at every iteration. With one restart, and on the host
    engine (which runs restarts in turn), the lines are scikit-learn's exactly. Small-EM
    (``restart_screen_iter``) reports the screening iterations of every restart and then
    the winner's continuation, headed ``Continuing initialization r`` and numbered on
    from the screening. The refinement of the best restart on all rows after
    ``init_subsample`` (a second run on the same report) is headed ``Refining the best
    initialization on all rows``.

Times
    A line's time lapse is wall time since the previous line of its initialisation (the
    first: since it started), as scikit-learn's. The compiled engine's starts are
    written just before its program is called, so on a program's first use its first
    lapse includes the compilation (as a user waits for it).

Bars (:func:`bar`)
    tqdm on ``sys.stderr``: one tick per (model, K) of :func:`bayesgmm.selection.sweep`,
    one per iteration (a pass over the data) of
    :func:`bayesgmm.engines.jax.fit_stream`. Each caller takes ``progress=True`` (and
    the sweep also turns its bar on with ``verbose > 0``). Anything that loops can use
    :func:`bar` the same way: ``with bar(total, "bootstrap", enabled) as b: ...
    b.update()``.

Nothing here imports JAX.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Iterator, Protocol

__all__ = ["Bar", "bar", "EMReport", "em_report", "reporting", "on_iteration"]


class Bar(Protocol):
    """What :func:`bar` returns: tqdm's own interface, a subset."""

    def update(self, n: int = 1) -> object: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Bar: ...
    def __exit__(self, *exc) -> object: ...


class _NoBar:
    """A bar that shows nothing (``enabled=False``): tqdm is not even imported."""

    def update(self, n: int = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc) -> None:
        return None


def bar(total: int | None, desc: str = "", enabled: bool = False, *,
        unit: str = "it") -> Bar:
    """A progress bar over ``total`` steps, or an object that shows nothing.

    Parameters
    ----------
    total : int or None
        The number of :meth:`update` ticks expected (``None``: unknown, a counter).
    desc : str
        The bar's label.
    enabled : bool, default False
        ``False`` returns a bar that does nothing (the library's default: no output).
    unit : str
        What one tick is, e.g. ``"fit"`` or ``"pass"``.

    Returns
    -------
    Bar
        A ``tqdm.tqdm`` writing to ``sys.stderr``, or its silent stand-in: both have
        ``update(n=1)``, ``set_postfix_str(s)`` and ``close()``, and are context
        managers (closed on exit).
    """
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


class EMReport:
    """scikit-learn's verbose lines for one fit (see the module docstring).

    Parameters
    ----------
    verbose : int
        1: starts, every ``interval``-th iteration and ends; 2 or more: with times, the
        change of the lower bound and the final lower bound.
    interval : int, default 10
        scikit-learn's ``verbose_interval``: iteration ``n`` is reported when
        ``n % interval == 0``.

    The engines call :meth:`start` when an initialisation starts, :meth:`iteration`
    after each counted iteration (a hard start pass from k-means centres is not one)
    and :meth:`end` when it stops; a compiled fit's calls come from JAX's callback
    thread, so each line is written under a lock.
    """

    def __init__(self, verbose: int, interval: int = 10):
        self.verbose = int(verbose)
        self.interval = max(int(interval), 1)
        self._lock = threading.Lock()
        self._labelled: dict[int, bool] = {}
        self._started: dict[int, float] = {}  # restart -> time its initialisation started
        self._last: dict[int, float] = {}  # restart -> time of its last iteration line
        self._ended: set[int] = set()  # restarts whose end line is written

    def start(self, restart: int, labelled: bool = False) -> None:
        """Initialisation ``restart`` starts; ``labelled``: it runs together with
        others (vmapped), so its lines name it."""
        with self._lock:
            again = restart in self._started  # a second run: the refinement
            now = time.perf_counter()
            self._labelled[restart] = labelled
            self._started[restart] = self._last[restart] = now
            self._ended.discard(restart)
            self._write("Refining the best initialization on all rows" if again
                        else f"Initialization {restart}")

    def iteration(self, restart: int, n_iter: int, change: float) -> None:
        """Iteration ``n_iter`` (from 1) of ``restart`` ran; the lower bound changed by
        ``change``."""
        with self._lock:
            if restart in self._ended:  # small-EM: the winner of the screening goes on
                self._ended.discard(restart)
                self._write(f"Continuing initialization {restart}")
            if n_iter % self.interval:
                return
            head = (f"  Initialization {restart}, iteration {n_iter}"
                    if self._labelled.get(restart) else f"  Iteration {n_iter}")
            if self.verbose < 2:
                self._write(head)
                return
            now = time.perf_counter()
            lapse = now - self._last.get(restart, now)
            self._last[restart] = now
            self._write(f"{head}\t time lapse {lapse:.5f}s\t ll change {change:.5f}")

    def end(self, restart: int, lower_bound: float, converged: bool) -> None:
        """``restart`` stopped at ``lower_bound``, converged or not."""
        with self._lock:
            self._ended.add(restart)
            what = "converged" if converged else "did not converge"
            name = f"Initialization {restart}" if self._labelled.get(restart) else (
                "Initialization")
            if self.verbose < 2:
                self._write(f"{name} {what}.")
                return
            now = time.perf_counter()
            lapse = now - self._started.get(restart, now)
            self._write(f"{name} {what}. time lapse {lapse:.5f}s\t lower bound "
                        f"{lower_bound:.5f}.")

    @staticmethod
    def _write(line: str) -> None:
        out = sys.stdout
        out.write(line + "\n")
        out.flush()


def em_report(verbose: int, interval: int = 10) -> EMReport | None:
    """An :class:`EMReport` for ``verbose > 0``, else ``None`` (no report: the engines
    then run their plain programs)."""
    return EMReport(verbose, interval) if verbose and int(verbose) > 0 else None


_ACTIVE: list[EMReport] = []  # the report a compiled fit's callbacks go to (last wins)


@contextlib.contextmanager
def reporting(report: EMReport | None) -> Iterator[None]:
    """Send the compiled EM loop's callbacks (:func:`on_iteration`) to ``report`` while
    the block runs. The block must wait for the compiled call to finish
    (``jax.block_until_ready``): JAX dispatches asynchronously."""
    if report is None:
        yield
        return
    _ACTIVE.append(report)
    try:
        yield
    finally:
        _ACTIVE.remove(report)


def on_iteration(restart, n_iter, change, lower_bound, running, counted, done,
                 converged) -> None:
    """The host side of the compiled loop's callback, after each pass of its body.

    Parameters (NumPy scalars from the device)
    ----------
    restart : int
        Which initialisation.
    n_iter : int
        Its iteration count after this pass.
    change : float
        This iteration's lower bound minus the previous one.
    lower_bound : float
        The lower bound after this pass (the last applied one).
    running : bool
        Whether the pass ran for this restart. Under ``vmap`` the loop body runs for
        every restart until all have stopped; for those already stopped it is False
        and nothing is reported.
    counted : bool
        False for the hard start pass, which is no iteration.
    done : bool
        The loop stops for this restart after this pass.
    converged : bool
    """
    if not _ACTIVE or not bool(running):
        return
    report = _ACTIVE[-1]
    r = int(restart)
    if bool(counted):
        report.iteration(r, int(n_iter), float(change))
    if bool(done):
        report.end(r, float(lower_bound), bool(converged))
