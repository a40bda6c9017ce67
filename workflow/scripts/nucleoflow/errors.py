"""The one exception type for bad user input: its message names the file and the fix."""


class InputError(Exception):
    """Raised for input the user must fix (bad file, bad URL, bad checksum...)."""

    def __init__(self, path, problem, remedy):
        self.path = str(path)
        super().__init__(f"{path}: {problem}. {remedy}")
