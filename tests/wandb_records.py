"""Read back an offline wandb run (its `run-<id>.wandb` file): history rows, summary, config.

The file is a LevelDB-style log of protobuf `Record`s (wandb's transaction log): a 7-byte
header (':W&B', magic, version), then 32 KiB blocks of chunks, each with a 7-byte header
(checksum, length, type: 1 full, 2 first, 3 middle, 4 last); a block's tail shorter than a
header is padding.
"""
import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    data = Path(path).read_bytes()
    assert data[:4] == b':W&B', f'{path} is not a wandb transaction log'
    pos, pending = 7, b''
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack('<IHB', data[pos:pos + HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        if pos + HEADER + length > len(data):  # still being written
            return
        pending += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b''
            yield record


def _items(items) -> dict:
    return {item.key or '/'.join(item.nested_key): json.loads(item.value_json) for item in items}


def finished_records(path: Path, timeout_s: float = 60) -> list:
    """The records once the run's exit record is on disk (wandb's service may still be writing after finish())."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = list(records(path))
        if any(record.WhichOneof('record_type') == 'exit' for record in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def offline_run(run_dir: Path) -> dict:
    """{'history': [row, ...], 'summary': {...}, 'config': {...}} of the one offline run under run_dir/wandb."""
    [path] = Path(run_dir).glob('wandb/offline-run-*/run-*.wandb')
    history, summary, config = [], {}, {}
    for record in finished_records(path):
        kind = record.WhichOneof('record_type')
        if kind == 'history':
            history.append(_items(record.history.item))
        elif kind == 'summary':
            summary.update(_items(record.summary.update))
        elif kind == 'run':
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == 'config':
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
    return {'history': history, 'summary': summary, 'config': config}
