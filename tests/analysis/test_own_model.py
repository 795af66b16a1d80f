"""Landscapes of a user's own model (analysis.figures, python -m analysis) and symbolic.to_latex.

References: the univariate model's formulas typed from the paper (Eq. 5:
p(x) = N(0, sigma2), posterior variance 1 - theta^2 / sigma2, I(X;Z) =
-1/2 log(1 - theta^2 / sigma2)) and the numpy reference of ``conftest.py``.
"""
import io
import json

import numpy as np
import pytest
import sympy as sp
from matplotlib.figure import Figure

from analysis.__main__ import main
from analysis.figures import MAX_GRID, MAX_THETA_GRID, figure1, landscape_figure, univariate_figure
from analysis.symbolic import linear_gaussian, mean_field, to_latex, univariate

from .conftest import _jtex_reference

A_USER = np.array([[1.0, 0.3], [-0.5, 0.8]])


def test_landscape_of_a_user_model_matches_the_reference():
    sigma2, grid = 0.05, 12
    out = landscape_figure(A_USER, sigma2, b=[0.01, 0.02], grid=grid)
    assert isinstance(out["figure"], Figure) and len(out["figure"].axes) == 4   # 2 panels + colourbars
    b = np.linspace(0, sigma2, grid + 1)[:-1]
    np.testing.assert_array_equal(out["b1"], b)
    S = A_USER @ A_USER.T + sigma2 * np.eye(2)
    ref = np.array([[_jtex_reference(A_USER, [b1, b2], sigma2, S)["objective"] for b2 in b] for b1 in b])
    np.testing.assert_allclose(out["vae_objective"], ref, rtol=1e-9, atol=1e-12)
    i, j = np.unravel_index(np.argmin(ref), ref.shape)
    assert out["optimum"] == (b[i], b[j])
    assert out["truth_b"] == (0.01, 0.02)
    np.testing.assert_allclose(out["truth_objective"], _jtex_reference(A_USER, [0.01, 0.02], sigma2)["mf_kl"],
                               rtol=1e-10)
    # Default truth: the paper's proportion 0.6 sigma2.
    assert landscape_figure(A_USER, sigma2, grid=3)["truth_b"] == pytest.approx((0.03, 0.03))


def test_univariate_is_flat_and_matches_the_paper():
    sigma2 = 2.0
    out = univariate_figure(sigma2, grid=51)
    theta = out["theta"]
    assert theta.shape == (51,) and np.all(np.abs(theta) < np.sqrt(sigma2))
    np.testing.assert_allclose(theta, -theta[::-1], atol=1e-15)
    assert np.max(np.abs(out["vae_objective"])) < 1e-12          # non-identifiable: flat
    np.testing.assert_allclose(out["posterior_var"], 1 - theta**2 / sigma2, rtol=1e-12)
    np.testing.assert_allclose(out["mutual_information"], -0.5 * np.log(1 - theta**2 / sigma2),
                               rtol=1e-10, atol=1e-15)
    assert isinstance(out["figure"], Figure) and len(out["figure"].axes) == 3


@pytest.mark.parametrize("call, err, name", [
    (lambda: landscape_figure(A_USER, 0.05, grid=MAX_GRID + 1), ValueError, "grid"),
    (lambda: landscape_figure(A_USER, 0.05, grid=10**12), ValueError, "grid"),
    (lambda: landscape_figure(A_USER, 0.05, grid=1), ValueError, "grid"),
    (lambda: landscape_figure(np.eye(3), 0.05), ValueError, "A"),
    (lambda: landscape_figure(A_USER, -1.0), ValueError, "sigma2"),
    (lambda: landscape_figure(A_USER, 0.05, b=[0.05, 0.0]), ValueError, "b"),
    (lambda: univariate_figure(1.0, grid=MAX_THETA_GRID + 1), ValueError, "grid"),
    (lambda: univariate_figure(0.0), ValueError, "sigma2"),
    (lambda: univariate_figure("one"), TypeError, "sigma2"),
    (lambda: figure1("unused", grid=10**9), ValueError, "grid"),
])
def test_bad_arguments(call, err, name):
    with pytest.raises(err, match=name):
        call()


def test_cli_landscape_and_univariate(tmp_path):
    buf = io.StringIO()
    assert main(["landscape", "--A", "1,0.3;-0.5,0.8", "--sigma2", "0.05", "--grid", "20",
                 "--out", str(tmp_path), "--json"], out=buf) == 0
    summary = json.loads(buf.getvalue())
    ref = landscape_figure(A_USER, 0.05, grid=20)
    assert summary["optimum_B"] == list(ref["optimum"])
    assert summary["min_objective"] == pytest.approx(ref["vae_objective"].min(), rel=1e-12)
    png = tmp_path / "landscape.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 300_000
    buf = io.StringIO()
    assert main(["univariate", "--sigma2", "2", "--grid", "31", "--out", str(tmp_path)], out=buf) == 0
    assert "univariate.png" in buf.getvalue() and (tmp_path / "univariate.png").stat().st_size > 10_000


@pytest.mark.parametrize("argv, flag", [
    (["landscape", "--A", "1,2;3", "--sigma2", "1", "--out", "x"], "--A"),
    (["landscape", "--A", "1,a;3,4", "--sigma2", "1", "--out", "x"], "--A"),
    (["landscape", "--A", "1,0;0,1", "--sigma2", "0", "--out", "x"], "--sigma2"),
    (["landscape", "--A", "1,0;0,1", "--sigma2", "1", "--b", "1,0", "--out", "x"], "--b"),
    (["landscape", "--A", "1,0;0,1", "--sigma2", "1", "--grid", "100000", "--out", "x"], "--grid"),
    (["univariate", "--sigma2", "nan", "--out", "x"], "--sigma2"),
    (["univariate", "--sigma2", "1", "--grid", str(10**10), "--out", "x"], "--grid"),
    (["figure1", "--grid", str(10**9), "--out", "x"], "--grid"),
])
def test_cli_bad_arguments(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_to_latex():
    u = univariate()
    tex = to_latex(u)
    assert set(tex) == {"theta", "sigma2", "marginal_var", "posterior_mean_coef", "posterior_var",
                        "mutual_information", "mean_field_kl"}
    assert tex["marginal_var"] == tex["sigma2"] == r"\sigma^{2}"
    assert tex["posterior_var"] == sp.latex(u["posterior_var"]).replace(r"\sigma_{2}", r"\sigma^{2}")
    assert r"\sigma_{2}" not in "".join(tex.values())
    d = linear_gaussian(1, 1)
    assert to_latex(d, ["marginal_cov"])["marginal_cov"] == sp.latex(d["marginal_cov"])
    kl = to_latex(mean_field(2), ["variances", "kl"])
    assert kl["variances"] == [r"\frac{1}{p_{11}}", r"\frac{1}{p_{22}}"]
    with pytest.raises(ValueError, match="keys"):
        to_latex(u, ["nope"])
    with pytest.raises(TypeError, match="derivation"):
        to_latex([u["posterior_var"]])
