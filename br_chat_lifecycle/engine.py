# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The LLM engine: parallel slots with continuous batching over llama.cpp, no ROS.

One llama.cpp context holds ``n_parallel`` sequences (slots). A scheduler thread runs the
decode loop: every step puts into ONE ``llama_decode`` batch the next token of every slot that
is generating and a chunk of the prompt of every slot that is still evaluating its prompt (a
new request joins at the next step), then samples each generating slot with its own sampler
chain. So N conversations advance together (aggregate tokens/s grows as far as the CPU
batches), a long prompt is evaluated in chunks of about PROMPT_CHUNK_S between other slots'
tokens instead of freezing them (a short prompt runs in steps of its own: SHORT_PROMPT_STEPS),
and cancel, deactivate and shutdown take effect within one step.

Every conversation's KV cache is kept warm: a session stays in its slot while it can; when
its slot is needed, its sequence state is saved (session_cache.py) and restored when it
speaks again, so only the new tokens are evaluated.

Only this module, model_loading.py, sampling.py and chat_prompt.py know llama.cpp. Hand-written
here (llama-cpp-python's ``Llama`` generates on one sequence only): the scheduler loop, the
batch assembly with explicit positions and sequence ids, slot assignment and state save /
restore. Loading, tokenizing, templates, sampling, grammars and the decode itself are
llama.cpp's, through llama-cpp-python's bindings.

Threading: ``start``/``generate``/``cancel_all``/``close`` may be called from any thread;
everything that touches the context runs on the scheduler thread; ``on_text`` and ``on_done``
callbacks run there too (keep them short).
"""
import collections
import ctypes
import gc
import os
import threading
import time
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import llama_cpp

from .chat_prompt import CHATML_TEMPLATE, ChatPrompt
from .model_loading import load, ModelConfig, ModelInfo, ModelLoadError  # noqa: F401
from .sampling import Sampler, SamplingParams  # noqa: F401 (re-exported)
from .session_cache import model_identity, SavedSequence, SessionCache
from .slots import (common_prefix, Generation, GenerationRequest,  # noqa: F401 (re-exported)
                    GenerationResult, Slot)
from .tool_calls import template_supports_tools

# Prompt evaluation chunking: target seconds per step, the smallest chunk, and the speed
# assumed before the first measurement (tokens/s). Small chunks cost no speed on a CPU
# (measured: 64-token chunks evaluate as fast as 512-token ones).
PROMPT_CHUNK_S = 0.2
PROMPT_CHUNK_MIN = 8
PROMPT_TPS_GUESS = 100.0
# A short prompt (at most this many steps of n_batch tokens left) is evaluated in steps of its
# own: the generating slots sit those steps out instead of riding along. On a CPU a generated
# token costs far more than a prompt token (its logits: the vocabulary-sized output layer), so
# carrying 3 streams' tokens doubled a short request's time to first token (2.2x idle on
# SmolLM2, 3.8x on Gemma). The streams lose at most SHORT_PROMPT_STEPS steps (~40 ms) per
# arriving request, and never more than SHORT_PROMPT_STEPS steps in a row; longer prompts are
# interleaved with the streams' tokens so they never freeze them.
SHORT_PROMPT_STEPS = 2
# Prompt tokens are never evaluated one alone (a chunk of 1, or a reused prefix leaving only
# the last token): for a single row llama.cpp's CPU matrix multiply takes its matrix-vector
# path, which rounds differently from the multi-row one (llamafile sgemm needs 2 rows), so a
# greedy reply would change with a cache hit or with where a chunk happened to end (measured
# on SmolLM2: 3 of 24 prompts replied differently from the cache; 0 of 24 with this rule).
MIN_PROMPT_CHUNK = 2


def prompt_chunk(remaining: int, cap: int, full_cap: int) -> int:
    """
    How many of a prompt's ``remaining`` tokens to evaluate in this step (0: wait a step).

    ``cap`` is what this step leaves for the prompt, ``full_cap`` what a step can give it at
    best (its chunk size with no other prompt in the step). The chunk neither is one token nor
    leaves one token behind (MIN_PROMPT_CHUNK), unless ``full_cap`` is too small to ever avoid
    it: then the plain ``min(remaining, cap)``, so no prompt waits forever.
    """
    size = min(remaining, cap)
    if remaining < MIN_PROMPT_CHUNK or full_cap <= MIN_PROMPT_CHUNK:
        return size
    if 0 < remaining - size < MIN_PROMPT_CHUNK:
        size = remaining - MIN_PROMPT_CHUNK
    return size if size >= MIN_PROMPT_CHUNK else 0


class LlamaEngine:
    """llama.cpp in this process: parallel slots, continuous batching, warm sessions."""

    backend = 'local'

    def __init__(self, config: ModelConfig, cache: Optional[SessionCache] = None,
                 log: Callable[[str, str], None] = lambda level, msg: None):
        self._log = log
        self._model, self._ctx, self.shape, self.context_mb, load_s = load(config)
        self._vocab = self._model.vocab
        self._n_batch = config.n_batch
        # llama.cpp pads the context (to a multiple of 256): a slot gets what it really has
        self._n_ctx_slot = max(config.n_ctx, llama_cpp.llama_n_ctx_seq(self._ctx.ctx))
        self._batch = None
        try:
            meta = self._model.metadata()
            template, source = config.chat_template, 'parameter chat_template'
            if not template:
                template, source = meta.get('tokenizer.chat_template', ''), 'GGUF metadata'
            if not template:
                template, source = CHATML_TEMPLATE, 'built-in ChatML (GGUF has no template)'
            self.chat_template = template
            self.supports_tools = template_supports_tools(template)
            bos, eos = self._model.token_bos(), self._model.token_eos()
            self._prompt = ChatPrompt(
                template, bos_token=self._model.token_get_text(bos) if bos >= 0 else '',
                eos_token=self._model.token_get_text(eos) if eos >= 0 else '',
                add_bos=self._model.add_bos_token())
            # Render once so a broken template fails configure, not the first request.
            probe = [{'role': 'user', 'content': 'Hello robot'}]
            rendered = self._prompt.render(probe)
            self._prompt.tokens(probe, self._tokenize)
        except Exception as e:
            self._free()
            raise ModelLoadError(f'chat template of {config.model_path} is unusable: '
                                 f'{type(e).__name__}: {e}') from e
        if 'Hello robot' not in rendered:
            self._free()
            shown = rendered if len(rendered) <= 60 else rendered[:57] + '...'
            raise ModelLoadError(
                f'chat template ({source}) does not render the messages: a user message '
                f'"Hello robot" became {shown!r}; fix the chat_template parameter')
        n_threads = self._ctx.params.n_threads
        self.info = ModelInfo(
            path=config.model_path, file_size_bytes=os.path.getsize(config.model_path),
            load_time_s=load_s, n_ctx=self._n_ctx_slot, n_parallel=config.n_parallel,
            n_ctx_train=self.shape.n_ctx_train, n_threads=n_threads,
            n_threads_batch=self._ctx.params.n_threads_batch,
            chat_template_source=source)
        self._batch = llama_cpp.llama_batch_init(config.n_batch, 0, 1)
        self.cache = cache if cache is not None else SessionCache(0)
        self._slots = [Slot(i) for i in range(config.n_parallel)]
        self._pieces: Dict[int, bytes] = {}
        self._prompt_tps = PROMPT_TPS_GUESS
        self._streams_waited = 0    # consecutive steps the generating slots sat out
        # counters (read by diagnostics from other threads)
        self.prompt_tokens_total = 0
        self.prompt_tokens_cached = 0
        self.restored = {'slot': 0, 'ram': 0, 'disk': 0}
        # scheduler
        self._cond = threading.Condition()
        self._pending: Deque[Generation] = collections.deque()
        self._forget: List[Tuple[str, Optional[threading.Event]]] = []
        self._closing = False
        self._thread = threading.Thread(target=self._run, name='llm-scheduler', daemon=True)
        self._thread.start()

    # ================================================================ prompt
    def _tokenize(self, text: str, special: bool, add_bos: bool) -> List[int]:
        if self._model is None:
            raise RuntimeError('LlamaEngine is closed: the model was released by close()')
        return self._model.tokenize(text.encode('utf-8'), add_bos=add_bos, special=special)

    def prompt_tokens(self, messages: Sequence[Dict[str, str]], tools=None) -> List[int]:
        """
        Token ids of the templated conversation, ending with the assistant header.

        ``tools``: OpenAI tool declarations for a template that renders them itself.
        """
        return self._prompt.tokens(messages, self._tokenize, tools)

    @property
    def n_ctx(self) -> int:
        """Context of one slot (one conversation)."""
        return self._n_ctx_slot

    @property
    def n_parallel(self) -> int:
        return len(self._slots)

    def session_identity(self) -> Dict:
        """Return what a saved KV state depends on (session_cache.model_identity)."""
        return model_identity(self.info.path, self._n_ctx_slot, self.chat_template,
                              llama_cpp.__version__)

    # ================================================================ requests
    def start(self, request: GenerationRequest) -> Generation:
        """
        Queue a generation; it joins the batch at the next step a slot is free.

        ``request.on_done`` is called exactly once, on the scheduler thread.
        """
        limit = max(0, min(request.sampling.max_tokens, self._n_ctx_slot - len(request.tokens)))
        gen = Generation(request, limit)
        with self._cond:
            if self._closing or self._model is None:
                raise RuntimeError('LlamaEngine is closed')
            self._pending.append(gen)
            self._cond.notify_all()
        return gen

    def generate(self, prompt: List[int], params: SamplingParams,
                 on_text: Optional[Callable[[str], None]] = None,
                 should_stop: Callable[[], bool] = lambda: False,
                 grammar: Optional[str] = None, session: str = '') -> GenerationResult:
        """Start a generation and wait for it (tests, benchmarks, simple callers)."""
        done = threading.Event()
        out = []

        def on_done(result):
            out.append(result)
            done.set()
        self.start(GenerationRequest(prompt, params, grammar, session, on_text, should_stop,
                                     on_done))
        done.wait()
        return out[0]

    @property
    def busy_slots(self) -> int:
        return sum(1 for s in self._slots if s.busy) + len(self._pending)

    def sessions_in_slots(self) -> int:
        return sum(1 for s in self._slots if s.session)

    def wake(self) -> None:
        """Make the scheduler poll the running generations' ``should_stop`` now."""
        with self._cond:
            self._cond.notify_all()

    def clear_cache(self) -> None:
        """
        Forget every KV cache (slots and RAM).

        The next requests evaluate their whole prompt (benchmarks' "cold" case, tests).
        """
        done = threading.Event()
        with self._cond:
            self._forget.append(('*', done))
            self._cond.notify_all()
        done.wait(10.0)

    def forget_session(self, session: str) -> None:
        """Drop a conversation's KV state everywhere (its history was reset)."""
        with self._cond:
            self._forget.append((session, None))
            self._cond.notify_all()

    # ================================================================ scheduler
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closing or self._pending or self._forget
                                        or any(s.busy for s in self._slots), timeout=1.0)
                    if self._closing:
                        break
                    admit = []
                    free = sum(1 for s in self._slots if not s.busy)
                    while self._pending and len(admit) < free:
                        admit.append(self._pending.popleft())
                    forget, self._forget = self._forget, []
                for session, done in forget:
                    self._drop_session(session)
                    if done is not None:
                        done.set()
                for gen in admit:
                    self._admit(gen)
                self._step()
        except Exception as e:  # never leave a request without an answer
            self._log('error', f'LLM scheduler failed: {type(e).__name__}: {e}')
            self._fail_all(f'engine failure: {type(e).__name__}: {e}')
            raise
        finally:
            self._fail_all('the engine is shutting down', reason='cancelled')

    def _fail_all(self, error: str, reason: str = 'error') -> None:
        with self._cond:
            pending, self._pending = list(self._pending), collections.deque()
            self._closing = True
        for gen in pending + [s.generation for s in self._slots if s.busy]:
            self._finish(gen, reason, error)

    def _pick_slot(self, gen: Generation) -> Slot:
        session = gen.request.session
        free = [s for s in self._slots if not s.busy]
        if session:
            for s in free:
                if s.session == session:
                    return s
        # Prefer a slot that holds no conversation (keeping other conversations warm in
        # their slots); among those the longest shared prefix (e.g. the same system prompt),
        # then the least recently used.
        return min(free, key=lambda s: (bool(s.session),
                                        -common_prefix(s.tokens, gen.request.tokens),
                                        s.last_used))

    def _admit(self, gen: Generation) -> None:
        req = gen.request
        gen.admitted = time.monotonic()
        if gen.limit == 0 or req.should_stop():
            self._finish(gen, 'length' if gen.limit == 0 and not req.should_stop()
                         else 'cancelled')
            return
        slot = self._pick_slot(gen)
        mem = self._ctx.memory
        if slot.session and slot.session != req.session:
            self._park(slot)
        if req.session and slot.session == req.session and slot.tokens:
            gen.restored_from = 'slot'
        elif req.session:
            saved, source = self.cache.take(req.session)
            if saved is not None and self._restore(slot, saved):
                gen.restored_from = source
        slot.session = req.session
        prefix = common_prefix(slot.tokens, req.tokens)
        # at least the last prompt token is evaluated (for its logits), and never alone
        prefix = max(0, min(prefix, len(req.tokens) - MIN_PROMPT_CHUNK))
        llama_cpp.llama_memory_seq_rm(mem, slot.seq_id, prefix, -1)
        del slot.tokens[prefix:]
        gen.reused = prefix
        if gen.restored_from and prefix:
            self.restored[gen.restored_from] += 1
        gen.remaining = list(req.tokens[prefix:])
        try:
            gen.sampler = Sampler(self._model, req.sampling, req.grammar)
        except ValueError as e:
            self._finish(gen, 'error', str(e))
            return
        gen.slot = slot
        slot.generation = gen
        slot.last_used = time.monotonic()
        self.prompt_tokens_total += len(req.tokens)
        self.prompt_tokens_cached += prefix

    def _park(self, slot: Slot) -> None:
        """Save the conversation a slot holds into the cache before the slot is reused."""
        saved = self._save(slot)
        if saved is not None:
            self.cache.put(slot.session, saved)
        slot.session = ''

    def _save(self, slot: Slot) -> Optional[SavedSequence]:
        if not slot.tokens:
            return None
        size = llama_cpp.llama_state_seq_get_size(self._ctx.ctx, slot.seq_id)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_seq_get_data(self._ctx.ctx, buf, size, slot.seq_id)
        if not n:
            self._log('warn', f'could not save the KV state of session {slot.session!r}')
            return None
        return SavedSequence(list(slot.tokens), bytes(memoryview(buf)[:n]))

    def _restore(self, slot: Slot, saved: SavedSequence) -> bool:
        mem = self._ctx.memory
        llama_cpp.llama_memory_seq_rm(mem, slot.seq_id, -1, -1)
        slot.tokens = []
        if len(saved.tokens) >= self._n_ctx_slot:
            return False
        buf = (ctypes.c_uint8 * len(saved.blob)).from_buffer_copy(saved.blob)
        if not llama_cpp.llama_state_seq_set_data(self._ctx.ctx, buf, len(saved.blob),
                                                  slot.seq_id):
            llama_cpp.llama_memory_seq_rm(mem, slot.seq_id, -1, -1)
            self._log('warn', 'a saved KV state could not be restored: evaluating again')
            return False
        slot.tokens = list(saved.tokens)
        return True

    def _drop_session(self, session: str) -> None:
        if session == '*':
            self.cache.clear()
        else:
            self.cache.discard_ram(session)
        for slot in self._slots:
            if (session == '*' or slot.session == session) and not slot.busy:
                slot.session = ''
                if session == '*':
                    llama_cpp.llama_memory_seq_rm(self._ctx.memory, slot.seq_id, -1, -1)
                    slot.tokens = []

    def snapshot_session(self, session: str) -> Optional[SavedSequence]:
        """
        Return the KV state of a session that sits in a slot.

        Scheduler thread only: call it from an on_done callback.
        """
        for slot in self._slots:
            if slot.session == session:
                return self._save(slot)
        return None

    def _chunk_size(self, budget: int) -> int:
        return max(1, min(budget, self._n_batch,
                          max(PROMPT_CHUNK_MIN, int(self._prompt_tps * PROMPT_CHUNK_S))))

    def _step(self) -> None:
        active = [s.generation for s in self._slots if s.busy]
        for gen in active:
            if gen.request.should_stop():
                self._finish(gen, 'cancelled')
        active = [s.generation for s in self._slots if s.busy]
        if not active:
            return
        batch = self._batch
        n = 0
        rows = []   # (generation, first batch index, number of tokens, logits at the end)
        prompting = sorted((g for g in active if g.prompting), key=lambda g: g.admitted)
        streams_wait = (prompting and len(prompting) < len(active)   # someone is generating
                        and self._streams_waited < SHORT_PROMPT_STEPS
                        and len(prompting[0].remaining) <= SHORT_PROMPT_STEPS * self._n_batch)
        self._streams_waited = self._streams_waited + 1 if streams_wait else 0
        for gen in active:
            if not gen.prompting and not streams_wait:
                self._put(n, gen.next_token, len(gen.slot.tokens), gen.slot.seq_id, True)
                rows.append((gen, n, 1, True))
                n += 1
        prompt_tokens = 0
        full_cap = self._chunk_size(self._n_batch - n)
        for gen in prompting:
            budget = self._n_batch - n
            if budget <= 0:
                break
            size = prompt_chunk(len(gen.remaining), self._chunk_size(budget), full_cap)
            if size == 0:
                continue
            chunk = gen.remaining[:size]
            last = len(chunk) == len(gen.remaining)
            pos = len(gen.slot.tokens)
            for i, tok in enumerate(chunk):
                self._put(n + i, tok, pos + i, gen.slot.seq_id, last and i == len(chunk) - 1)
            rows.append((gen, n, len(chunk), last))
            n += len(chunk)
            prompt_tokens += len(chunk)
        batch.n_tokens = n
        t0 = time.monotonic()
        ret = llama_cpp.llama_decode(self._ctx.ctx, batch)
        dt = time.monotonic() - t0
        if ret != 0:
            for gen, _, _, _ in rows:
                llama_cpp.llama_memory_seq_rm(self._ctx.memory, gen.slot.seq_id,
                                              len(gen.slot.tokens), -1)
                self._finish(gen, 'error', f'llama_decode failed ({ret})')
            return
        if prompt_tokens >= PROMPT_CHUNK_MIN and dt > 0:
            self._prompt_tps = 0.5 * self._prompt_tps + 0.5 * (n / dt)
        for gen, first, count, logits in rows:
            slot = gen.slot
            if gen.prompting:
                slot.tokens.extend(gen.remaining[:count])
                del gen.remaining[:count]
            else:
                slot.tokens.append(gen.next_token)
            if logits:
                self._sample(gen, first + count - 1)

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits

    def _piece(self, token: int) -> bytes:
        """Return the bytes of a token (cached: a vocabulary's pieces never change)."""
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:  # longer than the buffer: -n is the size needed
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            piece = buf.raw[:max(0, n)]
            self._pieces[token] = piece
        return piece

    def _sample(self, gen: Generation, index: int) -> None:
        token = gen.sampler.sample(self._ctx.ctx, index)
        if gen.first_token_at is None:
            gen.first_token_at = time.monotonic()
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self._finish(gen, 'stop')
            return
        gen.n_out += 1
        gen.emit(gen.stream.feed(self._piece(token)))
        if gen.stream.stopped:
            self._finish(gen, 'stop')
        elif gen.n_out >= gen.limit:
            self._finish(gen, 'length')
        else:
            gen.next_token = token

    def _finish(self, gen: Generation, reason: str, error: str = '') -> None:
        if gen.finished:
            return
        gen.finished = True
        if reason != 'error':
            try:
                gen.emit(gen.stream.finish())
            except Exception as e:  # a failing on_text must not stop the engine
                self._log('error', f'on_text failed: {type(e).__name__}: {e}')
        if gen.sampler is not None:
            gen.sampler.close()
            gen.sampler = None
        slot = gen.slot
        if slot is not None:
            slot.generation = None
            slot.last_used = time.monotonic()
        result = gen.result(reason, error)
        if gen.request.on_done is not None:
            try:
                gen.request.on_done(result)
            except Exception as e:
                self._log('error', f'on_done failed: {type(e).__name__}: {e}')

    # ================================================================ teardown
    def close(self, save: Optional[Callable[[str, Optional[SavedSequence]], None]] = None,
              timeout: float = 10.0) -> bool:
        """
        Stop the scheduler, then free the model and context.

        Running and queued generations end 'cancelled' and every conversation's KV state is handed
        to ``save`` (for session_dir) first. Returns False if the scheduler did not stop in time
        (then nothing is freed).
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if save is not None:
            for slot in self._slots:
                if slot.session:
                    save(slot.session, self._save(slot))
        self._free()
        return True

    def _free(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        cache = getattr(self, 'cache', None)
        if cache is not None:
            cache.clear()
        self._pieces = {}
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None
        if self._model is not None:
            self._model.close()
            self._model = None
        gc.collect()
