"""Which runs test which null hypothesis: runs are only ever compared within one group of
(dataset, model, examples per prompt), and a run no test uses is named with the reason.

Within a group: NH1 pairs the first default run with the first random-labels run (both with
the default names), NH2 takes every default run with several label-name variants, NH3 pairs
the first flip-halfway run with the first alternating run. Roles are read from the runs'
configs (analysis.RUN_KINDS).
"""
import dataclasses
from collections.abc import Sequence

import numpy as np

from icl import hypotheses
from icl.analysis import Run
from icl.errors import UsageError

TEST_METRICS = ('accuracy', 'log_lik')
Group = tuple[str, str, int]  # dataset, model, examples per prompt


def group_text(group: Group) -> str:
    return f'{group[0]}, {group[1]}, {group[2]} examples'


@dataclasses.dataclass
class Plan:
    """The runs of one group and the role each plays in the tests."""
    group: Group
    runs: list[Run]
    nh1: tuple[Run, Run] | None = None  # default, random labels
    nh2: list[Run] = dataclasses.field(default_factory=list)  # default runs with several variants
    nh3: tuple[Run, Run] | None = None  # flip halfway, alternating

    def used(self) -> set[str]:
        pairs = [*(self.nh1 or ()), *self.nh2, *(self.nh3 or ())]
        return {run.name for run in pairs}


def groups(runs: Sequence[Run]) -> dict[Group, list[Run]]:
    """Runs by (dataset, model, examples per prompt), in the order first seen."""
    grouped: dict[Group, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.group, []).append(run)
    return grouped


def _first(runs: Sequence[Run], kind: str, default_names: bool = False) -> Run | None:
    return next((run for run in runs if run.kind == kind and (not default_names or 'default' in run.variants)), None)


def plan_group(group: Group, runs: list[Run]) -> Plan:
    default, random = _first(runs, 'default', True), _first(runs, 'random labels', True)
    halfway, alternating = _first(runs, 'flip halfway'), _first(runs, 'alternating flips')
    return Plan(group, runs, nh1=(default, random) if default and random else None,
                nh2=[run for run in runs if run.kind == 'default' and 'default' in run.variants
                     and len(run.variants) > 1],
                nh3=(halfway, alternating) if halfway and alternating else None)


def why_unused(run: Run, plan: Plan) -> str:
    """Why no test of its group uses `run`."""
    where = f'in its group ({group_text(plan.group)})'
    kind = run.kind
    if kind in ('default', 'random labels') and 'default' not in run.variants:
        return f"{kind} run without the 'default' label-name variant: NH1 and NH2 compare the default names"
    if kind == 'random labels':
        return f"NH1 of its group uses '{plan.nh1[1].name}'" if plan.nh1 else \
            f'no default run (no label manipulation) {where} to compare with for NH1'
    if kind == 'default':
        nh1 = f"NH1 of its group uses '{plan.nh1[0].name}'" if plan.nh1 else f'no random-labels run {where} (NH1)'
        return f'{nh1}; one label-name variant only (NH2 needs several)'
    if kind in ('flip halfway', 'alternating flips'):
        other = 'alternating' if kind == 'flip halfway' else 'flip-halfway'
        if plan.nh3:
            return f"NH3 of its group uses '{plan.nh3[0 if kind == 'flip halfway' else 1].name}'"
        return f'no {other} run {where} to compare with for NH3'
    return 'its labels are manipulated in a way none of NH1-NH3 uses (e.g. replaced, reversed or shifted labels)'


def plan_runs(runs: Sequence[Run]) -> tuple[list[Plan], dict[str, str]]:
    """A plan per group, and {run name: why no test uses it}."""
    plans = [plan_group(group, members) for group, members in groups(runs).items()]
    unused = {run.name: why_unused(run, plan) for plan in plans for run in plan.runs if run.name not in plan.used()}
    return plans, unused


@dataclasses.dataclass
class Tests:
    """Every comparison the plans allow, the group of each, and a note for each test that could not run."""
    comparisons: list[hypotheses.Comparison]
    groups: list[Group]
    notes: list[str]


def tested_positions(plan: Plan, hypothesis: str, window: int) -> np.ndarray:
    """The in-context positions a hypothesis is tested at in this group (UsageError where it cannot be)."""
    if hypothesis == 'NH1':
        return hypotheses.late_positions(min(run.num_examples for run in plan.nh1), window)
    if hypothesis == 'NH2':
        return hypotheses.late_positions(plan.nh2[0].num_examples, window)
    return hypotheses.nh3_positions(*plan.nh3)


def _group_tests(plan: Plan, window: int, confidence: float) -> tuple[list[hypotheses.Comparison], list[str]]:
    calls = []  # (name, a function returning the comparisons of one metric)
    if plan.nh1:
        calls.append(('NH1', lambda m: [hypotheses.nh1_random_labels(*plan.nh1, m, window, confidence=confidence)]))
    for run in plan.nh2:
        calls.append(('NH2', lambda m, run=run: hypotheses.nh2_pretraining_preference(run, m, window,
                                                                                    confidence=confidence)))
    if plan.nh3:
        calls.append(('NH3', lambda m: hypotheses.nh3_equal_treatment(*plan.nh3, m, confidence=confidence)))
    comparisons, notes = [], []
    for name, call in calls:
        try:
            comparisons += [c for metric in TEST_METRICS for c in call(metric)]
        except UsageError as error:
            notes.append(f'{name} not tested ({group_text(plan.group)}): {error}.')
    return comparisons, notes


MISSING = {
    'NH1': 'needs a default run and a run with dataset.config.random_labels=True of the same dataset, model and '
           'examples per prompt',
    'NH2': 'needs a run without label manipulations and with several label-name variants (CLASS_NAMES=ALL or '
           'DEFAULT_AND_FLIP)',
    'NH3': 'needs a run that flips labels once (dataset.config.flip_labels_after) and one that alternates '
           '(dataset.config.flip_labels_multi=True) of the same dataset, model and examples per prompt',
}


def run_tests(plans: Sequence[Plan], window: int = 10, alpha: float = 0.05) -> Tests:
    """Every test the plans allow, for accuracy and log-likelihood, with (1 - alpha) intervals."""
    tests = Tests([], [], [])
    for plan in plans:
        comparisons, notes = _group_tests(plan, window, 1 - alpha)
        tests.comparisons += comparisons
        tests.groups += [plan.group] * len(comparisons)
        tests.notes += notes
    planned = {'NH1': any(p.nh1 for p in plans), 'NH2': any(p.nh2 for p in plans), 'NH3': any(p.nh3 for p in plans)}
    tests.notes += [f'{name} not tested: {MISSING[name]}.' for name, found in planned.items() if not found]
    return tests
