r"""Run the paper's change-labels experiment: ICL training curves under label manipulations.

  python change_labels.py                                  # offline quick start
  python change_labels.py --model.name=Llama-2-70b --dataset.name=sst2 \
      --dataset.config.num_prompt_examples=140 --n_repeats=500 --dataset.config.random_labels=True

Every `--key.sub=value` flag overrides configs/default.py (or the file given with
--config; --help_keys lists the keys); see runs.md for the paper's commands and README.md for the rest.

The environment variable CLASS_NAMES chooses the label-name variants a run scores: ALL (the default:
every variant of the dataset), DEFAULT_ONLY, or DEFAULT_AND_FLIP (default and flipped names), e.g.
  CLASS_NAMES=DEFAULT_ONLY python change_labels.py --dataset.config.random_labels=True
It is the default of the config key dataset.class_names_mode (--dataset.class_names_mode=DEFAULT_ONLY).
"""
import sys
from pathlib import Path

from icl import cli
from icl import config as icl_config
from icl.errors import UsageError

# Ctrl-C before the first repetition is scored (later, experiment.run reports it as RunStopped)
INTERRUPTED = 'interrupted before any repetition was scored; rerun the same command to start again'


def parser() -> cli.Parser:
    """The program's own flags; every other `--key=value` is a config override (icl.config.split_argv)."""
    p = cli.Parser(prog='change_labels.py', description=__doc__, hint='flags look like --key=value')
    p.add_argument('--config', default=str(icl_config.DEFAULT_CONFIG), help='ml_collections config file to start '
                   'from (default: configs/default.py)')
    p.add_argument('--workdir', help='run directory (default: runs/<dataset>-<model>[-<note>]-<time>); an existing '
                   'run directory of the same config is resumed')
    p.add_argument('--resume', help='run directory to resume (same as --workdir)')
    p.add_switch('dry_run', 'validate and print the plan without loading the model or scoring')
    p.add_switch('show_prompt', "print each variant's first query prompt exactly as scored")
    p.add_switch('help_keys', 'list every config key with its default and description, and exit')
    return p


def main(argv: list[str]) -> None:
    """The program; argv[0] is its name."""
    own = parser()
    overrides, rest = icl_config.split_argv(argv, own.option_names)
    args = own.parse_args(rest[1:])
    config = icl_config.apply_overrides(icl_config.load_config(args.config), overrides)
    if args.help_keys:
        print(help_keys(config))
        return
    from icl import experiment  # heavy imports (torch) only once the flags are fine
    experiment.run(config, run_dir=run_dir(args.workdir, args.resume), dry_run=args.dry_run,
                   show_prompt=args.show_prompt)


def help_keys(config) -> str:
    """One line per config key: `key = value  # description` (descriptions: configs/default.py's comments)."""
    descriptions = icl_config.key_descriptions()
    lines = [(f'{key} = {value!r}', descriptions.get(key, '')) for key, value in
             icl_config.flatten(config.to_dict()).items()]
    width = max(len(line) for line, _ in lines)
    return '\n'.join(f'{line:<{width}}  # {text}' if text else line for line, text in lines)


def run_dir(workdir: str | None, resume: str | None) -> str | None:
    """--workdir, or --resume, which must name an existing run directory."""
    if resume is None:
        return workdir
    if workdir is not None and Path(workdir).resolve() != Path(resume).resolve():
        raise UsageError(f"--resume='{resume}' and --workdir='{workdir}' name different folders; give one")
    if not (Path(resume) / 'config.json').is_file():
        raise UsageError(f"--resume='{resume}' is not a run directory (it has no config.json)")
    return resume


def run_command(argv: list[str]) -> int:
    """Run one command line (argv[0] is the program) in this process; return its exit status (icl.cli)."""
    return cli.exit_status(main, argv, INTERRUPTED)


if __name__ == '__main__':
    sys.exit(run_command(sys.argv))
