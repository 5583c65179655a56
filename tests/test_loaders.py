"""Local loaders (icl/loaders.py) against the real files in shared/data, and their errors on bad files.

The expected records below were read from the raw files with plain string splitting (not with
icl.loaders), following shared/data/README.md; split() datasets use scikit-learn's
train_test_split(test_size=0.33, random_state=41, stratify=labels) on the file's rows.
"""
from pathlib import Path

import pytest

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


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding='utf-8')
    return path


@pytest.mark.parametrize('name, file, text, message', [
    ('sst2', 'sst2/train.tsv', 'text\tlabel\nfine\t1\n', r"lacks column\(s\) sentence; found: text, label"),
    ('rte', 'rte/train.tsv', 'index\tpremise\thypothesis\tlabel\n0\ta\tb\tentailment\n',
     r"lacks column\(s\) sentence1, sentence2; found: index, premise, hypothesis, label"),
    ('subj', 'subj/train.jsonl', '{"text": "a", "label": 0}\n', r"lacks column\(s\) label_text; found: text, label"),
    ('hate_speech', 'hate_speech18/hate_speech18.csv', 'file_id,text,label\n"1","a","0"\n',
     r"lacks column\(s\) user_id, subforum_id, num_contexts; found: file_id, text, label"),
    ('medical_questions_pairs', 'medical_questions_pairs/mqp.csv', 'q1,q2,1\n',
     r"should have 4 columns \(dr_id,question_1,question_2,label\), found 3"),
    ('ag_news', 'ag_news/train.csv', '"1","title only"\n',
     r"should have 3 columns \(class,title,description\), found 2"),
    ('financial_phrasebank', 'financial_phrasebank/FinancialPhraseBank-v1.0/Sentences_AllAgree.txt',
     'no label here\n', r"has a line without '@label': 'no label here'"),
])
def test_wrong_columns_name_the_file_and_the_columns(tmp_path, name, file, text, message):
    path = write(tmp_path / file, text)
    with pytest.raises(UsageError, match=message) as error:
        loaders.load_records(name, tmp_path)
    assert str(path) in str(error.value)
