"""The GPU memory estimator: exact saved-activation counts, components, placement, calibration fit."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from vdes_tune.config import TrainConfig
from vdes_tune.errors import BadInputError
from vdes_tune.training.memory import (GIB, Calibration, estimate, fit_calibration, load_calibration, place,
                                       saved_activation_bytes, save_calibration, trace)


def test_saved_bytes_of_small_models_match_hand_counts():
    lin = nn.Linear(10, 5)
    x = torch.zeros(3, 10)
    # Linear saves its input (3 x 10 floats); the weight is a parameter and is not counted.
    assert saved_activation_bytes(lin, lambda: lin(x).sum()) == 3 * 10 * 4

    block = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
    y = torch.zeros(2, 2, 8, 8)
    # conv saves its input (2*2*8*8); BN saves the conv output (2*4*8*8) plus mean and inverse std (4 each);
    # the in-place ReLU saves its output, which is the BN output (2*4*8*8), a new tensor.
    expected = 4 * (2 * 2 * 64 + 2 * 4 * 64 + 4 + 4 + 2 * 4 * 64)
    assert saved_activation_bytes(block, lambda: block(y).sum()) == expected


@pytest.mark.parametrize("cfg", [
    TrainConfig(arch=1, classifier="resnet18", batch_size=2),
    TrainConfig(arch=5, classifier="resnet18", unet_width=4, unet_depth=3, batch_size=2),
    TrainConfig(arch=4, classifier="resnet18", unet_width=4, unet_depth=3, batch_size=2),
])
def test_meta_trace_equals_a_real_cpu_trace(cfg):
    """The fast meta-device path counts exactly what a real forward on CPU tensors saves."""
    assert trace(cfg, 48) == trace(cfg, 48, device="cpu")


def test_estimate_components_follow_the_parameter_count():
    cal = Calibration(activation_factor=0.5, overhead_gb=0.25)
    cfg = TrainConfig(arch=5, classifier="resnet18", unet_width=4, unet_depth=3, batch_size=4)
    est = estimate(cfg, 64, cal)
    n = sum(p.numel() for p in __import__("timm").create_model("resnet18", num_classes=2).parameters())
    unet = sum(p.numel() for p in __import__("vdes_tune.models.unet", fromlist=["UNet"]).UNet(4, 3).parameters())
    assert est.trainable_params == n + unet and est.frozen_params == 0
    assert (est.weights, est.gradients, est.optimizer) == (4 * (n + unet), 4 * (n + unet), 8 * (n + unet))
    assert est.total == int(est.weights + est.gradients + est.optimizer + 0.5 * est.activations + 0.25 * GIB)
    frozen = estimate(TrainConfig(arch=4, classifier="resnet18", unet_width=4, unet_depth=3, batch_size=4), 64, cal)
    assert frozen.frozen_params == unet and frozen.gradients == 4 * n  # #4's generator is not trained
    # Activations grow with the batch, weights do not.
    double = estimate(TrainConfig(arch=5, classifier="resnet18", unet_width=4, unet_depth=3, batch_size=8), 64, cal)
    assert double.activations == pytest.approx(2 * est.activations, rel=0.01) and double.weights == est.weights


def test_placement_quantises_to_hundredths_of_the_card():
    assert place(int(0.5 * GIB), 8).fraction == 0.07           # 0.5 / (0.9 * 8) = 0.0694 -> 7/100
    assert place(int(3.6 * GIB), 8).fraction == 0.5            # exactly half of 90% of 8: not rounded up to 0.51
    assert place(int(7.2 * GIB), 8).fraction == 1.0
    over = place(int(7.3 * GIB), 8)
    assert not over.feasible and over.fraction == 0 and "8 GiB budget" in over.reason
    # On a larger card the fraction is of that card; the budget stays the most a configuration may use.
    on_80 = place(10 * GIB, 80.0, 80.0)
    assert on_80.fraction == 0.14 and on_80.reserved_gb == pytest.approx(11.2)  # 10 / 72 = 0.139 -> 14/100
    capped = place(int(21.7 * GIB), 24.0, 80.0)
    assert not capped.feasible and "24 GiB budget" in capped.reason  # fits the card, not the paper's card
    assert place(int(21.5 * GIB), 24.0, 80.0).fraction == 0.3     # 21.5 / 72 = 0.2986 -> 30/100
    assert "16 GiB card" in place(15 * GIB, 24.0, 16.0).reason     # a card smaller than the budget limits too
    with pytest.raises(BadInputError):
        place(1, 0)


def test_fit_calibration_recovers_factor_and_overhead():
    rows = [{"fixed_bytes": f, "activation_bytes": a, "measured_bytes": f + 0.6 * a + 0.8 * GIB}
            for f, a in ((1 * GIB, 2 * GIB), (2 * GIB, 5 * GIB), (0.5 * GIB, 9 * GIB))]
    cal = fit_calibration(rows, gpu="test")
    assert cal.activation_factor == pytest.approx(0.6, abs=1e-3)
    assert cal.overhead_gb == pytest.approx(0.8, abs=1e-3)
    # Noisy rows: never more than 5% below a measurement after the fit.
    rows[1]["measured_bytes"] *= 1.3
    cal = fit_calibration(rows)
    for r in rows:
        est = r["fixed_bytes"] + cal.activation_factor * r["activation_bytes"] + cal.overhead_gb * GIB
        assert est >= 0.95 * r["measured_bytes"] - 1


def test_calibration_round_trips_and_bad_files_are_named(tmp_path):
    cal = Calibration(0.7, 0.6, "fitted", "H100", ({"config": "x", "measured_bytes": 1},))
    save_calibration(cal, tmp_path / "c.json")
    assert load_calibration(tmp_path / "c.json") == cal
    (tmp_path / "bad.json").write_text(json.dumps({"activation_factor": 1, "colour": "red"}))
    with pytest.raises(BadInputError, match="bad.json.*colour"):
        load_calibration(tmp_path / "bad.json")
    assert load_calibration().activation_factor > 0  # the shipped default loads
