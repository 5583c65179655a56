r"""Defaults of every experiment: the paper's config tree (docs/behaviour.md#config).

Run it as is (offline, packaged model, bundled dataset, ~40 s on 2 CPU cores):

  python change_labels.py

Override any key with a dotted flag, e.g. the paper's SST-2 run on LLaMa-2-70B:

  python change_labels.py --model.name=Llama-2-70b --dataset.name=sst2 \
      --dataset.config.num_prompt_examples=140 --n_repeats=500

Expected result of the plain command (SmolLM2-135M-Instruct in bf16, 15 repetitions x 10
variants, accuracy over the first -> last 10 in-context positions): default 0.73 -> 0.77,
flip 0.39 -> 0.41 (the model's preference for the names' meaning persists), sea_chair_2
0.53 -> 0.53 (no prior meaning: chance).

Every key below is read by the tool. The original's experiment.context_lengths,
model.config.stop_sequences and dataset.config_to_model.max_new_tokens were read by nothing
(scoring generates no text) and are gone (icl/settings.py UNREAD_KEYS: a flag setting one is an
error that says so; no runs.md command sets them). CLASS_NAMES and
OLD_CLASS_NAMES, the original's environment variables, are the defaults of
dataset.class_names_mode and dataset.old_class_names, read when the config is built.
"""
from ml_collections import config_dict

from icl.settings import class_names_from_env, old_class_names_from_env


def get_config() -> config_dict.ConfigDict:
    config = config_dict.ConfigDict()
    config.debug = False  # True -> wandb project 'llm_debug' instead of 'llm'
    config.random_seed = 200  # repetition r draws its examples with seed random_seed + r
    config.experiment_name = 'change-labels'  # stored with the run
    config.note = 'None'  # free text, stored with the run and in its default folder name ('None': left out)
    config.n_repeats = 15  # repetitions: independent draws of in-context examples

    config.model = config_dict.ConfigDict()
    config.model.name = 'smollm2-135m'  # registry name (icl/models.py), hub id or local folder
    config.model.dtype = 'auto'  # auto | float32 | bfloat16 | float16; auto = the paper's for its models, else native
    config.model.batch_size = config_dict.FieldReference('auto', field_type=object)  # int; auto: GPU fits, CPU 1
    config.model.calibrate = True  # query prediction divided by the content-free prior

    config.dataset = config_dict.ConfigDict()
    config.dataset.name = 'tiny_sentiment'  # registry name (icl/datasets.py); bundled, so it runs offline
    config.dataset.fix_space_bug = True  # query ends '\nAnswer:' (True) or '\nAnswer: ' (False)
    config.dataset.class_names_mode = class_names_from_env()  # ALL|DEFAULT_ONLY|DEFAULT_AND_FLIP ($CLASS_NAMES)
    config.dataset.old_class_names = old_class_names_from_env()  # the original's yes/no names ($OLD_CLASS_NAMES=TRUE)

    data = config.dataset.config = config_dict.ConfigDict()
    data.num_test_samples = 1  # queries scored after the in-context examples
    data.num_prompt_examples = 20  # in-context examples per prompt (0: zero-shot, the query alone)
    data.use_validation_if_possible = True  # query from the validation split where there is one
    data.reverse_labels = False  # rotate class names by one: names[(i + 1) % n]
    data.use_model_preds_as_labels = False  # refused if True: the original never filled the predictions
    data.class_names = config_dict.placeholder(list)  # one name per class; None -> the class_names_mode variants
    data.answer_string = config_dict.placeholder(str)  # None -> 'Answer'
    data.prompt_string = config_dict.placeholder(str)  # text before the examples; 'TRIGGER_FLIP' expands
    data.data_dir = config_dict.placeholder(str)  # local copy of the data; None -> $ICL_DATA_DIR, else hub
    data.random_labels = False  # each shown label is the label of a random training row
    data.flip_labels_after = -1  # from example i >= this on, show label (y + 1) % n; -1 = never
    data.flip_labels_multi_lim = 10**19  # never flip examples i > this
    data.flip_labels_after_halfway = False  # flip_labels_after = num_prompt_examples // 2
    data.flip_labels_multi = False  # alternate: flip where (i // flip_labels_after) is odd
    data.replace_labels_by = ''  # show this literal string instead of the label
    data.replace_labels_until_step = -1  # random/replacement labels only before this example
    data.use_default_prompt = False  # start with the dataset's instruction (typos kept)
    data.inputs_off_by_one = False  # example i shows input i + 1 with label i; last one dropped
    return config
