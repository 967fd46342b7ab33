# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The reference paths of the benchmark: llama-cpp-python used directly, without the node.

* ``Raw``: ``Llama.create_chat_completion(stream=True)``, the most direct path a
  llama-cpp-python user takes (one sequence).
* ``DecodeCeiling``: the physical ceiling of batched generation on this machine and model:
  llama.cpp's low-level bindings, one context with ``n_seq_max`` sequences, and timed
  ``llama_decode`` calls of ONE batch holding one token for each of N sequences (after a short
  prompt per sequence). No sampling, no detokenizing, no Python per token beyond filling the
  batch: what any server built on llama.cpp can at best approach. The engine exposes nothing
  of the kind (it always samples), so it is written here.
"""
import logging
import time

import llama_cpp
import llama_cpp.llama_chat_format

# llama-cpp-python routes llama.cpp's log through this logger (Llama(verbose=False) sets it
# to ERROR; the low-level calls below do not)
logging.getLogger('llama-cpp-python').setLevel(logging.ERROR)


def tps(tokens, first, end):
    """Return the generation tokens/s from the first token to the end (None if not measurable)."""
    return tokens / (end - first) if first is not None and end > first and tokens > 1 else None


class Raw:
    """llama-cpp-python's high-level Llama, with the node's model settings."""

    def __init__(self, model, n_ctx, n_threads, n_batch=512, chat_template=''):
        self.chat_template = chat_template
        self.kwargs = {'model_path': model, 'n_ctx': n_ctx, 'n_batch': n_batch,
                       'n_ubatch': min(n_batch, 512),
                       'n_threads': n_threads,
                       'n_threads_batch': n_threads, 'verbose': False}
        self.llm = None

    def load(self) -> float:
        self.close()
        t0 = time.monotonic()
        self.llm = llama_cpp.Llama(**self.kwargs)
        took = time.monotonic() - t0
        if self.chat_template:   # the node's chat_template parameter
            llm = self.llm
            self.llm.chat_handler = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
                self.chat_template, eos_token=llm._model.token_get_text(llm.token_eos()),
                bos_token=llm._model.token_get_text(llm.token_bos())).to_chat_handler()
        elif not self.llm.metadata.get('tokenizer.chat_template'):
            # as the node: ChatML when the GGUF has no template (llama-cpp-python would guess
            # llama-2, which e.g. Gemma answers with an immediate end of turn)
            self.llm.chat_format = 'chatml'
        return took

    def close(self):
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    def chat(self, prompt, max_tokens, seed) -> dict:
        t0 = time.monotonic()
        first, parts, finish = None, [], None
        for chunk in self.llm.create_chat_completion(
                messages=[{'role': 'user', 'content': prompt}], stream=True, temperature=0.0,
                top_k=40, top_p=0.9, min_p=0.05, repeat_penalty=1.0, max_tokens=max_tokens,
                seed=seed):
            choice = chunk['choices'][0]
            piece = choice['delta'].get('content')
            if piece:
                if first is None:
                    first = time.monotonic()
                parts.append(piece)
            finish = choice.get('finish_reason') or finish
        end = time.monotonic()
        text = ''.join(parts)
        # streamed chunks carry no usage: count the reply's tokens by tokenizing it (the
        # same count as the node's for identical greedy text, checked in the report)
        tokens = len(self.llm.tokenize(text.encode('utf-8'), add_bos=False, special=False))
        return {'ttft_s': first - t0 if first else None, 'e2e_s': end - t0, 'tokens': tokens,
                'tps': tps(tokens, first, end), 'text': text, 'finish': finish}


class DecodeCeiling:
    """Batched ``llama_decode`` throughput with up to ``max_seqs`` sequences in one context."""

    def __init__(self, model, n_threads, max_seqs, prompt_tokens=32, steps=64,
                 kv_unified=False):
        self.prompt_tokens, self.steps, self.max_seqs = prompt_tokens, steps, max_seqs
        per_seq = prompt_tokens + steps + 16
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        self.model = llama_cpp.llama_model_load_from_file(model.encode('utf-8'), mparams)
        if not self.model:
            raise RuntimeError(f'llama.cpp could not load {model}')
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = per_seq * max_seqs
        cparams.n_batch = cparams.n_ubatch = prompt_tokens * max_seqs   # one prompt batch
        cparams.n_seq_max = max_seqs
        cparams.n_threads = cparams.n_threads_batch = n_threads
        cparams.kv_unified = kv_unified   # the node: False (each sequence its own cells)
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise RuntimeError('llama.cpp could not create the context')
        self.batch = llama_cpp.llama_batch_init(cparams.n_batch, 0, max_seqs)
        vocab = llama_cpp.llama_model_get_vocab(self.model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        # ordinary tokens (well inside the vocabulary, no special ones at the start)
        self.tokens = [(1000 + 37 * i) % n_vocab for i in range(prompt_tokens + steps)]

    def _fill(self, items):
        b = self.batch
        for i, (token, pos, seq, logits) in enumerate(items):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        b.n_tokens = len(items)
        ret = llama_cpp.llama_decode(self.ctx, b)
        if ret != 0:
            raise RuntimeError(f'llama_decode failed ({ret})')

    def run(self, n_seqs) -> dict:
        """Prompt every sequence (not timed), then ``steps`` timed decode calls of N tokens."""
        assert 1 <= n_seqs <= self.max_seqs
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
        p = self.prompt_tokens
        self._fill([(self.tokens[i], i, s, i == p - 1) for s in range(n_seqs) for i in range(p)])
        t0 = time.monotonic()
        for k in range(self.steps):
            self._fill([(self.tokens[p + k], p + k, s, True) for s in range(n_seqs)])
        llama_cpp.llama_synchronize(self.ctx)
        dt = time.monotonic() - t0
        return {'seqs': n_seqs, 'steps': self.steps, 'seconds': dt,
                'tokens_per_s': n_seqs * self.steps / dt}

    def close(self):
        if self.batch is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None
