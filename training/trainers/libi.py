"""LiBI, "Likelihood Before Inference" (paper Sec. 2, App. D; docs/theory.md (T.42)-(T.45)).

Step 1 fits the likelihood theta and a deterministic encoder h(x; varphi)
by the penalized joint-MAP objective (paper Eq. 44)

    -(1/N) sum_n log p_theta(x_n | h(x_n))  +  lambda_HZ exp(HZ(Z))
    + exp(||Sigma(Z) - I||_F^2 / eps_Sigma) + exp(||mu(Z)||^2 / eps_mu)
    + sum_i c_i(theta)                      (task constraints, smooth penalties)

with Z = {h(x_n)}; Step 2 freezes theta and fits the mean-field q_phi by the
ELBO over phi alone; Step 3 re-initializes varphi from q_phi's mean network
and repeats. R restarts run batched, as for the other trainers.
"""
import numbers

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from analysis import checks

from ..core.trees import tree_map, tree_where
from ..evaluate.hz import henze_zirkler
from ..evaluate.likelihood import log_likelihood_is, reference_log_likelihood
from ..models.encoders import Encoder
from .engine import progress_bar, select_restart
from .vae import BaseTrainer, initial_log_variance, store_settings

__all__ = ["LiBI", "MutualInformationConstraint", "code_penalties"]


EXP_CAP = 20.0

#: Step 1 hands Step 2 the latest iterate whose validation objective is
#: within this many nats per point of its best (see ``LiBI``).
STEP1_MARGIN = 0.05

#: Where Step 1 may start (see :class:`LiBI`).
STEP1_INITS = ("fit", "standardize")


def capped_exp(u, cap=EXP_CAP):
    """exp(u) for u <= cap, continued linearly (value and slope match) above.

    Eq. 44's exp penalties span hundreds of orders of magnitude: a drifting
    code mean overflows exp (and Adam's squared gradients) long before the
    penalty can pull it back. Below exp(20) ~ 5e8 nothing changes.
    """
    over = anp.maximum(u - cap, 0.0)
    return anp.exp(anp.minimum(u, cap)) * (1.0 + over)


def code_penalties(Z, lambda_hz, eps_sigma, eps_mu, hz=None):
    """The penalties of Eq. 44 that make the codes Z (R, N, K) look like N(0, I): (R,).

    lambda_hz = 0 drops the Henze-Zirkler term; eps = inf drops a moment
    term. ``hz`` replaces HZ(Z) by a known value (see ``standardize_codes``).
    """
    N, K = Z.shape[-2:]
    mean = anp.mean(Z, axis=1)
    centred = Z - mean[:, None, :]
    cov = anp.matmul(anp.swapaxes(centred, -1, -2), centred) / N
    out = 0.0
    if lambda_hz:
        out = out + lambda_hz * capped_exp(henze_zirkler(Z, check=False) if hz is None else hz)
    if np.isfinite(eps_sigma):
        dev = cov - np.eye(K)
        out = out + capped_exp(anp.sum(dev * dev, axis=(1, 2)) / eps_sigma)
    if np.isfinite(eps_mu):
        out = out + capped_exp(anp.sum(mean * mean, axis=1) / eps_mu)
    return out


def _real(value):
    """A real number, numpy scalars included (not bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _softplus(a):
    return anp.logaddexp(0.0, a)


class MutualInformationConstraint:
    """I(X;Z) >= delta (or <= delta) for a linear-Gaussian likelihood, as a smooth penalty.

    I(X;Z) = 1/2 [log det(W W^T + Psi) - log det Psi] (docs/theory.md (T.10)), differentiable
    in theta. The penalty is ``weight * tau * softplus(v / tau)`` with the
    violation v = delta - I (lower bound) or I - delta (upper bound): zero
    gradient well inside, slope ``weight`` outside (an exact penalty once
    ``weight`` exceeds the constraint's Lagrange multiplier; the bound then
    holds up to a few tau). Not the exp form of Eq. 44: an exp penalty's
    gradient falls by orders of magnitude as the violation closes, and
    Adam's second-moment memory of the early gradients then stalls the
    step for hundreds of epochs.

    Parameters
    ----------
    delta : float
        The bound in nats (>= 0).
    upper : bool
        Constrain I(X;Z) <= delta instead.
    tau : float
        Softness in nats (> 0).
    weight : float
        Slope outside the feasible set (> 0).

    Examples
    --------
    >>> from training.models import Univariate
    >>> lik = Univariate(1.0)
    >>> theta = lik.params_for(np.array([0.0, 0.9]))
    >>> c = MutualInformationConstraint(0.5)
    >>> c.satisfied(lik, theta)
    array([False,  True])
    """

    def __init__(self, delta, upper=False, tau=0.01, weight=10.0):
        self.delta = float(checks.real_array("delta", delta))
        if self.delta < 0:
            raise ValueError(f"delta must be >= 0 nats, got {delta}")
        self.upper = bool(upper)
        self.tau = float(checks.positive("tau", tau))
        self.weight = float(checks.positive("weight", weight))

    def __repr__(self):
        return (f"MutualInformationConstraint(delta={self.delta}, upper={self.upper}, "
                f"tau={self.tau}, weight={self.weight})")

    @staticmethod
    def mutual_information(likelihood, theta):
        """I(X;Z) per restart (R,) of a linear-Gaussian likelihood, differentiable."""
        W = likelihood.loading(theta)
        psi = likelihood.noise(theta)
        C = anp.matmul(W, anp.swapaxes(W, -1, -2)) + psi[:, :, None] * np.eye(psi.shape[-1])
        return 0.5 * (anp.linalg.slogdet(C)[1] - anp.sum(anp.log(psi), axis=-1))

    def penalty(self, likelihood, theta, X):
        if not likelihood.linear:
            raise ValueError("MutualInformationConstraint needs a linear-Gaussian likelihood")
        gap = self.mutual_information(likelihood, theta) - self.delta
        return self.weight * self.tau * _softplus((gap if self.upper else -gap) / self.tau)

    def satisfied(self, likelihood, theta, slack=0.0):
        """(R,) booleans: the bound holds (to ``slack`` nats)."""
        mi = np.asarray(getval(self.mutual_information(likelihood, theta)))
        return mi <= self.delta + slack if self.upper else mi >= self.delta - slack


class LiBI(BaseTrainer):
    """Likelihood Before Inference (paper Sec. 2; docs/theory.md (T.45)), restarts batched.

    Parameters
    ----------
    lambda_hz : float
        Weight of exp(HZ) (>= 0; 0 drops it). Paper grid 0.001, 1, 10, 20.
    eps_sigma, eps_mu : float
        Scales of the covariance and mean penalties (> 0; ``inf`` drops
        them). Paper grid 0.2, 0.5.
    repeats : int
        Repetitions of Steps 1-3 (paper: 1 or 6).
    inference_epochs : int or None
        Adam epochs of Step 2 per repetition (default: ``epochs``).
    constraints : sequence
        Task constraints with ``penalty(likelihood, theta, X) -> (R,)``, e.g.
        :class:`MutualInformationConstraint`.
    joint_map : bool
        Add the prior term -log p(z_n) of the plain joint MAP (paper Eq. 31);
        with the penalties off this shows the shrinking codes of App. D.
    val_is_samples : int
        Importance samples per validation point for nonlinear likelihoods.
    step1_init : {"fit", "standardize"}
        Where Step 1 starts. ``"fit"`` (default): the encoder's codes of the
        training data whitened (mean 0, covariance I), and the likelihood
        started from its family's least-squares fit to them where it has
        one (``Likelihood.decoder_from_codes``: JTEx, the linear map), the
        codes turned by an orthogonal map into the orientation the family
        can represent; likelihoods without such a start (the Mobius network)
        start as with ``"standardize"``: each code dimension scaled to unit
        variance, the likelihood as drawn (the earlier start; it leaves JTEx
        restarts on a rank-deficient plateau about half the time, see
        docs/design.md).
    step1_margin : float or None
        Step 1 hands Step 2 the latest iterate whose validation objective was
        within this many nats per point of its best (default 0.05; None: the
        last iterate). See ``_step1_result``.
    epochs : int (keyword only)
        Adam epochs of Step 1 per repetition.
    patience, tol : int or None, float (keyword only)
        The stopping rule (as :class:`training.trainers.VAE`), applied to
        every Step 1 and Step 2 on its own validation objective.
    restarts, lr, elbo, mc_samples, val_mc_samples, eval_every, seed, progress
        As :class:`training.trainers.VAE`.

    Model selection: Step 1 keeps its latest near-best iterate (above; the
    validation objective is recorded in ``history_``); within Step 2 each
    restart keeps the parameters with the best validation ELBO. Over
    repetitions and then restarts the best validation log-likelihood
    log p_theta(x) wins (exact for linear-Gaussian likelihoods, by quadrature
    for nonlinear ones with K <= 2 latents, importance-sampled with q_phi
    otherwise): Step 1's target is
    the maximum-likelihood theta, so the likelihood is LiBI's own criterion;
    with task constraints their penalties are subtracted (the constrained
    MLE), so that a restart trapped on the wrong side of a constraint loses
    even where the likelihood cannot tell models apart (the univariate
    model). ``val_objective_`` holds minus that value (lower is better, as
    for the other trainers).

    Attributes
    ----------
    theta_, phi_ : dict
        The selected likelihood and inference network (leading axis 1).
    varphi_ : dict
        The selected Step-1 encoder h(x; varphi).
    best_params_ : dict
        Per restart, ``theta``, ``phi`` and ``varphi`` of its best repetition.
    val_log_likelihood_ : ndarray (repeats, R)
        Validation log-likelihood (minus constraint penalties) after every
        repetition.
    best_repeat_ : ndarray (R,)
    epochs_run_ : ndarray (R,)
        Epochs run per restart, Steps 1 and 2 of every repetition together.
    converged_ : ndarray (R,) of bool
        Every Step 1 and Step 2 of the restart stopped by the rule.
    diverged_, best_restart_, val_objective_, history_ : as for VAE.
    """

    def __init__(self, lambda_hz=1.0, eps_sigma=0.5, eps_mu=0.5, repeats=1, inference_epochs=None,
                 constraints=(), joint_map=False, val_is_samples=500, step1_margin=STEP1_MARGIN,
                 step1_init="fit", *,
                 epochs=2000, restarts=10, lr=0.01, elbo="auto", mc_samples=1, val_mc_samples=16, eval_every=10,
                 seed=0, progress=False, patience=None, tol=0.0):
        store_settings(self, locals())

    def _check_settings(self, data):
        super()._check_settings(data)
        if not _real(self.lambda_hz) or not np.isfinite(self.lambda_hz) or self.lambda_hz < 0:
            raise ValueError(f"lambda_hz must be a finite number >= 0, got {self.lambda_hz!r}")
        for name in ("eps_sigma", "eps_mu"):
            value = getattr(self, name)
            if not _real(value) or np.isnan(value) or value <= 0:
                raise ValueError(f"{name} must be > 0 (inf drops the penalty), got {value!r}")
        checks.integer("repeats", self.repeats, 1)
        if self.inference_epochs is not None:
            checks.integer("inference_epochs", self.inference_epochs, 1)
        checks.integer("val_is_samples", self.val_is_samples, 1)
        if self.step1_init not in STEP1_INITS:
            raise ValueError(f"step1_init must be one of {STEP1_INITS}, got {self.step1_init!r}")
        if self.step1_margin is not None and checks.scalar("step1_margin", self.step1_margin) < 0:
            raise ValueError(f"step1_margin must be None (the last iterate) or a number >= 0, "
                             f"got {self.step1_margin!r}")
        for c in self.constraints:
            if not hasattr(c, "penalty"):
                raise TypeError(f"constraints must have a penalty(likelihood, theta, X) method, got {c!r}")

    # ---- Step 1 --------------------------------------------------------
    def _step1_loss(self, data, X):
        lik, enc = data.likelihood, data.encoder
        # HZ is affine invariant: with an affine encoder HZ(Z) = HZ(X), a
        # constant with zero gradient, so the O(N^2) term is computed once.
        hz = float(henze_zirkler(X)) if enc.kind == "linear" and X.shape[1] == enc.latent_dim else None

        def loss(p, rows=None):    # nothing per restart but the parameters: rows unused
            Z = enc.mean(p["varphi"], X)
            value = -anp.mean(lik.log_likelihood(p["theta"], X, Z), axis=1)
            if self.joint_map:
                value = value + 0.5 * anp.mean(anp.sum(Z * Z, axis=-1), axis=1)
            value = value + code_penalties(Z, self.lambda_hz, self.eps_sigma, self.eps_mu, hz)
            for c in self.constraints:
                value = value + c.penalty(lik, p["theta"], X)
            return value
        return loss

    def _val_log_likelihood(self, data, theta, phi, rng):
        """Validation log-likelihood per point minus the task-constraint penalties (R,).

        Exact for linear-Gaussian likelihoods, by quadrature for nonlinear ones
        with at most 2 latents, importance-sampled with q_phi otherwise.
        """
        per_point = reference_log_likelihood(data.likelihood, theta, data.val)
        if per_point is None:
            per_point = log_likelihood_is(data.likelihood, theta, data.encoder, phi, data.val, rng,
                                          samples=self.val_is_samples)
        ll = np.mean(per_point, axis=1)
        for c in self.constraints:
            ll = ll - np.asarray(c.penalty(data.likelihood, theta, data.val))
        return ll

    def fit(self, data):
        """Steps 1-3 of LiBI, ``repeats`` times, on ``data.train``; returns self."""
        params, streams = self._setup(data)
        theta, varphi = self._step1_start(data, params["theta"], Encoder.deterministic_part(params["phi"]))
        losses = self._losses(data, streams)
        eval_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 11]))
        R = self.restarts
        diverged = np.zeros(R, dtype=bool)
        self.epochs_run_, self.converged_ = np.zeros(R, dtype=int), np.ones(R, dtype=bool)
        best, best_ll, best_repeat = None, np.full(R, -np.inf), np.full(R, -1)
        lls, history = [], []
        with progress_bar(self.repeats * (self.epochs + self._inference_epochs()), self.progress, "LiBI") as bar:
            for t in range(self.repeats):
                run1 = self._step1(theta, varphi, losses, diverged, bar)
                diverged |= run1.diverged
                theta, varphi = self._step1_result(run1)
                run2 = self._step2(data, streams, theta, varphi, losses, diverged, bar)
                diverged |= run2.diverged
                phi = run2.best["phi"]
                for run in (run1, run2):
                    self.epochs_run_ += run.epochs_run
                    self.converged_ &= run.stopped
                history.append({"step1": {**run1.history(), "kept_epoch": run1.kept_epoch.copy()
                                          if self.step1_margin is not None else None},
                                "step2": run2.history()})
                # Keep, per restart, the repetition with the best validation likelihood.
                ll = np.where(diverged, -np.inf, self._val_log_likelihood(data, theta, phi, eval_rng))
                lls.append(ll)
                better = np.isfinite(ll) & (ll > best_ll)
                current = {"theta": theta, "phi": phi, "varphi": varphi}
                best = current if best is None else tree_where(better, current, best)
                best_ll, best_repeat = np.where(better, ll, best_ll), np.where(better, t, best_repeat)
                varphi = self._step3(phi)
        self.converged_ &= ~diverged
        return self._finish_libi(best, best_ll, best_repeat, diverged, lls, history)

    def _step1_start(self, data, theta, varphi):
        """Step 1's first (theta, varphi), as ``step1_init`` says.

        Why "fit": the code penalties are invariant under orthogonal maps of
        the codes, so their orientation is free at the start, but not later:
        a JTEx decoder W = chol(A A^T + B) has a positive determinant, so
        codes that are a reflection of what it can invert cannot be matched,
        and the encoder cannot reflect them without passing through a
        singular code covariance, which the covariance penalty bars. The
        decoder then fits one code direction and A stays rank-deficient
        (its gradient 2 grad f(M) A keeps A's row space). Starting the
        decoder from a least-squares fit to white codes, in an orientation
        it can represent, removes the trap (docs/design.md).
        """
        enc, lik, X = data.encoder, data.likelihood, data.train
        if self.step1_init == "fit":
            white = enc.whiten(varphi, X)
            fitted = lik.decoder_from_codes(theta, np.asarray(enc.mean(white, X)), X)
            if fitted is not None:
                theta, Q = fitted
                return theta, enc.transform_codes(white, np.zeros(Q.shape[:2]), Q)
        # "standardize", or no family start (no orientation to fix): the earlier start
        return theta, enc.standardize(varphi, X)

    def _inference_epochs(self):
        return self.inference_epochs or self.epochs

    def _losses(self, data, streams):
        """Step 1's training and validation objectives, Step 2's ELBOs and its noise draw."""
        elbo, elbo_val, draw = self._elbo_losses(data, streams, lambda epoch: 1.0, 1.0)
        return {"step1": self._step1_loss(data, data.train), "step1_val": self._step1_loss(data, data.val),
                "elbo": elbo, "elbo_val": elbo_val, "draw": draw}

    def _step1(self, theta, varphi, losses, diverged, bar):
        """Step 1: the likelihood theta and the deterministic encoder varphi by Eq. 44."""
        step1 = losses["step1"]
        return self._train({"theta": theta, "varphi": varphi}, ("theta", "varphi"),
                           lambda p, epoch, eps, rows=None: step1(p), losses["step1_val"], lambda: None, bar,
                           diverged=diverged, near_best=self.step1_margin)

    def _step2(self, data, streams, theta, varphi, losses, diverged, bar):
        """Step 2: q_phi by the ELBO with theta frozen; phi starts from varphi's mean network."""
        phi = data.encoder.init([s[0] for s in streams])
        phi.update(tree_map(np.copy, varphi))
        phi["logvar"]["b"] = (np.zeros_like(phi["logvar"]["b"])
                              + initial_log_variance(data.likelihood, theta, data.train))
        return self._train({"theta": theta, "phi": phi}, ("phi",), losses["elbo"], losses["elbo_val"],
                           losses["draw"], bar, epochs=self._inference_epochs(), diverged=diverged)

    @staticmethod
    def _step3(phi):
        """Step 3: the next Step 1 starts from q_phi's mean network."""
        return tree_map(np.copy, Encoder.deterministic_part(phi))

    def _step1_result(self, run):
        """(theta, varphi) that Step 1 hands to Step 2.

        With ``step1_margin`` (default): per restart the latest iterate whose
        validation objective was within the margin of its best. Late in Step 1
        the objective is ruled by the reconstruction term and moves little
        while the penalties still fix the code scale, so the validation-best
        alone stops early (LinearJTEx: 12 % covariance error, not 1 %); the
        latest near-best iterate follows the run to its end but never keeps a
        late blow-up (CubicJTEx: an oscillation in A that took the test
        log-likelihood from -4.2 to -65). ``None``: the last iterate.
        """
        params = run.params if self.step1_margin is None else run.kept
        return params["theta"], params["varphi"]

    def _finish_libi(self, best, best_ll, best_repeat, diverged, lls, history):
        self.best_params_ = best
        self.params_ = best
        self.val_log_likelihood_ = np.array(lls)
        self.val_objective_ = -best_ll
        self.best_repeat_ = best_repeat
        self.best_epoch_ = None
        self.diverged_ = diverged
        self.history_ = history
        return self._keep_selected(best, select_restart(-best_ll, diverged, "LiBI restarts diverged"))
