"""U-Net generator LE -> DES: first-layer width w, channels doubling per level, d resolution levels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(cin: int, cout: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    ]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Encoder-decoder with skips; any input size (padded to a multiple of 2**(depth-1), cropped back)."""

    def __init__(self, width: int = 32, depth: int = 6, dropout: float = 0.2, in_channels: int = 1,
                 out_channels: int = 1) -> None:
        super().__init__()
        if width < 1 or depth < 2:
            raise ValueError(f"U-Net needs width >= 1 and depth >= 2, got width={width}, depth={depth}")
        self.width, self.depth, self.dropout = width, depth, dropout
        chans = [width * 2 ** i for i in range(depth)]
        # Dropout sits in the deeper half, where the paper's U-Net regularises; shallow blocks keep detail.
        self.down = nn.ModuleList(
            _block(in_channels if i == 0 else chans[i - 1], c, dropout if i >= depth // 2 else 0.0)
            for i, c in enumerate(chans)
        )
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(depth - 1))
        self.merge = nn.ModuleList(_block(2 * chans[i], chans[i], dropout if i >= depth // 2 else 0.0)
                                   for i in range(depth - 1))
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this."""
        return 2 ** (self.depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map an N x C x H x W image in [0, 1] to a DES estimate in [0, 1] of the same size."""
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(self.depth - 1)):
            x = self.merge[i](torch.cat([self.up[i](x), skips.pop()], dim=1))
        return torch.sigmoid(self.head(x))[..., :h, :w]
