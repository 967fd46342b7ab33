# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The chat service logic, independent of ROS: validate, admit, keep sessions, generate.

``ChatCore.submit`` is called from any thread (ROS callbacks) and never blocks: it returns a
``Job`` that is either already finished (invalid request, queue full, not accepting) or will
be finished when its generation ends. A dispatcher thread (job_queue.py) starts up to
``n_parallel`` jobs at once - one per engine slot, a conversation's turns one after the other -
and prepares each on its own thread (output format, chat template, history trimming), so a
ROS callback thread never does more than validation. The engine's scheduler thread finishes
them (``_complete``). Every job gets exactly one ``ChatReply``: nothing a client sent is
dropped silently.
"""
from dataclasses import dataclass, field
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import request_options, tool_calls
from .job_queue import Job, JobQueue, QueueClosed, QueueFull
from .sampling import SamplingParams
from .session_cache import SessionDisk, StoredSession
from .sessions import session_id_error, SessionStore
from .slots import GenerationRequest, GenerationResult
from .stats import ChatStats
from .structured_output import FormatResolver, OutputFormat

MAX_SCHEMA_CHARS = 65536  # a request's json_schema (turned into a grammar per request)


@dataclass
class ChatRequest:
    """One request, with the LLMChat/LLMChatAction fields (defaults = the node's settings)."""

    prompt: str
    session_id: str = ''
    reset_session: bool = False
    response_format: str = ''
    json_schema: str = ''
    system_prompt: str = ''
    max_tokens: int = 0
    temperature: float = -1.0
    top_p: float = -1.0
    top_k: int = -1
    min_p: float = -1.0
    repeat_penalty: float = -1.0
    seed: int = -1
    stop: Sequence[str] = ()
    messages_json: str = ''
    tools_json: str = ''
    tool_choice: str = ''
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
    tool_calls_json: str = ''


@dataclass
class CoreConfig:
    """Queue and session limits (field = node parameter; defaults: settings.PARAMS)."""

    n_parallel: int
    max_queue: int
    max_prompt_chars: int
    max_history_chars: int
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
    settings: GenerationSettings        # the node's, with the request's options applied
    on_text: Optional[Callable[[str], None]]
    client_messages: Optional[List[Dict[str, Any]]] = None   # messages_json, parsed
    tools: Sequence[tool_calls.Tool] = ()
    tool_choice: str = 'auto'
    fmt: Optional[OutputFormat] = None  # resolved on the dispatcher thread (may take a while)
    started: float = 0.0


class ChatCore:

    def __init__(self, engine, config: CoreConfig, formats: FormatResolver,
                 stats: Optional[ChatStats] = None,
                 log: Optional[Callable[[str, str], None]] = None,
                 disk: Optional[SessionDisk] = None):
        self.engine = engine
        self.config = config
        self.formats = formats
        self.stats = stats or ChatStats()
        self.sessions = SessionStore(config.max_sessions, config.max_session_turns)
        self.disk = disk
        self._log = log or (lambda level, msg: None)
        self._queue = JobQueue(self._start, config.n_parallel, config.max_queue,
                               on_error=self._start_failed)

    # ------------------------------------------------------------------ public
    @property
    def queue_depth(self) -> int:
        return self._queue.depth

    @property
    def running(self) -> int:
        return self._queue.running

    @property
    def busy(self) -> bool:
        return self._queue.running > 0

    def submit(self, request: ChatRequest, settings: GenerationSettings,
               on_text: Optional[Callable[[str], None]] = None) -> Job:
        job = Job(None, key=request.session_id)
        error = self._validate(request)
        if error is None:
            try:
                job.payload = self._parse(request, settings, on_text)
            except ValueError as e:
                error = str(e)
        if error is not None:
            return self._finish_now(job, request, error, refused=False)
        try:
            self._queue.submit(job)
        except QueueFull as e:
            return self._finish_now(job, request, str(e), refused=True)
        except QueueClosed:
            return self._finish_now(job, request, 'the node is shutting down', refused=True)
        return job

    def cancel(self, job: Job, reason: str) -> None:
        """
        Cancel one job.

        A running one stops within a step (a token or a prompt chunk); a waiting one leaves the
        queue (freeing its place) and is answered 'cancelled' at once, on the caller's thread,
        instead of after the generations in front of it.
        """
        job.cancel(reason)
        if self._queue.remove(job):
            self._answer_cancelled(job)
        else:
            self.engine.wake()

    def cancel_all(self, reason: str) -> List[Job]:
        jobs = self._queue.cancel_all(reason)
        self.engine.wake()
        return jobs

    def wait_idle(self, timeout: float) -> bool:
        return self._queue.wait_idle(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        self.engine.wake()
        return self._queue.close(timeout)

    # ------------------------------------------------------------------ sessions on disk
    def load_saved_sessions(self) -> List[StoredSession]:
        """
        Read the sessions saved in session_dir back and return what was found.

        Only their histories are read: KV states stay on disk until their conversation speaks.
        """
        if self.disk is None:
            return []
        found = self.disk.load_all()
        for stored in found:
            self.sessions.replace(stored.session_id, stored.history, create=True)
            if not stored.kv_usable and stored.reason != 'no KV state saved':
                self._log('warn', f'session {stored.session_id!r}: history restored, its KV '
                                  f'state not ({stored.reason}); it is evaluated again')
        return found

    def save_session(self, session_id: str, saved) -> None:
        """Write a session (history + the KV state ``saved``, may be None) to session_dir."""
        if self.disk is not None and session_id:
            history = self.sessions.history(session_id, touch=False)
            if history:
                self.disk.write(session_id, history, saved)

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

    def _parse(self, req: ChatRequest, settings: GenerationSettings,
               on_text: Optional[Callable[[str], None]]) -> _Work:
        """
        Return the request's own settings, history and tools.

        Cheap checks only; a ValueError names the field and the reason.
        """
        work = _Work(req, request_options.apply_options(req, settings, self.engine.n_ctx),
                     on_text)
        if req.messages_json.strip():
            if req.session_id:
                raise ValueError('messages_json and session_id are exclusive: send the history '
                                 'yourself (messages_json) or let the node keep it '
                                 '(session_id), not both')
            work.client_messages = request_options.parse_messages(
                req.messages_json, self.config.max_history_chars)
        choice = req.tool_choice.strip()
        if req.tools_json.strip():
            if req.response_format.strip().lower() not in ('', 'text') or req.json_schema:
                raise ValueError('tools_json and response_format/json_schema are exclusive: '
                                 'a reply is either tool calls (or text) or structured output')
            work.tools = tool_calls.parse_tools(req.tools_json)
            work.tool_choice = tool_calls.parse_tool_choice(choice, work.tools)
        elif choice and choice != 'none':
            raise ValueError(f'tool_choice {choice!r} needs tools_json (no tools were sent)')
        return work

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

    # ------------------------------------------------------------------ dispatcher thread
    def _answer(self, job: Job, reply: ChatReply, perf: Optional[dict] = None) -> None:
        req = job.payload.request
        reply.latency_s = time.monotonic() - req.received
        outcome = 'ok' if reply.success else (
            'cancelled' if reply.finish_reason == 'cancelled' else 'failed')
        self.stats.record(outcome, reply.latency_s, error=reply.error,
                          ttft_s=reply.time_to_first_token_s if reply.completion_tokens else None,
                          **(perf or {}))
        job.finish(reply)

    def _answer_cancelled(self, job: Job) -> None:
        self._answer(job, ChatReply(error=f'cancelled before it started ({job.cancel_reason})',
                                    finish_reason='cancelled'))

    def _start_failed(self, job: Job, error: BaseException) -> None:
        message = f'generation failed: {type(error).__name__}: {error}'
        self._log('error', message)
        self.stats.generation_failed(message)
        self._answer(job, ChatReply(error=message, finish_reason='error'))

    def _start(self, job: Job) -> bool:
        """Prepare a job and hand it to the engine; False if it was answered already."""
        work: _Work = job.payload
        req, settings = work.request, work.settings
        if job.cancelled:
            self._answer_cancelled(job)
            return False
        try:
            work.fmt = self.formats.resolve(req.response_format, req.json_schema)
        except ValueError as e:
            self._answer(job, ChatReply(error=str(e), finish_reason='error'))
            return False
        if req.reset_session and req.session_id:
            self.sessions.reset(req.session_id)
            self.engine.forget_session(req.session_id)
            if self.disk is not None:
                self.disk.delete(req.session_id)
        if not req.prompt.strip():
            self._answer(job, ChatReply(success=True, finish_reason='stop'))
            return False
        sampling = settings.sampling
        budget = self.engine.n_ctx - sampling.max_tokens
        client = list(work.client_messages) if work.client_messages is not None else None
        history = self.sessions.history(req.session_id) if client is None else []
        grammar = work.fmt.grammar
        if work.tools or req.tool_choice.strip() == 'none':
            try:
                grammar = (tool_calls.tool_call_grammar(work.tools, work.tool_choice)
                           if work.tool_choice != 'none' and work.tools
                           else tool_calls.no_call_grammar())
            except ValueError as e:
                self._answer(job, ChatReply(error=f'tools_json: {e}', finish_reason='error'))
                return False
        dropped = 0
        while True:
            messages = request_options.conversation(settings.system_prompt, req.system_prompt,
                                                    client, history, req.prompt)
            # tools into the prompt; tool results / assistant tool_calls the template can show
            messages, render = tool_calls.prompt_with_tools(
                messages, work.tools, work.tool_choice, self.engine.supports_tools)
            tokens = self.engine.prompt_tokens(messages, **render)
            if len(tokens) <= budget or not (history or _droppable(client)):
                break
            if client is not None:   # the oldest message that is not a system message
                client.pop(next(i for i, m in enumerate(client) if m['role'] != 'system'))
            else:
                history.pop(0)
            dropped += 1
        if len(tokens) > budget:
            self._answer(job, ChatReply(
                error=(f'prompt does not fit the context: it needs {len(tokens)} tokens '
                       f'(with the system prompt and chat template) but only {budget} are '
                       f'available (n_ctx={self.engine.n_ctx} minus max_tokens='
                       f'{sampling.max_tokens})'),
                finish_reason='error', prompt_tokens=len(tokens)))
            return False
        if dropped and client is not None:
            self._log('info', f'messages_json: dropped the {dropped} oldest message(s) to fit '
                              f'n_ctx={self.engine.n_ctx}')
        elif dropped:
            self.sessions.replace(req.session_id, history)
            self._log('info', f'session {req.session_id!r}: dropped {dropped} oldest turn(s) '
                              f'to fit n_ctx={self.engine.n_ctx}')
        work.started = time.monotonic()
        deadline = work.started + settings.max_generation_s

        def should_stop() -> bool:
            if not job.cancelled and time.monotonic() > deadline:
                job.cancel(f'stopped after max_generation_s={settings.max_generation_s:g} s')
            return job.cancelled

        self.engine.start(GenerationRequest(
            tokens=tokens, sampling=sampling, grammar=grammar,
            session=req.session_id, on_text=work.on_text, should_stop=should_stop,
            on_done=lambda result: self._complete(job, result), messages=messages,
            json_schema=work.fmt.schema, response_format=work.fmt.name))
        return True

    # ------------------------------------------------------------------ engine thread
    def _complete(self, job: Job, result: GenerationResult) -> None:
        work: _Work = job.payload
        req = work.request
        try:
            reply = self._reply(job, work, result)
            if reply.success and req.session_id:
                self.sessions.append(req.session_id, req.prompt, result.text)
                if self.disk is not None:  # cheap: the write happens on another thread
                    self.save_session(req.session_id,
                                      self.engine.snapshot_session(req.session_id))
        except Exception as e:  # never lose the answer
            reply = ChatReply(error=f'generation failed: {type(e).__name__}: {e}',
                              finish_reason='error')
        if result.finish_reason == 'error':
            self._log('error', reply.error)
            self.stats.generation_failed(reply.error)
        perf = {'gen_tokens': result.completion_tokens, 'gen_s': result.generation_s,
                'prompt_tokens_evaluated': result.prompt_tokens - result.reused_prompt_tokens,
                'prompt_s': result.prompt_eval_s}
        self._answer(job, reply, perf)
        self._queue.done(job)

    def _reply(self, job: Job, work: _Work, result: GenerationResult) -> ChatReply:
        req, sampling = work.request, work.settings.sampling
        reply = ChatReply(
            response=result.text, finish_reason=result.finish_reason,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
            cached_prompt_tokens=result.reused_prompt_tokens,
            time_to_first_token_s=(work.started - req.received + result.queued_s
                                   + result.first_text_s
                                   if result.first_text_s is not None else 0.0))
        if result.finish_reason == 'error':
            reply.error = f'generation failed: {result.error}'
            return reply
        if result.finish_reason == 'cancelled':
            reply.error = f'cancelled: {job.cancel_reason or "the engine stopped"}'
            return reply
        if work.tools:
            try:
                _, calls = tool_calls.parse_tool_calls(result.text, work.tools, work.tool_choice)
            except ValueError as e:
                reply.error = f'invalid tool call: {e}'
                return reply
            if calls:
                reply.tool_calls_json = tool_calls.tool_calls_json(calls)
                reply.finish_reason = 'tool_calls'
        problem = work.fmt.check(result.text, result.finish_reason, sampling.max_tokens)
        if problem:
            reply.error = problem
            return reply
        reply.success = True
        return reply


def _droppable(client: Optional[List[Dict[str, Any]]]) -> bool:
    return client is not None and any(m['role'] != 'system' for m in client)
