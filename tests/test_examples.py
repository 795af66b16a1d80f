"""Every script in examples/ runs (in-process, so the sympy caches are shared) and says what it should.

The PyTorch example runs only where torch is installed (it is not a dependency).
"""
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(name, monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *argv])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_every_example_is_tested():
    tested = {"landscape_of_your_model.py", "autograd_linear_vae.py", "pytorch_linear_vae.py",
              "free_vs_triangular.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} - {"conftest.py"} == tested


@pytest.mark.slow
def test_landscape_of_your_model(monkeypatch, capsys, tmp_path):
    out = _run("landscape_of_your_model.py", monkeypatch, capsys, str(tmp_path))
    assert "optimum B = diag(" in out
    for png in ("landscape.png", "univariate.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_autograd_linear_vae(monkeypatch, capsys):
    out = _run("autograd_linear_vae.py", monkeypatch, capsys)   # raises AssertionError if off the optimum
    assert "encoder = exact posterior" in out


def test_pytorch_linear_vae(monkeypatch, capsys):
    pytest.importorskip("torch")
    out = _run("pytorch_linear_vae.py", monkeypatch, capsys)
    assert "encoder = exact posterior" in out


@pytest.mark.slow
def test_free_vs_triangular(monkeypatch, capsys):
    out = _run("free_vs_triangular.py", monkeypatch, capsys)
    rows = {line[:28].strip(): line[28:].split() for line in out.splitlines()[1:3]}
    assert float(rows["free W (MLE)"][0]) == 0.0
    assert float(rows["JTEx, triangular W"][0]) == pytest.approx(0.19618, abs=1e-5)
    assert "fails as it should" in out
