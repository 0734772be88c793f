"""The GPUs trials pack on: this machine's cards, the memory each Ray node advertises, and the card a
trial's GPU fraction is a share of.

Ray reads a fractional `GPU` request as a share of whatever card the trial lands on. So a fraction must be
sized from that card's memory, not from a fixed budget: a 12 GiB trial sized as a share of 24 GiB asks for
0.5 and packs two to an 80 GiB card where six fit. Each node advertises its GPU memory as a custom resource
(`gpu_memory_mib`, all its GPUs together); a local Ray instance does so by itself. A trial asks for its
fraction of the packing card and, where every node advertises, for its memory in MiB too:

- one card size everywhere: the fraction is a share of that card, exactly;
- mixed sizes, one GPU per node: fractions are shares of the largest card and the memory request keeps a
  smaller node from taking more than it holds (exact on every node);
- a node with several GPUs smaller than the largest: Ray fills one card of a node before the next, which
  the node-wide memory request cannot see, so fractions are shares of the smallest such card (safe on every
  card; larger cards then pack as if they were that size, the price of one request for every node).

`--gpu-memory-gb` is a different thing: the most a configuration may use, whatever the card (24 to keep to
the paper's card on a larger one). Configurations over it are never launched.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Iterable

from vdes_tune.errors import BadInputError

MEMORY_RESOURCE = "gpu_memory_mib"  # what a node advertises: MiB of GPU memory, all its GPUs together
PAPER_GPU_GB = 24.0  # the paper's card: the card plans assume when none is there or named
MIB_PER_GIB = 1024
# Named cards for `plan --gpu`: memory as the driver reports it (GiB), not the marketing figure.
NAMED_GPUS = {"rtx3090": 24.0, "rtx4090": 24.0, "a10g": 22.0, "l4": 22.0, "t4": 15.0, "v100": 32.0,
              "a100-40": 39.4, "a100": 79.2, "l40s": 44.4, "h100": 79.1, "h200": 139.8}


@dataclass(frozen=True)
class NodeGPUs:
    """One Ray node's GPUs: how many, and the memory of each (None where the node does not advertise it)."""

    node_id: str
    gpus: float
    card_gb: float | None
    cpus: float = 0.0
    memory_mib: float = 0.0


@dataclass(frozen=True)
class Packing:
    """How a run sizes its trials: fractions are shares of `card_gb`; configurations must fit `budget_gb`;
    with `by_memory`, each trial also asks for its memory (every node advertises its own)."""

    card_gb: float
    budget_gb: float
    by_memory: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for summaries and manifests."""
        return {"card_gb": self.card_gb, "budget_gb": self.budget_gb, "by_memory": self.by_memory, "note": self.note}


def parse_gpu(text: str) -> float:
    """A card's memory in GiB from `--gpu`: a number (80) or a name (h100, a100-40, ...)."""
    name = text.strip().lower().removesuffix("gb").removesuffix("gib")
    if name in NAMED_GPUS:
        return NAMED_GPUS[name]
    try:
        gb = float(name)
    except ValueError:
        raise BadInputError(f"--gpu: expected GiB (e.g. 80) or one of {', '.join(NAMED_GPUS)}; got {text!r}") from None
    if not gb > 0:
        raise BadInputError(f"--gpu must be > 0 GiB, got {text!r}")
    return gb


def local_cards_mib(env: dict[str, str] | None = None) -> list[float]:
    """Memory (MiB) of each GPU this process may use, read with nvidia-smi (no CUDA context is made);
    honours CUDA_VISIBLE_DEVICES as Ray does. Empty without NVIDIA GPUs."""
    env = os.environ if env is None else env
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return visible_cards(out.stdout, env.get("CUDA_VISIBLE_DEVICES"))


def visible_cards(smi_csv: str, visible: str | None) -> list[float]:
    """The MiB of the cards in nvidia-smi's `index, uuid, memory.total` rows that CUDA_VISIBLE_DEVICES keeps,
    in its order."""
    cards = {}
    for line in smi_csv.strip().splitlines():
        index, uuid, mib = (p.strip() for p in line.split(","))
        cards[index] = cards[uuid] = float(mib)
    if visible is None:
        return [v for k, v in cards.items() if k.isdigit()]
    return [cards[d.strip()] for d in visible.split(",") if d.strip() in cards]


def node_resources(cards_mib: Iterable[float]) -> dict[str, float]:
    """The custom resource a node advertises for its cards: as many times the smallest card as it has
    cards (a node with mixed cards packs as if all were its smallest)."""
    cards = list(cards_mib)
    return {MEMORY_RESOURCE: float(len(cards) * int(min(cards)))} if cards else {}


def cluster_nodes() -> list[NodeGPUs]:
    """The live nodes of the connected Ray cluster, with their GPUs and advertised GPU memory."""
    import ray

    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        gpus, mib = float(res.get("GPU", 0)), float(res.get(MEMORY_RESOURCE, 0))
        nodes.append(NodeGPUs(n["NodeID"], gpus, mib / gpus / MIB_PER_GIB if gpus and mib else None,
                              float(res.get("CPU", 0)), mib))
    return nodes


def packing_for(nodes: list[NodeGPUs], cap_gb: float | None = None) -> Packing:
    """The card fractions are shares of, and the budget, for these nodes (see the module's rules)."""
    if cap_gb is not None and not cap_gb > 0:
        raise BadInputError(f"--gpu-memory-gb must be > 0, got {cap_gb}")
    gpu_nodes = [n for n in nodes if n.gpus > 0]
    if not gpu_nodes:
        card = cap_gb or PAPER_GPU_GB
        return Packing(card, card, False, "no GPUs: trials run on CPUs")
    silent = [n for n in gpu_nodes if n.card_gb is None]
    if silent:
        card = cap_gb or PAPER_GPU_GB
        return Packing(card, card, False,
                       f"{len(silent)} of {len(gpu_nodes)} GPU node(s) do not advertise {MEMORY_RESOURCE}: fractions "
                       f"are shares of a {card:g} GiB card; start each node with `ray start --resources "
                       f"\"$(vdes-tune gpus --ray-resources)\"` to pack by its real memory")
    largest = max(n.card_gb for n in gpu_nodes)
    several = [n.card_gb for n in gpu_nodes if n.gpus > 1 and n.card_gb < largest]
    card = min(several) if several else largest
    budget = min(card, cap_gb) if cap_gb else card
    sizes = sorted({round(n.card_gb, 1) for n in gpu_nodes})
    note = f"GPUs of {', '.join(f'{s:g}' for s in sizes)} GiB; fractions are shares of one {card:g} GiB card"
    if several:
        note += (f" (the smallest card on a node with several; larger cards pack as {card:g} GiB ones: "
                 f"one Ray node per GPU packs them fully)")
    if cap_gb and cap_gb < card:
        note += f"; configurations must fit {cap_gb:g} GiB (--gpu-memory-gb)"
    return Packing(card, budget, True, note)


def local_packing(cap_gb: float | None = None, card_gb: float | None = None) -> Packing:
    """The packing a plan assumes: the named card, else this machine's GPUs, else the paper's card."""
    if card_gb is not None:
        return packing_for([NodeGPUs("named", 1, card_gb)], cap_gb)
    cards = local_cards_mib()
    return packing_for([NodeGPUs("local", len(cards), min(cards) / MIB_PER_GIB)] if cards else [], cap_gb)


def request(fraction: float, packing: Packing) -> dict[str, float]:
    """The Ray resources of a trial holding `fraction` of the packing card: its GPU share, and its memory
    (whole MiB: Ray takes only whole amounts above 1) where nodes advertise theirs."""
    if not fraction:
        return {}
    out = {"GPU": fraction}
    if packing.by_memory:
        out[MEMORY_RESOURCE] = float(math.ceil(fraction * packing.card_gb * MIB_PER_GIB))
    return out


def slots(nodes: list[NodeGPUs], asked: dict[str, float], cpus: float) -> int:
    """How many holders of `asked` (plus `cpus` CPUs each) the nodes hold at once: per node, the fewest of
    whole shares per card times its cards, its memory over the request, and its CPUs over `cpus`."""
    total = 0
    for n in nodes:
        fits = math.floor(n.cpus / cpus + 1e-9) if cpus else math.inf
        if asked.get("GPU"):
            fits = min(fits, math.floor(1 / asked["GPU"] + 1e-9) * int(n.gpus))
        if asked.get(MEMORY_RESOURCE):
            fits = min(fits, math.floor(n.memory_mib / asked[MEMORY_RESOURCE] + 1e-9))
        total += 0 if fits is math.inf else int(fits)
    return total


def describe_local() -> str:
    """This machine's GPUs and the `ray start --resources` JSON that advertises them (`vdes-tune gpus`)."""
    cards = local_cards_mib()
    if not cards:
        return "no NVIDIA GPU visible here (nvidia-smi absent or lists none): trials run on CPUs"
    lines = [f"GPU {i}: {mib / MIB_PER_GIB:.1f} GiB" for i, mib in enumerate(cards)]
    lines.append(f"ray start ... --resources '{json.dumps(node_resources(cards))}'")
    return "\n".join(lines)
