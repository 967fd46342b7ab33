"""The chat service logic, independent of ROS: validate, queue, keep sessions, generate.

``ChatCore.submit`` is called from any thread (ROS callbacks) and never blocks: it returns a
``Job`` that is either already finished (invalid request, queue full, not accepting) or will
be finished by the single worker thread that owns the engine. Every job gets exactly one
``ChatReply`` - nothing a client sent is dropped silently.
"""
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .engine import SamplingParams
from .job_queue import Job, JobQueue, QueueClosed, QueueFull
from .sessions import SessionStore, session_id_error
from .stats import ChatStats
from .structured_output import FormatResolver, OutputFormat


MAX_SCHEMA_CHARS = 65536  # a request's json_schema (turned into a grammar per request)


@dataclass
class ChatRequest:
    prompt: str
    session_id: str = ''
    reset_session: bool = False
    response_format: str = ''
    json_schema: str = ''
    received: float = field(default_factory=time.monotonic)


@dataclass
class ChatReply:
    response: str = ''
    success: bool = False
    error: str = ''
    finish_reason: str = 'error'
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    time_to_first_token_s: float = 0.0
    cached_prompt_tokens: int = 0


@dataclass
class CoreConfig:
    """Queue and session limits (field = node parameter; defaults: settings.PARAMS)."""
    max_queue: int
    max_prompt_chars: int
    max_sessions: int
    max_session_turns: int


@dataclass
class GenerationSettings:
    """The live settings for one request (snapshotted when it is submitted)."""
    sampling: SamplingParams
    system_prompt: str
    max_generation_s: float


@dataclass
class _Work:
    request: ChatRequest
    settings: GenerationSettings
    on_text: Optional[Callable[[str], None]]
    fmt: Optional[OutputFormat] = None  # resolved on the worker thread (may take a while)


class ChatCore:

    def __init__(self, engine, config: CoreConfig, formats: FormatResolver,
                 stats: Optional[ChatStats] = None, log: Optional[Callable[[str, str], None]] = None):
        self.engine = engine
        self.config = config
        self.formats = formats
        self.stats = stats or ChatStats()
        self.sessions = SessionStore(config.max_sessions, config.max_session_turns)
        self._log = log or (lambda level, msg: None)
        self._queue = JobQueue(self._handle, config.max_queue)

    # ------------------------------------------------------------------ public
    @property
    def queue_depth(self) -> int:
        return self._queue.depth

    @property
    def busy(self) -> bool:
        return self._queue.busy

    def submit(self, request: ChatRequest, settings: GenerationSettings,
               on_text: Optional[Callable[[str], None]] = None) -> Job:
        job = Job(None)
        error = self._validate(request)
        if error is not None:
            return self._finish_now(job, request, error, refused=False)
        # The output format (a JSON schema becomes a grammar) is resolved on the worker: a
        # callback thread never spends more than a moment here.
        job.payload = _Work(request, settings, on_text)
        try:
            self._queue.submit(job)
        except QueueFull as e:
            return self._finish_now(job, request, str(e), refused=True)
        except QueueClosed:
            return self._finish_now(job, request, 'the node is shutting down', refused=True)
        return job

    def cancel(self, job: Job, reason: str) -> None:
        """Cancel one job: a running one stops at its next token; a waiting one leaves the
        queue (freeing its place) and is answered 'cancelled' at once, on the caller's thread,
        instead of after the generation in front of it."""
        job.cancel(reason)
        if self._queue.remove(job):
            self._handle(job)  # job.cancelled: answers without touching the engine

    def cancel_all(self, reason: str) -> List[Job]:
        return self._queue.cancel_all(reason)

    def wait_idle(self, timeout: float) -> bool:
        return self._queue.wait_idle(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        return self._queue.close(timeout)

    # ------------------------------------------------------------------ validation
    def _validate(self, req: ChatRequest) -> Optional[str]:
        sid_error = session_id_error(req.session_id)
        if sid_error:
            return sid_error
        if not req.prompt.strip():
            if req.reset_session and req.session_id:
                return None  # reset-only request: clears the session, succeeds
            return 'empty prompt: send some text to answer'
        if len(req.prompt) > self.config.max_prompt_chars:
            return (f'prompt too long: {len(req.prompt)} characters, the limit is '
                    f'max_prompt_chars={self.config.max_prompt_chars}')
        if '\x00' in req.prompt:
            return 'prompt contains a NUL character'
        if len(req.json_schema) > MAX_SCHEMA_CHARS:
            return (f'json_schema too long: {len(req.json_schema)} characters, the limit is '
                    f'{MAX_SCHEMA_CHARS}')
        return None

    def _finish_now(self, job: Job, req: ChatRequest, error: str, refused: bool) -> Job:
        reply = ChatReply(error=error, finish_reason='error',
                          latency_s=time.monotonic() - req.received)
        if refused:
            self.stats.refused()
        else:
            self.stats.record('failed', reply.latency_s, error=error)
        self._log('warn', f'request refused: {error}')
        job.finish(reply)
        return job

    # ------------------------------------------------------------------ worker thread
    def _handle(self, job: Job) -> None:
        work: _Work = job.payload
        req = work.request
        perf = {}  # generation timings for the statistics, filled by _serve
        try:
            reply = self._serve(job, work, perf)
        except Exception as e:  # a failed generation must not kill the worker
            error = f'generation failed: {type(e).__name__}: {e}'
            self._log('error', error)
            self.stats.generation_failed(error)
            reply = ChatReply(error=error, finish_reason='error')
        reply.latency_s = time.monotonic() - req.received
        outcome = 'ok' if reply.success else (
            'cancelled' if reply.finish_reason == 'cancelled' else 'failed')
        self.stats.record(outcome, reply.latency_s, error=reply.error,
                          ttft_s=reply.time_to_first_token_s if reply.completion_tokens else None,
                          **perf)
        job.finish(reply)

    def _serve(self, job: Job, work: _Work, perf: dict) -> ChatReply:
        req, settings = work.request, work.settings
        if job.cancelled:
            return ChatReply(error=f'cancelled before it started ({job.cancel_reason})',
                             finish_reason='cancelled')
        try:
            work.fmt = self.formats.resolve(req.response_format, req.json_schema)
        except ValueError as e:
            return ChatReply(error=str(e), finish_reason='error')
        if req.reset_session and req.session_id:
            self.sessions.reset(req.session_id)
        if not req.prompt.strip():
            return ChatReply(success=True, finish_reason='stop')

        sampling = settings.sampling
        budget = self.engine.n_ctx - sampling.max_tokens
        history = self.sessions.history(req.session_id)
        dropped = 0
        while True:
            tokens = self.engine.prompt_tokens(self._messages(settings, history, req.prompt))
            if len(tokens) <= budget or not history:
                break
            history.pop(0)
            dropped += 1
        if len(tokens) > budget:
            return ChatReply(
                error=(f'prompt does not fit the context: it needs {len(tokens)} tokens '
                       f'(with the system prompt and chat template) but only {budget} are '
                       f'available (n_ctx={self.engine.n_ctx} minus max_tokens='
                       f'{sampling.max_tokens})'),
                finish_reason='error', prompt_tokens=len(tokens))
        if dropped:
            self.sessions.replace(req.session_id, history)
            self._log('info', f'session {req.session_id!r}: dropped {dropped} oldest turn(s) '
                              f'to fit n_ctx={self.engine.n_ctx}')

        started = time.monotonic()
        deadline = started + settings.max_generation_s

        def should_stop() -> bool:
            if not job.cancelled and time.monotonic() > deadline:
                job.cancel(f'stopped after max_generation_s={settings.max_generation_s:g} s')
            return job.cancelled

        result = self.engine.generate(tokens, sampling, on_text=work.on_text,
                                      should_stop=should_stop, grammar=work.fmt.grammar)
        perf.update(gen_tokens=result.completion_tokens, gen_s=result.generation_s,
                    prompt_tokens_evaluated=result.prompt_tokens - result.reused_prompt_tokens,
                    prompt_s=result.prompt_eval_s)
        reply = ChatReply(
            response=result.text, finish_reason=result.finish_reason,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            cached_prompt_tokens=result.reused_prompt_tokens,
            time_to_first_token_s=(started - req.received + result.first_text_s
                                   if result.first_text_s is not None else 0.0))
        if result.finish_reason == 'cancelled':
            reply.error = f'cancelled: {job.cancel_reason}'
            return reply
        problem = work.fmt.check(result.text, result.finish_reason, sampling.max_tokens)
        if problem:
            reply.error = problem
            return reply
        reply.success = True
        if req.session_id:
            self.sessions.append(req.session_id, req.prompt, result.text)
        return reply

    @staticmethod
    def _messages(settings: GenerationSettings, history, prompt: str) -> List[Dict[str, str]]:
        messages = []
        if settings.system_prompt:
            messages.append({'role': 'system', 'content': settings.system_prompt})
        for user, assistant in history:
            messages.append({'role': 'user', 'content': user})
            messages.append({'role': 'assistant', 'content': assistant})
        messages.append({'role': 'user', 'content': prompt})
        return messages
