# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""Tests for the tiny random-weight GGUF test model (test/tiny_gguf.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip('gguf')
llama_cpp = pytest.importorskip('llama_cpp')

from tiny_gguf import CHATML, IM_END, IM_START, write_tiny_model  # noqa: E402

TEXTS = [
    'Hello, who are you?',
    '你好，请介绍一下你自己',
    'emoji 🤖👍🏽 family 👨‍👩‍👧 flag 🇯🇵',
    'mixed: café naïve Ω ≠ ∞\n\ttabs  and   spaces ',
    ' leading space',
    '<|im_start|> looks special but is plain text',
]

PROMPT = f'{IM_START}user\nHello, who are you?{IM_END}\n{IM_START}assistant\n'


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return str(write_tiny_model(tmp_path_factory.mktemp('tiny') / 'tiny.gguf'))


@pytest.fixture(scope='module')
def llm(model_path):
    m = llama_cpp.Llama(model_path, n_ctx=512, n_threads=2, verbose=False)
    yield m
    m.close()


def test_returns_path_small_and_deterministic(tmp_path):
    a = tmp_path / 'a.gguf'
    b = tmp_path / 'b.gguf'
    c = tmp_path / 'c.gguf'
    assert write_tiny_model(a) == a
    write_tiny_model(b)
    write_tiny_model(c, seed=1)
    assert 0 < a.stat().st_size < 5 * 1024 * 1024
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_metadata(llm):
    md = llm.metadata
    assert md['tokenizer.chat_template'] == CHATML
    assert md['general.architecture'] == 'llama'
    assert md['tokenizer.ggml.model'] == 'llama'
    assert int(md['llama.context_length']) == 2048
    assert llm.n_ctx() == 512


def test_gguf_reader_metadata(model_path):
    gguf = pytest.importorskip('gguf')
    r = gguf.GGUFReader(model_path)
    f = r.fields['tokenizer.chat_template']
    assert bytes(f.parts[f.data[0]]).decode() == CHATML


def test_custom_template_and_ctx(tmp_path):
    tpl = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    p = write_tiny_model(tmp_path / 't.gguf', chat_template=tpl, n_ctx_train=1024)
    m = llama_cpp.Llama(str(p), n_ctx=256, n_threads=2, verbose=False)
    try:
        assert m.metadata['tokenizer.chat_template'] == tpl
        assert int(m.metadata['llama.context_length']) == 1024
    finally:
        m.close()


@pytest.mark.parametrize('text', TEXTS)
def test_tokenize_roundtrip(llm, text):
    toks = llm.tokenize(text.encode('utf-8'), add_bos=False, special=False)
    assert toks, text
    assert llm.detokenize(toks).decode('utf-8') == text


def test_chinese_uses_byte_fallback_and_pieces(llm):
    toks = llm.tokenize('你好，请介绍一下你自己'.encode(), add_bos=False)
    # '，' is not in the vocab -> 3 byte tokens; the rest are pieces
    assert len(toks) < len('你好，请介绍一下你自己'.encode())


def test_special_tokens(llm):
    eos = llm.token_eos()
    assert llm.detokenize([eos], special=True) == IM_END.encode()
    assert llm.tokenize(IM_END.encode(), add_bos=False, special=True) == [eos]
    plain = llm.tokenize(IM_END.encode(), add_bos=False, special=False)
    assert eos not in plain and len(plain) > 1
    assert llm.detokenize(plain) == IM_END.encode()
    start = llm.tokenize(IM_START.encode(), add_bos=False, special=True)
    assert len(start) == 1 and start[0] != eos
    assert llm.token_bos() != eos
    # eos/eot is <|im_end|>; control tokens are hidden unless special=True
    assert llm.detokenize([eos]) == b''
    tok = llm._model.vocab
    assert llama_cpp.llama_vocab_eot(tok) == eos
    assert llama_cpp.llama_vocab_is_eog(tok, eos)


def test_greedy_completion_produces_tokens(llm):
    out = llm.create_completion(PROMPT, max_tokens=32, temperature=0.0)
    assert out['usage']['completion_tokens'] >= 20
    assert out['choices'][0]['finish_reason'] == 'length'


def test_generate_streams_tokens(llm):
    prompt = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    got = []
    for tok in llm.generate(prompt, temp=0.0, reset=True):
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
            break
        got.append(tok)
        if len(got) >= 24:
            break
    assert len(got) >= 10
    # arbitrary bytes are fine; decoding with errors='replace' never raises
    llm.detokenize(got).decode('utf-8', errors='replace')


def test_chat_completion_with_template(llm):
    r = llm.create_chat_completion(
        messages=[{'role': 'user', 'content': '你好，请介绍一下你自己'}],
        max_tokens=16,
        temperature=0.8,
        seed=3,
    )
    assert r['usage']['completion_tokens'] >= 1
    # prompt = "<|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n"
    assert r['usage']['prompt_tokens'] > 10


def test_eos_can_be_forced_with_logit_bias(llm):
    eos = llm.token_eos()
    out = llm.create_completion(
        PROMPT, max_tokens=32, temperature=0.0, logit_bias={eos: 100.0}
    )
    assert out['choices'][0]['finish_reason'] == 'stop'
    assert out['usage']['completion_tokens'] <= 1


def test_close(model_path):
    m = llama_cpp.Llama(model_path, n_ctx=256, n_threads=2, verbose=False)
    assert m.tokenize(b'hi', add_bos=False)
    m.close()
    m.close()  # idempotent
