"""Errors that map onto the CLI's exit codes."""


class BadInputError(Exception):
    """Bad usage or bad input; the message names the file, row or field (exit code 2)."""

