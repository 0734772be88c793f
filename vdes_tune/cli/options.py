"""Options shared by several commands, defined once."""

from __future__ import annotations

from typing import Any

import typer

GPU_MEMORY_HELP = ("The most GPU memory one configuration may use (GiB): 24 keeps to the paper's card on a larger "
                   "one. Default: the memory of the GPUs there. Trials pack by the real card either way.")


def gpu_memory_option() -> Any:
    """`--gpu-memory-gb`: the cap a configuration must fit (search, evaluate, plan)."""
    return typer.Option(None, "--gpu-memory-gb", min=0.1, help=GPU_MEMORY_HELP)

