"""`vdes-tune status`: every stage output of a workspace (done, stale, missing, corrupt) with its repair; and the
`--verify` option the commands with a skip path share."""

from __future__ import annotations

import json

import typer

from vdes_tune.cli.app import app

VERIFY_HELP = ("Skip a stage only when its files match the manifest's sha256 (default: only their sizes, "
               "which catches truncation but not a flipped byte).")


def verify_option() -> bool:
    """The shared --verify option (a typer default)."""
    return typer.Option(False, "--verify", help=VERIFY_HELP)


@app.command()
def status(
    work: str = typer.Option("vdes-work", "--work", help="Workspace (folder or URI)."),
    verify: bool = typer.Option(False, "--verify", help="Check every output file's sha256, not only its size."),
    as_json: bool = typer.Option(False, "--json", help="Print the states as JSON."),
) -> None:
    """One line per stage output: done, stale, missing, incomplete or corrupt, with the command that repairs
    it; then leftover temporary folders. Exit 0 only when every stage is done."""
    from vdes_tune.status import workspace_status

    found = workspace_status(work, verify)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    else:
        for s in found["stages"]:
            typer.echo(f"{s['state']:<10} {s['stage']:<21} {s['path']}" + (f"  ({s['detail']})" if s["detail"] else ""))
            if s["repair"]:
                typer.echo(f"{'':<10} repair: {s['repair']}")
        for d in found["debris"]:
            typer.echo(f"{'debris':<10} {d['path']}  ({'safe to sweep' if d['safe_to_sweep'] else 'kept'}: "
                       f"{d['why']}; the stage's next run sweeps what is safe)")
    if not found["ok"]:
        raise typer.Exit(1)
