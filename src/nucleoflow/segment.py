"""One call from images to instance labels, for the workflow and for users' own code."""

import contextlib
import dataclasses
import importlib.metadata
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .appearance import distinct_colours
from .atomic import atomic_path, check_writable, output_errors, remove_temporaries, staging_dir
from .blocks import label_bands
from .clobber import check_no_clobber
from .decode import image_suffixes
from .engine import check_tile, load_engine
from .errors import InputError, UnreadableImage, counted, setting_value
from .formats import write_label_ome_tiff
from .journal import JOURNAL, Journal
from .lock import folder_lock
from .options import SPLIT_ABOVE_MP, ThresholdSet, check_ranges, split_options
from .outputs import DEFAULT_OUTPUTS, OUTPUT_TYPES, OUTPUTS, NucleusOutputs, channel_planes, in_parts, output_name, write_image_outputs
from .overlay import INDEX, write_index
from .pool import Workers
from .progress import LOG_INTERVAL_S, progress
from .reader import file_fingerprint, image_entries, image_size, open_image
from .region import array_source
from .shards import PART, PARTS, merge_parts, part_rows, read_parts
from .shipped import model_path as shipped_model_path
from .sizing import plan
from .zoomed import grid_tiling, label_zoomed_bands

log = logging.getLogger(__name__)
# The run's summary, beside its images' outputs in the output folder (check_targets keeps an
# image's outputs off its name).
SUMMARY = "summary.csv"
# summary.csv columns holding integers: the nucleus count and options.Thresholds' integer fields.
SUMMARY_INTEGERS = ("nuclei", "min_seed_area", "min_area")


class Segmenter:
    """Load a trained model once; call it on (H, W) or (H, W, C) arrays to get uint32 labels.

    >>> seg = Segmenter("dsb2018_unet")  # a shipped model by name, or a model.pt path
    >>> labels = seg(image)

    Keyword options are the fields of options.Tiling (tile, overlap, batch_size, tta, block,
    context, engine) and of options.Thresholds (seed_threshold, foreground_threshold,
    min_seed_area, min_area); each defaults to the value there, and every number (threads,
    workers, diameter and pixel_size_um too) is checked against options.RANGES before the model
    loads. Thresholds not given default to the ones tuned for the model (saved in its card; for
    a modality with its own, those, the modality told from the image's pixels as the normaliser
    tells its polarity). Images are labelled in blocks of `block` pixels with `context` pixels
    around each, so memory stays bounded for images of any size. threads: the network's CPU
    threads; workers: processes that label an image's blocks while the network predicts the
    next ones (labels equal one worker's), kept from one image to the next until close() or the
    end of a `with Segmenter(...)` block (more than one needs the `if __name__ == "__main__":`
    guard of multiprocessing in scripts).
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        threads: int = 1,
        diameter: float = 0,
        channel: int | str | None = None,
        pixel_size_um: float = 0,
        workers: int = 1,
        **options,
    ):
        check_ranges(threads=threads, workers=workers, diameter=diameter, pixel_size_um=pixel_size_um)  # before the model loads
        self.channel, self.pixel_size_um = channel, pixel_size_um  # reader.open_image's (segment.channel, segment.pixel_size_um)
        self.workers = Workers(workers)
        self.tiling, overrides = split_options(options)
        self.engine = load_engine(model_path, self.tiling.engine, threads)
        check_tile(self.tiling.tile, self.engine, model_path)
        self.model = str(model_path)
        self.metadata = self.engine.metadata
        card = self.metadata.get("postprocess")
        tuned = ThresholdSet.from_json(card or {}, self.metadata.get("postprocess_tuned_on"), self.engine.head.name)
        self.thresholds = tuned.with_overrides(**overrides)
        # Nucleus diameter in px (0: estimated by a first pass) and the sizes the model knows.
        self.diameter = diameter
        self.sizes = self.metadata.get("nucleus_diameter_px")
        if not self.sizes:  # a model straight from the train rule: off-scale images would be labelled worse, silently
            log.warning(
                "%s: its card records no training nucleus sizes, so no image is zoomed to them; the package rule's model.pt "
                "(or the workflow's results/tuned/model.pt) has them",
                model_path,
            )
        # Modalities the model is known to fail on, with what to do (the card's "caution").
        self.cautions = self.metadata.get("caution", {})
        self._cautioned = None  # within gathered_cautions: {(modality, note): [image names]}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Stop the labelling workers (a Segmenter with more than one)."""
        self.workers.close()

    def caution(self, source):
        """The card's warning for this image's modality and what the image itself warns of (a
        fluorescence composite: composite_note), logged or gathered (gathered_cautions), or ""."""
        modality = source.appearance.modality
        note = "; ".join(filter(None, (self.cautions.get(modality, ""), composite_note(source))))
        if note and self._cautioned is not None:
            self._cautioned.setdefault((modality, note), []).append(Path(source.name).name)
        elif note:
            log.warning("%s: %s image: %s", source.name, modality, note)
        return note

    @contextlib.contextmanager
    def gathered_cautions(self):
        """Within: the card's cautions are not logged image by image but once each on leaving,
        with the number of images they concern (a run over a folder says each once)."""
        outer, self._cautioned = self._cautioned, {}
        try:
            yield
        finally:
            gathered, self._cautioned = self._cautioned, outer
            for (modality, note), names in gathered.items():
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                verb = "is" if len(names) == 1 else "are"
                log.warning("%s %s %s (%s): %s", counted(len(names), "image"), verb, modality, shown, note)

    def thresholds_for(self, source):
        """The postprocess thresholds for one image (a RegionSource): those of its modality."""
        return self.thresholds.for_modality(source.appearance.modality)

    def fingerprint(self):
        """What decides the files it writes, for a run's journal (journal.py): the package
        version, the model file and engine, tiling, thresholds, diameter, channel and pixel size;
        not threads or workers, which leave them as they are."""
        model = shipped_model_path(self.model)
        return {
            "version": _version(),
            "model": [str(model.resolve()), file_fingerprint(model) if model.is_file() else None],
            "engine": self.engine.name,
            "tiling": dataclasses.asdict(self.tiling),
            "thresholds": [self.thresholds.to_json(), self.thresholds.tuned_on],
            "diameter": self.diameter,
            "channel": self.channel,
            "pixel_size_um": self.pixel_size_um,
        }

    def __call__(self, image: np.ndarray | list, name: str = "image", tiles=None) -> np.ndarray:
        """image: (H, W) or (H, W, C), a numpy array (a masked array's masked pixels are not sample:
        read as background) or nested lists; tiles: a tqdm bar (or None) counting the network's tiles."""
        source = array_source(image, name, channel=self.channel, pixel_size_um=self.pixel_size_um)
        self.caution(source)
        thresholds = self.thresholds_for(source)
        size = self._plan(source, thresholds, tiles)
        return np.concatenate([rows for _, rows in self._bands(source, thresholds, tiles, None, size)])

    def _plan(self, source, thresholds, tiles, hold=True):
        """sizing.Plan of an image: the zoom its nuclei need (the given diameter, else estimated)."""
        return plan(source, self.engine, self.tiling, thresholds, self.sizes, self.diameter, tiles, self.workers, hold)

    def _bands(self, source, thresholds, tiles, on_block, size, part=(1, 1)):
        """Yield (top, label rows) of an image, or of its part (label_bands), labelled at the zoom
        of its sizing.Plan (`size`), block by block either way, each block's nuclei handed to
        on_block. Closing it early stops the labelling workers at once."""
        if size.held is not None and part == (1, 1):
            yield from size.held.replay(on_block)
        elif size.factor != 1.0:
            yield from label_zoomed_bands(source, size.factor, self.engine, self.tiling, thresholds, tiles, on_block, self.workers, part)
        else:
            yield from label_bands(source, self.engine, self.tiling, thresholds, tiles, on_block, self.workers, part)

    def _grid(self, size):
        """The Tiling of the blocks an image is labelled in at its Plan's zoom, in its own pixels."""
        return self.tiling if size.factor == 1.0 else grid_tiling(self.tiling, size.factor)

    def _part_rows(self, source, part, size):
        """shards.PartRows of part (k, n) of an image labelled at its Plan's (`size`) zoom."""
        return part_rows(source.height, source.width, self.engine, self._grid(size), part)

    def open(self, image_path):
        """reader.open_image with this segmenter's channel and pixel size: a RegionSource."""
        return open_image(image_path, self.channel, self.pixel_size_um)

    def to_tiff(self, image_path: str | os.PathLike, out_path: str | os.PathLike, tiles=None, pixel_size_um: float | None = None) -> int:
        """Label an image file of any size into an OME-TIFF, reading and writing it block by block;
        returns the nucleus count."""
        out_path = Path(out_path)
        return self.to_files(image_path, out_path.parent, ["labels"], pixel_size_um, stem=out_path.name.removesuffix(".tif"), tiles=tiles)["nuclei"]

    def to_files(
        self,
        image_path: str | os.PathLike,
        out_dir: str | os.PathLike,
        outputs=DEFAULT_OUTPUTS,
        pixel_size_um: float | None = None,
        channel_names: list[str] | None = None,
        stem: str | None = None,
        tiles=None,
    ) -> dict:
        """Label an image file of any size into out_dir/<stem>.{tif,csv,geojson,rois.zip,ome.zarr,overlay.png}
        (the `outputs` named; outputs.OUTPUTS), all of them or none, reading and writing block by
        block; returns the image's summary row (nuclei, median area, thresholds, modality, model).
        Refused while a run (segment_images) of another process or thread writes out_dir."""
        image_path, out_dir = Path(image_path), Path(out_dir)
        stem = stem or output_stem(image_path)
        check_targets(image_targets(image_path, out_dir, outputs, stem), [image_path], "Write them to another out_dir (to_tiff: another out_path)")
        source = self.open(image_path)
        try:
            pixel_size_um, pixel_source = self._pixel_size(source, pixel_size_um)
            channel_names = channel_names or list(source.channel_names)
            thresholds = self.thresholds_for(source)
            note = self.caution(source)
            size = self._plan(source, thresholds, tiles)
            with folder_lock(out_dir, shared=True):

                def bands_for(nuclei):
                    return self._bands(source, thresholds, tiles, nuclei.on_block, size)

                nuclei = write_image_outputs(source, out_dir, stem, outputs, bands_for, channel_names, pixel_size_um)
        finally:
            source.close()
        return {"image": image_path.name, **nuclei.summary(), **self._about(source, pixel_size_um, pixel_source, note, thresholds, size)}

    @staticmethod
    def _pixel_size(source, given=None):
        """(pixel size in um or None, where it came from): `given` (to_files' argument), else the
        file's (segment.pixel_size_um's: "given", or its metadata's: reader.RegionSource)."""
        if given:
            return given, "given"
        return source.pixel_size_um, source.pixel_size_source

    def _about(self, source, pixel_size_um, pixel_source, note, thresholds, size):
        """The summary row's fields after the nucleus counts: how the image was labelled (`note`:
        the card's caution for its modality; size: its sizing.Plan, with a caution of its own)."""
        about = {
            "pixel_size_um": pixel_size_um or None,
            "pixel_size_source": pixel_source if pixel_size_um else "none",
            "modality": source.appearance.modality,
            "model": self.model,
            **size.about(),
            "caution": "; ".join(filter(None, (note, size.note))),
        }
        return {**about, **thresholds.values()}

    def to_part(self, image_path, part_dir, outputs, part, pixel_size_um=None, tiles=None):
        """Label part (k, n) of a huge image file, its band of block rows (blocks.label_bands), into
        part_dir (a folder written whole or not at all): the part's label rows, its nuclei's
        `outputs` and what shards.merge_parts needs to join the parts as one job labels the image.
        Writes nothing for a part that gets no block rows (shards.split_block_rows). Every part
        sizes the image itself (sizing.plan: the same zoom, recorded, and checked by the join)."""
        image_path = Path(image_path)
        check_targets([(part_dir, "the part's folder, replaced whole")], [image_path], "Choose a part_dir that holds no input")
        source = self.open(image_path)
        try:
            thresholds = self.thresholds_for(source)
            size = self._plan(source, thresholds, tiles, hold=False)
            rows = self._part_rows(source, part, size)
            if rows.blocks[0] == rows.blocks[1]:
                log.info("%s: no block rows for part %d of %d", image_path.name, *part)
                return
            pixel_size_um, pixel_source = self._pixel_size(source, pixel_size_um)
            note = self.caution(source)
            with staging_dir(part_dir) as tmp:
                paths = {name: tmp / output_name(PART, name) for name in in_parts(outputs)}  # the join makes the others
                nuclei = NucleusOutputs(paths, channel_planes(source), list(source.channel_names), pixel_size_um)
                blocks = []  # [first label, y0, x0, y1, x1] of each block's region

                def on_block(labels, origin):
                    blocks.append([len(nuclei.areas) + 1, *origin, origin[0] + labels.shape[0], origin[1] + labels.shape[1]])
                    nuclei.on_block(labels, origin)

                try:
                    with contextlib.closing(self._bands(source, thresholds, tiles, on_block, size, part)) as bands:
                        write_label_ome_tiff(tmp / f"{PART}.tif", bands, (rows.bottom - rows.top, source.width), pyramid=False)
                finally:
                    nuclei.close()
                record = {
                    "image": str(image_path),
                    "open": {"channel": self.channel, "pixel_size_um": self.pixel_size_um},  # open_image's arguments
                    "shape": [source.height, source.width],
                    "part": list(part),
                    "block": self._grid(size).block,
                    "zoom": size.factor,
                    "block_rows": list(rows.blocks),
                    "rows": [rows.top, rows.bottom],
                    "outputs": list(outputs),
                    "pixel_size_um": pixel_size_um,
                    "channel_names": nuclei.channel_names,
                    "blocks": blocks,
                    "areas": nuclei.areas,
                    "about": self._about(source, pixel_size_um, pixel_source, note, thresholds, size),
                }
                (tmp / f"{PART}.json").write_text(json.dumps(record))
            log.info("%s: part %d of %d (block rows %d-%d): %s", image_path.name, *part, *rows.blocks, counted(len(nuclei.areas), "nucleus", "nuclei"))
        finally:
            source.close()


def composite_note(source):
    """A caution for an RGB fluorescence image whose colours light up different structures
    (appearance.distinct_colours: DAPI's blue and a cytoplasm stain, labelled as whole cells),
    naming the colour that may be the nuclear stain and the setting that picks it; else ""."""
    found = distinct_colours(source.sample, source.appearance) if len(source.nuclear) == 3 else None
    if found is None:
        return ""
    c, share = found
    colour = ("red", "green", "blue")[c]
    name = source.channel_names[c]
    label = f"channel {c} ({colour})" if name == str(c) else f"channel {c} ({name}, {colour})"
    return (
        f"an RGB fluorescence composite: its colours light up different structures ({label} lights {share:.0%} of what they all do), "
        f"and the network, seeing all three, may outline whole cells; if {label} holds the nuclear stain (DAPI, Hoechst), "
        f"set {setting_value('segment.channel', c)}"
    )


def list_images(folder, setting, skipped=None):
    """The images in `folder` (files open_image reads and OME-Zarr folders), sorted by name;
    every other entry is logged as skipped, with why, and appended to `skipped` (a list of
    (path, reason)) when given. `setting` (what chose the folder: a config key or a
    command-line argument) is named in errors."""
    folder = Path(folder)
    try:
        images, others = image_entries(folder)
    except OSError as exc:
        raise InputError(folder, f"cannot be listed ({exc.strerror})", f"Set {setting} to a readable folder of images") from exc
    if not images:
        found = f"holds no images ({len(others)} other entries: {', '.join(p.name for p, _ in others[:5])})" if others else "is empty"
        raise InputError(folder, found, f"Put images ({', '.join(image_suffixes())} or OME-Zarr .zarr folders) in it, or set {setting} to another folder")
    for path, reason in others:
        log.warning("%s: skipped, %s", path, reason)
    if skipped is not None:
        skipped.extend(others)
    return images


def output_stem(path):
    """The name of an image's outputs: its file name less the suffix (and the .ome of .ome.tif, .ome.zarr)."""
    stem = Path(path).stem
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def image_targets(image, out_dir, outputs, stem=None):
    """(path, what) of the files an image's `outputs` (outputs.OUTPUTS) are written to:
    out_dir/<stem><suffix>, the stem output_stem(image) unless given."""
    check_outputs(outputs, "outputs")
    stem = stem or output_stem(image)
    return [(Path(out_dir) / output_name(stem, name), f"the {name} of {image}") for name in outputs]


def run_targets(images, out_dir, outputs):
    """(path, what) of every file a run over `images` writes into out_dir: each image's outputs
    and the run's summary (and index page, with overlays)."""
    run = [(Path(out_dir) / SUMMARY, "the summary of the run")] + ([(Path(out_dir) / INDEX, "the index page of the run")] if "overlay" in outputs else [])
    return [target for path in images for target in image_targets(path, out_dir, outputs)] + run


CLASH_REMEDY = (
    f"Rename one of the images: an image <stem> gets <stem>{', <stem>'.join(t.suffix for t in OUTPUT_TYPES.values())} (the outputs chosen); "
    f"the run writes {SUMMARY}"
)


def check_targets(targets, inputs, remedy):
    """Refuse, before any work, outputs (run_targets, image_targets, folders replaced whole) that
    would overwrite an input or one another (clobber.check_no_clobber); `remedy` says how to write
    them elsewhere, naming what chose the output folder."""
    check_no_clobber(targets, inputs, remedy, CLASH_REMEDY)


def check_images(images, channel=None, pixel_size_um=0, skipped=None):
    """Open every image (layout, channel, pixel size, size limits) before any work; logs each.
    Returns the images to segment: all of them, or with `skipped` (a list) given, those that
    could be read, each other one logged and appended to it as (path, why)."""
    readable = []
    for path in images:
        try:
            with open_image(path, channel, pixel_size_um) as source:
                log.info("%s: %s", path.name, source.describe())
        except UnreadableImage as exc:
            if skipped is None:
                raise
            log.warning("%s: skipped, %s", path, exc.problem)
            skipped.append((path, exc.problem))
            continue
        readable.append(path)
    return readable


def check_outputs(outputs, setting):
    """Refuse output names outside outputs.OUTPUTS, naming `setting` (a config key or an option)."""
    unknown = [name for name in outputs if name not in OUTPUTS]
    if unknown:
        raise InputError(setting, f"names unknown outputs {unknown}", f"Choose from {list(OUTPUTS)}")


def segment_images(segmenter, images, out_dir, outputs=DEFAULT_OUTPUTS, pixel_size_um=None, skipped=(), strict=True):
    """Label each image into out_dir/<stem>.<outputs> (each image's files written whole or not at
    all) and out_dir/summary.csv (one row per image), with progress over the images and over the
    tiles of each; with the overlay output also out_dir/index.html (overlay.write_index).
    pixel_size_um None: each image's own (segment.pixel_size_um, else the file's). skipped:
    (path, reason) of entries that were not images, each a summary row saying why. strict False:
    an image that turns out unreadable while it is labelled (a corrupt tile) is skipped too,
    nothing written for it, where strict stops the run. The model card's cautions are logged
    once each, with the number of images they concern. Returns the summary (a DataFrame).

    The folder stays consistent with itself whatever stops the run (issue 23, class 2): the run
    holds it (lock.folder_lock: another run into it is refused), removes the summary there before
    it writes any image's files and writes its own last, so a summary lists the images of the
    run that wrote it as their files are. A run stopped part way (Ctrl-C, kill -9, a full disk)
    leaves no summary and its journal (journal.py): the next run with the same settings keeps
    the images it finished and labels the others."""
    check_targets(run_targets(images, out_dir, outputs), images, "Write the outputs elsewhere: choose an out_dir that holds no input")
    out_dir = Path(out_dir)
    targets = {path: [target for target, _ in image_targets(path, out_dir, outputs)] for path in images}
    summarised = [SUMMARY, INDEX] if "overlay" in outputs else [SUMMARY]
    rows, skipped = [], list(skipped)
    with folder_lock(out_dir):
        remove_temporaries(out_dir, [JOURNAL, *summarised, *(output_stem(path) for path in images)])
        journal = Journal.open(out_dir, {"segmenter": segmenter.fingerprint(), "outputs": list(outputs), "pixel_size_um": pixel_size_um})
        for name in summarised:  # another run's, or an interrupted one's: never beside this run's files
            (out_dir / name).unlink(missing_ok=True)
        kept = sum(journal.row(path, targets[path]) is not None for path in images)
        if kept:
            log.warning("%s: keeping %s of %d, labelled there with these settings by a run that stopped part way", out_dir, counted(kept, "image"), len(images))
        with segmenter.gathered_cautions(), progress(images, desc="images", unit="image", log=log) as bar:
            for path in bar:
                row = journal.row(path, targets[path])
                if row is None:
                    try:
                        with output_errors(out_dir), progress(desc=path.name, unit="tile", log=log, leave=False, position=1, delay=LOG_INTERVAL_S) as tiles:
                            row = segmenter.to_files(path, out_dir, outputs, pixel_size_um, tiles=tiles)
                    except UnreadableImage as exc:
                        if strict:
                            raise
                        log.warning("%s: skipped, %s", path, exc.problem)
                        skipped.append((path, exc.problem))
                        continue
                    journal.record(path, targets[path], row)
                rows.append(row)
                log.info("%s: %s", path.name, counted(row["nuclei"], "nucleus", "nuclei"))
        rows = [{**row, "status": "segmented"} for row in rows] + [{"image": Path(p).name, "status": f"skipped: {why}"} for p, why in skipped]
        summary = write_summary(pd.DataFrame(rows) if rows else pd.DataFrame(columns=["image", "status"]), out_dir / SUMMARY)
        if "overlay" in outputs:
            write_index(out_dir / INDEX, summary, overlay_name)
        journal.close()
    return summary


def write_summary(frame, path):
    """summary.csv from its rows (a DataFrame), whole or not at all, as every output; returns what
    it wrote. Counts and integer thresholds stay integers where some rows lack them (a skipped
    entry's), instead of pandas' floats ("12.0" nuclei)."""
    frame = frame.copy()
    for column in SUMMARY_INTEGERS:
        if column in frame and frame[column].dropna().mod(1).eq(0).all():
            frame[column] = frame[column].astype("Int64")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return frame


def _version():
    try:
        return importlib.metadata.version("nucleoflow")
    except importlib.metadata.PackageNotFoundError:
        return None


def overlay_name(image):
    """The file name of the overlay of an image (its name in summary.csv)."""
    return output_name(output_stem(image), "overlay")


def segment_folder(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_path: str | os.PathLike,
    *,
    shard: tuple[int, int] = (1, 1),
    threads: int = 1,
    outputs=DEFAULT_OUTPUTS,
    channel: int | str | None = None,
    pixel_size_um: float = 0,
    workers: int = 1,
    split_above_mp: float = SPLIT_ABOVE_MP,
    **options,
) -> None:
    """Label every image in input_dir into out_dir/<stem>.<outputs> and summary.csv; all or
    nothing. Every image is opened (layout, channel, pixel size, limits) before the model loads.
    channel, pixel_size_um: reader.open_image's (pixel_size_um 0: each file's metadata, if any);
    threads, workers: Segmenter's.

    shard (k, n): n jobs share a folder: this one labels the k-th of every n images (sorted by
    name) and, of each image above split_above_mp megapixels (n > 1), its part k of n (its band
    of block rows, Segmenter.to_part) into out_dir/parts/<stem>/; gather_shards joins them.
    """
    check_ranges(threads=threads, workers=workers, pixel_size_um=pixel_size_um, split_above_mp=split_above_mp, **options)
    skipped = []
    images = list_images(input_dir, "segment.input_dir", skipped)
    check_outputs(outputs, "segment.outputs")
    k, n = shard
    split = [path for path in images if n > 1 and math.prod(image_size(path, channel, pixel_size_um)) > split_above_mp * 1e6]
    # Every image's outputs, not only this shard's: the shards' folders are gathered into one.
    targets = [(out_dir, "the output folder, replaced whole when the run ends"), *run_targets(images, out_dir, outputs)]
    targets += [(Path(out_dir) / PARTS / output_stem(path), f"the folder of the parts of {path}") for path in split]
    check_targets(targets, [input_dir, *images], "Write the outputs elsewhere: choose an out_dir that neither is nor holds the input folder")
    whole = [path for path in images if path not in split][k - 1 :: n]
    check_images(whole + split, channel, pixel_size_um)
    check_writable(out_dir, "out_dir")
    segmenter = Segmenter(model_path, threads=threads, channel=channel, pixel_size_um=pixel_size_um, workers=workers, **options)
    with segmenter, staging_dir(out_dir) as tmp:
        segment_images(segmenter, whole, tmp, outputs, skipped=skipped if k == 1 else ())  # skipped entries: one shard says
        for path in split:
            with progress(desc=f"{path.name} part {k}/{n}", unit="tile", log=log, delay=LOG_INTERVAL_S) as tiles:
                segmenter.to_part(path, tmp / PARTS / output_stem(path), outputs, shard, tiles=tiles)


def _link(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def gather_shards(shard_dirs, out_dir):
    """Merge the shards' outputs into one folder (hard links where possible, else copies), the
    parts of split images joined (shards.merge_parts), their summaries into one summary.csv.
    Hidden entries (Snakemake's .snakemake_timestamp) are not outputs: left out."""
    files, summaries, parts, index = [], [], {}, False
    for shard in shard_dirs:
        for path in sorted(Path(shard).iterdir()):
            if path.name == SUMMARY:
                summaries.append(path)
            elif path.name == INDEX:  # each shard's page shows its own images: one for all is written below
                index = True
            elif path.name == PARTS:
                for part in path.iterdir():
                    parts.setdefault(part.name, []).append(part)
            elif not path.name.startswith("."):
                files.append(path)
    targets = [(out_dir, "the output folder, replaced whole when the gather ends"), (Path(out_dir) / SUMMARY, "the summary of the run")]
    targets += [(Path(out_dir) / path.name, f"the copy of {path}") for path in files]
    inputs = list(shard_dirs)
    for stem, dirs in parts.items():
        first = read_parts(dirs)[0]  # the joins read the split images again
        targets += [(Path(out_dir) / output_name(stem, name), f"the {name} joined from the parts of {first['image']}") for name in first["outputs"]]
        inputs.append(first["image"])
    check_targets(targets, inputs, "Choose an out_dir that holds none of the shards' folders and no image")
    with staging_dir(out_dir) as tmp:
        for path in files:
            if path.is_dir():  # an OME-Zarr
                shutil.copytree(path, tmp / path.name, copy_function=_link)
            else:
                _link(path, tmp / path.name)
        joined = [{**merge_parts(dirs, tmp, stem), "status": "segmented"} for stem, dirs in sorted(parts.items())]
        rows = [frame for frame in (*map(pd.read_csv, summaries), pd.DataFrame(joined)) if len(frame)]  # a shard may have only parts
        summary = write_summary(pd.concat(rows).sort_values("image"), tmp / SUMMARY)
        if index:
            write_index(tmp / INDEX, summary, overlay_name)
    log.info("gathered %d label images from %d shards", len(list(Path(out_dir).glob("*.tif"))), len(shard_dirs))
