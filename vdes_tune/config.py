"""Typed, frozen configs for every stage; YAML in and out, validated once at construction."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from vdes_tune.errors import BadInputError
from vdes_tune.generator_registry import GENERATORS

C = TypeVar("C")


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Turn YAML/JSON scalars and lists into the field's declared type."""
    origin = get_origin(hint)
    if origin in (Union, UnionType):  # `float | None`: None, or the one other type
        others = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(others) < len(get_args(hint)):
            return None
        return _coerce(value, others[0], name) if len(others) == 1 else value
    if origin is Literal:
        if value not in get_args(hint):
            raise BadInputError(f"config field '{name}': {value!r} is not one of {list(get_args(hint))}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise BadInputError(f"config field '{name}': expected a mapping, got {value!r}")
        key_type, value_type = get_args(hint)
        out = {}
        for k, v in value.items():
            if key_type is int and isinstance(k, str) and k.strip().isdigit():
                k = int(k)  # JSON turns integer keys into strings
            out[_coerce(k, key_type, name)] = v if value_type is Any else _coerce(v, value_type, name)
        return out
    if origin is tuple:
        (item,) = {a for a in get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(v, item, name) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise BadInputError(f"config field '{name}': expected {hint.__name__}, got {value!r}")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A config class's resolved field types (resolving them is slow, and a class does not change)."""
    return get_type_hints(cls)


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build a config dataclass from a plain dict, rejecting unknown keys by name."""
    hints = _hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInputError(f"{cls.__name__}: unknown config field(s) {unknown}; known: {sorted(known)}")
    return cls(**{k: _coerce(v, hints[k], k) for k, v in data.items()})


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form of a config (tuples become lists) for YAML and JSON."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v
    return {f.name: plain(getattr(cfg, f.name)) for f in fields(cfg)}


def config_hash(cfg: Any) -> str:
    """Stable short hash of a config's content."""
    blob = json.dumps({"type": type(cfg).__name__, **to_dict(cfg)}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`--set KEY=VALUE` edits, each value read as YAML (`train.epochs=2`, `lr=1e-3`, `archs=[1, 2]`); a key given
    twice keeps its last value. The one parser of edits for every command and pipeline."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=2")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise BadInputError(f"--set {item!r}: the value is not valid YAML: {exc}") from exc
    return out


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The mapping of config fields in a YAML file; a clear error naming the file otherwise."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a mapping of config fields")
    return data


def resolve_shipped(spec: str | Path, folder: Path, kind: str) -> Path:
    """A YAML file path, or the name of one shipped in `folder` (`paper_classifier_lr`, `smoke`)."""
    path = Path(spec)
    if path.is_file():
        return path
    for candidate in (folder / f"{spec}.yaml", folder / str(spec)):
        if candidate.is_file():
            return candidate
    shipped = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    raise BadInputError(f"{spec}: no such {kind} file or shipped {kind}; shipped: {', '.join(shipped)}")


def from_yaml(cls: type[C], path: Path) -> C:
    """Read a config dataclass from a YAML mapping."""
    return from_dict(cls, read_yaml_mapping(path))


def to_yaml(cfg: Any) -> str:
    """YAML text of a config, fields in declaration order."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the synthetic CDD-CESM phantom writer."""

    patients: int = 20
    size: Literal["small", "full"] = "small"
    seed: int = 0
    quirks: bool = False
    # How pathology shows in the pixels (phantom/signal.py): paper (default), null (labels independent of
    # every pixel) or des-only (LE shows lesions but not their class).
    signal: Literal["paper", "null", "des-only"] = "paper"
    # Image files: jpeg (the CDD-CESM layout) or dicom (a CESM DICOM folder plus labels.csv; docs/ingest.md, "DICOM input").
    format: Literal["jpeg", "dicom"] = "jpeg"

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise BadInputError(f"patients: must be >= 1, got {self.patients}")
        if self.signal not in get_args(get_type_hints(SynthConfig)["signal"]):
            raise BadInputError(f"synth config field 'signal': {self.signal!r} is not one of paper, null, des-only")
        if self.format not in ("jpeg", "dicom"):
            raise BadInputError(f"synth config field 'format': {self.format!r} is not one of jpeg, dicom")
        if self.format == "dicom" and self.quirks:
            raise BadInputError("synth config field 'quirks': the naming quirks exist in the jpeg format only")


@dataclass(frozen=True)
class IngestConfig:
    """Settings of the ingest stage: registration, labels, crops, LED, splits, shards."""

    # Registration (paper 2.2): integer shifts only, mutual information on 8-bit intensities.
    registration: Literal["two-level", "exhaustive"] = "two-level"
    max_shift: int = 10
    coarse_step: int = 5
    refine_radius: int = 2
    mi_bins: int = 256
    # Labels (paper 3.2.1). "pathology": Normal/Benign -> 0, Malignant -> 1;
    # "birads": max BI-RADS <= 2 -> 0, >= 4 -> 1. Images whose max BI-RADS is listed are excluded.
    label_rule: Literal["pathology", "birads"] = "pathology"
    label_row: Literal["le", "des"] = "le"
    exclude_birads: tuple[int, ...] = (3,)
    # Crops (paper 3.2).
    crop_size: int = 224
    normal_crops_per_image: int = 1
    min_tissue_fraction: float = 0.9
    merge_distance: int = 56
    # LED (paper 3.2.4).
    nlm_h: float = 10.0
    nlm_template: int = 7
    nlm_search: int = 21
    # Splits (paper 3.2.2).
    split_fractions: tuple[float, ...] = (0.70, 0.15, 0.15)
    seed: int = 0
    # Output.
    rows_per_shard: int = 256
    qa_samples: int = 8
    strict: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.max_shift >= 0, "max_shift", "must be >= 0"),
            (self.coarse_step >= 1, "coarse_step", "must be >= 1"),
            (self.refine_radius >= 0, "refine_radius", "must be >= 0"),
            (2 <= self.mi_bins <= 256, "mi_bins", "must be in 2..256"),
            (self.crop_size >= 16, "crop_size", "must be >= 16"),
            (self.normal_crops_per_image >= 1, "normal_crops_per_image", "must be >= 1"),
            (0.0 < self.min_tissue_fraction <= 1.0, "min_tissue_fraction", "must be in (0, 1]"),
            (self.nlm_template % 2 == 1 and self.nlm_search % 2 == 1, "nlm_template/nlm_search", "must be odd"),
            (len(self.split_fractions) == 3 and abs(sum(self.split_fractions) - 1) < 1e-6
             and min(self.split_fractions) > 0, "split_fractions", "must be three positive numbers summing to 1"),
            (self.rows_per_shard >= 1, "rows_per_shard", "must be >= 1"),
            (self.qa_samples >= 0, "qa_samples", "must be >= 0"),
        ]
        for ok, name, what in checks:
            if not ok:
                raise BadInputError(f"ingest config field '{name}': {what} (got {getattr(self, name.split('/')[0])!r})")


SPLITS: tuple[str, ...] = ("train", "val", "test")
CLASS_NAMES: tuple[str, ...] = ("non-malignant", "malignant")


@dataclass(frozen=True)
class TrainConfig:
    """One classification run of an architecture (paper 3.3); the unit a Tune trial or a repeat calls."""

    arch: int = 3
    classifier: Literal["resnet18", "resnet34", "regnety_016"] = "regnety_016"
    lr: float = 5e-4
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 16
    seed: int = 0
    augment: bool = True
    # Generator of the vdes channel (#4..#6): U-Net shape, and weights for the pre-trained ones.
    unet_width: int = 32
    unet_depth: int = 6
    unet_dropout: float = 0.2
    generator_weights: str = ""
    # #4/#6: name of a `vdes/<name>` set in the workspace (the paper's way: generated once, then loaded).
    # Empty: generate on the fly from generator_weights.
    vdes: str = ""
    # #5 only: weight of an L1 term between the U-Net output and the real DES (off, as in the paper).
    recon_weight: float = 0.0
    classifier_weights: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        checks = [
            (self.arch in architecture_numbers(), "arch", f"must be one of {architecture_numbers()}"),
            (self.lr > 0, "lr", "must be > 0"),
            (0 <= self.dropout < 1, "dropout", "must be in [0, 1)"),
            (self.epochs >= 1, "epochs", "must be >= 1"),
            (self.batch_size >= 2, "batch_size", "must be >= 2 (BatchNorm)"),
            (self.recon_weight >= 0, "recon_weight", "must be >= 0"),
        ]
        for ok, name, what in checks:
            if not ok:
                raise BadInputError(f"train config field '{name}': {what} (got {getattr(self, name)!r})")


def architecture_numbers() -> tuple[int, ...]:
    """The registered architecture numbers (the paper's #1..#6 and any plug-in)."""
    from vdes_tune.models.architectures import ARCHITECTURES

    return tuple(int(n) for n in ARCHITECTURES.names())


@dataclass(frozen=True)
class GeneratorConfig:
    """Training of one LE -> DES generator (paper 2.3); build with `for_model` to get that model's defaults."""

    model: str = "unet"  # a registered generator (generator_registry.py): unet, cyclegan, pix2pix
    epochs: int = 30
    batch_size: int = 16
    lr: float = 5e-4
    betas: tuple[float, ...] = (0.9, 0.999)
    seed: int = 0
    augment: bool = True
    # Stop when validation L1 has not improved for this many epochs (0: never; the paper ran them all).
    patience: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # U-Net: shape and the paired loss to the real DES.
    unet_width: int = 32
    unet_depth: int = 6
    unet_dropout: float = 0.2
    loss: Literal["l1", "l2"] = "l1"
    # CycleGAN: network sizes (reference defaults), loss weights of eq. (5), image pool.
    features: int = 64
    blocks: int = 9
    disc_features: int = 64
    lambda_cycle: float = 10.0
    lambda_identity: float = 5.0
    pool_size: int = 50
    # Pix2Pix: weight of the L1 term, GAN loss, PatchGAN depth (disc_features is shared with the CycleGAN).
    lambda_l1: float = 100.0
    gan_loss: Literal["vanilla", "lsgan"] = "vanilla"
    disc_layers: int = 3
    # Images in the sample montage (first crops of the validation split).
    samples: int = 6

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs", "must be >= 1"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (self.lr > 0, "lr", "must be > 0"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", "must be two values in [0, 1)"),
            (self.patience >= 0, "patience", "must be >= 0"),
            (self.unet_width >= 1, "unet_width", "must be >= 1"),
            (2 <= self.unet_depth <= 8, "unet_depth", "must be 2..8"),
            (0 <= self.unet_dropout < 1, "unet_dropout", "must be in [0, 1)"),
            (self.blocks >= 0 and self.features >= 1 and self.disc_features >= 1, "features", "must be positive"),
            (self.lambda_cycle >= 0 and self.lambda_identity >= 0, "lambda_cycle", "loss weights must be >= 0"),
            (self.pool_size >= 0, "pool_size", "must be >= 0"),
            (self.lambda_l1 >= 0, "lambda_l1", "must be >= 0"),
            (1 <= self.disc_layers <= 6, "disc_layers", "must be 1..6"),
            (self.samples >= 1, "samples", "must be >= 1"),
            (self.model in GENERATORS, "model", f"must be one of {', '.join(GENERATORS.names())}"),
        ]
        for ok, name, what in checks:
            if not ok:
                raise BadInputError(f"generator config field '{name}': {what} (got {getattr(self, name)!r})")

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> "GeneratorConfig":
        """The model's defaults (its registry entry's) updated by `overrides` (fields validated by name)."""
        if model not in GENERATORS:
            raise BadInputError(f"generator model {model!r} is not one of {', '.join(GENERATORS.names())}")
        return from_dict(cls, {**GENERATORS.get(model).defaults, **overrides, "model": model})

    @classmethod
    def shaped(cls, model: str, shape: dict[str, Any] | None = None) -> "GeneratorConfig":
        """A generator's defaults, shaped by the fields it takes from an architecture's TrainConfig."""
        fields_ = GENERATORS.get(model).shape_fields
        return cls.for_model(model, **{k: v for k, v in (shape or {}).items() if k in fields_})


@dataclass(frozen=True)
class AnalysisConfig:
    """How the answer is computed (the `evaluate` config's `analysis` mapping; `report --margin` overrides)."""

    margin: float = 0.02  # non-inferiority margin on test F1: 2 F1 points
    auc_margin: float = 0.02  # the same for ROC-AUC
    rate_margin: float = 0.05  # the same for sensitivity and specificity (reader studies use 5 to 10 points)
    no_des: int = 2  # the no-DES reference: #2 LE+LED+LE differs from the virtual DES only in channel 3
    real: int = 3
    virtual: tuple[int, ...] = ()  # empty: every evaluated architecture with a virtual DES channel
    confidence: float = 0.95
    bootstrap: int = 2000  # patient-level cluster bootstrap draws
    seed: int = 0
    threshold: float = 0.5  # malignant when the probability is at least this (as in training)
    calibration_bins: int = 10

    def __post_init__(self) -> None:
        checks = [(0 <= self.margin < 1, "margin", "must be in [0, 1) (0.02 = 2 F1 points)"),
                  (0 <= self.auc_margin < 1, "auc_margin", "must be in [0, 1)"),
                  (0 <= self.rate_margin < 1, "rate_margin", "must be in [0, 1)"),
                  (0.5 <= self.confidence < 1, "confidence", "must be in [0.5, 1)"),
                  (self.bootstrap >= 100, "bootstrap", "must be >= 100"),
                  (0 < self.threshold < 1, "threshold", "must be in (0, 1)"),
                  (self.calibration_bins >= 2, "calibration_bins", "must be >= 2"),
                  (self.no_des in (1, 2), "no_des", "must be 1 or 2")]
        for ok, name, what in checks:
            if not ok:
                raise BadInputError(f"analysis config field '{name}': {what} (got {getattr(self, name)!r})")

    def margin_for(self, metric: str) -> float:
        """The non-inferiority margin of a metric."""
        return {"f1": self.margin, "roc_auc": self.auc_margin}.get(metric, self.rate_margin)


def analysis_config(data: dict[str, Any] | None, **overrides: Any) -> AnalysisConfig:
    """AnalysisConfig from the evaluate config's mapping, then overrides that are not None."""
    return from_dict(AnalysisConfig, {**(data or {}), **{k: v for k, v in overrides.items() if v is not None}})


@dataclass(frozen=True)
class EvaluateConfig:
    """The final evaluation (paper 4): which architectures, how many repeats, from which exported configs.

    Only a search's *searched* values carry over from `configs` (a later file wins); the rest of every
    architecture's TrainConfig is the paper's default, then `train` (overrides for every architecture).
    """

    configs: tuple[str, ...] = ()
    archs: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    repeats: int = 30
    seed: int = 0
    # TrainConfig fields set for every architecture (e.g. epochs, batch_size, classifier).
    train: dict[str, Any] = field(default_factory=dict)
    # Pre-trained generators (#4 U-Net/PT, #6 CycleGAN, #7 Pix2Pix): GeneratorConfig overrides per generator
    # model (`generators: {unet: {epochs: 3}}`), or per architecture the name of an existing vdes/<name> set
    # to use as it is (`vdes: {6: cyclegan}`).
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)
    vdes: dict[int, str] = field(default_factory=dict)
    # Weights kept per job: "first" keeps repeat 0 of each architecture (for the report's montage).
    save_weights: Literal["none", "first", "all"] = "first"
    # How the report computes the answer (AnalysisConfig above): margin (non-inferiority,
    # default 0.02 = 2 F1 points), auc_margin, rate_margin (sensitivity and specificity, 0.05), no_des (1 or 2),
    # confidence, bootstrap, seed, calibration_bins.
    analysis: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from vdes_tune.models.architectures import pretrained_generators

        known, pretrained = architecture_numbers(), sorted(pretrained_generators())
        checks = [
            (len(self.archs) >= 1 and all(a in known for a in self.archs) and len(set(self.archs)) == len(self.archs),
             "archs", f"must be distinct architecture numbers of {known}"),
            (self.repeats >= 1, "repeats", "must be >= 1"),
            (set(self.vdes) <= set(pretrained), "vdes", f"only {', '.join(f'#{a}' for a in pretrained)} read a "
             f"pre-made virtual DES"),
            (set(self.generators) <= set(GENERATORS.names()), "generators",
             f"keys must be generator models {GENERATORS.names()}"),
            ("arch" not in self.train and "seed" not in self.train, "train",
             "arch and seed are set per job (use archs and seed)"),
        ]
        for ok, name, what in checks:
            if not ok:
                raise BadInputError(f"evaluate config field '{name}': {what} (got {getattr(self, name)!r})")
        from_dict(TrainConfig, dict(self.train))  # unknown or invalid fields fail here, by name
        for model, overrides in self.generators.items():
            try:
                GeneratorConfig.for_model(model, **overrides)
            except BadInputError as exc:
                raise BadInputError(f"evaluate config field 'generators.{model}': {exc}") from exc
        try:
            analysis_config(self.analysis)  # unknown or invalid fields fail here, by name
        except BadInputError as exc:
            raise BadInputError(f"evaluate config field 'analysis': {exc}") from exc


# How (not what) the search and the evaluation run: the resources each trial or actor asks for. Defined
# here once; the commands' flags, the pipelines' fields and the stages all take their defaults from these.
@dataclass(frozen=True)
class SearchOptions:
    """How one search runs: its name and storage, and what each trial reserves."""

    name: str = ""
    storage: str = ""
    max_concurrent: int | None = None
    gpu_memory_gb: float | None = None  # the most a configuration may use; None: the card's memory
    cpus_per_trial: float = 1.0
    address: str | None = None
    mlflow_uri: str = ""
    max_failures: int = 2
    calibration: str = ""
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalOptions:
    """How (not what) to evaluate: where the results go and the resources to use."""

    run: str = "main"
    actors: int = 0  # 0: as many as the cluster holds
    cpus_per_actor: float = 1.0
    gpu_memory_gb: float | None = None  # the most a configuration may use; None: the card's memory
    calibration: str = ""
    address: str | None = None
    force: bool = False
    verify: bool = False  # check finished jobs' files against the manifest's sha256, not only their sizes
    max_job_attempts: int = 3  # pool-level resubmissions on top of Ray's own task retries
    progress: bool = True
