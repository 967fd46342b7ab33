# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
A slot (one llama.cpp sequence of the shared context) and the generation running in it.

The engine's scheduler thread owns every object here; nothing in this module is thread-safe.
A ``Slot`` remembers which tokens its sequence holds in the KV cache and which conversation
they belong to, so a follow-up turn only evaluates its new tokens. A ``Generation`` is one
request from admission to finish: the prompt tokens still to evaluate, its own sampler chain,
UTF-8-safe streaming with stop-sequence hold-back (text_stream.py), the hard token cap, and
its timings.
"""
from dataclasses import dataclass, field
import time
from typing import Any, Callable, Dict, List, Optional

from .sampling import SamplingParams
from .text_stream import TextStream


@dataclass
class GenerationResult:
    """How one generation ended; ``text`` is every piece handed to ``on_text``, joined."""

    text: str
    finish_reason: str           # 'stop' | 'length' | 'cancelled' | 'error'
    prompt_tokens: int
    completion_tokens: int
    reused_prompt_tokens: int    # prompt tokens served from the KV cache (not evaluated)
    prompt_eval_s: float         # admitted -> first token sampled
    generation_s: float          # first token -> end
    first_text_s: Optional[float] = None  # admitted -> first non-empty text piece
    queued_s: float = 0.0        # start() -> admitted into a slot
    error: str = ''              # for finish_reason 'error'
    restored_from: str = ''      # '' | 'slot' | 'ram' | 'disk': where a session's KV came from


@dataclass
class GenerationRequest:
    """What the engine needs to generate one reply."""

    tokens: List[int]
    sampling: SamplingParams
    grammar: Optional[str] = None        # GBNF, checked by grammars.check_gbnf
    session: str = ''                    # conversation key for the KV cache; '' = none
    on_text: Optional[Callable[[str], None]] = None
    should_stop: Callable[[], bool] = lambda: False
    on_done: Optional[Callable[[GenerationResult], None]] = None
    # The conversation as chat messages (what ``tokens`` were rendered from) and the JSON
    # Schema behind ``grammar``, if any: a backend that is not llama.cpp in this process
    # (a remote OpenAI-compatible server) sends these instead.
    messages: Optional[List[Dict[str, Any]]] = None
    json_schema: Optional[Dict[str, Any]] = None
    response_format: str = 'text'        # 'text' | 'json' | 'json_schema' | 'grammar'


@dataclass
class Slot:
    seq_id: int
    tokens: List[int] = field(default_factory=list)  # what the sequence holds in the KV cache
    session: str = ''                                # whose conversation that is ('' = none)
    last_used: float = 0.0
    generation: Optional['Generation'] = None

    @property
    def busy(self) -> bool:
        return self.generation is not None


class Run:
    """What every generation tracks, whatever runs it: its request, text stream and timings."""

    def __init__(self, request: GenerationRequest):
        self.request = request
        self.stream = TextStream(request.sampling.stop)
        self.submitted = time.monotonic()
        self.admitted = 0.0
        self.first_token_at: Optional[float] = None
        self.first_text_at: Optional[float] = None
        self.finished = False

    def emit(self, piece: str) -> None:
        """Hand a piece of text (if any) to the request's ``on_text``."""
        if not piece:
            return
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()
        if self.request.on_text is not None:
            self.request.on_text(piece)


class Generation(Run):
    """
    One request inside a slot.

    Phases: 'prompt' (tokens left to evaluate) -> 'generate' (a sampled token waits to be decoded)
    -> finished.
    """

    def __init__(self, request: GenerationRequest, limit: int):
        super().__init__(request)
        self.limit = limit                  # hard cap on generated tokens (<= context room)
        self.slot: Optional[Slot] = None
        self.sampler = None
        self.remaining: List[int] = []      # prompt tokens not yet in the KV cache
        self.next_token: Optional[int] = None
        self.n_out = 0
        self.reused = 0
        self.restored_from = ''

    @property
    def prompting(self) -> bool:
        return bool(self.remaining)

    def result(self, finish_reason: str, error: str = '') -> GenerationResult:
        end = time.monotonic()
        admitted = self.admitted or end
        first = self.first_token_at or end
        return GenerationResult(
            text=self.stream.text, finish_reason=finish_reason,
            prompt_tokens=len(self.request.tokens), completion_tokens=self.n_out,
            reused_prompt_tokens=self.reused, prompt_eval_s=first - admitted,
            generation_s=end - first,
            first_text_s=(self.first_text_at - admitted) if self.first_text_at else None,
            queued_s=admitted - self.submitted, error=error,
            restored_from=self.restored_from)


def common_prefix(a: List[int], b: List[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
