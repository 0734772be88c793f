"""The documentation site builds with `mkdocs build --strict` (a broken link, a missing anchor or a page left
out of the nav fails it), and its command reference is the CLI's own help, every command of it."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import typer.main

from vdes_tune.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _paths(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _paths(sub, (*path, name))


def test_the_docs_site_builds_strictly_with_every_command_in_its_reference(tmp_path):
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    pages = {p.stem for p in (ROOT / "docs").glob("*.md")}
    for page in pages - {"index"}:
        assert (site / page / "index.html").is_file(), page
    reference = html.unescape(re.sub(r"<[^>]+>", "", (site / "commands" / "index.html").read_text()))
    for path in _paths(typer.main.get_command(app)):
        assert f"vdes-tune {' '.join(path)}".strip() in reference, path
    assert "vdes-tune[onnx]" in reference and "--gpu-memory-gb" in reference  # help as written, options included
