"""`python -m vdes_tune` runs the CLI."""

from vdes_tune.cli import main

main()
