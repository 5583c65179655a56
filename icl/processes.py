"""Several processes on one run: `accelerate launch` or `torchrun` (a single process without them).

The processes only coordinate (over gloo on the CPU): each places its own model on its own
GPUs, scores its share of the repetitions and writes their part files; process 0 waits for
the others' parts on disk rather than at a barrier.
"""
import logging
import os
import time
from pathlib import Path

import torch

from icl import results


def processes():
    """This process's place among those `accelerate launch` or `torchrun` started (alone without them).

    cpu=True: the processes only coordinate, over gloo on the CPU; each places its own model
    (process_gpus), so the process group never touches a GPU.
    """
    from accelerate import PartialState
    return PartialState(cpu=True)


def process_gpus(state) -> list[int] | None:
    """The GPUs of this process when several processes share a machine (None: all visible GPUs)."""
    if state.num_processes == 1 or not torch.cuda.is_available():
        return None
    count, local = torch.cuda.device_count(), int(os.environ.get('LOCAL_WORLD_SIZE', state.num_processes))
    share = count // local
    if share == 0:  # more processes than GPUs: they share them in turn
        return [state.local_process_index % count]
    return list(range(state.local_process_index * share, (state.local_process_index + 1) * share))


def from_main(state, value):
    """Process 0's `value`, in every process (also a barrier)."""
    if state.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list
    return broadcast_object_list([value])[0]


def wait_for_parts(run_dir: Path, repetitions: list[int], poll_s: float = 2.0) -> None:
    """Block until every repetition has its part file (the other processes write theirs)."""
    missing = set(repetitions) - set(results.completed_repetitions(run_dir))
    if missing:
        logging.info('Waiting for %d repetitions from the other processes', len(missing))
    while missing:  # no barrier: its timeout would end a run whose processes finish minutes apart
        time.sleep(poll_s)
        missing -= set(results.completed_repetitions(run_dir))
