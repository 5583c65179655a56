"""The one exception type for mistakes of the user (bad flags, data, names)."""


class UsageError(Exception):
    """A one-line message for the user; the command line prints it and exits with 2."""
