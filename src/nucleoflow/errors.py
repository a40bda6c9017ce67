"""Errors the user must act on: each message names the file and what to do."""


class InputError(Exception):
    """Raised for input the user must fix (bad file, bad URL, bad checksum...)."""

    def __init__(self, path, problem, remedy):
        self.path, self.problem, self.remedy = str(path), problem, remedy
        super().__init__(f"{path}: {problem}. {remedy}")


class OutputError(InputError):
    """Raised when an output cannot be written (full disk, read-only folder...)."""
