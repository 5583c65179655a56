r"""The paper's SST-2 experiments at laptop scale: SmolLM2-135M-Instruct, 40 examples, 8 repetitions.

Needs the SST-2 files (ICL_DATA_DIR) or the hub. Each run takes ~15 s on 2 CPU cores:

  CLASS_NAMES=DEFAULT_AND_FLIP python change_labels.py --config=configs/sst2_smollm2.py --note=default
  CLASS_NAMES=DEFAULT_ONLY python change_labels.py --config=configs/sst2_smollm2.py --note=random \
      --dataset.config.random_labels=True
  python -m icl.report runs/sst2-smollm2-135m-default-* runs/sst2-smollm2-135m-random-*

Expected accuracy over the first -> last 10 positions (bf16 on an AVX512-BF16 CPU):
default names 0.56 -> 0.65, flipped names 0.42 -> 0.49, random labels 0.60 -> 0.60:
ICL learns from the labels (random ones do not help) but does not overcome the flip.
"""
from icl.config import base_config


def get_config():
    config = base_config()
    config.dataset.name = 'sst2'
    config.dataset.config.num_prompt_examples = 40
    config.n_repeats = 8
    return config
