"""The batched training loop: R restarts as one array program.

Every parameter leaf carries a leading restart axis, losses return one value
per restart and their sum is differentiated once (restarts do not interact,
so each restart's gradient is its own). A restart whose loss, gradient or
new parameters are not finite is marked diverged and frozen; the others go
on. Validation keeps, per restart, the parameters its own objective prefers
(docs/theory.md (T.48)).

* :class:`RestartState`: everything per restart, one tree of (R, ...) arrays.
* :class:`BatchedRun`: steps and validates it.
* :class:`Schedule`, :func:`train_epochs`: the epoch loop every trainer uses.
"""
import copy
from typing import Any, NamedTuple

import autograd.numpy as anp
import numpy as np
from autograd import grad
from autograd.tracer import getval
from tqdm.auto import tqdm

from analysis import checks

from ..core._flat import TreeDef
from ..core.trees import n_restarts, tree_leaves, tree_map, tree_take, tree_where


class AllRestartsDiverged(RuntimeError):
    """Raised when no restart of a fit stayed finite."""


def select_restart(objective, diverged, failure="restarts diverged"):
    """The restart to keep: the lowest finite ``objective`` (R,) among those not ``diverged``.

    Raises :class:`AllRestartsDiverged` ("all R <failure>") when there is none.
    Ties go to the first restart.
    """
    candidates = np.where(~diverged & np.isfinite(objective), objective, np.inf)
    if not np.any(np.isfinite(candidates)):
        raise AllRestartsDiverged(f"all {np.size(objective)} {failure}")
    return int(np.argmin(candidates))


def restart_streams(seed, restarts, n_streams=3):
    """Independent generators per restart: ``n_streams`` for each of ``restarts``.

    Restart r draws from ``SeedSequence(seed).spawn(...)[r]`` whatever the
    number of restarts beside it, so a batched fit reproduces single fits.
    """
    children = np.random.SeedSequence(seed).spawn(restarts)
    return [[np.random.default_rng(s) for s in child.spawn(n_streams)] for child in children]


class NoiseStream:
    """Standard normal draws of ``shape`` per restart, one block per call.

    Blocks are drawn ahead in chunks of several epochs (one generator call
    per restart and chunk, not per epoch), each restart from its own stream.
    """

    def __init__(self, rngs, shape, max_entries=2_000_000):
        self.rngs, self.shape = rngs, tuple(shape)
        per_epoch = len(rngs) * int(np.prod(self.shape))
        self.chunk = int(max(1, min(100, max_entries // max(per_epoch, 1))))
        self._buffer, self._i = None, 0

    def next(self):
        if self._buffer is None or self._i == self.chunk:
            self._buffer = np.stack([g.standard_normal((self.chunk,) + self.shape) for g in self.rngs], axis=1)
            self._i = 0
        self._i += 1
        return self._buffer[self._i - 1]


def fixed_noise(rngs, shape):
    """One fixed block (R, *shape): common random numbers for validation."""
    return np.stack([g.standard_normal(shape) for g in rngs])


class Checkpoint(NamedTuple):
    """Per restart: a validation value, the epoch it was reached at and the parameters then.

    Attributes
    ----------
    value : ndarray (R,)
    epoch : ndarray (R,) of int
        -1 where nothing was validated yet.
    flat : dict or tuple
        ``{part: (R, P)}`` flat parameters; ``()`` where only the value and
        the epoch count (the stopping rule's reference).
    """
    value: np.ndarray
    epoch: np.ndarray
    flat: Any = ()


class RestartState(NamedTuple):
    """Everything a :class:`BatchedRun` holds per restart: one tree, each leaf with a leading axis R.

    Being one tree, the state of some restarts is ``tree_take(state, index)``
    and updating some restarts only is one ``tree_where`` (or ``tree_map``
    of ``np.where``) over the fields concerned: no field is copied by hand,
    so a field added here cannot be forgotten by :meth:`BatchedRun.subset`.

    Attributes
    ----------
    flat : dict
        ``{part: (R, P)}`` the current parameters (``training.core._flat``).
    opt_state : dict
        ``{part: optimizer state}``, leaves (R, P).
    best : Checkpoint
        The validation-best value, its epoch and those parameters.
    kept : Checkpoint
        The latest validated within ``near_best`` of the best (see :class:`BatchedRun`).
    reference : Checkpoint
        The stopping rule's reference: the value and epoch of the last fall
        by more than ``tol`` (no parameters).
    diverged, stopped : ndarray (R,) of bool
    epochs_run : ndarray (R,) of int
    ended_at : ndarray (R,) of int
        The epoch a restart stopped or diverged (-1: still running).
    hold_until : ndarray (R,)
        The stopping rule's patience counts from this epoch on.
    train_history, val_history : list of ndarray (R,)
        One entry per recorded step and per validation (they grow by append).

    Examples
    --------
    >>> from training.core.optim import adam
    >>> from training.core.trees import tree_take
    >>> state = RestartState.start({"theta": np.arange(6.0).reshape(3, 2)}, adam())
    >>> part = tree_take(state, np.array([2]))
    >>> part.flat["theta"].tolist(), part.best.epoch.tolist(), part.opt_state["theta"]["t"].shape
    ([[4.0, 5.0]], [-1], (1, 2))
    """
    flat: dict
    opt_state: dict
    best: Checkpoint
    kept: Checkpoint
    reference: Checkpoint
    diverged: np.ndarray
    stopped: np.ndarray
    epochs_run: np.ndarray
    ended_at: np.ndarray
    hold_until: np.ndarray
    train_history: list
    val_history: list

    @classmethod
    def start(cls, flat, optimizer, hold_until=0, diverged=None):
        """The state before the first epoch: ``flat`` parameters ``{part: (R, P)}``, fresh optimizer states.

        ``diverged`` (R,) carries divergence flags in from an earlier phase.
        """
        R = n_restarts(flat)

        def unvalidated():
            return Checkpoint(np.full(R, np.inf), np.full(R, -1), tree_map(np.copy, flat))

        return cls(flat=flat, opt_state={k: optimizer.init(v) for k, v in flat.items()},
                   best=unvalidated(), kept=unvalidated(),
                   reference=Checkpoint(np.full(R, np.inf), np.zeros(R, dtype=int)),
                   diverged=np.zeros(R, dtype=bool) if diverged is None else np.array(diverged, dtype=bool),
                   stopped=np.zeros(R, dtype=bool), epochs_run=np.zeros(R, dtype=int), ended_at=np.full(R, -1),
                   hold_until=np.array(np.broadcast_to(hold_until, (R,))), train_history=[], val_history=[])


def _field(name, doc):
    """A read-only attribute of :class:`BatchedRun` that shows one field of its state."""
    return property(lambda run: getattr(run.per_restart, name), doc=doc)


class BatchedRun:
    """Parameters, optimizer states, divergence flags and the validation-best of R restarts.

    Each part is held as one (R, P) matrix (``training.core._flat``); losses see
    the usual parameter trees. Everything per restart lives in one
    :class:`RestartState` (:attr:`per_restart`); the run adds what the
    restarts share (the epoch, the validation epochs, the settings).

    Parameters
    ----------
    params : dict
        Parts (e.g. ``{"theta": ..., "phi": ...}``) that can be stepped
        alone; each has its own optimizer state.
    optimizer : training.core.optim.Optimizer
    patience : int or None
        The stopping rule: a restart stops once its validation objective has
        not fallen by more than ``tol`` for ``patience`` epochs (None: off).
    tol : float
    near_best : float or None
        Also keep, per restart, the latest parameters validated within this
        margin of the best value (:attr:`kept`).
    hold_until : int or array (R,)
        The stopping rule's patience counts from this epoch on (e.g. the end
        of a beta ramp).
    diverged : array (R,) of bool, optional
        Restarts that diverged in an earlier phase: frozen from the start.
    """

    def __init__(self, params, optimizer, patience=None, tol=0.0, near_best=None, hold_until=0, diverged=None):
        self.defs = {k: TreeDef(v) for k, v in params.items()}
        self.optimizer = optimizer
        self.patience, self.tol, self.near_best = patience, float(tol), near_best
        self.epoch, self.val_epochs = 0, []
        flat = {k: self.defs[k].flatten(v) for k, v in params.items()}
        self.per_restart = RestartState.start(flat, optimizer, hold_until, diverged)

    flat = _field("flat", "{part: (R, P)} the current parameters as flat matrices.")
    state = _field("opt_state", "{part: optimizer state} per restart.")
    diverged = _field("diverged", "(R,) restarts whose loss, gradient or parameters went non-finite (frozen).")
    stopped = _field("stopped", "(R,) restarts stopped by the stopping rule.")
    epochs_run = _field("epochs_run", "(R,) epochs each restart was trained.")
    train_history = _field("train_history", "Training losses, one (R,) array per recorded step.")
    val_history = _field("val_history", "Validation values, one (R,) array per validation.")

    @property
    def best_value(self):
        """(R,) the best validation value of each restart (inf: never validated)."""
        return self.per_restart.best.value

    @property
    def best_epoch(self):
        """(R,) the epoch of that value (-1: never validated)."""
        return self.per_restart.best.epoch

    @property
    def best_flat(self):
        """{part: (R, P)} the parameters of :attr:`best_value`, as flat matrices."""
        return self.per_restart.best.flat

    @property
    def kept_epoch(self):
        """(R,) the epoch of :attr:`kept` (-1: none yet)."""
        return self.per_restart.kept.epoch

    @property
    def n_restarts(self):
        return self.per_restart.diverged.size

    @property
    def active(self):
        """(R,) restarts still training: neither diverged nor stopped by the rule."""
        return ~self.diverged & ~self.stopped

    @property
    def finished(self):
        """True when the stopping rule is on and no restart is left to train."""
        return self.patience is not None and not self.active.any()

    def _rows(self):
        """Indices of the restarts to compute, or None for all (nothing stopped)."""
        stopped = self.per_restart.stopped
        return np.flatnonzero(~stopped) if stopped.any() else None

    def _trees(self, flat):
        return {k: self.defs[k].unflatten(v) for k, v in flat.items()}

    @property
    def params(self):
        """The current parameters as trees (R restarts)."""
        return self._trees(self.per_restart.flat)

    @property
    def best(self):
        """Per restart, the parameters with the best validation objective so far."""
        return self._trees(self.per_restart.best.flat)

    @property
    def kept(self):
        """Per restart, the latest parameters validated within ``near_best`` of the best value."""
        if self.near_best is None:
            raise ValueError("kept needs near_best (a margin) set when the run was made")
        return self._trees(self.per_restart.kept.flat)

    def set_part(self, part, tree, reset_optimizer=True):
        """Replace ``part`` (e.g. re-initialize an encoder) for all restarts."""
        s = self.per_restart
        flat = self.defs[part].flatten(tree)
        opt_state = {**s.opt_state, part: self.optimizer.init(flat)} if reset_optimizer else s.opt_state
        self.per_restart = s._replace(flat={**s.flat, part: flat}, opt_state=opt_state)

    def step(self, loss, parts, *args, active=None, record=True):
        """One optimizer step of ``parts`` on ``loss(params, *args) -> (R,)``.

        ``active`` (R,) restricts the step to some restarts (the others keep
        their parameters and optimizer state). Restarts stopped by the rule
        are not computed at all: once any has stopped, ``loss`` is called on
        the others only, as ``loss(params, *args, rows=rows)`` with ``rows``
        their indices (it restricts its own per-restart inputs, e.g. noise
        draws, to them). Returns the loss values (R,), NaN where not computed.
        """
        parts = tuple(parts)
        s = self.per_restart
        rows = self._rows()
        value_all = np.full(self.n_restarts, np.nan)
        if rows is not None and rows.size == 0:
            return self._record(value_all, record)
        take = _taker(rows)
        diverged = take(s.diverged)
        with np.errstate(all="ignore"):       # non-finite restarts are caught below
            value, grad_ok, new = self._propose(loss, parts, args, rows)
            ok = ~diverged & np.isfinite(value) & grad_ok
            # A squared gradient can overflow Adam's second moment while
            # everything else is finite; the restart would silently stall.
            for leaf in tree_leaves(new):
                ok &= np.isfinite(leaf).all(axis=1)
        watched = np.ones_like(ok) if active is None else take(np.asarray(active, dtype=bool))
        failed = ~ok & watched                # diverged now (or before): frozen from here on
        old = {"flat": {k: s.flat[k] for k in parts}, "opt_state": {k: s.opt_state[k] for k in parts}}
        moved = _freeze(old, new, ok & watched, rows)
        changes = {"flat": {**s.flat, **moved["flat"]}, "opt_state": {**s.opt_state, **moved["opt_state"]},
                   "ended_at": _put(s.ended_at, rows, np.where(~diverged & failed, self.epoch + 1, take(s.ended_at))),
                   "diverged": _put(s.diverged, rows, diverged | failed)}
        if record:
            changes["epochs_run"] = _put(s.epochs_run, rows, take(s.epochs_run) + ~diverged)
        self.per_restart = s._replace(**changes)
        value_all[slice(None) if rows is None else rows] = value
        return self._record(value_all, record)

    def _propose(self, loss, parts, args, rows):
        """The gradient step of ``parts`` on ``rows`` (None: all restarts), not yet checked.

        Returns the loss values, whether each gradient is finite, and the
        proposed ``{"flat": {part: ...}, "opt_state": {part: ...}}`` of those rows.
        """
        s = self.per_restart
        take = _taker(rows)
        extra = {} if rows is None else {"rows": rows}
        cuts = np.cumsum([s.flat[k].shape[1] for k in parts])[:-1]
        fixed = {k: take(v) for k, v in s.flat.items() if k not in parts}
        values = []

        def total(x):
            trees = self._trees(fixed)
            for k, piece in zip(parts, anp.split(x, cuts, axis=1)):
                trees[k] = self.defs[k].unflatten(piece)
            vec = loss(trees, *args, **extra)
            values.append(vec)
            return anp.sum(vec)

        g = grad(total)(np.concatenate([take(s.flat[k]) for k in parts], axis=1))
        new = {"flat": {}, "opt_state": {}}
        for k, gk in zip(parts, np.split(g, cuts, axis=1)):
            state = tree_map(take, s.opt_state[k])
            updates, new["opt_state"][k] = (self.optimizer.update(gk, state) if rows is None
                                            else self.optimizer.update(gk, state, rows=rows))
            new["flat"][k] = take(s.flat[k]) + updates
        return np.asarray(getval(values[0]), dtype=float), np.isfinite(g).all(axis=1), new

    def _record(self, value, record):
        """Append a step's values (NaN where diverged) to the history and count the epoch."""
        if record:
            self.per_restart.train_history.append(np.where(self.diverged, np.nan, value))
            self.epoch += 1
        return value

    def validate(self, val_loss):
        """Evaluate ``val_loss(params) -> (R,)`` and keep each restart's best parameters.

        With the stopping rule on, a restart whose value has not fallen more
        than ``tol`` below its reference (the value at its last such fall)
        for ``patience`` epochs stops: it is no longer stepped or validated.
        """
        s = self.per_restart
        value = np.where(s.diverged | s.stopped, np.nan, self._evaluate(val_loss))
        now = Checkpoint(value, np.full(self.n_restarts, self.epoch), s.flat)
        best = tree_where(np.isfinite(value) & (value < s.best.value), now, s.best)
        kept = s.kept
        if self.near_best is not None:
            kept = tree_where(np.isfinite(value) & (value <= best.value + self.near_best), now, kept)
        s = s._replace(best=best, kept=kept)
        if self.patience is not None:
            s = self._stopping_rule(s, now)
        s.val_history.append(value)
        self.val_epochs.append(self.epoch)
        self.per_restart = s
        return value

    def _evaluate(self, val_loss):
        """``val_loss`` on the restarts not stopped: (R,), NaN elsewhere and where not finite."""
        rows = self._rows()
        value = np.full(self.n_restarts, np.nan)
        if rows is None or rows.size:
            flat = self.per_restart.flat
            with np.errstate(all="ignore"):
                computed = (val_loss(self._trees(flat)) if rows is None
                            else val_loss(self._trees(tree_take(flat, rows)), rows=rows))
            value[slice(None) if rows is None else rows] = np.asarray(computed, dtype=float)
        return np.where(np.isfinite(value), value, np.nan)

    def _stopping_rule(self, s, now):
        """``s`` with the reference moved where the value fell by more than ``tol``, and the stopped marked."""
        fell = np.isfinite(now.value) & (now.value < s.reference.value - self.tol)
        reference = tree_where(fell, now._replace(flat=()), s.reference)
        # Patience counts from the end of a hold (e.g. a beta ramp), not from before it.
        stop = (~s.diverged & ~s.stopped
                & (self.epoch - np.maximum(reference.epoch, s.hold_until) >= self.patience))
        return s._replace(reference=reference, ended_at=np.where(stop, self.epoch, s.ended_at),
                          stopped=s.stopped | stop)

    def selected_restart(self):
        """The non-diverged restart with the best validation objective."""
        return select_restart(self.best_value, self.diverged, "restarts diverged or never validated")

    def history(self):
        return {"train": np.array(self.train_history).T, "val": np.array(self.val_history).T,
                "val_epochs": np.array(self.val_epochs)}

    def subset(self, index):
        """A copy of the run restricted to some restarts, as if they had run alone.

        ``index``: a slice, an index array or a boolean mask (R,) of restarts
        (an int keeps an axis of length 1). The whole :class:`RestartState`
        (parameters, optimizer states, validation-best, divergence flags,
        histories) is restricted, so :meth:`selected_restart` chooses among
        these restarts only.

        Examples
        --------
        >>> from training.core.optim import adam
        >>> run = BatchedRun({"theta": {"w": np.arange(6.0).reshape(3, 2)}}, adam())
        >>> run.diverged[2] = True
        >>> part = run.subset(slice(1, 3))
        >>> part.n_restarts, part.params["theta"]["w"].tolist(), part.diverged.tolist()
        (2, [[2.0, 3.0], [4.0, 5.0]], [False, True])
        """
        out = copy.copy(self)
        out.per_restart = tree_take(self.per_restart, np.reshape(np.arange(self.n_restarts)[index], (-1,)))
        out.val_epochs = list(self.val_epochs)
        if self.patience is not None:
            out._cut_histories()
        return out

    def _cut_histories(self):
        """End the histories where these restarts' loop, alone, would have ended.

        That is the first validation after all of them stopped or diverged.
        """
        s = self.per_restart
        ended = np.where(s.ended_at >= 0, s.ended_at, np.where(s.diverged, 0, np.iinfo(int).max))
        done = [i for i, e in enumerate(self.val_epochs) if e >= ended.max()]
        if done:
            self.epoch = self.val_epochs[done[0]]
            self.per_restart = s._replace(train_history=s.train_history[:self.epoch],
                                          val_history=s.val_history[:done[0] + 1])
            self.val_epochs = self.val_epochs[:done[0] + 1]


def _taker(rows):
    """Restrict a per-restart array to ``rows`` (None: all, the array itself)."""
    return (lambda a: a) if rows is None else (lambda a: a[rows])


def _put(old, rows, new):
    """``old`` with ``rows`` replaced by ``new`` (``new`` itself when ``rows`` is None: all rows)."""
    if rows is None:
        return new
    out = np.array(old, copy=True)
    out[rows] = new
    return out


def _freeze(old, new, move, rows):
    """Tree ``old`` with the restarts ``rows`` (None: all) set to ``new`` where ``move``, kept elsewhere.

    ``new`` holds those rows only. Always new arrays, never in place: trees
    handed out earlier may be views of the old ones.
    """
    column = move[:, None]         # every leaf is an (R, P) matrix (training.core._flat)
    take = _taker(rows)
    return tree_map(lambda o, n: _put(o, rows, np.where(column, n, take(o))), old, new)


class Schedule:
    """Which parts of the model step in each epoch of :func:`train_epochs`.

    Parameters
    ----------
    parts : tuple of str or callable
        The parts stepped every epoch (e.g. ``("theta", "phi")``), or
        ``parts(epoch) -> tuple`` (lagging's segments).

    A schedule whose epochs are more than one step (lagging's aggressive
    schedule) overrides :meth:`step`; :meth:`validated` sees each validation.

    Examples
    --------
    >>> segments = Schedule(lambda epoch: ("phi",) if epoch % 2 else ("theta", "phi"))
    >>> segments.parts(0), segments.parts(1)
    (('theta', 'phi'), ('phi',))
    >>> Schedule(["theta"]).parts(7)
    ('theta',)
    """

    def __init__(self, parts):
        if callable(parts):
            self.parts = parts
        else:
            fixed = tuple(parts)
            self.parts = lambda epoch: fixed

    def step(self, run, loss, epoch, draw):
        """The epoch's training: one step of ``parts(epoch)`` on ``loss(params, epoch, draw())``."""
        run.step(loss, self.parts(epoch), epoch, draw())

    def validated(self, run, epoch):
        """Called after each validation, before the loop checks ``run.finished`` (default: nothing)."""


def train_epochs(run, schedule, loss, val_loss, draw, epochs, eval_every, bar):
    """The epoch loop shared by every trainer; returns ``run``.

    Each epoch, ``schedule`` steps ``run`` (:meth:`Schedule.step`, with
    ``loss(params, epoch, draw())``); every ``eval_every`` epochs and after
    the last, ``run`` validates on ``val_loss``, the schedule sees it
    (:meth:`Schedule.validated`) and ``bar`` moves on. The loop ends early
    once every restart has stopped or diverged (:attr:`BatchedRun.finished`).

    Parameters
    ----------
    run : BatchedRun
    schedule : Schedule, tuple of str or callable
        Anything else is wrapped as ``Schedule(schedule)``.
    loss, val_loss : callable
        ``loss(params, epoch, eps, rows=None) -> (R,)``, ``val_loss(params, rows=None) -> (R,)``.
    draw : callable
        ``draw()`` the epoch's noise (None for deterministic losses).
    epochs, eval_every : int
    bar : tqdm progress bar

    Examples
    --------
    >>> from training.core.optim import adam
    >>> run = BatchedRun({"theta": {"w": np.ones((2, 1))}}, adam(0.1))
    >>> loss = lambda p, epoch, eps, rows=None: (p["theta"]["w"] ** 2)[:, 0]
    >>> run = train_epochs(run, ("theta",), loss, lambda p: loss(p, 0, None), lambda: None, 30, 10,
    ...                    progress_bar(30, False, "doc"))
    >>> run.epoch, run.history()["val_epochs"].tolist()
    (30, [10, 20, 30])
    """
    schedule = schedule if isinstance(schedule, Schedule) else Schedule(schedule)
    shown = 0
    for epoch in range(epochs):
        schedule.step(run, loss, epoch, draw)
        if (epoch + 1) % eval_every == 0 or epoch == epochs - 1:
            run.validate(val_loss)
            schedule.validated(run, epoch)
            bar.update(epoch + 1 - shown)
            shown = epoch + 1
            if run.finished:      # every restart stopped by the rule (or diverged)
                break
    return run


def check_stopping(patience, tol):
    """The stopping-rule settings: ``patience`` None (off) or an int >= 1 epochs, ``tol`` >= 0."""
    if patience is not None:
        checks.integer("patience", patience, 1)
    if checks.scalar("tol", tol) < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")


def progress_bar(total, enabled, desc):
    return tqdm(total=total, disable=not enabled, desc=desc, mininterval=0.5, leave=False)
