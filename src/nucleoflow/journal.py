"""What a run over a folder of images (segment.segment_images) has finished, kept beside its
outputs while it writes them, so that an interrupted run is finished by the next one.

The journal (JOURNAL, a hidden file) begins with the run's settings: everything that decides the
files written (Segmenter.fingerprint, the outputs chosen). Each image finished adds a line: the
image's identity (size, mtime, inode), its output files' identities once they are in place, and
its summary row. A run that finds a journal of its own settings keeps each image still as the
journal recorded it, image and outputs, and labels the others; one of other settings starts a
new journal. The run removes it once its summary is in place.
"""

import json
from pathlib import Path

from .atomic import append_line, atomic_path
from .reader import file_fingerprint

JOURNAL = ".nucleoflow.journal"


def _plain(value):
    """`value` as JSON reads it back (tuples as lists, numpy numbers as Python ones)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _identity(path):
    """A file's (or OME-Zarr folder's) reader.file_fingerprint; None where it is missing."""
    try:
        return _plain(file_fingerprint(path))
    except FileNotFoundError:
        return None


class Journal:
    """The journal of one run in one folder; open() it, then row() and record() each image."""

    def __init__(self, path, finished):
        self.path, self.finished = path, finished  # finished: {image key: its record}

    @classmethod
    def open(cls, folder, settings):
        """The journal of a run with `settings` in `folder`: an interrupted run's of the same
        settings, with the images it finished, else a new one (replacing one of other settings)."""
        path = Path(folder) / JOURNAL
        header = {"settings": _plain(settings)}
        lines = _read(path)
        if lines and lines[0] == header:
            return cls(path, {record["image"]: record for record in lines[1:] if isinstance(record, dict) and "image" in record})
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(header) + "\n")
        return cls(path, {})

    def row(self, image, outputs):
        """The summary row of `image` if this journal has it finished and the image and its
        `outputs` (paths) are still as recorded, else None."""
        record = self.finished.get(_key(image))
        if record and record["input"] == _identity(image) and record["outputs"] == _outputs(outputs):
            return record["row"]
        return None

    def record(self, image, outputs, row):
        """Note `image` finished: its `outputs` (paths) in place, its summary `row`."""
        record = _plain({"image": _key(image), "input": _identity(image), "outputs": _outputs(outputs), "row": row})
        append_line(self.path, json.dumps(record))
        self.finished[record["image"]] = record

    def close(self):
        """The run is complete, its summary in place: the journal goes."""
        self.path.unlink(missing_ok=True)


def _key(image):
    return str(Path(image).resolve())


def _outputs(paths):
    return {Path(p).name: _identity(p) for p in paths}


def _read(path):
    """The journal's records; [] where there is none. A line torn by a kill, or one written after
    it on the same line, does not parse and is skipped: that image is labelled again."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
