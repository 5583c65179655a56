"""The dataset registry: class names, their variants, seeded draws and prompt assembly.

Public names follow the original tool so notebooks written for it keep working:
`datasets[name](rng=np.random.default_rng(seed), **dataset.config)` gives an object with
`class_name_variants`, `all_classes`, `class_names`, `train_data`, `test_data`,
`test_indices`, `fewshot_indices`, `get_feature`, `get_fewshot_prompt`, ...

Draws happen in the spec's order (docs/behaviour.md#draws): test indices, then few-shot
indices (with replacement), then one random training row per randomly labelled example.
"""
import logging
import os
from typing import Any

import numpy as np

from icl import loaders
from icl.errors import UsageError
from icl.prompts import (
    ExampleFormat,
    LabelRule,
    Prompt,
    prompt_prefix,
    resolved_flip_after,
    rotated,
    trigger_flip_prompt,
)

CLASS_NAMES_ENV = 'CLASS_NAMES'
CLASS_NAMES_MODES = ('ALL', 'DEFAULT_ONLY', 'DEFAULT_AND_FLIP')
OLD_CLASS_NAMES_ENV = 'OLD_CLASS_NAMES'  # TRUE: the original's yes/no names for paraphrase, entailment, hate speech
OLD_CLASS_NAMES_VALUES = ('TRUE', 'FALSE')

BINARY_REPLACEMENT_LABELS = {
    'rating_1': ['bad', 'good'],
    'rating_2': ['good', 'bad'],
    'options_1': ['A', 'B'],
    'options_2': ['B', 'A'],
    'colors_1': ['green', 'blue'],
    'colors_2': ['blue', 'green'],
    'sea_chair_1': ['sea', 'chair'],
    'sea_chair_2': ['chair', 'sea'],
}


def binary_variants(default: list[str]) -> dict[str, list[str]]:
    """default, flip (reversed default), then the shared binary replacement names."""
    return {'default': default, 'flip': default[::-1], **BINARY_REPLACEMENT_LABELS}


YES_NO = binary_variants(['no', 'yes'])  # the original's names with OLD_CLASS_NAMES=TRUE


def class_names_mode() -> str:
    """The CLASS_NAMES environment variable (unset means ALL); any other value is an error."""
    mode = os.environ.get(CLASS_NAMES_ENV) or 'ALL'
    if mode not in CLASS_NAMES_MODES:
        # 'DEFAULT' is the original README's value
        why = ': the original tool treated it as ALL (every variant), DEFAULT_ONLY is probably meant' \
            if mode == 'DEFAULT' else ''
        raise UsageError(f"CLASS_NAMES='{mode}' is not valid{why}; use one of {', '.join(CLASS_NAMES_MODES)} "
                         '(or leave it unset for ALL)')
    return mode


def select_variants(variants: dict[str, list[str]], flip_variant: str, mode: str) -> dict[str, list[str]]:
    """The variants a run iterates over for CLASS_NAMES=`mode`, in order."""
    keep = {'ALL': list(variants), 'DEFAULT_ONLY': ['default'], 'DEFAULT_AND_FLIP': ['default', flip_variant]}[mode]
    return {name: list(variants[name]) for name in keep}


def old_class_names() -> bool:
    """OLD_CLASS_NAMES=TRUE (the original's switch); unset or FALSE: today's names; any other value is an error."""
    value = os.environ.get(OLD_CLASS_NAMES_ENV) or 'FALSE'
    if value not in OLD_CLASS_NAMES_VALUES:
        raise UsageError(f"OLD_CLASS_NAMES='{value}' is not valid; use TRUE (the original's yes/no class names "
                         'and prompts for mrpc, medical_questions_pairs, wnli, rte, hate_speech) or FALSE '
                         '(or leave it unset)')
    return value == 'TRUE'


def uses_old_class_names(name: str) -> bool:
    """Does dataset `name` show the original's yes/no names here (OLD_CLASS_NAMES=TRUE and it has them)?"""
    return old_class_names() and dataset_class(name).old_variants is not None


def old_class_names_note(name: str) -> str | None:
    """The plan's note when OLD_CLASS_NAMES=TRUE changes nothing for dataset `name`."""
    if old_class_names() and not uses_old_class_names(name):
        return f'OLD_CLASS_NAMES=TRUE changes nothing for {name} (only for {", ".join(OLD_NAME_DATASETS)})'
    return None


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logging.warning(message)


class _ReadsClassNames(type):
    """Class-level `class_name_variants` / `all_classes`, read from CLASS_NAMES when asked."""

    @property
    def class_name_variants(cls) -> dict[str, list[str]]:
        old = old_class_names()  # checked for every dataset: a wrong value is never ignored
        variants = cls.old_variants if old and cls.old_variants is not None else cls.variants
        return select_variants(variants, cls.flip_variant, class_names_mode())

    @property
    def all_classes(cls) -> list[str]:
        return sorted({name for names in cls.class_name_variants.values() for name in names})


class BaseDataset(metaclass=_ReadsClassNames):
    """One draw of test and few-shot rows for one repetition and one class-name variant."""
    variants: dict[str, list[str]]  # every class-name variant, in the order a run uses them
    flip_variant = 'flip'  # the variant CLASS_NAMES=DEFAULT_AND_FLIP adds
    label_name = 'label'
    feature_name: str | list[str] = 'sentence'
    text_string: str | list[str] = 'Sentence'
    default_prompt_string: str | None = None
    old_variants: dict[str, list[str]] | None = None  # with OLD_CLASS_NAMES=TRUE (the original's yes/no names)
    old_prompt_string: str | None = None  # the default prompt with OLD_CLASS_NAMES=TRUE
    validation_split: str | None = None  # split used for queries when use_validation_if_possible
    test_split = 'test'

    # Instances see the class-level values too.
    class_name_variants = property(lambda self: type(self).class_name_variants)
    all_classes = property(lambda self: type(self).all_classes)

    def __init__(self, *, rng: np.random.Generator, num_test_samples: int, num_prompt_examples: int,
                 use_validation_if_possible: bool = True, reverse_labels: bool = False,
                 class_names: list[str] | None = None, use_model_preds_as_labels: bool = False,
                 answer_string: str | None = None, random_labels: bool = False, flip_labels_after: int = -1,
                 flip_labels_multi_lim: int = 10**19, flip_labels_after_halfway: bool = False,
                 flip_labels_multi: bool = False, replace_labels_by: str = '', replace_labels_until_step: int = -1,
                 use_default_prompt: bool = False, inputs_off_by_one: bool = False,
                 prompt_string: str | None = None, fix_space_bug: bool = True, data_dir: str | None = None):
        if use_model_preds_as_labels:
            raise UsageError('dataset.config.use_model_preds_as_labels=True is not supported '
                             '(the original never filled in the model predictions it needs)')
        self.dataset = self.load(data_dir)
        test_set_name = self.choose_test_split(use_validation_if_possible)

        class_names = list(class_names) if class_names is not None else self.class_name_variants['default']
        if reverse_labels:
            class_names = rotated(class_names)
        self.class_names = class_names
        self.num_classes = len(class_names)
        self.numlabel2text = dict(enumerate(class_names))
        self.answer_string = answer_string if answer_string is not None else 'Answer'
        self.fix_space_bug = fix_space_bug

        self.rng = rng
        self.test_data = self.dataset[test_set_name]
        if num_test_samples > len(self.test_data):
            raise UsageError(f'dataset.config.num_test_samples={num_test_samples} exceeds the {len(self.test_data)} '
                             f"rows of {self.dataset_name()}'s {test_set_name} split (drawn without replacement)")
        self.test_indices = [int(i) for i in rng.choice(len(self.test_data), num_test_samples, replace=False)]
        self.train_data = self.dataset['train']
        self.num_prompt_examples = num_prompt_examples
        self.fewshot_indices = [int(i) for i in rng.choice(len(self.train_data), num_prompt_examples)]

        if flip_labels_after_halfway:
            if flip_labels_after != -1:
                raise UsageError('set either flip_labels_after_halfway=True or flip_labels_after, not both')
            flip_labels_after = resolved_flip_after(num_prompt_examples, flip_labels_after, True)
        self.flip_labels_after = flip_labels_after
        self.label_rule = LabelRule(
            num_classes=self.num_classes, flip_labels_after=flip_labels_after,
            flip_labels_multi=flip_labels_multi, flip_labels_multi_lim=flip_labels_multi_lim,
            random_labels=random_labels, replace_labels_by=replace_labels_by,
            replace_labels_until_step=replace_labels_until_step)
        self.inputs_off_by_one = inputs_off_by_one

        if prompt_string == 'TRIGGER_FLIP':
            prompt_string = trigger_flip_prompt(class_names)
        self.prompt_string = prompt_prefix(self.instruction() if use_default_prompt else None, prompt_string)
        self.format = ExampleFormat(
            text_string=self.text_string if isinstance(self.text_string, str) else tuple(self.text_string),
            answer_string=self.answer_string, fix_space_bug=fix_space_bug)

    @classmethod
    def instruction(cls) -> str | None:
        """The dataset's default prompt (use_default_prompt=True), the yes/no one with OLD_CLASS_NAMES=TRUE."""
        if cls.old_variants is not None and old_class_names():
            return cls.old_prompt_string
        return cls.default_prompt_string

    # ------------------------------------------------------------ data
    @classmethod
    def dataset_name(cls) -> str:
        return next(name for name, klass in datasets.items() if klass is cls)

    def load(self, data_dir: str | None) -> loaders.Records:
        return loaders.load_records(self.dataset_name(), loaders.data_dir(data_dir))

    def choose_test_split(self, use_validation_if_possible: bool) -> str:
        """The split queries come from; one without labels (the GLUE test files) is an error."""
        if use_validation_if_possible and self.validation_split:
            return self.validation_split
        if use_validation_if_possible:
            _warn_once(f'No validation set for {self.dataset_name()} but `use_validation_if_possible == True`; '
                       f'using {self.test_split}.')
        unlabelled = sum(row[self.label_name] == -1 for row in self.dataset[self.test_split])
        if unlabelled:  # the original scored such queries against label -1 without a word
            raise UsageError(f"{self.dataset_name()}'s {self.test_split} split has no labels ({unlabelled} of "
                             f'{len(self.dataset[self.test_split])} rows have label -1); set '
                             f'dataset.config.use_validation_if_possible=True to query its labelled '
                             f'{self.validation_split} split')
        return self.test_split

    def label_frequencies(self) -> np.ndarray:
        """Share of each label in the training split (the original's 'guessing' baseline)."""
        counts = np.bincount([row[self.label_name] for row in self.train_data], minlength=self.num_classes)
        return counts / counts.sum()

    def get_feature(self, datapoint: dict) -> Any:
        if isinstance(self.feature_name, str):
            return datapoint[self.feature_name]
        return [datapoint[name] for name in self.feature_name]

    # ------------------------------------------------------------ prompts
    def _random_label(self) -> int:
        # rng.choice(n, 1) draws exactly what the original's rng.choice(range(n), 1) draws, far faster
        row = int(self.rng.choice(len(self.train_data), 1)[0])
        return self.train_data[row][self.label_name]

    @property
    def num_examples(self) -> int:
        """In-context examples a prompt shows: one fewer than drawn with inputs_off_by_one (the last input has
        no label to show)."""
        return len(self.fewshot_indices) - 1 if self.inputs_off_by_one else len(self.fewshot_indices)

    def build_prompt(self, query_features: Any) -> Prompt:
        """The few-shot prompt for one query, with the position of every in-context answer.

        Draws the random labels (if any) from `rng`, so call it once per prompt.
        """
        prompt = Prompt(text=self.prompt_string + '\n' if self.prompt_string else '')
        indices = self.fewshot_indices
        for i in range(self.num_examples):
            row = indices[i]
            shown_row = indices[i + 1] if self.inputs_off_by_one else row
            true_label = self.train_data[row][self.label_name]
            label, literal = self.label_rule.shown(i, true_label, self._random_label)
            text = literal if literal is not None else self.numlabel2text[label]
            head = self.format.head(self.get_feature(self.train_data[shown_row]))
            prompt.answer_ends.append(len(prompt.text) + len(head))
            prompt.text += f'{head} {text}\n\n'
            prompt.train_indices.append(row)
            prompt.true_labels.append(true_label)
            prompt.shown_labels.append(label if literal is None else -1)
            prompt.shown_texts.append(text)
        prompt.text += self.format.query(query_features)
        return prompt

    @property
    def fewshot_examples(self) -> str:
        """The in-context examples as text (draws random labels again, as the original did)."""
        text = self.build_prompt('').text
        return text[:len(text) - len(self.format.query(''))]

    def get_fewshot_prompt(self, sentence: Any, examples: str | None = None) -> str:
        if examples is None:
            return self.build_prompt(sentence).text
        return examples + self.format.query(sentence)

    def add_example(self, sentence: Any, label: str | None) -> str:
        """One example (or the query, when `label` is None) in the original's format."""
        return self.format.query(sentence) if label is None else self.format.example(sentence, label)


class SST2Dataset(BaseDataset):
    variants = binary_variants(['negative', 'positive'])
    default_prompt_string = ('Is the sentiment of the following sentence `positive` or `negative`. '
                             'Respond with `positive` or `negative.')
    validation_split = 'validation'


class SubjDataset(BaseDataset):
    variants = binary_variants(['objective', 'subjective'])
    feature_name = 'text'
    default_prompt_string = ('Is the following sentence `objective` or `subjective`. '
                             'Respond with `objective` or `subjective`.')


class FinancialPhrasebankDataset(BaseDataset):
    variants = {
        'default': ['negative', 'neutral', 'positive'],
        'perm_1': ['neutral', 'positive', 'negative'],
        'perm_2': ['positive', 'negative', 'neutral'],
        'flip_outer': ['positive', 'neutral', 'negative'],
        'yesno_1': ['no', 'ok', 'yes'],
        'yesno_2': ['yes', 'ok', 'no'],
        'rating_1': ['bad', 'ok', 'good'],
        'rating_2': ['good', 'ok', 'bad'],
        'options_1': ['A', 'B', 'C'],
        'options_2': ['C', 'A', 'B'],
        'options_3': ['B', 'C', 'A'],
        'colors_1': ['blue', 'green', 'yellow'],
        'colors_2': ['yellow', 'blue', 'green'],
        'colors_3': ['green', 'yellow', 'blue'],
    }
    flip_variant = 'perm_2'  # rotated once more by a label flip, it becomes default again
    default_prompt_string = ('Is the sentiment of the following sentence `negative`, `neutral`, or `positive`. '
                             'Respond with `negative`, `neutral`, or `positive`.')


class ParaphraseDataset(BaseDataset):
    variants = binary_variants(['not equivalent', 'equivalent'])
    feature_name = ['sentence1', 'sentence2']
    text_string = ['Sentence 1', 'Sentence 2']
    default_prompt_string = 'Are Sentence 1 and Sentence 2 equivalent? Respond with `equivalent` or `not equivalent`.'
    old_variants = YES_NO
    old_prompt_string = 'Are Sentence 1 and Sentence 2 equivalent? Respond with `yes` or `no`.'


class MedicalQuestionsPairs(ParaphraseDataset):
    feature_name = ['question_1', 'question_2']
    text_string = ['Question 1', 'Question 2']
    default_prompt_string = 'Are Question 1 and Question 2 equivalent? Respond with `equivalent` or `not equivalent`.'
    old_prompt_string = 'Are Question 1 and Question 2 equivalent? Respond with `yes` or `no`.'


class MRPCDataset(ParaphraseDataset):
    validation_split = 'validation'


class EntailmentDataset(ParaphraseDataset):
    variants = binary_variants(['not entailment', 'entailment'])
    default_prompt_string = 'Does Sentence 1 entail Sentence 1? Respond with `entailment` or `not entailment`.'
    old_prompt_string = 'Does Sentence 1 entail Sentence 1? Respond with `yes` or `no`.'
    validation_split = 'validation'


class WNLIDataset(EntailmentDataset):
    pass


class RTEDataset(EntailmentDataset):
    variants = binary_variants(['entailment', 'not entailment'])  # RTE's label 0 is entailment
    old_variants = binary_variants(['yes', 'no'])


class HateSpeechDataset(BaseDataset):
    variants = binary_variants(['not hate speech', 'hate speech'])
    feature_name = 'text'
    default_prompt_string = 'Does the sentence contain hate speech? Respond with `hate speech` or `not hate speech`.'
    old_variants = YES_NO
    old_prompt_string = 'Does the sentence contain hate speech? Respond with `yes` or `no`.'


class AGNewsDataset(BaseDataset):
    variants = {
        'default': ['world', 'sports', 'business', 'science and technology'],
        'perm_1': ['science and technology', 'world', 'sports', 'business'],
        'perm_2': ['business', 'science and technology', 'world', 'sports'],
        'perm_3': ['sports', 'business', 'science and technology', 'world'],
        'flip': ['science and technology', 'business', 'sports', 'world'],
        'options_1': ['A', 'B', 'C', 'D'],
        'options_2': ['D', 'C', 'B', 'A'],
    }
    flip_variant = 'perm_1'
    feature_name = 'text'
    default_prompt_string = ('To which category does the following news article belong: '
                             '`world`, `sport`, `busines`, or `science and technology`?')


class AuthorIdDataset(BaseDataset):
    """Private chat data of the paper's authors; only runs where that file exists."""
    variants = {
        'default': ['tom', 'jan'],
        'flipped': ['jan', 'tom'],
        'sentiment': ['negative', 'positive'],
        'sentiment_flipped': ['positive', 'negative'],
        'feelings_1': ['happy', 'sad'],
        'feelings_2': ['sad', 'happy'],
        'colors_1': ['green', 'blue'],
        'rating_1': ['bad', 'good'],
        'sea_chair_1': ['sea', 'chair'],
        'options_1': ['A', 'B'],
        'movie_book_1': ['movie', 'book'],
    }
    flip_variant = 'flipped'
    label_name = 'author'
    max_sentence_length = 200
    relative_path = 'data/tomvjan/chat_cleaned.csv'

    def load(self, data_dir: str | None) -> loaders.Records:
        return loaders.load_author_id(self.relative_path, loaders.data_dir(data_dir), self.max_sentence_length)

    def choose_test_split(self, use_validation_if_possible: bool) -> str:
        _warn_once('No real test data for author_id.')
        return 'test'


class TinySentimentDataset(BaseDataset):
    """260 movie-review sentences written for this project: runs offline, in minutes."""
    variants = binary_variants(['negative', 'positive'])


datasets: dict[str, type[BaseDataset]] = {
    'sst2': SST2Dataset,
    'subj': SubjDataset,
    'financial_phrasebank': FinancialPhrasebankDataset,
    'author_id': AuthorIdDataset,
    'medical_questions_pairs': MedicalQuestionsPairs,
    'mrpc': MRPCDataset,
    'wnli': WNLIDataset,
    'rte': RTEDataset,
    'hate_speech': HateSpeechDataset,
    'ag_news': AGNewsDataset,
    'tiny_sentiment': TinySentimentDataset,
}


OLD_NAME_DATASETS = [name for name, klass in datasets.items() if klass.old_variants is not None]


def dataset_class(name: str) -> type[BaseDataset]:
    """The registered class for `name`, or a UsageError listing the valid names."""
    if name not in datasets:
        raise UsageError(f"unknown dataset '{name}'; choose one of {', '.join(datasets)}")
    return datasets[name]
