"""The `vdes-tune` typer app: its command panels, help shown as written, and the global options."""

from __future__ import annotations

import inspect
from typing import Any

import typer
from typer.core import TyperGroup

# The top-level commands in the order a user meets them, in panels of `vdes-tune --help`.
PANELS = {
    "Start": ("demo", "run", "status"),
    "Stages, in run order": ("synth", "ingest", "generators", "plan", "search", "export", "evaluate", "report"),
    "Tools": ("plan-study", "train", "models", "gpus"),
}


def as_written(text: str) -> str:
    """Help text shown as written: paragraphs joined into lines (the terminal wraps them) and square brackets
    kept literally (rich would read `vdes-tune[onnx]` as markup and drop `[onnx]`)."""
    from rich.markup import escape

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(escape(" ".join(line.strip() for line in p.splitlines())) for p in paragraphs)


def _help_as_written(command: Any) -> None:
    """Every help text of `command` and its subcommands through `as_written`."""
    if command.help:
        command.help = as_written(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = as_written(param.help)
    for sub in getattr(command, "commands", {}).values():
        _help_as_written(sub)


class CommandList(TyperGroup):
    """The top-level group: commands listed by PANELS, their help as written."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        panel_of = {name: panel for panel, names in PANELS.items() for name in names}
        for name, command in self.commands.items():
            command.rich_help_panel = panel_of.get(name, "Other")
        _help_as_written(self)

    def list_commands(self, ctx: Any) -> list[str]:
        """PANELS' order, then any command they do not name."""
        order = [n for names in PANELS.values() for n in names]
        return [n for n in order if n in self.commands] + [n for n in self.commands if n not in order]


app = typer.Typer(
    cls=CommandList,
    name="vdes-tune",
    help="Virtual DES vs real DES for CESM lesion classification: ingest, train, search, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Also show Ray's own logs, warnings, progress bars and worker output "
                                      "(always recorded in <work>/logs/)."),
) -> None:
    """Virtual DES vs real DES for CESM lesion classification: ingest, train, search, evaluate."""
    from vdes_tune.runtime import set_verbose

    set_verbose(verbose)
