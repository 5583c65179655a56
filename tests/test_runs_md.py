"""Every command in runs.md passes --dry_run offline (local data, the packaged model instead of
the paper's): config, CLASS_NAMES, data, label tokens and prompt lengths all check out."""
import re
import shlex
from collections import Counter

import pytest

from icl import models, packaged
from icl.config import REPO_ROOT

PACKAGED = 'smollm2-135m'
# docs/behaviour.md#class-name-variants; the binary datasets have 10
VARIANTS_IN_DOCS = {'financial_phrasebank': 14, 'ag_news': 7}
VARIANTS_PER_MODE = {'DEFAULT_ONLY': 1, 'DEFAULT_AND_FLIP': 2}


def runs_md_commands() -> list[tuple[str, list[str]]]:
    """(CLASS_NAMES, flags) of every `python change_labels.py` line, with the export before it."""
    commands, class_names = [], None
    for line in (REPO_ROOT / 'runs.md').read_text().splitlines():
        if line.startswith('export CLASS_NAMES='):
            class_names = line.split('=', 1)[1]
        elif line.startswith('python change_labels.py'):
            assert class_names is not None, f'no CLASS_NAMES export before: {line}'
            commands.append((class_names, shlex.split(line)[2:]))
    return commands


def with_model(flags: list[str], model: str) -> tuple[str, ...]:
    return tuple(re.sub(r'^--model\.name=.*', f'--model.name={model}', flag) for flag in flags)


def value(flags, key: str) -> str:
    return next(flag.split('=', 1)[1] for flag in flags if flag.startswith(f'--{key}='))


def test_runs_md_has_the_paper_commands():
    commands = runs_md_commands()
    assert len(commands) == 455
    assert Counter(mode for mode, _ in commands) == {'DEFAULT_ONLY': 273, 'ALL': 91, 'DEFAULT_AND_FLIP': 91}
    assert all(any(flag.startswith('--model.name=') for flag in flags) for _, flags in commands)


def test_every_runs_md_command_passes_dry_run_offline(change_labels, real_data_dir, monkeypatch, capsys):
    monkeypatch.setenv('ICL_DATA_DIR', str(real_data_dir))
    monkeypatch.setattr(models, 'load_model', lambda *a, **k: pytest.fail('a dry run loaded the model weights'))
    distinct = sorted({(mode, with_model(flags, PACKAGED)) for mode, flags in runs_md_commands()},
                      key=lambda c: (value(c[1], 'dataset.name'), c))  # each dataset's files load once
    assert len(distinct) == 90
    for mode, flags in distinct:
        monkeypatch.setenv('CLASS_NAMES', mode)
        status = change_labels.run_command(['change_labels.py', *flags, '--dry_run=True'])
        out, err = capsys.readouterr()
        out = re.sub(r'^\d\d:\d\d:\d\d (INFO|WARNING) .*\n', '', out, flags=re.MULTILINE)  # log lines
        assert status == 0, (mode, flags, err[-500:])
        dataset, repeats = value(flags, 'dataset.name'), int(value(flags, 'n_repeats'))
        examples = value(flags, 'dataset.config.num_prompt_examples')
        variants = VARIANTS_PER_MODE.get(mode) or VARIANTS_IN_DOCS.get(dataset, 10)
        plan = dict(line.split(maxsplit=1) for line in out.splitlines() if line.startswith(('prompts', 'longest')))
        assert plan['prompts'] == f'{repeats} repetitions x {variants} variants = {repeats * variants}'
        longest = re.fullmatch(r'prompt (\d+) tokens of 8192', plan['longest'])
        assert longest and int(longest.group(1)) > 8 * int(examples)  # 'Sentence: ...' + ' \nAnswer: name\n\n'
        assert out.splitlines()[0] == f'dataset        {dataset} ({examples} examples per prompt)'


def test_a_runs_md_command_passes_dry_run_with_a_local_model_folder(change_labels, real_data_dir, smollm2_spec,
                                                                     monkeypatch, capsys):
    folder = packaged.packaged_folder(smollm2_spec.name)  # a plain transformers folder (config, weights, tokenizer)
    mode, flags = runs_md_commands()[0]
    monkeypatch.setenv('ICL_DATA_DIR', str(real_data_dir))
    monkeypatch.setenv('CLASS_NAMES', mode)

    assert change_labels.run_command(['change_labels.py', *with_model(flags, str(folder)), '--dry_run=True']) == 0

    assert f'model          {folder} ({folder}, dtype auto:' in capsys.readouterr().out
