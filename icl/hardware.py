"""What the machine offers and what a run used: the CPU's feature flags and the peak memory."""
import re
import resource
import sys
from pathlib import Path

import torch


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux; empty elsewhere)."""
    try:
        return set(re.findall(r'\S+', re.search(r'^flags\s*:(.*)$', Path('/proc/cpuinfo').read_text(),
                                                re.MULTILINE).group(1)))
    except (OSError, AttributeError):
        return set()


def has_native_bf16() -> bool:
    """True on CPUs whose matrix units compute in bf16 (AVX512-BF16, AMX)."""
    return bool({'avx512_bf16', 'amx_bf16'} & cpu_flags())


def reset_peak_memory() -> None:
    """Restart the high-water mark that peak_memory_mb() reports."""
    for device in range(torch.cuda.device_count()):
        torch.cuda.reset_peak_memory_stats(device)
    try:
        Path('/proc/self/clear_refs').write_text('5')  # Linux: VmHWM := current resident set
    except OSError:
        pass  # elsewhere the CPU peak counts from the start of the process


def peak_memory_mb() -> float:
    """Peak memory since the last reset_peak_memory(), in MiB: on GPUs the tensors allocated,
    summed over all visible devices; on the CPU the process's peak resident set (weights,
    activations, Python and its libraries)."""
    if torch.cuda.is_available():
        return sum(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())) / 2**20
    try:
        status = Path('/proc/self/status').read_text()
        return int(re.search(r'^VmHWM:\s+(\d+) kB', status, re.MULTILINE).group(1)) / 1024
    except (OSError, AttributeError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the process's lifetime peak
        return peak / (2**20 if sys.platform == 'darwin' else 2**10)  # macOS counts bytes, Linux KiB
