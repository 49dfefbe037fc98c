"""index.html in a real browser: the demo runner's page opens offline in headless Chromium, shows
every section, every image loads and the console stays clean; a screenshot is left in the output folder.

Needs Debian's ``chromium`` (``apt-get install chromium``); skipped without it, except when
``CI=true``, where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from evaluation import run

SECTIONS = ("Results", "Secondary conventions", "Timings", "Precision-recall curves", "F-measure against threshold",
            "Blur maps", "Metric definitions", "How this was made")

# Injected before the page's own content: records script errors and failed resource loads as they
# happen, and after the load event writes every image's state and the headings into the DOM.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target || {};
  window.__errors.push(t.tagName ? ("load failed: " + t.tagName + " " + (t.src || "").slice(0, 60)) : String(e.message));
}, true);
(function () { var orig = console.error; console.error = function () {
  window.__errors.push("console.error: " + Array.prototype.join.call(arguments, " ")); orig.apply(console, arguments); }; })();
window.addEventListener("load", function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, shown: i.getBoundingClientRect().width};
  });
  var heads = Array.prototype.map.call(document.querySelectorAll("h1, h2, h3, h4"), function (h) { return h.textContent; });
  var pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify({images: imgs, headings: heads, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = _chromium()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium not found: CI installs it (.ci/run: apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return path


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--disable-background-networking", "--disable-sync", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _console_errors(stderr: str) -> list[str]:
    """Messages the page wrote to the console (Chromium logs them as ``...:CONSOLE(n)] "..."``)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def test_index_html_in_headless_chromium(tmp_path, browser):
    out = tmp_path / "out"
    assert run.main(["--methods", "gradient_energy", "--out", str(out), "--quiet"]) == 0
    page = out / "index.html"
    text = page.read_text(encoding="utf-8")

    # Self-contained: no script, no external style sheet, font or image; every image embedded.
    assert "<script" not in text.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text, re.I)
    assert "@import" not in text and "url(" not in text
    srcs = re.findall(r"<img [^>]*src=\"([^\"]{0,40})", text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)

    # The page as Chromium renders it, with the probe injected at the top of <head>.
    probe = out / "probe.html"
    probe.write_text(text.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    dumped = _headless(browser, tmp_path / "profile1", "--window-size=1280,1600", "--virtual-time-budget=10000",
                       "--dump-dom", probe.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dumped.stdout, re.S)
    assert found, dumped.stdout[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                        .replace("&amp;", "&"))
    assert result["errors"] == []
    headings = result["headings"]
    for title in SECTIONS:
        assert any(h == title or h.startswith(title) for h in headings), (title, headings)
    images = result["images"]
    # PR curves, F against threshold and one map grid page (one method): all decoded, none empty.
    assert len(images) == len(srcs) >= 3
    for img in images:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0 and img["shown"] > 0, img
    alts = " ".join(i["alt"] for i in images)
    assert "precision-recall" in alts and "F against threshold" in alts and "blur maps" in alts
    assert _console_errors(dumped.stderr) == []

    # The page itself (no probe): a screenshot into the output folder, and a clean console.
    shot = out / "screenshot.png"
    shown = _headless(browser, tmp_path / "profile2", "--window-size=1280,4000", f"--screenshot={shot}",
                      page.as_uri())
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert _console_errors(shown.stderr) == []
