"""Prompt text and label manipulations (docs/behaviour.md#prompts), on tiny data files written by the tests.

The fixture data folder has the layout of docs/data.md. With seed 22 the draws are (checked in
`test_seed_22_draws`): query = validation row 2, few-shot rows [2, 3, 1, 5, 0, 1], and the
random-label rows [3, 0, 2, 0, 5, 1], so the in-context examples are

    i  row  sentence      true label   random row -> label
    0   2   pure joy      positive     3 -> negative
    1   3   tedious       negative     0 -> negative
    2   1   a gem         positive     2 -> positive
    3   5   moving        positive     0 -> negative
    4   0   a dull mess   negative     5 -> positive
    5   1   a gem         positive     1 -> positive
"""
from pathlib import Path

import numpy as np
import pytest

from icl.datasets import Repetition
from icl.errors import UsageError
from icl.prompts import ExampleFormat, LabelRule, Prompt, positions_text, prompt_prefix, rotated, trigger_flip_prompt
from tests.data_settings import repetition

SEED = 22
SST2_TRAIN = [('a dull mess', 0), ('a gem', 1), ('pure joy', 1), ('tedious', 0), ('flat and lifeless', 0),
              ('moving', 1)]
SST2_DEV = [('an instant classic', 1), ('a waste of time', 0), ('warm and funny', 1)]
SST2_TEST = [(0, 'no label one'), (1, 'no label two')]


def write_lines(path: Path, lines: list[str], newline: str = '\n', bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((('\ufeff' if bom else '') + newline.join(lines) + newline).encode('utf-8'))


def write_tsv(path: Path, header: list[str], rows: list[tuple], **kwargs) -> None:
    write_lines(path, ['\t'.join(map(str, row)) for row in [header, *rows]], **kwargs)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
    """Tiny sst2, mrpc, rte, wnli and medical_questions_pairs files in the layout of docs/data.md."""
    root = tmp_path_factory.mktemp('data')
    write_tsv(root / 'sst2' / 'train.tsv', ['sentence', 'label'], SST2_TRAIN)
    write_tsv(root / 'sst2' / 'dev.tsv', ['sentence', 'label'], SST2_DEV)
    write_tsv(root / 'sst2' / 'test.tsv', ['index', 'sentence'], SST2_TEST)

    msr = ['Quality', '#1 ID', '#2 ID', '#1 String', '#2 String']
    write_tsv(root / 'mrpc' / 'msr_paraphrase_train.txt', msr, [
        (1, 11, 12, 'The cat sat.', 'A cat was sitting.'),
        (0, 21, 22, 'Stocks rose.', 'It rained.'),
        (1, 31, 32, 'He left early.', 'He went home early.'),  # listed in dev_ids: the validation row
        (0, 41, 42, 'Sales fell.', 'The team won.'),
    ], newline='\r\n', bom=True)
    write_tsv(root / 'mrpc' / 'msr_paraphrase_test.txt', msr, [(1, 51, 52, 'She smiled.', 'She was smiling.')],
              newline='\r\n', bom=True)
    write_lines(root / 'mrpc' / 'dev_ids.tsv', ['31\t32'])

    glue = ['index', 'sentence1', 'sentence2', 'label']
    write_tsv(root / 'rte' / 'train.tsv', glue, [(0, 'A dog barked loudly.', 'A dog made noise.', 'entailment'),
                                                 (1, 'The shop is closed.', 'The shop is open.', 'not_entailment'),
                                                 (2, 'Tom ate lunch.', 'Tom ate.', 'entailment')])
    write_tsv(root / 'rte' / 'dev.tsv', glue, [(0, 'Ann sang a song.', 'Ann sang.', 'entailment')])
    write_tsv(root / 'rte' / 'test.tsv', glue[:3], [(0, 'Rain fell.', 'It was dry.')])
    write_tsv(root / 'wnli' / 'train.tsv', glue, [(0, 'The cup fell off the table because it was wobbly.',
                                                   'The table was wobbly.', 1),
                                                  (1, 'Sam thanked Max because he had helped.',
                                                   'Sam had helped.', 0)])
    write_tsv(root / 'wnli' / 'dev.tsv', glue, [(0, 'The bag was heavy so Ed dropped it.', 'The bag was heavy.', 1)])
    write_tsv(root / 'wnli' / 'test.tsv', glue[:3], [(0, 'Jo hugged Al when he cried.', 'Al cried.')])

    write_lines(root / 'medical_questions_pairs' / 'mqp.csv', [
        '1,Is flu contagious?,Can I give the flu to others?,1',
        '1,Is flu contagious?,Is flu a virus?,0',
        '2,Can I run with a cold?,Is jogging fine when I have a cold?,1',
        '2,Can I run with a cold?,How long does a cold last?,0',
        '3,Does coffee raise blood pressure?,Can caffeine increase my blood pressure?,1',
        '3,Does coffee raise blood pressure?,Is decaf healthier?,0',
    ], newline='\r\n')
    return str(root)


def sst2(data_dir: str, names: list[str] | None = None, **config) -> Repetition:
    """The fixture's sst2 with seed 22 and six in-context examples, plus `config`, shown with `names`."""
    return draw_of('sst2', data_dir, names, **{'num_prompt_examples': 6, **config})


def draw_of(name: str, data_dir: str, names: list[str] | None = None, **config) -> Repetition:
    """Repetition 0 of dataset `name` with seed 22 and one query."""
    return repetition(names, name=name, random_seed=SEED, data_dir=data_dir, **{'num_test_samples': 1, **config})


def query_prompt(data: Repetition) -> Prompt:
    """The prompt for the (first) drawn query, as the experiment builds it."""
    return data.query_prompts()[0][1]


def shown(data) -> list[str]:
    return query_prompt(data).shown_texts


# ------------------------------------------------------------------ the seeded draws behind every prompt below

def test_seed_22_draws(data_dir):
    data = sst2(data_dir, random_labels=True)
    assert data.draw.test_indices == [2]
    assert data.draw.fewshot_indices == [2, 3, 1, 5, 0, 1]
    prompt = query_prompt(data)
    assert prompt.train_indices == [2, 3, 1, 5, 0, 1]
    assert prompt.true_labels == [1, 0, 1, 1, 0, 1]
    assert prompt.shown_labels == [0, 0, 1, 0, 1, 1]  # labels of the random rows [3, 0, 2, 0, 5, 1]

    rng = np.random.default_rng(SEED)  # the same draws, in the spec's order, with plain numpy
    assert rng.choice(range(len(SST2_DEV)), 1, replace=False).tolist() == [2]
    assert rng.choice(range(len(SST2_TRAIN)), 6).tolist() == [2, 3, 1, 5, 0, 1]
    random_rows = [int(rng.choice(range(len(SST2_TRAIN)), 1)[0]) for _ in range(6)]
    assert random_rows == [3, 0, 2, 0, 5, 1]
    assert prompt.shown_labels == [SST2_TRAIN[row][1] for row in random_rows]


# ------------------------------------------------------------------ single-feature format

def test_default_prompt(data_dir):
    assert sst2(data_dir).build_prompt('warm and funny').text == (
        "Sentence: 'pure joy' \nAnswer: positive\n\n"
        "Sentence: 'tedious' \nAnswer: negative\n\n"
        "Sentence: 'a gem' \nAnswer: positive\n\n"
        "Sentence: 'moving' \nAnswer: positive\n\n"
        "Sentence: 'a dull mess' \nAnswer: negative\n\n"
        "Sentence: 'a gem' \nAnswer: positive\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )


def test_query_prompt_bookkeeping(data_dir):
    prompt = query_prompt(sst2(data_dir))
    assert prompt.text.endswith("\n\nSentence: 'warm and funny' \nAnswer:")  # validation row 2
    assert prompt.num_examples == 6
    assert prompt.answer_ends == [29, 68, 105, 143, 186, 223]
    assert [prompt.text[end - len('\nAnswer:'):end] for end in prompt.answer_ends] == ['\nAnswer:'] * 6
    assert [prompt.text[end:].split('\n')[0] for end in prompt.answer_ends] == [
        ' positive', ' negative', ' positive', ' positive', ' negative', ' positive']
    assert prompt.shown_texts == ['positive', 'negative', 'positive', 'positive', 'negative', 'positive']
    assert prompt.shown_labels == prompt.true_labels == [1, 0, 1, 1, 0, 1]
    assert prompt.train_indices == [2, 3, 1, 5, 0, 1]


def test_query_without_space_bug_fix_ends_with_a_space(data_dir):
    data = sst2(data_dir, fix_space_bug=False)
    assert data.build_prompt('warm and funny').text.endswith(
        "Sentence: 'a gem' \nAnswer: positive\n\nSentence: 'warm and funny' \nAnswer: ")
    assert query_prompt(data).text.endswith("\nAnswer: ")


def test_query_with_space_bug_fix_ends_at_the_colon(data_dir):
    assert query_prompt(sst2(data_dir, fix_space_bug=True)).text.endswith("'warm and funny' \nAnswer:")


def test_an_example_and_a_query_in_the_format(data_dir):
    example = sst2(data_dir, num_prompt_examples=2).format.example
    assert example.example('nice', 'positive') == "Sentence: 'nice' \nAnswer: positive"
    assert example.query('nice') == "Sentence: 'nice' \nAnswer:"


def test_query_from_the_unlabelled_test_split_is_an_error(data_dir):
    with pytest.raises(UsageError, match=r"^sst2's test split has no labels \(2 of 2 rows have label -1\)"):
        sst2(data_dir, use_validation_if_possible=False)


# ------------------------------------------------------------------ two-feature formats

def test_mrpc_prompt(data_dir):
    data = draw_of('mrpc', data_dir, num_test_samples=1,
                            num_prompt_examples=2)
    assert data.draw.fewshot_indices == [2, 1]
    assert query_prompt(data).text == (
        "Sentence 1: 'Sales fell.'\nSentence 2: 'The team won.' \nAnswer: not equivalent\n\n"
        "Sentence 1: 'Stocks rose.'\nSentence 2: 'It rained.' \nAnswer: not equivalent\n\n"
        "Sentence 1: 'He left early.'\nSentence 2: 'He went home early.' \nAnswer:"
    )


def test_medical_questions_pairs_prompt(data_dir):
    data = draw_of('medical_questions_pairs', data_dir, num_test_samples=1, num_prompt_examples=2)
    assert [row['dr_id'] for row in data.loaded.train_data] == [3, 2, 2, 3]  # split() of the six rows
    assert [row['label'] for row in data.loaded.train_data] == [1, 1, 0, 0]
    assert data.loaded.test_data[data.draw.test_indices[0]]['question_2'] == 'Can I give the flu to others?'
    assert data.draw.fewshot_indices == [1, 2]
    prompt = query_prompt(data)
    assert prompt.text == (
        "Question 1: 'Can I run with a cold?'\nQuestion 2: 'Is jogging fine when I have a cold?' \nAnswer: equivalent"
        "\n\n"
        "Question 1: 'Can I run with a cold?'\nQuestion 2: 'How long does a cold last?' \nAnswer: not equivalent\n\n"
        "Question 1: 'Is flu contagious?'\nQuestion 2: 'Can I give the flu to others?' \nAnswer:"
    )
    assert prompt.answer_ends == [95, 194]


def test_rte_prompt_label_0_is_entailment(data_dir):
    data = draw_of('rte', data_dir, num_test_samples=1,
                           num_prompt_examples=3)
    assert data.draw.fewshot_indices == [2, 1, 1]
    assert query_prompt(data).text == (
        "Sentence 1: 'Tom ate lunch.'\nSentence 2: 'Tom ate.' \nAnswer: entailment\n\n"
        "Sentence 1: 'The shop is closed.'\nSentence 2: 'The shop is open.' \nAnswer: not entailment\n\n"
        "Sentence 1: 'The shop is closed.'\nSentence 2: 'The shop is open.' \nAnswer: not entailment\n\n"
        "Sentence 1: 'Ann sang a song.'\nSentence 2: 'Ann sang.' \nAnswer:"
    )


def test_wnli_prompt_label_1_is_entailment(data_dir):
    data = draw_of('wnli', data_dir, num_test_samples=1,
                            num_prompt_examples=2, fix_space_bug=False)
    assert data.draw.fewshot_indices == [1, 0]
    assert query_prompt(data).text == (
        "Sentence 1: 'Sam thanked Max because he had helped.'\nSentence 2: 'Sam had helped.' "
        "\nAnswer: not entailment\n\n"
        "Sentence 1: 'The cup fell off the table because it was wobbly.'\nSentence 2: 'The table was wobbly.' "
        "\nAnswer: entailment\n\n"
        "Sentence 1: 'The bag was heavy so Ed dropped it.'\nSentence 2: 'The bag was heavy.' \nAnswer: "
    )


# ------------------------------------------------------------------ label manipulations (table in the docstring)

def test_random_labels(data_dir):
    assert sst2(data_dir, random_labels=True).build_prompt('warm and funny').text == (
        "Sentence: 'pure joy' \nAnswer: negative\n\n"
        "Sentence: 'tedious' \nAnswer: negative\n\n"
        "Sentence: 'a gem' \nAnswer: positive\n\n"
        "Sentence: 'moving' \nAnswer: negative\n\n"
        "Sentence: 'a dull mess' \nAnswer: positive\n\n"
        "Sentence: 'a gem' \nAnswer: positive\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )


def test_random_labels_are_drawn_again_for_each_prompt(data_dir):
    data = sst2(data_dir, random_labels=True)
    first, second = query_prompt(data), query_prompt(data)
    rng = np.random.default_rng(SEED)
    rng.choice(3, 1, replace=False), rng.choice(6, 6), rng.choice(6, 6)  # the draws before, and the first prompt's
    assert second.shown_labels == [SST2_TRAIN[int(rng.choice(6, 1)[0])][1] for _ in range(6)]
    assert first.train_indices == second.train_indices == [2, 3, 1, 5, 0, 1]


def test_flip_labels_after(data_dir):
    assert shown(sst2(data_dir, flip_labels_after=3)) == [
        'positive', 'negative', 'positive',  # as they are
        'negative', 'positive', 'negative']  # flipped from example 3 on


def test_flip_labels_after_zero_flips_all(data_dir):
    assert shown(sst2(data_dir, flip_labels_after=0)) == [
        'negative', 'positive', 'negative', 'negative', 'positive', 'negative']


def test_flip_labels_after_halfway(data_dir):
    data = sst2(data_dir, flip_labels_after_halfway=True)
    assert data.format.label_rule.flip_labels_after == 3  # 6 // 2
    assert data.build_prompt('warm and funny').text == (
        "Sentence: 'pure joy' \nAnswer: positive\n\n"
        "Sentence: 'tedious' \nAnswer: negative\n\n"
        "Sentence: 'a gem' \nAnswer: positive\n\n"
        "Sentence: 'moving' \nAnswer: negative\n\n"
        "Sentence: 'a dull mess' \nAnswer: positive\n\n"
        "Sentence: 'a gem' \nAnswer: negative\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )
    five = sst2(data_dir, flip_labels_after_halfway=True, num_prompt_examples=5)
    assert five.format.label_rule.flip_labels_after == 2


def test_flip_labels_multi_alternates_in_blocks(data_dir):
    data = sst2(data_dir, flip_labels_after=2, flip_labels_multi=True)
    prompt = query_prompt(data)
    assert prompt.shown_texts == [
        'positive', 'negative',  # block 0: as they are
        'negative', 'negative',  # block 1: flipped
        'negative', 'positive']  # block 2: as they are
    assert prompt.shown_labels == [1, 0, 0, 0, 0, 1]
    assert prompt.true_labels == [1, 0, 1, 1, 0, 1]  # scoring compares with these


def test_flip_labels_multi_with_halfway_alternates_every_half(data_dir):
    """The original's meaning: blocks of num_prompt_examples // 2 (5 // 2 = 2), flipped where the block is odd.
    Rows [2, 3, 1, 5, 0] carry positive, negative, positive, positive, negative."""
    data = sst2(data_dir, num_prompt_examples=5, flip_labels_after_halfway=True, flip_labels_multi=True)
    assert shown(data) == ['positive', 'negative',  # block 0: as they are
                           'negative', 'negative',  # block 1: flipped
                           'negative']  # block 2: as it is
    assert shown(sst2(data_dir, num_prompt_examples=5, flip_labels_after_halfway=True)) == [
        'positive', 'negative', 'negative', 'negative', 'positive']  # without multi: flipped from 2 on


def test_flip_labels_multi_alone_flips_nothing(data_dir):
    assert shown(sst2(data_dir, flip_labels_multi=True)) == [
        'positive', 'negative', 'positive', 'positive', 'negative', 'positive']


@pytest.mark.parametrize('after', [6, 7, 100])
def test_flip_labels_after_the_last_example_flips_nothing(data_dir, after):
    prompt = query_prompt(sst2(data_dir, flip_labels_after=after))
    assert prompt.shown_texts == ['positive', 'negative', 'positive', 'positive', 'negative', 'positive']
    assert prompt.shown_labels == prompt.true_labels


def test_zero_shot_prompt_is_the_query_alone(data_dir):
    data = sst2(data_dir, num_prompt_examples=0, random_labels=True, flip_labels_after=0)
    assert data.draw.test_indices == [2] and data.draw.fewshot_indices == []  # the same query as with examples
    prompt = query_prompt(data)
    assert prompt.text == "Sentence: 'warm and funny' \nAnswer:"
    assert (prompt.num_examples, prompt.answer_ends, prompt.shown_texts) == (0, [], [])
    assert query_prompt(sst2(data_dir, num_prompt_examples=0, use_default_prompt=True)).text == (
        'Is the sentiment of the following sentence `positive` or `negative`. Respond with `positive` or '
        "`negative.\nSentence: 'warm and funny' \nAnswer:")


def test_flip_labels_multi_lim_stops_flipping(data_dir):
    # every odd example flips, but none after example 3
    assert shown(sst2(data_dir, flip_labels_after=1, flip_labels_multi=True, flip_labels_multi_lim=3)) == [
        'positive', 'positive', 'positive', 'negative', 'negative', 'positive']
    assert shown(sst2(data_dir, flip_labels_after=1, flip_labels_multi=True)) == [
        'positive', 'positive', 'positive', 'negative', 'negative', 'negative']


def test_flip_labels_multi_lim_without_multi(data_dir):
    assert shown(sst2(data_dir, flip_labels_after=1, flip_labels_multi_lim=3)) == [
        'positive', 'positive', 'negative', 'negative', 'negative', 'positive']


def test_replace_labels_by(data_dir):
    data = sst2(data_dir, replace_labels_by='X')
    prompt = query_prompt(data)
    assert prompt.text == (
        "Sentence: 'pure joy' \nAnswer: X\n\n"
        "Sentence: 'tedious' \nAnswer: X\n\n"
        "Sentence: 'a gem' \nAnswer: X\n\n"
        "Sentence: 'moving' \nAnswer: X\n\n"
        "Sentence: 'a dull mess' \nAnswer: X\n\n"
        "Sentence: 'a gem' \nAnswer: X\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )
    assert prompt.shown_labels == [-1] * 6  # a literal is no class
    assert prompt.true_labels == [1, 0, 1, 1, 0, 1]


def test_replace_labels_by_until_step(data_dir):
    assert shown(sst2(data_dir, replace_labels_by='X', replace_labels_until_step=2)) == [
        'X', 'X', 'positive', 'positive', 'negative', 'positive']


def test_random_labels_until_step(data_dir):
    data = sst2(data_dir, random_labels=True, replace_labels_until_step=3)
    assert shown(data) == [
        'negative', 'negative', 'positive',  # random rows 3, 0, 2
        'positive', 'negative', 'positive']  # true labels again
    expected_rng = np.random.default_rng(SEED)
    expected_rng.choice(3, 1, replace=False), expected_rng.choice(6, 6), expected_rng.choice(6, 3)
    assert data.draw.rng.bit_generator.state == expected_rng.bit_generator.state  # exactly three random draws


def test_random_labels_with_replace_labels_by_still_draw(data_dir):
    # the original draws the random label before writing the literal; the draws must stay in step
    data = sst2(data_dir, random_labels=True, replace_labels_by='X', replace_labels_until_step=4)
    prompt = query_prompt(data)
    assert prompt.shown_texts == ['X', 'X', 'X', 'X', 'negative', 'positive']
    expected_rng = np.random.default_rng(SEED)
    expected_rng.choice(3, 1, replace=False), expected_rng.choice(6, 6), expected_rng.choice(6, 4)
    assert data.draw.rng.bit_generator.state == expected_rng.bit_generator.state


def test_flip_then_random_labels_replace_the_flip(data_dir):
    assert shown(sst2(data_dir, flip_labels_after=0, random_labels=True, replace_labels_until_step=3)) == [
        'negative', 'negative', 'positive',  # random rows 3, 0, 2
        'negative', 'positive', 'negative']  # flipped true labels


def test_reverse_labels(data_dir):
    data = sst2(data_dir, reverse_labels=True)
    assert list(data.format.class_names) == ['positive', 'negative']
    assert data.build_prompt('warm and funny').text == (
        "Sentence: 'pure joy' \nAnswer: negative\n\n"
        "Sentence: 'tedious' \nAnswer: positive\n\n"
        "Sentence: 'a gem' \nAnswer: negative\n\n"
        "Sentence: 'moving' \nAnswer: negative\n\n"
        "Sentence: 'a dull mess' \nAnswer: positive\n\n"
        "Sentence: 'a gem' \nAnswer: negative\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )


def test_inputs_off_by_one(data_dir):
    prompt = query_prompt(sst2(data_dir, inputs_off_by_one=True))
    assert prompt.text == (
        "Sentence: 'tedious' \nAnswer: positive\n\n"  # input of example 1, label of example 0 (pure joy)
        "Sentence: 'a gem' \nAnswer: negative\n\n"
        "Sentence: 'moving' \nAnswer: positive\n\n"
        "Sentence: 'a dull mess' \nAnswer: positive\n\n"
        "Sentence: 'a gem' \nAnswer: negative\n\n"  # the last example (a gem, positive) is dropped
        "Sentence: 'warm and funny' \nAnswer:"
    )
    assert prompt.train_indices == [2, 3, 1, 5, 0]  # rows whose labels are shown
    assert prompt.true_labels == [1, 0, 1, 1, 0]


def test_class_names_variant(data_dir):
    data = sst2(data_dir, ['bad', 'good'], num_prompt_examples=2)
    assert data.build_prompt('warm and funny').text == (
        "Sentence: 'pure joy' \nAnswer: good\n\n"
        "Sentence: 'tedious' \nAnswer: bad\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )


def test_answer_string(data_dir):
    data = sst2(data_dir, num_prompt_examples=2, answer_string='Sentiment')
    prompt = query_prompt(data)
    assert prompt.text == (
        "Sentence: 'pure joy' \nSentiment: positive\n\n"
        "Sentence: 'tedious' \nSentiment: negative\n\n"
        "Sentence: 'warm and funny' \nSentiment:"
    )
    assert prompt.answer_ends == [32, 74]
    assert sst2(data_dir, answer_string=None).format.example.answer_string == 'Answer'


# ------------------------------------------------------------------ prompt prefixes

def test_prompt_string(data_dir):
    data = sst2(data_dir, num_prompt_examples=2, prompt_string='Classify the reviews.')
    assert data.build_prompt('warm and funny').text == (
        "Classify the reviews.\n"
        "Sentence: 'pure joy' \nAnswer: positive\n\n"
        "Sentence: 'tedious' \nAnswer: negative\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )


def test_prompt_string_trigger_flip(data_dir):
    data = sst2(data_dir, num_prompt_examples=1, prompt_string='TRIGGER_FLIP')
    assert query_prompt(data).text == (
        "In the following, `negative` means `positive` and `positive` means `negative`.\n"
        "Sentence: 'pure joy' \nAnswer: positive\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )


def test_trigger_flip_uses_the_variant_names(data_dir):
    data = sst2(data_dir, ['A', 'B'], num_prompt_examples=1, prompt_string='TRIGGER_FLIP')
    assert data.format.instruction == 'In the following, `A` means `B` and `B` means `A`.'


def test_use_default_prompt_keeps_the_original_text_and_typo(data_dir):
    data = sst2(data_dir, num_prompt_examples=1, use_default_prompt=True)
    assert query_prompt(data).text == (
        "Is the sentiment of the following sentence `positive` or `negative`. Respond with `positive` or `negative.\n"
        "Sentence: 'pure joy' \nAnswer: positive\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )


def test_use_default_prompt_and_prompt_string_joined_by_newline(data_dir):
    data = sst2(data_dir, num_prompt_examples=1, use_default_prompt=True, prompt_string='Be brief.')
    prompt = query_prompt(data)
    assert prompt.text == (
        "Is the sentiment of the following sentence `positive` or `negative`. Respond with `positive` or `negative.\n"
        "Be brief.\n"
        "Sentence: 'pure joy' \nAnswer: positive\n\n"
        "Sentence: 'warm and funny' \nAnswer:"
    )
    assert prompt.answer_ends == [len(prompt.text.split('\n')[0]) + len('\nBe brief.\n') + 29]


def test_use_default_prompt_for_two_feature_data(data_dir):
    data = draw_of('rte', data_dir, num_test_samples=1,
                           num_prompt_examples=1, use_default_prompt=True)
    assert query_prompt(data).text == (
        "Does Sentence 1 entail Sentence 1? Respond with `entailment` or `not entailment`.\n"
        "Sentence 1: 'Tom ate lunch.'\nSentence 2: 'Tom ate.' \nAnswer: entailment\n\n"
        "Sentence 1: 'Ann sang a song.'\nSentence 2: 'Ann sang.' \nAnswer:"
    )


# ------------------------------------------------------------------ the pure functions

def test_example_format():
    single = ExampleFormat(text_string='Sentence')
    assert single.example('so good', 'positive') == "Sentence: 'so good' \nAnswer: positive"
    assert single.query('so good') == "Sentence: 'so good' \nAnswer:"
    assert single.head('so good') == "Sentence: 'so good' \nAnswer:"
    pair = ExampleFormat(text_string=('Question 1', 'Question 2'), answer_string='Label', fix_space_bug=False)
    assert pair.example(['a?', 'b?'], 'equivalent') == "Question 1: 'a?'\nQuestion 2: 'b?' \nLabel: equivalent"
    assert pair.query(['a?', 'b?']) == "Question 1: 'a?'\nQuestion 2: 'b?' \nLabel: "


def test_label_rule_rotates_multi_class_labels():
    rule = LabelRule(num_classes=3, flip_labels_after=1)
    never = lambda: pytest.fail('no random label expected')  # noqa: E731
    assert [rule.shown(i, label, never) for i, label in enumerate([2, 2, 1, 0])] == [
        (2, None), (0, None), (2, None), (1, None)]


def test_label_rule_order_of_checks():
    draws = iter([7, 8])
    rule = LabelRule(num_classes=2, flip_labels_after=0, random_labels=True, replace_labels_by='Z',
                     replace_labels_until_step=2)
    assert [rule.shown(i, 0, lambda: next(draws)) for i in range(3)] == [(7, 'Z'), (8, 'Z'), (1, None)]


def test_rotated_and_trigger_flip_for_three_names():
    assert rotated(['negative', 'neutral', 'positive']) == ['neutral', 'positive', 'negative']
    assert trigger_flip_prompt(['negative', 'neutral', 'positive']) == (
        'In the following, `negative` means `neutral` and `neutral` means `positive` and `positive` means `negative`.')


def test_prompt_prefix():
    assert prompt_prefix(None, None) == ''
    assert prompt_prefix('Default.', None) == 'Default.'
    assert prompt_prefix(None, 'Mine.') == 'Mine.'
    assert prompt_prefix('Default.', 'Mine.') == 'Default.\nMine.'


def test_positions_text_names_positions_as_the_plan_and_the_report_show_them():
    assert positions_text([]) == 'none'
    assert positions_text([8]) == '8'
    assert positions_text(list(range(10, 20))) == '10-19'
    assert positions_text([10, 11]) == '10-11'
    assert positions_text([2, 4, 6]) == '2, 4, 6'
    assert positions_text([*range(10), *range(20, 30)]) == '0-9, 20-29'
    assert positions_text(list(range(0, 40, 2))) == '0, 2, 4, 6, 8, 10, 12, 14, ... (20 positions)'
