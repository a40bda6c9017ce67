"""Errors the user must act on: each message names the file (or the setting) and what to do.

An uncaught one of these in a workflow script prints its message as the last lines the user
reads (logs.setup_logging; the Snakefile repeats it after Snakemake's own report), and the
traceback goes to the rule's log only.

Messages name a setting through setting(key): its config key (e.g. segment.channel) in the
workflow and the Python API; inside spelled_as(flags), as the `nucleoflow` command runs, the
command-line flag that sets it (e.g. --channel). One mechanism, so no message tells a CLI user to
edit a config file they do not have.
"""

import contextlib

_SPELLINGS = {}  # config key -> how this run's user sets it, where that is not the config key


def setting(key):
    """How messages name the setting `key` (a config key such as "segment.channel") in this run."""
    return _SPELLINGS.get(key, key)


def setting_value(key, value):
    """The setting `key` set to `value`, as the user would write it: "segment.channel: rgb" in the
    config, "--channel rgb" on the command line."""
    name = setting(key)
    return f"{name} {value}" if name.startswith("-") else f"{name}: {value}"


def counted(n, one, many=None):
    """A count with its noun for messages and logs: "1 nucleus", "2 nuclei", "3 channels"."""
    return f"{n} {one if n == 1 else many or one + 's'}"


@contextlib.contextmanager
def spelled_as(spellings):
    """Within: messages name the settings of `spellings` ({config key: e.g. a flag}) that way."""
    saved = dict(_SPELLINGS)
    _SPELLINGS.update(spellings)
    try:
        yield
    finally:
        _SPELLINGS.clear()
        _SPELLINGS.update(saved)


class UserError(Exception):
    """An error with a message for the user (no traceback needed)."""


class InputError(UserError):
    """Raised for input the user must fix (bad file, bad URL, bad checksum...)."""

    def __init__(self, path, problem, remedy):
        self.path, self.problem, self.remedy = str(path), problem, remedy
        super().__init__(f"{path}: {problem}. {remedy}")

    def __reduce__(self):  # pickled by its parts: raised in a worker process, re-raised in the caller
        return type(self), (self.path, self.problem, self.remedy)


class UnreadableImage(InputError):
    """An image file that cannot be read or decoded (corrupt, truncated, not the format its bytes
    claim): a run over many images may skip it, saying why, where a setting error stops it."""


class OutputError(InputError):
    """Raised when an output cannot be written (full disk, read-only folder...)."""


class TrainingDiverged(UserError):
    """The training loss or weights stopped being finite numbers."""
