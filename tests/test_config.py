"""Config overrides (docs/behaviour.md#config): auto-typing, flag splitting, key and type errors, validation."""
import shlex

import pytest

from icl import config as icl_config
from icl.config import (
    REPO_ROOT,
    all_keys,
    apply_overrides,
    autotype,
    base_config,
    key_descriptions,
    load_config,
    parse_value,
    split_argv,
    validate,
)
from icl.errors import UsageError

OWN_FLAGS = {'config', 'workdir', 'resume', 'dry_run', 'show_prompt', 'help_keys', 'help'}  # change_labels.py's own


def configured(*flags: str):
    """The default config after the command-line flags `flags` (no program name)."""
    overrides, _ = split_argv(['change_labels.py', *flags], OWN_FLAGS)
    return apply_overrides(base_config(), overrides)


# ------------------------------------------------------------------ auto-typing

@pytest.mark.parametrize('text, expected', [
    ('true', True), ('TRUE', True), ('True', True), ('fAlSe', False), ('false', False),
    ('7', 7), ('-3', -3), ('0', 0),
    ('0.5', 0.5), ('1e-3', 0.001), ('-2.5', -2.5),
    ('sst2', 'sst2'), ('yes', 'yes'), ('1.2.3', '1.2.3'), ('', ''),
])
def test_autotype_bool_then_int_then_float_else_str(text, expected):
    value = autotype(text)
    assert value == expected
    assert type(value) is type(expected)  # 1 must not come back as True, nor 1.0 as 1


@pytest.mark.parametrize('text, expected', [
    ('a,b', ['a', 'b']),
    ('[a,b]', ['a', 'b']),
    ("['a', 'b']", ['a', 'b']),
    ('[1,2.5,true,x]', [1, 2.5, True, 'x']),
    ('1,2', [1, 2]),
    ('[x]', ['x']),
    ('[]', []),
    ('3', 3),
    ('positive', 'positive'),
])
def test_parse_value_lists_have_auto_typed_items(text, expected):
    value = parse_value(text)
    assert value == expected
    if isinstance(expected, list):
        assert [type(v) for v in value] == [type(v) for v in expected]


# ------------------------------------------------------------------ splitting argv

def test_split_argv_keeps_own_flags_and_turns_the_rest_into_overrides():
    argv = ['change_labels.py', '--config=configs/default.py', '--workdir=/tmp/run', '--resume=/tmp/old',
            '--dry_run', '--dry_run=True', '--nodry_run', '--help_keys', '--help',
            '--model.name=Llama-2-70b', '--config.dataset.name=sst2', '--note=a=b', '--n_repeats=3']
    overrides, rest = split_argv(argv, OWN_FLAGS)
    assert overrides == [('model.name', 'Llama-2-70b'), ('dataset.name', 'sst2'), ('note', 'a=b'), ('n_repeats', '3')]
    assert rest == ['change_labels.py', '--config=configs/default.py', '--workdir=/tmp/run', '--resume=/tmp/old',
                    '--dry_run', '--dry_run=True', '--nodry_run', '--help_keys', '--help']


def test_split_argv_override_without_value_is_an_error():
    with pytest.raises(UsageError, match=r"'--dataset\.name' needs a value"):
        split_argv(['change_labels.py', '--dataset.name'], OWN_FLAGS)


def test_config_prefixed_override_sets_the_same_key():
    assert configured('--config.dataset.config.num_prompt_examples=7').dataset.config.num_prompt_examples == 7


# ------------------------------------------------------------------ applying overrides

def test_overrides_are_typed_by_value_and_field():
    config = configured('--debug=TRUE', '--random_seed=5', '--n_repeats=2', '--note=default',
                        '--dataset.name=subj', '--dataset.fix_space_bug=false',
                        '--dataset.config.num_prompt_examples=140', '--dataset.config.flip_labels_after=60',
                        '--dataset.config.class_names=[bad,good]', '--dataset.class_names_mode=DEFAULT_ONLY',
                        '--model.batch_size=auto')
    assert config.debug is True
    assert config.random_seed == 5 and config.n_repeats == 2
    assert config.note == 'default'
    assert config.dataset.name == 'subj'
    assert config.dataset.fix_space_bug is False
    assert config.dataset.config.num_prompt_examples == 140
    assert config.dataset.config.flip_labels_after == 60
    assert config.dataset.config.class_names == ['bad', 'good']
    assert config.dataset.class_names_mode == 'DEFAULT_ONLY'
    assert config.model.batch_size == 'auto'
    assert configured('--model.batch_size=8').model.batch_size == 8


@pytest.mark.parametrize('flag, key, expected', [
    ('--note=123', 'note', '123'),  # a note that looks like a number stays text
    ('--note=1.5', 'note', '1.5'),
    ('--note=true', 'note', 'true'),
    ('--note=a,b', 'note', 'a,b'),  # and a comma does not make it a list
    ('--model.name=7', 'model.name', '7'),
    ('--dataset.config.replace_labels_by=1', 'dataset.config.replace_labels_by', '1'),
    ('--dataset.config.answer_string=42', 'dataset.config.answer_string', '42'),
])
def test_string_fields_take_number_like_text_as_text(flag, key, expected):
    node = configured(flag)
    for part in key.split('.'):
        node = node[part]
    assert node == expected


def test_list_field_takes_a_single_value_as_a_one_item_list():
    assert configured('--dataset.config.class_names=bad').dataset.config.class_names == ['bad']


def test_none_placeholder_can_be_set_back_to_none():
    assert configured('--dataset.config.class_names=None').dataset.config.class_names is None
    assert configured('--dataset.config.answer_string=None').dataset.config.answer_string is None


def test_unknown_key_names_the_key_and_close_valid_keys():
    with pytest.raises(UsageError) as error:
        configured('--dataset.config.num_prompt_example=3')
    message = str(error.value)
    assert "unknown config key 'dataset.config.num_prompt_example'" in message
    assert 'dataset.config.num_prompt_examples' in message


def test_unknown_key_without_its_group_suggests_the_full_path():
    with pytest.raises(UsageError, match=r"unknown config key 'random_labels'; did you mean dataset\.config\."
                                         r"random_labels"):
        configured('--random_labels=True')


def test_unknown_key_suggests_every_key_with_that_leaf_name():
    with pytest.raises(UsageError, match=r"unknown config key 'name'; did you mean dataset\.name or model\.name\?"):
        configured('--name=sst2')


def test_unknown_key_with_nothing_close_points_to_help_keys():
    with pytest.raises(UsageError, match=r"unknown config key 'zzz'.*--help_keys"):
        configured('--zzz=1')


def test_a_group_is_not_a_value():
    with pytest.raises(UsageError, match=r"'dataset\.config' is a group of keys.*dataset\.config\.random_labels"):
        configured('--dataset.config=x')


@pytest.mark.parametrize('flag, message', [
    ('--n_repeats=abc', "config key 'n_repeats' expects int, got 'abc'"),
    ('--n_repeats=true', "config key 'n_repeats' expects int, got 'true'"),  # not silently 1
    ('--n_repeats=1.5', "config key 'n_repeats' expects int, got '1.5'"),
    ('--random_seed=2.0', "config key 'random_seed' expects int, got '2.0'"),
    ('--debug=yes', "config key 'debug' expects bool, got 'yes'"),
    ('--dataset.config.random_labels=1', "config key 'dataset.config.random_labels' expects bool, got '1'"),
])
def test_wrong_type_names_the_key_and_the_expected_type(flag, message):
    with pytest.raises(UsageError) as error:
        configured(flag)
    assert str(error.value) == message


def test_float_field_accepts_an_int():
    config = base_config()
    config.ratio = 0.5  # a float field like those a config file may add
    apply_overrides(config, [('ratio', '2')])
    assert config.ratio == 2.0 and isinstance(config.ratio, float)


def test_missing_config_file_names_it_and_lists_the_configs(tmp_path):
    with pytest.raises(UsageError, match=r"config file '.*nope\.py' not found; configs/ holds: default\.py"):
        icl_config.load_config(tmp_path / 'nope.py')


HINT = 'a config file is Python defining get_config() that returns an ml_collections ConfigDict'


@pytest.mark.parametrize('name, text, message', [
    ('notes.txt', 'n_repeats = [5\n', "could not be loaded (SyntaxError: '[' was never closed (notes.txt, line 1)); "
     + HINT),
    ('empty.py', '', 'has no get_config(); ' + HINT),
    ('values.py', 'get_config = 5\n', 'has no get_config(); ' + HINT),
    ('crash.py', 'import no_such_module_here\n',
     "could not be loaded (ModuleNotFoundError: No module named 'no_such_module_here'); " + HINT),
    ('fails.py', 'def get_config():\n    return 1 / 0\n',
     'failed (ZeroDivisionError: division by zero); ' + HINT),
    ('a_list.py', 'def get_config():\n    return [1, 2]\n', 'returned a list, not a ConfigDict'),
])
def test_a_file_that_is_not_a_config_is_one_usage_error(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UsageError) as error:
        load_config(path)
    where = f"get_config() of config file '{path}' " if 'get_config() of' in str(error.value) else \
        f"config file '{path}' "
    assert str(error.value) == where + message


def test_every_key_has_its_description_from_the_default_config():
    descriptions = key_descriptions()
    assert sorted(descriptions) == sorted(all_keys(base_config()))
    assert descriptions['dataset.config.num_prompt_examples'] == \
        'in-context examples per prompt (0: zero-shot, the query alone)'  # via `data.`
    assert descriptions['model.name'] == 'registry name (icl/models.py), hub id or local folder'
    assert descriptions['n_repeats'] == 'repetitions: independent draws of in-context examples'


def test_config_file_is_loaded_and_flags_override_it(tmp_path):
    path = tmp_path / 'mine.py'
    path.write_text('from icl.config import base_config\n\n\ndef get_config():\n'
                    '    config = base_config()\n    config.n_repeats = 3\n    config.note = "from-file"\n'
                    '    return config\n')
    config = apply_overrides(icl_config.load_config(path), [('note', 'from-flag')])
    assert config.n_repeats == 3
    assert config.note == 'from-flag'


def test_defaults_match_the_spec():
    flat = icl_config.flatten(base_config().to_dict())
    spec_defaults = {
        'debug': False, 'random_seed': 200, 'experiment_name': 'change-labels', 'note': 'None', 'n_repeats': 15,
        'model.calibrate': True, 'dataset.fix_space_bug': True,
        'dataset.class_names_mode': 'ALL', 'dataset.old_class_names': False,  # $CLASS_NAMES, $OLD_CLASS_NAMES unset
        'dataset.config.num_test_samples': 1, 'dataset.config.num_prompt_examples': 20,
        'dataset.config.use_validation_if_possible': True, 'dataset.config.reverse_labels': False,
        'dataset.config.use_model_preds_as_labels': False, 'dataset.config.class_names': None,
        'dataset.config.answer_string': None, 'dataset.config.random_labels': False,
        'dataset.config.flip_labels_after': -1, 'dataset.config.flip_labels_multi_lim': 10**19,
        'dataset.config.flip_labels_after_halfway': False, 'dataset.config.flip_labels_multi': False,
        'dataset.config.replace_labels_by': '', 'dataset.config.replace_labels_until_step': -1,
        'dataset.config.use_default_prompt': False, 'dataset.config.inputs_off_by_one': False,
    }
    assert {key: flat[key] for key in spec_defaults} == spec_defaults


def test_every_command_in_runs_md_parses_and_validates():
    commands = [line for line in (icl_config.REPO_ROOT / 'runs.md').read_text().splitlines()
                if line.startswith('python change_labels.py')]
    assert len(commands) == 455
    for command in commands:
        argv = shlex.split(command)[1:]
        overrides, rest = split_argv(argv, OWN_FLAGS)
        config = apply_overrides(base_config(), overrides)
        validate(config)
        assert rest[1:] in ([], ['--dry_run=True']), command
    assert config.dataset.config.flip_labels_after == 20  # the last command's values arrived
    assert config.model.name == 'Llama-2-70b' and config.dataset.name == 'ag_news'


# ------------------------------------------------------------------ validate

def test_default_config_is_valid():
    validate(base_config())


@pytest.mark.parametrize('flags, message', [
    (['--n_repeats=0'], r'n_repeats=0 must be at least 1'),
    (['--dataset.config.num_prompt_examples=-1'], r'dataset\.config\.num_prompt_examples=-1 must be at least 0'),
    (['--dataset.config.num_test_samples=0'], r'dataset\.config\.num_test_samples=0 must be at least 1'),
    (['--dataset.config.flip_labels_after=-2'], r'flip_labels_after=-2 must be -1 \(never\) or an example index '
                                                 r'0, 1, \.\.\. \(num_prompt_examples=20; from 20 on nothing is'),
    (['--dataset.config.flip_labels_multi=True', '--dataset.config.flip_labels_after=0'],
     r'^dataset\.config\.flip_labels_multi=True alternates in blocks of flip_labels_after examples and needs blocks '
     r'of at least 1; got flip_labels_after=0$'),
    (['--dataset.config.flip_labels_multi=True', '--dataset.config.flip_labels_after_halfway=True',
      '--dataset.config.num_prompt_examples=1'],
     r'needs blocks of at least 1; got flip_labels_after_halfway=True with num_prompt_examples=1 '
     r'\(blocks of 1 // 2 = 0\)$'),
    (['--dataset.config.flip_labels_after_halfway=True', '--dataset.config.flip_labels_after=3'],
     r'^set either dataset\.config\.flip_labels_after_halfway=True or dataset\.config\.flip_labels_after=3, '
     r'not both$'),
    (['--dataset.config.inputs_off_by_one=True', '--dataset.config.num_prompt_examples=1'],
     r'^dataset\.config\.inputs_off_by_one=True drops the last example, so it needs num_prompt_examples >= 2 '
     r'\(got 1\)$'),
    (['--dataset.config.replace_labels_until_step=-5'], r'replace_labels_until_step=-5 must be -1'),
    (['--dataset.config.class_names=[good]'], r"class_names=\['good'\] needs at least two distinct names"),
    (['--dataset.config.class_names=[good,good]'], r'needs at least two distinct names'),
    (['--model.dtype=float64'], r"model\.dtype='float64' is not valid; choose auto, float32, bfloat16 or float16"),
    (['--model.batch_size=0'], r"model\.batch_size=0 must be a positive integer or 'auto'"),
    (['--model.batch_size=big'], r"model\.batch_size='big' must be a positive integer or 'auto'"),
    (['--model.batch_size=true'], r"model\.batch_size=True must be a positive integer"),
])
def test_validate_rejects_with_the_key_and_valid_range(flags, message):
    with pytest.raises(UsageError, match=message):
        validate(configured(*flags))


@pytest.mark.parametrize('flags', [
    ['--dataset.config.num_prompt_examples=10', '--dataset.config.flip_labels_after=9'],
    ['--dataset.config.flip_labels_after=0'],
    ['--dataset.config.flip_labels_after=1', '--dataset.config.flip_labels_multi=True'],
    ['--model.dtype=bfloat16', '--model.batch_size=4'],
    ['--dataset.config.inputs_off_by_one=True', '--dataset.config.num_prompt_examples=2'],
])
def test_validate_accepts_the_edges(flags):
    validate(configured(*flags))


# Settings the original accepted, with its meaning; the plan names those that change nothing.
NOOPS = {
    'zero-shot': (['--dataset.config.num_prompt_examples=0'],
                  ['dataset.config.num_prompt_examples=0: zero-shot, each prompt is the query alone']),
    'zero-shot with manipulations': (
        ['--dataset.config.num_prompt_examples=0', '--dataset.config.random_labels=True',
         '--dataset.config.flip_labels_after=2'],
        ['dataset.config.num_prompt_examples=0: zero-shot, each prompt is the query alone; '
         'dataset.config.random_labels, dataset.config.flip_labels_after=2 change nothing']),
    'multi alone': (['--dataset.config.flip_labels_multi=True'],
                    ['dataset.config.flip_labels_multi=True changes nothing without flip_labels_after or '
                     'flip_labels_after_halfway (nothing is flipped)']),
    'multi with halfway, even count': (
        ['--dataset.config.flip_labels_multi=True', '--dataset.config.flip_labels_after_halfway=True'],
        ['dataset.config.flip_labels_multi=True changes nothing here: with blocks of 10 of 20 examples the labels '
         'flip once, as without it']),
    'multi with halfway, odd count': (  # blocks of 10: 10..19 flipped, 20 not: the original's meaning
        ['--dataset.config.flip_labels_multi=True', '--dataset.config.flip_labels_after_halfway=True',
         '--dataset.config.num_prompt_examples=21'], []),
    'flip after the last example': (['--dataset.config.flip_labels_after=20'],
                                    ['dataset.config.flip_labels_after=20: no example is flipped (it is not below '
                                     'num_prompt_examples=20)']),
    'flip after the limit': (['--dataset.config.flip_labels_after=5', '--dataset.config.flip_labels_multi_lim=4'],
                             ['dataset.config.flip_labels_after=5: no example is flipped '
                              '(flip_labels_multi_lim=4)']),
    'until step alone': (['--dataset.config.replace_labels_until_step=3'],
                         ['dataset.config.replace_labels_until_step=3 changes nothing without random_labels or '
                          'replace_labels_by']),
    'until step 0': (['--dataset.config.random_labels=True', '--dataset.config.replace_labels_until_step=0'],
                     ['dataset.config.replace_labels_until_step=0: no label is randomised or replaced']),
    'default': ([], []),
    'flip halfway': (['--dataset.config.flip_labels_after_halfway=True'], []),
}


@pytest.mark.parametrize('case', NOOPS)
def test_noop_settings_are_accepted_and_named(case):
    flags, notes = NOOPS[case]
    config = configured(*flags)
    validate(config)
    assert icl_config.noop_settings(config) == notes


@pytest.mark.parametrize('path', sorted((REPO_ROOT / 'configs').glob('*.py')), ids=lambda p: p.name)
def test_every_config_file_is_valid_and_documents_its_command(path):
    config = load_config(path)
    validate(config)
    assert sorted(all_keys(config)) == sorted(all_keys(base_config()))  # no key added or lost
    module_doc = path.read_text().split('"""')[1]
    assert 'python change_labels.py' in module_doc and 'Expected' in module_doc
