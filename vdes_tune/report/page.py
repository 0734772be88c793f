"""The pieces every report page shares: compact Markdown tables, the page style, and the self-contained HTML
page with its render check and inline images."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

import pandas as pd


def fmt(value: Any, digits: int = 4) -> str:
    """A cell as text: compact numbers, empty for NaN."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def markdown_table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    """A DataFrame as a Markdown table with compact numbers."""
    cols = columns or list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(row[c]) for c in cols) + " |" for _, row in frame.iterrows()]
    return "\n".join(lines) + "\n"


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
         "th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}"
         ".answer{font-size:1.15em;background:#f4f8ff;border-left:4px solid #3b6fd8;padding:0.8em 1em}"
         "details{margin:0.6em 0}summary{cursor:pointer;font-weight:bold}.meta{color:#555;font-size:13px}")

# Marks the page once loaded: which images failed to decode and which script errors happened, so a headless
# browser (benchmarks/render_report.py) can tell a broken report from a good one.
RENDER_CHECK = ("<script>window.__errors=[];window.addEventListener('error',function(e){window.__errors.push("
                "String(e.message||e.type))},true);window.addEventListener('load',function(){var bad=[];"
                "document.querySelectorAll('img').forEach(function(i){if(!i.complete||i.naturalWidth===0)"
                "bad.push(i.alt||'image')});var m=document.createElement('pre');m.id='render-check';"
                "m.style.display='none';m.textContent=JSON.stringify({images:document.images.length,broken:bad,"
                "errors:window.__errors});document.body.appendChild(m)});</script>")


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page with the report style and the render check."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style>{RENDER_CHECK}</head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def img_tag(data: bytes, alt: str) -> str:
    """An inline PNG."""
    return f"<img alt='{html.escape(alt, quote=True)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"
