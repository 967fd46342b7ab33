# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
SentenceStream (ROS-free): the sentence rules, incremental = all at once, concatenation.

Property-style tests use seeded ``random`` (fixed seeds, so a failure is reproducible by its
parameters): every text is fed in many random splits and must give the same sentences.
"""
import random

from br_chat_lifecycle.sentence_stream import SentenceStream
import pytest


def split(text, max_chars=200):
    """All at once."""
    stream = SentenceStream(max_chars)
    out = stream.feed(text)
    rest = stream.finish()
    return out + ([rest] if rest else [])


def split_pieces(pieces, max_chars=200):
    stream = SentenceStream(max_chars)
    out = []
    for piece in pieces:
        out.extend(stream.feed(piece))
    rest = stream.finish()
    return out + ([rest] if rest else [])


def split_chars(text, max_chars=200):
    """One character at a time."""
    return split_pieces(list(text), max_chars)


def random_pieces(text, rng):
    cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, min(len(text) - 1, 40))))
    bounds = [0] + cuts + [len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def check(text, expected, max_chars=200):
    assert split(text, max_chars) == expected
    assert split_chars(text, max_chars) == expected
    assert ''.join(expected) == text


# ---------------------------------------------------------------- English
def test_english_terminators():
    check('Hello world. How are you? I am fine! Really.',
          ['Hello world.', ' How are you?', ' I am fine!', ' Really.'])


def test_semicolon_and_consecutive_terminators():
    check('Wait; stop. Really?! Yes!!! OK.',
          ['Wait;', ' stop.', ' Really?!', ' Yes!!!', ' OK.'])


def test_numbers_never_split():
    check('It costs 3.5 dollars or 1,000.25 yen. Version v2.0 and 10.0.1 are out. Pi is 3.14.',
          ['It costs 3.5 dollars or 1,000.25 yen.', ' Version v2.0 and 10.0.1 are out.',
           ' Pi is 3.14.'])


def test_number_at_sentence_end_then_space_splits():
    check('I counted to 3. Then I stopped.', ['I counted to 3.', ' Then I stopped.'])


def test_dot_inside_names_and_before_commas():
    check('See example.com for more, e.g., the docs. Done.',
          ['See example.com for more, e.g., the docs.', ' Done.'])


@pytest.mark.parametrize('text', [
    'Dr. Smith and Mr. Jones met Mrs. Brown and Ms. White.',
    'Prof. Lee said hello.',
    'Use a fruit, e.g. an apple, or a nut, i.e. something hard.',
    'Compare cf. chapter two vs. chapter three.',
    'J. R. R. Tolkien wrote it.',
    'He takes vitamin C. every day.',
])
def test_abbreviations_and_initials_never_end_a_sentence(text):
    check(text, [text])


def test_etc_mid_sentence_vs_end_of_sentence():
    check('Apples, pears, etc. are fruits. I like apples, pears, etc. They are sweet.',
          ['Apples, pears, etc. are fruits.', ' I like apples, pears, etc.',
           ' They are sweet.'])


def test_dotted_acronym_and_times():
    check('I live in the U.S. It is big. The U.S. army left at 5 p.m. and came back at 6 '
          'a.m. Then it rained.',
          ['I live in the U.S.', ' It is big.',
           ' The U.S. army left at 5 p.m. and came back at 6 a.m.', ' Then it rained.'])


def test_ellipsis():
    check('Wait... what? Well... I think so. Hmm… OK. Dots...and more.',
          ['Wait... what?', ' Well...', ' I think so.', ' Hmm…', ' OK.',
           ' Dots...and more.'])


def test_closing_quotes_and_brackets_belong_to_the_sentence():
    check('He said "stop." Then (really!) he left. \'Go!\' she said. Yes!) ok',
          ['He said "stop."', ' Then (really!)', ' he left.', " 'Go!'", ' she said.',
           ' Yes!)', ' ok'])


def test_markdown_emphasis_closes_with_the_sentence():
    check('**Note.** Read this.', ['**Note.**', ' Read this.'])


def test_newlines():
    check('Line one\nLine two\n\nLine three\n', ['Line one\n', 'Line two\n', '\nLine three\n'])
    check('Title:\r\n- item a\n- item b.', ['Title:\r\n', '- item a\n', '- item b.'])


def test_numbered_list_markers_do_not_split():
    check('Steps:\n1. Open the door.\n2. Walk in.\n 10. Sit.',
          ['Steps:\n', '1. Open the door.', '\n2. Walk in.', '\n 10. Sit.'])
    check('1. First.', ['1. First.'])


def test_rest_of_a_text_split_with_preceding_context():
    text = 'Steps:\n1. Open the door.\n2. Walk in. I counted to 3. Done.'
    whole = split(text)
    for cut in range(1, len(text)):
        head = SentenceStream(200)
        first = head.feed(text[:cut])
        if not first:
            continue
        done = ''.join(first)
        tail = SentenceStream(200, preceding=done)
        rest = tail.feed(text[len(done):])
        last = tail.finish()
        assert first + rest + ([last] if last else []) == whole, cut


def test_whitespace_only_is_not_a_sentence():
    check('\n\n  Hello.', ['\n\n  Hello.'])
    check('   ', ['   '])
    check('', [])


def test_sentence_after_terminator_waits_for_next_character():
    stream = SentenceStream(200)
    assert stream.feed('Hello world.') == []          # "." then " "? or a digit? or '"'?
    assert stream.feed(' How') == ['Hello world.']   # the space decides
    assert stream.feed(' are you?') == []             # a closer may follow "?"
    assert stream.feed('"') == []
    assert stream.feed(' Fine') == [' How are you?"']
    assert stream.finish() == ' Fine'
    assert stream.finish() == ''


def test_decided_sentences_released_by_the_piece_that_completes_them():
    stream = SentenceStream(200)
    assert stream.feed('One. Two! Three? Four') == ['One.', ' Two!', ' Three?']
    assert stream.feed('\n') == [' Four\n']           # a newline needs no look-ahead
    assert stream.feed('你好！我') == ['你好！']
    assert stream.finish() == '我'


def test_etc_waits_for_the_next_word():
    stream = SentenceStream(200)
    assert stream.feed('Pears, etc.') == []
    assert stream.feed(' ') == []
    assert stream.feed('They') == ['Pears, etc.']


def test_finish_releases_an_undecided_end():
    stream = SentenceStream(200)
    assert stream.feed('Hello.') == []
    assert stream.finish() == 'Hello.'


# ---------------------------------------------------------------- Chinese and mixed
def test_chinese():
    check('你好！我是机器人。今天天气很好；我们去公园吧？好的。',
          ['你好！', '我是机器人。', '今天天气很好；', '我们去公园吧？', '好的。'])


def test_chinese_quotes_and_ellipsis():
    check('他说：“你好。”然后走了。我想想……好吧。「真的？」她问。',
          ['他说：“你好。”', '然后走了。', '我想想……好吧。', '「真的？」', '她问。'])


def test_chinese_decimal_and_full_stop():
    check('价格是3.5元。版本v2.0发布了！', ['价格是3.5元。', '版本v2.0发布了！'])


def test_mixed_chinese_and_english():
    check('Hello 世界. 你好。OK! 我喜欢Python. It is 很好。',
          ['Hello 世界.', ' 你好。', 'OK!', ' 我喜欢Python.', ' It is 很好。'])


# ---------------------------------------------------------------- long sentences
def test_long_sentence_cut_at_a_late_comma():
    text = ('This sentence goes on, and on and on for quite a while, until it reaches the '
            'limit and is cut somewhere sensible.')
    pieces = split(text, 60)
    assert pieces == ['This sentence goes on, and on and on for quite a while,',
                      ' until it reaches the limit and is cut somewhere sensible.']
    assert split_chars(text, 60) == pieces


def test_long_sentence_cut_at_a_space_when_no_comma():
    text = 'word ' * 30 + 'end.'
    pieces = split(text, 42)
    assert ''.join(pieces) == text
    assert all(len(p) <= 42 for p in pieces)
    assert all(not p[-1].isspace() for p in pieces)   # cut before the space
    assert all(p.strip().replace('word', '').replace('end.', '').strip() == ''
               for p in pieces)                       # never inside a word
    assert split_chars(text, 42) == pieces


def test_long_sentence_comma_in_number_is_not_a_cut():
    text = 'Numbers 1,000,000 and 2,000,000 and 3,000,000 and more, go here.'
    pieces = split(text, 40)
    assert all(',0' not in p[-2:] for p in pieces)
    assert not any(p.endswith(',') and not p.endswith('more,') for p in pieces)
    assert ''.join(pieces) == text


def test_long_chinese_sentence_cut_at_chinese_comma():
    text = '今天我们去了公园，看到了很多花、很多树和很多鸟，然后我们回家吃饭了。'
    pieces = split(text, 20)
    # the rest (18 characters) fits: it stays one piece
    assert pieces == ['今天我们去了公园，看到了很多花、', '很多树和很多鸟，然后我们回家吃饭了。']
    assert split_chars(text, 20) == pieces


def test_long_text_without_any_break_is_cut_at_max_chars():
    text = '很' * 45 + '。'
    pieces = split(text, 20)
    assert pieces == ['很' * 20, '很' * 20, '很' * 5 + '。']
    assert split_chars(text, 20) == pieces


def test_cut_pieces_respect_max_chars():
    rng = random.Random(7)
    words = ['alpha', 'beta,', 'gamma', '3.5', 'delta', 'e.g.', 'x' * 30, '你好，', '世界']
    for _ in range(50):
        text = ' '.join(rng.choice(words) for _ in range(rng.randint(10, 80))) + '.'
        for m in (1, 5, 17, 40):
            pieces = split(text, m)
            assert ''.join(pieces) == text
            assert all(len(p) <= m for p in pieces[:-1]), (m, pieces)
            assert split_chars(text, m) == pieces


def test_max_chars_must_be_positive():
    with pytest.raises(ValueError, match='max_chars'):
        SentenceStream(0)


# ---------------------------------------------------------------- property-style
TEXTS = [
    # typical assistant replies, English, Chinese and mixed
    'Sure! Here is a short plan for the robot. First, move to the kitchen (about 3.5 m away). '
    'Then pick up the cup, e.g. the red one, and bring it back. Dr. Smith said it costs '
    '$1,000.25, etc. Is that OK? Let me know... I can also do v2.0 of the plan.\n\n'
    '1. Move.\n2. Pick up.\n3. Return.\n',
    '当然可以！机器人首先会移动到厨房，大约3.5米远。然后它会拿起杯子；最后把杯子带回来。'
    '你觉得怎么样？他说：“好的。”我想想……没问题。',
    'The answer is 42. 答案是四十二。Is it right? 对吗？"Yes!" she said. OK...\n'
    'Version 2.0.1 (released in the U.S. at 5 p.m.) works. Mr. Lee agreed, i.e. he signed.',
    'A very long sentence without any terminator but with many words and commas, which '
    'keeps going, and going, and going, so that the limit must cut it somewhere around here '
    'and then again later on after more words are added to it for good measure',
]


@pytest.mark.parametrize('max_chars', [200, 40, 7])
@pytest.mark.parametrize('index', range(len(TEXTS)))
def test_any_split_gives_the_same_sentences(index, max_chars):
    text = TEXTS[index]
    expected = split(text, max_chars)
    assert ''.join(expected) == text
    assert split_chars(text, max_chars) == expected
    rng = random.Random(index * 1000 + max_chars)
    for _ in range(200):
        pieces = random_pieces(text, rng)
        assert split_pieces(pieces, max_chars) == expected, pieces


@pytest.mark.parametrize('index', range(len(TEXTS)))
def test_every_sentence_but_the_last_ends_at_a_sentence_end(index):
    text = TEXTS[index]
    if index == 3:
        return  # the no-terminator text: every piece is a cut
    pieces = split(text)
    for piece in pieces[:-1]:
        assert piece.rstrip(' ')[-1] in '.!?。！？；;…"”)\n', piece


def test_random_texts_concatenate_and_are_split_independent():
    alphabet = list('abc XY.,!?;\n。，！？；…"”)3') + ['e.g.', 'Dr.', 'etc.', '1. ', '...']
    rng = random.Random(12)
    for _ in range(300):
        text = ''.join(rng.choice(alphabet) for _ in range(rng.randint(1, 120)))
        for m in (200, 10, 3):
            expected = split(text, m)
            assert ''.join(expected) == text
            assert split_pieces(random_pieces(text, rng) if len(text) > 1 else [text],
                                m) == expected, (text, m)
