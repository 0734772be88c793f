"""CycleGAN networks after Zhu et al.'s reference: 9-block ResNet generator, 70x70 PatchGAN, image pool."""

from __future__ import annotations

import random

import torch
from torch import nn


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update."""
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, 9 x R256, u128, u64, c7s1-out; output mapped to [0, 1] like our images."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, features: int = 64, blocks: int = 9) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, features, 7), _norm(features),
                                   nn.ReLU(inplace=True)]
        ch = features
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(inplace=True)]
            ch *= 2
        layers += [ResnetBlock(ch) for _ in range(blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1), _norm(ch // 2),
                       nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate an image in [0, 1]; sides must be multiples of 4."""
        # The reference ends in tanh on [-1, 1] data; (tanh + 1) / 2 is the same network on [0, 1] data.
        return (torch.tanh(self.net(x)) + 1) / 2


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN (n_layers=3): a real/fake score per patch, no sigmoid (the loss takes raw scores).

    `norm` is "instance" (CycleGAN's reference) or "batch" (Pix2Pix's reference).
    """

    def __init__(self, in_channels: int = 1, features: int = 64, layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        if norm not in ("instance", "batch"):
            raise ValueError(f"PatchDiscriminator norm must be 'instance' or 'batch', got {norm!r}")
        _layer_norm = _norm if norm == "instance" else nn.BatchNorm2d
        seq: list[nn.Module] = [nn.Conv2d(in_channels, features, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < layers else 1
            seq += [nn.Conv2d(features * prev, features * mult, 4, stride=stride, padding=1),
                    _layer_norm(features * mult), nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(features * mult, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch scores."""
        return self.net(x)


class CycleGAN(nn.Module):
    """The four networks: G (LE -> DES), F (DES -> LE), D_des and D_le."""

    def __init__(self, features: int = 64, blocks: int = 9, disc_features: int = 64) -> None:
        super().__init__()
        self.g_le2des = ResnetGenerator(1, 1, features, blocks)
        self.g_des2le = ResnetGenerator(1, 1, features, blocks)
        self.d_des = PatchDiscriminator(1, disc_features)
        self.d_le = PatchDiscriminator(1, disc_features)

    def forward(self, le: torch.Tensor) -> torch.Tensor:
        """Virtual DES from LE (the only direction used downstream)."""
        return self.g_le2des(le)


class ImagePool:
    """History of generated images (Shrivastava et al.): the discriminator sees old fakes half the time."""

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def state(self) -> dict:
        """The stored fakes and the draw state, for a checkpoint (plain types: loadable with weights_only)."""
        version, internal, gauss = self.rng.getstate()
        return {"images": [i.detach().cpu() for i in self.images], "rng": [version, list(internal), gauss]}

    def load_state(self, state: dict, device: torch.device | None = None) -> None:
        """Continue from `state()`."""
        self.images = [i.to(device) if device is not None else i for i in state["images"]]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        """Return a batch mixing the new fakes with stored ones, storing the new ones."""
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.random() < 0.5:
                k = self.rng.randrange(self.size)
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out, 0)
