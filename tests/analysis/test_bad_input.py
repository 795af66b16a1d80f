"""Bad input to the exact theory: a ValueError or TypeError naming the argument, never a NaN."""
import os
import subprocess
import sys

import numpy as np
import pytest

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian, jtex_b_landscape, jtex_vae_optimum

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S_TRUE = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)
GRID = np.linspace(0, JTEX_SIGMA2, 5)[:-1]


@pytest.mark.parametrize("call, error, words", [
    # A singular A A^T + diag(b): a raw LinAlgError before
    (lambda: LinearGaussian.jtex(np.zeros((2, 2)), [0, 0], 0.01), ValueError, ["A A^T + diag(b)", "b > 0"]),
    # a NaN row with its argmin on a NaN cell before
    (lambda: jtex_b_landscape(np.zeros((2, 2)), JTEX_SIGMA2, GRID, GRID), ValueError, ["A A^T", "b1, b2"]),
    # "min() arg is an empty sequence" after overflow warnings before
    (lambda: jtex_vae_optimum(1e200 * np.eye(2), JTEX_B, JTEX_SIGMA2), ValueError, ["data_cov", "eigenvalues"]),
    (lambda: jtex_vae_optimum(S_TRUE, JTEX_B * 1e-40, 1e-40), ValueError, ["sigma2", "1e-30"]),
    (lambda: jtex_b_landscape(1e10 * JTEX_A, JTEX_SIGMA2, GRID, GRID), ValueError, ["A", "magnitude"]),
    # D = 0 or K = 0: IndexError before
    (lambda: LinearGaussian(np.zeros((0, 1)), np.zeros((0, 0))), ValueError, ["W", "D >= 1"]),
    (lambda: LinearGaussian(np.zeros((2, 0)), np.eye(2)), ValueError, ["W", "K >= 1"]),
    (lambda: LinearGaussian.jtex(np.zeros((0, 1)), np.zeros(0), 1.0), ValueError, ["A", "D >= 1"]),
    # W = 1e200: a silent NaN mutual information before
    (lambda: LinearGaussian(1e200 * np.ones((2, 1)), np.eye(2)), ValueError, ["W", "magnitude"]),
    (lambda: LinearGaussian(np.ones((2, 1)), 1e200 * np.eye(2)), ValueError, ["noise_cov", "magnitude"]),
    # strings are not numbers (the README promises a TypeError)
    (lambda: LinearGaussian.univariate("0.5", 1.0), TypeError, ["theta"]),
    (lambda: LinearGaussian.jtex(JTEX_A, ["0.006", "0.006"], 0.01), TypeError, ["b"]),
    (lambda: jtex_b_landscape(JTEX_A, "0.01", GRID, GRID), TypeError, ["sigma2"]),
    (lambda: jtex_vae_optimum(S_TRUE, JTEX_B, np.array(["0.01"])), TypeError, ["sigma2"]),
])
def test_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error) as err:
        call()
    for word in words:
        assert word in str(err.value)


@pytest.mark.slow
def test_the_valid_range_still_works_at_its_edges():
    # warnings are errors in this suite: no overflow inside the range
    s2 = 1e30
    opt = jtex_vae_optimum(4e11 * s2 * np.diag([1.0, 2.0]), [0.3 * s2, 0.5 * s2], s2, restarts=2)
    assert np.isfinite(opt.objective)
    land = jtex_b_landscape(1e6 * np.sqrt(s2) * np.eye(2), s2, GRID * s2 / JTEX_SIGMA2, [0.0])
    assert np.all(np.isfinite(land["vae_objective"]))
    assert np.isfinite(LinearGaussian(1e50 * np.ones((2, 1)), 1e100 * np.eye(2)).mutual_information())
    assert LinearGaussian.univariate(np.float32(0.5), 1).mutual_information() > 0


def _cli(*argv):
    return subprocess.run([sys.executable, "-m", "analysis", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": ROOT})


@pytest.mark.parametrize("argv, words", [
    (["figure1", "--grid", "100000"], ["--grid", "2000"]),     # a MemoryError before
    (["figure1", "--grid", "1"], ["--grid", ">= 2"]),
    (["figure1", "--n-points", "0"], ["--n-points"]),
])
@pytest.mark.slow
def test_cli_bad_input(argv, words, tmp_path):
    proc = _cli(*argv, "--out", str(tmp_path / "figs"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr
    assert not (tmp_path / "figs").exists()


@pytest.mark.slow
def test_cli_out_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = _cli("figure1", "--grid", "2", "--n-points", "1", "--out", str(tmp_path / "file" / "figs"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--out" in proc.stderr
