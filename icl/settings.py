"""The config unpacked once, at the edge, into frozen settings; each vocabulary of values in one place.

Torch-free, so the command line checks a config in milliseconds.
"""
import dataclasses
import os

from icl.errors import UsageError
from icl.prompts import LabelRule

AUTO = 'auto'
# The original's keys that nothing read (scoring generates no text): gone from the config, dropped from old records
UNREAD_KEYS = ('experiment.context_lengths', 'model.config.stop_sequences', 'dataset.config_to_model.max_new_tokens')
DTYPE_NAMES = ('float32', 'bfloat16', 'float16')  # model.dtype's choices besides 'auto'


def checked_dtype(value: str) -> str:
    """model.dtype as given, or a UsageError listing the choices."""
    if value != AUTO and value not in DTYPE_NAMES:
        raise UsageError(f"model.dtype='{value}' is not valid; choose {AUTO}, {', '.join(DTYPE_NAMES[:-1])} "
                         f'or {DTYPE_NAMES[-1]}')
    return value


def checked_batch_size(value: object) -> int | None:
    """model.batch_size as prompts per forward pass; None for 'auto' (scoring.Scorer decides)."""
    if value == AUTO:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise UsageError(f"model.batch_size={value!r} must be a positive integer or '{AUTO}'")


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """config.model, checked."""
    name: str
    dtype: str  # 'auto' or one of DTYPE_NAMES
    batch_size: int | None  # None: 'auto'
    calibrate: bool

    @classmethod
    def from_config(cls, config) -> 'ModelSettings':
        model = config['model']
        return cls(name=model['name'], dtype=checked_dtype(model['dtype']),
                   batch_size=checked_batch_size(model['batch_size']), calibrate=bool(model['calibrate']))


# ---------------------------------------------------------------- class names
CLASS_NAMES_ENV = 'CLASS_NAMES'  # the original's way to choose the variants; the default of dataset.class_names_mode
CLASS_NAMES_MODES = ('ALL', 'DEFAULT_ONLY', 'DEFAULT_AND_FLIP')
OLD_CLASS_NAMES_ENV = 'OLD_CLASS_NAMES'  # TRUE: the original's yes/no names; the default of dataset.old_class_names
OLD_CLASS_NAMES_VALUES = ('TRUE', 'FALSE')


CLASS_NAMES_MODE_KEY = 'dataset.class_names_mode'  # the config key whose default $CLASS_NAMES sets
ENV_DEFAULTS = {CLASS_NAMES_MODE_KEY: CLASS_NAMES_ENV, 'dataset.old_class_names': OLD_CLASS_NAMES_ENV}


def class_names_from_env() -> str:
    """$CLASS_NAMES (unset means ALL): the default of dataset.class_names_mode; any other value is an error."""
    mode = os.environ.get(CLASS_NAMES_ENV) or 'ALL'
    if mode not in CLASS_NAMES_MODES:
        # 'DEFAULT' is the original README's value
        why = ': the original tool treated it as ALL (every variant), DEFAULT_ONLY is probably meant' \
            if mode == 'DEFAULT' else ''
        raise UsageError(f"{CLASS_NAMES_ENV}='{mode}' is not valid{why}; use one of {', '.join(CLASS_NAMES_MODES)} "
                         '(or leave it unset for ALL)')
    return mode


def old_class_names_from_env() -> bool:
    """$OLD_CLASS_NAMES=TRUE (unset or FALSE: today's names): the default of dataset.old_class_names."""
    value = os.environ.get(OLD_CLASS_NAMES_ENV) or 'FALSE'
    if value not in OLD_CLASS_NAMES_VALUES:
        raise UsageError(f"{OLD_CLASS_NAMES_ENV}='{value}' is not valid; use TRUE (the original's yes/no class names "
                         'and prompts for mrpc, medical_questions_pairs, wnli, rte, hate_speech) or FALSE '
                         '(or leave it unset)')
    return value == 'TRUE'


def checked_class_names_mode(mode: str) -> str:
    if mode not in CLASS_NAMES_MODES:
        raise UsageError(f"{CLASS_NAMES_MODE_KEY}='{mode}' is not valid; use one of {', '.join(CLASS_NAMES_MODES)}")
    return mode


# ---------------------------------------------------------------- the dataset's settings
@dataclasses.dataclass(frozen=True)
class DataSettings:
    """config.dataset, flattened, and the seed: what the draws and the prompts of a run depend on
    (configs/default.py describes each key)."""
    name: str
    random_seed: int  # repetition r draws with random_seed + r
    class_names_mode: str
    old_class_names: bool
    fix_space_bug: bool
    num_test_samples: int
    num_prompt_examples: int
    use_validation_if_possible: bool
    reverse_labels: bool
    class_names: tuple[str, ...] | None
    answer_string: str | None
    prompt_string: str | None
    data_dir: str | None
    random_labels: bool
    flip_labels_after: int
    flip_labels_multi_lim: int
    flip_labels_after_halfway: bool
    flip_labels_multi: bool
    replace_labels_by: str
    replace_labels_until_step: int
    use_default_prompt: bool
    inputs_off_by_one: bool

    @classmethod
    def from_config(cls, config) -> 'DataSettings':
        """From a ConfigDict or the `config` of a config.json (results.upgraded_record: older ones too)."""
        dataset = config['dataset']
        data = dict(dataset['config'])
        del data['use_model_preds_as_labels']  # nothing reads it: validate() refuses True
        if data['class_names'] is not None:
            data['class_names'] = tuple(data['class_names'])
        return cls(name=dataset['name'], random_seed=config['random_seed'],
                   class_names_mode=dataset['class_names_mode'], old_class_names=dataset['old_class_names'],
                   fix_space_bug=dataset['fix_space_bug'], **data)

    @property
    def first_flipped(self) -> int:
        """flip_labels_after, or num_prompt_examples // 2 with flip_labels_after_halfway (-1: no flip)."""
        return self.num_prompt_examples // 2 if self.flip_labels_after_halfway else self.flip_labels_after

    def label_rule(self, num_classes: int) -> LabelRule:
        """The one constructor of a run's LabelRule (the prompts' labels, the analysis' flipped positions)."""
        return LabelRule(num_classes=num_classes, flip_labels_after=self.first_flipped,
                         flip_labels_multi=self.flip_labels_multi, flip_labels_multi_lim=self.flip_labels_multi_lim,
                         random_labels=self.random_labels, replace_labels_by=self.replace_labels_by,
                         replace_labels_until_step=self.replace_labels_until_step)
