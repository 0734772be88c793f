"""Tiling: starts on the network's grid, blending weights that sum to 1, tiled == whole-image for a U-Net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vdes_tune.inference.tiling import Tiling, axis_weights, infer_tiled, plan_tiles, tile_starts
from vdes_tune.models.unet import UNet


def test_blending_weights_by_hand() -> None:
    # 10 px, tiles of 6 sharing 2: starts 0 and 4; no context margin (2 // 4 = 0), a ramp over both pixels.
    assert tile_starts(10, 6, 2) == [0, 4]
    first, second = axis_weights([0, 4], 6)
    np.testing.assert_allclose(first, [1, 1, 1, 1, 0.75, 0.25])
    np.testing.assert_allclose(second, [0.25, 0.75, 1, 1, 1, 1])
    # 20 px, tiles of 14 sharing 8: margin 2 px of context (weight 0), then a ramp over the middle 4.
    assert tile_starts(20, 14, 8) == [0, 6]
    first, second = axis_weights([0, 6], 14)
    np.testing.assert_allclose(second[:8], [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1])
    np.testing.assert_allclose(first[6:], [1, 1, 0.875, 0.625, 0.375, 0.125, 0, 0])
    assert all(second[8:] == 1) and all(first[:6] == 1)


@pytest.mark.parametrize("multiple", [1, 4, 32])
def test_tiles_cover_on_the_grid_and_weights_sum_to_one(multiple: int) -> None:
    for tile in range(2 * multiple, 9 * multiple + 1, multiple):
        for overlap in sorted({0, tile // 8, tile // 4, tile // 2}):
            if tile - -(-overlap // multiple) * multiple < multiple:
                continue
            for length in range(multiple, 30 * multiple + 1, multiple):
                size = min(tile, length)
                starts = tile_starts(length, size, overlap, multiple)
                assert starts[0] == 0 and starts[-1] + size == length
                assert all(s % multiple == 0 for s in starts)
                assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))  # neighbours share
                total = np.zeros(length)
                for s, w in zip(starts, axis_weights(starts, size)):
                    total[s:s + size] += w
                assert total.min() > 0, (length, tile, overlap)  # every pixel is reached
                if overlap <= tile // 4:  # the defaults: a partition of unity before any normalisation
                    np.testing.assert_allclose(total, 1.0, atol=1e-12, err_msg=str((length, tile, overlap)))


def test_two_d_weights_sum_to_one() -> None:
    th, tw, tiles = plan_tiles(200, 136, Tiling(64, 16, 4))
    total = np.zeros((200, 136))
    for y, x, w in tiles:
        assert w.shape == (th, tw)
        total[y:y + th, x:x + tw] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert len(plan_tiles(200, 136, Tiling(64, 16, 4, whole_up_to=200 * 136))[2]) == 1  # small enough: whole


def _lively_unet() -> UNet:
    """A random U-Net 4/3 whose output spans (0, 1) (a raw one sits at 0.5 whatever its input)."""
    torch.manual_seed(0)
    net = UNet(4, 3, 0.0).eval()
    probe = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = torch.logit(net(probe)).flatten()
        net.head.weight.div_(z.std())
        net.head.bias.sub_(z.mean()).div_(z.std())
    return net


def test_tiled_unet_equals_whole_image() -> None:
    net = _lively_unet()
    image = np.random.default_rng(0).random((128, 160)).astype(np.float32)  # sides multiples of 4
    with torch.no_grad():
        whole = net(torch.from_numpy(image)[None, None])[0, 0].numpy()
        assert whole.std() > 0.1
        tiled, count = infer_tiled(net, image, Tiling(96, 48, net.multiple), batch_size=4)
        naive, _ = infer_tiled(net, image, Tiling(64, 0, net.multiple), batch_size=4)
    assert count == 6
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert np.abs(naive - whole).max() > 0.05  # tiles without overlap show their seams: the test can tell


def test_padding_reflects_to_the_multiple_and_crops_back() -> None:
    net = _lively_unet()
    image = np.random.default_rng(2).random((70, 50)).astype(np.float32)
    with torch.no_grad():
        out, count = infer_tiled(net, image, Tiling(0, 0, net.multiple))
        padded = np.pad(image, ((0, 2), (0, 2)), mode="reflect")  # to 72 x 52
        want = net(torch.from_numpy(padded)[None, None])[0, 0, :70, :50].numpy()
    assert count == 1 and out.shape == (70, 50)
    np.testing.assert_allclose(out, want, atol=1e-6)
