"""Errors the command line reports in one line: the user's mistakes (exit 2) and runs stopped from outside."""


class UsageError(Exception):
    """A one-line message for the user; the command line prints it and exits with 2."""


class RunStopped(Exception):
    """A run that ended early for a reason outside the code (Ctrl-C, a full disk): one line for the
    user, who can resume it; the command line prints it and exits with `status`."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class OutOfMemory(Exception):
    """The GPU ran out of memory for a pass the run needs: a resource failure, not a wrong command (the run stops
    with exit status 1, saying what to change; it can be resumed)."""
