"""The options of inference and postprocessing with their defaults, in one place.

config/config.yaml holds the same defaults (tests/test_options.py checks); the workflow's thin
scripts build these from the config, and users pass them (or their fields by keyword, as
Segmenter takes them) from Python.
"""

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric option: from low to high (None: unbounded), a bound left out
    where it is open; zero, where given, says what 0 means for an option that also takes 0 as
    "choose for me" (tile 0: the largest window that fits memory_mb)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    zero: str = ""

    def __contains__(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
            return False
        if self.zero and value == 0:
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self):
        """The range in words: "strictly between 0 and 1", "0 (estimated per image) or between 2 and 500"."""
        low = None if self.low is None else f"{'above' if self.low_open else 'at least'} {self.low:g}"
        high = None if self.high is None else f"{'below' if self.high_open else 'at most'} {self.high:g}"
        if low and high and self.low_open == self.high_open:
            words = f"{'strictly ' if self.low_open else ''}between {self.low:g} and {self.high:g}"
        else:
            words = " and ".join(filter(None, (low, high))) or "any number"
        return f"0 ({self.zero}) or {words}" if self.zero else words

    def check(self, value, name):
        """value, or a ValueError naming the option as the user gave it: "--seed-threshold must be
        strictly between 0 and 1, got 1.5" (name: a flag, a keyword or a config key)."""
        if value in self:
            return value
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        got = f"{value:g}" if number else repr(value)
        if number and self.high == 1 and 1 < value <= 100 and float(value).is_integer():  # a percentage given for a probability
            got += f" (a probability: for {value:g}% give {value / 100:g})"
        raise ValueError(f"{name} must be {self}, got {got}")


# The one definition of every numeric option's valid values, by its name in Tiling, Thresholds,
# Segmenter and segment_folder (keywords) and on the command line (--seed-threshold: cli.py).
# workflow/schemas/config.schema.yaml says the same for the config keys of CONFIG_KEYS
# (tests/test_ranges.py checks).
RANGES = MappingProxyType(
    {
        # Tiling
        "tile": Range(32, zero="the largest window that fits memory_mb"),
        "memory_mb": Range(64),
        "overlap": Range(0, 0.75),  # 0.75 already computes every pixel 16 times; 0.99 would be 10,000 times
        "batch_size": Range(1),
        "tta_max_mp": Range(0),
        "block": Range(64),
        "context": Range(0, 512),
        # Thresholds: probabilities (0 or 1 would make every pixel a seed, or none), sizes in pixels
        "seed_threshold": Range(0, 1, low_open=True, high_open=True),
        "foreground_threshold": Range(0, 1, low_open=True, high_open=True),
        "min_seed_area": Range(1),
        "min_area": Range(1),
        # Segmenter, segment_folder, the command line
        "threads": Range(1),
        "workers": Range(1),
        # Nucleus diameter in px. Under 2 px a nucleus is 1-3 pixels, nothing to outline, and
        # zooming it to the shipped model's 18.4 px median (scale.py) would take a 4096 px image
        # (the largest held whole to zoom) near the reader's 40,000 px limit. 500 px is a 32 um
        # nucleus, larger than most, at 0.065 um per pixel (a 100x objective on 6.5 um camera
        # pixels); the former bound, 2000 px, shrank a 4096 px image to 38 px.
        "diameter": Range(2, 500, zero="estimated per image"),
        "pixel_size_um": Range(1e-3, 100.0, zero="from each image's metadata"),  # 1 nm .. 100 um: outside it, a pixel size is a mistake
        "split_above_mp": Range(0),
    }
)

# Inference engines (engine.load_engine; the schema's predict.engine and the command line's
# --engine take these, tests/test_ranges.py checks).
ENGINES = ("auto", "openvino", "onnx", "torch", "eager")


def check_engine(engine):
    """Refuse an engine that is not one of ENGINES, naming them."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")


# Where the workflow's config sets each option (section.key); `workers` has no key of its own:
# the segment job labels in resources.threads processes.
CONFIG_KEYS = MappingProxyType(
    {
        "tile": "predict.tile_size",
        "memory_mb": "predict.memory_mb",
        "overlap": "predict.overlap",
        "batch_size": "predict.batch_size",
        "tta": "predict.tta",
        "tta_max_mp": "predict.tta_max_mp",
        "engine": "predict.engine",
        "block": "segment.block_size",
        "context": "segment.context",
        "seed_threshold": "postprocess.seed_threshold",
        "foreground_threshold": "postprocess.foreground_threshold",
        "min_seed_area": "postprocess.min_seed_area",
        "min_area": "postprocess.min_area",
        "threads": "resources.threads",
        "diameter": "segment.diameter",
        "pixel_size_um": "segment.pixel_size_um",
        "split_above_mp": "segment.split_above_mp",
    }
)


def check_ranges(**values):
    """Refuse any value outside its option's range (RANGES), naming the option; names without a
    range are left alone."""
    for name, value in values.items():
        if name in RANGES:
            RANGES[name].check(value, name)


def _fields(instance):
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}


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
    engine: str = "auto"  # one of ENGINES; see engine.load_engine

    def __post_init__(self):
        check_ranges(**_fields(self))
        check_engine(self.engine)
        if not self.context < self.block:
            raise ValueError(f"context ({self.context}) must be below the block size ({self.block})")

    @classmethod
    def from_config(cls, predict, segment=None):
        """From the config's predict (and segment) sections (CONFIG_KEYS)."""
        sections = {"predict": predict, "segment": segment}
        values = {}
        for f in dataclasses.fields(cls):
            section, key = CONFIG_KEYS[f.name].split(".")
            if sections[section] is not None:
                values[f.name] = sections[section][key]
        return cls(**values)


def segment_mem_mb(memory_mb, threads):
    """Memory (MB) a segment job asks the scheduler for (the workflow's segment_shard rule): the
    network's window (memory_mb) and about 2 GB of image rows, probabilities and labels
    (benchmarks/large_image.py: 3774 MiB peak on a 10000 px image with the 2048 MB default), plus
    a labelling worker process (about 400 MB) per thread. benchmarks/zoom_memory.py checks every
    segment path against it."""
    return memory_mb + 2000 + 400 * threads


# segment.split_above_mp: with n > 1 jobs, images above this many megapixels (an 8000 px square)
# are labelled in n parts, one per job (segment.segment_folder); smaller ones go whole to one job.
SPLIT_ABOVE_MP = 64


@dataclass(frozen=True)
class Thresholds:
    """postprocess.instances(): seeds are connected regions above seed_threshold at least
    min_seed_area pixels large, grown over the foreground above foreground_threshold; nuclei under
    min_area pixels are dropped. Which maps they cut is the model's head's (head.py; the default,
    interior_border: P(interior) seeds, P(interior) + P(border) foreground): a model's thresholds
    carry its head, taken from its config, never an option."""

    seed_threshold: float = 0.5
    foreground_threshold: float = 0.5
    min_seed_area: int = 4
    min_area: int = 10
    head: str = field(default="interior_border", metadata={"option": False})  # heads.DEFAULT

    def __post_init__(self):
        check_ranges(**self.values())

    def values(self):
        """The thresholds themselves, without the head: what users set and cards and tune record."""
        return {name: getattr(self, name) for name in THRESHOLD_NAMES}


THRESHOLD_NAMES = tuple(f.name for f in dataclasses.fields(Thresholds) if f.metadata.get("option", True))


def split_options(options):
    """(Tiling, Thresholds overrides) from keyword options, naming any unknown one."""
    tiling_names = {f.name for f in dataclasses.fields(Tiling)}
    unknown = set(options) - tiling_names - set(THRESHOLD_NAMES)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(tiling_names | set(THRESHOLD_NAMES)))}")
    thresholds = {k: v for k, v in options.items() if k in THRESHOLD_NAMES}
    check_ranges(**thresholds)  # here, not when they replace the model's tuned ones: before the model loads
    return Tiling(**{k: v for k, v in options.items() if k in tiling_names}), thresholds


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
        """The layout tune writes and the model card keeps: global fields, per-modality ones under
        "modality" (the head is the model's: its config says it)."""
        values = self.default.values()
        if self.modality:
            values["modality"] = {m: t.values() for m, t in self.modality.items()}
        return values

    @classmethod
    def from_json(cls, values, tuned_on=None, head=Thresholds.head):
        """The set to_json wrote, for a model of `head` (its config's)."""
        values = {**values, "head": head}
        modalities = values.pop("modality", {})
        own = {m: Thresholds(**{**values, **t}) for m, t in modalities.items()}  # a modality's own values may be partial
        return cls(Thresholds(**values), MappingProxyType(own), tuned_on)

    @classmethod
    def for_workflow(cls, fixed, tuned_path):
        """What the tuned_model rule saves with the model: the thresholds tune wrote (tuned_path, on the
        validation split) when postprocess.tune is on, else the configured ones (fixed)."""
        if tuned_path:
            return cls.from_json(json.loads(Path(tuned_path).read_text()), tuned_on="val")
        return cls(Thresholds(**fixed))
