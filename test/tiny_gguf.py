# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Write a tiny random-weight GGUF chat model for fast unit tests.

The model is a real ``llama``-architecture GGUF (2 layers, n_embd 64, F32
weights, ~0.6 MB) that llama-cpp-python loads in milliseconds.  Its output is
random gibberish (random tokens, often partial UTF-8 sequences) -- it exists
so tests can exercise loading, chat templating, tokenization, streaming and
cancellation without the real model.

Tokenizer
---------
SentencePiece-style (``tokenizer.ggml.model = "llama"``) with byte fallback:

* ids 0..2: ``<unk>`` (UNKNOWN), ``<s>`` (CONTROL, bos), ``</s>`` (CONTROL)
* ids 3..258: the 256 byte tokens ``<0x00>``..``<0xFF>`` (BYTE), so ANY UTF-8
  text (Chinese, emoji, control chars) tokenizes and detokenizes losslessly
* ``<|im_start|>`` / ``<|im_end|>`` (CONTROL); ``<|im_end|>`` is eos and eot
* ``▁`` (the SentencePiece space), printable ASCII, a few ASCII words and a
  few CJK pieces (NORMAL)

``add_space_prefix`` is False and ``add_bos_token`` is False (ChatML-style,
like SmolLM2), so ``detokenize(tokenize(text, add_bos=False))`` == ``text``.

Generation
----------
The output-projection rows of the control/unknown tokens (``<unk>``, ``<s>``,
``</s>``, ``<|im_start|>``, ``<|im_end|>``) are multiplied by ``eos_scale``
(default 0.0 -> their logit is exactly 0 while ordinary tokens get random
logits of both signs, std ~8, max ~+30).  So with the default, generation
never ends by EOS: greedy and default-sampled (top_k=40) decoding always run
to ``max_tokens`` -- seeds 0..4, several prompts, 64 tokens each, checked.
Tests that need the model to stop by itself pass
``logit_bias={llm.token_eos(): 100.0}`` (stops at once, finish_reason
"stop").  ``eos_scale=1.0`` gives plain random EOS rows (then temperature-1.0
sampling stops early now and then, e.g. 2 of 20 runs for seed 0).

Only depends on ``numpy`` and ``gguf`` (pip package ``gguf``).
"""

from __future__ import annotations

import os
from typing import List, Tuple

import numpy as np

__all__ = ['CHATML', 'write_tiny_model', 'IM_START', 'IM_END']

IM_START = '<|im_start|>'
IM_END = '<|im_end|>'

#: Standard ChatML Jinja template (role/content per message, optional
#: assistant generation prompt).
CHATML = (
    '{% for message in messages %}'
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    '{% endfor %}'
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Tiny llama hyper-parameters.
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
RMS_EPS = 1e-5

# Token types (same values as gguf.TokenType / llama.cpp LLAMA_TOKEN_TYPE_*).
_NORMAL, _UNKNOWN, _CONTROL, _BYTE = 1, 2, 3, 6

_WORDS = [
    'the', 'and', 'you', 'hello', 'Hello', 'robot', 'I', 'am', 'is', 'a',
    'to', 'of', 'in', 'it', 'what', 'who', 'are', 'can', 'help', 'please',
]
_CJK = ['你', '好', '请', '介绍', '一下', '自己', '我', '是', '的', '机器人']


def _build_vocab() -> Tuple[List[str], List[float], List[int], dict]:
    tokens: List[str] = []
    scores: List[float] = []
    types: List[int] = []

    def add(text: str, ttype: int, score: float = 0.0) -> int:
        tokens.append(text)
        scores.append(score)
        types.append(ttype)
        return len(tokens) - 1

    ids = {}
    ids['unk'] = add('<unk>', _UNKNOWN)
    ids['bos'] = add('<s>', _CONTROL)
    ids['eos_legacy'] = add('</s>', _CONTROL)
    for b in range(256):
        add(f'<0x{b:02X}>', _BYTE)
    ids['im_start'] = add(IM_START, _CONTROL)
    ids['im_end'] = add(IM_END, _CONTROL)

    # Normal pieces.  SentencePiece merges the pair whose merged piece has the
    # highest score, so longer pieces get higher scores.
    seen = set(tokens)
    normal: List[str] = ['\u2581']  # '▁' == space
    normal += [chr(c) for c in range(0x21, 0x7F)]  # printable ASCII sans space
    for w in _WORDS:
        # every prefix must exist for SPM bigram merging to reach the word
        for i in range(2, len(w) + 1):
            normal.append(w[:i])
            normal.append('\u2581' + w[:i])
        normal.append('\u2581' + w[0])
    for p in _CJK:
        for i in range(1, len(p) + 1):
            normal.append(p[:i])
    for piece in normal:
        if piece in seen:
            continue
        seen.add(piece)
        add(piece, _NORMAL, score=float(len(piece)) - 10.0)
    return tokens, scores, types, ids


def write_tiny_model(
    path,
    *,
    chat_template: str = CHATML,
    seed: int = 0,
    n_ctx_train: int = 2048,
    eos_scale: float = 0.0,
):
    """
    Write a tiny random-weight llama GGUF to ``path`` and return ``path``.

    ``chat_template`` is stored as ``tokenizer.chat_template`` (pass ``None``
    to omit it).  ``seed`` seeds the weights (same seed -> byte-identical
    file).  ``n_ctx_train`` becomes ``llama.context_length`` (note:
    llama-cpp-python sizes its tokenize buffer from it).  ``eos_scale``
    scales the output-projection rows of control tokens (0.0 = their logit
    is always 0, so they are never dominant; 1.0 = plain random).
    """
    import gguf  # local import: only needed when writing

    tokens, scores, types, ids = _build_vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=None):
        # numpy shape is (out, in) == ggml ne reversed; gguf handles that.
        fan_in = shape[-1]
        s = (1.0 / np.sqrt(fan_in)) if scale is None else scale
        return (rng.standard_normal(shape) * s).astype(np.float32)

    w = gguf.GGUFWriter(os.fspath(path), 'llama')
    w.add_name('tiny-random-chatml')
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(int(n_ctx_train))
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_vocab_size(n_vocab)

    w.add_tokenizer_model('llama')
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(ids['unk'])
    w.add_bos_token_id(ids['bos'])
    w.add_eos_token_id(ids['im_end'])
    w.add_eot_token_id(ids['im_end'])
    w.add_pad_token_id(ids['unk'])
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    # Weights.  Embedding std 1 so the (pre-norm) residual stream is O(1).
    w.add_tensor('token_embd.weight', rand(n_vocab, N_EMBD, scale=1.0))
    for i in range(N_LAYER):
        p = f'blk.{i}.'
        w.add_tensor(p + 'attn_norm.weight', np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(p + 'attn_q.weight', rand(N_EMBD, N_EMBD))
        w.add_tensor(p + 'attn_k.weight', rand(N_EMBD // N_HEAD * N_HEAD_KV, N_EMBD))
        w.add_tensor(p + 'attn_v.weight', rand(N_EMBD // N_HEAD * N_HEAD_KV, N_EMBD))
        w.add_tensor(p + 'attn_output.weight', rand(N_EMBD, N_EMBD))
        w.add_tensor(p + 'ffn_norm.weight', np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(p + 'ffn_gate.weight', rand(N_FF, N_EMBD))
        w.add_tensor(p + 'ffn_up.weight', rand(N_FF, N_EMBD))
        w.add_tensor(p + 'ffn_down.weight', rand(N_EMBD, N_FF))
    w.add_tensor('output_norm.weight', np.ones(N_EMBD, dtype=np.float32))
    out = rand(n_vocab, N_EMBD, scale=1.0)  # logits ~ N(0, ~8): peaky-ish
    control = [i for i, t in enumerate(types) if t in (_CONTROL, _UNKNOWN)]
    out[control] *= np.float32(eos_scale)
    w.add_tensor('output.weight', out)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
