"""Loaders (icl/loaders.py): every local loader on hand-written rows in its original format, the
real files in $ICL_DATA_DIR (skipped without them), one-line errors for damaged files, and the hub
path with its parquet-export fallback (the hub replaced by fakes raising the real error types).

The expected real records below were read from the raw files with plain string splitting (not with
icl.loaders), following docs/data.md; split() datasets use scikit-learn's
train_test_split(test_size=0.33, random_state=41, stratify=labels) on the file's rows.
"""
import hashlib
import json
import logging
from pathlib import Path

import pytest
from sklearn.model_selection import train_test_split
from test_prompts import data_dir as prompts_data_dir  # noqa: F401 (sst2, mrpc, rte, wnli, mqp in their formats)

from icl import loaders
from icl.errors import UsageError

EXPECTED = {  # (rows, first record, last record) of each split, read from the raw files
    ('sst2', 'train'): (
        67349,
        {'idx': 0, 'sentence': 'hide new secretions from the parental units ', 'label': 0},
        {
            'idx': 67348,
            'sentence': 'this new jangle of noise , mayhem and stupidity must be a serious contender for the title . ',
            'label': 0,
        },
    ),
    ('sst2', 'validation'): (
        872,
        {'idx': 0, 'sentence': "it 's a charming and often affecting journey . ", 'label': 1},
        {
            'idx': 871,
            'sentence': (
                "looking aristocratic , luminous yet careworn in jane hamilton 's exemplary costumes , "
                "rampling gives a performance that could not be improved upon . ' "
            ),
            'label': 1,
        },
    ),
    ('sst2', 'test'): (
        1821,
        {'idx': 0, 'sentence': 'uneasy mishmash of styles and genres .', 'label': -1},
        {
            'idx': 1820,
            'sentence': (
                'dazzling and sugar-sweet , a blast of shallow magnificence that only sex , scandal , and '
                'a chorus line of dangerous damsels can deliver .'
            ),
            'label': -1,
        },
    ),
    ('subj', 'train'): (
        8000,
        {'text': "the tucks have a secret , they 're immortal . they", 'label': 0, 'label_text': 'objective'},
        {'text': 'he forgets most things after only a few minutes .', 'label': 0, 'label_text': 'objective'},
    ),
    ('subj', 'test'): (
        2000,
        {
            'text': (
                'pirates of the caribbean is a sweeping action-adventure story set in an era when villainous '
                'pirates scavenged the caribbean seas .'
            ),
            'label': 0,
            'label_text': 'objective',
        },
        {
            'text': (
                'for its seriousness , high literary aspirations and stunning acting , the film can only be applauded .'
            ),
            'label': 1,
            'label_text': 'subjective',
        },
    ),
    ('financial_phrasebank', 'train'): (
        1516,
        {
            'sentence': (
                'LEED is an internationally recognized green building certification system , developed by '
                'the U.S. Green Building Council .'
            ),
            'label': 1,
        },
        {
            'sentence': (
                'The adjustments concern staff in both the Specialty Papers and the Fiber Composites segments .'
            ),
            'label': 1,
        },
    ),
    ('financial_phrasebank', 'test'): (
        748,
        {'sentence': 'Less than ten people will face pension agreements .', 'label': 1},
        {'sentence': "The Department Store Division 's sales fell by 8.6 % to EUR 140.2 mn .", 'label': 0},
    ),
    ('medical_questions_pairs', 'train'): (
        2042,
        {
            'dr_id': 4,
            'question_1': (
                'Walked somewhere yesterday in skinny jeans. Left testicle started hurting. Hurts when I '
                'touch it. Never happened before. I am very healthy.'
            ),
            'question_2': (
                'I have had swelling and pain in the left testicle for the past one week. Can an '
                'ultrasound help diagnose what is the problem?'
            ),
            'label': 0,
        },
        {
            'dr_id': 1,
            'question_1': 'Am I over weight (192.9) for my age (39)?',
            'question_2': 'What diet is good for losing weight? Keto or vegan?',
            'label': 0,
        },
    ),
    ('medical_questions_pairs', 'test'): (
        1006,
        {
            'dr_id': 3,
            'question_1': (
                'Still have a dry non productive cough nose stuffed but no fever and occasional '
                'headaches what should I do?'
            ),
            'question_2': (
                'I have finished the course of antibiotic which was prescribed by my doctor but I still '
                'have dry cough, stuffy nose and occasional headache. The fever has subsided though. '
                'What do you suggest? Can I try something at home?'
            ),
            'label': 1,
        },
        {
            'dr_id': 7,
            'question_1': 'Can ibs calm down at night then kick in in the day?',
            'question_2': (
                'I have IBS and recently, I notice that I experience symptoms only in the day and '
                'subsides at night. Is it typical of IBS?'
            ),
            'label': 1,
        },
    ),
    ('mrpc', 'train'): (
        3668,
        {
            'sentence1': (
                'Amrozi accused his brother, whom he called "the witness", of deliberately distorting his evidence.'
            ),
            'sentence2': (
                'Referring to him as only "the witness", Amrozi accused his brother of deliberately '
                'distorting his evidence.'
            ),
            'label': 1,
            'idx': 0,
        },
        {
            'sentence1': (
                'The 30-year bond US30YT=RR rose 22/32 for a yield of 4.31 percent, versus 4.35 percent '
                "at Wednesday's close."
            ),
            'sentence2': (
                'The 30-year bond US30YT=RR grew 1-3/32 for a yield of 4.30 percent, down from 4.35 '
                'percent late Wednesday.'
            ),
            'label': 0,
            'idx': 4075,
        },
    ),
    ('mrpc', 'validation'): (
        408,
        {
            'sentence1': "He said the foodservice pie business doesn't fit the company's long-term growth strategy.",
            'sentence2': '"The foodservice pie business does not fit our long-term growth strategy.',
            'label': 1,
            'idx': 9,
        },
        {
            'sentence1': "Ex-KGB agent Putin added that the Beatles were considered 'propaganda of an alien ideology'.",
            'sentence2': 'In Soviet times the Beatles\' music "was considered propaganda of an alien ideology.',
            'label': 1,
            'idx': 4053,
        },
    ),
    ('mrpc', 'test'): (
        1725,
        {
            'sentence1': (
                "PCCW's chief operating officer, Mike Butcher, and Alex Arena, the chief financial "
                'officer, will report directly to Mr So.'
            ),
            'sentence2': (
                'Current Chief Operating Officer Mike Butcher and Group Chief Financial Officer Alex '
                'Arena will report to So.'
            ),
            'label': 1,
            'idx': 0,
        },
        {
            'sentence1': (
                'Sobig.F spreads when unsuspecting computer users open file attachments in emails that '
                'contain such familiar headings as "Thank You!," "Re: Details" or "Re: That Movie."'
            ),
            'sentence2': (
                'The virus spreads when unsuspecting computer users open file attachments in emails that '
                'contain familiar headings like "Thank You!" and "Re: Details".'
            ),
            'label': 1,
            'idx': 1724,
        },
    ),
    ('wnli', 'train'): (
        635,
        {
            'sentence1': 'I stuck a pin through a carrot. When I pulled the pin out, it had a hole.',
            'sentence2': 'The carrot had a hole.',
            'label': 1,
            'idx': 0,
        },
        {
            'sentence1': 'Although they ran at about the same speed, Sue beat Sally because she had such a bad start.',
            'sentence2': 'Sally had such a bad start.',
            'label': 1,
            'idx': 634,
        },
    ),
    ('wnli', 'validation'): (
        71,
        {
            'sentence1': 'The drain is clogged with hair. It has to be cleaned.',
            'sentence2': 'The hair has to be cleaned.',
            'label': 0,
            'idx': 0,
        },
        {
            'sentence1': (
                'George got free tickets to the play, but he gave them to Eric, because he was not '
                'particularly eager to see it.'
            ),
            'sentence2': 'Eric was not particularly eager to see it.',
            'label': 0,
            'idx': 70,
        },
    ),
    ('wnli', 'test'): (
        146,
        {
            'sentence1': (
                'Maude and Dora had seen the trains rushing across the prairie, with long, rolling puffs '
                'of black smoke streaming back from the engine. Their roars and their wild, clear '
                'whistles could be heard from far away. Horses ran away when they came in sight.'
            ),
            'sentence2': 'Horses ran away when Maude and Dora came in sight.',
            'label': -1,
            'idx': 0,
        },
        {
            'sentence1': (
                'Edward dropped adhesive tape onto his window sill, and when he pulled the tape off, some '
                'of the glue was stuck on it.'
            ),
            'sentence2': 'Some of the glue was stuck on the window sill.',
            'label': -1,
            'idx': 145,
        },
    ),
    ('rte', 'train'): (
        2490,
        {
            'sentence1': 'No Weapons of Mass Destruction Found in Iraq Yet.',
            'sentence2': 'Weapons of Mass Destruction Found in Iraq.',
            'label': 1,
            'idx': 0,
        },
        {
            'sentence1': (
                'Turkey is unlikely to become involved in, or allow U.S. forces to use Turkish territory '
                'in a Middle East war that does not threaten her territory directly.'
            ),
            'sentence2': 'U.S. to use Turkish military bases.',
            'label': 1,
            'idx': 2489,
        },
    ),
    ('rte', 'validation'): (
        277,
        {
            'sentence1': (
                'Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, '
                'according to the Christopher Reeve Foundation.'
            ),
            'sentence2': 'Christopher Reeve had an accident.',
            'label': 1,
            'idx': 0,
        },
        {
            'sentence1': (
                'Danny Kennedy, Greenpeace campaigns director, said: "The burden of proof in the Scott '
                'Parkin expulsion case lies morally with the Commonwealth, to prove that he is a danger. '
                'When the Government brought in anti-terror legislation, they promised the public that '
                'these laws would only be used to confront a real and present risk of a terrorist attack, '
                'not a sweep-all approach against citizens. Peace is not terrorism. Peace is not a threat '
                'to national security. No democratic government should expel a foreign citizen because '
                '[it] opposes his political opinions."'
            ),
            'sentence2': 'Greenpeace director said that peace is terrorism.',
            'label': 1,
            'idx': 276,
        },
    ),
    ('rte', 'test'): (
        3000,
        {
            'sentence1': (
                "Mangla was summoned after Madhumita's sister Nidhi Shukla, who was the first witness in the case."
            ),
            'sentence2': 'Shukla is related to Mangla.',
            'label': -1,
            'idx': 0,
        },
        {
            'sentence1': (
                'A Helios airliner (Boeing 737, flight HCY 522) with 115 passengers and 6 crew onboard '
                'has crashed into a mountain at 09:04 UTC (12:04 p.m. EEST) near Grammatiko, 40 '
                "kilometres (25 miles) north of Athens, while approaching the capital's airport. All on "
                'board perished. The plane was travelling from Larnaca, in the southeast of Cyprus '
                '(Greek:Kypros) and scheduled to arrive in Prague after a stop in Athens. In-flight '
                'events Immediately after take-off, the pilots reported a problem with the air '
                'conditioning system of the aircraft and requested to stay at a low altitude. A few '
                'minutes later, the pilots alerted the station that the problem had been fixed and '
                'requested permission to ascend. This information however has been denied by the Director '
                'of Helios Airways. As the plane approached Athens, all communication abruptly ceased, '
                'and the plane never issued a mayday distress signal. Two Greek F-16 military aircraft '
                'were assigned to observe the plane. The pilots of the F-16s noted that one airliner '
                'pilot appeared to be unconscious and the other was not in the cockpit.'
            ),
            'sentence2': '26 people died in an airplane crash.',
            'label': -1,
            'idx': 2999,
        },
    ),
    ('hate_speech', 'train'): (
        1340,
        {
            'text': 'Everything thinks they are banning all 556/223 and hoarding all of it .',
            'user_id': 578499,
            'subforum_id': 1359,
            'num_contexts': 1,
            'label': 0,
        },
        {
            'text': 'Nearly everything if not all acts that the liberals carry out damage this nation and our people .',
            'user_id': 577669,
            'subforum_id': 1388,
            'num_contexts': 0,
            'label': 1,
        },
    ),
    ('hate_speech', 'test'): (
        660,
        {
            'text': 'Semmelweis University , Department of Forensic Medicine , Budapest , Hungary , 1091 2 .',
            'user_id': 597594,
            'subforum_id': 1383,
            'num_contexts': 3,
            'label': 0,
        },
        {
            'text': 'Beautiful scenery , music , campfire and good , true company .',
            'user_id': 591125,
            'subforum_id': 1391,
            'num_contexts': 2,
            'label': 0,
        },
    ),
    ('ag_news', 'train'): (
        6001,
        {
            'text': (
                ' #39;Do-not-call #39; law is about a year away OTTAWA -- Federal officials hope to introduce '
                'new legislation today to establish a do-not-call registry for consumers who want to put an '
                'end to telemarketing pitches.'
            ),
            'label': 2,
        },
        {
            'text': (
                'Nets get Carter from Raptors INDIANAPOLIS -- All-Star Vince Carter was traded by the Toronto '
                'Raptors to the New Jersey Nets for Alonzo Mourning, Eric Williams, Aaron Williams, and a pair '
                'of first-round draft picks yesterday.'
            ),
            'label': 1,
        },
    ),
    ('ag_news', 'test'): (
        7600,
        {
            'text': (
                'Fears for T N pension after talks Unions representing workers at Turner   Newall say they are '
                "'disappointed' after talks with stricken parent firm Federal Mogul."
            ),
            'label': 2,
        },
        {
            'text': (
                'EBay gets into rentals EBay plans to buy the apartment and home rental service Rent.com for '
                '\\$415 million, adding to its already exhaustive breadth of offerings.'
            ),
            'label': 2,
        },
    ),
}


@pytest.fixture(scope='module')
def records(real_data_dir):
    """All splits of a dataset, loaded once per name (load_records caches them)."""
    return lambda name: loaders.load_records(name, Path(real_data_dir))


@pytest.mark.parametrize('name, split_name', list(EXPECTED))
def test_rows_first_and_last_record(records, name, split_name):
    rows, first, last = EXPECTED[name, split_name]
    data = records(name)[split_name]
    assert len(data) == rows
    assert data[0] == first
    assert data[-1] == last


@pytest.mark.parametrize('name', sorted({name for name, _ in EXPECTED}))
def test_splits_of_each_dataset(records, name):
    assert sorted(records(name)) == sorted(split_name for n, split_name in EXPECTED if n == name)


def test_every_local_dataset_is_checked():
    assert sorted(loaders.LOCAL) == sorted({name for name, _ in EXPECTED})


def test_load_records_is_cached(real_data_dir):
    assert loaders.load_records('sst2', Path(real_data_dir)) is loaders.load_records('sst2', Path(real_data_dir))


def test_mrpc_idx_is_the_row_of_msr_paraphrase_train(records):
    data = records('mrpc')
    assert [r['idx'] for r in data['validation'][:3]] == [9, 18, 25]  # rows listed in dev_ids.tsv
    assert [r['idx'] for r in data['train'][:10]] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]
    assert sorted(r['idx'] for r in data['train'] + data['validation']) == list(range(4076))


def test_financial_phrasebank_is_read_as_iso_8859_1(records):
    data = records('financial_phrasebank')
    rows = data['train'] + data['test']
    assert len(rows) == 2264
    assert {'sentence': "Clothing retail chain Sepp+ñl+ñ 's sales increased by 8 % to EUR 155.2 mn , and operating "
                        'profit rose to EUR 31.1 mn from EUR 17.1 mn in 2004 .', 'label': 2} in rows
    assert [sum(r['label'] == y for r in data['test']) for y in range(3)] == [100, 460, 188]  # stratified


def test_medical_questions_pairs_split_keeps_every_row_once(records):
    data = records('medical_questions_pairs')
    assert len(data['train']) + len(data['test']) == 3048
    assert [sum(r['label'] for r in data[s]) for s in ('train', 'test')] == [1021, 503]


def test_hate_speech_keeps_the_first_1000_rows_of_labels_0_and_1(records, real_data_dir):
    data = records('hate_speech')
    kept = data['train'] + data['test']
    assert [sum(r['label'] == y for r in kept) for y in range(4)] == [1000, 1000, 0, 0]
    assert [sum(r['label'] == y for r in data['test']) for y in (0, 1)] == [330, 330]
    with open(Path(real_data_dir) / 'hate_speech18' / 'hate_speech18.csv', encoding='utf-8') as f:
        lines = f.read().splitlines()[1:]
    first_hate_texts = [line.split('","')[1].replace('""', '"') for line in lines if line.endswith('"1"')][:1000]
    assert sorted(r['text'] for r in kept if r['label'] == 1) == sorted(first_hate_texts)


def test_hate_speech_subset_takes_rows_in_row_order():
    records = [{'label': label} for label in [0, 1, 2, 3] * 1100]  # 1100 rows of each label, interleaved
    assert loaders.hate_speech_subset(records) == sorted([*range(0, 4000, 4), *range(1, 4000, 4)])


def test_split_is_the_stratified_seed_41_split():
    records = [{'id': i, 'label': label} for i, label in enumerate([0, 0, 0, 1, 1, 1, 0, 1, 0])]
    data = loaders.split(records)
    assert [r['id'] for r in data['train']] == [7, 5, 1, 4, 8, 2]
    assert [r['id'] for r in data['test']] == [0, 6, 3]
    subset = loaders.split(records, [1, 2, 3, 5, 6, 7])
    assert [r['id'] for r in subset['train']] == [7, 5, 2, 6]
    assert [r['id'] for r in subset['test']] == [1, 3]


def test_bundled_tiny_sentiment():
    data = loaders.load_records('tiny_sentiment')
    assert (len(data['train']), len(data['test'])) == (174, 86)
    assert [sum(r['label'] for r in data[s]) for s in ('train', 'test')] == [87, 43]  # half positive
    assert data['train'][0] == {'sentence': 'i could not wait for this movie to end', 'label': 0}


def test_data_dir_prefers_the_config_then_the_environment(monkeypatch):
    monkeypatch.setenv('ICL_DATA_DIR', '/from/env')
    assert loaders.data_dir('/from/config') == Path('/from/config')
    assert loaders.data_dir(None) == Path('/from/env')
    monkeypatch.delenv('ICL_DATA_DIR')
    assert loaders.data_dir(None) is None


# ------------------------------------------------------------------ errors for the user

def test_unknown_dataset_lists_the_loadable_names(tmp_path):
    with pytest.raises(UsageError, match=r"no loader for dataset 'sst-2'; choose one of sst2, subj, .*ag_news, "
                                         r'tiny_sentiment'):
        loaders.load_records('sst-2', tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(UsageError, match=f"data folder '{tmp_path / 'nowhere'}' does not exist"):
        loaders.load_records('sst2', tmp_path / 'nowhere')


@pytest.mark.parametrize('name, missing', [
    ('sst2', 'sst2/train.tsv'),
    ('subj', 'subj/train.jsonl'),
    ('financial_phrasebank', 'financial_phrasebank/FinancialPhraseBank-v1.0/Sentences_AllAgree.txt'),
    ('medical_questions_pairs', 'medical_questions_pairs/mqp.csv'),
    ('mrpc', 'mrpc/dev_ids.tsv'),
    ('wnli', 'wnli/train.tsv'),
    ('rte', 'rte/train.tsv'),
    ('hate_speech', 'hate_speech18/hate_speech18.csv'),
    ('ag_news', 'ag_news/train.csv'),
])
def test_missing_file_names_the_file_and_the_folder_searched(tmp_path, name, missing):
    path = tmp_path / missing
    with pytest.raises(UsageError) as error:
        loaders.load_records(name, tmp_path)
    assert f"data file '{path.name}' not found in '{path.parent}'" in str(error.value)


def test_missing_file_message_points_at_the_data_docs(tmp_path):
    with pytest.raises(UsageError) as error:
        loaders.load_records('subj', tmp_path)
    assert str(error.value) == (f"data file 'train.jsonl' not found in '{tmp_path / 'subj'}' (set $ICL_DATA_DIR or "
                                'dataset.config.data_dir to a folder of the original files laid out as docs/data.md '
                                'describes)')


# ------------------------------------------------------------------ every loader on hand-written rows

def write(path: Path, text: str | bytes, encoding: str = 'utf-8') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return path


HATE_CSV = ('"file_id","text","user_id","subforum_id","num_contexts","label"\n'
            '"1_1","We met at the lake .","11","101","0","0"\n'
            '"1_2","They are ""vermin"" .","12","101","1","1"\n'
            '"1_3","Click below\nfor the video .","11","101","0","0"\n'  # a text over two lines, as in the original
            '"1_4","skip this","13","102","0","2"\n'
            '"1_5","Send them all back .","14","102","2","1"\n'
            '"1_6","Nice weather today .","15","102","0","0"\n'
            '"1_7","see the thread","16","103","1","3"\n'
            '"1_8","They ruin everything .","17","103","0","1"\n'
            '"1_9","A fine old church .","18","103","0","0"\n'
            '"1_10","Their kind is a plague .","19","103","1","1"\n')
FPB_LINES = ['Operating profit rose to EUR 13.1 mn .@positive', 'Sales fell by 8 % .@negative',
             'The company is based in Espoo .@neutral', 'Clothing chain Sepp\xe4l\xe4 grew .@positive',
             'Net loss widened .@negative', 'The deal was signed in May .@neutral',
             'Profit per share was EUR 0.12@EUR 0.10 expected .@positive', 'Shares dropped 4 % .@negative',
             'The plant has 40 employees .@neutral']


@pytest.fixture(scope='module')
def formats_dir(tmp_path_factory) -> Path:
    """Tiny subj, financial_phrasebank, hate_speech18 and ag_news files in their original formats
    (the other five datasets' tiny files are test_prompts.py's)."""
    root = tmp_path_factory.mktemp('formats')
    write(root / 'subj' / 'train.jsonl', '{"text": "the film follows a detective .", "label": 0, '
          '"label_text": "objective"}\n{"text": "a gorgeous , witty caf\u00e9 film .", "label": 1, '
          '"label_text": "subjective"}\n{"text": "she moves to paris in 1920 .", "label": 0, '
          '"label_text": "objective"}\n')
    write(root / 'subj' / 'test.jsonl', '{"text": "an utter bore .", "label": 1, "label_text": "subjective"}\n'
          '{"text": "the story is set in a small town .", "label": 0, "label_text": "objective"}\n')
    write(root / 'financial_phrasebank' / 'FinancialPhraseBank-v1.0' / 'Sentences_AllAgree.txt',
          '\r\n'.join(FPB_LINES) + '\r\n', encoding='iso-8859-1')
    write(root / 'hate_speech18' / 'hate_speech18.csv', HATE_CSV)
    write(root / 'ag_news' / 'train.csv', '"3","Wall St. Bears Claw Back","Reuters - Short-sellers are green again."\n'
          '"2","Nets get Carter","INDIANAPOLIS -- All-Star Vince Carter was traded."\n'
          '"4","New Chip","A faster\\chip for \\$415 million."\n')
    write(root / 'ag_news' / 'test.csv', '"1","Talks end","Unions say they are \'disappointed\'."\n'
          '"4","Space race","A second\\team of rocketeers."\n')
    return root


def sklearn_split(rows: list[dict], keep: list[int] | None = None) -> dict[str, list[dict]]:
    """The original's split, computed here with scikit-learn directly."""
    indices = keep if keep is not None else list(range(len(rows)))
    train, test = train_test_split(indices, test_size=0.33, random_state=41,
                                   stratify=[rows[i]['label'] for i in indices])
    return {'train': [rows[i] for i in train], 'test': [rows[i] for i in test]}


def pair(s1: str, s2: str, label: int, idx: int) -> dict:
    return {'sentence1': s1, 'sentence2': s2, 'label': label, 'idx': idx}


MQP_ROWS = [
    {'dr_id': 1, 'question_1': 'Is flu contagious?', 'question_2': 'Can I give the flu to others?', 'label': 1},
    {'dr_id': 1, 'question_1': 'Is flu contagious?', 'question_2': 'Is flu a virus?', 'label': 0},
    {'dr_id': 2, 'question_1': 'Can I run with a cold?', 'question_2': 'Is jogging fine when I have a cold?',
     'label': 1},
    {'dr_id': 2, 'question_1': 'Can I run with a cold?', 'question_2': 'How long does a cold last?', 'label': 0},
    {'dr_id': 3, 'question_1': 'Does coffee raise blood pressure?',
     'question_2': 'Can caffeine increase my blood pressure?', 'label': 1},
    {'dr_id': 3, 'question_1': 'Does coffee raise blood pressure?', 'question_2': 'Is decaf healthier?', 'label': 0},
]
FPB_ROWS = [{'sentence': line.rsplit('@', 1)[0], 'label': ['negative', 'neutral', 'positive'].index(
    line.rsplit('@', 1)[1])} for line in FPB_LINES]
HATE_ROWS = [{'text': text, 'user_id': user, 'subforum_id': forum, 'num_contexts': contexts, 'label': label}
             for text, user, forum, contexts, label in [
                 ('We met at the lake .', 11, 101, 0, 0), ('They are "vermin" .', 12, 101, 1, 1),
                 ('Click below\nfor the video .', 11, 101, 0, 0), ('skip this', 13, 102, 0, 2),
                 ('Send them all back .', 14, 102, 2, 1), ('Nice weather today .', 15, 102, 0, 0),
                 ('see the thread', 16, 103, 1, 3), ('They ruin everything .', 17, 103, 0, 1),
                 ('A fine old church .', 18, 103, 0, 0), ('Their kind is a plague .', 19, 103, 1, 1)]]

TINY_EXPECTED = {  # every split of every local loader, from the hand-written rows
    'sst2': {
        'train': [{'idx': i, 'sentence': s, 'label': y} for i, (s, y) in enumerate(
            [('a dull mess', 0), ('a gem', 1), ('pure joy', 1), ('tedious', 0), ('flat and lifeless', 0),
             ('moving', 1)])],
        'validation': [{'idx': 0, 'sentence': 'an instant classic', 'label': 1},
                       {'idx': 1, 'sentence': 'a waste of time', 'label': 0},
                       {'idx': 2, 'sentence': 'warm and funny', 'label': 1}],
        'test': [{'idx': 0, 'sentence': 'no label one', 'label': -1}, {'idx': 1, 'sentence': 'no label two',
                                                                        'label': -1}],
    },
    'mrpc': {  # the row listed in dev_ids.tsv goes to validation and keeps its row number as idx
        'train': [pair('The cat sat.', 'A cat was sitting.', 1, 0), pair('Stocks rose.', 'It rained.', 0, 1),
                  pair('Sales fell.', 'The team won.', 0, 3)],
        'validation': [pair('He left early.', 'He went home early.', 1, 2)],
        'test': [pair('She smiled.', 'She was smiling.', 1, 0)],
    },
    'rte': {  # entailment = 0, not_entailment = 1
        'train': [pair('A dog barked loudly.', 'A dog made noise.', 0, 0),
                  pair('The shop is closed.', 'The shop is open.', 1, 1), pair('Tom ate lunch.', 'Tom ate.', 0, 2)],
        'validation': [pair('Ann sang a song.', 'Ann sang.', 0, 0)],
        'test': [pair('Rain fell.', 'It was dry.', -1, 0)],
    },
    'wnli': {
        'train': [pair('The cup fell off the table because it was wobbly.', 'The table was wobbly.', 1, 0),
                  pair('Sam thanked Max because he had helped.', 'Sam had helped.', 0, 1)],
        'validation': [pair('The bag was heavy so Ed dropped it.', 'The bag was heavy.', 1, 0)],
        'test': [pair('Jo hugged Al when he cried.', 'Al cried.', -1, 0)],
    },
    'medical_questions_pairs': sklearn_split(MQP_ROWS),
    'subj': {
        'train': [{'text': 'the film follows a detective .', 'label': 0, 'label_text': 'objective'},
                  {'text': 'a gorgeous , witty caf\u00e9 film .', 'label': 1, 'label_text': 'subjective'},
                  {'text': 'she moves to paris in 1920 .', 'label': 0, 'label_text': 'objective'}],
        'test': [{'text': 'an utter bore .', 'label': 1, 'label_text': 'subjective'},
                 {'text': 'the story is set in a small town .', 'label': 0, 'label_text': 'objective'}],
    },
    'financial_phrasebank': sklearn_split(FPB_ROWS),
    'hate_speech': sklearn_split(HATE_ROWS, [0, 1, 2, 4, 5, 7, 8, 9]),  # the rows of labels 0 and 1
    'ag_news': {  # title + ' ' + description; class 1-4 -> label 0-3; backslashes kept
        'train': [{'text': 'Wall St. Bears Claw Back Reuters - Short-sellers are green again.', 'label': 2},
                  {'text': 'Nets get Carter INDIANAPOLIS -- All-Star Vince Carter was traded.', 'label': 1},
                  {'text': 'New Chip A faster\\chip for \\$415 million.', 'label': 3}],
        'test': [{'text': "Talks end Unions say they are 'disappointed'.", 'label': 0},
                 {'text': 'Space race A second\\team of rocketeers.', 'label': 3}],
    },
}
FROM_TEST_PROMPTS = {'sst2', 'mrpc', 'rte', 'wnli', 'medical_questions_pairs'}


@pytest.fixture(scope='module')
def tiny_dir(request, formats_dir):
    """The folder holding a dataset's hand-written files."""
    return lambda name: (Path(request.getfixturevalue('prompts_data_dir')) if name in FROM_TEST_PROMPTS
                         else formats_dir)


@pytest.mark.parametrize('name', sorted(TINY_EXPECTED))
def test_loader_reads_its_original_format(tiny_dir, name):
    assert loaders.load_records(name, tiny_dir(name)) == TINY_EXPECTED[name]


def test_every_local_loader_has_a_hand_written_test():
    assert sorted(TINY_EXPECTED) == sorted(loaders.LOCAL)


def test_tiny_expectations_hold_the_format_details():  # the hand-written rows exercise what matters
    fpb = TINY_EXPECTED['financial_phrasebank']
    assert sorted(r['label'] for r in fpb['test']) == [0, 1, 2]  # stratified
    assert {'sentence': 'Profit per share was EUR 0.12@EUR 0.10 expected .', 'label': 2} in fpb['train'] + fpb['test']
    assert {'sentence': 'Clothing chain Sepp\xe4l\xe4 grew .', 'label': 2} in fpb['train'] + fpb['test']  # ISO-8859-1
    kept = TINY_EXPECTED['hate_speech']['train'] + TINY_EXPECTED['hate_speech']['test']
    assert sorted(r['label'] for r in kept) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert {'text': 'Click below\nfor the video .', 'user_id': 11, 'subforum_id': 101, 'num_contexts': 0,
            'label': 0} in kept


# ------------------------------------------------------------------ damaged files: one line, file and line named

SST2_TRAIN = 'sst2/train.tsv'
FPB_FILE = 'financial_phrasebank/FinancialPhraseBank-v1.0/Sentences_AllAgree.txt'
HATE_FILE = 'hate_speech18/hate_speech18.csv'
HATE_HEADER = '"file_id","text","user_id","subforum_id","num_contexts","label"\n'
DOC = ' (see docs/data.md)'


@pytest.mark.parametrize('name, file, content, message', [
    ('sst2', SST2_TRAIN, b'sentence\tlabel\nfine\t1\ncaf\xe9 noir\t0\n', 'line 3: byte 0xe9 is not valid UTF-8'),
    ('subj', 'subj/train.jsonl', b'{"text": "a", "label": 0, "label_text": "objective"}\n\n{"text": "\xff"}\n',
     'line 3: byte 0xff is not valid UTF-8'),
    ('sst2', SST2_TRAIN, 'sentence\tlabel\nfine\t1\nbad\tpositive\n', "line 3: label 'positive' is not an integer"),
    ('medical_questions_pairs', 'medical_questions_pairs/mqp.csv', 'x1,q,q2,1\n',
     "line 1: dr_id 'x1' is not an integer"),
    ('hate_speech', HATE_FILE, HATE_HEADER + '"1","a","7","101","0","0"\n"2","b","7","101","none","1"\n',
     "line 3: num_contexts 'none' is not an integer"),
    ('subj', 'subj/train.jsonl', '{"text": "a", "label": "0.5", "label_text": "objective"}\n',
     "line 1: label '0.5' is not an integer"),
    ('sst2', SST2_TRAIN, 'sentence\tlabel\nfine\t1\ncut off her', 'line 3: has 1 field(s), expected 2 '
                                                                 '(sentence, label); is the file truncated?'),
    ('hate_speech', HATE_FILE, HATE_HEADER + '"1","a","7","101","0","0"\n"2","a text cut\noff',
     'line 3: is not valid CSV (unexpected end of data; is the file truncated?)'),
    ('subj', 'subj/train.jsonl', '{"text": "a", "label": 0, "label_text": "objective"}\n{"text": "b", "lab',
     'line 2: is not valid JSON (Unterminated string starting at; is the file truncated?)'),
    ('sst2', SST2_TRAIN, 'sentence\tlabel\nfine\t1\nodd\t2\n', 'line 3: label 2 is out of range (valid: 0, 1)'),
    ('ag_news', 'ag_news/train.csv', '"3","t","d"\n"5","t","d"\n',
     'line 2: class 5 is out of range (valid: 1, 2, 3, 4)'),
    ('hate_speech', HATE_FILE, HATE_HEADER + '"1","a","7","101","0","4"\n',
     'line 2: label 4 is out of range (valid: 0, 1, 2, 3)'),
    ('wnli', 'wnli/train.tsv', 'index\tsentence1\tsentence2\tlabel\n0\ta\tb\t-1\n',
     'line 2: label -1 is out of range (valid: 0, 1)'),
    ('financial_phrasebank', FPB_FILE, 'Sales rose .@positive\r\nSales fell .@negtive\r\n',
     "line 2: label 'negtive' is not one of negative, neutral, positive"),
    ('rte', 'rte/train.tsv', 'index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailed\n',
     "line 2: label 'entailed' is not one of entailment, not_entailment"),
    ('financial_phrasebank', FPB_FILE, 'Sales rose .@positive\r\nno label here\r\n',
     "line 2: has no '@label' at the end: 'no label here'"),
    ('medical_questions_pairs', 'medical_questions_pairs/mqp.csv', '1,q1,q2,1\n2,q,1\n3,q1,q2,0\n',
     'line 2: has 3 field(s), expected 4 (dr_id, question_1, question_2, label)'),
    ('sst2', SST2_TRAIN, 'text\tlabel\nfine\t1\n', 'lacks column(s) sentence; found: text, label'),
    ('rte', 'rte/train.tsv', 'index\tpremise\thypothesis\tlabel\n0\ta\tb\tentailment\n',
     'lacks column(s) sentence1, sentence2; found: index, premise, hypothesis, label'),
    ('subj', 'subj/train.jsonl', '{"text": "a", "label": 0}\n',
     'line 1: lacks column(s) label_text; found: text, label'),
    ('hate_speech', HATE_FILE, 'file_id,text,label\n"1","a","0"\n',
     'lacks column(s) user_id, subforum_id, num_contexts; found: file_id, text, label'),
])
def test_damaged_file_is_one_line_naming_file_line_and_fault(tmp_path, name, file, content, message):
    path = write(tmp_path / file, content)
    with pytest.raises(UsageError) as error:
        loaders.load_records(name, tmp_path)
    assert str(error.value) == f"data file '{path}' {message}{DOC}"


@pytest.mark.parametrize('name, file, content, message', [
    ('sst2', SST2_TRAIN, 'sentence\tlabel\n', 'has a header but no rows'),
    ('rte', 'rte/train.tsv', 'index\tsentence1\tsentence2\tlabel\r\n', 'has a header but no rows'),
    ('hate_speech', HATE_FILE, HATE_HEADER, 'has a header but no rows'),
    ('mrpc', 'mrpc/dev_ids.tsv', '', 'has no rows'),
    ('medical_questions_pairs', 'medical_questions_pairs/mqp.csv', '\n', 'has no rows'),
    ('ag_news', 'ag_news/train.csv', '', 'has no rows'),
    ('subj', 'subj/train.jsonl', '\n\n', 'has no rows'),
    ('financial_phrasebank', FPB_FILE, '\r\n', 'has no rows'),
])
def test_file_without_rows_says_so(tmp_path, name, file, content, message):
    path = write(tmp_path / file, content)
    with pytest.raises(UsageError) as error:
        loaders.load_records(name, tmp_path)
    assert str(error.value) == f"data file '{path}' {message}{DOC}"


# ------------------------------------------------------------------ the hub and its parquet-export fallback

SCRIPT_REFUSED = 'Dataset scripts are no longer supported, but found {}.py'  # datasets>=4.0's message


class Fake:
    """A stand-in for a hub call: records its arguments and answers with the next response."""

    def __init__(self, *responses):
        self.responses, self.calls = list(responses), []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        response = self.responses.pop(0)
        if isinstance(response, BaseException):
            raise response
        return response(*args, **kwargs) if callable(response) else response


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Install fakes for `load_dataset` and the export download: hub(load_responses, export_responses)."""
    import datasets
    monkeypatch.setattr(datasets.config, 'HF_DATASETS_CACHE', tmp_path / 'hf-cache')
    for name in loaders.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    loaders.load_records.cache_clear()

    def install(load: list, export: list) -> tuple[Fake, Fake]:
        fakes = Fake(*load), Fake(*export)
        monkeypatch.setattr(loaders, '_load_dataset', fakes[0])
        monkeypatch.setattr(loaders, '_download_export', fakes[1])
        return fakes
    yield install
    loaders.load_records.cache_clear()


def dataset_dict(splits: dict[str, list[dict]], label_names: list[str] | None = None):
    """A DatasetDict as the hub's builder makes it (label a ClassLabel when it has names)."""
    import datasets
    out = {}
    for name, rows in splits.items():
        part = datasets.Dataset.from_list(rows)
        if label_names:
            part = part.cast_column('label', datasets.ClassLabel(names=label_names))
        out[name] = part
    return datasets.DatasetDict(out)


def export(root: Path, folders: list[str]) -> Path:
    """An export snapshot with one (empty) folder per configuration."""
    for folder in folders:
        (root / folder).mkdir(parents=True)
    return root


def test_refused_script_loads_the_parquet_export_of_the_same_repository_and_configuration(hub, tmp_path, caplog):
    root = export(tmp_path / 'export', ['sentences_50agree', 'sentences_allagree'])
    refused = RuntimeError(SCRIPT_REFUSED.format('financial_phrasebank'))
    load, download = hub([refused, dataset_dict({'train': FPB_ROWS})], [root])
    caplog.set_level(logging.INFO)
    assert loaders.load_records('financial_phrasebank') == sklearn_split(FPB_ROWS)
    assert load.calls == [(('financial_phrasebank', 'sentences_allagree'), {}),  # the original's call first
                          ((str(root / 'sentences_allagree'),), {})]
    assert download.calls == [(('financial_phrasebank',), {})]
    assert [r.getMessage() for r in caplog.records if r.name == 'root'] == [
        'Loading financial_phrasebank from its parquet export (revision refs/convert/parquet, folder '
        'sentences_allagree): the hub refuses its loading script']


def test_export_of_an_unnamed_configuration_is_its_only_folder(hub, tmp_path):
    root = export(tmp_path / 'export', ['default'])
    load, _ = hub([RuntimeError(SCRIPT_REFUSED.format('hate_speech18')), dataset_dict({'train': HATE_ROWS})], [root])
    assert loaders.load_records('hate_speech') == TINY_EXPECTED['hate_speech']
    assert load.calls == [(('hate_speech18',), {}), ((str(root / 'default'),), {})]


def test_export_without_the_configuration_is_a_one_line_error(hub, tmp_path):
    hub([RuntimeError(SCRIPT_REFUSED.format('financial_phrasebank'))], [export(tmp_path / 'export', ['default'])])
    with pytest.raises(UsageError) as error:
        loaders.load_records('financial_phrasebank')
    assert str(error.value) == (
        "could not load 'financial_phrasebank' from the HuggingFace hub (FileNotFoundError: the parquet export of "
        "'financial_phrasebank' has no folder for configuration sentences_allagree; found: default); set "
        "$ICL_DATA_DIR to a folder of the original files (docs/data.md), or, on a machine without internet, "
        "prepare the HuggingFace cache first (README, 'Offline machines')")


def hub_errors():
    from datasets.exceptions import DatasetNotFoundError
    return [
        DatasetNotFoundError("Dataset 'sst2' doesn't exist on the Hub or cannot be accessed."),
        DatasetNotFoundError("Dataset 'sst2' is a gated dataset on the Hub. You must be authenticated to access it."),
        ConnectionError("Couldn't reach 'sst2' on the Hub (LocalEntryNotFoundError)"),
        RuntimeError('Something else went wrong\nsecond line'),
    ]


@pytest.mark.parametrize('case', range(4))
def test_other_hub_failures_do_not_fall_back_and_say_what_to_do(hub, case):
    error = hub_errors()[case]
    load, download = hub([error], [])
    with pytest.raises(UsageError) as raised:
        loaders.load_records('sst2')
    assert load.calls == [(('sst2',), {})] and download.calls == []
    assert str(raised.value) == (
        f"could not load 'sst2' from the HuggingFace hub ({type(error).__name__}: {str(error).splitlines()[0]}); "
        "set $ICL_DATA_DIR to a folder of the original files (docs/data.md), or, on a machine without internet, "
        "prepare the HuggingFace cache first (README, 'Offline machines')")


@pytest.mark.parametrize('variable', ['HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE'])
def test_offline_reads_a_cached_export(hub, tmp_path, monkeypatch, caplog, variable):
    monkeypatch.setenv(variable, '1')
    root = export(tmp_path / 'export', ['default'])
    offline = ConnectionError("Couldn't reach the Hugging Face Hub for dataset 'medical_questions_pairs'")
    load, _ = hub([offline, dataset_dict({'train': MQP_ROWS})], [root])
    caplog.set_level(logging.INFO)
    assert loaders.load_records('medical_questions_pairs') == TINY_EXPECTED['medical_questions_pairs']
    assert load.calls[1] == ((str(root / 'default'),), {})
    assert 'the hub is offline' in caplog.text


def test_offline_without_a_cached_export_reports_the_original_error(hub, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    hub([ConnectionError("Couldn't reach the Hugging Face Hub for dataset 'sst2'")],
        [LocalEntryNotFoundError('Cannot find an appropriate cached snapshot folder')])
    with pytest.raises(UsageError, match=r"^could not load 'sst2' from the HuggingFace hub \(ConnectionError: "
                                         r"Couldn't reach the Hugging Face Hub for dataset 'sst2'\); set "):
        loaders.load_records('sst2')


def test_refused_script_with_an_unreachable_export_names_the_export_failure(hub):
    hub([RuntimeError(SCRIPT_REFUSED.format('medical_questions_pairs'))], [ConnectionError('export unreachable')])
    with pytest.raises(UsageError, match=r"^could not load 'medical_questions_pairs' from the HuggingFace hub "
                                         r'\(ConnectionError: export unreachable\); '):
        loaders.load_records('medical_questions_pairs')


def test_decision_is_the_script_refusal_only():
    assert loaders.refuses_script(RuntimeError(SCRIPT_REFUSED.format('x')))
    assert not loaders.refuses_script(RuntimeError('CUDA error'))
    assert not loaders.refuses_script(ValueError(SCRIPT_REFUSED.format('x')))


LABEL_NAMES = {'financial_phrasebank': loaders.FPB_LABELS, 'medical_questions_pairs': None,
               'hate_speech': None, 'sst2': ['negative', 'positive']}


def write_export(splits: dict[str, list[dict]], folder: Path, label_names: list[str] | None, layout: str) -> None:
    """A configuration's folder of the hub export, written by `datasets` itself, in one of its layouts:
    <split>/0000.parquet (today), <split>/0000.parquet + 0001.parquet (sharded), <repo>-<split>.parquet (older)."""
    folder.mkdir(parents=True)
    for name, part in dataset_dict(splits, label_names).items():
        if layout == 'files':
            part.to_parquet(str(folder / f'repo-{name}.parquet'))
            continue
        (folder / name).mkdir()
        half = len(part) // 2 if layout == 'shards' else len(part)
        part.select(range(half)).to_parquet(str(folder / name / '0000.parquet'))
        if half < len(part):
            part.select(range(half, len(part))).to_parquet(str(folder / name / '0001.parquet'))


def records_both_ways(hub, tmp_path, name: str, local_dir: Path, layout: str = 'folders') -> tuple[dict, dict]:
    """Records of `name` through the hub's direct path and through the export fallback (real parquet files)."""
    from datasets import load_dataset
    splits = loaders.LOCAL[name](local_dir)  # the hub's splits, built from the original files
    source = loaders.HUB[name]
    hub([dataset_dict(splits, LABEL_NAMES[name])], [])
    direct = loaders.load_records(name)
    loaders.load_records.cache_clear()
    root = tmp_path / 'export'
    write_export(splits, root / (source.config or 'default'), LABEL_NAMES[name], layout)
    hub([RuntimeError(SCRIPT_REFUSED.format(source.path)), load_dataset], [root])
    return direct, loaders.load_records(name)


@pytest.mark.parametrize('layout', ['folders', 'shards', 'files'])
@pytest.mark.parametrize('name', sorted(LABEL_NAMES))
def test_fallback_records_go_through_the_same_conversion(hub, tmp_path, tiny_dir, name, layout):
    direct, fallback = records_both_ways(hub, tmp_path, name, tiny_dir(name), layout)
    assert fallback == direct == TINY_EXPECTED[name]  # same columns, label ints, order and split


@pytest.mark.parametrize('name', ['financial_phrasebank', 'medical_questions_pairs', 'hate_speech'])
def test_fallback_records_equal_the_local_records_on_the_real_files(hub, tmp_path, real_data_dir, name):
    direct, fallback = records_both_ways(hub, tmp_path, name, real_data_dir)
    loaders.load_records.cache_clear()
    assert fallback == direct == loaders.load_records(name, real_data_dir)


def test_hub_calls_are_the_originals():
    assert {name: source.arguments for name, source in loaders.HUB.items()} == {
        'sst2': ('sst2',), 'subj': ('SetFit/subj',),
        'financial_phrasebank': ('financial_phrasebank', 'sentences_allagree'),
        'medical_questions_pairs': ('medical_questions_pairs',), 'mrpc': ('glue', 'mrpc'), 'wnli': ('glue', 'wnli'),
        'rte': ('glue', 'rte'), 'hate_speech': ('hate_speech18',), 'ag_news': ('ag_news',)}
    assert sorted(n for n, s in loaders.HUB.items() if s.split_train) == ['financial_phrasebank', 'hate_speech',
                                                                          'medical_questions_pairs']


def test_export_download_asks_for_the_parquet_revision_of_the_dataset_repository(monkeypatch, tmp_path):
    import huggingface_hub
    download = Fake(str(tmp_path))
    monkeypatch.setattr(huggingface_hub, 'snapshot_download', download)
    assert loaders._download_export('hate_speech18') == tmp_path
    assert download.calls == [((), {'repo_id': 'hate_speech18', 'repo_type': 'dataset',
                                    'revision': 'refs/convert/parquet'})]


def test_offline_run_reads_a_cached_export_with_the_real_libraries(tmp_path, formats_dir):
    """HF_HUB_OFFLINE as on a compute node: the original call fails, the export comes from HF_HOME's hub cache
    (laid out as huggingface_hub lays out a download of revision refs/convert/parquet)."""
    import json
    import os
    import subprocess
    import sys

    from icl.config import REPO_ROOT
    repo = tmp_path / 'hf' / 'hub' / 'datasets--financial_phrasebank'
    (repo / 'refs' / 'refs' / 'convert').mkdir(parents=True)
    (repo / 'refs' / 'refs' / 'convert' / 'parquet').write_text('0123abcd')
    splits = loaders.LOCAL['financial_phrasebank'](formats_dir)
    write_export(splits, repo / 'snapshots' / '0123abcd' / 'sentences_allagree', loaders.FPB_LABELS, 'folders')
    env = {**os.environ, 'HF_HOME': str(tmp_path / 'hf'), 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1',
           'PYTHONPATH': str(REPO_ROOT)}
    env.pop('ICL_DATA_DIR', None)
    script = ('import json, logging; logging.basicConfig(level=logging.INFO, format="%(message)s"); '
              'from icl import loaders; print(json.dumps(loaders.load_records("financial_phrasebank")))')
    done = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == TINY_EXPECTED['financial_phrasebank']
    assert ('Loading financial_phrasebank from its parquet export (revision refs/convert/parquet, folder '
            'sentences_allagree): the hub is offline') in done.stderr.splitlines()


def test_the_data_fingerprint_ignores_row_order_only_for_the_unseeded_shuffle():
    """author_id's rows come in a new order in every process (the original's unseeded shuffle): a resume must not
    take that for other data; every other dataset's order is part of its draws, so there it counts."""
    a, b = {'sentence': 'hi', 'author': 0}, {'sentence': 'yo', 'author': 1}
    splits = lambda name, rows: loaders.records_fingerprint(name, {'train': rows})['splits']  # noqa: E731
    assert splits('author_id', [a, b]) == splits('author_id', [b, a])
    assert splits('sst2', [a, b]) != splits('sst2', [b, a])
    assert splits('sst2', [a, b])['train'] == {  # unchanged since runs first recorded it: old runs still resume
        'rows': 2, 'sha256': hashlib.sha256(json.dumps([a, b], sort_keys=True).encode()).hexdigest()}
