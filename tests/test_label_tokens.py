"""Label tokens and answer positions come from the real tokenization, for any tokenizer."""
import pytest

from icl import scoring
from icl.datasets import Repetition
from icl.errors import UsageError
from tests.data_settings import repetition

BINARY_NAMES = ['A', 'B', 'bad', 'blue', 'chair', 'good', 'green', 'negative', 'positive', 'sea']


def sst2_like(**overrides) -> Repetition:
    """A draw from the bundled data: only its format matters here."""
    return repetition(random_seed=0, **{'num_prompt_examples': 6, **overrides})


@pytest.fixture(scope='module')
def sentencepiece_tokenizer(tmp_path_factory):
    """A real SentencePiece (BPE, byte fallback) model trained on SST-2 text, wrapped as a Llama tokenizer."""
    sentencepiece = pytest.importorskip('sentencepiece')
    from transformers import AutoTokenizer

    from icl.loaders import BUNDLED_DIR
    folder = tmp_path_factory.mktemp('spm')
    text = (BUNDLED_DIR / 'tiny_sentiment.csv').read_text().splitlines()[1:]
    text += ["Sentence: 'x' \nAnswer: positive", 'Answer: negative'] * 20
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_prefix=str(folder / 'tokenizer'), vocab_size=600, model_type='bpe',
        byte_fallback=True, character_coverage=1.0, minloglevel=2)
    (folder / 'tokenizer_config.json').write_text('{"tokenizer_class": "LlamaTokenizer", "add_bos_token": true}')
    tokenizer = AutoTokenizer.from_pretrained(folder)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / 'tokenizer.model'))
    return tokenizer, processor


def test_byte_level_bpe_label_tokens_are_the_in_context_ones(smollm2_tokenizer):
    lt = scoring.label_tokens(smollm2_tokenizer, sst2_like().format.example, BINARY_NAMES)
    assert lt.classes == BINARY_NAMES
    assert lt.tokens == ['Ġ' + name for name in BINARY_NAMES]  # with the space, as after 'Answer:'
    assert lt.ids[BINARY_NAMES.index('positive')] == 2731  # not 16185, the id of 'positive' without space
    assert lt.ids == [smollm2_tokenizer.convert_tokens_to_ids('Ġ' + name) for name in BINARY_NAMES]
    assert lt.multi_token == []


def test_multi_token_names_keep_their_first_token(smollm2_tokenizer, caplog):
    names = ['science and technology', 'not hate speech', 'world']
    lt = scoring.label_tokens(smollm2_tokenizer, sst2_like().format.example, names)
    assert lt.tokens == ['Ġscience', 'Ġnot', 'Ġworld']
    assert lt.multi_token == ['science and technology', 'not hate speech']
    assert 'science and technology' in caplog.text


def test_sentencepiece_label_tokens_match_the_sentencepiece_library(sentencepiece_tokenizer):
    tokenizer, processor = sentencepiece_tokenizer
    lt = scoring.label_tokens(tokenizer, sst2_like().format.example, BINARY_NAMES)
    for name, token in zip(BINARY_NAMES, lt.tokens):
        pieces = processor.encode(f'Answer: {name}', out_type=str)  # the library itself, not transformers
        assert token == pieces[pieces.index(':') + 1], name
        assert (name in lt.multi_token) == (len(pieces) - pieces.index(':') > 2), name
    assert lt.tokens[BINARY_NAMES.index('positive')] == '▁positive'


def test_shared_first_token_in_a_variant_is_an_error(smollm2_tokenizer):
    example = sst2_like().format.example
    lt = scoring.label_tokens(smollm2_tokenizer, example, ['not entailment', 'not equivalent', 'yes'])
    lt.check_variant('ok', ['not entailment', 'yes'])
    with pytest.raises(UsageError, match="'not entailment' and 'not equivalent' share their first token 'Ġnot'"):
        lt.check_variant('bad', ['not entailment', 'not equivalent'])


@pytest.mark.parametrize('which', ['bpe', 'sentencepiece'])
def test_answer_positions_point_at_the_colon_before_each_label(which, smollm2_tokenizer, sentencepiece_tokenizer):
    tokenizer = smollm2_tokenizer if which == 'bpe' else sentencepiece_tokenizer[0]
    data = sst2_like(answer_string='Label')
    prompt = data.build_prompt('the last sentence')
    ids, spans = scoring.encode(tokenizer, prompt.text)
    positions = scoring.answer_positions(spans, prompt.answer_ends)
    lt = scoring.label_tokens(tokenizer, data.format.example, ['negative', 'positive'])
    assert len(positions) == prompt.num_examples == 6
    for position, shown in zip(positions, prompt.shown_texts):
        assert tokenizer.convert_ids_to_tokens(ids[position]) == ':'
        assert prompt.text[:spans[position, 1]].endswith('\nLabel:')
        assert ids[position + 1] == lt.ids[lt.classes.index(shown)]  # the next token is the label's
    assert prompt.text.endswith('\nLabel:') and ids[-1] == ids[positions[0]]  # the query ends with the same ':'


def test_special_tokens_are_never_answer_positions(sentencepiece_tokenizer):
    tokenizer = sentencepiece_tokenizer[0]
    ids, spans = scoring.encode(tokenizer, "Answer: yes")
    assert ids[0] == tokenizer.bos_token_id and tuple(spans[0]) == (-1, -1)
    colon = tokenizer.convert_tokens_to_ids(':')
    assert scoring.answer_positions(spans, [len('Answer:')]).tolist() == [ids.index(colon)]
    assert ids.index(colon) > 0
