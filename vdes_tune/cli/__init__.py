"""The `vdes-tune` command line: one typer app, one module per command group, thin over the stages."""

from __future__ import annotations

import inspect
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from vdes_tune.errors import BadInputError

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

from vdes_tune.cli import data as _data  # noqa: E402,F401  (registers the data commands)
from vdes_tune.cli import evaluate as _evaluate  # noqa: E402,F401
from vdes_tune.cli import generators as _generators  # noqa: E402,F401
from vdes_tune.cli import models as _models  # noqa: E402,F401
from vdes_tune.cli import pipeline as _pipeline  # noqa: E402,F401
from vdes_tune.cli import search as _search  # noqa: E402,F401
from vdes_tune.cli import status as _status  # noqa: E402,F401
from vdes_tune.cli import train as _train  # noqa: E402,F401


def main() -> None:
    """Console-script entry point: exit 2 for bad input or usage, 1 when the work fails."""
    try:
        code = app(standalone_mode=False)  # without standalone mode click returns a typer.Exit's code
    except BadInputError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.secho("aborted", err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors carry their own exit code (2)
        import click

        # Typer 0.29 raises its own copy of click's exceptions (typer._click), which click's class misses.
        if isinstance(exc, (click.ClickException, typer.TyperException)) and hasattr(exc, "show"):
            exc.show()
            sys.exit(exc.exit_code)
        typer.secho(f"failed: {type(exc).__name__}: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
