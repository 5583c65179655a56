"""example_evaluation.ipynb: committed without outputs, and executes headless (papermill) on real runs."""
import nbformat
import papermill

from icl import analysis, hypotheses
from icl.config import REPO_ROOT

NOTEBOOK = REPO_ROOT / 'example_evaluation.ipynb'
PARAMETERS = ('default_run', 'random_run', 'replacement_run', 'halfway_run', 'alternating_run')


def execute(parameters: dict, out) -> nbformat.NotebookNode:
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=parameters, cwd=str(REPO_ROOT),
                               kernel_name='python3', progress_bar=False)
    return nbformat.read(out, as_version=4)


def outputs(notebook):
    return [output for cell in notebook.cells if cell.cell_type == 'code' for output in cell.outputs]


def printed(notebook) -> str:
    return ''.join(output.get('text', '') for output in outputs(notebook) if output.output_type == 'stream')


def summary_html(notebook) -> str:
    return notebook.cells[-1].outputs[-1].data['text/html']


def test_committed_notebook_is_clean_and_parametrised():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == 'code']
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert code[0].metadata.get('tags') == ['parameters']
    assigned = [line.split('=')[0].strip() for line in code[0].source.splitlines() if '=' in line]
    assert assigned[:len(PARAMETERS)] == list(PARAMETERS)


def test_notebook_runs_every_section_on_real_runs(run_dirs, tmp_path):
    parameters = {f'{name}_run': str(path) for name, path in run_dirs.items()}
    notebook = execute({**parameters, 'study_root': str(run_dirs['default'].parent)}, tmp_path / 'out.ipynb')
    assert not [o for o in outputs(notebook) if o.output_type == 'error']
    figures = [o for o in outputs(notebook) if 'image/png' in o.get('data', {})]
    assert len(figures) == 7  # default vs random, replacement, halfway, alternating, NH3; study: verdicts, curves
    text = printed(notebook)
    assert 'skipped' not in text.lower()
    assert 'equal label counts at positions [8]' in text
    assert '5 runs in 1 groups: tiny_sentiment, smollm2-135m, 10 examples' in text
    runs = {name: analysis.load_run(path) for name, path in run_dirs.items()}
    nh1 = hypotheses.nh1_random_labels(runs['default'], runs['random'], 'log_lik', window=10)
    assert (f'NH1 log_lik: default: default is ahead of random: default by {abs(nh1.difference):.3g} nats of '
            f'log-likelihood over positions 5-9 (p = {nh1.p_value:.2g}, Holm p = ') in text
    html = summary_html(notebook)
    assert [html.count(f'<td>NH{i}</td>') for i in (1, 2, 3)] == [2, 2, 4]
    assert html.count('<td>cannot reject at alpha = 0.05 with n = 4; need &gt;= 6 repetitions</td>') == 6
    assert f'<td>{nh1.mean_a:.6f}</td>' in html and f'<td>{nh1.difference:.6f}</td>' in html


def test_a_section_whose_run_is_none_is_skipped_with_a_note(run_dirs, tmp_path):
    parameters = {f'{name}_run': str(path) for name, path in run_dirs.items()}
    parameters.update(random_run=None, replacement_run=None)
    notebook = execute(parameters, tmp_path / 'out.ipynb')
    text = printed(notebook)
    assert 'random_run: skipped, no run given' in text
    assert 'Skipped: needs default_run and random_run.' in text
    assert 'Skipped: needs replacement_run with several label-name variants' in text
    assert len([o for o in outputs(notebook) if 'image/png' in o.get('data', {})]) == 3
    html = summary_html(notebook)
    assert [html.count(f'<td>NH{i}</td>') for i in (1, 2, 3)] == [0, 0, 4]
