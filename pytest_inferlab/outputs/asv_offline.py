"""Make a published asv site self-contained: its pages load jQuery, flot, bootstrap... from CDNs,
so it renders nothing on a machine without internet (a GPU cluster, this project's CI).
``inferlab asv-offline HTML_DIR`` copies the same libraries from npm packages into
``HTML_DIR/vendor/`` and points the pages at them.

Files that are byte-identical to the CDN's keep their Subresource-Integrity hash (checked here);
where npm ships another build of the same version (flot's unminified files) or the pinned version
is not on npm (stupidtable 1.0.1 -> stupid-table-plugin 1.1.3), the copy is served without one,
and the result says which.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pytest_inferlab.ground.jsonio import write_text_replace

NPM_PACKAGES = ("jquery@3.3.1", "flot@0.8.3", "flot-orderbars@1.0.0", "stupid-table-plugin@1.1.3",
                "blueimp-md5@2.19.0", "bootstrap@3.1.1")

# CDN address in asv 0.6's pages -> file inside node_modules
CDN_TO_NPM = {
    "https://code.jquery.com/jquery-3.3.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": "flot/jquery.flot.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": "flot/jquery.flot.time.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": "flot/jquery.flot.selection.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": "flot/jquery.flot.categories.js",
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": "flot-orderbars/js/jquery.flot.orderBars.js",
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": "stupid-table-plugin/stupidtable.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": "blueimp-md5/js/md5.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
}
_TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>')


class OfflineError(ValueError):
    """The site or the npm packages are not what this module knows; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Vendored:
    url: str
    local: str
    integrity_kept: bool


def _sri_matches(integrity: str, data: bytes) -> bool:
    algorithm, _, expected = integrity.partition("-")
    if algorithm not in ("sha256", "sha384", "sha512"):
        return False
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == expected


def vendor_site(html_dir: Path, node_modules: Path) -> list[Vendored]:
    """Rewrite every page of ``html_dir`` to load its libraries from ``html_dir/vendor``."""
    pages = sorted(html_dir.glob("*.html"))
    if not (html_dir / "index.html").exists():
        raise OfflineError(f"{html_dir} has no index.html: run `asv publish` first")
    done: dict[str, Vendored] = {}
    for page in pages:
        text = page.read_text(encoding="utf-8")

        def rewrite(match: re.Match) -> str:
            tag, url = match.group(0), match.group(2)
            if match.group(1) == "link" and "stylesheet" not in tag:
                return tag
            if url not in CDN_TO_NPM:
                raise OfflineError(f"{page}: unknown external resource {url}; this asv version is newer than "
                                   "pytest-inferlab's offline map (pytest_inferlab/outputs/asv_offline.py CDN_TO_NPM)")
            source = node_modules / CDN_TO_NPM[url]
            if not source.exists():
                raise OfflineError(f"{source} is missing: npm install --prefix {node_modules.parent} "
                                   + " ".join(NPM_PACKAGES))
            local = "vendor/" + CDN_TO_NPM[url].replace("/", "__")
            data = source.read_bytes()
            (html_dir / "vendor").mkdir(exist_ok=True)
            (html_dir / local).write_bytes(data)
            integrity = re.search(r'integrity="([^"]+)"', tag)
            keep = bool(integrity) and _sri_matches(integrity.group(1), data)
            tag = tag.replace(url, local)
            if integrity and not keep:
                tag = tag.replace(integrity.group(0), "")
            done[url] = Vendored(url, local, keep)
            return re.sub(r'\s(crossorigin|referrerpolicy)="[^"]*"', "", tag)

        new_text = _TAG.sub(rewrite, text)
        if new_text != text:
            write_text_replace(page, new_text)
    return list(done.values())
