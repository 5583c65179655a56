"""The CPU's flags and the peak-memory counter."""
import numpy as np

from icl import hardware


def test_native_bf16_is_read_from_the_cpu_flags():
    flags = open('/proc/cpuinfo').read()
    assert hardware.has_native_bf16() == ('avx512_bf16' in flags or 'amx_bf16' in flags)


def test_peak_memory_counts_from_the_last_reset():
    hardware.reset_peak_memory()
    start = hardware.peak_memory_mb()
    block = np.ones(300 * 2**20 // 8)  # 300 MiB, every page written
    peak = hardware.peak_memory_mb()
    del block
    assert peak - start >= 290
    hardware.reset_peak_memory()
    assert hardware.peak_memory_mb() < peak - 250  # the block is gone and the high-water mark restarted
