"""Search spaces: the YAML format of `search_spaces/*.yaml`, validated once, turned into Optuna suggestions.

A space names the architecture(s), the metric and mode, fixed values and searched parameters; how it is
searched (searcher, scheduler, seeds per point) is its strategy (`search/strategy.py`), read from the same
file. Keys of `fixed` and `parameters` are dotted config keys, `train.<TrainConfig field>`. Domains:
`{choice: [a, b]}`, `{int: [low, high]}` (optional `step`, `log`), `{uniform: [low, high]}`,
`{loguniform: [low, high]}`. See docs/search.md for the full description.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from vdes_tune.config import TrainConfig, architecture_numbers, from_dict, parse_set, resolve_shipped
from vdes_tune.errors import BadInputError
from vdes_tune.search.strategy import TOP_LEVEL as STRATEGY_FIELDS
from vdes_tune.search.strategy import Strategy, parse_strategy

SECTIONS = ("train",)
METRICS = ("val_f1", "val_accuracy", "val_roc_auc", "val_macro_f1")
KINDS = ("choice", "int", "uniform", "loguniform")
TOP_LEVEL = {"name", "description", "arch", "metric", "mode", "fixed", "parameters", *STRATEGY_FIELDS}
ARCH_KEY = "arch"
# Inside the package so an installed wheel has them; the checkout's search_spaces/ links here.
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "shipped" / "search_spaces"


@dataclass(frozen=True)
class Domain:
    """One searched parameter's domain."""

    kind: str
    values: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    log: bool = False

    @property
    def finite(self) -> bool:
        """Whether the grid algorithm can enumerate it."""
        return self.kind in ("choice", "int")

    def grid_values(self) -> list[Any]:
        """Every value, in order (choice or int domains only)."""
        if self.kind == "choice":
            return list(self.values)
        return list(range(int(self.low), int(self.high) + 1, self.step))

    def suggest(self, trial: Any, name: str) -> Any:
        """Ask an Optuna trial for a value of this domain."""
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.values))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=self.step, log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.kind == "loguniform")

    def sample(self, rng: random.Random) -> Any:
        """A uniform draw (log-uniform where the domain says so), for `plan` on sampled spaces."""
        if self.kind == "choice":
            return rng.choice(self.values)
        if self.kind == "int":
            if self.log:
                return int(round(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))
            return rng.choice(self.grid_values())
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space."""

    name: str
    path: str
    description: str
    arch: tuple[int, ...]
    metric: str
    mode: str
    strategy: Strategy
    fixed: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Domain] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # the mapping it was read from, for provenance

    @property
    def searched(self) -> dict[str, Domain]:
        """Searched parameters, the architecture included when there are several."""
        extra = {ARCH_KEY: Domain("choice", self.arch)} if len(self.arch) > 1 else {}
        return {**extra, **self.parameters}

    @functools.cached_property
    def epochs(self) -> int:
        """Epochs per trial (the ASHA horizon)."""
        return self.train_config({}).epochs

    def grid(self) -> list[dict[str, Any]]:
        """Every point of a grid space, in a fixed order."""
        names = list(self.searched)
        values = [self.searched[n].grid_values() for n in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*values)]

    @property
    def size(self) -> int:
        """Number of trials the space asks for: the grid's size, or num_samples."""
        return len(self.grid()) if self.strategy.algorithm == "grid" else self.strategy.num_samples

    @property
    def finite(self) -> bool:
        """Every searched domain can be enumerated (choice or int)."""
        return all(d.finite for d in self.searched.values())

    def sample(self, n: int, seed: int | None = None) -> list[dict[str, Any]]:
        """`n` random points (for `plan` on non-grid spaces)."""
        rng = random.Random(self.strategy.seed if seed is None else seed)
        return [{k: d.sample(rng) for k, d in self.searched.items()} for _ in range(n)]

    def points(self, samples: int | None = None) -> list[dict[str, Any]]:
        """The grid, or `samples` random points (default num_samples)."""
        return self.grid() if self.strategy.algorithm == "grid" else self.sample(samples or self.strategy.num_samples)

    def define_by_run(self) -> "DefineByRun":
        """Optuna define-by-run function: suggests every searched parameter; no training in here."""
        return DefineByRun(self.searched)

    def train_config(self, point: dict[str, Any], seed: int | None = None) -> TrainConfig:
        """The TrainConfig of one point: TrainConfig defaults, then fixed values, then the point."""
        values = {**self.fixed, **{k: v for k, v in point.items() if k != ARCH_KEY}}
        train = {k.split(".", 1)[1]: v for k, v in values.items()}
        train["arch"] = int(point.get(ARCH_KEY, self.arch[0]))
        if seed is not None:
            train["seed"] = seed
        return from_dict(TrainConfig, train)

    def seeds(self, point: dict[str, Any]) -> list[int]:
        """The training seeds a point may get, in the order it gets them (the same for every point: common
        random numbers, so seed k of two points is a paired comparison)."""
        base = self.train_config(point).seed
        return [base + r for r in range(self.strategy.repeats)]

    def content_hash(self) -> str:
        """Hash of what the space searches (not its name or description)."""
        blob = {k: v for k, v in self.source.items() if k not in ("name", "description")}
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DefineByRun:
    """A picklable define-by-run space (Tune saves the searcher with the experiment)."""

    searched: dict[str, Domain]

    def __call__(self, trial: Any) -> None:
        for name, domain in self.searched.items():
            domain.suggest(trial, name)


def _fail(where: str, field_name: str, what: str) -> BadInputError:
    return BadInputError(f"{where}: field '{field_name}': {what}")


def _number(value: Any, where: str, name: str) -> float:
    """YAML 1.1 reads `1e-3` as a string; accept it as the number it plainly is."""
    if isinstance(value, bool):
        raise _fail(where, name, f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _fail(where, name, f"expected a number, got {value!r}") from None


def _train_field(key: str, where: str, ctx: str) -> str:
    section, _, name = str(key).partition(".")
    if section not in SECTIONS or not name:
        raise _fail(where, f"{ctx}.{key}", f"keys are dotted config keys, one of "
                                           f"{', '.join(s + '.<field>' for s in SECTIONS)}")
    known = {f.name for f in fields(TrainConfig)}
    if name not in known:
        raise _fail(where, f"{ctx}.{key}", f"'{name}' is not a TrainConfig field; known: {sorted(known)}")
    if name == "arch":
        raise _fail(where, f"{ctx}.{key}", "set the architecture with the top-level 'arch' field")
    return name


def _value(name: str, value: Any, where: str, ctx: str) -> Any:
    hint = get_type_hints(TrainConfig)[name]
    if hint is float and isinstance(value, str):
        value = _number(value, where, ctx)
    try:
        from_dict(TrainConfig, {name: value})
    except BadInputError as exc:
        raise _fail(where, ctx, str(exc)) from None
    return float(value) if hint is float and not isinstance(value, bool) else value


def _domain(key: str, spec: Any, where: str) -> Domain:
    ctx = f"parameters.{key}"
    name = _train_field(key, where, "parameters")
    if not isinstance(spec, dict):
        raise _fail(where, ctx, f"expected one of {{{', '.join(k + ': ...' for k in KINDS)}}}")
    kinds = [k for k in spec if k in KINDS]
    extra = sorted(set(spec) - set(KINDS) - {"step", "log"})
    if len(kinds) != 1 or extra:
        raise _fail(where, ctx, f"expected exactly one domain of {list(KINDS)} (plus step/log for int), got {sorted(spec)}")
    kind, body = kinds[0], spec[kinds[0]]
    if kind == "choice":
        if not isinstance(body, list) or not body:
            raise _fail(where, f"{ctx}.choice", "expected a non-empty list of values")
        values = tuple(_value(name, v, where, f"{ctx}.choice") for v in body)
        if len(set(values)) != len(values):
            raise _fail(where, f"{ctx}.choice", f"values repeat: {list(body)}")
        return Domain("choice", values)
    if not isinstance(body, list) or len(body) != 2:
        raise _fail(where, f"{ctx}.{kind}", "expected [low, high]")
    low, high = (_number(v, where, f"{ctx}.{kind}") for v in body)
    if not low < high:
        raise _fail(where, f"{ctx}.{kind}", f"low must be below high, got {body}")
    if kind == "loguniform" and low <= 0:
        raise _fail(where, f"{ctx}.{kind}", "log-uniform bounds must be > 0")
    step, log = spec.get("step", 1), bool(spec.get("log", False))
    if kind == "int":
        if low != int(low) or high != int(high) or not isinstance(step, int) or step < 1:
            raise _fail(where, f"{ctx}.int", "bounds and step must be integers (step >= 1)")
        if log and low < 1:
            raise _fail(where, f"{ctx}.int", "log-scaled int bounds must be >= 1")
    elif "step" in spec or "log" in spec:
        raise _fail(where, ctx, "step/log belong to int domains only (use loguniform for a log scale)")
    for bound in (low, high):
        _value(name, int(bound) if kind == "int" else bound, where, f"{ctx}.{kind}")
    return Domain(kind, (), low, high, step, log)


def parse_space(data: dict[str, Any], where: str, name: str = "") -> SearchSpace:
    """Validate a search-space mapping; errors name the file (`where`) and the field."""
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: expected a mapping of search-space fields")
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        raise _fail(where, unknown[0], f"unknown field; known: {sorted(TOP_LEVEL)}")
    for required in ("arch", "metric", "parameters"):
        if required not in data:
            raise _fail(where, required, "is required")
    arch = data["arch"] if isinstance(data["arch"], list) else [data["arch"]]
    known = architecture_numbers()
    if not arch or any(isinstance(a, bool) or not isinstance(a, int) or a not in known for a in arch):
        raise _fail(where, "arch", f"expected an architecture of {known} or a list of them, got {data['arch']!r}")
    metric, mode = data["metric"], data.get("mode", "max")
    if metric not in METRICS:
        raise _fail(where, "metric", f"{metric!r} is not one of {list(METRICS)}")
    if mode not in ("max", "min"):
        raise _fail(where, "mode", f"{mode!r} is not 'max' or 'min'")
    fixed_in = data.get("fixed", {}) or {}
    params_in = data["parameters"] or {}
    if not isinstance(fixed_in, dict):
        raise _fail(where, "fixed", "expected a mapping of dotted config keys to values")
    if not isinstance(params_in, dict) or not params_in and len(arch) == 1:
        raise _fail(where, "parameters", "expected a non-empty mapping of dotted config keys to domains")
    fixed = {k: _value(_train_field(k, where, "fixed"), v, where, f"fixed.{k}") for k, v in fixed_in.items()}
    params = {str(k): _domain(str(k), v, where) for k, v in params_in.items()}
    both = sorted(set(fixed) & set(params))
    if both:
        raise _fail(where, f"fixed.{both[0]}", "is also a searched parameter")
    if data.get("algorithm") == "grid":
        loose = [k for k, d in params.items() if not d.finite]
        if loose:
            raise _fail(where, f"parameters.{loose[0]}", "a grid needs choice or int domains")
    space_name = str(data.get("name") or name or Path(where).stem)
    if not space_name or not all(c.isalnum() or c in "-_." for c in space_name):
        raise _fail(where, "name", f"expected letters, digits, '-', '_' or '.', got {space_name!r}")
    # The fixed values must make a valid TrainConfig together; its epochs bound the strategy's rungs.
    train = from_dict(TrainConfig, {**{k.split(".", 1)[1]: v for k, v in fixed.items()}, "arch": int(arch[0])})
    strategy = parse_strategy(data, where, train.epochs)
    return SearchSpace(name=space_name, path=where, description=str(data.get("description", "")), arch=tuple(arch),
                       metric=metric, mode=mode, strategy=strategy, fixed=fixed, parameters=params, source=data)


def resolve_space_path(spec: str | Path) -> Path:
    """A file path, or the name of a shipped space (`paper_classifier_lr`)."""
    return resolve_shipped(spec, SHIPPED_DIR, "search-space")


def apply_overrides(data: dict[str, Any], overrides: list[str], where: str) -> dict[str, Any]:
    """`KEY=VALUE` edits (YAML values): a top-level field, `asha.<field>`, `race.<field>`, or a fixed
    `train.<field>`."""
    sections = ("asha", "race")
    data = {**data, "fixed": dict(data.get("fixed") or {}), **{s: dict(data.get(s) or {}) for s in sections}}
    for key, value in parse_set(overrides).items():
        section, _, rest = key.partition(".")
        if section in sections and rest:
            data[section][rest] = value
        elif "." in key:
            if key in (data.get("parameters") or {}):
                raise BadInputError(f"--set {key}: {where} searches this parameter; it cannot also be fixed")
            data["fixed"][key] = value
        else:
            data[key] = value
    for section in sections:
        if not data[section]:
            data.pop(section)
    return data


def load_space(spec: str | Path, overrides: list[str] | None = None) -> SearchSpace:
    """Read, override (`--set`) and validate a search-space file."""
    path = resolve_space_path(spec)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read search space: {exc}") from exc
    if overrides:
        data = apply_overrides(data if isinstance(data, dict) else {}, overrides, str(path))
    return parse_space(data, str(path), name=path.stem)


def with_samples(space: SearchSpace, num_samples: int | None) -> SearchSpace:
    """The space with another sample count (a grid ignores it)."""
    if num_samples is None or space.strategy.algorithm == "grid":
        return space
    if num_samples < 1:
        raise BadInputError(f"--num-samples must be >= 1, got {num_samples}")
    return replace(space, strategy=replace(space.strategy, num_samples=num_samples),
                   source={**space.source, "num_samples": num_samples})
