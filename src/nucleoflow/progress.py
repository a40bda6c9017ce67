"""Progress with an ETA for long work: a tqdm bar on a terminal, else a log line at most once a
minute (workflow jobs write logs, where a redrawn bar would be noise)."""

import logging
import sys

from tqdm import tqdm

LOG_INTERVAL_S = 60
PROGRESS = "progress"  # the attribute that marks a log record as a progress line (a filter may keep only these)


class _LogLines:
    """A file-like sink that turns tqdm's redraws into log records, marked as progress lines."""

    def __init__(self, log):
        self.log = log

    def write(self, text):
        text = text.replace("\x1b[A", "").strip("\r\n ")  # no cursor moves in a log
        if text:
            self.log.info("%s", text, extra={PROGRESS: True})

    def flush(self):
        pass


def progress(iterable=None, *, desc, unit, log=None, position=None, interval=LOG_INTERVAL_S, **options):
    """tqdm over `iterable` (or a bar to update by hand): drawn on a terminal's stderr, else
    logged to `log` (a Logger) at its start, at most every `interval` seconds while it advances
    (with the rate and the time left) and at its end. options: tqdm's (total, initial, leave;
    delay: show nothing for work done within that many seconds)."""
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, unit=unit, position=position, dynamic_ncols=True, **options)
    sink = _LogLines(log or logging.getLogger("nucleoflow"))
    return tqdm(iterable, desc=desc, unit=unit, file=sink, mininterval=interval, ascii=True, ncols=100, **options)
