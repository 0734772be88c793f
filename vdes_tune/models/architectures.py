"""The classification architectures as data: what goes into each input channel. #1..#6 are the paper's
(Fig. 2); #7 puts a Pix2Pix virtual DES in the third channel (a generator the paper did not try)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vdes_tune.registry import Registry

if TYPE_CHECKING:
    import torch

SOURCES = ("le", "led", "des", "vdes")


@dataclass(frozen=True)
class Architecture:
    """Channel sources of the classifier input, and the generator behind a `vdes` channel, if any."""

    number: int
    name: str
    channels: tuple[str, str, str]
    generator: str | None = None  # a registered generator (generator_registry.py) that makes the `vdes` channel
    end_to_end: bool = False  # the generator trains with the classifier (#5)

    def __post_init__(self) -> None:
        unknown = [c for c in self.channels if c not in SOURCES]
        if unknown:
            raise ValueError(f"architecture {self.name}: unknown channel source(s) {unknown}")
        if ("vdes" in self.channels) != (self.generator is not None):
            raise ValueError(f"architecture {self.name}: a vdes channel needs a generator and vice versa")

    @property
    def needs(self) -> tuple[str, ...]:
        """Image columns the data loader must provide (vdes comes from the generator or its shards)."""
        return tuple(dict.fromkeys(self.channels))


ARCHITECTURES: Registry[Architecture] = Registry("architecture")
for _arch in (
    Architecture(1, "LE+LE+LE", ("le", "le", "le")),
    Architecture(2, "LE+LED+LE", ("le", "led", "le")),
    Architecture(3, "LE+LED+DES", ("le", "led", "des")),
    Architecture(4, "LE+LED+U-Net/PT", ("le", "led", "vdes"), generator="unet"),
    Architecture(5, "LE+LED+U-Net/EE", ("le", "led", "vdes"), generator="unet", end_to_end=True),
    Architecture(6, "LE+LED+CycleGAN", ("le", "led", "vdes"), generator="cyclegan"),
    Architecture(7, "LE+LED+Pix2Pix", ("le", "led", "vdes"), generator="pix2pix"),
):
    ARCHITECTURES.register(str(_arch.number))(_arch)

PAPER_ARCHITECTURES = (1, 2, 3, 4, 5, 6)  # what an evaluation runs unless told otherwise


def get_architecture(number: int | str) -> Architecture:
    """A registered architecture by number (#1..#6 of the paper, #7 Pix2Pix)."""
    return ARCHITECTURES.get(str(number))


def pretrained_generators() -> dict[int, str]:
    """Architecture number -> generator model, for those reading a generator trained once before them."""
    return {arch.number: arch.generator for arch in map(ARCHITECTURES.get, ARCHITECTURES.names())
            if arch.generator and not arch.end_to_end}


def virtual_architectures() -> tuple[int, ...]:
    """Numbers of the architectures whose third channel is a virtual DES."""
    return tuple(int(n) for n in ARCHITECTURES.names() if ARCHITECTURES.get(n).generator)


def compose(arch: Architecture, images: dict[str, torch.Tensor]) -> torch.Tensor:
    """Stack N x 1 x H x W images into the classifier's N x 3 x H x W input, in the architecture's order."""
    missing = [c for c in arch.needs if c not in images]
    if missing:
        raise KeyError(f"architecture {arch.name} needs image(s) {missing}")
    import torch

    return torch.cat([images[c] for c in arch.channels], dim=1)
