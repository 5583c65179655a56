"""Curves and runs: against a hand computation from the stored logits of real runs of the
packaged model; loading runs from directories and wandb."""
import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from evaluation_runs import FLIP_AFTER, RUNS, N, hand_metrics

from icl import analysis
from icl.errors import UsageError


def curve(curves, variant, metric):
    return curves[(curves['variant'] == variant) & (curves['metric'] == metric)]


@pytest.mark.parametrize('choose_logits, invert', [(None, False), ('default', False), (None, True), ('flip', True)])
def test_curves_equal_a_hand_computation_from_the_logits(runs, run_dirs, choose_logits, invert):
    curves = analysis.curves(runs['halfway'].metrics(choose_logits, invert))
    for variant in ('default', 'flip'):
        hand = hand_metrics(run_dirs['halfway'], variant, choose_logits, invert)
        for metric, values in hand.items():
            got = curve(curves, variant, metric)
            assert got['position'].tolist() == list(range(N))
            np.testing.assert_allclose(got['mean'], values.mean(0), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(got['sem'], values.std(0, ddof=1) / np.sqrt(4), rtol=1e-6, atol=1e-9)
            assert got['n'].tolist() == [RUNS['halfway'][1]] * N


def test_invert_logits_turns_binary_accuracy_around(runs):
    own = runs['replacement'].metrics()
    inverted = runs['replacement'].metrics(invert_logits=True)
    np.testing.assert_array_equal(inverted['accuracy'], 1 - own['accuracy'])
    np.testing.assert_allclose(inverted['entropy'], own['entropy'])


def test_smoothing_is_the_original_convolution_of_the_mean_curve(runs, run_dirs):
    smoothed = analysis.curves(runs['default'].metrics(), smooth_n=3)
    hand = hand_metrics(run_dirs['default'], 'default')['log_lik']
    got = curve(smoothed, 'default', 'log_lik')
    np.testing.assert_allclose(got['mean'], np.convolve(hand.mean(0), np.ones(3) / 3, mode='valid'), rtol=1e-9)
    per_repetition = np.array([np.convolve(row, np.ones(3) / 3, mode='valid') for row in hand])
    np.testing.assert_allclose(got['sem'], per_repetition.std(0, ddof=1) / 2, rtol=1e-9)
    assert got['position'].tolist() == list(np.arange(1, N - 1, dtype=float))  # window centres


def test_shown_labels_differ_from_true_labels_exactly_where_labels_flip(runs, run_dirs):
    true = curve(analysis.curves(runs['halfway'].metrics()), 'default', 'accuracy')['mean'].to_numpy()
    shown = curve(analysis.curves(runs['halfway'].metrics(labels='shown')), 'default', 'accuracy')['mean'].to_numpy()
    np.testing.assert_allclose(shown[:FLIP_AFTER], true[:FLIP_AFTER])
    np.testing.assert_allclose(shown[FLIP_AFTER:], 1 - true[FLIP_AFTER:])
    hand = hand_metrics(run_dirs['halfway'], 'default', label='shown_label')['accuracy'].mean(0)
    np.testing.assert_allclose(shown, hand)


def test_bad_options_are_usage_errors(runs):
    with pytest.raises(UsageError, match="choose_logits='rating_1' is not a variant of this run; choose one of "
                                         "default, flip"):
        runs['halfway'].metrics(choose_logits='rating_1')
    with pytest.raises(UsageError, match="labels='flipped' is not valid; choose one of true, shown"):
        runs['halfway'].metrics(labels='flipped')


def test_runs_know_their_kind_and_where_labels_flip(runs):
    assert {name: run.kind for name, run in runs.items()} == {
        'default': 'default', 'random': 'random labels', 'replacement': 'default', 'halfway': 'flip halfway',
        'alternating': 'alternating flips'}
    assert runs['halfway'].change_points() == [FLIP_AFTER]
    assert runs['alternating'].change_points() == list(range(1, N))
    assert runs['default'].change_points() == []
    assert (runs['halfway'].name, runs['halfway'].num_examples, runs['halfway'].repetitions) == ('halfway', N, 4)


def test_halfway_flag_resolves_to_half_the_examples(runs):
    record = json.loads(json.dumps(runs['default'].record))
    record['config']['dataset']['config']['flip_labels_after_halfway'] = True
    assert dataclasses.replace(runs['default'], record=record).change_points() == [N // 2]


# ------------------------------------------------------------------ loading

def test_load_runs_gives_repeated_notes_distinct_names(run_dirs):
    runs = analysis.load_runs([run_dirs['default'], run_dirs['default'], run_dirs['random']])
    parent = run_dirs['default'].parent.name
    assert [run.name for run in runs] == [f'{parent}/default', f'{parent}/default #2', 'random']


def test_run_names_are_directory_names_without_the_time_stamp(run_dirs, tmp_path):
    for name in ('sst2-smollm2-135m-default-20260101-120000', 'sst2-smollm2-135m-default-20260102-090000', 'b-x'):
        shutil.copytree(run_dirs['default'], tmp_path / name)
    runs = analysis.load_runs([tmp_path / 'b-x', tmp_path / 'sst2-smollm2-135m-default-20260101-120000'])
    assert [run.name for run in runs] == ['b-x', 'sst2-smollm2-135m-default']
    both = analysis.load_runs([tmp_path / 'sst2-smollm2-135m-default-20260101-120000',
                               tmp_path / 'sst2-smollm2-135m-default-20260102-090000'])
    assert [run.name for run in both] == ['sst2-smollm2-135m-default-20260101-120000',
                                          'sst2-smollm2-135m-default-20260102-090000']  # not unique: the whole name


def test_a_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no run directory 'runs/nothing' \\(nor a wandb run path"):
        analysis.load_run('runs/nothing')
    (tmp_path / 'config.json').write_text('{}')
    with pytest.raises(UsageError, match='is not a run directory of this tool with a finished repetition '
                                         '\\(it lacks setup.json, results/part-\\*.parquet\\)'):
        analysis.load_run(tmp_path)


def test_a_wandb_path_without_an_api_key_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv('NETRC', str(tmp_path / 'none'))
    with pytest.raises(UsageError, match="'someone/llm/abc123' is not a local run directory, and reading it from "
                                         'wandb needs an API key'):
        analysis.load_run('someone/llm/abc123')
    with pytest.raises(UsageError, match='needs an API key'):
        analysis.load_run('https://wandb.ai/someone/llm/runs/abc123')


class FakeWandbFile:
    """What wandb.Api().run(path).files() yields: a name, a size and download(root, replace)."""

    def __init__(self, source, name):
        self.source, self.name, self.size = source, name, (source / name).stat().st_size
        self.downloads = 0

    def download(self, root, replace):
        target = Path(root) / self.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.source / self.name, target)
        self.downloads += 1


def test_a_wandb_run_is_downloaded_into_the_cache_once(run_dirs, monkeypatch, tmp_path):
    import wandb
    source = shutil.copytree(run_dirs['default'], tmp_path / 'uploaded')
    names = ['config.json', 'setup.json', 'output.log', 'wandb-metadata.json'] + [
        f'results/{p.name}' for p in sorted((source / 'results').glob('*.parquet'))]
    (source / 'output.log').write_text('not part of the run table\n')
    (source / 'wandb-metadata.json').write_text('{}\n')
    files = [FakeWandbFile(source, name) for name in names]
    requested = []

    class FakeApi:
        def __init__(self, timeout):
            pass

        def run(self, path):
            requested.append(path)
            return SimpleNamespace(files=lambda: files)

    monkeypatch.setattr(wandb, 'Api', FakeApi)
    monkeypatch.setenv('WANDB_API_KEY', 'x' * 40)
    monkeypatch.setenv('ICL_CACHE_DIR', str(tmp_path / 'cache'))
    run = analysis.load_run('https://wandb.ai/someone/llm/runs/abc123')
    assert requested == ['someone/llm/abc123']
    assert run.path == tmp_path / 'cache' / 'wandb-runs' / 'someone' / 'llm' / 'abc123'
    assert sorted(str(p.relative_to(run.path)) for p in run.path.rglob('*') if p.is_file()) == sorted(
        n for n in names if n.endswith(('.json', '.parquet')) and n != 'wandb-metadata.json')
    pd.testing.assert_frame_equal(run.table, analysis.load_run(source).table)
    analysis.load_run('someone/llm/abc123')  # again: nothing new to fetch
    assert [f.downloads for f in files] == [1, 1, 0, 0] + [1] * RUNS['default'][1]
