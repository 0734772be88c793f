"""Packing by the GPU that is there: the card fractions are shares of, the memory each node advertises, the
requests Ray gets, and `plan` for a named card; all against hand-computed values."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vdes_tune.errors import BadInputError
from vdes_tune.gpus import (MEMORY_RESOURCE, NodeGPUs, Packing, node_resources, packing_for, parse_gpu, request, slots,
                            visible_cards)
from vdes_tune.training.memory import GIB, place, process_share

SMI = "0, GPU-aaa, 81559\n1, GPU-bbb, 24564\n2, GPU-ccc, 24564\n"


def test_visible_cards_follow_cuda_visible_devices_by_index_or_uuid():
    assert visible_cards(SMI, None) == [81559.0, 24564.0, 24564.0]
    assert visible_cards(SMI, "2,0") == [24564.0, 81559.0]          # in CUDA's order
    assert visible_cards(SMI, "GPU-bbb") == [24564.0]
    assert visible_cards(SMI, "") == [] and visible_cards(SMI, "7") == []  # none visible: no GPU for Ray either


def test_a_node_advertises_its_cards_as_if_all_were_its_smallest():
    assert node_resources([81559.0]) == {MEMORY_RESOURCE: 81559.0}
    assert node_resources([81559.0, 24564.5]) == {MEMORY_RESOURCE: 2 * 24564.0}
    assert node_resources([]) == {}


def test_packing_rules_for_each_kind_of_cluster():
    one_80 = NodeGPUs("a", 1, 80.0)
    one_24 = NodeGPUs("b", 1, 24.0)
    two_24 = NodeGPUs("c", 2, 24.0)
    # One card size: fractions of it; the budget is the card unless capped (the paper's 24 on an 80).
    assert packing_for([one_80]) == Packing(80.0, 80.0, True, packing_for([one_80]).note)
    assert (packing_for([one_80], 24.0).card_gb, packing_for([one_80], 24.0).budget_gb) == (80.0, 24.0)
    # Mixed single-card nodes: the largest card; the memory request keeps the small node to its own.
    mixed = packing_for([one_80, one_24])
    assert (mixed.card_gb, mixed.budget_gb, mixed.by_memory) == (80.0, 80.0, True)
    # A node of several cards smaller than the largest: its card, for every node.
    several = packing_for([one_80, one_24, two_24])
    assert (several.card_gb, several.budget_gb) == (24.0, 24.0) and "one Ray node per GPU" in several.note
    assert packing_for([NodeGPUs("d", 4, 80.0), one_24]).card_gb == 80.0  # several cards, all the largest
    # A node that does not advertise: shares of the cap or of the paper's card, as before, and said so.
    silent = packing_for([one_80, NodeGPUs("e", 1, None)])
    assert (silent.card_gb, silent.by_memory) == (24.0, False) and "gpus --ray-resources" in silent.note
    assert packing_for([NodeGPUs("e", 1, None)], 40.0).card_gb == 40.0
    assert packing_for([NodeGPUs("cpu", 0, None)]).note.startswith("no GPUs")
    with pytest.raises(BadInputError):
        packing_for([one_80], 0.0)


def test_requests_and_slots_of_a_10_gib_trial():
    nodes = [NodeGPUs("a", 1, 80.0, 8, 80 * 1024), NodeGPUs("b", 1, 24.0, 8, 24 * 1024),
             NodeGPUs("c", 2, 24.0, 8, 48 * 1024)]
    # Single-card nodes: 10 / (0.9 * 80) = 0.139 -> 0.14 of the 80 GiB card, ceil(0.14 * 80 * 1024) MiB.
    mixed = packing_for(nodes[:2])
    ask = request(place(10 * GIB, mixed.budget_gb, mixed.card_gb).fraction, mixed)
    assert ask == {"GPU": 0.14, MEMORY_RESOURCE: 11469.0}
    assert slots(nodes[:2], ask, 0) == 7 + 2  # 1 / 0.14 on the 80; 24576 // 11469 on the 24
    assert slots(nodes[:2], ask, 4) == 2 + 2  # 8 CPUs at 4 each per node
    # With the two-card node: 10 / 21.6 = 0.463 -> 0.47 of a 24 GiB card, two per card on every node.
    several = packing_for(nodes)
    ask = request(place(10 * GIB, several.budget_gb, several.card_gb).fraction, several)
    assert ask == {"GPU": 0.47, MEMORY_RESOURCE: 11551.0} and slots(nodes, ask, 0) == 2 + 2 + 4
    # Without advertised memory the request is the GPU share alone; a CPU-only trial asks for nothing here.
    assert request(0.47, Packing(24.0, 24.0)) == {"GPU": 0.47} and request(0.0, mixed) == {}
    # The trial's own allocator cap on the 24 GiB card it landed on: its 11.2 GiB of the 80 GiB packing card.
    assert process_share(0.14, 80.0, 24 * GIB) == pytest.approx(11.2 / 24)


def test_named_cards_and_sizes():
    assert parse_gpu("80") == 80.0 and parse_gpu("H100") == 79.1 and parse_gpu("141GB") == 141.0
    for bad in ("h300", "-4", "0"):
        with pytest.raises(BadInputError, match="--gpu"):
            parse_gpu(bad)


def test_plan_shows_how_trials_pack_on_a_named_card():
    from vdes_tune.search.space import load_space
    from vdes_tune.training.memory import estimate

    def plan(*args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "vdes_tune", "plan", "paper_classifier_lr", *args, "--json"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    h100 = plan("--gpu", "h100", "--gpu-memory-gb", "24")
    assert (h100["gpu_gb"], h100["gpu_memory_gb"]) == (79.1, 24.0)
    space = load_space("paper_classifier_lr")
    for row, point in zip(h100["rows"], space.points()):
        gb = estimate(space.train_config(point)).total / GIB
        want = place(int(gb * GIB), 24.0, 79.1)
        assert (row["gpu_fraction"], row["feasible"]) == (want.fraction, want.feasible)
        assert row["per_gpu"] == int(1 / want.fraction + 1e-9)
        # Sized as shares of 24 GiB (what Ray then reads as shares of the 79 GiB card) far fewer run at once.
        assert row["per_gpu_as_24gb_shares"] == int(1 / place(int(gb * GIB), 24.0).fraction + 1e-9)
    assert h100["median_per_gpu"] > h100["median_per_gpu_as_24gb_shares"]
    text = subprocess.run([sys.executable, "-m", "vdes_tune", "plan", "paper_classifier_lr", "--gpu", "h100"],
                          capture_output=True, text=True).stdout
    assert "on a 79.1 GiB GPU" in text and "trials at once on one 79.1 GiB GPU" in text
