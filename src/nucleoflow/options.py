"""The options of inference and postprocessing with their defaults, in one place.

config/config.yaml holds the same defaults (tests/test_options.py checks); the workflow's thin
scripts build these from the config, and users pass them (or their fields by keyword, as
Segmenter takes them) from Python.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType


@dataclass(frozen=True)
class Tiling:
    """How an image is cut for the network and for labelling."""

    tile: int = 0  # side of the sliding window; 0: the largest a batch fits in memory_mb (infer.tile_side)
    memory_mb: int = 2048  # memory for one batch of windows' activations, with tile 0
    overlap: float = 0.0625  # fraction of the tile shared by neighbouring windows
    batch_size: int = 1  # windows per forward pass
    tta: bool = True  # average the 8 rotations/flips of every window (8x slower)
    tta_max_mp: float = 2.0  # ...on images up to this many megapixels (0: any size)
    block: int = 1024  # labelling block side: bounds memory for images of any size
    context: int = 64  # pixels of image around each block (above the largest nucleus radius)
    engine: str = "auto"  # see engine.load_engine

    def __post_init__(self):
        if self.tile < 0 or self.batch_size < 1 or self.memory_mb < 1 or self.tta_max_mp < 0:
            raise ValueError(
                f"tile ({self.tile}), tta_max_mp ({self.tta_max_mp}) must be at least 0, "
                f"batch_size ({self.batch_size}) and memory_mb ({self.memory_mb}) positive"
            )
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap ({self.overlap}) must be at least 0 and below 1")
        if not 0 <= self.context < self.block:
            raise ValueError(f"context ({self.context}) must be at least 0 and below the block size ({self.block})")

    @classmethod
    def from_config(cls, predict, segment=None):
        """From the config's predict (and segment) sections."""
        keys = {
            "tile": "tile_size",
            "memory_mb": "memory_mb",
            "overlap": "overlap",
            "batch_size": "batch_size",
            "tta": "tta",
            "tta_max_mp": "tta_max_mp",
            "engine": "engine",
        }
        values = {name: predict[key] for name, key in keys.items()}
        if segment is not None:
            values.update(block=segment["block_size"], context=segment["context"])
        return cls(**values)


# segment.split_above_mp: with n > 1 jobs, images above this many megapixels (an 8000 px square)
# are labelled in n parts, one per job (segment.segment_folder); smaller ones go whole to one job.
SPLIT_ABOVE_MP = 64


@dataclass(frozen=True)
class Thresholds:
    """postprocess.instances(): seeds are connected regions of P(interior) > seed_threshold at
    least min_seed_area pixels large, grown over P(interior) + P(border) > foreground_threshold;
    nuclei under min_area pixels are dropped."""

    seed_threshold: float = 0.5
    foreground_threshold: float = 0.5
    min_seed_area: int = 4
    min_area: int = 10


@dataclass(frozen=True)
class Training:
    """The training schedule (config train section); see config/config.yaml for each field."""

    epochs: int = 20
    samples_per_epoch: int = 7056
    batch_size: int = 16
    crop_size: int = 256
    learning_rate: float = 0.002
    weight_decay: float = 0.0001
    modality_balance: float = 0.5
    seed: int = 0
    init_model: str = ""
    targets: str = "inner_boundary"  # targets.KINDS
    border_weight: float = 1.0
    augment: dict = field(default_factory=dict)  # augment.Augmentation's fields; {}: none
    budget_min: float = 0.0  # > 0: samples_per_epoch fitted so that the run takes this many minutes

    @property
    def steps_per_epoch(self):
        return max(1, self.samples_per_epoch // self.batch_size)

    @property
    def total_steps(self):
        return self.epochs * self.steps_per_epoch


THRESHOLD_NAMES = tuple(f.name for f in dataclasses.fields(Thresholds))


def split_options(options):
    """(Tiling, Thresholds overrides) from keyword options, naming any unknown one."""
    tiling_names = {f.name for f in dataclasses.fields(Tiling)}
    unknown = set(options) - tiling_names - set(THRESHOLD_NAMES)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(tiling_names | set(THRESHOLD_NAMES)))}")
    return Tiling(**{k: v for k, v in options.items() if k in tiling_names}), {k: v for k, v in options.items() if k in THRESHOLD_NAMES}


@dataclass(frozen=True)
class ThresholdSet:
    """Thresholds for every image: the global ones, those of modalities tuned on their own, and
    where they come from (tuned_on: the split they were tuned on; None: given, not tuned)."""

    default: Thresholds = Thresholds()
    modality: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    tuned_on: str | None = None

    def for_modality(self, modality):
        """The thresholds for an image of `modality`: its own where tuning gave it some, else the global ones."""
        return self.modality.get(modality, self.default)

    def with_overrides(self, **overrides):
        """Every modality's thresholds with the given fields replaced (an untuned set when any is)."""
        if not overrides:
            return self
        own = {m: dataclasses.replace(t, **overrides) for m, t in self.modality.items()}
        return ThresholdSet(dataclasses.replace(self.default, **overrides), MappingProxyType(own), None)

    def to_json(self):
        """The layout tune writes and the model card keeps: global fields, per-modality ones under "modality"."""
        values = dataclasses.asdict(self.default)
        if self.modality:
            values["modality"] = {m: dataclasses.asdict(t) for m, t in self.modality.items()}
        return values

    @classmethod
    def from_json(cls, values, tuned_on=None):
        values = dict(values)
        modalities = values.pop("modality", {})
        own = {m: Thresholds(**{**values, **t}) for m, t in modalities.items()}  # a modality's own values may be partial
        return cls(Thresholds(**values), MappingProxyType(own), tuned_on)

    @classmethod
    def for_workflow(cls, fixed, tuned_path):
        """What the postprocess and package rules use: the thresholds tune wrote (tuned_path, on the
        validation split) when postprocess.tune is on, else the configured ones (fixed)."""
        if tuned_path:
            return cls.from_json(json.loads(Path(tuned_path).read_text()), tuned_on="val")
        return cls(Thresholds(**fixed))
