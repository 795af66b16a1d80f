"""The documentation stays true: citations point into the repository, names import, links resolve.

* No source, test, benchmark or example file and not the README cites a
  file outside the repository (the old specification beside the checkout,
  or its section numbers); they cite ``docs/theory.md`` instead.
* Every function named in the "Equation → function index"
  (``docs/equations.md``), in ``docs/theory.md``, in the README, the other
  docs pages and ``benchmarks/README.md`` imports, and the index lists
  exactly the equation numbers the document defines, so neither can rot.
* Every relative Markdown link of the README, ``docs/*.md`` and
  ``benchmarks/README.md`` resolves: the file exists and a ``#anchor``
  names one of its headings (GitHub's slugs).
* The README is a front page: at most 200 lines, and its examples run.
"""
import contextlib
import importlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
THEORY = DOCS / "theory.md"
EQUATIONS = DOCS / "equations.md"
DESIGN = DOCS / "design.md"
README = ROOT / "README.md"
BENCHMARKS = ROOT / "benchmarks" / "README.md"
README_MAX_LINES = 200

# Built from pieces so that this file does not match its own patterns.
OUTSIDE = re.compile(re.escape("../" + "shared") + "|" + r"\b" + "SP" + r"EC(\.md\b|\s+\d)")
DOTTED = re.compile(r"`((?:analysis|training)(?:\.\w+)+)`")
EQUATION = re.compile(r"\(T\.(\d+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", flags=re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", flags=re.M)


def _markdown_pages():
    """The README, every page under docs/ and benchmarks/README.md."""
    return [README, *sorted(DOCS.glob("*.md")), BENCHMARKS]


def _page_id(path):
    return str(path.relative_to(ROOT))


def _cited_files():
    files = [README]
    for folder in ("analysis", "training", "tests", "benchmarks", "examples", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md", ".cfg", ".txt", ".json") and "__pycache__" not in path.parts:
                files.append(path)
    return files


def _index():
    """The index: docs/equations.md from its '# Equation → function index' heading on."""
    text = EQUATIONS.read_text(encoding="utf-8")
    match = re.search(r"^# Equation → function index\n(.*?)(?=^#{1,2} |\Z)", text, flags=re.M | re.S)
    assert match, "docs/equations.md has no '# Equation → function index' heading"
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


def _unresolvable(names):
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as err:
            missing.append(f"{name}: {err!r}")
    return missing


def _without_code(text):
    """Markdown text with fenced code blocks and inline code spans blanked (links there are not links)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return INLINE_CODE.sub("", text)


def github_slug(heading):
    """GitHub's anchor for a heading: lowercase, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)           # a link's text only
    text = "".join(c for c in text.strip().lower() if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path):
    """Every heading anchor of a Markdown file (repeated headings get -1, -2, ... as on GitHub)."""
    seen, out = {}, set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = github_slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(path):
    """The relative links of a Markdown file whose file or heading anchor does not exist."""
    broken = []
    for target in LINK.findall(_without_code(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):          # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading '#{anchor}' in {os.path.relpath(linked, ROOT)}")
    return broken


def test_no_citation_points_outside_the_repository():
    offenders = []
    for path in _cited_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "cite docs/theory.md instead of the outside specification:\n" + "\n".join(offenders)


def test_index_names_exist():
    names = sorted(set(DOTTED.findall(_index())))
    assert len(names) > 50, names
    missing = _unresolvable(names)
    assert not missing, "docs/equations.md names what does not exist:\n" + "\n".join(missing)


def test_theory_names_exist():
    missing = _unresolvable(sorted(set(DOTTED.findall(THEORY.read_text(encoding="utf-8")))))
    assert not missing, "docs/theory.md names what does not exist:\n" + "\n".join(missing)


def _what_moved():
    """docs/design.md's 'What moved' section: (before, now) cells of its table."""
    text = DESIGN.read_text(encoding="utf-8")
    match = re.search(r"^## What moved\n(.*?)(?=^#{1,2} |\Z)", text, flags=re.M | re.S)
    assert match, "docs/design.md has no '## What moved' section"
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", match.group(1), flags=re.M)
    return match.group(0), [(before, now) for before, now in rows if before not in ("before", "---")]


@pytest.mark.parametrize("path", [p for p in _markdown_pages() if p not in (THEORY, EQUATIONS)], ids=_page_id)
def test_page_names_exist(path):
    """Every `analysis.x` / `training.x` a page names imports (design.md's 'before' column excepted)."""
    text = path.read_text(encoding="utf-8")
    if path == DESIGN:
        text = text.replace(_what_moved()[0], "")
    missing = _unresolvable(sorted(set(DOTTED.findall(text))))
    assert not missing, f"{_page_id(path)} names what does not exist:\n" + "\n".join(missing)


def test_what_moved_names_the_new_modules():
    _, rows = _what_moved()
    assert len(rows) >= 15, rows
    new = sorted({n for _, now in rows for n in DOTTED.findall(now)})
    assert len(new) >= 20, new
    missing = _unresolvable(new)
    assert not missing, "docs/design.md's 'What moved' names new places that do not exist:\n" + "\n".join(missing)
    for before, now in rows:                    # folders: the new ones exist, the old ones are gone
        assert all((ROOT / f).is_dir() for f in re.findall(r"`(training/[\w/]+/)`", now)), now
        assert not any((ROOT / f).exists() for f in re.findall(r"`(training/[\w/]+/)`", before)), before


def test_index_lists_every_equation_once():
    defined = [int(n) for n in re.findall(r"^\*\*\(T\.(\d+)\)", THEORY.read_text(encoding="utf-8"), flags=re.M)]
    assert defined == list(range(1, len(defined) + 1)), "docs/theory.md must number its equations (T.1), (T.2), ..."
    rows = [int(n) for n in re.findall(r"^\| \(T\.(\d+)\) \|", _index(), flags=re.M)]
    assert sorted(rows) == defined, (sorted(set(defined) - set(rows)), sorted(set(rows) - set(defined)))


@pytest.mark.parametrize("path", ["analysis", "training", "tests", "README.md", "docs", "benchmarks/README.md"],
                         ids=str)
def test_cited_equations_exist(path):
    """Every '(T.n)' cited in code, tests, the README and the docs is an equation of docs/theory.md."""
    defined = set(re.findall(r"^\*\*\(T\.(\d+)\)", THEORY.read_text(encoding="utf-8"), flags=re.M))
    target = ROOT / path
    if target.is_file():
        files = [target]
    elif path == "docs":
        files = sorted(target.glob("*.md"))
    else:
        files = sorted(p for p in target.rglob("*.py") if "__pycache__" not in p.parts)
    unknown = [f"{p.relative_to(ROOT)}: (T.{n})" for p in files
               for n in EQUATION.findall(p.read_text(encoding="utf-8")) if n not in defined]
    assert not unknown, unknown


@pytest.mark.parametrize("package", ["analysis", "training"])
def test_theory_covers_every_public_name(package):
    text = THEORY.read_text(encoding="utf-8")
    names = importlib.import_module(package).__all__
    missing = [n for n in names if not re.search(r"\b" + re.escape(n) + r"\b", text)]
    assert not missing, f"docs/theory.md names no equation for {package}.{missing}"


# ---- links and the front page ----------------------------------------------------------------

def test_pages_exist():
    for name in ("theory", "equations", "analysis", "training", "design", "results", "troubleshooting"):
        assert (DOCS / f"{name}.md").is_file(), name


@pytest.mark.parametrize("path", _markdown_pages(), ids=_page_id)
def test_relative_links_resolve(path):
    broken = broken_links(path)
    assert not broken, f"{_page_id(path)} has broken links:\n" + "\n".join(broken)


def test_readme_links_every_docs_page():
    linked = {t.partition("#")[0] for t in LINK.findall(_without_code(README.read_text(encoding="utf-8")))}
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")} | {"benchmarks/README.md"}
    assert pages <= linked, sorted(pages - linked)


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"


@pytest.mark.parametrize("heading, slug", [
    ("Equation → function index", "equation--function-index"),
    ("LiBI on CubicJTEx at the paper's 30 000 epochs (quadrature test LL)",
     "libi-on-cubicjtex-at-the-papers-30-000-epochs-quadrature-test-ll"),
    ("Batched training (`training.models.nets`, `training.models.objectives`)",
     "batched-training-trainingmodelsnets-trainingmodelsobjectives"),
    ("Why Mobius batching misses the 10× target", "why-mobius-batching-misses-the-10-target"),
    ("snake_case and-hyphens", "snake_case-and-hyphens"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_link_checker_finds_broken_links(tmp_path):
    (tmp_path / "other.md").write_text("# A heading\n\n## Twice\n\n## Twice\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Top\n[ok](other.md) [ok](other.md#a-heading) [ok](other.md#twice-1) [ok](#top)\n"
                    "![ok](other.md) [web](https://example.org/x.md) `[code](missing.md)`\n"
                    "```\n[fenced](missing.md)\n```\n"
                    "[bad](missing.md) [bad](other.md#nope) [bad](#nowhere)\n", encoding="utf-8")
    assert [b.split(":")[0] for b in broken_links(page)] == ["missing.md", "other.md#nope", "#nowhere"]


def _readme_examples():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


def test_readme_has_an_example_per_package():
    examples = _readme_examples()
    assert len(examples) == 2, len(examples)
    assert "from analysis import" in examples[0] and "from training import" in examples[1]
    assert all(len(e.splitlines()) <= 16 for e in examples), [len(e.splitlines()) for e in examples]


def _run(code):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    return [[float(v) for v in line.split()] for line in out.getvalue().splitlines()]


@pytest.mark.slow
def test_readme_analysis_example_prints_what_it_says():
    (truth,), (objective, mle, mf), (free,) = _run(_readme_examples()[0])
    assert truth == pytest.approx(0.53235, abs=1e-5)
    assert (objective, mle, mf) == pytest.approx((0.19618, 0.16206, 0.03412), abs=1e-5)
    assert abs(free) < 1e-15


@pytest.mark.slow
def test_readme_training_example_prints_what_it_says():
    (vae_to_opt, vae_err, vae_ll), (_, libi_err, libi_ll) = _run(_readme_examples()[1])
    assert vae_to_opt < 0.005 and vae_err == pytest.approx(0.300, abs=0.005)
    assert libi_err < 0.002                       # the MLE of C is S itself: LiBI recovers it
    assert vae_ll == pytest.approx(-3.12, abs=0.01) and libi_ll == pytest.approx(-2.95, abs=0.01)
