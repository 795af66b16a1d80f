"""Figure 1 (analysis.figures) and the command line (python -m analysis)."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import pytest

from analysis import JTEX_A, JTEX_B, JTEX_SIGMA2, LinearGaussian
from analysis.__main__ import main
from analysis.figures import ellipse, figure1

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILES = [f"figure1{p}.png" for p in "ABCDEF"] + ["figure1.png"]


def _check_png(path, min_bytes=10_000):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > min_bytes, (path, len(data))
    img = matplotlib.image.imread(path)
    # Not a blank canvas: many distinct colours (packed to one integer per pixel).
    px = np.round(img[::2, ::2, :3] * 255).astype(np.uint32)
    colours = np.unique(px[..., 0] << 16 | px[..., 1] << 8 | px[..., 2])
    assert colours.size > 50, (path, colours.size)
    return img.shape


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """Start ``python -m analysis figure1`` in the background (it overlaps the in-process tests)."""
    work = tmp_path_factory.mktemp("cli")
    out = work / "figs"
    with open(work / "stdout", "w") as so, open(work / "stderr", "w") as se:
        proc = subprocess.Popen([sys.executable, "-m", "analysis", "figure1", "--out", str(out), "--grid", "40",
                                 "--n-points", "300"], cwd=ROOT, env=_env(), stdout=so, stderr=se)
    yield proc, work, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def small_figure(tmp_path_factory, cli_run):
    out = tmp_path_factory.mktemp("fig")
    backend, rc = matplotlib.get_backend(), dict(matplotlib.rcParams)
    pyplot_loaded = "matplotlib.pyplot" in sys.modules
    summary = figure1(out, grid=30, n_points=300, seed=1)
    return out, summary, (backend, rc, pyplot_loaded)


@pytest.mark.slow
def test_figure1_writes_pngs(small_figure):
    out, summary, _ = small_figure
    for name in FILES:
        assert (out / name).is_file()
    for p in "ABCDEF":
        h, w, _ = _check_png(out / f"figure1{p}.png")
        assert (w, h) == (600, 480)                            # 5 x 4 in at 120 dpi
    h, w, _ = _check_png(out / "figure1.png", min_bytes=50_000)
    assert w > 2 * 600 and h > 480
    assert sorted(Path(p).name for p in summary["paths"].values()) == sorted(FILES)


@pytest.mark.slow
def test_figure1_leaves_global_state_alone(small_figure):
    _, _, (backend, rc, pyplot_loaded) = small_figure
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc
    if not pyplot_loaded:
        assert "matplotlib.pyplot" not in sys.modules


@pytest.mark.slow
def test_figure1_summary_numbers(small_figure):
    _, s, _ = small_figure
    S = JTEX_A @ JTEX_A.T + JTEX_SIGMA2 * np.eye(2)
    truth = LinearGaussian.jtex(JTEX_A, JTEX_B, JTEX_SIGMA2)
    np.testing.assert_allclose(s["objective_truth"], truth.vae_objective(S), rtol=1e-12)
    assert abs(s["objective_truth"] - 0.53235) < 5e-5 and abs(s["objective_optimum"] - 0.19618) < 5e-5
    learned = LinearGaussian.jtex(np.array(s["A_optimum"]), JTEX_B, JTEX_SIGMA2)
    np.testing.assert_allclose(s["objective_optimum"], learned.vae_objective(S), rtol=1e-10)
    np.testing.assert_allclose(s["mle_term_optimum"] + s["pm_term_optimum"], s["objective_optimum"], rtol=1e-12)
    np.testing.assert_allclose(s["AAt_optimum"], learned.marginal_cov() - JTEX_SIGMA2 * np.eye(2), atol=1e-12)
    grid = np.linspace(0, JTEX_SIGMA2, 31)[:-1]
    assert s["landscape_optimum_B"] == (grid[-1], grid[0])
    lo, hi = s["mi_range"]
    assert lo < s["mi_at_landscape_optimum"] < hi
    np.testing.assert_allclose(
        s["mi_at_landscape_optimum"],
        LinearGaussian.jtex(JTEX_A, [grid[-1], grid[0]], JTEX_SIGMA2).mutual_information(), rtol=1e-9)
    np.testing.assert_allclose(s["aggregated_cov_optimum"], learned.aggregated_posterior_cov(S), rtol=1e-12)


@pytest.mark.parametrize("kwargs,err,name", [
    (dict(grid=1), ValueError, "grid"),
    (dict(grid=2.5), TypeError, "grid"),
    (dict(n_points=0), ValueError, "n_points"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed="a"), TypeError, "seed"),
])
def test_figure1_bad_arguments(tmp_path, kwargs, err, name):
    with pytest.raises(err, match=rf"\b{name}\b"):
        figure1(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())                       # fails before writing anything


def test_figure1_out_dir_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="out_dir"):
        figure1(f, grid=2, n_points=1)


def test_ellipse_is_the_mahalanobis_contour():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((2, 2))
    cov = G @ G.T + 0.1 * np.eye(2)
    for r in (1.0, 2.0, 3.0):
        pts = ellipse(cov, r, n=50)
        np.testing.assert_allclose(np.einsum("ni,ij,nj->n", pts, np.linalg.inv(cov), pts), r**2, rtol=1e-10)
        np.testing.assert_allclose(pts[0], pts[-1], atol=1e-12)
    with pytest.raises(ValueError, match="cov"):
        ellipse([[1.0, 2.0], [2.0, 1.0]])


def test_cli_numbers_in_process():
    buf = io.StringIO()
    assert main(["numbers", "--json"], out=buf) == 0
    nums = json.loads(buf.getvalue())
    assert abs(nums["objective_truth"] - 0.53235) < 5e-5
    assert abs(nums["objective_optimum"] - 0.19618) < 5e-5
    assert abs(nums["mle_term_optimum"] - 0.1621) < 1e-4 and abs(nums["pm_term_optimum"] - 0.0341) < 1e-4
    assert abs(nums["expected_ll_truth"] + 2.9708) < 1e-4 and abs(nums["expected_ll_optimum"] + 3.1328) < 1e-4
    buf = io.StringIO()
    assert main(["numbers"], out=buf) == 0
    text = buf.getvalue()
    for key in ("objective_truth", "objective_optimum", "expected_ll_optimum", "AAt_optimum"):
        assert key in text


@pytest.mark.parametrize("argv,message", [
    ([], "required"),
    (["bogus"], "invalid choice"),
    (["figure1"], "--out"),
    (["figure1", "--out", "x", "--grid", "1"], "--grid"),
    (["figure1", "--out", "x", "--grid", "ten"], "--grid"),
    (["figure1", "--out", "x", "--seed", "-2"], "--seed"),
    (["figure1", "--out", "x", "--n-points", "0"], "--n-points"),
])
def test_cli_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["figure1", "--out", str(f)])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_figure1_subprocess(cli_run):
    proc, work, out = cli_run
    returncode = proc.wait(timeout=300)
    stdout, stderr = (work / "stdout").read_text(), (work / "stderr").read_text()
    assert returncode == 0, stderr
    for name in FILES:
        _check_png(out / name)
        assert str(out / name) in stdout
    assert "objective_optimum" in stdout and "0.196" in stdout

