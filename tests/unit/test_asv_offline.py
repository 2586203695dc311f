"""The offline asv site: CDN libraries replaced by the same npm packages, integrity checked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inferlab.outputs.asv_offline import CDN_TO_NPM, NPM_PACKAGES, OfflineError, vendor_site

ROOT = Path(__file__).parents[2]
NODE_MODULES = Path(sys.prefix) / "node" / "node_modules"
needs_npm = pytest.mark.skipif(not (NODE_MODULES / "jquery").is_dir(),
                               reason="the site's npm libraries are not installed (make install puts them in .venv/node)")


def page(folder: Path, *urls: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tags = "\n".join(f'<script src="{u}" integrity="sha256-FgpCb/KJQlLNfOu91ta32o/NMZxltwRo8QtmkMRdAu8=" '
                     f'crossorigin="anonymous"></script>' for u in urls)
    (folder / "index.html").write_text(f"<html><head>{tags}</head></html>")
    return folder


def test_the_makefile_installs_exactly_the_packages_the_module_maps():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^ASV_SITE_NPM := (.*)$", makefile, re.M).group(1).split() == list(NPM_PACKAGES)


@needs_npm
def test_identical_files_keep_their_integrity_other_builds_lose_it(tmp_path):
    site = page(tmp_path / "html", "https://code.jquery.com/jquery-3.3.1.min.js",
                "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js")
    done = {v.url: v for v in vendor_site(site, NODE_MODULES)}
    html = (site / "index.html").read_text()
    assert "https://" not in html and "crossorigin" not in html
    assert done["https://code.jquery.com/jquery-3.3.1.min.js"].integrity_kept
    assert html.count("integrity=") == 1  # jquery's hash verified; flot's unminified build has none
    for item in done.values():
        assert (site / item.local).read_bytes() == (NODE_MODULES / CDN_TO_NPM[item.url]).read_bytes()


def test_unknown_resources_and_missing_packages_are_errors_that_say_what_to_do(tmp_path):
    with pytest.raises(OfflineError, match="unknown external resource https://example.invalid/x.js"):
        vendor_site(page(tmp_path / "a", "https://example.invalid/x.js"), tmp_path / "node_modules")
    with pytest.raises(OfflineError, match=r"jquery.min.js is missing: npm install --prefix .* jquery@3.3.1"):
        vendor_site(page(tmp_path / "b", "https://code.jquery.com/jquery-3.3.1.min.js"), tmp_path / "nm" / "node_modules")
    with pytest.raises(OfflineError, match="no index.html: run `asv publish` first"):
        vendor_site(tmp_path / "empty", tmp_path)


def test_asv_export_command_rejects_a_missing_or_empty_folder(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "pytest_inferlab.cli", "asv-export", *args], cwd=tmp_path,
                              capture_output=True, text=True)

    missing = run("nowhere")
    assert missing.returncode == 2 and "nowhere is not a folder" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run("empty")
    assert empty.returncode == 2 and "no records under empty" in empty.stderr
