"""The one convention of the command lines (change_labels.py, python -m icl.report, python -m icl.sweep).

argparse options; switches take True/False in any case, or stand alone (`--dry_run` is True, `--nodry_run` False);
a mistake is one line `error: ...` on stderr and exit status 2; `--help` prints the help and exits 0; log lines go
to stdout as `09:31:48 INFO message`, so that stderr holds nothing but the error line of a failed command.
"""
import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from icl.errors import RunStopped, UsageError

LOG_FORMAT = '%(asctime)s %(levelname)s %(message)s'
LOG_TIME = '%H:%M:%S'


class Exit(Exception):
    """argparse is done (after --help): the program ends with `status` (argparse would call sys.exit)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def bool_text(text: str) -> bool:
    """A switch's value: True or False, in any case."""
    if text.lower() not in ('true', 'false'):
        raise argparse.ArgumentTypeError(f"'{text}' is not True or False")
    return text.lower() == 'true'


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes raise UsageError (one line) and whose --help raises Exit(0), so that a command line
    can run many times in one process; it knows its long option names (`option_names`) and its switches."""

    def __init__(self, *args, hint: str = 'see --help', **kwargs):
        self.option_names: set[str] = set()  # filled by add_argument, --help included
        self.switches: set[str] = set()
        self.hint = hint  # after "unexpected argument 'X'; "
        super().__init__(*args, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def add_argument(self, *names, **kwargs):
        self.option_names.update(name[2:] for name in names if name.startswith('--'))
        return super().add_argument(*names, **kwargs)

    def add_switch(self, name: str, help: str) -> None:
        """--NAME=True|False (any case), --NAME alone (True) or --noNAME (False); default False."""
        self.switches.add(name)
        self.add_argument(f'--{name}', type=bool_text, default=False, metavar='True|False',
                          help=f'{help} (--{name} alone: True)')

    def spelled_out(self, arg: str) -> str:
        """A bare switch as --NAME=True, --noNAME as --NAME=False; any other argument as it is."""
        name = arg[2:] if arg.startswith('--') else ''
        if name in self.switches:
            return f'--{name}=True'
        if name.startswith('no') and name[2:] in self.switches:
            return f'--{name[2:]}=False'
        return arg

    def parse_args(self, args: Sequence[str] | None = None, namespace=None) -> argparse.Namespace:
        given = sys.argv[1:] if args is None else args
        parsed, extra = self.parse_known_args([self.spelled_out(arg) for arg in given], namespace)
        if extra:
            raise UsageError(f"unexpected argument '{extra[0]}'; {self.hint}")
        return parsed

    def error(self, message: str):
        raise UsageError(message.removeprefix('argument '))

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            sys.stderr.write(message)
        raise Exit(status)


class StdoutHandler(logging.StreamHandler):
    """Log lines to sys.stdout (sys.stderr with to_stderr) as it is at each line (tests swap it), in LOG_FORMAT."""

    def __init__(self, to_stderr: bool = False):
        super().__init__()
        self.to_stderr = to_stderr
        self.setFormatter(logging.Formatter(LOG_FORMAT, LOG_TIME))

    @property
    def stream(self):
        return sys.stderr if self.to_stderr else sys.stdout

    @stream.setter
    def stream(self, _stream):
        """sys.stdout is read at each line instead."""


def log_to_stdout(to_stderr: bool = False) -> None:
    """Informational log lines on stdout, once per process (a command may run many times in one); a sweep's job
    writes them to stderr instead, the one log file `sweep status` names, beside the progress bar."""
    root = logging.getLogger()
    if not any(isinstance(handler, StdoutHandler) for handler in root.handlers):
        root.addHandler(StdoutHandler(to_stderr))
    root.setLevel(logging.INFO)


def exit_status(command: Callable[[list[str]], int | None], argv: Sequence[str],
                interrupted: str = 'interrupted') -> int:
    """Run command(argv) as a program and return its exit status (None: 0). A UsageError prints `error: ...` and
    gives 2; a RunStopped prints its line and gives its status; Ctrl-C prints `error: <interrupted>` and gives 130."""
    log_to_stdout()
    try:
        return command(list(argv)) or 0
    except Exit as done:
        return done.status
    except UsageError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except RunStopped as error:
        print(f'error: {error}', file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print(f'error: {interrupted}', file=sys.stderr)
        return 130
