"""Errors the user must act on: each message names the file (or the setting) and what to do.

An uncaught one of these in a workflow script prints its message as the last lines the user
reads (io.setup_logging; the Snakefile repeats it after Snakemake's own report), and the
traceback goes to the rule's log only.
"""


class UserError(Exception):
    """An error with a message for the user (no traceback needed)."""


class InputError(UserError):
    """Raised for input the user must fix (bad file, bad URL, bad checksum...)."""

    def __init__(self, path, problem, remedy):
        self.path, self.problem, self.remedy = str(path), problem, remedy
        super().__init__(f"{path}: {problem}. {remedy}")

    def __reduce__(self):  # pickled by its parts: raised in a worker process, re-raised in the caller
        return type(self), (self.path, self.problem, self.remedy)


class OutputError(InputError):
    """Raised when an output cannot be written (full disk, read-only folder...)."""


class TrainingDiverged(UserError):
    """The training loss or weights stopped being finite numbers."""
