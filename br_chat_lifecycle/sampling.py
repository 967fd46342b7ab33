# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
One request's sampling settings and its llama.cpp sampler chain.

Each slot gets its own chain, built with llama-cpp-python's ``LlamaSampler`` in the order
``Llama`` builds it (penalties, then greedy, or top-k -> top-p -> min-p -> temperature ->
random draw). Without a grammar, ``llama_sampler_sample`` applies the chain to the logits of
one batch position and accepts the token, all in C.

With a grammar, sampling is done the way llama.cpp's own common sampler does it (hand-written
here: llama-cpp-python only puts the grammar in the chain): the chain picks a token without
the grammar, and only that one token is checked against the grammar; the grammar is applied
to the whole vocabulary (a few ms per token for 50k tokens, ~90 ms for Gemma's 262k) only
when the token is rejected, and the chain picks again from what the grammar allows. The
result is a token the grammar accepts, chosen by the same samplers.
"""
import ctypes
from dataclasses import dataclass
import os
from typing import Optional, Sequence

import llama_cpp
from llama_cpp import _internals
import numpy as np

PENALTY_LAST_N = 64  # tokens the repetition penalty looks back over (llama-cpp-python's)


@dataclass
class SamplingParams:
    """One request's generation settings (field = node parameter; defaults: settings)."""

    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    seed: int                    # -1: random
    stop: Sequence[str]


class Sampler:
    """The sampler chain of one generation (and its grammar, if any)."""

    def __init__(self, model: '_internals.LlamaModel', params: SamplingParams,
                 grammar: Optional[str] = None):
        """
        Build the sampler chain for ``params`` and, if given, ``grammar``.

        ``grammar``: GBNF text already checked with grammars.check_gbnf (llama.cpp's grammar
        sampler crashes on a bad grammar).
        """
        self._chain = _internals.LlamaSampler()
        self._grammar = None
        n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
        if params.repeat_penalty != 1.0:
            self._chain.add_penalties(n_vocab=n_vocab, penalty_last_n=PENALTY_LAST_N,
                                      penalty_repeat=params.repeat_penalty,
                                      penalty_freq=0.0, penalty_present=0.0)
        if params.temperature <= 0.0:
            self._chain.add_greedy()
        else:
            if params.top_k > 0:
                self._chain.add_top_k(params.top_k)
            self._chain.add_top_p(params.top_p, 1)
            self._chain.add_min_p(params.min_p, 1)
            self._chain.add_temp(params.temperature)
            # -1: a seed of our own (llama.cpp's own "random" marker is 0xFFFFFFFF)
            seed = params.seed if params.seed >= 0 else int.from_bytes(os.urandom(4), 'little')
            self._chain.add_dist(min(seed, 0xFFFFFFFE))
        if grammar:
            self._grammar = llama_cpp.llama_sampler_init_grammar(
                model.vocab, grammar.encode('utf-8'), b'root')
            if not self._grammar:
                self._chain.close()
                raise ValueError('llama.cpp could not initialise the grammar')
            self._n_vocab = n_vocab
            self._data = (llama_cpp.llama_token_data * n_vocab)()
            self._rows = np.frombuffer(self._data, dtype=_TOKEN_DATA)
            self._ids = np.arange(n_vocab, dtype=np.int32)
            self._cur = llama_cpp.llama_token_data_array(
                data=self._data, size=n_vocab, selected=-1, sorted=False)
            self._one = (llama_cpp.llama_token_data * 1)()
            self._one_cur = llama_cpp.llama_token_data_array(
                data=self._one, size=1, selected=-1, sorted=False)
        self.grammar_fallbacks = 0   # tokens the grammar rejected (slow path taken)

    def sample(self, ctx, index: int) -> int:
        """Pick the next token from the logits at batch position ``index`` and accept it."""
        if self._grammar is None:
            return llama_cpp.llama_sampler_sample(self._chain.sampler, ctx, index)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index),
                                       shape=(self._n_vocab,))
        token = self._pick(logits, with_grammar=False)
        one = self._one[0]
        one.id, one.logit, one.p = token, float(logits[token]), 0.0
        self._one_cur.size, self._one_cur.selected = 1, -1
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._one_cur))
        if self._one[0].logit == float('-inf'):   # rejected: let the grammar filter all
            self.grammar_fallbacks += 1
            token = self._pick(logits, with_grammar=True)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain.sampler, token)
        return token

    def _pick(self, logits, with_grammar: bool) -> int:
        # the samplers sort and cut the array in place: refill it completely every time
        self._rows['id'] = self._ids
        self._rows['logit'] = logits
        self._rows['p'] = 0.0
        cur = self._cur
        cur.data, cur.size, cur.selected, cur.sorted = self._data, self._n_vocab, -1, False
        if with_grammar:
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(cur))
        llama_cpp.llama_sampler_apply(self._chain.sampler, ctypes.byref(cur))
        return int(cur.data[cur.selected].id)

    def close(self) -> None:
        if self._grammar:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None
        self._chain.close()


_TOKEN_DATA = np.dtype([('id', np.int32), ('logit', np.float32), ('p', np.float32)])
