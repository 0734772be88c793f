"""Open a report in a real headless browser (Chromium): what a reader's browser makes of it. The page's own
render check (report.RENDER_CHECK) lists images that failed to decode and script errors; a screenshot of the
page is kept beside the report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
_CHECK = re.compile(r"<pre id=\"render-check\"[^>]*>(.*?)</pre>", re.S)


def find_browser() -> str | None:
    """A Chromium-family browser on PATH (Debian: `apt install chromium`), or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
            "--no-first-run", "--virtual-time-budget=10000"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=timeout, check=False)


def render(page: Path, screenshot: Path | None = None, width: int = 1280, height: int = 4000,
           browser: str | None = None, timeout: float = 120.0) -> dict[str, Any]:
    """Load `page` headless; returns the images counted, the broken ones, the script errors and whether the
    check ran at all (`ok` is all of these good). With `screenshot`, also writes a PNG of the page."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium-family browser on PATH (Debian: apt install chromium)")
    url = Path(page).resolve().as_uri()
    start = time.perf_counter()
    dom = _run(browser, ["--dump-dom", url], timeout)
    match = _CHECK.search(dom.stdout)
    found: dict[str, Any] = {"page": str(page), "browser": browser, "checked": bool(match)}
    if match:
        import html

        found.update(json.loads(html.unescape(match.group(1))))
    else:
        found.update({"images": 0, "broken": [], "errors": [f"render check did not run (exit {dom.returncode}): "
                                                           f"{dom.stderr.strip()[-300:]}"]})
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = _run(browser, [f"--screenshot={screenshot}", f"--window-size={width},{height}", url], timeout)
        found["screenshot"] = str(screenshot) if screenshot.is_file() else None
        if not screenshot.is_file():
            found["errors"].append(f"no screenshot (exit {shot.returncode}): {shot.stderr.strip()[-300:]}")
    found["seconds"] = round(time.perf_counter() - start, 2)
    found["ok"] = found["checked"] and not found["broken"] and not found["errors"] and found["images"] > 0
    return found
