"""The batched training loop: R restarts as one array program.

Every parameter leaf carries a leading restart axis, losses return one value
per restart and their sum is differentiated once (restarts do not interact,
so each restart's gradient is its own). A restart whose loss, gradient or
new parameters are not finite is marked diverged and frozen; the others go
on. Validation keeps, per restart, the parameters its own objective prefers
(docs/theory.md (T.48)).
"""
import autograd.numpy as anp
import numpy as np
from autograd import grad
from autograd.tracer import getval
from tqdm.auto import tqdm

from analysis import checks

from ..core._flat import TreeDef
from ..core.trees import n_restarts, tree_leaves, tree_map


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


class BatchedRun:
    """Parameters, optimizer states, divergence flags and the validation-best of R restarts.

    Each part is held as one (R, P) matrix (``training.core._flat``); losses see
    the usual parameter trees.

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
    """

    def __init__(self, params, optimizer, patience=None, tol=0.0, near_best=None, hold_until=0):
        self.defs = {k: TreeDef(v) for k, v in params.items()}
        self.flat = {k: self.defs[k].flatten(v) for k, v in params.items()}
        self.optimizer = optimizer
        self.state = {k: optimizer.init(v) for k, v in self.flat.items()}
        R = n_restarts(params)
        self.diverged = np.zeros(R, dtype=bool)
        self.best_flat = {k: v.copy() for k, v in self.flat.items()}
        self.best_value = np.full(R, np.inf)
        self.best_epoch = np.full(R, -1)
        self.train_history, self.val_history, self.val_epochs = [], [], []
        self.epoch = 0
        # The stopping rule (opt-in): a restart stops once its validation
        # objective has not improved by more than ``tol`` for ``patience`` epochs.
        self.patience, self.tol = patience, float(tol)
        self.stopped = np.zeros(R, dtype=bool)
        self.epochs_run = np.zeros(R, dtype=int)
        self._ref_value = np.full(R, np.inf)
        self._ref_epoch = np.zeros(R, dtype=int)
        self._ended_at = np.full(R, -1)       # the epoch a restart stopped or diverged
        self.hold_until = hold_until          # patience counts from this epoch on (scalar or (R,))
        # With ``near_best`` (a margin), also keep per restart the latest
        # parameters whose validation value was within the margin of the best.
        self.near_best = near_best
        self.kept_flat = {k: v.copy() for k, v in self.flat.items()}
        self.kept_epoch = np.full(R, -1)

    @property
    def n_restarts(self):
        return self.diverged.size

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
        return np.flatnonzero(~self.stopped) if self.stopped.any() else None

    def _trees(self, flat):
        return {k: self.defs[k].unflatten(v) for k, v in flat.items()}

    @property
    def params(self):
        """The current parameters as trees (R restarts)."""
        return self._trees(self.flat)

    @property
    def best(self):
        """Per restart, the parameters with the best validation objective so far."""
        return self._trees(self.best_flat)

    @property
    def kept(self):
        """Per restart, the latest parameters validated within ``near_best`` of the best value."""
        if self.near_best is None:
            raise ValueError("kept needs near_best (a margin) set when the run was made")
        return self._trees(self.kept_flat)

    def set_part(self, part, tree, reset_optimizer=True):
        """Replace ``part`` (e.g. re-initialize an encoder) for all restarts."""
        self.flat[part] = self.defs[part].flatten(tree)
        if reset_optimizer:
            self.state[part] = self.optimizer.init(self.flat[part])

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
        rows = self._rows()
        R = self.n_restarts
        value_all = np.full(R, np.nan)
        if rows is not None and rows.size == 0:
            if record:
                self.train_history.append(value_all)
                self.epoch += 1
            return value_all
        pick = (lambda a: a) if rows is None else (lambda a: a[rows])
        extra = {} if rows is None else {"rows": rows}
        cuts = np.cumsum([self.flat[k].shape[1] for k in parts])[:-1]
        values = []
        fixed = {k: pick(v) for k, v in self.flat.items() if k not in parts}

        def total(x):
            trees = self._trees(fixed)
            for k, piece in zip(parts, anp.split(x, cuts, axis=1)):
                trees[k] = self.defs[k].unflatten(piece)
            vec = loss(trees, *args, **extra)
            values.append(vec)
            return anp.sum(vec)

        x = np.concatenate([pick(self.flat[k]) for k in parts], axis=1)
        diverged = pick(self.diverged)
        with np.errstate(all="ignore"):       # non-finite restarts are caught below
            g = grad(total)(x)
            value = np.asarray(getval(values[0]), dtype=float)
            ok = ~diverged & np.isfinite(value) & np.all(np.isfinite(g), axis=1)
            new_flat, new_state = {}, {}
            for k, gk in zip(parts, np.split(g, cuts, axis=1)):
                state = tree_map(pick, self.state[k])
                updates, new_state[k] = (self.optimizer.update(gk, state) if rows is None
                                         else self.optimizer.update(gk, state, rows=rows))
                new_flat[k] = pick(self.flat[k]) + updates
                ok &= np.all(np.isfinite(new_flat[k]), axis=1)
                # A squared gradient can overflow Adam's second moment while
                # everything else is finite; the restart would silently stall.
                for leaf in tree_leaves(new_state[k]):
                    ok &= np.all(np.isfinite(leaf), axis=1)
        watched = np.ones_like(ok) if active is None else pick(np.asarray(active, dtype=bool))
        move = (ok & watched)[:, None]
        index = slice(None) if rows is None else rows
        if record:
            self.epochs_run = _put(self.epochs_run, index, pick(self.epochs_run) + ~diverged)
        newly = ~diverged & ~ok & watched
        self._ended_at = _put(self._ended_at, index, np.where(newly, self.epoch + 1, pick(self._ended_at)))
        self.diverged = _put(self.diverged, index, diverged | (~ok & watched))
        for k in parts:   # new arrays, never in place: trees handed out earlier may be views
            self.flat[k] = _put(self.flat[k], index, np.where(move, new_flat[k], pick(self.flat[k])))
            self.state[k] = tree_map(lambda new, old: _put(old, index, np.where(move, new, pick(old))),
                                     new_state[k], self.state[k])
        value_all[index] = value
        if record:
            self.train_history.append(np.where(self.diverged, np.nan, value_all))
            self.epoch += 1
        return value_all

    def validate(self, val_loss):
        """Evaluate ``val_loss(params) -> (R,)`` and keep each restart's best parameters.

        With the stopping rule on, a restart whose value has not fallen more
        than ``tol`` below its reference (the value at its last such fall)
        for ``patience`` epochs stops: it is no longer stepped or validated.
        """
        rows = self._rows()
        value = np.full(self.n_restarts, np.nan)
        if rows is None or rows.size:
            trees = self.params if rows is None else self._trees({k: v[rows] for k, v in self.flat.items()})
            with np.errstate(all="ignore"):
                computed = np.asarray(val_loss(trees) if rows is None else val_loss(trees, rows=rows),
                                      dtype=float)
            value[slice(None) if rows is None else rows] = computed
        value = np.where(self.diverged | self.stopped | ~np.isfinite(value), np.nan, value)
        improved = np.isfinite(value) & (value < self.best_value)
        for k in self.flat:
            self.best_flat[k] = np.where(improved[:, None], self.flat[k], self.best_flat[k])
        self.best_value = np.where(improved, value, self.best_value)
        self.best_epoch = np.where(improved, self.epoch, self.best_epoch)
        if self.near_best is not None:
            near = np.isfinite(value) & (value <= self.best_value + self.near_best)
            for k in self.flat:
                self.kept_flat[k] = np.where(near[:, None], self.flat[k], self.kept_flat[k])
            self.kept_epoch = np.where(near, self.epoch, self.kept_epoch)
        if self.patience is not None:
            fell = np.isfinite(value) & (value < self._ref_value - self.tol)
            self._ref_value = np.where(fell, value, self._ref_value)
            self._ref_epoch = np.where(fell, self.epoch, self._ref_epoch)
            # Patience counts from the end of a hold (e.g. a beta ramp), not from before it.
            stop = self.active & (self.epoch - np.maximum(self._ref_epoch, self.hold_until) >= self.patience)
            self._ended_at = np.where(stop, self.epoch, self._ended_at)
            self.stopped |= stop
        self.val_history.append(value)
        self.val_epochs.append(self.epoch)
        return value

    def selected_restart(self):
        """The non-diverged restart with the best validation objective."""
        return select_restart(self.best_value, self.diverged, "restarts diverged or never validated")

    def history(self):
        return {"train": np.array(self.train_history).T, "val": np.array(self.val_history).T,
                "val_epochs": np.array(self.val_epochs)}

    def subset(self, index):
        """A copy of the run restricted to some restarts, as if they had run alone.

        ``index``: a slice, an index array or a boolean mask (R,) of restarts
        (an int keeps an axis of length 1). Parameters, optimizer states,
        validation-best, divergence flags and histories are all restricted,
        so :meth:`selected_restart` chooses among these restarts only.

        Examples
        --------
        >>> from training.core.optim import adam
        >>> run = BatchedRun({"theta": {"w": np.arange(6.0).reshape(3, 2)}}, adam())
        >>> run.diverged[2] = True
        >>> part = run.subset(slice(1, 3))
        >>> part.n_restarts, part.params["theta"]["w"].tolist(), part.diverged.tolist()
        (2, [[2.0, 3.0], [4.0, 5.0]], [False, True])
        """
        idx = np.arange(self.n_restarts)[index]
        idx = np.reshape(idx, (-1,))
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.flat = {k: v[idx] for k, v in self.flat.items()}
        out.state = {k: tree_map(lambda leaf: np.asarray(leaf)[idx], s) for k, s in self.state.items()}
        out.diverged = self.diverged[idx]
        out.best_flat = {k: v[idx] for k, v in self.best_flat.items()}
        out.best_value = self.best_value[idx]
        out.best_epoch = self.best_epoch[idx]
        out.kept_flat = {k: v[idx] for k, v in self.kept_flat.items()}
        out.kept_epoch = self.kept_epoch[idx]
        out.stopped = self.stopped[idx]
        out.epochs_run = self.epochs_run[idx]
        out._ref_value = self._ref_value[idx]
        out._ref_epoch = self._ref_epoch[idx]
        out._ended_at = self._ended_at[idx]
        out.hold_until = self.hold_until if np.ndim(self.hold_until) == 0 else np.asarray(self.hold_until)[idx]
        out.train_history = [h[idx] for h in self.train_history]
        out.val_history = [h[idx] for h in self.val_history]
        out.val_epochs = list(self.val_epochs)
        if self.patience is not None:
            # Alone, these restarts' loop would have ended at the first check
            # after all of them stopped or diverged: cut the histories there.
            ended = np.where(out._ended_at >= 0, out._ended_at, np.where(out.diverged, 0, np.iinfo(int).max))
            done = [i for i, e in enumerate(out.val_epochs) if e >= ended.max()]
            if done:
                out.epoch = out.val_epochs[done[0]]
                out.train_history = out.train_history[:out.epoch]
                out.val_history, out.val_epochs = out.val_history[:done[0] + 1], out.val_epochs[:done[0] + 1]
        return out


def _put(old, index, new):
    """``old`` with rows ``index`` replaced by ``new`` (a new array when all rows are)."""
    if isinstance(index, slice):
        return new
    out = np.array(old, copy=True)
    out[index] = new
    return out


def check_stopping(patience, tol):
    """The stopping-rule settings: ``patience`` None (off) or an int >= 1 epochs, ``tol`` >= 0."""
    if patience is not None:
        checks.integer("patience", patience, 1)
    if checks.scalar("tol", tol) < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")


def progress_bar(total, enabled, desc):
    return tqdm(total=total, disable=not enabled, desc=desc, mininterval=0.5, leave=False)
