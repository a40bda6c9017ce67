"""The `nucleoflow` command: label the nuclei in your own images with a trained model.

It runs the library code of the workflow's `segment` target (nucleoflow.segment), with the
same defaults (nucleoflow.options).
"""

import argparse
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from .decode import image_suffixes
from .errors import InputError, counted, spelled_as
from .options import ENGINES, RANGES, THRESHOLD_NAMES, Thresholds, Tiling
from .outputs import DEFAULT_OUTPUTS, OUTPUTS, output_name
from .progress import PROGRESS
from .reader import is_image_folder
from .shipped import DEFAULT, model_path, shipped_models

log = logging.getLogger("nucleoflow.cli")

# The settings the library's messages name (errors.setting: config keys) as this command's
# flags, so an error tells a command-line user what to type (tests check each is a flag here).
FLAGS = {
    "segment.channel": "--channel",
    "segment.pixel_size_um": "--pixel-size",
    "segment.model": "--model",
    "predict.tile_size": "--tile",
}

SEGMENT_HELP = """\
Label every nucleus in 2D microscopy images (fluorescence, brightfield or H&E; gray, RGB or
RGBA; 8 or 16 bit; any size) with a U-Net and a seeded watershed. Each INPUT image gets
OUT/<stem>.tif (uint32 labels: 0 is background, 1..N the nuclei) and the other --outputs;
OUT/summary.csv has a row per image (nucleus count, median area, thresholds used), and a row
for each file skipped with why (with --outputs overlay also OUT/index.html: that table with a
thumbnail of each image's overlay)."""

SEGMENT_EPILOG = """\
examples:
  nucleoflow segment images/ -o labels/
  nucleoflow segment a.png b.tif -o labels/ --no-tta
  nucleoflow segment slide.tif -o labels/ --model results/package/model.pt --threads 8

Postprocess thresholds not given come from the model's card (tuned on its validation split,
per modality where it had enough images; the modality is told from each image's pixels)."""


def _threads():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _InRange(argparse.Action):
    """Store a number given on the command line once its option's range (options.RANGES: the same
    as the library's and the config schema's) holds it; else stop, naming the flag as typed:
    "--seed-threshold must be strictly between 0 and 1, got 1.5". `option`: the name in RANGES
    where it is not the flag's (--pixel-size: pixel_size_um)."""

    def __init__(self, option_strings, dest, option=None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.range = RANGES[option or dest]

    def __call__(self, parser, namespace, value, option_string=None):
        try:
            self.range.check(value, option_string or self.option_strings[-1])
        except ValueError as exc:
            parser.error(str(exc))
        setattr(namespace, self.dest, value)


def _add_segment(commands):
    tiling, thresholds = Tiling(), Thresholds()
    parser = commands.add_parser(
        "segment",
        help="label the nuclei of images",
        description=SEGMENT_HELP,
        epilog=SEGMENT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = parser.add_argument_group("input and output")
    io.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="image files (.png, .tif) or folders of them")
    io.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        type=Path,
        help="folder for the results (created if missing; an image's existing results are replaced, an input never; "
        "one run at a time writes it, and the same command run again finishes a run that was stopped)",
    )
    files = ", ".join(f"{name} ({output_name('<stem>', name)})" for name in OUTPUTS)
    io.add_argument(
        "--outputs",
        nargs="+",
        choices=list(OUTPUTS),
        default=list(DEFAULT_OUTPUTS),
        metavar="NAME",
        help=f"what to write per image, any of: {files} (default: {' '.join(DEFAULT_OUTPUTS)})",
    )
    io.add_argument(
        "--pixel-size",
        type=float,
        action=_InRange,
        option="pixel_size_um",
        metavar="UM",
        help="pixel side in micrometres, for the OME metadata and measurements (default: each image's metadata, if any)",
    )
    io.add_argument(
        "--strict",
        action="store_true",
        help="stop, writing nothing, at an image that cannot be read (default: skip it, with why in the log and summary.csv)",
    )
    io.add_argument("-v", "--verbose", action="store_true", help="log each image's size, channels and nuclei found (default: the progress bar and warnings)")
    io.add_argument(
        "--channel",
        metavar="C",
        help="the nuclear channel: an index, a name from the metadata (e.g. DAPI), or rgb (default: a gray image's one channel, an RGB image's colours)",
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "-m", "--model", default=DEFAULT, metavar="M", help=f"a shipped model ({', '.join(shipped_models())}) or the path of a model.pt (default: {DEFAULT})"
    )
    model.add_argument(
        "--engine",
        default=tiling.engine,
        choices=ENGINES,
        help=f"inference engine (default: {tiling.engine}: the fastest installed)",
    )
    model.add_argument(
        "-d",
        "--diameter",
        type=float,
        action=_InRange,
        default=0.0,
        metavar="PX",
        help="typical nucleus diameter in pixels: images are zoomed so their nuclei match the model's training sizes "
        "(default: 0, estimated by a first pass; images within the training sizes are labelled as they are)",
    )
    model.add_argument(
        "--threads", type=int, action=_InRange, default=_threads(), metavar="N", help="CPU threads for inference (default: the CPUs this process may use)"
    )
    model.add_argument(
        "--workers",
        type=int,
        action=_InRange,
        metavar="N",
        help="processes that label an image's blocks while the network predicts the next ones; the labels are the same for any number "
        "(default: as --threads; they share the CPUs with inference, which takes most of the time on a CPU)",
    )
    tiles = parser.add_argument_group("tiling (memory and speed; the defaults suit any image size)")
    tiles.add_argument(
        "--tile",
        type=int,
        action=_InRange,
        default=tiling.tile,
        metavar="PX",
        help="sliding-window side in pixels (default: 0, the largest that fits --memory-mb)",
    )
    tiles.add_argument(
        "--memory-mb",
        type=int,
        action=_InRange,
        default=tiling.memory_mb,
        metavar="MB",
        help=f"memory for the network's activations, which sets the window with --tile 0 (default: {tiling.memory_mb})",
    )
    tiles.add_argument(
        "--overlap",
        type=float,
        action=_InRange,
        default=tiling.overlap,
        metavar="F",
        help=f"overlap of neighbouring windows, a fraction of the tile (default: {tiling.overlap})",
    )
    tiles.add_argument(
        "--batch-size", type=int, action=_InRange, default=tiling.batch_size, metavar="N", help=f"windows per forward pass (default: {tiling.batch_size})"
    )
    tiles.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=tiling.tta,
        help="average the 8 rotations/flips of each window: about +0.01 DSB, 8x slower (default: on, up to --tta-max-mp)",
    )
    tiles.add_argument(
        "--tta-max-mp",
        type=float,
        action=_InRange,
        default=tiling.tta_max_mp,
        metavar="MP",
        help=f"test-time augmentation only for images up to this many megapixels; 0: any size (default: {tiling.tta_max_mp})",
    )
    tiles.add_argument(
        "--block",
        type=int,
        action=_InRange,
        default=tiling.block,
        metavar="PX",
        help=f"labelling block side; bounds memory for huge images (default: {tiling.block})",
    )
    tiles.add_argument(
        "--context",
        type=int,
        action=_InRange,
        default=tiling.context,
        metavar="PX",
        help=f"image margin around each block, above the largest nucleus radius (default: {tiling.context})",
    )
    post = parser.add_argument_group("postprocess (default: the model's tuned values)")
    post.add_argument(
        "--seed-threshold", type=float, action=_InRange, metavar="P", help=f"seeds: P(interior) above this (untuned default: {thresholds.seed_threshold})"
    )
    post.add_argument(
        "--foreground-threshold",
        type=float,
        action=_InRange,
        metavar="P",
        help=f"nuclei grow where P(interior) + P(border) exceeds this (untuned default: {thresholds.foreground_threshold})",
    )
    post.add_argument("--min-seed-area", type=int, action=_InRange, metavar="PX", help=f"drop smaller seeds (untuned default: {thresholds.min_seed_area})")
    post.add_argument("--min-area", type=int, action=_InRange, metavar="PX", help=f"drop smaller nuclei (untuned default: {thresholds.min_area})")
    parser.set_defaults(run=_segment)


def _inputs(paths, list_images, skipped=None):
    """Image files from the INPUT arguments: files as given, folders' images sorted by name."""
    images = []
    for path in paths:
        if is_image_folder(path):
            images.append(path)
        elif path.is_dir():
            images += list_images(path, "INPUT", skipped)
        elif not path.exists():
            raise InputError(path, "does not exist", "Give existing image files or folders as INPUT")
        elif path.suffix.lower() not in image_suffixes():
            raise InputError(path, f"is not an image this tool reads ({', '.join(image_suffixes())}, .zarr)", "Give image files or folders of them")
        else:
            images.append(path)
    return images


def _segment(args):
    try:  # here, not at the top: --help works without the network's dependencies
        from .atomic import check_writable
        from .lock import folder_lock
        from .segment import Segmenter, check_images, check_targets, list_images, run_targets, segment_images
    except ModuleNotFoundError as exc:
        remedy = 'Install the network\'s stack: pip install -e ".[torch]" in the nucleoflow folder'
        raise InputError("nucleoflow segment", f"needs {exc.name}, which is not installed", remedy) from exc
    skipped = []
    images = _inputs(args.inputs, list_images, skipped)
    check_writable(args.output, "-o")  # a file, read-only, a full disk: said before the model loads
    # Before the model loads and before anything is written: no output may replace an input
    # (nucleoflow segment imgs -o imgs with imgs/x.tif) or another output (a.png and a.tif).
    remedy = "Write the outputs elsewhere: choose an -o folder that holds no input"
    check_targets(run_targets(images, args.output, args.outputs), [*args.inputs, *images], remedy)
    tiling = {f.name: getattr(args, f.name) for f in dataclasses.fields(Tiling)}
    overrides = {name: getattr(args, name) for name in THRESHOLD_NAMES if getattr(args, name) is not None}
    workers = args.workers or args.threads
    # Held from here, before the images are opened and the model loads: a second run into the
    # folder is refused at once, and one refused before writing leaves no folder it created.
    with folder_lock(args.output):
        images = check_images(images, args.channel, args.pixel_size or 0, None if args.strict else skipped)
        segmenter = Segmenter(
            model_path(args.model),
            threads=args.threads,
            diameter=args.diameter,
            channel=args.channel,
            pixel_size_um=args.pixel_size or 0,
            workers=workers,
            **tiling,
            **overrides,
        )
        with segmenter:
            try:
                summary = segment_images(segmenter, images, args.output, args.outputs, skipped=skipped, strict=args.strict)
            except KeyboardInterrupt:
                log.warning("interrupted: %s holds the images labelled so far and no summary; the same command labels the others", args.output)
                raise
    done = int((summary["status"] == "segmented").sum())
    others = f", {len(summary) - done} skipped (summary.csv says why)" if len(summary) > done else ""
    log.info("%s segmented into %s%s", counted(done, "image"), args.output, others)


def parser():
    main_parser = argparse.ArgumentParser(
        prog="nucleoflow", description="Nucleus segmentation for microscopy images: a U-Net, tiled inference and a seeded watershed."
    )
    commands = main_parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    _add_segment(commands)
    return main_parser


def _quiet(record):
    """Without --verbose, what the user reads: warnings and errors, the progress bar's lines and
    this command's own; not the per-image details (size, channels, nuclei found)."""
    return record.levelno >= logging.WARNING or getattr(record, PROGRESS, False) or record.name == log.name


def main(argv=None):
    args = parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    if not getattr(args, "verbose", False):
        handler.addFilter(_quiet)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        with logging_redirect_tqdm(), spelled_as(FLAGS):
            args.run(args)
    except (InputError, ValueError) as exc:
        print(f"nucleoflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nucleoflow: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    return 0


if __name__ == "__main__":
    sys.exit(main())
