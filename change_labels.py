r"""Run the paper's change-labels experiment: ICL training curves under label manipulations.

  python change_labels.py                                  # offline quick start
  python change_labels.py --model.name=Llama-2-70b --dataset.name=sst2 \
      --dataset.config.num_prompt_examples=140 --n_repeats=500 --dataset.config.random_labels=True

Every `--key.sub=value` flag overrides configs/default.py (or the file given with
--config; --help_keys lists the keys); see runs.md for the paper's commands and README.md for the rest.

The environment variable CLASS_NAMES chooses the label-name variants a run scores: ALL (the default:
every variant of the dataset), DEFAULT_ONLY, or DEFAULT_AND_FLIP (default and flipped names), e.g.
  CLASS_NAMES=DEFAULT_ONLY python change_labels.py --dataset.config.random_labels=True
"""
import logging
import sys
from pathlib import Path

from absl import app, flags

from icl import config as icl_config
from icl.errors import RunStopped, UsageError

flags.DEFINE_string('config', str(icl_config.DEFAULT_CONFIG), 'ml_collections config file to start from.')
flags.DEFINE_string('workdir', None, 'Run directory (default: runs/<dataset>-<model>[-<note>]-<time>). '
                    'An existing run directory of the same config is resumed.')
flags.DEFINE_string('resume', None, 'Run directory to resume (same as --workdir).')
flags.DEFINE_bool('dry_run', False, 'Validate and print the plan without loading the model or scoring.')
flags.DEFINE_bool('show_prompt', False, "Print each variant's first query prompt exactly as scored.")
flags.DEFINE_bool('help_keys', False, 'List every config key with its default and description, and exit.')
FLAGS = flags.FLAGS
OWN_FLAGS = {'config', 'workdir', 'resume', 'dry_run', 'show_prompt', 'help_keys'}


def main(argv: list[str], overrides: list[tuple[str, str]]) -> None:
    log_to_stdout()
    if len(argv) > 1:
        raise UsageError(f"unexpected argument '{argv[1]}'; flags look like --key=value")
    config = icl_config.apply_overrides(icl_config.load_config(FLAGS.config), overrides)
    if FLAGS.help_keys:
        print(help_keys(config))
        return
    from icl import experiment  # heavy imports (torch) only once the flags are fine
    experiment.run(config, run_dir=run_dir(), dry_run=FLAGS.dry_run, show_prompt=FLAGS.show_prompt)


def help_keys(config) -> str:
    """One line per config key: `key = value  # description` (descriptions: configs/default.py's comments)."""
    descriptions = icl_config.key_descriptions()
    lines = [(f'{key} = {value!r}', descriptions.get(key, '')) for key, value in
             icl_config.flatten(config.to_dict()).items()]
    width = max(len(line) for line, _ in lines)
    return '\n'.join(f'{line:<{width}}  # {text}' if text else line for line, text in lines)


class _Stdout:
    """sys.stdout as it is when written to (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def close(self) -> None:
        """The handler closes its stream at exit; stdout stays Python's to close."""


def log_to_stdout() -> None:
    """Informational log lines go to stdout, so that stderr of a failing command is its one error line."""
    from absl import logging as absl_logging  # app.run has made its handler the root logger's
    absl_logging.get_absl_handler().python_handler.stream = _Stdout()


def run_dir() -> str | None:
    """--workdir, or --resume, which must name an existing run directory."""
    if FLAGS.resume is None:
        return FLAGS.workdir
    if FLAGS.workdir is not None and Path(FLAGS.workdir).resolve() != Path(FLAGS.resume).resolve():
        raise UsageError(f"--resume='{FLAGS.resume}' and --workdir='{FLAGS.workdir}' name different folders; give one")
    if not (Path(FLAGS.resume) / 'config.json').is_file():
        raise UsageError(f"--resume='{FLAGS.resume}' is not a run directory (it has no config.json)")
    return FLAGS.resume


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, from this program's defaults (run_command may run many times in one
    process); its errors become a UsageError."""
    for name in OWN_FLAGS:
        FLAGS[name].unparse()
    try:
        return FLAGS(argv)
    except flags.Error as error:
        raise UsageError(str(error).splitlines()[0]) from None


def run_command(argv: list[str]) -> int:
    """Run one command line (argv[0] is the program) in this process; return its exit status:
    0; 2 after printing a usage error as one line; after one line, 130 for Ctrl-C and 1 for a run
    stopped by a full disk."""
    try:
        overrides, absl_argv = icl_config.split_argv(argv, OWN_FLAGS)
        app.run(lambda rest: main(rest, overrides), argv=absl_argv, flags_parser=parse_flags)
    except UsageError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except RunStopped as error:
        print(f'error: {error}', file=sys.stderr)
        return error.status
    except KeyboardInterrupt:  # before the run scored anything (later: RunStopped)
        print('error: interrupted before any repetition was scored; rerun the same command to start again',
              file=sys.stderr)
        return 130
    except SystemExit as done:  # app.run ends with sys.exit(main(...)); --help exits too
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 1
    return 0


def cli(argv: list[str]) -> None:
    logging.basicConfig(format='%(asctime)s %(levelname)-8s %(message)s', level=logging.INFO, datefmt='%H:%M:%S')
    sys.exit(run_command(argv))


if __name__ == '__main__':
    cli(sys.argv)
