"""Symbolic derivations of the linear-Gaussian closed forms (docs/theory.md §2, (T.17)).

Nothing here is typed in as a result. Each quantity is derived with sympy
from the model's definition, ``z ~ N(0, I)``, ``x = W z + eps``,
``eps ~ N(0, Psi)``:

* the posterior precision is minus the Hessian in ``z`` of ``log p(x, z)``,
  its mean the root of the gradient;
* the marginal is Bayes' rule, ``log p(x) = log p(x, z) - log p(z | x)``
  (evaluated where it does not depend on ``z``);
* I(X;Z) = E[log p(z|x) - log p(z)] and KL[q || p(z|x)] are expectations of
  quadratic forms, taken with the Gaussian second-moment rule
  :func:`gaussian_expectation` after the substitution x = W z + eps;
* the best mean-field Gaussian solves the stationarity conditions of that KL.

The derivations are cached, as the first call of a 2x2 derivation is slow
(timings in benchmarks/README.md). ``lambdify``-ed numeric versions live in :mod:`analysis.compiled`.
"""
from functools import lru_cache

import sympy as sp

__all__ = [
    "gaussian_expectation", "gaussian_log_density", "linear_gaussian",
    "univariate", "mean_field", "jtex", "to_latex",
]


def gaussian_log_density(v, mean, cov, precision=None, logdet=None):
    """log N(v; mean, cov) for sympy column vectors ``v`` and ``mean``.

    ``precision`` and ``logdet`` may stand in for cov^-1 and log det cov:
    generic symbols keep expectations polynomial, to be substituted after.
    """
    r = v - mean
    k = r.shape[0]
    precision = cov.inv() if precision is None else precision
    logdet = sp.log(cov.det()) if logdet is None else logdet
    return -sp.Rational(k, 2) * sp.log(2 * sp.pi) - logdet / 2 - (r.T * precision * r)[0, 0] / 2


def gaussian_expectation(expr, noises):
    """E[expr] for ``expr`` a polynomial of degree <= 2 in zero-mean Gaussians.

    Parameters
    ----------
    expr : sympy expression
    noises : list of (symbols, cov)
        Mutually independent zero-mean Gaussian vectors: ``symbols`` a list of
        sympy symbols, ``cov`` their covariance (sympy Matrix).

    Returns
    -------
    sympy expression
        The expectation: first moments vanish, E[u_i u_j] = cov_ij, products
        of independent vectors vanish.

    Examples
    --------
    >>> import sympy as sp
    >>> u, v, s = sp.symbols("u v s")
    >>> gaussian_expectation((2 * u + v + 1) ** 2, [([u], sp.Matrix([[s]])), ([v], sp.eye(1))])
    4*s + 2
    """
    syms = [u for group, _ in noises for u in group]
    poly = sp.Poly(sp.expand(expr), *syms)
    if poly.total_degree() > 2:
        raise ValueError("expr must be a polynomial of degree <= 2 in the noises")
    where = {u: (g, i) for g, (group, _) in enumerate(noises) for i, u in enumerate(group)}
    out = sp.S.Zero
    for monom, coeff in poly.terms():
        factors = [u for u, power in zip(syms, monom) for _ in range(power)]
        if not factors:
            out += coeff
        elif len(factors) == 2:
            (g1, i1), (g2, i2) = where[factors[0]], where[factors[1]]
            if g1 == g2:
                out += coeff * noises[g1][1][i1, i2]
    return out


def _symmetric(name, n):
    """A symbolic symmetric n x n matrix with entries name_ij, i <= j."""
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}{min(i, j) + 1}{max(i, j) + 1}", real=True))


def _vector(name, n):
    return sp.Matrix([sp.Symbol(f"{name}{i + 1}", real=True) for i in range(n)])


def _generic(name, n, symmetric=True):
    if symmetric:
        return _symmetric(name, n)
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}{i + 1}{j + 1}"))


def _rational(expr):
    """Canonical p/q form of a rational function, by fraction-field arithmetic.

    Orders of magnitude faster than ``sp.cancel`` on the nested fractions
    that Gaussian conditioning produces.
    """
    expr = sp.sympify(expr)
    symbols = sorted(expr.free_symbols, key=str)
    if not symbols:
        return sp.nsimplify(expr)
    field = sp.field(symbols, sp.QQ)[0]
    return field.from_expr(expr).as_expr()


def _tidy_logs(expr):
    """Bring every log's argument to p/q form where it is rational."""
    def tidy(arg):
        arg = sp.expand(arg)
        return _rational(arg) if not arg.has(sp.Pow) or all(
            p.exp.is_integer for p in arg.atoms(sp.Pow)) else arg
    return expr.replace(lambda e: isinstance(e, sp.log), lambda e: sp.log(tidy(e.args[0])))


def _logdet(M):
    return sp.log(_rational(M.det()))


def _substitute(expr, generic, actual):
    return expr.subs(dict(zip(generic, actual)), simultaneous=True)


def _expected_log_ratio(log_num, log_den, noises, stand_ins):
    """E[log_num - log_den] with generic stand-ins replaced afterwards.

    The expectation is taken while the precisions are plain symbols (a cheap
    polynomial); the rational remainder is then cancelled once.
    """
    expr = gaussian_expectation(sp.expand(log_num - log_den), noises)
    for generic, actual in stand_ins:
        expr = _substitute(expr, generic, actual)
    terms = sp.Add.make_args(sp.expand(expr))
    logs = sp.Add(*[t for t in terms if t.has(sp.log)])
    return logs + _rational(sp.Add(*[t for t in terms if not t.has(sp.log)]))


@lru_cache(maxsize=None)
def linear_gaussian(D=2, K=2, diagonal_noise=False):
    """Derive the closed forms of x = W z + eps for symbolic D x K ``W``.

    Parameters
    ----------
    D, K : int
        Data and latent dimensions (1 or 2 keep the expressions small).
    diagonal_noise : bool
        ``Psi = diag(psi1, ..., psiD)`` instead of a full symmetric matrix.

    Returns
    -------
    dict
        Symbols ``W``, ``Psi``, ``x``, ``z`` and the derived
        ``posterior_precision`` P (minus the Hessian of log p(x, z) in z),
        ``posterior_cov`` P^-1, ``posterior_mean`` (the root of the gradient;
        linear in x), ``marginal_cov`` (Bayes' rule: the inverse of minus the
        Hessian in x of log p(x, z) - log p(z | x)),
        ``mutual_information`` E[log p(x | z) - log p(x)] and, from
        :func:`mean_field` applied to P, ``mean_field_variances`` and
        ``mean_field_kl``.

    Examples
    --------
    >>> d = linear_gaussian(1, 1)
    >>> d["posterior_precision"]
    Matrix([[(Psi11 + W11**2)/Psi11]])
    >>> d["marginal_cov"]
    Matrix([[Psi11 + W11**2]])
    >>> d["mutual_information"]
    -log(Psi11)/2 + log(Psi11 + W11**2)/2
    """
    W = sp.Matrix(D, K, lambda i, j: sp.Symbol(f"W{i + 1}{j + 1}", real=True))
    if diagonal_noise:
        Psi = sp.diag(*[sp.Symbol(f"psi{i + 1}", positive=True) for i in range(D)])
    else:
        Psi = _symmetric("Psi", D)
    x, z, eps = _vector("x", D), _vector("z", K), _vector("e", D)
    prior = gaussian_log_density(z, sp.zeros(K, 1), sp.eye(K))
    log_joint = prior + gaussian_log_density(x, W * z, Psi)

    P = (-sp.hessian(log_joint, list(z))).applyfunc(_rational)
    root = sp.solve([log_joint.diff(zi) for zi in z], list(z), dict=True)[0]
    mean = sp.Matrix([_rational(root[zi]) for zi in z])
    cov = P.inv().applyfunc(_rational)

    # Bayes' rule: log p(x) = log p(x, z) - log p(z | x), at any z (here the mean).
    log_post = gaussian_log_density(z, mean, cov)
    log_marginal = (log_joint - log_post).subs(root, simultaneous=True)
    marginal_cov = (-sp.hessian(log_marginal, list(x))).applyfunc(_rational).inv().applyfunc(_rational)

    # I(X;Z) = E_{p(x,z)}[log p(x|z) - log p(x)], x = W z + eps.
    Lam_noise, Lam_marg = _generic("q", D), _generic("l", D)
    ld_noise, ld_marg = sp.symbols("logdet_noise logdet_marginal")
    sample = dict(zip(x, W * z + eps))
    mi = _expected_log_ratio(
        gaussian_log_density(x, W * z, None, Lam_noise, ld_noise).subs(sample, simultaneous=True),
        gaussian_log_density(x, sp.zeros(D, 1), None, Lam_marg, ld_marg).subs(sample, simultaneous=True),
        [(list(z), sp.eye(K)), (list(eps), Psi)],
        [(Lam_noise, Psi.inv()), (Lam_marg, marginal_cov.inv()),
         ([ld_noise, ld_marg], [_logdet(Psi), _logdet(marginal_cov)])])
    mf = mean_field(K)
    p = _symmetric("p", K)
    return {"W": W, "Psi": Psi, "x": x, "z": z,
            "posterior_precision": P, "posterior_cov": cov, "posterior_mean": mean,
            "marginal_cov": marginal_cov, "mutual_information": mi,
            "mean_field_variances": [_substitute(v, p, P) for v in mf["variances"]],
            "mean_field_kl": _tidy_logs(_substitute(mf["kl"], p, P))}


@lru_cache(maxsize=None)
def mean_field(K=2):
    """Best mean-field Gaussian for N(m, P^-1) by solving dKL = 0 (App. C.3).

    The posterior precision is the generic symmetric matrix ``p`` (entries
    p11, p12, ...); substitute a model's own P into the results.

    Parameters
    ----------
    K : int
        Latent dimension.

    Returns
    -------
    dict
        ``precision`` the generic P, ``kl_general`` KL[N(mu, diag(s)) ||
        N(m, P^-1)] as derived (d = mu - m), ``variances`` the stationary
        s_i, ``mean_offset`` the stationary mu - m, ``kl`` the KL there.

    Examples
    --------
    >>> r = mean_field(2)
    >>> r["variances"], r["mean_offset"]
    ([1/p11, 1/p22], [0, 0])
    >>> r["kl"]
    log(p11)/2 + log(p22)/2 - log(p11*p22 - p12**2)/2
    """
    P = _symmetric("p", K)
    s = [sp.Symbol(f"s{i + 1}", positive=True) for i in range(K)]
    d = [sp.Symbol(f"d{i + 1}", real=True) for i in range(K)]   # mu - m
    eta = [sp.Symbol(f"eta{i + 1}", real=True) for i in range(K)]
    # u ~ q = N(mu, diag(s)) as u = mu + sqrt(s) eta; m = 0 without loss.
    u = sp.Matrix([d[i] + sp.sqrt(s[i]) * eta[i] for i in range(K)])
    log_q = gaussian_log_density(u, sp.Matrix(d), sp.diag(*s))
    log_p = gaussian_log_density(u, sp.zeros(K, 1), None, P, -sp.log(P.det()))
    kl = sp.expand(gaussian_expectation(sp.expand(log_q - log_p), [(eta, sp.eye(K))]))
    root = sp.solve([kl.diff(v) for v in s + d], s + d, dict=True)[0]
    kl_opt = sp.expand_log(kl.subs(root), force=True)
    return {"precision": P, "kl_general": kl, "variances": [root[v] for v in s],
            "mean_offset": [root[v] for v in d],
            "kl": sp.logcombine(sp.simplify(kl_opt), force=False) if K == 1 else kl_opt}


@lru_cache(maxsize=None)
def univariate():
    """The univariate model of docs/theory.md (T.18) (paper Eq. 5): W = theta, Psi = sigma2 - theta^2.

    Returns
    -------
    dict
        ``theta``, ``sigma2`` and the sympy expressions ``marginal_var``,
        ``posterior_mean_coef`` (the posterior mean is this times x),
        ``posterior_var``, ``mutual_information``, ``mean_field_kl``.

    Examples
    --------
    >>> u = univariate()
    >>> u["marginal_var"], u["posterior_mean_coef"], u["posterior_var"]
    (sigma2, theta/sigma2, (sigma2 - theta**2)/sigma2)
    >>> u["mutual_information"], u["mean_field_kl"]
    (log(sigma2)/2 - log(sigma2 - theta**2)/2, 0)
    """
    theta = sp.Symbol("theta", real=True)
    sigma2 = sp.Symbol("sigma2", positive=True)
    d = linear_gaussian(1, 1)
    sub = {d["W"][0, 0]: theta, d["Psi"][0, 0]: sigma2 - theta**2}
    x = d["x"][0]
    return {"theta": theta, "sigma2": sigma2,
            "marginal_var": _rational(d["marginal_cov"][0, 0].subs(sub)),
            "posterior_mean_coef": _rational(d["posterior_mean"][0].subs(sub) / x),
            "posterior_var": _rational(d["posterior_cov"][0, 0].subs(sub)),
            "mutual_information": sp.expand_log(d["mutual_information"].subs(sub)),
            "mean_field_kl": sp.simplify(d["mean_field_kl"].subs(sub))}


@lru_cache(maxsize=None)
def jtex():
    """The 2-D JTEx family (docs/theory.md (T.19), paper Eq. 3) with a symbolic data covariance.

    W = chol(A A^T + diag(b1, b2)) (lower Cholesky factor, by sympy),
    Psi = diag(sigma2 - b1, sigma2 - b2), data second moment S (symmetric).

    Returns
    -------
    dict
        Symbols ``A`` (2x2), ``b`` (b1, b2), ``sigma2``, ``S`` and expressions
        ``W``, ``posterior_precision``, ``marginal_cov``,
        ``mutual_information``, ``mean_field_kl``, ``mle_term``
        KL[N(0, S) || N(0, C)] (as E_{x~N(0,S)}[log N(x; 0, S) - log N(x; 0, C)])
        and ``vae_objective`` (their sum, docs/theory.md (T.15)).

    Examples
    --------
    >>> j = jtex()
    >>> j["marginal_cov"] - (j["A"] * j["A"].T + j["sigma2"] * sp.eye(2))
    Matrix([
    [0, 0],
    [0, 0]])
    """
    A = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"a{i + 1}{j + 1}", real=True))
    b = sp.symbols("b1 b2", nonnegative=True)
    sigma2 = sp.Symbol("sigma2", positive=True)
    S = _symmetric("S", 2)
    W = (A * A.T + sp.diag(*b)).cholesky(hermitian=False)
    d = linear_gaussian(2, 2, diagonal_noise=True)
    sub = dict(zip(d["W"], W))
    sub.update({d["Psi"][i, i]: sigma2 - b[i] for i in range(2)})
    marginal_cov = d["marginal_cov"].subs(sub, simultaneous=True).applyfunc(sp.expand)
    x = _vector("u", 2)
    Lam_S, Lam_C = _generic("ls", 2), _generic("lc", 2)
    ld_S, ld_C = sp.symbols("logdet_S logdet_C")
    mle = _expected_log_ratio(
        gaussian_log_density(x, sp.zeros(2, 1), None, Lam_S, ld_S),
        gaussian_log_density(x, sp.zeros(2, 1), None, Lam_C, ld_C),
        [(list(x), S)],
        [(Lam_S, S.inv()), (Lam_C, marginal_cov.inv()),
         ([ld_S, ld_C], [_logdet(S), _logdet(marginal_cov)])])
    mf = _tidy_logs(d["mean_field_kl"].subs(sub, simultaneous=True))
    return {"A": A, "b": b, "sigma2": sigma2, "S": S, "W": W,
            "posterior_precision": d["posterior_precision"].subs(sub, simultaneous=True),
            "marginal_cov": marginal_cov,
            "mutual_information": _tidy_logs(d["mutual_information"].subs(sub, simultaneous=True)),
            "mean_field_kl": mf, "mle_term": mle, "vae_objective": mle + mf}


def to_latex(derivation, keys=None):
    """LaTeX of a derivation's expressions (``sympy.latex``), ready for a paper.

    Parameters
    ----------
    derivation : dict
        A result of :func:`linear_gaussian`, :func:`univariate`,
        :func:`mean_field` or :func:`jtex`.
    keys : list of str, optional
        The entries to convert (default: every sympy expression, matrix or
        list of expressions, the model's symbols included).

    Returns
    -------
    dict
        key -> LaTeX string (a list of strings for a list entry). The symbol
        ``sigma2`` is written sigma^2.

    Examples
    --------
    >>> tex = to_latex(univariate(), ["posterior_var", "mutual_information"])
    >>> print(tex["posterior_var"])
    \\frac{\\sigma^{2} - \\theta^{2}}{\\sigma^{2}}
    >>> print(to_latex(mean_field(2), ["kl"])["kl"])
    \\frac{\\log{\\left(p_{11} \\right)}}{2} + \\frac{\\log{\\left(p_{22} \\right)}}{2} - \\frac{\\log{\\left(p_{11} p_{22} - p_{12}^{2} \\right)}}{2}
    """
    if not isinstance(derivation, dict):
        raise TypeError(f"derivation must be a dict of sympy expressions, got {type(derivation).__name__}")
    if keys is None:
        keys = [k for k, v in derivation.items()
                if isinstance(v, (sp.Basic, sp.MatrixBase))
                or isinstance(v, (list, tuple)) and all(isinstance(e, sp.Basic) for e in v)]
    missing = [k for k in keys if k not in derivation]
    if missing:
        raise ValueError(f"keys must name entries of derivation ({sorted(derivation)}); got {missing}")

    def tex(expr):
        names = {x: r"\sigma^{2}" for x in sp.sympify(expr).free_symbols if x.name == "sigma2"}
        return sp.latex(expr, symbol_names=names)

    return {k: [tex(e) for e in derivation[k]] if isinstance(derivation[k], (list, tuple)) else tex(derivation[k])
            for k in keys}
