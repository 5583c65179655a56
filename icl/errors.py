"""The one exception type for mistakes of the user (bad flags, data, names)."""


class UsageError(Exception):
    """A one-line message for the user; the command line prints it and exits with 2."""


class RunStopped(Exception):
    """A run that ended early for a reason outside the code (Ctrl-C, a full disk): one line for the
    user, who can resume it; the command line prints it and exits with `status`."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status
