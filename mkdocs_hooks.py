"""MkDocs hook: the command reference (docs/commands.md) is every command's --help, rendered from the CLI at
build time, so the site's reference and the tool cannot disagree."""

from __future__ import annotations

from typing import Any, Iterator

MARKER = "<!-- cli-reference -->"


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name in command.list_commands(None) if hasattr(command, "list_commands") else []:
        yield from _commands(command.commands[name], (*path, name))


def cli_reference(width: int = 76) -> str:
    """Markdown: one section per command (in `vdes-tune --help`'s order) with its help as the terminal shows it."""
    import typer.main
    from typer.testing import CliRunner

    from vdes_tune.cli import app

    runner, parts = CliRunner(), []
    for path in _commands(typer.main.get_command(app)):
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(width), "NO_COLOR": "1"}, color=False)
        if shown.exit_code != 0:
            raise RuntimeError(f"vdes-tune {' '.join(path)} --help failed: {shown.output[-500:]}")
        title = " ".join(("vdes-tune", *path))
        parts.append(f"## `{title}`\n\n```text\n{shown.output.strip(chr(10))}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Fill the marker of the commands page."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference())
    return markdown
