"""The run directory's files as icl/results.py writes them: atomic writes under names unique per
process, and parts that carry the identity of their run and repetition (no model needed)."""
import errno
import json
import os
import re

import pyarrow.parquet as pq
import pytest

from icl import results

IDENTITY = 'f' * 64


def rows(repetition: int) -> list[dict]:
    return [{'repetition': repetition, 'variant': 'default', 'position': p, 'is_query': p == 1, 'train_idx': 0,
             'test_idx': -1, 'true_label': 0, 'shown_label': 0, 'shown_text': 'x', 'token_position': p,
             'label_logits': [0.0], 'query_log_probs': None, 'query_log_probs_calibrated': None,
             'prior_log_probs': None} for p in range(2)]


def test_temporary_names_are_unique_per_process(tmp_path, monkeypatch):
    renamed = []
    monkeypatch.setattr(results.os, 'replace', lambda src, dst: renamed.append(src.name) or os.rename(src, dst))
    results.write_json(tmp_path / 'config.json', {'a': 1})
    results.write_json(tmp_path / 'config.json', {'a': 2})
    assert all(re.fullmatch(rf'\.config\.json\.{os.getpid()}-[0-9a-f]{{8}}\.tmp', name) for name in renamed)
    assert renamed[0] != renamed[1] and sorted(p.name for p in tmp_path.iterdir()) == ['config.json']
    assert results.is_temporary(tmp_path / renamed[0]) and results.is_temporary(tmp_path / '.lock')
    assert not results.is_temporary(tmp_path / 'config.json')


def test_a_full_disk_names_the_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    (tmp_path / 'config.json').write_text(json.dumps({'identity': IDENTITY}))

    def full(table, where, **kwargs):
        where.write(b'PAR1 half')
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(results.pq, 'write_table', full)
    with pytest.raises(OSError) as raised:
        results.write_part(tmp_path, 0, rows(0))
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(results.part_path(tmp_path, 0)))
    assert list((tmp_path / 'results').iterdir()) == []


def test_a_part_carries_its_run_and_repetition(tmp_path):
    (tmp_path / 'config.json').write_text(json.dumps({'identity': IDENTITY}))
    part = results.write_part(tmp_path, 2, rows(2))
    assert results.part_owner(part) == {'run': IDENTITY, 'repetition': 2}
    assert results.foreign_part(part, 2, IDENTITY) is None
    assert results.foreign_part(part, 3, IDENTITY) == 'it belongs to repetition 2'
    assert results.foreign_part(part, 2, 'e' * 64) == "it belongs to another run (identity ffffffffffff, this run's " \
                                                      'eeeeeeeeeeee)'
    assert pq.read_table(part).schema.equals(results.SCHEMA, check_metadata=False)


def test_a_part_of_a_run_without_identity_carries_none(tmp_path):
    part = results.write_part(tmp_path, 0, rows(0))  # no config.json (or one written before identities)
    assert results.part_owner(part) is None
    assert results.foreign_part(part, 0, IDENTITY).startswith('it carries no run identity')


def test_parts_sort_into_damaged_and_not_of_this_run(tmp_path):
    (tmp_path / 'config.json').write_text(json.dumps({'identity': IDENTITY}))
    for r in (0, 1, 2, 7):
        results.write_part(tmp_path, r, rows(r))
    results.part_path(tmp_path, 1).write_bytes(results.part_path(tmp_path, 1).read_bytes()[:30])
    results.part_path(tmp_path, 2).write_bytes(results.part_path(tmp_path, 0).read_bytes())  # a copy of another
    damaged, foreign = results.invalid_parts(tmp_path, 3, 2, ['default'], IDENTITY)
    assert list(damaged) == [results.part_path(tmp_path, 1)] and damaged[results.part_path(tmp_path, 1)].startswith(
        'unreadable')
    assert foreign == {results.part_path(tmp_path, 2): 'it belongs to repetition 0',
                       results.part_path(tmp_path, 7): "not one of the run's repetitions 0..2"}


def test_a_part_set_aside_twice_keeps_both_files(tmp_path):
    for content in (b'first', b'second'):
        part = results.part_path(tmp_path, 0)
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(content)
        results.set_aside(part)
    assert (part.parent / '.part-000000.parquet.invalid').read_bytes() == b'first'
    assert (part.parent / '.part-000000.parquet.invalid2').read_bytes() == b'second'
