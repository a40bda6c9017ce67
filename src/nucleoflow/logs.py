"""Logging of the workflow scripts: each rule's log file, and the closing message of an expected
error (the Snakefile prints those last)."""

import logging
import os
import sys
from pathlib import Path

from .errors import UserError

# Messages of expected errors, one file per failed job, that the Snakefile prints last.
ERRORS_DIR = Path(".snakemake") / "nucleoflow_errors"


def expected_error(value, tb=None):
    """Whether an exception is one the user must act on (its message says what to do): ours, or
    a ValueError raised by this package's own checks."""
    if isinstance(value, UserError):
        return True
    if isinstance(value, ValueError) and tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        return Path(tb.tb_frame.f_code.co_filename).resolve().parent == Path(__file__).resolve().parent
    return False


def setup_logging(log_path, mode="w"):
    """Send log records of a workflow script to its log file (and stderr). An uncaught error's
    traceback goes to the log file only; an expected error's message is printed last on stderr
    and kept for the Snakefile's closing report (ERRORS_DIR); an unexpected one's traceback is
    printed too."""
    handler = logging.FileHandler(log_path, mode=mode)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)

    def log_uncaught(kind, value, tb):
        record = logging.getLogger("nucleoflow").makeRecord("nucleoflow", logging.ERROR, __file__, 0, "failed: %s", (value,), (kind, value, tb))
        handler.handle(record)  # the traceback: the rule's log only
        if not expected_error(value, tb):
            sys.__excepthook__(kind, value, tb)
            return
        message = f"{value}" if isinstance(value, UserError) else f"{kind.__name__}: {value}"
        try:
            ERRORS_DIR.mkdir(parents=True, exist_ok=True)
            (ERRORS_DIR / f"{os.getpid()}.txt").write_text(f"{message}\n(details: {log_path})\n")
        except OSError:
            pass  # a full disk: the message still reaches stderr
        sys.stderr.write(f"\nnucleoflow: error: {message}\n(details: {log_path})\n")

    sys.excepthook = log_uncaught
