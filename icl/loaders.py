"""Records of each dataset, from the HuggingFace hub or from local original files.

Each loader returns {split: [record, ...]} with the hub's field names and the hub's row
order (experiments draw row *indices*, so order is part of the contract). The hub path
calls `datasets.load_dataset` exactly as the original tool did; the local path reads the
original release files laid out like `../shared/data` (see its README).
"""
import csv
import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from icl.errors import UsageError

Records = dict[str, list[dict]]
BUNDLED_DIR = Path(__file__).resolve().parent / 'data'
DATA_DIR_ENV = 'ICL_DATA_DIR'


def split(records: list[dict], indices: list[int] | None = None) -> Records:
    """The original's train/test split of a single-split dataset (stratified, seed 41)."""
    labels = [r['label'] for r in records]
    if indices is None:
        indices = range(len(records))
    else:
        indices = [int(i) for i in indices]
        labels = [labels[i] for i in indices]
    train, test = train_test_split(indices, test_size=0.33, random_state=41, stratify=labels)
    return {'train': [records[i] for i in train], 'test': [records[i] for i in test]}


def hate_speech_subset(records: list[dict]) -> list[int]:
    """The first 1000 rows of label 0 and of label 1, in row order (the original's subset)."""
    labels = np.array([r['label'] for r in records])
    return np.sort(np.concatenate([np.where(labels == 0)[0][:1000], np.where(labels == 1)[0][:1000]])).tolist()


# ---------------------------------------------------------------- local original files

def _require(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"data file '{path.name}' not found in '{path.parent}' (set ${DATA_DIR_ENV} or "
                         "dataset.config.data_dir to a folder laid out like shared/data)")
    return path


def _read_tsv(path: Path, columns: list[str]) -> list[dict]:
    """Rows of a GLUE-style TSV (no quoting, text verbatim), checking its header."""
    with open(_require(path), encoding='utf-8-sig', newline='') as f:
        rows = list(csv.DictReader(f, delimiter='\t', quoting=csv.QUOTE_NONE))
    _check_columns(path, rows[0].keys() if rows else [], columns)
    return rows


def _check_columns(path: Path, found, expected: list[str]) -> None:
    missing = [c for c in expected if c not in found]
    if missing:
        raise UsageError(f"data file '{path}' lacks column(s) {', '.join(missing)}; "
                         f"found: {', '.join(found) or 'none'}")


def _local_sst2(root: Path) -> Records:
    folder = root / 'sst2'
    out = {}
    for split_name, file in (('train', 'train.tsv'), ('validation', 'dev.tsv')):
        rows = _read_tsv(folder / file, ['sentence', 'label'])
        out[split_name] = [{'idx': i, 'sentence': r['sentence'], 'label': int(r['label'])} for i, r in enumerate(rows)]
    rows = _read_tsv(folder / 'test.tsv', ['index', 'sentence'])
    out['test'] = [{'idx': i, 'sentence': r['sentence'], 'label': -1} for i, r in enumerate(rows)]
    return out


def _read_jsonl(path: Path, columns: list[str]) -> list[dict]:
    with open(_require(path), encoding='utf-8') as f:
        rows = [json.loads(line) for line in f if line.strip()]
    _check_columns(path, rows[0].keys() if rows else [], columns)
    return rows


def _local_subj(root: Path) -> Records:
    return {s: _read_jsonl(root / 'subj' / f'{s}.jsonl', ['text', 'label', 'label_text']) for s in ('train', 'test')}


FPB_LABELS = ['negative', 'neutral', 'positive']


def _local_financial_phrasebank(root: Path) -> Records:
    path = _require(root / 'financial_phrasebank' / 'FinancialPhraseBank-v1.0' / 'Sentences_AllAgree.txt')
    with open(path, encoding='iso-8859-1') as f:  # like the hub; str.splitlines would also split at \x85, \x0c
        lines = [line.rstrip('\n') for line in f]
    records = []
    for line in lines:
        if not line:
            continue
        if '@' not in line:
            raise UsageError(f"data file '{path}' has a line without '@label': {line[:60]!r}")
        sentence, label = line.rsplit('@', 1)
        records.append({'sentence': sentence, 'label': FPB_LABELS.index(label.strip())})
    return split(records)


def _local_medical_questions_pairs(root: Path) -> Records:
    path = _require(root / 'medical_questions_pairs' / 'mqp.csv')
    with open(path, encoding='utf-8', newline='') as f:
        rows = list(csv.reader(f))
    if rows and len(rows[0]) != 4:
        raise UsageError(f"data file '{path}' should have 4 columns (dr_id,question_1,question_2,label), "
                         f"found {len(rows[0])}")
    records = [{'dr_id': int(d), 'question_1': q1, 'question_2': q2, 'label': int(y)} for d, q1, q2, y in rows]
    return split(records)


MSR_COLUMNS = ['Quality', '#1 ID', '#2 ID', '#1 String', '#2 String']


def _msr_record(row: dict, idx: int) -> dict:
    return {'sentence1': row['#1 String'], 'sentence2': row['#2 String'], 'label': int(row['Quality']), 'idx': idx}


def _local_mrpc(root: Path) -> Records:
    """Built like the hub's glue builder: train/validation from msr_paraphrase_train.txt split by
    dev_ids.tsv, `idx` = row of that file (so validation starts at idx 9); test from msr_paraphrase_test.txt."""
    folder = root / 'mrpc'
    with open(_require(folder / 'dev_ids.tsv'), encoding='utf-8', newline='') as f:
        dev_ids = {tuple(row[:2]) for row in csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE)}
    out = {'train': [], 'validation': []}
    for n, row in enumerate(_read_tsv(folder / 'msr_paraphrase_train.txt', MSR_COLUMNS)):
        in_dev = (row['#1 ID'], row['#2 ID']) in dev_ids
        out['validation' if in_dev else 'train'].append(_msr_record(row, n))
    out['test'] = [_msr_record(row, n) for n, row in enumerate(_read_tsv(folder / 'msr_paraphrase_test.txt',
                                                                           MSR_COLUMNS))]
    return out


def _local_glue_pairs(root: Path, name: str, label_of: Callable[[str], int]) -> Records:
    out = {}
    for split_name, file in (('train', 'train.tsv'), ('validation', 'dev.tsv'), ('test', 'test.tsv')):
        has_label = split_name != 'test'
        rows = _read_tsv(root / name / file, ['index', 'sentence1', 'sentence2'] + (['label'] if has_label else []))
        out[split_name] = [{'sentence1': r['sentence1'], 'sentence2': r['sentence2'],
                            'label': label_of(r['label']) if has_label else -1, 'idx': i}
                           for i, r in enumerate(rows)]
    return out


RTE_LABELS = ['entailment', 'not_entailment']


def _local_rte(root: Path) -> Records:
    return _local_glue_pairs(root, 'rte', RTE_LABELS.index)


def _local_wnli(root: Path) -> Records:
    return _local_glue_pairs(root, 'wnli', int)


HATE_COLUMNS = ['text', 'user_id', 'subforum_id', 'num_contexts', 'label']


def _local_hate_speech(root: Path) -> Records:
    path = _require(root / 'hate_speech18' / 'hate_speech18.csv')
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    _check_columns(path, list(frame.columns), HATE_COLUMNS)
    records = [{'text': r.text, 'user_id': int(r.user_id), 'subforum_id': int(r.subforum_id),
                'num_contexts': int(r.num_contexts), 'label': int(r.label)} for r in frame.itertuples()]
    return split(records, hate_speech_subset(records))


def _read_ag_news(path: Path) -> list[dict]:
    with open(_require(path), encoding='utf-8', newline='') as f:
        rows = list(csv.reader(f, quotechar='"', delimiter=',', quoting=csv.QUOTE_ALL, skipinitialspace=True))
    if rows and len(rows[0]) != 3:
        raise UsageError(f"data file '{path}' should have 3 columns (class,title,description), found {len(rows[0])}")
    return [{'text': ' '.join((title, description)), 'label': int(cls) - 1} for cls, title, description in rows]


def _local_ag_news(root: Path) -> Records:
    return {s: _read_ag_news(root / 'ag_news' / f'{s}.csv') for s in ('train', 'test')}


def _read_bundled_csv(path: Path) -> list[dict]:
    with open(_require(path), encoding='utf-8', newline='') as f:
        return [{'sentence': r['sentence'], 'label': int(r['label'])} for r in csv.DictReader(f)]


def _bundled_tiny_sentiment(_root: Path | None = None) -> Records:
    return split(_read_bundled_csv(BUNDLED_DIR / 'tiny_sentiment.csv'))


def load_author_id(relative_path: str, local_dir: Path | None, max_length: int) -> Records:
    """The paper's private chat data (not public): rows in a random order, as the original."""
    candidates = [Path(relative_path)] + ([local_dir / Path(relative_path).relative_to('data')] if local_dir else [])
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise UsageError(f"author_id needs the private file '{relative_path}'; looked in: "
                         f"{', '.join(str(p.resolve()) for p in candidates)}")
    frame = pd.read_csv(path, sep='\t ', engine='python')
    frame = frame[frame['low_quality'] == False]  # noqa: E712 (a column of booleans)
    cut = frame['sentence'].map(lambda s: s if len(s) < max_length - 3 else s[:max_length - 3] + '...')
    author = {'tom': 0, 'jan': 1}
    train = [{'sentence': s, 'author': author[a]} for s, a in zip(cut, frame['author'])]
    return {'test': [{'sentence': 'There is no test data', 'author': 0}],
            'train': list(np.random.permutation(train))}  # unseeded, as in the original


# ---------------------------------------------------------------- hub (the original's calls)

def _hub(*args) -> Callable[[], Records]:
    def load() -> Records:
        from datasets import load_dataset  # slow import, only when the hub is used
        ds = load_dataset(*args)
        return {name: ds[name].to_list() for name in ds}
    return load


def _hub_split(*args, subset: Callable | None = None) -> Callable[[], Records]:
    def load() -> Records:
        records = _hub(*args)()['train']
        return split(records, subset(records) if subset else None)
    return load


LOCAL: dict[str, Callable[[Path], Records]] = {
    'sst2': _local_sst2,
    'subj': _local_subj,
    'financial_phrasebank': _local_financial_phrasebank,
    'medical_questions_pairs': _local_medical_questions_pairs,
    'mrpc': _local_mrpc,
    'wnli': _local_wnli,
    'rte': _local_rte,
    'hate_speech': _local_hate_speech,
    'ag_news': _local_ag_news,
}

HUB: dict[str, Callable[[], Records]] = {
    'sst2': _hub('sst2'),
    'subj': _hub('SetFit/subj'),
    'financial_phrasebank': _hub_split('financial_phrasebank', 'sentences_allagree'),
    'medical_questions_pairs': _hub_split('medical_questions_pairs'),
    'mrpc': _hub('glue', 'mrpc'),
    'wnli': _hub('glue', 'wnli'),
    'rte': _hub('glue', 'rte'),
    'hate_speech': _hub_split('hate_speech18', subset=hate_speech_subset),
    'ag_news': _hub('ag_news'),
}

BUNDLED: dict[str, Callable[[], Records]] = {'tiny_sentiment': _bundled_tiny_sentiment}


def data_dir(configured: str | None = None) -> Path | None:
    """The local data folder: the config's, else $ICL_DATA_DIR, else None (use the hub)."""
    chosen = configured or os.environ.get(DATA_DIR_ENV)
    return Path(chosen).expanduser() if chosen else None


@functools.lru_cache(maxsize=16)  # every dataset once per process; sst2 (67k rows) is the largest
def load_records(name: str, local_dir: Path | None = None) -> Records:
    """All splits of dataset `name`: bundled, local files (when `local_dir`) or the hub."""
    if name not in BUNDLED and name not in HUB:
        raise UsageError(f"no loader for dataset '{name}'; choose one of {', '.join([*HUB, *BUNDLED])}")
    if name in BUNDLED:
        return BUNDLED[name]()
    if local_dir is not None:
        if not local_dir.is_dir():
            raise UsageError(f"data folder '{local_dir}' does not exist "
                             f'(from ${DATA_DIR_ENV} or dataset.config.data_dir)')
        logging.info('Loading %s from local files in %s', name, local_dir)
        return LOCAL[name](local_dir)
    try:
        return HUB[name]()
    except Exception as error:  # the hub raises many types: offline, gated, renamed
        raise UsageError(f"could not load '{name}' from the HuggingFace hub ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:200] if str(error) else ''}); set ${DATA_DIR_ENV} to a "
                         "folder of the original files laid out like shared/data") from None


def records_fingerprint(name: str, records: Records, configured_dir: str | None = None) -> dict:
    """Where dataset `name`'s records came from and, per split, its row count and a hash of its
    rows (config.json's 'data': a resume with other data is refused)."""
    import hashlib
    local = data_dir(configured_dir)
    source = ('bundled' if name in BUNDLED else 'private file' if name not in HUB
              else f'local folder {local.resolve()}' if local is not None else 'hub')
    splits = {split_name: {'rows': len(rows), 'sha256': hashlib.sha256(
        json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()}
        for split_name, rows in records.items()}
    return {'dataset': name, 'source': source, 'splits': splits}
