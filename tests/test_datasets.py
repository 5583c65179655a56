"""The dataset registry: seeded draws, class-name variants, CLASS_NAMES, default prompts
(docs/behaviour.md#datasets, #class-name-variants, #draws)."""
import dataclasses
import logging

import numpy as np
import pytest

from icl import datasets as icl_datasets
from icl.config import apply_overrides, base_config, validate
from icl.datasets import all_classes, dataset_class, datasets, old_class_names_note, variants_for
from icl.errors import UsageError
from icl.settings import DataSettings
from tests.data_settings import data_settings, repetition

BINARY_REPLACEMENTS = {
    'rating_1': ['bad', 'good'], 'rating_2': ['good', 'bad'], 'options_1': ['A', 'B'], 'options_2': ['B', 'A'],
    'colors_1': ['green', 'blue'], 'colors_2': ['blue', 'green'],
    'sea_chair_1': ['sea', 'chair'], 'sea_chair_2': ['chair', 'sea'],
}

# Every dataset's full variant list, in the order a run uses them, as docs/behaviour.md#class-name-variants lists them.
SPEC_VARIANTS = {
    'sst2': {'default': ['negative', 'positive'], 'flip': ['positive', 'negative'], **BINARY_REPLACEMENTS},
    'subj': {'default': ['objective', 'subjective'], 'flip': ['subjective', 'objective'], **BINARY_REPLACEMENTS},
    'financial_phrasebank': {
        'default': ['negative', 'neutral', 'positive'],
        'perm_1': ['neutral', 'positive', 'negative'],
        'perm_2': ['positive', 'negative', 'neutral'],
        'flip_outer': ['positive', 'neutral', 'negative'],
        'yesno_1': ['no', 'ok', 'yes'], 'yesno_2': ['yes', 'ok', 'no'],
        'rating_1': ['bad', 'ok', 'good'], 'rating_2': ['good', 'ok', 'bad'],
        'options_1': ['A', 'B', 'C'], 'options_2': ['C', 'A', 'B'], 'options_3': ['B', 'C', 'A'],
        'colors_1': ['blue', 'green', 'yellow'], 'colors_2': ['yellow', 'blue', 'green'],
        'colors_3': ['green', 'yellow', 'blue'],
    },
    'medical_questions_pairs': {'default': ['not equivalent', 'equivalent'], 'flip': ['equivalent', 'not equivalent'],
                                **BINARY_REPLACEMENTS},
    'mrpc': {'default': ['not equivalent', 'equivalent'], 'flip': ['equivalent', 'not equivalent'],
             **BINARY_REPLACEMENTS},
    'wnli': {'default': ['not entailment', 'entailment'], 'flip': ['entailment', 'not entailment'],
             **BINARY_REPLACEMENTS},
    'rte': {'default': ['entailment', 'not entailment'], 'flip': ['not entailment', 'entailment'],
            **BINARY_REPLACEMENTS},
    'hate_speech': {'default': ['not hate speech', 'hate speech'], 'flip': ['hate speech', 'not hate speech'],
                    **BINARY_REPLACEMENTS},
    'ag_news': {
        'default': ['world', 'sports', 'business', 'science and technology'],
        'perm_1': ['science and technology', 'world', 'sports', 'business'],
        'perm_2': ['business', 'science and technology', 'world', 'sports'],
        'perm_3': ['sports', 'business', 'science and technology', 'world'],
        'flip': ['science and technology', 'business', 'sports', 'world'],
        'options_1': ['A', 'B', 'C', 'D'], 'options_2': ['D', 'C', 'B', 'A'],
    },
    'author_id': {
        'default': ['tom', 'jan'], 'flipped': ['jan', 'tom'],
        'sentiment': ['negative', 'positive'], 'sentiment_flipped': ['positive', 'negative'],
        'feelings_1': ['happy', 'sad'], 'feelings_2': ['sad', 'happy'],
        'colors_1': ['green', 'blue'], 'rating_1': ['bad', 'good'], 'sea_chair_1': ['sea', 'chair'],
        'options_1': ['A', 'B'], 'movie_book_1': ['movie', 'book'],
    },
    'tiny_sentiment': {'default': ['negative', 'positive'], 'flip': ['positive', 'negative'], **BINARY_REPLACEMENTS},
}
FLIP_VARIANT = {'financial_phrasebank': 'perm_2', 'ag_news': 'perm_1', 'author_id': 'flipped'}  # else 'flip'


def tiny(seed: int = 200, names: list[str] | None = None, **config) -> icl_datasets.Repetition:
    """The bundled tiny_sentiment dataset (174 train / 86 test rows) with seeded draws (repetition 0)."""
    return repetition(names, random_seed=seed, **{'num_test_samples': 3, 'num_prompt_examples': 5, **config})


def variants(name: str, mode: str = 'ALL', old: bool = False) -> dict[str, list[str]]:
    return variants_for(data_settings(name=name, class_names_mode=mode, old_class_names=old))


# ------------------------------------------------------------------ seeded draws (docs/behaviour.md#draws)

def test_draw_order_test_then_fewshot_then_random_labels():
    data = tiny(random_labels=True)
    assert (len(data.loaded.test_data), len(data.loaded.train_data)) == (86, 174)
    assert data.draw.test_indices == [20, 3, 54]
    assert data.draw.fewshot_indices == [5, 94, 30, 155, 99]
    prompt = data.build_prompt('a query')
    assert prompt.true_labels == [1, 0, 1, 0, 1]
    assert prompt.shown_labels == [0, 1, 1, 0, 0]  # labels of the random rows [75, 95, 82, 91, 83]

    rng = np.random.default_rng(200)  # the spec's draws, written out with range() as the original did
    assert rng.choice(range(86), 3, replace=False).tolist() == [20, 3, 54]
    assert rng.choice(range(174), 5).tolist() == [5, 94, 30, 155, 99]
    random_rows = [int(rng.choice(range(174), 1)[0]) for _ in range(5)]
    assert random_rows == [75, 95, 82, 91, 83]
    assert prompt.shown_labels == [data.loaded.train_data[row]['label'] for row in random_rows]


def test_fewshot_draw_is_with_replacement():
    data = tiny(seed=0, num_test_samples=1, num_prompt_examples=400)  # more examples than training rows
    assert len(data.draw.fewshot_indices) == 400
    assert len(set(data.draw.fewshot_indices)) < 174
    rng = np.random.default_rng(0)
    rng.choice(range(86), 1, replace=False)
    assert data.draw.fewshot_indices == rng.choice(range(174), 400).tolist()


@pytest.mark.parametrize('n, size', [(86, 3), (872, 1), (67349, 140), (2, 2), (1, 1)])
@pytest.mark.parametrize('replace', [True, False])
def test_choice_of_n_draws_the_same_stream_as_choice_of_range_n(n, size, replace):
    fast, original = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(3):  # the draws and the generator state after them
        drawn = fast.choice(n, size, replace=replace).tolist()
        assert drawn == original.choice(range(n), size, replace=replace).tolist()
        assert fast.choice(n, 1).tolist() == original.choice(range(n), 1).tolist()
    assert fast.bit_generator.state == original.bit_generator.state


def test_every_variant_of_a_repetition_sees_the_same_examples():
    default, flipped = tiny(seed=3), tiny(seed=3, names=['positive', 'negative'])
    assert default.draw.test_indices == flipped.draw.test_indices
    assert default.draw.fewshot_indices == flipped.draw.fewshot_indices
    default_prompt, flipped_prompt = default.build_prompt('q'), flipped.build_prompt('q')
    assert default_prompt.train_indices == flipped_prompt.train_indices
    swap = {'negative': 'positive', 'positive': 'negative'}
    assert flipped_prompt.shown_texts == [swap[text] for text in default_prompt.shown_texts]


def test_more_test_samples_than_test_rows_is_a_usage_error():
    with pytest.raises(UsageError, match=r"num_test_samples=87 exceeds the 86 rows of tiny_sentiment's test split"):
        tiny(num_test_samples=87)


def test_use_model_preds_as_labels_is_refused():
    with pytest.raises(UsageError, match='use_model_preds_as_labels=True is not supported'):
        validate(apply_overrides(base_config(), [('dataset.config.use_model_preds_as_labels', 'True')]))


# ------------------------------------------------------------------ class-name variants and CLASS_NAMES

@pytest.mark.parametrize('name', sorted(SPEC_VARIANTS))
def test_full_variant_list_matches_the_spec(name):
    assert list(variants(name, 'ALL').items()) == list(SPEC_VARIANTS[name].items())


def test_every_registered_dataset_is_checked():
    assert set(datasets) == set(SPEC_VARIANTS)


@pytest.mark.parametrize('name', sorted(SPEC_VARIANTS))
def test_unset_class_names_means_all(name):
    config = base_config()  # conftest unsets CLASS_NAMES
    assert config.dataset.class_names_mode == 'ALL'
    assert list(variants_for(DataSettings.from_config(config))) == list(SPEC_VARIANTS['tiny_sentiment'])
    assert list(variants(name)) == list(SPEC_VARIANTS[name])


@pytest.mark.parametrize('name', sorted(SPEC_VARIANTS))
def test_default_only(name):
    default = SPEC_VARIANTS[name]['default']
    assert variants(name, 'DEFAULT_ONLY') == {'default': default}
    assert all_classes(data_settings(name=name, class_names_mode='DEFAULT_ONLY')) == sorted(default)


@pytest.mark.parametrize('name', sorted(SPEC_VARIANTS))
def test_default_and_flip(name):
    flip = FLIP_VARIANT.get(name, 'flip')
    assert variants(name, 'DEFAULT_AND_FLIP') == {'default': SPEC_VARIANTS[name]['default'],
                                                  flip: SPEC_VARIANTS[name][flip]}


def test_flip_variants_literally():
    assert variants('sst2', 'DEFAULT_AND_FLIP') == {'default': ['negative', 'positive'],
                                                    'flip': ['positive', 'negative']}
    assert variants('financial_phrasebank', 'DEFAULT_AND_FLIP') == {
        'default': ['negative', 'neutral', 'positive'], 'perm_2': ['positive', 'negative', 'neutral']}
    assert variants('ag_news', 'DEFAULT_AND_FLIP') == {
        'default': ['world', 'sports', 'business', 'science and technology'],
        'perm_1': ['science and technology', 'world', 'sports', 'business']}
    assert variants('author_id', 'DEFAULT_AND_FLIP') == {'default': ['tom', 'jan'], 'flipped': ['jan', 'tom']}
    assert variants('rte', 'DEFAULT_AND_FLIP') == {'default': ['entailment', 'not entailment'],
                                                  'flip': ['not entailment', 'entailment']}


@pytest.mark.parametrize('mode', ['ALL', 'DEFAULT_ONLY', 'DEFAULT_AND_FLIP'])
def test_class_names_is_the_default_of_a_config_key_read_when_the_config_is_built(mode, monkeypatch):
    monkeypatch.setenv('CLASS_NAMES', mode)
    config = base_config()
    assert config.dataset.class_names_mode == mode
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY' if mode != 'DEFAULT_ONLY' else 'ALL')  # too late: not read
    assert list(variants_for(DataSettings.from_config(config))) == list(variants('tiny_sentiment', mode))
    flag = apply_overrides(base_config(), [('dataset.class_names_mode', mode)])  # the flag wins over the variable
    assert flag.dataset.class_names_mode == mode


@pytest.mark.parametrize('value', ['all', 'DEFAULT', 'FLIP', 'default_only'])
def test_other_class_names_values_are_an_error_naming_the_valid_ones(value, monkeypatch):
    monkeypatch.setenv('CLASS_NAMES', value)
    original = (': the original tool treated it as ALL (every variant), DEFAULT_ONLY is probably meant'
                if value == 'DEFAULT' else '')
    with pytest.raises(UsageError) as error:
        base_config()
    assert str(error.value) == f"CLASS_NAMES='{value}' is not valid{original}; use one of ALL, DEFAULT_ONLY, " \
                               'DEFAULT_AND_FLIP (or leave it unset for ALL)'
    monkeypatch.delenv('CLASS_NAMES')
    with pytest.raises(UsageError) as error:
        validate(apply_overrides(base_config(), [('dataset.class_names_mode', value)]))
    assert str(error.value) == f"dataset.class_names_mode='{value}' is not valid; use one of ALL, DEFAULT_ONLY, " \
                               'DEFAULT_AND_FLIP'


# OLD_CLASS_NAMES=TRUE: the original's yes/no names for these datasets (its `YesNoDataset` classes), in its order.
OLD_VARIANTS = {
    'mrpc': {'default': ['no', 'yes'], 'flip': ['yes', 'no'], **BINARY_REPLACEMENTS},
    'medical_questions_pairs': {'default': ['no', 'yes'], 'flip': ['yes', 'no'], **BINARY_REPLACEMENTS},
    'wnli': {'default': ['no', 'yes'], 'flip': ['yes', 'no'], **BINARY_REPLACEMENTS},
    'rte': {'default': ['yes', 'no'], 'flip': ['no', 'yes'], **BINARY_REPLACEMENTS},  # label 0 is entailment
    'hate_speech': {'default': ['no', 'yes'], 'flip': ['yes', 'no'], **BINARY_REPLACEMENTS},
}
OLD_PROMPTS = {
    'mrpc': 'Are Sentence 1 and Sentence 2 equivalent? Respond with `yes` or `no`.',
    'medical_questions_pairs': 'Are Question 1 and Question 2 equivalent? Respond with `yes` or `no`.',
    'wnli': 'Does Sentence 1 entail Sentence 1? Respond with `yes` or `no`.',
    'rte': 'Does Sentence 1 entail Sentence 1? Respond with `yes` or `no`.',
    'hate_speech': 'Does the sentence contain hate speech? Respond with `yes` or `no`.',
}


@pytest.mark.parametrize('name', sorted(SPEC_VARIANTS))
@pytest.mark.parametrize('mode', ['ALL', 'DEFAULT_ONLY', 'DEFAULT_AND_FLIP'])
def test_old_class_names(name, mode, monkeypatch):
    monkeypatch.setenv('OLD_CLASS_NAMES', 'TRUE')
    settings = DataSettings.from_config(apply_overrides(base_config(), [('dataset.name', name),
                                                                        ('dataset.class_names_mode', mode)]))
    assert settings.old_class_names is True
    names = OLD_VARIANTS.get(name, SPEC_VARIANTS[name])
    keep = {'ALL': list(names), 'DEFAULT_ONLY': ['default'],
            'DEFAULT_AND_FLIP': ['default', FLIP_VARIANT.get(name, 'flip')]}[mode]
    assert list(variants_for(settings).items()) == [(v, names[v]) for v in keep]
    assert all_classes(settings) == sorted({n for v in keep for n in names[v]})
    assert datasets[name].instruction(True) == OLD_PROMPTS.get(name, datasets[name].default_prompt_string)
    assert datasets[name].uses_old_names(True) == (name in OLD_VARIANTS)
    assert old_class_names_note(settings) == (
        None if name in OLD_VARIANTS else f'OLD_CLASS_NAMES=TRUE changes nothing for {name} (only for '
                                          'medical_questions_pairs, mrpc, wnli, rte, hate_speech)')


@pytest.mark.parametrize('value', [None, 'FALSE', ''])
def test_old_class_names_unset_or_false_keeps_todays_names(value, monkeypatch):
    if value is not None:
        monkeypatch.setenv('OLD_CLASS_NAMES', value)
    settings = DataSettings.from_config(apply_overrides(base_config(), [('dataset.name', 'mrpc')]))
    assert settings.old_class_names is False
    assert variants_for(settings) == SPEC_VARIANTS['mrpc']
    assert datasets['rte'].instruction(False) == datasets['rte'].default_prompt_string
    assert old_class_names_note(settings) is None


@pytest.mark.parametrize('value', ['true', '1', 'yes', 'True'])
@pytest.mark.parametrize('name', ['sst2', 'mrpc'])  # on every dataset: a wrong value is never ignored
def test_other_old_class_names_values_are_an_error(value, name, monkeypatch):
    monkeypatch.setenv('OLD_CLASS_NAMES', value)
    with pytest.raises(UsageError) as error:
        apply_overrides(base_config(), [('dataset.name', name)])
    assert str(error.value) == (f"OLD_CLASS_NAMES='{value}' is not valid; use TRUE (the original's yes/no class names "
                                'and prompts for mrpc, medical_questions_pairs, wnli, rte, hate_speech) or FALSE '
                                '(or leave it unset)')


def test_old_class_names_in_the_prompt(real_data_dir, monkeypatch):
    """The yes/no names label the examples and the yes/no instruction heads the prompt."""
    monkeypatch.setenv('OLD_CLASS_NAMES', 'TRUE')
    settings = DataSettings.from_config(apply_overrides(base_config(), [('dataset.name', 'rte')]))
    data = icl_datasets.repetition(dataclasses.replace(settings, random_seed=0, num_prompt_examples=2,
                                                       use_default_prompt=True), 0)
    assert data.format.class_names == ('yes', 'no')
    prompt = data.build_prompt(['a', 'b'])
    assert prompt.text.startswith('Does Sentence 1 entail Sentence 1? Respond with `yes` or `no`.\nSentence 1: ')
    assert prompt.shown_texts == [['yes', 'no'][label] for label in prompt.true_labels]


def test_all_classes_is_the_sorted_union_of_the_selected_variants():
    classes = lambda name, **changes: all_classes(data_settings(name=name, **changes))  # noqa: E731
    assert classes('sst2') == ['A', 'B', 'bad', 'blue', 'chair', 'good', 'green', 'negative', 'positive', 'sea']
    assert classes('financial_phrasebank') == [
        'A', 'B', 'C', 'bad', 'blue', 'good', 'green', 'negative', 'neutral', 'no', 'ok', 'positive', 'yellow', 'yes']
    assert classes('ag_news') == ['A', 'B', 'C', 'D', 'business', 'science and technology', 'sports', 'world']
    assert classes('author_id') == ['A', 'B', 'bad', 'blue', 'book', 'chair', 'good', 'green', 'happy',
                                    'jan', 'movie', 'negative', 'positive', 'sad', 'sea', 'tom']
    assert classes('financial_phrasebank', class_names_mode='DEFAULT_AND_FLIP') == ['negative', 'neutral', 'positive']
    custom = data_settings(class_names_mode='DEFAULT_ONLY', class_names=('bad', 'good'))
    assert variants_for(custom) == {'custom': ['bad', 'good']}
    assert all_classes(custom) == ['bad', 'good', 'negative', 'positive']  # the custom and the mode's names


def test_class_names_a_variant_shows():
    assert tiny().format.class_names == ('negative', 'positive')
    assert tiny(names=['A', 'B'], reverse_labels=True).format.class_names == ('B', 'A')


# ------------------------------------------------------------------ per-dataset constants

def test_default_prompt_strings_keep_the_original_text():
    prompts = {name: klass.default_prompt_string for name, klass in datasets.items()}
    assert prompts == {
        'sst2': 'Is the sentiment of the following sentence `positive` or `negative`. '
                'Respond with `positive` or `negative.',
        'subj': 'Is the following sentence `objective` or `subjective`. Respond with `objective` or `subjective`.',
        'financial_phrasebank': 'Is the sentiment of the following sentence `negative`, `neutral`, or `positive`. '
                                'Respond with `negative`, `neutral`, or `positive`.',
        'mrpc': 'Are Sentence 1 and Sentence 2 equivalent? Respond with `equivalent` or `not equivalent`.',
        'medical_questions_pairs': 'Are Question 1 and Question 2 equivalent? '
                                   'Respond with `equivalent` or `not equivalent`.',
        'wnli': 'Does Sentence 1 entail Sentence 1? Respond with `entailment` or `not entailment`.',
        'rte': 'Does Sentence 1 entail Sentence 1? Respond with `entailment` or `not entailment`.',
        'hate_speech': 'Does the sentence contain hate speech? Respond with `hate speech` or `not hate speech`.',
        'ag_news': 'To which category does the following news article belong: '
                   '`world`, `sport`, `busines`, or `science and technology`?',
        'author_id': None,
        'tiny_sentiment': None,
    }


def test_fields_of_each_dataset():
    fields = {name: (k.feature_name, k.text_string, k.label_name) for name, k in datasets.items()}
    assert fields == {
        'sst2': ('sentence', 'Sentence', 'label'),
        'subj': ('text', 'Sentence', 'label'),
        'financial_phrasebank': ('sentence', 'Sentence', 'label'),
        'author_id': ('sentence', 'Sentence', 'author'),
        'medical_questions_pairs': (['question_1', 'question_2'], ['Question 1', 'Question 2'], 'label'),
        'mrpc': (['sentence1', 'sentence2'], ['Sentence 1', 'Sentence 2'], 'label'),
        'wnli': (['sentence1', 'sentence2'], ['Sentence 1', 'Sentence 2'], 'label'),
        'rte': (['sentence1', 'sentence2'], ['Sentence 1', 'Sentence 2'], 'label'),
        'hate_speech': ('text', 'Sentence', 'label'),
        'ag_news': ('text', 'Sentence', 'label'),
        'tiny_sentiment': ('sentence', 'Sentence', 'label'),
    }


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(UsageError) as error:
        dataset_class('sst-2')
    assert str(error.value) == ("unknown dataset 'sst-2'; choose one of sst2, subj, financial_phrasebank, author_id, "
                                'medical_questions_pairs, mrpc, wnli, rte, hate_speech, ag_news, tiny_sentiment')


def test_author_id_without_its_private_file_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"author_id needs the private file 'data/tomvjan/chat_cleaned\.csv'; "
                                         r'looked in: .*chat_cleaned\.csv'):
        repetition(name='author_id', num_prompt_examples=2, data_dir=str(tmp_path))


# ------------------------------------------------------------------ test split, on the real files

TEST_SPLIT_ROWS = {  # rows of the query split: (use_validation_if_possible=True, False)
    'sst2': (872, 1821), 'subj': (2000, 2000), 'financial_phrasebank': (748, 748),
    'medical_questions_pairs': (1006, 1006), 'mrpc': (408, 1725), 'wnli': (71, 146), 'rte': (277, 3000),
    'hate_speech': (660, 660), 'ag_news': (7600, 7600),
}
UNLABELLED_TEST_SPLIT = {'sst2', 'wnli', 'rte'}  # GLUE test files carry no labels (label -1 on every row)


def unlabelled_message(name: str, rows: int) -> str:
    return (f"{name}'s test split has no labels ({rows} of {rows} rows have label -1); set "
            'dataset.config.use_validation_if_possible=True to query its labelled validation split')


@pytest.mark.parametrize('name', sorted(TEST_SPLIT_ROWS))
def test_query_split_follows_use_validation_if_possible(name, real_data_dir, monkeypatch, caplog):
    monkeypatch.setattr(icl_datasets, '_warned', set())
    icl_datasets._loaded.cache_clear()  # the warning comes with loading
    caplog.set_level(logging.WARNING)
    make = lambda validation: repetition(name=name, random_seed=0, num_prompt_examples=2,  # noqa: E731
                                         data_dir=str(real_data_dir), use_validation_if_possible=validation).loaded
    with_validation, without = TEST_SPLIT_ROWS[name]
    assert len(make(True).test_data) == with_validation
    if name in UNLABELLED_TEST_SPLIT:
        with pytest.raises(UsageError) as error:
            make(False)
        assert str(error.value) == unlabelled_message(name, without)
    else:
        assert len(make(False).test_data) == without
    warned = f'No validation set for {name}' in caplog.text
    assert warned == (name not in ('sst2', 'mrpc', 'wnli', 'rte'))


def test_unlabelled_test_split_is_an_error_not_label_minus_one(tmp_path):
    for file, lines in {'train.tsv': ['sentence\tlabel', 'good\t1', 'bad\t0'], 'dev.tsv': ['sentence\tlabel', 'ok\t1'],
                        'test.tsv': ['index\tsentence', '0\tno label', '1\tnone either']}.items():
        (tmp_path / 'sst2').mkdir(exist_ok=True)
        (tmp_path / 'sst2' / file).write_text('\n'.join(lines) + '\n', encoding='utf-8')
    with pytest.raises(UsageError) as error:
        repetition(name='sst2', num_prompt_examples=2, data_dir=str(tmp_path), use_validation_if_possible=False)
    assert str(error.value) == unlabelled_message('sst2', 2)
