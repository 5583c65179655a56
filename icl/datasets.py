"""The dataset registry, and the three steps from a dataset to a prompt (docs/behaviour.md#draws).

  load(settings)                      -> Loaded: the records and the split queries come from (read once)
  draw(loaded, settings, r)           -> Draw: repetition r's test rows and in-context rows
  prompt_format(settings, names)      -> PromptFormat: the names shown, the label rule, the text around them

`Repetition` joins them: it builds one repetition's prompts for one class-name variant. Draws
happen in the original's order: test indices, then few-shot indices (with replacement), then,
as prompts are built, one random training row per randomly labelled example.
"""
import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from icl import loaders
from icl.errors import UsageError
from icl.prompts import (
    ExampleFormat,
    LabelRule,
    Prompt,
    prompt_prefix,
    rotated,
    trigger_flip_prompt,
)
from icl.settings import DataSettings

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

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logging.warning(message)


class Dataset:
    """What a dataset is: its class-name variants, fields, instruction and splits (class attributes only)."""
    variants: dict[str, list[str]]  # every class-name variant, in the order a run uses them
    flip_variant = 'flip'  # the variant class_names_mode=DEFAULT_AND_FLIP adds
    label_name = 'label'
    feature_name: str | list[str] = 'sentence'
    text_string: str | list[str] = 'Sentence'
    default_prompt_string: str | None = None
    old_variants: dict[str, list[str]] | None = None  # with old_class_names (the original's yes/no names)
    old_prompt_string: str | None = None  # the default prompt with old_class_names
    validation_split: str | None = None  # split used for queries when use_validation_if_possible
    test_split = 'test'

    @classmethod
    def dataset_name(cls) -> str:
        return next(name for name, klass in datasets.items() if klass is cls)

    @classmethod
    def uses_old_names(cls, old_class_names: bool) -> bool:
        """Does old_class_names change this dataset's names (it has the original's yes/no ones)?"""
        return old_class_names and cls.old_variants is not None

    @classmethod
    def all_variants(cls, old_class_names: bool) -> dict[str, list[str]]:
        return cls.old_variants if cls.uses_old_names(old_class_names) else cls.variants

    @classmethod
    def instruction(cls, old_class_names: bool) -> str | None:
        """The dataset's default prompt (use_default_prompt=True), the yes/no one with old_class_names."""
        return cls.old_prompt_string if cls.uses_old_names(old_class_names) else cls.default_prompt_string

    @classmethod
    def load(cls, local_dir: Path | None) -> loaders.Records:
        """The records, from `local_dir` (None: the hub)."""
        return loaders.load_records(cls.dataset_name(), local_dir)

    @classmethod
    def query_split(cls, records: loaders.Records, use_validation_if_possible: bool) -> str:
        """The split queries come from; one without labels (the GLUE test files) is an error."""
        if use_validation_if_possible and cls.validation_split:
            return cls.validation_split
        if use_validation_if_possible:
            _warn_once(f'No validation set for {cls.dataset_name()} but `use_validation_if_possible == True`; '
                       f'using {cls.test_split}.')
        unlabelled = sum(row[cls.label_name] == -1 for row in records[cls.test_split])
        if unlabelled:  # the original scored such queries against label -1 without a word
            raise UsageError(f"{cls.dataset_name()}'s {cls.test_split} split has no labels ({unlabelled} of "
                             f'{len(records[cls.test_split])} rows have label -1); set '
                             f'dataset.config.use_validation_if_possible=True to query its labelled '
                             f'{cls.validation_split} split')
        return cls.test_split

    @classmethod
    def get_feature(cls, row: dict) -> Any:
        if isinstance(cls.feature_name, str):
            return row[cls.feature_name]
        return [row[name] for name in cls.feature_name]


def variants_for(settings: DataSettings) -> dict[str, list[str]]:
    """The class-name variants a run scores, in order: its custom class_names, else those class_names_mode
    selects (with old_class_names: the original's yes/no names where the dataset has them)."""
    if settings.class_names is not None:
        return {'custom': list(settings.class_names)}
    klass = dataset_class(settings.name)
    variants = klass.all_variants(settings.old_class_names)
    keep = {'ALL': list(variants), 'DEFAULT_ONLY': ['default'],
            'DEFAULT_AND_FLIP': ['default', klass.flip_variant]}[settings.class_names_mode]
    return {name: list(variants[name]) for name in keep}


def all_classes(settings: DataSettings) -> list[str]:
    """Every name the run's prompts can show, sorted: the label_logits columns of the results table."""
    selected = variants_for(dataclasses.replace(settings, class_names=None))
    return sorted({name for names in [*selected.values(), *variants_for(settings).values()] for name in names})


def old_class_names_note(settings: DataSettings) -> str | None:
    """The plan's note when old_class_names changes nothing for the run's dataset."""
    if settings.old_class_names and not dataset_class(settings.name).uses_old_names(True):
        return (f'OLD_CLASS_NAMES=TRUE changes nothing for {settings.name} '
                f'(only for {", ".join(OLD_NAME_DATASETS)})')
    return None


# ---------------------------------------------------------------- loading
@dataclasses.dataclass(frozen=True)
class Loaded:
    """A dataset's records and the split its queries come from."""
    klass: type[Dataset]
    records: loaders.Records
    test_split: str

    @property
    def train_data(self) -> list[dict]:
        return self.records['train']

    @property
    def test_data(self) -> list[dict]:
        return self.records[self.test_split]

    def label_frequencies(self, num_classes: int) -> np.ndarray:
        """Share of each label in the training split (the original's 'guessing' baseline)."""
        counts = np.bincount([row[self.klass.label_name] for row in self.train_data], minlength=num_classes)
        return counts / counts.sum()


def load(settings: DataSettings) -> Loaded:
    """The run's data; missing files fail here, with one line."""
    return _loaded(settings.name, loaders.data_dir(settings.data_dir), settings.use_validation_if_possible)


@functools.lru_cache(maxsize=16)  # keyed by the folder the data come from now ($ICL_DATA_DIR may change)
def _loaded(name: str, local_dir: Path | None, use_validation_if_possible: bool) -> Loaded:
    klass = dataset_class(name)
    records = klass.load(local_dir)
    return Loaded(klass, records, klass.query_split(records, use_validation_if_possible))


# ---------------------------------------------------------------- the seeded draw
@dataclasses.dataclass
class Draw:
    """A repetition's rows: queries (without replacement), in-context examples (with), and the generator
    the random labels are drawn from as its prompts are built."""
    test_indices: list[int]
    fewshot_indices: list[int]
    rng: np.random.Generator


def draw(loaded: Loaded, settings: DataSettings, repetition: int) -> Draw:
    rng = np.random.default_rng(settings.random_seed + repetition)
    n_test, split = settings.num_test_samples, loaded.test_split
    if n_test > len(loaded.test_data):
        raise UsageError(f'dataset.config.num_test_samples={n_test} exceeds the {len(loaded.test_data)} '
                         f"rows of {settings.name}'s {split} split (drawn without replacement)")
    test_indices = [int(i) for i in rng.choice(len(loaded.test_data), n_test, replace=False)]
    fewshot_indices = [int(i) for i in rng.choice(len(loaded.train_data), settings.num_prompt_examples)]
    return Draw(test_indices, fewshot_indices, rng)


# ---------------------------------------------------------------- the prompt format
@dataclasses.dataclass(frozen=True)
class PromptFormat:
    """How a variant's prompts show the drawn rows."""
    class_names: tuple[str, ...]  # shown for labels 0, 1, ... (rotated by one with reverse_labels)
    label_rule: LabelRule
    example: ExampleFormat
    instruction: str  # text before the examples ('' for none)
    inputs_off_by_one: bool


def prompt_format(settings: DataSettings, names: list[str] | None = None) -> PromptFormat:
    """The format of a variant's prompts; `names` None: the dataset's default names."""
    klass = dataset_class(settings.name)
    names = list(names) if names is not None else klass.all_variants(settings.old_class_names)['default']
    if settings.reverse_labels:
        names = rotated(names)
    prompt_string = settings.prompt_string
    if prompt_string == 'TRIGGER_FLIP':
        prompt_string = trigger_flip_prompt(names)
    instruction = klass.instruction(settings.old_class_names) if settings.use_default_prompt else None
    text_string = klass.text_string if isinstance(klass.text_string, str) else tuple(klass.text_string)
    answer = settings.answer_string if settings.answer_string is not None else 'Answer'
    return PromptFormat(
        class_names=tuple(names), label_rule=settings.label_rule(len(names)),
        example=ExampleFormat(text_string=text_string, answer_string=answer, fix_space_bug=settings.fix_space_bug),
        instruction=prompt_prefix(instruction, prompt_string), inputs_off_by_one=settings.inputs_off_by_one)


# ---------------------------------------------------------------- a repetition's prompts
@dataclasses.dataclass
class Repetition:
    """One repetition's draw shown in one variant's format."""
    loaded: Loaded
    draw: Draw
    format: PromptFormat

    @property
    def num_examples(self) -> int:
        """In-context examples a prompt shows: one fewer than drawn with inputs_off_by_one (the last input has
        no label to show)."""
        drawn = len(self.draw.fewshot_indices)
        return drawn - 1 if self.format.inputs_off_by_one else drawn

    def query(self, test_row: int) -> tuple[Any, int]:
        """(features, true label) of a test row."""
        row = self.loaded.test_data[test_row]
        return self.loaded.klass.get_feature(row), row[self.loaded.klass.label_name]

    def query_prompts(self) -> list[tuple[int, Prompt]]:
        """(test row, prompt) for each query; each assembly draws its own random labels, as the original."""
        return [(i, self.build_prompt(self.query(i)[0])) for i in self.draw.test_indices]

    def _random_label(self) -> int:
        # rng.choice(n, 1) draws exactly what the original's rng.choice(range(n), 1) draws, far faster
        row = int(self.draw.rng.choice(len(self.loaded.train_data), 1)[0])
        return self.loaded.train_data[row][self.loaded.klass.label_name]

    def build_prompt(self, query_features: Any) -> Prompt:
        """The few-shot prompt for one query, with the position of every in-context answer.

        Draws the random labels (if any) from the draw's generator, so call it once per prompt.
        """
        fmt, train, klass = self.format, self.loaded.train_data, self.loaded.klass
        prompt = Prompt(text=fmt.instruction + '\n' if fmt.instruction else '')
        indices = self.draw.fewshot_indices
        for i in range(self.num_examples):
            row = indices[i]
            shown_row = indices[i + 1] if fmt.inputs_off_by_one else row
            true_label = train[row][klass.label_name]
            label, literal = fmt.label_rule.shown(i, true_label, self._random_label)
            text = literal if literal is not None else fmt.class_names[label]
            head = fmt.example.head(klass.get_feature(train[shown_row]))
            prompt.answer_ends.append(len(prompt.text) + len(head))
            prompt.text += f'{head} {text}\n\n'
            prompt.train_indices.append(row)
            prompt.true_labels.append(true_label)
            prompt.shown_labels.append(label if literal is None else -1)
            prompt.shown_texts.append(text)
        prompt.text += fmt.example.query(query_features)
        return prompt


def repetition(settings: DataSettings, r: int, names: list[str] | None = None) -> Repetition:
    """Repetition r's draw in the format of the variant with `names` (None: the default names)."""
    loaded = load(settings)
    return Repetition(loaded, draw(loaded, settings, r), prompt_format(settings, names))


class SST2Dataset(Dataset):
    variants = binary_variants(['negative', 'positive'])
    default_prompt_string = ('Is the sentiment of the following sentence `positive` or `negative`. '
                             'Respond with `positive` or `negative.')
    validation_split = 'validation'


class SubjDataset(Dataset):
    variants = binary_variants(['objective', 'subjective'])
    feature_name = 'text'
    default_prompt_string = ('Is the following sentence `objective` or `subjective`. '
                             'Respond with `objective` or `subjective`.')


class FinancialPhrasebankDataset(Dataset):
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


class ParaphraseDataset(Dataset):
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


class HateSpeechDataset(Dataset):
    variants = binary_variants(['not hate speech', 'hate speech'])
    feature_name = 'text'
    default_prompt_string = 'Does the sentence contain hate speech? Respond with `hate speech` or `not hate speech`.'
    old_variants = YES_NO
    old_prompt_string = 'Does the sentence contain hate speech? Respond with `yes` or `no`.'


class AGNewsDataset(Dataset):
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


class AuthorIdDataset(Dataset):
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

    @classmethod
    def load(cls, local_dir: Path | None) -> loaders.Records:
        return loaders.load_author_id(cls.relative_path, local_dir, cls.max_sentence_length)

    @classmethod
    def query_split(cls, records: loaders.Records, use_validation_if_possible: bool) -> str:
        _warn_once('No real test data for author_id.')
        return 'test'


class TinySentimentDataset(Dataset):
    """260 movie-review sentences written for this project: runs offline, in minutes."""
    variants = binary_variants(['negative', 'positive'])


datasets: dict[str, type[Dataset]] = {
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


def dataset_class(name: str) -> type[Dataset]:
    """The registered class for `name`, or a UsageError listing the valid names."""
    if name not in datasets:
        raise UsageError(f"unknown dataset '{name}'; choose one of {', '.join(datasets)}")
    return datasets[name]
