"""The documentation: a README a newcomer reads in minutes, reference pages generated from the code
and current, and a site that builds with every link resolving (mkdocs --strict)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def test_the_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 250
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
    assert "make lab" in README and "make test" in README


def test_the_reference_pages_are_generated_from_the_code_and_current():
    from reference_docs import pages

    for path, text in pages().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: python tools/reference_docs.py"


def test_every_figure_the_pages_quote_comes_from_one_source():
    from figures import problems

    assert problems() == []


def test_a_page_that_quotes_another_value_is_named(tmp_path, monkeypatch):
    import figures

    page = tmp_path / "page.md"
    page.write_text("the tour takes <!--figure:make-lab-cached-->2 min<!--/figure--> and <!--figure:nope-->1<!--/figure-->")
    monkeypatch.setattr(figures, "pages", lambda: [page])
    found = figures.problems()
    assert any("page.md:1: make-lab-cached quoted as '2 min'" in p for p in found)
    assert any("'nope' is not in" in p for p in found)
    figures.rewrite()
    assert "<!--figure:make-lab-cached-->" + figures.figures()["make-lab-cached"].value in page.read_text()


def test_every_message_the_troubleshooting_page_quotes_is_in_the_code():
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    quoted = re.findall(r"^### `([^`]+)`$", page, re.M)
    assert len(quoted) >= 12
    sources = "\n".join(p.read_text() for folder in ("pytest_inferlab", "tools") for p in (ROOT / folder).rglob("*.py"))
    missing = [text for text in quoted if text not in sources]
    assert not missing, f"docs/troubleshooting.md quotes messages the code no longer prints: {missing}"


def test_every_option_and_its_ini_key_is_on_the_options_page():
    from pytest_inferlab.plugin.options import OPTIONS

    rows = [line for line in (ROOT / "docs/reference/options.md").read_text().splitlines() if line.startswith("| `--")]
    public = [option for option in OPTIONS if not option.internal]
    assert len(rows) == len(public) and len(public) < len(OPTIONS)
    for option in public:
        assert any(row.startswith(f"| `{option.flag}") and f"`{option.ini}`" in row for row in rows), option.flag
    for option in OPTIONS:  # the lab's own options for its child processes are not the user's
        assert option in public or not any(option.flag in row for row in rows), option.flag


def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is not installed in this environment: make install (it is in the dev extra)"
    built = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "reference" / "options" / "index.html").exists()


def test_the_readme_suite_collects_as_written(pytester):
    """The ten-line suite is real: its method, workload and fixture names exist (an unknown one is
    a usage error at collection), and its stacked parameters make the cases it says."""
    suite = re.search(r"```python\n(import pytest\n.*?)```", README, re.S).group(1)
    pytester.makepyfile(test_readme_suite=suite)
    result = pytester.runpytest_subprocess("--collect-only", "-q", "--inferlab-model=dummy:tiny", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*4 tests collected*"])
