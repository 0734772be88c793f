"""The `vdes-tune` command line: one typer app, one module per command group, thin over the stages."""

from __future__ import annotations

import sys

import typer

from vdes_tune.errors import BadInputError

app = typer.Typer(
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
