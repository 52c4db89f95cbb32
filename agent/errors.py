"""The failures a user can fix, and the exit code each one ends with.

The CLI prints a ``DistillError`` as one line (no traceback unless ``--debug``): input and usage
problems exit 2, problems met while running (a teacher that rejects the key, a full disk) exit 1.
"""

from __future__ import annotations


class DistillError(Exception):
    """A failure with a message that names what went wrong and the fix."""

    exit_code = 1

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class InputError(DistillError):
    """A bad spec, data file, argument or run directory: nothing was written, exit 2."""

    exit_code = 2


class RunFailure(DistillError):
    """The run could not go on (the teacher refused the key, the disk is full): exit 1, resumable."""

    exit_code = 1
