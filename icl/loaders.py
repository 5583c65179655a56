"""Records of each dataset, from the HuggingFace hub or from local original files.

Each loader returns {split: [record, ...]} with the hub's field names and the hub's row
order (experiments draw row *indices*, so order is part of the contract: docs/behaviour.md#draws).
The hub path calls `datasets.load_dataset` exactly as the original tool did, and reads the hub's
parquet export of the same repository where today's `datasets` refuses a loading script; the
local path reads the original release files laid out as docs/data.md describes.
"""
import csv
import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
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

DATA_DOC = 'docs/data.md'  # where users read the layout, formats and sources of the files
TSV = {'delimiter': '\t', 'quoting': csv.QUOTE_NONE}  # GLUE files: no quoting, text verbatim
BINARY = (0, 1)


def _file_error(path: Path, line: int | None, what: str) -> UsageError:
    """One line naming the file, the line (when one is to blame) and what is wrong."""
    where = f"data file '{path}'" + (f' line {line}:' if line else '')
    return UsageError(f'{where} {what} (see {DATA_DOC})')


def _require(path: Path) -> Path:
    if not path.is_file():
        raise UsageError(f"data file '{path.name}' not found in '{path.parent}' (set ${DATA_DIR_ENV} or "
                         f'dataset.config.data_dir to a folder of the original files laid out as {DATA_DOC} '
                         'describes)')
    return path


def _decoded(path: Path, encoding: str = 'utf-8-sig') -> str:
    """The file's text; bytes that are not valid in `encoding` name their line."""
    data = _require(path).read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b'\n', 0, error.start) + 1
        raise _file_error(path, line, f'byte 0x{data[error.start]:02x} is not valid UTF-8') from None


def _lines(path: Path, encoding: str = 'utf-8') -> Iterator[tuple[int, str]]:
    """(line number, line without its newline), splitting like a file opened in text mode."""
    for number, line in enumerate(io.StringIO(_decoded(path, encoding), newline=None), 1):
        yield number, line.rstrip('\n')


def _csv_rows(path: Path, **dialect) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each non-blank row; a quoted field cut off by the end of the file is an error."""
    reader = csv.reader(io.StringIO(_decoded(path), newline=''), strict=True, **dialect)
    line = 1
    try:
        for fields in reader:
            if fields:
                yield line, fields
            line = reader.line_num + 1
    except csv.Error as error:
        raise _file_error(path, line, f'is not valid CSV ({error}; is the file truncated?)') from None


def _table(path: Path, columns: list[str], header: bool = True, **dialect) -> list[tuple[int, dict[str, str]]]:
    """(line, {column: field}) of each row of a delimited file, its header and field count checked."""
    rows = _csv_rows(path, **dialect)
    names = columns
    if header:
        first = next(rows, None)
        names = first[1] if first else []
        missing = [c for c in columns if c not in names]
        if missing:
            raise _file_error(path, None, f"lacks column(s) {', '.join(missing)}; found: {', '.join(names) or 'none'}")
    rows = list(rows)
    table = []
    for number, (line, fields) in enumerate(rows, 1):
        if len(fields) != len(names):
            hint = '; is the file truncated?' if number == len(rows) else ''
            raise _file_error(path, line, f'has {len(fields)} field(s), expected {len(names)} '
                                          f'({", ".join(names)}){hint}')
        table.append((line, dict(zip(names, fields))))
    if not table:
        raise _file_error(path, None, 'has a header but no rows' if header else 'has no rows')
    return table


def _int(path: Path, line: int, column: str, value, valid: tuple[int, ...] | None = None) -> int:
    """`value` as an integer (one of `valid` if given), else an error naming the line."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _file_error(path, line, f'{column} {value!r} is not an integer')
    try:
        number = int(value)
    except ValueError:
        raise _file_error(path, line, f'{column} {value!r} is not an integer') from None
    if valid is not None and number not in valid:
        raise _file_error(path, line, f'{column} {number} is out of range (valid: {", ".join(map(str, valid))})')
    return number


def _named(path: Path, line: int, column: str, value: str, names: list[str]) -> int:
    """The index of label name `value` in `names`, else an error naming the line."""
    if value not in names:
        raise _file_error(path, line, f"{column} {value!r} is not one of {', '.join(names)}")
    return names.index(value)


def _local_sst2(root: Path) -> Records:
    folder = root / 'sst2'
    out = {}
    for split_name, file in (('train', 'train.tsv'), ('validation', 'dev.tsv')):
        path = folder / file
        out[split_name] = [{'idx': i, 'sentence': r['sentence'], 'label': _int(path, line, 'label', r['label'], BINARY)}
                           for i, (line, r) in enumerate(_table(path, ['sentence', 'label'], **TSV))]
    rows = _table(folder / 'test.tsv', ['index', 'sentence'], **TSV)
    out['test'] = [{'idx': i, 'sentence': r['sentence'], 'label': -1} for i, (_, r) in enumerate(rows)]
    return out


SUBJ_COLUMNS = ['text', 'label', 'label_text']


def _read_subj(path: Path) -> list[dict]:
    """One JSON object a line, each with the hub's three fields."""
    records = []
    for line, text in _lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise _file_error(path, line, f'is not valid JSON ({error.msg}; is the file truncated?)') from None
        missing = [c for c in SUBJ_COLUMNS if not isinstance(record, dict) or c not in record]
        if missing:
            found = ', '.join(record) if isinstance(record, dict) else type(record).__name__
            raise _file_error(path, line, f"lacks column(s) {', '.join(missing)}; found: {found or 'none'}")
        record['label'] = _int(path, line, 'label', record['label'], BINARY)
        records.append(record)
    if not records:
        raise _file_error(path, None, 'has no rows')
    return records


def _local_subj(root: Path) -> Records:
    return {s: _read_subj(root / 'subj' / f'{s}.jsonl') for s in ('train', 'test')}


FPB_LABELS = ['negative', 'neutral', 'positive']


def _local_financial_phrasebank(root: Path) -> Records:
    path = root / 'financial_phrasebank' / 'FinancialPhraseBank-v1.0' / 'Sentences_AllAgree.txt'
    records = []
    for line, text in _lines(path, 'iso-8859-1'):  # like the hub; str.splitlines would also split at \x85, \x0c
        if not text:
            continue
        if '@' not in text:
            raise _file_error(path, line, f"has no '@label' at the end: {text[:60]!r}")
        sentence, label = text.rsplit('@', 1)
        records.append({'sentence': sentence, 'label': _named(path, line, 'label', label.strip(), FPB_LABELS)})
    if not records:
        raise _file_error(path, None, 'has no rows')
    return {'train': records}


MQP_COLUMNS = ['dr_id', 'question_1', 'question_2', 'label']


def _local_medical_questions_pairs(root: Path) -> Records:
    path = root / 'medical_questions_pairs' / 'mqp.csv'
    records = [{'dr_id': _int(path, line, 'dr_id', r['dr_id']), 'question_1': r['question_1'],
                'question_2': r['question_2'], 'label': _int(path, line, 'label', r['label'], BINARY)}
               for line, r in _table(path, MQP_COLUMNS, header=False)]
    return {'train': records}


MSR_COLUMNS = ['Quality', '#1 ID', '#2 ID', '#1 String', '#2 String']


def _msr_records(path: Path) -> list[tuple[dict, dict]]:
    """(record, raw row) of each row of a Microsoft MRPC file; `idx` is the row number."""
    return [({'sentence1': r['#1 String'], 'sentence2': r['#2 String'],
              'label': _int(path, line, 'Quality', r['Quality'], BINARY), 'idx': idx}, r)
            for idx, (line, r) in enumerate(_table(path, MSR_COLUMNS, **TSV))]


def _local_mrpc(root: Path) -> Records:
    """Built like the hub's glue builder: train/validation from msr_paraphrase_train.txt split by
    dev_ids.tsv, `idx` = row of that file (so validation starts at idx 9); test from msr_paraphrase_test.txt."""
    folder = root / 'mrpc'
    dev_rows = _table(folder / 'dev_ids.tsv', ['#1 ID', '#2 ID'], header=False, **TSV)
    dev_ids = {(r['#1 ID'], r['#2 ID']) for _, r in dev_rows}
    out = {'train': [], 'validation': []}
    for record, row in _msr_records(folder / 'msr_paraphrase_train.txt'):
        out['validation' if (row['#1 ID'], row['#2 ID']) in dev_ids else 'train'].append(record)
    out['test'] = [record for record, _ in _msr_records(folder / 'msr_paraphrase_test.txt')]
    return out


def _local_glue_pairs(root: Path, name: str, label_of: Callable[[Path, int, str], int]) -> Records:
    out = {}
    for split_name, file in (('train', 'train.tsv'), ('validation', 'dev.tsv'), ('test', 'test.tsv')):
        path = root / name / file
        has_label = split_name != 'test'
        rows = _table(path, ['index', 'sentence1', 'sentence2'] + (['label'] if has_label else []), **TSV)
        out[split_name] = [{'sentence1': r['sentence1'], 'sentence2': r['sentence2'],
                            'label': label_of(path, line, r['label']) if has_label else -1, 'idx': i}
                           for i, (line, r) in enumerate(rows)]
    return out


RTE_LABELS = ['entailment', 'not_entailment']


def _local_rte(root: Path) -> Records:
    return _local_glue_pairs(root, 'rte', lambda path, line, value: _named(path, line, 'label', value, RTE_LABELS))


def _local_wnli(root: Path) -> Records:
    return _local_glue_pairs(root, 'wnli', lambda path, line, value: _int(path, line, 'label', value, BINARY))


HATE_COLUMNS = ['text', 'user_id', 'subforum_id', 'num_contexts', 'label']


def _local_hate_speech(root: Path) -> Records:
    path = root / 'hate_speech18' / 'hate_speech18.csv'
    records = [{'text': r['text'], **{c: _int(path, line, c, r[c]) for c in HATE_COLUMNS[1:4]},
                'label': _int(path, line, 'label', r['label'], (0, 1, 2, 3))}
               for line, r in _table(path, HATE_COLUMNS)]
    return {'train': records}


AG_NEWS_COLUMNS = ['class', 'title', 'description']


def _read_ag_news(path: Path) -> list[dict]:
    rows = _table(path, AG_NEWS_COLUMNS, header=False, quotechar='"', delimiter=',', skipinitialspace=True)
    return [{'text': ' '.join((r['title'], r['description'])),
             'label': _int(path, line, 'class', r['class'], (1, 2, 3, 4)) - 1}  # classes 1-4 become labels 0-3
            for line, r in rows]


def _local_ag_news(root: Path) -> Records:
    return {s: _read_ag_news(root / 'ag_news' / f'{s}.csv') for s in ('train', 'test')}


def _read_bundled_csv(path: Path) -> list[dict]:
    return [{'sentence': r['sentence'], 'label': _int(path, line, 'label', r['label'], BINARY)}
            for line, r in _table(path, ['sentence', 'label'])]


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

PARQUET_EXPORT = 'refs/convert/parquet'  # the hub's own parquet copy of a repository, made by running its script
SCRIPT_REFUSED = 'Dataset scripts are no longer supported'  # datasets>=4.0's RuntimeError for a loading script
OFFLINE_ENV = ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE')


@dataclasses.dataclass(frozen=True)
class HubSource:
    """Where the original loaded a dataset from, and how the hub's splits become our records."""
    path: str
    config: str | None = None
    split_train: bool = False  # the original split the single `train` split itself (split())
    subset: Callable[[list[dict]], list[int]] | None = None  # rows kept before that split

    @property
    def arguments(self) -> tuple[str, ...]:
        """The original's positional arguments to `datasets.load_dataset`."""
        return (self.path,) if self.config is None else (self.path, self.config)

    def records(self, dataset_dict) -> Records:
        """Our records of a `datasets.DatasetDict`, whichever way it was loaded."""
        return self.converted({name: dataset_dict[name].to_list() for name in dataset_dict})

    def converted(self, splits: Records) -> Records:
        """Our records of the hub's splits (from the hub or built from the original files)."""
        if not self.split_train:
            return splits
        train = splits['train']
        return split(train, self.subset(train) if self.subset else None)


def _load_dataset(*args, **kwargs):
    from datasets import load_dataset  # slow import, only when the hub is used
    return load_dataset(*args, **kwargs)


def _download_export(repo_id: str) -> Path:
    """The local folder of the repository's parquet export (from the HuggingFace cache when offline)."""
    from huggingface_hub import snapshot_download
    return Path(snapshot_download(repo_id=repo_id, repo_type='dataset', revision=PARQUET_EXPORT))


def refuses_script(error: BaseException) -> bool:
    """Whether `datasets` refused the repository because it ships a loading script."""
    return isinstance(error, RuntimeError) and str(error).startswith(SCRIPT_REFUSED)


def hub_offline() -> bool:
    """Whether the HuggingFace libraries are told not to reach the hub."""
    return any(os.environ.get(name, '').upper() in ('1', 'ON', 'YES', 'TRUE') for name in OFFLINE_ENV)


def export_folder(source: HubSource, export_root: Path) -> Path:
    """The export's folder of the source's configuration (one folder per configuration)."""
    folders = sorted(p.name for p in export_root.iterdir() if p.is_dir() and not p.name.startswith('.'))
    name = source.config or (folders[0] if len(folders) == 1 else None)
    if name not in folders:
        raise FileNotFoundError(f"the parquet export of '{source.path}' has no folder for configuration "
                                f"{source.config or '(unnamed)'}; found: {', '.join(folders) or 'none'}")
    return export_root / name


def hub_dataset(source: HubSource):
    """The `DatasetDict` of `source`: the original's call, else the same repository's parquet export.

    The export is used when `datasets` refuses the repository's loading script, and when offline
    (the original call then finds nothing cached for a script repository; the export may be).
    """
    try:
        return _load_dataset(*source.arguments)
    except Exception as error:  # the hub raises many types; only the two cases above fall back
        if not (refuses_script(error) or hub_offline()):
            raise
        try:
            folder = export_folder(source, _download_export(source.path))
        except Exception:
            if refuses_script(error):
                raise
            raise error from None  # offline and no export cached: the original call's error says why
        why = 'refuses its loading script' if refuses_script(error) else 'is offline'
        logging.info('Loading %s from its parquet export (revision %s, folder %s): the hub %s',
                     source.path, PARQUET_EXPORT, folder.name, why)
        return _load_dataset(str(folder))


LOCAL: dict[str, Callable[[Path], Records]] = {  # the hub's splits, built from the original files
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

HUB: dict[str, HubSource] = {  # the original's load_dataset arguments
    'sst2': HubSource('sst2'),
    'subj': HubSource('SetFit/subj'),
    'financial_phrasebank': HubSource('financial_phrasebank', 'sentences_allagree', split_train=True),
    'medical_questions_pairs': HubSource('medical_questions_pairs', split_train=True),
    'mrpc': HubSource('glue', 'mrpc'),
    'wnli': HubSource('glue', 'wnli'),
    'rte': HubSource('glue', 'rte'),
    'hate_speech': HubSource('hate_speech18', split_train=True, subset=hate_speech_subset),
    'ag_news': HubSource('ag_news'),
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
        return HUB[name].converted(LOCAL[name](local_dir))
    source = HUB[name]
    try:
        return source.records(hub_dataset(source))
    except Exception as error:  # the hub raises many types: offline, gated, renamed
        first_line = str(error).splitlines()[0][:200] if str(error) else ''
        raise UsageError(f"could not load '{name}' from the HuggingFace hub ({type(error).__name__}: {first_line}); "
                         f'set ${DATA_DIR_ENV} to a folder of the original files ({DATA_DOC}), or, on a machine '
                         "without internet, prepare the HuggingFace cache first (README, 'Offline machines')") from None


def records_fingerprint(name: str, records: Records, configured_dir: str | None = None) -> dict:
    """Where dataset `name`'s records came from and, per split, its row count and a hash of its
    rows (config.json's 'data': a resume with other data is refused)."""
    local = data_dir(configured_dir)
    source = ('bundled' if name in BUNDLED else 'private file' if name not in HUB
              else f'local folder {local.resolve()}' if local is not None else 'hub')
    splits = {split_name: {'rows': len(rows), 'sha256': hashlib.sha256(
        _as_json(sorted(rows, key=_as_json) if name in UNORDERED else rows).encode()).hexdigest()}
        for split_name, rows in records.items()}
    return {'dataset': name, 'source': source, 'splits': splits}


UNORDERED = {'author_id'}  # rows shuffled without a seed (the original's): each process loads another order


def _as_json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
