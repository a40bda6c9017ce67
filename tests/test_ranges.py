"""Numbers out of range (issue 23, class 5): one definition of each option's valid values
(options.RANGES) refuses them in the library (Tiling, Thresholds, Segmenter, segment_folder) and
on the command line as it parses them, naming the option as the user gave it; the config
schema's bounds for the same keys are the same numbers."""

import copy
import dataclasses

import jsonschema
import pytest
import yaml
from conftest import ROOT

from nucleoflow import cli
from nucleoflow.dataset import SPLITS
from nucleoflow.heads import HEADS, target_kinds
from nucleoflow.model import NORMS
from nucleoflow.options import CONFIG_KEYS, ENGINES, RANGES, THRESHOLD_NAMES, Thresholds, ThresholdSet, Tiling
from nucleoflow.outputs import OUTPUTS
from nucleoflow.region import PIXEL_SIZE_RANGE_UM
from nucleoflow.segment import Segmenter, segment_folder

SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def refused_flag(capsys, *flags):
    """The message `nucleoflow segment imgs -o out <flags>` stops with while parsing (exit 2)."""
    with pytest.raises(SystemExit) as stop:
        cli.parser().parse_args(["segment", "imgs", "-o", "out", *flags])
    assert stop.value.code == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--seed-threshold", "1.5", "--seed-threshold must be strictly between 0 and 1, got 1.5"),
        ("--seed-threshold", "80", "--seed-threshold must be strictly between 0 and 1, got 80 (a probability: for 80% give 0.8)"),
        ("--seed-threshold", "-0.5", "--seed-threshold must be strictly between 0 and 1, got -0.5"),
        ("--seed-threshold", "nan", "--seed-threshold must be strictly between 0 and 1, got nan"),
        ("--foreground-threshold", "1.2", "--foreground-threshold must be strictly between 0 and 1, got 1.2"),
        ("--foreground-threshold", "0", "--foreground-threshold must be strictly between 0 and 1, got 0"),
        ("--diameter", "2000", "--diameter must be 0 (estimated per image) or between 2 and 500, got 2000"),
        ("-d", "-3", "-d must be 0 (estimated per image) or between 2 and 500, got -3"),  # the flag as typed
        ("--overlap", "0.99", "--overlap must be between 0 and 0.75, got 0.99"),
        ("--threads", "0", "--threads must be at least 1, got 0"),
        ("--workers", "0", "--workers must be at least 1, got 0"),
        ("--tile", "16", "--tile must be 0 (the largest window that fits memory_mb) or at least 32, got 16"),
        ("--memory-mb", "10", "--memory-mb must be at least 64, got 10"),
        ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
        ("--tta-max-mp", "-1", "--tta-max-mp must be at least 0, got -1"),
        ("--block", "32", "--block must be at least 64, got 32"),
        ("--context", "600", "--context must be between 0 and 512, got 600"),
        ("--min-seed-area", "0", "--min-seed-area must be at least 1, got 0"),
        ("--min-area", "-5", "--min-area must be at least 1, got -5"),
        ("--pixel-size", "-1", "--pixel-size must be 0 (from each image's metadata) or between 0.001 and 100, got -1"),
    ],
)
def test_command_line_refuses_numbers_out_of_range_naming_the_flag(capsys, flag, value, expected):
    """Before any image is read or the model loads: argparse's own error (usage, exit 2), the
    message naming the flag the user typed, never an option they did not give (--threads 0 used
    to fail as "workers (0) must be at least 1")."""
    message = refused_flag(capsys, flag, value)
    assert f"nucleoflow segment: error: {expected}\n" in message
    assert message.startswith("usage: nucleoflow segment") and "workers (" not in message


def test_command_line_takes_every_value_in_range():
    ends = {"--seed-threshold": "0.999", "--foreground-threshold": "0.001", "--diameter": "500", "--overlap": "0.75", "--threads": "1", "--workers": "1"}
    ends |= {"--tile": "32", "--memory-mb": "64", "--tta-max-mp": "0", "--block": "64", "--context": "0", "--min-seed-area": "1", "--min-area": "1"}
    ends |= {"--pixel-size": "100"}
    args = cli.parser().parse_args(["segment", "imgs", "-o", "out", *(item for pair in ends.items() for item in pair)])
    assert (args.seed_threshold, args.diameter, args.overlap, args.workers, args.tile, args.pixel_size) == (0.999, 500, 0.75, 1, 32, 100)
    zeros = cli.parser().parse_args(["segment", "imgs", "-o", "out", "--diameter", "0", "--tile", "0", "--pixel-size", "0", "--diameter", "2"])
    assert (zeros.tile, zeros.pixel_size, zeros.diameter) == (0, 0, 2)


def test_every_number_the_command_line_takes_is_checked():
    """No flag that takes a number escapes the ranges: each is parsed by cli._InRange, whose
    range is the library's (options.RANGES)."""
    (segment,) = [a.choices["segment"] for a in cli.parser()._actions if a.choices]
    numeric = [a for a in segment._actions if a.type in (int, float)]
    assert len(numeric) == 15
    assert all(isinstance(a, cli._InRange) for a in numeric), [a.dest for a in numeric if not isinstance(a, cli._InRange)]
    assert {a.range for a in numeric} <= set(RANGES.values())


# ---------------------------------------------------------------- the library


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"seed_threshold": 1.5}, "seed_threshold must be strictly between 0 and 1, got 1.5"),
        ({"seed_threshold": "0.5"}, "seed_threshold must be strictly between 0 and 1, got '0.5'"),
        ({"foreground_threshold": 1}, "foreground_threshold must be strictly between 0 and 1, got 1"),
        ({"min_area": 0}, "min_area must be at least 1, got 0"),
        ({"overlap": 0.99}, "overlap must be between 0 and 0.75, got 0.99"),
        ({"tile": 8}, "tile must be 0 (the largest window that fits memory_mb) or at least 32, got 8"),
        ({"diameter": 2000}, "diameter must be 0 (estimated per image) or between 2 and 500, got 2000"),
        ({"diameter": 0.5}, "diameter must be 0 (estimated per image) or between 2 and 500, got 0.5"),
        ({"threads": 0}, "threads must be at least 1, got 0"),
        ({"workers": 0}, "workers must be at least 1, got 0"),
        ({"pixel_size_um": -0.5}, "pixel_size_um must be 0 (from each image's metadata) or between 0.001 and 100, got -0.5"),
    ],
)
def test_segmenter_refuses_numbers_out_of_range_before_the_model_loads(tmp_path, options, expected):
    """The model path does not exist: the refusal comes before anything is loaded."""
    with pytest.raises(ValueError) as refused:
        Segmenter(tmp_path / "no_model.pt", **options)
    assert str(refused.value) == expected


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"seed_threshold": 80}, "seed_threshold must be strictly between 0 and 1, got 80 (a probability: for 80% give 0.8)"),
        ({"split_above_mp": -1}, "split_above_mp must be at least 0, got -1"),
        ({"threads": 0}, "threads must be at least 1, got 0"),
        ({"diameter": 1}, "diameter must be 0 (estimated per image) or between 2 and 500, got 1"),
        ({"context": -1}, "context must be between 0 and 512, got -1"),
    ],
)
def test_segment_folder_refuses_them_before_reading_the_folder(tmp_path, options, expected):
    """The input folder does not exist either: the numbers are checked first."""
    with pytest.raises(ValueError) as refused:
        segment_folder(tmp_path / "no_images", tmp_path / "out", tmp_path / "no_model.pt", **options)
    assert str(refused.value) == expected
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: Thresholds(seed_threshold=1.5), "seed_threshold must be strictly between 0 and 1, got 1.5"),
        (lambda: Thresholds(foreground_threshold=-0.1), "foreground_threshold must be strictly between 0 and 1, got -0.1"),
        (lambda: Thresholds(min_seed_area=0), "min_seed_area must be at least 1, got 0"),
        (lambda: ThresholdSet().with_overrides(seed_threshold=float("inf")), "seed_threshold must be strictly between 0 and 1, got inf"),
        (lambda: Tiling(overlap=0.8), "overlap must be between 0 and 0.75, got 0.8"),
        (lambda: Tiling(memory_mb=0), "memory_mb must be at least 64, got 0"),
        (lambda: Tiling(batch_size=True), "batch_size must be at least 1, got True"),  # a flag is not a number
        (lambda: Tiling(block=32, context=16), "block must be at least 64, got 32"),
        (lambda: Tiling(block=128, context=128), "context (128) must be below the block size (128)"),
    ],
)
def test_option_dataclasses_check_every_field(make, expected):
    with pytest.raises(ValueError) as refused:
        make()
    assert str(refused.value) == expected


def test_every_numeric_option_has_one_range():
    numeric = {f.name for cls in (Tiling, Thresholds) for f in dataclasses.fields(cls) if f.type in (int, float)}
    assert numeric == set(RANGES) - {"threads", "workers", "diameter", "pixel_size_um", "split_above_mp"}
    assert set(RANGES) - set(CONFIG_KEYS) == {"workers"}  # the workflow labels in resources.threads processes
    assert PIXEL_SIZE_RANGE_UM == (RANGES["pixel_size_um"].low, RANGES["pixel_size_um"].high)  # what the reader checks (its own copy)


# ---------------------------------------------------------------- the config schema


def schema_range(key):
    """(low, high, low open, high open, 0 allowed too) of a config key in the schema."""
    section, name = key.split(".")
    node = SCHEMA["properties"][section]["properties"][name]
    zero = "anyOf" in node
    if zero:  # 0 or a range: [{const: 0}, {minimum..., maximum...}]
        assert node["anyOf"][0] == {"const": 0} and len(node["anyOf"]) == 2, key
        node = node["anyOf"][1]
    low = node.get("exclusiveMinimum", node.get("minimum"))
    high = node.get("exclusiveMaximum", node.get("maximum"))
    return low, high, "exclusiveMinimum" in node, "exclusiveMaximum" in node, zero


@pytest.mark.parametrize("name", sorted(set(RANGES) & set(CONFIG_KEYS)))
def test_schema_bounds_are_the_librarys(name):
    valid = RANGES[name]
    assert schema_range(CONFIG_KEYS[name]) == (valid.low, valid.high, valid.low_open, valid.high_open, bool(valid.zero)), CONFIG_KEYS[name]


@pytest.mark.parametrize(
    "key, choices",
    [
        ("model.norm", NORMS),
        ("model.head", HEADS),
        ("train.targets", target_kinds()),
        ("predict.engine", ENGINES),
        ("predict.splits", SPLITS),
        ("segment.outputs", OUTPUTS),
    ],
)
def test_schema_choices_are_the_librarys(key, choices):
    """Every list of allowed values is the library's: the schema's enum (of a list's items too)."""
    section, name = key.split(".")
    node = SCHEMA["properties"][section]["properties"][name]
    assert node.get("items", node)["enum"] == list(choices), key


def test_command_line_choices_are_the_librarys():
    (segment,) = [a.choices["segment"] for a in cli.parser()._actions if a.choices]
    choices = {a.dest: list(a.choices) for a in segment._actions if a.choices}
    assert choices["engine"] == list(ENGINES) and choices["outputs"] == list(OUTPUTS), choices


@pytest.mark.parametrize(
    "key, value, valid",
    [
        ("segment.diameter", 0, True),
        ("segment.diameter", 2, True),
        ("segment.diameter", 500, True),
        ("segment.diameter", 2000, False),
        ("segment.diameter", 1, False),
        ("segment.pixel_size_um", 0, True),
        ("segment.pixel_size_um", 0.325, True),
        ("segment.pixel_size_um", 0.0001, False),
        ("predict.tile_size", 0, True),
        ("predict.tile_size", 16, False),
        ("predict.overlap", 0.99, False),
        ("postprocess.seed_threshold", 1.5, False),
    ],
)
def test_schema_takes_zero_and_the_range_and_nothing_else(key, value, valid):
    """The 0-or-a-range form (anyOf) does what the library does, on the default config."""
    config = copy.deepcopy(CONFIG)
    section, name = key.split(".")
    config[section][name] = value
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(config))
    assert not errors if valid else errors, [e.message for e in errors]


def test_every_option_of_the_library_is_a_flag_and_a_config_key():
    """Issue 21, one set of options: every field of Tiling and Thresholds (the keyword options
    Segmenter and segment_folder take) is a `nucleoflow segment` flag of that name with the
    library's default (a threshold's: None, the model's tuned one), and the config key
    CONFIG_KEYS names for it is in the schema with the same default in config/config.yaml."""
    (segment,) = [a.choices["segment"] for a in cli.parser()._actions if a.choices]
    flags = {a.dest: a.default for a in segment._actions}
    library = {**dataclasses.asdict(Tiling()), **{name: None for name in THRESHOLD_NAMES}}
    assert {name: flags.get(name, "no flag") for name in library} == library
    untuned = Thresholds().values()
    for name in library:
        section, key = CONFIG_KEYS[name].split(".")
        assert key in SCHEMA["properties"][section]["properties"], CONFIG_KEYS[name]
        assert CONFIG[section][key] == (untuned[name] if name in untuned else getattr(Tiling(), name)), CONFIG_KEYS[name]
