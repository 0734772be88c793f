"""Open a report in headless Chromium as a reader would: fail on a broken image or a script error, keep a
screenshot (`screenshot.png`) in the report folder, and print what was found and how long it took.

    python benchmarks/render_report.py REPORT_DIR [REPORT_DIR ...] [--height 4000] [--json OUT]

REPORT_DIR is a `report/<run>/` or `report/search-<experiment>/` folder (it holds report.html). Needs a
Chromium-family browser on PATH (Debian: `apt install chromium`). Exit 1 when any page fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vdes_tune.report.render import find_browser, render


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    browser = find_browser()
    if browser is None:
        print("no Chromium-family browser on PATH (Debian: apt install chromium)", file=sys.stderr)
        return 2
    rows = []
    for folder in args.reports:
        page = folder / "report.html"
        if not page.is_file():
            print(f"{page}: no such report", file=sys.stderr)
            return 2
        rows.append(render(page, folder / "screenshot.png", args.width, args.height, browser))
    print(f"browser: {browser}\n")
    print("| report | images | broken | script errors | seconds | result |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['page']).parent.name} | {r['images']} | {len(r['broken'])} | {len(r['errors'])} | "
              f"{r['seconds']} | {'ok' if r['ok'] else 'FAILED'} |")
    for r in rows:
        for what in r["broken"]:
            print(f"{r['page']}: broken image: {what}", file=sys.stderr)
        for what in r["errors"]:
            print(f"{r['page']}: error: {what}", file=sys.stderr)
        if r.get("screenshot"):
            print(f"screenshot: {r['screenshot']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
