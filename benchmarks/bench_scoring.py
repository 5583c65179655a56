"""Scoring speed: the original tool's way against ours, on the same real SST-2 prompts, in one process.

  python benchmarks/bench_scoring.py                          # 40 and 140 examples, 2 repetitions x 2 variants
  python benchmarks/bench_scoring.py --examples 140 --batch auto 4 --json bench.json
  python benchmarks/bench_scoring.py --model gemma3-270m      # any model.name

Ways (each scores the same prompts and computes the calibration prior):
  original   float32, one prompt per pass, the full [tokens, vocabulary] logits moved to the CPU,
             the prior recomputed every repetition (docs/behaviour.md, "Where the original was wrong or wasteful")
  ours-fp32  our Scorer in float32: selective logits, prior once; its label logits must equal the original's
  ours       our Scorer as a run uses it (model.dtype=auto, model.batch_size=auto, or --batch)

Memory is the peak while scoring above the process before the way's model was loaded (weights,
activations, outputs): resident set on the CPU, allocated tensors on GPUs. Model FLOP/s counts the
work any way must do (linear layers at every token, causal attention, class rows of the output layer at
the answer positions) and is compared with a large matmul measured here in the same dtype.
Needs the original sst2 files (docs/data.md): --data-dir, else $ICL_DATA_DIR.
"""
import argparse
import ctypes
import dataclasses
import gc
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import tolerances  # noqa: E402
from icl import datasets, experiment, hardware, models, precision, scoring  # noqa: E402
from icl.config import base_config  # noqa: E402
from icl.probs import log_softmax  # noqa: E402
from icl.prompts import ExampleFormat  # noqa: E402
from icl.settings import checked_batch_size  # noqa: E402


@dataclasses.dataclass
class Measured:
    """One way's cost and its label logits ([positions, all_classes] per prompt)."""
    way: str
    dtype: str
    batch: str
    seconds: float
    prompts: int
    tokens: int
    peak_mb: float
    model_flops: float
    logits: list[np.ndarray] = dataclasses.field(repr=False)

    def row(self, matmul_flops: dict[str, float]) -> dict:
        flops = self.model_flops / self.seconds
        return {'way': self.way, 'dtype': self.dtype, 'batch': self.batch, 'seconds': round(self.seconds, 3),
                's_per_prompt': round(self.seconds / self.prompts, 3),
                'tokens_per_s': round(self.tokens / self.seconds),
                'peak_mb': round(self.peak_mb), 'model_gflops': round(flops / 1e9, 1),
                'of_matmul': round(flops / matmul_flops[self.dtype], 3)}


def resident_mb() -> float:
    """The process's resident set now (Linux), MiB."""
    return int(re.search(r'^VmRSS:\s+(\d+) kB', Path('/proc/self/status').read_text(), re.MULTILINE).group(1)) / 1024


def memory_now_mb() -> float:
    if torch.cuda.is_available():
        return sum(torch.cuda.memory_allocated(d) for d in range(torch.cuda.device_count())) / 2**20
    return resident_mb()


def release_memory() -> None:
    """Give freed memory back, so the next way's baseline and peak are its own."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass


def matmul_flops(dtype: torch.dtype, device: torch.device, size: int, repeats: int = 5) -> float:
    """Best FLOP/s of a [size, size] @ [size, size] matmul."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float('inf')
    for _ in range(repeats + 1):  # the first is a warm-up
        synchronize()
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def forward_flops(model, tokens: int, answer_positions: int, num_classes: int) -> float:
    """FLOPs any way must spend on one prompt: every linear layer at every token, causal attention
    (local layers only within their window), the output layer's class rows at the answer positions."""
    head = model.get_output_embeddings()
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
    config = model.config.get_text_config()
    heads = config.num_attention_heads
    width = heads * (getattr(config, 'head_dim', None) or config.hidden_size // heads)
    layer_types = getattr(config, 'layer_types', None) or ['full_attention'] * config.num_hidden_layers
    window = getattr(config, 'sliding_window', None) or tokens
    attention = 0.0
    for kind in layer_types:
        span = min(window, tokens) if kind == 'sliding_attention' else tokens
        attended = tokens * span - span * (span - 1) / 2  # sum over queries of the keys each sees
        attention += 2 * 2 * attended * width  # q.k and the weighted sum of values
    return 2 * linear * tokens + attention + 2 * config.hidden_size * num_classes * answer_positions


@dataclasses.dataclass
class Job:
    repetition: int
    variant: str
    prompt: object


@dataclasses.dataclass
class Workload:
    """The prompts every way scores, and what scoring them needs."""
    plan: experiment.Plan
    example: ExampleFormat  # the prompts' format (the prior's)
    jobs: list[Job]
    lengths: list[int]  # tokens per prompt


def make_workload(args, examples: int) -> Workload:
    config = base_config()
    config.model.name, config.dataset.name = args.model, 'sst2'
    config.n_repeats = args.repetitions
    config.dataset.config.num_prompt_examples = examples
    config.dataset.config.data_dir = str(args.data_dir)
    plan = experiment.plan(config)
    variants = dict(list(plan.variants.items())[:args.variants])
    jobs = [Job(r, variant, datasets.repetition(plan.data, r, names).query_prompts()[0][1])
            for r in range(config.n_repeats) for variant, names in variants.items()]
    lengths = [len(scoring.encode(plan.tokenizer, job.prompt.text)[0]) for job in jobs]
    return Workload(plan, datasets.prompt_format(plan.data).example, jobs, lengths)


@torch.no_grad()
def original_way(model, work: Workload) -> list[np.ndarray]:
    """The original tool: one prompt per pass, full logits to the CPU, the prior every repetition."""
    device, tokenizer, class_ids = scoring.output_device(model), work.plan.tokenizer, work.plan.label_tokens.ids
    out = []
    for i, job in enumerate(work.jobs):
        if i == 0 or job.repetition != work.jobs[i - 1].repetition:
            for text in scoring.prior_texts(work.example):
                ids, _ = scoring.encode(tokenizer, text)
                model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits.float().cpu()
        ids, spans = scoring.encode(tokenizer, job.prompt.text)
        positions = np.append(scoring.answer_positions(spans, job.prompt.answer_ends), len(ids) - 1)
        logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits.float().cpu()
        out.append(logits[0, positions][:, class_ids].numpy())
    return out


def our_way(model, work: Workload, batch_size: int | None) -> tuple[list[np.ndarray], int]:
    """As experiment.run(): the prior once, then every prompt through the Scorer; also the batch size used."""
    plan = work.plan
    scoring.prior_logits(model, plan.tokenizer, work.example, plan.label_tokens.ids)
    scorer = scoring.Scorer(model, plan.tokenizer, plan.label_tokens, plan.context, batch_size)
    return [logits for _, logits in scorer.score([job.prompt for job in work.jobs])], scorer.batch_size


def measure(way: str, model, before_mb: float, work: Workload, run) -> Measured:
    """Time `run()` (returning the label logits and the batch size) and record its peak memory."""
    hardware.reset_peak_memory()
    synchronize()
    start = time.perf_counter()
    logits, batch = run()
    synchronize()
    seconds = time.perf_counter() - start
    positions, classes = work.jobs[0].prompt.num_examples + 1, len(work.plan.label_tokens.ids)
    flops = sum(forward_flops(model, n, positions, classes) for n in work.lengths)
    return Measured(way=way, dtype=precision.dtype_name(model.dtype), batch=str(batch), seconds=seconds,
                    prompts=len(work.jobs), tokens=sum(work.lengths), peak_mb=hardware.peak_memory_mb() - before_mb,
                    model_flops=flops, logits=logits)


def load(spec, dtype: torch.dtype):
    """The model and the memory in use before it was loaded."""
    release_memory()
    before = memory_now_mb()
    model = models.load_model(spec, dtype)
    with torch.no_grad():  # one-time kernel set-up is not part of any way's time
        model(input_ids=torch.ones((1, 16), dtype=torch.long, device=scoring.output_device(model)), use_cache=False)
    return model, before


def fp32_ways(work: Workload) -> list[Measured]:
    """The original way (with transformers' default attention, SDPA) and ours, both in float32 on one
    loaded model."""
    model, before = load(work.plan.model_spec, torch.float32)
    ours = model.config._attn_implementation  # load_model's choice
    model.set_attn_implementation('sdpa')
    original = measure('original', model, before, work, lambda: (original_way(model, work), 1))
    model.set_attn_implementation(ours)
    return [original, measure('ours-fp32', model, before, work, lambda: our_way(model, work, 1))]


def fast_ways(work: Workload, batches: list[str]) -> list[Measured]:
    """Ours as a run does it (model.dtype=auto), once per model.batch_size value."""
    model, before = load(work.plan.model_spec, precision.resolve_dtype('auto'))
    out = []
    for batch in batches:
        size = scoring.resolve_batch_size(checked_batch_size(batch if batch == 'auto' else int(batch)))
        out.append(measure('ours', model, before, work, lambda size=size: our_way(model, work, size)))
        out[-1].batch = f'auto: {out[-1].batch}' if batch == 'auto' else batch
    return out


def agreement(plan, jobs: list[Job], reference: list[np.ndarray], other: list[np.ndarray]) -> dict:
    """How far `other`'s label log-probs (over each variant's classes) are from the reference's."""
    diffs, same, correct = [], [], {'reference': [], 'other': []}
    for job, a, b in zip(jobs, reference, other):
        columns = plan.label_tokens.index(plan.variants[job.variant])
        la, lb = log_softmax(a[:, columns].astype(np.float64)), log_softmax(b[:, columns].astype(np.float64))
        diffs.append(np.abs(la - lb).max(1))
        same.append(la.argmax(1) == lb.argmax(1))
        truth = np.array(job.prompt.true_labels)  # in-context positions; the last row is the query
        correct['reference'].append(la[:-1].argmax(1) == truth)
        correct['other'].append(lb[:-1].argmax(1) == truth)
    diffs, same = np.concatenate(diffs), np.concatenate(same)
    return {'log_prob_max_diff': float(diffs.max()), 'log_prob_mean_diff': float(diffs.mean()),
            'argmax_agreement': float(same.mean()),
            'within_tolerance': bool(diffs.max() <= tolerances.BF16_LOG_PROB_TOLERANCE
                                     and same.mean() >= tolerances.BF16_ARGMAX_AGREEMENT),
            'accuracy_reference': float(np.concatenate(correct['reference']).mean()),
            'accuracy_other': float(np.concatenate(correct['other']).mean())}


def benchmark(args, examples: int, matmul: dict[str, float]) -> dict:
    work = make_workload(args, examples)
    original, ours_fp32 = fp32_ways(work)
    ours = fast_ways(work, args.batch)
    exact = max(float(np.abs(a - b).max()) for a, b in zip(original.logits, ours_fp32.logits))
    return {'examples': examples, 'prompts': len(work.jobs), 'tokens': sum(work.lengths),
            'longest_prompt': max(work.lengths), 'variants': list(dict.fromkeys(j.variant for j in work.jobs)),
            'rows': [m.row(matmul) for m in (original, ours_fp32, *ours)],
            'speedup': round(original.seconds / ours[0].seconds, 2),
            'memory_ratio': round(ours[0].peak_mb / original.peak_mb, 3),
            'ours_fp32_vs_original_max_logit_diff': exact,
            'ours_vs_original': agreement(work.plan, work.jobs, original.logits, ours[0].logits)}


def machine() -> dict:
    if torch.cuda.is_available():
        device = ', '.join(torch.cuda.get_device_name(d) for d in range(torch.cuda.device_count()))
    else:
        names = re.findall(r'^model name\s*:\s*(.+)$', Path('/proc/cpuinfo').read_text(), re.MULTILINE)
        device = f'{names[0] if names else platform.processor()}, {torch.get_num_threads()} threads'
    return {'device': device, 'cores': os.cpu_count(), 'native_bf16': hardware.has_native_bf16(),
            'load_average': [round(x, 2) for x in os.getloadavg()], 'torch': torch.__version__,
            'python': platform.python_version()}


def print_result(result: dict) -> None:
    print(f"\nsst2, {result['examples']} examples: {result['prompts']} prompts, {result['tokens']} tokens "
          f"(longest {result['longest_prompt']}), variants {', '.join(result['variants'])}")
    header = ['way', 'dtype', 'batch', 's_per_prompt', 'tokens_per_s', 'peak_mb', 'model_gflops', 'of_matmul']
    print('  '.join(f'{h:>12}' for h in header))
    for row in result['rows']:
        print('  '.join(f'{row[h]!s:>12}' for h in header))
    agree = result['ours_vs_original']
    print(f"ours (first row) against the original: {result['speedup']}x the speed, "
          f"{result['memory_ratio']} of the peak memory")
    print(f"label logits, ours-fp32 vs original: max |diff| {result['ours_fp32_vs_original_max_logit_diff']:.1e}")
    print(f"label log-probs, ours vs original: max |diff| {agree['log_prob_max_diff']:.3f}, mean "
          f"{agree['log_prob_mean_diff']:.4f}, same argmax at {agree['argmax_agreement']:.1%} of positions "
          f"({'within' if agree['within_tolerance'] else 'OUTSIDE'} the stated tolerance "
          f"{tolerances.BF16_LOG_PROB_TOLERANCE}, {tolerances.BF16_ARGMAX_AGREEMENT:.0%}); in-context accuracy "
          f"{agree['accuracy_reference']:.3f} (original) vs {agree['accuracy_other']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='smollm2-135m', help='model.name (default: the packaged model)')
    parser.add_argument('--examples', type=int, nargs='+', default=[40, 140], help='in-context examples per prompt')
    parser.add_argument('--repetitions', type=int, default=2, help='repetitions (each: one prompt per variant)')
    parser.add_argument('--variants', type=int, default=2, help='class-name variants per repetition')
    parser.add_argument('--batch', nargs='+', default=['auto'], help="our model.batch_size values ('auto', ints)")
    parser.add_argument('--matmul-size', type=int, default=None, help='side of the reference matmul')
    parser.add_argument('--data-dir', type=Path, default=os.environ.get('ICL_DATA_DIR'),
                        help='folder with sst2/ (the original data files, docs/data.md); default $ICL_DATA_DIR')
    parser.add_argument('--json', type=Path, default=None, help='also write the numbers here')
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error('needs the original sst2 files: pass --data-dir or set ICL_DATA_DIR (docs/data.md)')
    os.environ.setdefault('WANDB_MODE', 'disabled')

    info = machine()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    size = args.matmul_size or (8192 if device.type == 'cuda' else 2048)
    dtypes = {precision.dtype_name(d): d for d in (torch.float32, precision.resolve_dtype('auto'))}
    matmul = {name: matmul_flops(dtype, device, size) for name, dtype in dtypes.items()}
    print(f"{info['device']}; torch {info['torch']}; load average {info['load_average']}")
    print('matmul ' + ', '.join(f'{name} {flops / 1e9:.0f} GFLOP/s' for name, flops in matmul.items())
          + f' ([{size}, {size}] @ [{size}, {size}])')
    results = []
    for examples in args.examples:
        results.append(benchmark(args, examples, matmul))
        print_result(results[-1])
    info['load_average_after'] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        args.json.write_text(json.dumps({'machine': info, 'model': args.model,
                                         'matmul_gflops': {k: round(v / 1e9, 1) for k, v in matmul.items()},
                                         'results': results}, indent=2) + '\n')


if __name__ == '__main__':
    main()
