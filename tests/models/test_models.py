"""Forward/backward over the model registry, the U-Net grid, CycleGAN parts, architectures as data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from vdes_tune.errors import BadInputError
from vdes_tune.models import MODELS, build_model, describe
from vdes_tune.models.architectures import (ARCHITECTURES, Architecture, compose, get_architecture,
                                            pretrained_generators, virtual_architectures)
from vdes_tune.models.classifiers import build_classifier, load_backbone
from vdes_tune.models.cyclegan import ImagePool, PatchDiscriminator, ResnetGenerator
from vdes_tune.models.registry import parameter_count
from vdes_tune.models.unet import UNet

SMALL = {"unet": {"width": 4, "depth": 3}, "cyclegan": {"features": 8, "blocks": 2, "disc_features": 8},
         "pix2pix": {"width": 4, "depth": 3}}


@pytest.mark.parametrize("name", MODELS.names())
def test_forward_and_backward_over_the_registry(name: str) -> None:
    torch.manual_seed(0)
    info = MODELS.get(name)
    model = build_model(name, **SMALL.get(name, {})).train()
    x = torch.rand(2, info.in_channels, 64, 64)
    y = model(x)
    if info.kind == "classifier":
        assert y.shape == (2, 2)
    else:
        assert y.shape == (2, 1, 64, 64) and 0 <= y.min() and y.max() <= 1
    y.float().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("width", [4, 8, 12, 16, 32, 64])
def test_every_unet_depth_builds_runs_and_backpropagates(width: int) -> None:
    for depth in range(2, 8):
        model = UNet(width, depth, 0.2)
        x = torch.rand(2, 1, 20, 28)  # not a multiple of 2**(depth-1): padded and cropped back
        y = model(x)
        assert y.shape == x.shape, (width, depth)
        y.mean().backward()
        first = model.down[0][0].weight.grad
        assert first is not None and torch.isfinite(first).all()
        # Channels double per level: the deepest block has width * 2**(depth-1) channels.
        assert model.down[-1][0].out_channels == width * 2 ** (depth - 1)


def test_unet_is_size_agnostic_at_224() -> None:
    model = UNet(8, 6, 0.1).eval()
    assert model(torch.rand(1, 1, 224, 224)).shape == (1, 1, 224, 224)


def test_cyclegan_networks_match_the_reference_parameter_counts() -> None:
    # junyanz/pytorch-CycleGAN-and-pix2pix, 1-channel resnet_9blocks and basic 70x70 PatchGAN.
    assert parameter_count(ResnetGenerator(1, 1)) == 11_365_633
    assert parameter_count(PatchDiscriminator(1)) == 2_762_689
    d = PatchDiscriminator(1)
    assert d(torch.rand(1, 1, 256, 256)).shape == (1, 1, 30, 30)  # 70x70 receptive fields on a 256 image


@pytest.mark.parametrize("timm_name,reference", [("resnet18", torchvision.models.resnet18),
                                                 ("resnet34", torchvision.models.resnet34),
                                                 ("regnety_016", torchvision.models.regnet_y_1_6gf)])
def test_classifiers_match_torchvision_parameter_counts(timm_name: str, reference) -> None:
    assert parameter_count(build_classifier(timm_name)) == parameter_count(reference(num_classes=2))


def test_classifier_weights_load_from_a_local_file_skipping_the_head(tmp_path: Path) -> None:
    import timm

    source = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    model = build_classifier("resnet18", weights=tmp_path / "r18.pth")
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.weight.shape == (2, 512)
    skipped = load_backbone(build_classifier("resnet18"), tmp_path / "r18.pth")
    assert skipped == ["fc.bias", "fc.weight"]
    torch.save({"x": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(BadInputError, match="wrong file"):
        build_classifier("resnet18", weights=tmp_path / "wrong.pth")


def test_describe_reports_sub_networks_and_shapes() -> None:
    d = describe("cyclegan", input_size=64, features=8, blocks=2, disc_features=8)
    p = d["parameters"]
    assert p["total"] == p["g_le2des"] + p["g_des2le"] + p["d_des"] + p["d_le"]
    assert d["input_shape"] == [1, 1, 64, 64] and d["output_shape"] == [1, 1, 64, 64]
    assert describe("resnet18", input_size=64)["output_shape"] == [1, 2]
    with pytest.raises(BadInputError, match="available: unet, cyclegan"):
        describe("vgg")


def test_image_pool_returns_history_once_full() -> None:
    pool = ImagePool(size=3, seed=0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: fakes come straight back
    later = pool.query(torch.full((50, 1, 1, 1), 9.0))
    assert set(later.flatten().tolist()) <= {0.0, 1.0, 2.0, 9.0}
    assert (later != 9).any() and (later == 9).any()
    assert torch.equal(ImagePool(size=0).query(first), first)


def test_architectures_are_data() -> None:
    names = [get_architecture(n).name for n in range(1, 7)]
    assert names == ["LE+LE+LE", "LE+LED+LE", "LE+LED+DES", "LE+LED+U-Net/PT", "LE+LED+U-Net/EE",
                     "LE+LED+CycleGAN"]
    assert [a.generator for a in map(get_architecture, range(1, 7))] == [None, None, None, "unet", "unet", "cyclegan"]
    assert get_architecture(5).end_to_end and not get_architecture(4).end_to_end
    images = {k: torch.full((2, 1, 4, 4), float(i)) for i, k in enumerate(("le", "led", "des", "vdes"))}
    x = compose(get_architecture(3), images)
    assert x.shape == (2, 3, 4, 4) and x[:, :, 0, 0].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert compose(get_architecture(1), images)[0, :, 0, 0].tolist() == [0, 0, 0]
    with pytest.raises(KeyError, match="des"):
        compose(get_architecture(3), {"le": images["le"], "led": images["led"]})
    with pytest.raises(ValueError, match="needs a generator"):
        Architecture(8, "bad", ("le", "le", "vdes"))
    with pytest.raises(BadInputError, match="unknown architecture"):
        get_architecture(9)
    # #7, the plug-in: a pre-trained Pix2Pix in the third channel, counted wherever the virtual DES are.
    assert ARCHITECTURES.names() == ["1", "2", "3", "4", "5", "6", "7"]
    assert get_architecture(7).generator == "pix2pix" and not get_architecture(7).end_to_end
    assert pretrained_generators() == {4: "unet", 6: "cyclegan", 7: "pix2pix"}
    assert virtual_architectures() == (4, 5, 6, 7)
