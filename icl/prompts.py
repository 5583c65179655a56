"""Prompt text and in-context label manipulations (docs/behaviour.md#prompts, #labels), as pure functions.

The format is the original's, byte for byte: an example is
`Sentence: '<text>' \\nAnswer: <label>` (two-feature datasets:
`Sentence 1: '<a>'\\nSentence 2: '<b>' \\nAnswer: <label>`), each followed by a blank
line; the query ends `\\nAnswer:` (or `\\nAnswer: ` without the space-bug fix).
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Features = str | Sequence[str]


@dataclass(frozen=True)
class ExampleFormat:
    """How one example is written: its field names and the answer string."""
    text_string: str | tuple[str, ...]  # 'Sentence', or one name per feature
    answer_string: str = 'Answer'
    fix_space_bug: bool = True

    def head(self, features: Features) -> str:
        """The example up to and including '<answer>:', where the label's token is predicted."""
        if isinstance(self.text_string, str):
            body = f"{self.text_string}: '{features}'"
        else:
            body = '\n'.join(f"{name}: '{value}'" for name, value in zip(self.text_string, features))
        return f'{body} \n{self.answer_string}:'

    def example(self, features: Features, label: str) -> str:
        return f'{self.head(features)} {label}'

    def query(self, features: Features) -> str:
        return self.head(features) if self.fix_space_bug else self.head(features) + ' '


@dataclass(frozen=True)
class LabelRule:
    """Which label each in-context example shows (the original's order of checks)."""
    num_classes: int
    flip_labels_after: int = -1
    flip_labels_multi: bool = False
    flip_labels_multi_lim: int = 10**19
    random_labels: bool = False
    replace_labels_by: str = ''
    replace_labels_until_step: int = -1

    def flipped(self, i: int) -> bool:
        if self.flip_labels_after == -1 or i > self.flip_labels_multi_lim:
            return False
        if self.flip_labels_multi:
            return (i // self.flip_labels_after) % 2 == 1
        return i >= self.flip_labels_after

    def flips(self, num_examples: int) -> list[bool]:
        """Per in-context example: does it show a flipped label?"""
        return [self.flipped(i) for i in range(num_examples)]

    def replaced(self, i: int) -> bool:
        return not (self.replace_labels_until_step != -1 and i >= self.replace_labels_until_step)

    def shown(self, i: int, label: int, random_label: Callable[[], int]) -> tuple[int, str | None]:
        """(label index shown, literal replacement text or None) for example `i`."""
        if self.flipped(i):
            label = (label + 1) % self.num_classes  # flips binary labels, rotates multi-class ones
        replace = self.replaced(i)
        if self.random_labels and replace:
            label = random_label()
        if self.replace_labels_by and replace:
            return label, self.replace_labels_by
        return label, None


def change_points(flipped: Sequence[bool]) -> list[int]:
    """First example of each stretch of flipped or unflipped labels, after the first."""
    return [i for i in range(1, len(flipped)) if flipped[i] != flipped[i - 1]]


def stretches(positions: Sequence[int]) -> list[tuple[int, int]]:
    """(first, last) of each run of consecutive positions, in order: [2, 3, 4, 9] -> [(2, 4), (9, 9)]."""
    found = []
    for position in sorted(int(p) for p in positions):
        if found and position == found[-1][1] + 1:
            found[-1] = (found[-1][0], position)
        else:
            found.append((position, position))
    return found


def positions_text(positions: Sequence[int]) -> str:
    """'2, 4, 6' or '10-19' or '0-9, 20-29': consecutive positions as ranges; the first 8 ranges, then a count
    (the plan's and the report's way to name positions)."""
    if not len(positions):
        return 'none'
    ranges = [str(first) if first == last else f'{first}-{last}' for first, last in stretches(positions)]
    shown = ', '.join(ranges[:8])
    return shown if len(ranges) <= 8 else f'{shown}, ... ({len(positions)} positions)'


@dataclass
class Prompt:
    """A few-shot prompt and where each in-context answer sits in its text."""
    text: str
    answer_ends: list[int] = field(default_factory=list)  # char offset right after each example's '<answer>:'
    train_indices: list[int] = field(default_factory=list)  # training row of each example's label
    true_labels: list[int] = field(default_factory=list)  # that row's label, before any manipulation
    shown_labels: list[int] = field(default_factory=list)  # label index after flips / random draws
    shown_texts: list[str] = field(default_factory=list)  # the text written after '<answer>: '

    @property
    def num_examples(self) -> int:
        return len(self.answer_ends)


def prompt_prefix(default_prompt: str | None, prompt_string: str | None) -> str:
    """The dataset's instruction and/or the user's prompt string, joined by a newline."""
    return '\n'.join(p for p in (default_prompt, prompt_string) if p)


def trigger_flip_prompt(class_names: Sequence[str]) -> str:
    """What prompt_string='TRIGGER_FLIP' expands to: each name means the next one."""
    n = len(class_names)
    pairs = ' and '.join(f'`{class_names[i]}` means `{class_names[(i + 1) % n]}`' for i in range(n))
    return f'In the following, {pairs}.'


def rotated(names: Sequence[str]) -> list[str]:
    """reverse_labels: label i is written as names[(i + 1) % n]."""
    return [names[(i + 1) % len(names)] for i in range(len(names))]
