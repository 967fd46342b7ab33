# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""One request's sampling settings and its llama.cpp sampler chain.

Each slot gets its own chain, built with llama-cpp-python's ``LlamaSampler`` in the same order
``Llama`` builds it (penalties, grammar, then greedy, or top-k -> top-p -> min-p ->
temperature -> random draw), so a reply here is the reply raw llama-cpp-python gives for the
same settings. ``llama_sampler_sample`` applies the chain to the logits of one batch position
and accepts the token (penalties and grammar advance).
"""
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import llama_cpp
from llama_cpp import _internals

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


def make_sampler(model: '_internals.LlamaModel', params: SamplingParams,
                 grammar: Optional[str] = None) -> '_internals.LlamaSampler':
    """The sampler chain for one generation. ``grammar``: GBNF text already checked with
    grammars.check_gbnf (llama.cpp's grammar sampler crashes on a bad grammar)."""
    sampler = _internals.LlamaSampler()
    if params.repeat_penalty != 1.0:
        sampler.add_penalties(n_vocab=llama_cpp.llama_vocab_n_tokens(model.vocab),
                              penalty_last_n=PENALTY_LAST_N,
                              penalty_repeat=params.repeat_penalty,
                              penalty_freq=0.0, penalty_present=0.0)
    if grammar:
        g = llama_cpp.llama_sampler_init_grammar(model.vocab, grammar.encode('utf-8'), b'root')
        if not g:
            sampler.close()
            raise ValueError('llama.cpp could not initialise the grammar')
        llama_cpp.llama_sampler_chain_add(sampler.sampler, g)
    if params.temperature <= 0.0:
        sampler.add_greedy()
    else:
        if params.top_k > 0:
            sampler.add_top_k(params.top_k)
        sampler.add_top_p(params.top_p, 1)
        sampler.add_min_p(params.min_p, 1)
        sampler.add_temp(params.temperature)
        # -1: a seed of our own (llama.cpp's own "random" marker is 0xFFFFFFFF)
        seed = params.seed if params.seed >= 0 else int.from_bytes(os.urandom(4), 'little')
        sampler.add_dist(min(seed, 0xFFFFFFFE))
    return sampler
