"""Scoring: selective logits equal a plain forward, a padded batch equals one prompt at a time,
the calibration prior, the Scorer's batching, and bf16 against fp32 on real SST-2 prompts."""
import re
import types

import numpy as np
import pytest
import torch
from benchmark_modules import benchmark_module

from icl import datasets, models, scoring
from icl.config import base_config
from icl.errors import OutOfMemory, UsageError
from icl.probs import log_softmax
from icl.settings import DataSettings

tolerances = benchmark_module('tolerances')

POSITIVE, NEGATIVE = 2731, 4633  # 'Ġpositive', 'Ġnegative' in SmolLM2's vocabulary (NOTES.md)
CLASS_IDS = [POSITIVE, NEGATIVE, 17]
FP32_ATOL = 1e-4  # same computation, different kernels or batch shapes


@pytest.fixture(scope='module')
def sst2_config(real_data_dir):
    config = base_config()
    config.dataset.name = 'sst2'
    config.dataset.config.data_dir = str(real_data_dir)
    return config


def sst2_prompt(config, repetition: int, examples: int, names: list[str] | None = None):
    config = config.copy_and_resolve_references()
    config.dataset.config.num_prompt_examples = examples
    return datasets.repetition(DataSettings.from_config(config), repetition, names).query_prompts()[0][1]


def ids_and_positions(tokenizer, prompt) -> tuple[list[int], np.ndarray]:
    ids, spans = scoring.encode(tokenizer, prompt.text)
    return ids, np.append(scoring.answer_positions(spans, prompt.answer_ends), len(ids) - 1)


def full_forward(model, ids: list[int], positions: np.ndarray) -> np.ndarray:
    """The plain way: every position's full-vocabulary logits, then pick."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    return logits[torch.as_tensor(positions)][:, CLASS_IDS].float().numpy()


def test_class_logits_equal_a_full_logits_forward(smollm2_fp32, smollm2_tokenizer, sst2_config):
    ids, positions = ids_and_positions(smollm2_tokenizer, sst2_prompt(sst2_config, 0, 8))
    [selected] = scoring.class_logits(smollm2_fp32, [ids], [positions], CLASS_IDS)
    assert selected.shape == (9, 3)
    np.testing.assert_allclose(selected, full_forward(smollm2_fp32, ids, positions), atol=FP32_ATOL)


def test_padded_batch_equals_one_prompt_at_a_time(smollm2_fp32, smollm2_tokenizer, sst2_config):
    prompts = [sst2_prompt(sst2_config, r, n) for r, n in [(1, 6), (2, 10), (3, 3)]]
    encoded = [ids_and_positions(smollm2_tokenizer, prompt) for prompt in prompts]
    assert len({len(ids) for ids, _ in encoded}) == 3  # right pads of different lengths
    batched = scoring.class_logits(smollm2_fp32, [ids for ids, _ in encoded], [pos for _, pos in encoded], CLASS_IDS)
    assert [b.shape for b in batched] == [(7, 3), (11, 3), (4, 3)]
    for (ids, positions), values in zip(encoded, batched):
        np.testing.assert_allclose(values, full_forward(smollm2_fp32, ids, positions), atol=FP32_ATOL)


def test_attention_takes_the_causal_kernel_path(smollm2_fp32, smollm2_tokenizer, sst2_config, monkeypatch):
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        calls.append((kwargs.get('attn_mask'), kwargs.get('is_causal')))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, 'scaled_dot_product_attention', recording)
    encoded = [ids_and_positions(smollm2_tokenizer, sst2_prompt(sst2_config, r, n)) for r, n in [(0, 3), (1, 5)]]
    scoring.class_logits(smollm2_fp32, [ids for ids, _ in encoded], [pos for _, pos in encoded], CLASS_IDS)
    assert len(calls) == smollm2_fp32.config.num_hidden_layers
    assert all(mask is None and causal is True for mask, causal in calls)


def test_output_layer_never_computes_vocabulary_logits(smollm2_fp32, smollm2_tokenizer, sst2_config):
    shapes = []
    head = smollm2_fp32.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, output: shapes.append(tuple(output.shape)))
    try:
        ids, positions = ids_and_positions(smollm2_tokenizer, sst2_prompt(sst2_config, 0, 5))
        scoring.class_logits(smollm2_fp32, [ids], [positions], CLASS_IDS)
    finally:
        handle.remove()
    assert shapes == [(1, 0, smollm2_fp32.config.vocab_size)]  # its own product ran on no position


def test_quantised_output_layer_computes_its_own_logits(smollm2_fp32, smollm2_tokenizer, sst2_config, monkeypatch):
    # An 8-bit output layer has an integer weight: its own forward runs at the positions, then columns are picked.
    head = smollm2_fp32.get_output_embeddings()
    monkeypatch.setattr(head.weight, 'is_floating_point', lambda: False)
    ids, positions = ids_and_positions(smollm2_tokenizer, sst2_prompt(sst2_config, 0, 4))
    [selected] = scoring.class_logits(smollm2_fp32, [ids], [positions], CLASS_IDS)
    np.testing.assert_allclose(selected, full_forward(smollm2_fp32, ids, positions), atol=FP32_ATOL)


def test_prior_texts_are_the_originals():
    one = types.SimpleNamespace(text_string='Sentence', answer_string='Answer')
    assert scoring.prior_texts(one) == ['Answer: ', "Sentence: 'A neutral sentence.'\nAnswer: ",
                                        "Sentence: .'\nAnswer: "]
    two = types.SimpleNamespace(text_string=['Sentence 1', 'Sentence 2'], answer_string='Label')
    assert scoring.prior_texts(two)[1] == "['Sentence 1', 'Sentence 2']: 'A neutral sentence.'\nLabel: "


def test_prior_is_the_mean_log_softmax_at_the_last_token(smollm2_fp32, smollm2_tokenizer):
    data = types.SimpleNamespace(text_string='Sentence', answer_string='Answer')
    prior_all = scoring.prior_logits(smollm2_fp32, smollm2_tokenizer, data, CLASS_IDS)
    expected = []
    for text in scoring.prior_texts(data):
        ids = smollm2_tokenizer(text)['input_ids']
        expected.append(full_forward(smollm2_fp32, ids, np.array([len(ids) - 1]))[0])
    np.testing.assert_allclose(prior_all, np.array(expected), atol=FP32_ATOL)
    columns = [1, 0]  # a variant [negative, positive]
    probs = np.exp(np.array(expected)[:, columns])
    manual = np.log(probs / probs.sum(1, keepdims=True)).mean(0)
    np.testing.assert_allclose(scoring.prior_log_probs(prior_all, columns), manual, atol=1e-5)


def make_scorer(model, tokenizer, config, batch_size):
    settings = DataSettings.from_config(config)
    label_tokens = scoring.label_tokens(tokenizer, datasets.prompt_format(settings).example,
                                        datasets.all_classes(settings))
    return scoring.Scorer(model, tokenizer, label_tokens, 8192, batch_size)


def short_prompts(config) -> list:
    return [sst2_prompt(config, r, n) for r, n in enumerate([4, 2, 6, 3, 5, 2, 4])]


def test_scorer_batches_keep_prompt_order_and_values(smollm2_fp32, smollm2_tokenizer, sst2_config):
    prompts = short_prompts(sst2_config)
    one = make_scorer(smollm2_fp32, smollm2_tokenizer, sst2_config, 1)
    three = make_scorer(smollm2_fp32, smollm2_tokenizer, sst2_config, 3)
    singles, batched = one.score(prompts), three.score(prompts)
    for prompt, (pos_a, a), (pos_b, b) in zip(prompts, singles, batched):
        assert len(pos_a) == prompt.num_examples + 1
        np.testing.assert_array_equal(pos_a, pos_b)
        np.testing.assert_allclose(a, b, atol=FP32_ATOL)
    tokens = sum(len(smollm2_tokenizer(p.text)['input_ids']) for p in prompts)
    assert (three.prompts, three.tokens) == (7, tokens)


class FakeOutOfMemory:
    """scoring.class_logits that runs out of GPU memory above `limit` prompts per pass."""

    def __init__(self, limit: int):
        self.limit, self.sizes, self.real = limit, [], scoring.class_logits

    def __call__(self, model, prompts_ids, positions, class_ids):
        self.sizes.append(len(prompts_ids))
        if len(prompts_ids) > self.limit:
            raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return self.real(model, prompts_ids, positions, class_ids)


def test_auto_batch_halves_on_out_of_memory_and_keeps_the_size(smollm2_fp32, smollm2_tokenizer, sst2_config,
                                                               monkeypatch):
    prompts = short_prompts(sst2_config)
    reference = make_scorer(smollm2_fp32, smollm2_tokenizer, sst2_config, 1).score(prompts)
    fake = FakeOutOfMemory(limit=3)
    monkeypatch.setattr(scoring, 'class_logits', fake)
    auto = make_scorer(smollm2_fp32, smollm2_tokenizer, sst2_config, None)
    assert auto.batch_size == scoring.MAX_AUTO_BATCH
    scored = auto.score(prompts)
    assert fake.sizes == [7, 3, 3, 1]  # all 7 at once fail; half of 7 fits
    assert auto.batch_size == 3 and auto.prompts == 7
    for (_, a), (_, b) in zip(reference, scored):
        np.testing.assert_allclose(a, b, atol=FP32_ATOL)
    fake.sizes.clear()
    auto.score(prompts)  # remembered for the rest of the run
    assert fake.sizes == [3, 3, 1]


def test_out_of_memory_with_a_fixed_batch_or_one_prompt_is_a_resource_error(smollm2_fp32, smollm2_tokenizer,
                                                                            sst2_config, monkeypatch):
    prompts = short_prompts(sst2_config)[:2]
    monkeypatch.setattr(scoring, 'class_logits', FakeOutOfMemory(limit=1))
    with pytest.raises(OutOfMemory, match=r"model.batch_size=2 does not fit in GPU memory; .*'auto'"):
        make_scorer(smollm2_fp32, smollm2_tokenizer, sst2_config, 2).score(prompts)
    monkeypatch.setattr(scoring, 'class_logits', FakeOutOfMemory(limit=0))
    with pytest.raises(OutOfMemory, match=r'a prompt of \d+ tokens does not fit in GPU memory') as error:
        make_scorer(smollm2_fp32, smollm2_tokenizer, sst2_config, None).score(prompts)
    assert not isinstance(error.value, UsageError)  # the command was right: exit 1, not 2


def test_out_of_memory_stops_the_run_with_one_line_exit_1_and_it_resumes(change_labels, tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY')
    monkeypatch.setenv('WANDB_MODE', 'disabled')
    real = scoring.class_logits
    calls = []

    def priors_fit_prompts_do_not(*args):  # the first pass is the content-free prior's
        calls.append(len(args[1]))
        if len(calls) > 1:
            raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return real(*args)
    monkeypatch.setattr(scoring, 'class_logits', priors_fit_prompts_do_not)
    run = tmp_path / 'run'
    argv = ['change_labels.py', '--n_repeats=2', '--dataset.config.num_prompt_examples=3', f'--workdir={run}']
    assert change_labels.run_command(argv) == 1
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert re.fullmatch(r'error: a prompt of \d+ tokens does not fit in GPU memory; use fewer examples, more GPUs or '
                        rf'a -8bit model: 0 of 2 repetitions are saved in {re.escape(str(run))}; rerun the same '
                        r'command to resume', err.splitlines()[-1])
    monkeypatch.setattr(scoring, 'class_logits', real)
    assert change_labels.run_command(argv) == 0  # resumed with more memory
    assert sorted(p.name for p in (run / 'results').iterdir()) == ['part-000000.parquet', 'part-000001.parquet']


def test_resolve_batch_size(monkeypatch):
    assert scoring.resolve_batch_size(4) == 4
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert scoring.resolve_batch_size(None) == 1  # batching does not pay on the CPU (README)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert scoring.resolve_batch_size(None) is None  # the Scorer searches


@pytest.fixture(scope='module')
def smollm2_bf16(smollm2_spec):
    return models.load_model(smollm2_spec, torch.bfloat16)


def test_bf16_label_log_probs_and_accuracy_match_fp32(smollm2_fp32, smollm2_bf16, smollm2_tokenizer, sst2_config):
    variants = datasets.variants_for(DataSettings.from_config(sst2_config))
    jobs = [(names, sst2_prompt(sst2_config, r, 16, names)) for r in range(4)
            for names in (variants['default'], variants['flip'])]
    fp32 = make_scorer(smollm2_fp32, smollm2_tokenizer, sst2_config, 1)
    bf16 = make_scorer(smollm2_bf16, smollm2_tokenizer, sst2_config, 1)
    diffs, same, correct = [], [], {'fp32': [], 'bf16': []}
    prompts = [prompt for _, prompt in jobs]
    for (names, prompt), (_, a), (_, b) in zip(jobs, fp32.score(prompts), bf16.score(prompts)):
        columns = fp32.label_tokens.index(names)
        la, lb = log_softmax(a[:, columns].astype(np.float64)), log_softmax(b[:, columns].astype(np.float64))
        diffs.append(np.abs(la - lb).max(1))
        same.append(la.argmax(1) == lb.argmax(1))
        correct['fp32'].append(la[:-1].argmax(1) == prompt.true_labels)
        correct['bf16'].append(lb[:-1].argmax(1) == prompt.true_labels)
    diffs, same = np.concatenate(diffs), np.concatenate(same)
    assert diffs.max() <= tolerances.BF16_LOG_PROB_TOLERANCE
    assert diffs.mean() <= tolerances.BF16_LOG_PROB_TOLERANCE / 4
    assert same.mean() >= tolerances.BF16_ARGMAX_AGREEMENT
    curve_fp32, curve_bf16 = np.mean(correct['fp32'], 0), np.mean(correct['bf16'], 0)  # accuracy per position
    assert np.abs(curve_fp32 - curve_bf16).mean() <= 1 - tolerances.BF16_ARGMAX_AGREEMENT
    assert not np.isclose(diffs.max(), 0)  # the two really are different precisions
