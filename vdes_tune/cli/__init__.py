"""The `vdes-tune` command line: one typer app, one module per command group, thin over the stages."""

from __future__ import annotations

import sys

import typer

from vdes_tune.cli.app import app
from vdes_tune.cli import data as _data  # noqa: F401  (registers the data commands)
from vdes_tune.cli import evaluate as _evaluate  # noqa: F401
from vdes_tune.cli import generators as _generators  # noqa: F401
from vdes_tune.cli import models as _models  # noqa: F401
from vdes_tune.cli import pipeline as _pipeline  # noqa: F401
from vdes_tune.cli import search as _search  # noqa: F401
from vdes_tune.cli import status as _status  # noqa: F401
from vdes_tune.cli import train as _train  # noqa: F401
from vdes_tune.errors import BadInputError

__all__ = ["app", "main"]


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
