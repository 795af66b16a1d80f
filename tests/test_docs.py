"""The theory lives in the repository: citations point into it, and its index names real functions.

* No source, test, benchmark or example file and not the README cites a
  file outside the repository (the old specification beside the checkout,
  or its section numbers); they cite ``docs/theory.md`` instead.
* Every function named in the README's "Equation → function index" (and in
  ``docs/theory.md``) imports, and the index lists exactly the equation
  numbers the document defines, so neither can rot.
"""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
README = ROOT / "README.md"

# Built from pieces so that this file does not match its own patterns.
OUTSIDE = re.compile(re.escape("../" + "shared") + "|" + r"\b" + "SP" + r"EC(\.md\b|\s+\d)")
DOTTED = re.compile(r"`((?:analysis|training)(?:\.\w+)+)`")
EQUATION = re.compile(r"\(T\.(\d+)\)")


def _cited_files():
    files = [README]
    for folder in ("analysis", "training", "tests", "benchmarks", "examples", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md", ".cfg", ".txt", ".json") and "__pycache__" not in path.parts:
                files.append(path)
    return files


def _index():
    """The README's index section: from its heading to the next level-2 heading."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Equation → function index\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, "README.md has no '## Equation → function index' section"
    return match.group(1)


def _resolve(name):
    """The object a dotted name denotes: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


def test_no_citation_points_outside_the_repository():
    offenders = []
    for path in _cited_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "cite docs/theory.md instead of the outside specification:\n" + "\n".join(offenders)


def _unresolvable(names):
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as err:
            missing.append(f"{name}: {err!r}")
    return missing


def test_index_names_exist():
    names = sorted(set(DOTTED.findall(_index())))
    assert len(names) > 50, names
    missing = _unresolvable(names)
    assert not missing, "the README's equation index names what does not exist:\n" + "\n".join(missing)


def test_theory_names_exist():
    missing = _unresolvable(sorted(set(DOTTED.findall(THEORY.read_text(encoding="utf-8")))))
    assert not missing, "docs/theory.md names what does not exist:\n" + "\n".join(missing)


def test_index_lists_every_equation_once():
    defined = [int(n) for n in re.findall(r"^\*\*\(T\.(\d+)\)", THEORY.read_text(encoding="utf-8"), flags=re.M)]
    assert defined == list(range(1, len(defined) + 1)), "docs/theory.md must number its equations (T.1), (T.2), ..."
    rows = [int(n) for n in re.findall(r"^\| \(T\.(\d+)\) \|", _index(), flags=re.M)]
    assert sorted(rows) == defined, (sorted(set(defined) - set(rows)), sorted(set(rows) - set(defined)))


@pytest.mark.parametrize("path", ["analysis", "training", "tests", "README.md"], ids=str)
def test_cited_equations_exist(path):
    """Every '(T.n)' cited in code, tests and the README is an equation of docs/theory.md."""
    defined = set(re.findall(r"^\*\*\(T\.(\d+)\)", THEORY.read_text(encoding="utf-8"), flags=re.M))
    target = ROOT / path
    files = [target] if target.is_file() else sorted(p for p in target.rglob("*.py") if "__pycache__" not in p.parts)
    unknown = [f"{p.relative_to(ROOT)}: (T.{n})" for p in files
               for n in EQUATION.findall(p.read_text(encoding="utf-8")) if n not in defined]
    assert not unknown, unknown


@pytest.mark.parametrize("package", ["analysis", "training"])
def test_theory_covers_every_public_name(package):
    text = THEORY.read_text(encoding="utf-8")
    names = importlib.import_module(package).__all__
    missing = [n for n in names if not re.search(r"\b" + re.escape(n) + r"\b", text)]
    assert not missing, f"docs/theory.md names no equation for {package}.{missing}"
