"""Label log-probs at every position of a prompt from one forward pass (docs/behaviour.md#scoring).

Label tokens and answer positions come from the real tokenization of the text (character
offsets), so any tokenizer works. The forward pass computes the output layer only at the
answer positions and only for the class tokens, and moves only those logits to the CPU.
The Scorer runs many prompts through it: encoding, batching by length, halving the batch
on GPU out-of-memory, and counting prompts and tokens.
"""
import contextlib
import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch

from icl.errors import OutOfMemory, UsageError
from icl.probs import log_softmax
from icl.prompts import ExampleFormat, Prompt

PROBE_TEXT = 'A neutral sentence.'
MAX_AUTO_BATCH = 64  # first try of model.batch_size='auto' on a GPU


@dataclasses.dataclass
class LabelTokens:
    """The first in-context token of each class name (all variants' names, sorted)."""
    classes: list[str]
    ids: list[int]
    tokens: list[str]
    multi_token: list[str]  # names longer than one token: only their first token is scored

    def index(self, names: Sequence[str]) -> list[int]:
        """Columns of `names` in the all-classes order."""
        return [self.classes.index(name) for name in names]

    def check_variant(self, variant: str, names: Sequence[str]) -> None:
        """Two classes of one variant must not share their first token."""
        first = {}
        for name in names:
            token_id = self.ids[self.classes.index(name)]
            if token_id in first:
                token = self.tokens[self.classes.index(name)]
                raise UsageError(f"variant '{variant}': classes '{first[token_id]}' and '{name}' share their "
                                 f"first token {token!r}, so the model's prediction cannot tell them apart")
            first[token_id] = name


def encode(tokenizer, text: str) -> tuple[list[int], np.ndarray]:
    """Token ids and [start, end) character spans (special tokens get empty spans)."""
    encoding = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    ids = encoding['input_ids']
    spans = np.array(encoding['offset_mapping'], dtype=np.int64).reshape(len(ids), 2)
    special = set(tokenizer.all_special_ids)
    empty = np.array([token in special for token in ids])
    spans[empty] = -1  # never matched as text
    return ids, spans


def answer_positions(spans: np.ndarray, answer_ends: Sequence[int]) -> np.ndarray:
    """Index of the token ending each '<answer>:', whose next-token logits predict the label."""
    starts, ends = spans[:, 0], spans[:, 1]
    text_tokens = np.flatnonzero(ends > starts)
    positions = []
    for char_end in answer_ends:
        before = text_tokens[starts[text_tokens] < char_end]
        if len(before) == 0:
            raise ValueError(f'no token before character {char_end}')
        position = before[-1]
        if ends[position] != char_end:
            raise UsageError(f"the tokenizer merges the ':' of the answer string with the text after it "
                             f'(token spans {starts[position]}..{ends[position]}, answer ends at {char_end}); '
                             'labels cannot be scored at a clean position')
        positions.append(position)
    return np.array(positions, dtype=np.int64)


def probe_features(example: ExampleFormat) -> str | list[str]:
    return PROBE_TEXT if isinstance(example.text_string, str) else [PROBE_TEXT] * len(example.text_string)


def label_tokens(tokenizer, example: ExampleFormat, classes: Sequence[str]) -> LabelTokens:
    """First in-context token of each class name, read from a real example in the dataset's format."""
    ids, tokens, multi = [], [], []
    for name in classes:
        head = example.head(probe_features(example))
        token_ids, spans = encode(tokenizer, f'{head} {name}\n\n')
        position = answer_positions(spans, [len(head)])[0]
        label_end = len(head) + 1 + len(name)
        in_label = [i for i in range(position + 1, len(token_ids))
                    if spans[i, 0] < label_end and spans[i, 1] > spans[i, 0]]
        ids.append(token_ids[position + 1])
        tokens.append(tokenizer.convert_ids_to_tokens(token_ids[position + 1]))
        if len(in_label) > 1:
            multi.append(name)
    if multi:
        logging.warning('Only the first token is scored for multi-token class names: %s', ', '.join(multi))
    return LabelTokens(classes=list(classes), ids=ids, tokens=tokens, multi_token=multi)


def output_device(model) -> torch.device:
    return model.get_input_embeddings().weight.device


@torch.inference_mode()
def class_logits(model, prompts_ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]],
                 class_ids: Sequence[int]) -> list[np.ndarray]:
    """Logits of `class_ids` at `positions` of each prompt (float32), from one batched forward pass.

    Prompts are right-padded and no attention mask is passed: with causal attention no real
    token sees a pad and position ids are unchanged, so the numbers equal one prompt at a time
    (up to rounding: kernels split a longer sequence differently), and SDPA takes its causal
    kernel path, which skips the masked blocks, instead of a dense mask.
    The output layer runs only at `positions` and only for the class tokens' rows (hooks on it,
    so whatever the model applies to its output afterwards, such as soft-capping, still applies).
    """
    longest = max(len(ids) for ids in prompts_ids)
    widest = max(len(p) for p in positions)
    input_ids = torch.zeros((len(prompts_ids), longest), dtype=torch.long)
    gather = torch.zeros((len(prompts_ids), widest), dtype=torch.long)
    for row, (ids, pos) in enumerate(zip(prompts_ids, positions)):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        gather[row, :len(pos)] = torch.as_tensor(np.asarray(pos))
        gather[row, len(pos):] = gather[row, len(pos) - 1]
    head = model.get_output_embeddings()
    with class_rows_only(head, gather, list(class_ids)):
        logits = model(input_ids=input_ids.to(output_device(model)), use_cache=False).logits
    if logits.shape[1:] != (widest, len(class_ids)):
        raise RuntimeError(f'output layer gave {tuple(logits.shape)}, expected [*, {widest}, {len(class_ids)}]')
    selected = logits.float().cpu().numpy()
    return [selected[row, :len(pos)] for row, pos in enumerate(positions)]


@contextlib.contextmanager
def class_rows_only(head: torch.nn.Module, gather: torch.Tensor, class_ids: list[int]):
    """Make the output layer `head` compute logits [batch, positions, classes] at the gathered positions.

    A float weight's class rows are multiplied in float32 (bf16 logits near 20 round to steps of
    0.125) and the full-vocabulary product is skipped; a quantised layer computes its own output.
    """
    exact = head.weight.is_floating_point()
    kept = []

    def keep_positions(module, args):
        hidden = args[0]
        hidden = torch.gather(hidden, 1, gather.to(hidden.device)[..., None].expand(-1, -1, hidden.shape[-1]))
        if not exact:
            return (hidden, *args[1:])
        kept.append(hidden)
        return (hidden[:, :0], *args[1:])  # nothing left for the layer's own full-vocabulary product

    def class_logits_of(module, args, output):
        rows = torch.as_tensor(class_ids, device=module.weight.device)
        if not exact:
            return output[..., rows.to(output.device)]
        bias = module.bias[rows].float() if getattr(module, 'bias', None) is not None else None
        return torch.nn.functional.linear(kept.pop().to(module.weight.device, torch.float32),
                                          module.weight[rows].float(), bias)

    handles = [head.register_forward_pre_hook(keep_positions), head.register_forward_hook(class_logits_of)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def prior_texts(example: ExampleFormat) -> list[str]:
    """Three content-free inputs (the original's; a two-feature dataset's field names are
    rendered as a Python list, and the trailing spaces are kept: a **quirk**)."""
    text_string, answer = example.text_string, example.answer_string
    text_string = text_string if isinstance(text_string, str) else list(text_string)  # shown as the original's list
    return [f'{answer}: ', f"{text_string}: 'A neutral sentence.'\n{answer}: ", f"{text_string}: .'\n{answer}: "]


def prior_logits(model, tokenizer, example: ExampleFormat, class_ids: Sequence[int]) -> np.ndarray:
    """All classes' logits at the last token of each content-free input: [3, num_classes]."""
    encoded = [encode(tokenizer, text)[0] for text in prior_texts(example)]
    rows = class_logits(model, encoded, [[len(ids) - 1] for ids in encoded], class_ids)
    return np.concatenate(rows, 0)


def prior_log_probs(prior_all: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """A variant's prior: mean over the content-free inputs of the log-softmax over its classes."""
    return log_softmax(prior_all[:, columns]).mean(0)


def resolve_batch_size(requested: int | None) -> int | None:
    """Prompts per forward pass: an int as given; None (model.batch_size='auto') -> None on a GPU (the Scorer
    finds the largest batch that fits) and 1 on the CPU, where batching does not pay (README, benchmark)."""
    if requested is None:
        return None if torch.cuda.is_available() else 1
    return requested


class Scorer:
    """Scores prompts with a loaded model; counts tokens and checks label tokens.

    `batch_size` prompts share a forward pass; None (model.batch_size='auto' on a GPU) starts at
    MAX_AUTO_BATCH and halves on out-of-memory, keeping the size that fits for the rest of the run.
    """

    def __init__(self, model, tokenizer, label_tokens: LabelTokens, context: int, batch_size: int | None):
        self.model, self.tokenizer, self.label_tokens = model, tokenizer, label_tokens
        self.context, self.auto_batch = context, batch_size is None
        self.batch_size = MAX_AUTO_BATCH if batch_size is None else batch_size
        self.tokens = self.prompts = 0
        self._label_ids = dict(zip(label_tokens.classes, label_tokens.ids))
        self._mismatch_warned = False

    def positions(self, prompt: Prompt) -> tuple[list[int], np.ndarray]:
        ids, spans = encode(self.tokenizer, prompt.text)
        if len(ids) > self.context:
            raise UsageError(f'a prompt has {len(ids)} tokens but the model attends to {self.context}; '
                             'use fewer examples')
        positions = np.append(answer_positions(spans, prompt.answer_ends), len(ids) - 1)
        self._check_label_tokens(prompt, ids, positions)
        return ids, positions

    def _check_label_tokens(self, prompt: Prompt, ids: list[int], positions: np.ndarray) -> None:
        for text, position in zip(prompt.shown_texts, positions):
            expected = self._label_ids.get(text)
            if expected is not None and ids[position + 1] != expected and not self._mismatch_warned:
                self._mismatch_warned = True
                logging.warning("label %r is tokenised as %r in a prompt, not %r as in setup.json", text,
                                self.tokenizer.convert_ids_to_tokens(ids[position + 1]),
                                self.tokenizer.convert_ids_to_tokens(expected))

    def score(self, prompts: list[Prompt], progress=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(token positions, class logits [positions, all_classes]) per prompt, in order."""
        encoded = [self.positions(p) for p in prompts]
        out = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i][0]))  # similar lengths batch well
        start = 0
        while start < len(order):
            chunk = order[start:start + self.batch_size]
            logits = self._class_logits([encoded[i] for i in chunk])
            if logits is None:
                continue  # out of GPU memory: the batch was halved, retry
            for i, values in zip(chunk, logits):
                out[i] = (encoded[i][1], values)
                self.tokens += len(encoded[i][0])
            self.prompts += len(chunk)
            start += len(chunk)
            if progress is not None:
                progress.update(len(chunk))
        return out

    def _class_logits(self, batch: list[tuple[list[int], np.ndarray]]) -> list[np.ndarray] | None:
        """Class logits of one batch; None if the automatic batch size ran out of GPU memory (then halved)."""
        try:
            return class_logits(self.model, [ids for ids, _ in batch], [pos for _, pos in batch],
                                self.label_tokens.ids)
        except torch.cuda.OutOfMemoryError:
            if len(batch) == 1:
                raise OutOfMemory(f'a prompt of {len(batch[0][0])} tokens does not fit in GPU memory; use fewer '
                                 'examples, more GPUs or a -8bit model') from None
            if not self.auto_batch:
                raise OutOfMemory(f'model.batch_size={self.batch_size} does not fit in GPU memory; '
                                 "use a smaller one or 'auto'") from None
        # Outside the except block, so the failed pass's tensors are freed before the retry.
        self.batch_size = len(batch) // 2
        torch.cuda.empty_cache()
        logging.info('Out of GPU memory at %d prompts per pass; using %d from now on', len(batch), self.batch_size)
        return None
