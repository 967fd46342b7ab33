# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The remote backend: ChatCore's engine interface over an OpenAI-compatible server, no ROS.

Servers: llama.cpp's server, vLLM, Ollama, llama-cpp-python's server.
``OpenAIEngine`` stands in for ``engine.LlamaEngine``: ChatCore keeps the sessions, trims the
history to ``n_ctx``, validates structured output and answers every request exactly as with
the local engine; only the generation itself happens on the server. Each request streams one
chat completion (``messages``, ``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``;
``top_k``, ``min_p``, ``repeat_penalty`` and vLLM's name ``repetition_penalty`` go in the
request body too: llama.cpp's server, llama-cpp-python's server and vLLM apply those, servers
that do not know them ignore them). Up to ``n_parallel`` requests are in flight at once (the
server batches them).

HTTP, SSE parsing, connection pooling and timeouts are the ``openai`` package's (its async
client over httpx); nothing here parses the wire format. The async client runs on one
event-loop thread so that a cancel (client cancel, deactivate, cleanup, max_generation_s)
interrupts a request at once - even while the server sends nothing - and closes its HTTP
stream, which makes the server stop generating. (A blocking client in a thread pool could
only notice a cancel between chunks, and a socket blocked in a read cannot be interrupted
from another thread.) Hand-written here: the mapping from a request to the API call, the text
stream rules of the local engine (text_stream.py: stop sequences held back, UTF-8 safe), the
error texts, and the prompt-size estimate below.

Prompt size (ChatCore trims the history with ``prompt_tokens``): a server that can count is
asked - vLLM's ``POST /tokenize`` (takes chat messages) or llama.cpp's ``POST /apply-template``
+ ``POST /tokenize`` - detected at configure. Otherwise (Ollama, llama-cpp-python's server,
whose tokenize endpoint waits for the running generation) the count is estimated from the
UTF-8 size of the messages (tokens per byte, learnt from the ``usage`` the server reports,
1.1x margin) plus a few tokens per message for the chat template: close, not exact; the
server refuses a prompt that really does not fit, with an error the client sees.

Structured output: ``response_format`` ``{"type": "json_schema", "json_schema": {...}}`` (the
OpenAI form: vLLM, llama.cpp's server, Ollama); a server that refuses that form (HTTP error
naming response_format: llama-cpp-python's server) gets ``{"type": "json_object", "schema":
...}`` instead, then nothing; ChatCore validates every reply against the schema anyway. JSON
mode sends ``{"type": "json_object"}``; a GBNF grammar (a grammar_file, or the tool-call grammar
of a request with tools_json) goes as ``grammar`` (llama.cpp-based servers only; others ignore
it, and ChatCore still checks the reply).

Secrets: the API key is read from the environment variable named by ``api_key_env``; it, and
any credentials written into ``base_url``, are removed from every error and log text
(remote_url.py, ``_scrub``). Without ``api_key_env`` the client sends the placeholder key
``EMPTY`` (what vLLM's documentation uses; servers without a key ignore it).

Threading: ``start``/``wake``/``prompt_tokens``/``close`` may be called from any thread;
``on_text`` and ``on_done`` run on the event-loop thread (keep them short).
"""
import asyncio
import concurrent.futures
from dataclasses import dataclass
import math
import os
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import openai

from .model_loading import ModelInfo
from .remote_url import public_url, strip_userinfo
from .session_cache import SessionCache
from .slots import GenerationRequest, GenerationResult, Run

# Prompt estimate (no tokenize endpoint): chat-template tokens per message (role header and
# end-of-turn: ChatML uses 5), the assistant header, the first guess of tokens per UTF-8
# byte (English BPE ~0.25, CJK ~0.33), the safety margin on the learnt value.
TEMPLATE_TOKENS_PER_MESSAGE = 6
TEMPLATE_TOKENS_REPLY = 3
TOKENS_PER_BYTE_GUESS = 0.35
ESTIMATE_MARGIN = 1.1
CHECK_TIMEOUT_S = 30.0    # longest wait for GET /models at configure (after connecting)
POLL_S = 0.05             # how often running requests' should_stop is polled
ERROR_BODY_CHARS = 600    # how much of an HTTP error body goes into an error text
PLACEHOLDER_KEY = 'EMPTY'

# httpx errors (by name: they are httpx's or httpx2's, depending on the openai version) of a
# connection that broke before the reply began
STALE_CONNECTION_ERRORS = {'ReadError', 'WriteError', 'RemoteProtocolError'}
CONNECT_ERRORS = {'ConnectError', 'ConnectTimeout'}   # no connection at all: not retried
FINISH_REASONS = {'stop': 'stop', 'length': 'length'}  # others (tool_calls...) -> 'stop'


class BackendError(Exception):
    """The server cannot be used (configure fails with this text)."""


@dataclass
class RemoteConfig:
    """Remote backend settings (field = node parameter; defaults: settings.PARAMS)."""

    base_url: str
    model: str
    api_key_env: str
    request_timeout_s: float
    connect_timeout_s: float
    n_ctx: int
    n_parallel: int


class _Run(Run):
    """One request from start() to on_done (event-loop thread only)."""

    def __init__(self, request: GenerationRequest):
        super().__init__(request)
        self.chunks = 0                  # content chunks (~ tokens) when the server has no usage
        self.usage = None
        self.server_finish: Optional[str] = None
        self.cancelled = False           # should_stop said so
        self.task: Optional[asyncio.Task] = None


class OpenAIEngine:
    """ChatCore's engine, generating on an OpenAI-compatible server (see the module text)."""

    backend = 'openai'
    # Tools (tools_json) are declared in a system message and the reply is constrained by the
    # call grammar where the server accepts ``grammar`` (llama.cpp-based servers); ChatCore
    # parses and validates the calls in any case. (The server's own tool-call API is not used.)
    supports_tools = False

    def __init__(self, config: RemoteConfig, cache: Optional[SessionCache] = None,
                 log: Callable[[str, str], None] = lambda level, msg: None):
        self.config = config
        self.url = public_url(config.base_url)
        self._log = log
        self._secret = ''
        if config.api_key_env:
            self._secret = os.environ.get(config.api_key_env, '')
            if not self._secret:
                raise BackendError(f'api_key_env: the environment variable '
                                   f'{config.api_key_env} is not set or empty')
        self.cache = cache if cache is not None else SessionCache(0)
        self.context_mb = 0.0
        self.prompt_tokens_total = 0
        self.prompt_tokens_cached = 0
        self.restored = {'slot': 0, 'ram': 0, 'disk': 0}
        self.last_error = ''
        self._tokens_per_byte = TOKENS_PER_BYTE_GUESS
        self._counter = ''               # '' | 'vllm' | 'llama.cpp': how prompts are counted
        self._format_styles = {'json_schema': ['json_schema', 'json_object', None],
                               'json': ['json_object', None], 'grammar': ['grammar']}
        self._runs: List[_Run] = []
        self._poll_handle = None
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name='llm-remote',
                                        daemon=True)
        self._thread.start()
        self._slots = None
        self._client = None
        started = time.monotonic()
        check_s = self._check_timeout()
        try:
            self._call(self._open(), 2 * (config.connect_timeout_s + check_s) + 5)
        except concurrent.futures.TimeoutError:
            self.close(timeout=5.0)
            raise BackendError(f'no answer from the server at {self.url} within '
                               f'{check_s:g} s') from None
        except BaseException:
            self.close(timeout=5.0)
            raise
        self.info = ModelInfo(
            path=config.model, file_size_bytes=0, load_time_s=time.monotonic() - started,
            n_ctx=config.n_ctx, n_parallel=config.n_parallel,
            n_ctx_train=self._server_n_ctx or 0, n_threads=0, n_threads_batch=0,
            chat_template_source='the server')

    # ================================================================ setup
    def _call(self, coro, timeout: float):
        """Run ``coro`` on the event loop and wait for its result (from another thread)."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()   # the coroutine stops at its next await
            raise

    async def _open(self) -> None:
        cfg = self.config
        self._slots = asyncio.Semaphore(cfg.n_parallel)
        self._client = openai.AsyncOpenAI(
            base_url=cfg.base_url, api_key=self._secret or PLACEHOLDER_KEY, max_retries=0,
            timeout=openai.Timeout(cfg.request_timeout_s, connect=cfg.connect_timeout_s))
        self._server_n_ctx = None
        try:
            models = await self._client.models.list(timeout=openai.Timeout(
                self._check_timeout(), connect=cfg.connect_timeout_s))
            ids = [str(m.id) for m in models.data]
        except openai.APIStatusError as e:
            raise BackendError(f'the server at {self.url} answered GET /models with '
                               f'{self._status_text(e)}') from None
        except openai.APITimeoutError as e:
            raise BackendError(f'no answer from the server at {self.url} within '
                               f'{self._timeout_name(e, self._check_timeout())}') from None
        except openai.APIError as e:
            raise BackendError(f'cannot reach the server at {self.url}: '
                               f'{self._exception_text(e)}') from None
        except Exception as e:  # an answer that is not a model list (not an OpenAI API)
            raise BackendError(f'the server at {self.url} gave no model list for GET /models '
                               f'({type(e).__name__}: {self._scrub(str(e))[:200]}); is '
                               'base_url its OpenAI API root (usually ending in /v1)?') from None
        match = [m for m in models.data if m.id == cfg.model or m.id == cfg.model + ':latest']
        if not match:
            shown = ', '.join(repr(i) for i in ids[:20]) or 'nothing'
            raise BackendError(f'the server at {self.url} does not serve model '
                               f'{cfg.model!r} (GET /models lists {shown})')
        extra = match[0].model_extra or {}
        if isinstance(extra.get('max_model_len'), int):       # vLLM
            self._server_n_ctx = extra['max_model_len']
            if self._server_n_ctx < cfg.n_ctx:
                self._say('warn', f'n_ctx={cfg.n_ctx} but {cfg.model!r} on {self.url} has '
                                  f'max_model_len={self._server_n_ctx}: long prompts will be '
                                  'refused by the server; lower n_ctx')
        self._counter = await self._detect_counter()
        self._say('info', f'{self.url}: serving {cfg.model!r}; prompt sizes '
                          + ({'vllm': 'counted by the server (POST /tokenize)',
                              'llama.cpp': 'counted by the server (POST /apply-template, '
                                           '/tokenize)'}.get(self._counter,
                                                             'estimated (no tokenize endpoint)')))

    def _root(self) -> str:
        """Return the server's root (the API root without a trailing /v1)."""
        return re.sub(r'/v1/?$', '', str(self._client.base_url).rstrip('/'))

    async def _post_root(self, path: str, body: Dict[str, Any]) -> Any:
        return await self._client.post(self._root() + path, body=body, cast_to=object,
                                       options={'timeout': self.config.connect_timeout_s})

    async def _detect_counter(self) -> str:
        probe = [{'role': 'user', 'content': 'Hello robot'}]
        try:
            out = await self._post_root('/tokenize', {'model': self.config.model,
                                                      'messages': probe,
                                                      'add_generation_prompt': True})
            if isinstance(out, dict) and isinstance(out.get('count'), int):
                return 'vllm'
            out = await self._post_root('/apply-template', {'messages': probe})
            if isinstance(out, dict) and 'Hello robot' in str(out.get('prompt', '')):
                return 'llama.cpp'
        except (openai.APIError, ValueError, TypeError):
            pass
        return ''

    # ================================================================ prompt size
    @property
    def n_ctx(self) -> int:
        return self.config.n_ctx

    @property
    def n_parallel(self) -> int:
        return self.config.n_parallel

    def prompt_tokens(self, messages: Sequence[Dict[str, str]], tools=None) -> List[int]:
        """
        Return a list as long as the templated conversation is in tokens.

        Counted by the server when it can, else estimated; the ids are all 0 (this backend
        sends the messages, not tokens). ``tools`` is always None here (``supports_tools``).
        """
        if self._counter:
            try:
                return [0] * self._call(self._count(list(messages)),
                                        self.config.connect_timeout_s * 2 + 1)
            except Exception as e:  # counting is an optimisation: estimate instead
                self._counter = ''
                self._say('warn', f'{self.url}: counting prompt tokens failed '
                                  f'({self._scrub(str(e))}); estimating them from now on')
        return [0] * self._estimate(messages)

    async def _count(self, messages) -> int:
        if self._counter == 'vllm':
            out = await self._post_root('/tokenize', {'model': self.config.model,
                                                      'messages': messages,
                                                      'add_generation_prompt': True})
            return int(out['count'])
        prompt = (await self._post_root('/apply-template', {'messages': messages}))['prompt']
        out = await self._post_root('/tokenize', {'content': prompt, 'add_special': True})
        return len(out['tokens'])

    @staticmethod
    def _message_bytes(messages) -> int:
        return sum(len(str(m.get('content') or '').encode('utf-8')) for m in messages)

    def _estimate(self, messages) -> int:
        return (math.ceil(self._message_bytes(messages) * self._tokens_per_byte
                          * ESTIMATE_MARGIN)
                + TEMPLATE_TOKENS_PER_MESSAGE * len(messages) + TEMPLATE_TOKENS_REPLY)

    def _learn(self, messages, prompt_tokens: int) -> None:
        """Update tokens per byte from a prompt size the server reported."""
        size = self._message_bytes(messages)
        if size < 64:
            return
        fixed = TEMPLATE_TOKENS_PER_MESSAGE * len(messages) + TEMPLATE_TOKENS_REPLY
        seen = max(0.05, (prompt_tokens - fixed) / size)
        self._tokens_per_byte = 0.7 * self._tokens_per_byte + 0.3 * seen

    # ================================================================ sessions (no KV here)
    def session_identity(self) -> Dict:
        """Return what a saved session depends on (only histories are saved with a server)."""
        return {'backend': 'openai', 'base_url': self.url, 'model': self.config.model}

    def sessions_in_slots(self) -> int:
        return 0

    def forget_session(self, session: str) -> None:
        """Nothing to drop: the server is sent the whole history with every request."""

    def clear_cache(self) -> None:
        """Nothing to clear (the server's own prompt cache is its business)."""

    def snapshot_session(self, session: str):
        return None

    @property
    def busy_slots(self) -> int:
        return len(self._runs)

    # ================================================================ requests
    def start(self, request: GenerationRequest) -> _Run:
        """Send a request; ``request.on_done`` is called exactly once, on the loop thread."""
        if self._closing:
            raise RuntimeError('OpenAIEngine is closed')
        if request.messages is None:
            raise ValueError('the openai backend needs GenerationRequest.messages')
        run = _Run(request)
        self._loop.call_soon_threadsafe(self._launch, run)
        return run

    def generate(self, messages, sampling, on_text=None, should_stop=lambda: False,
                 timeout: Optional[float] = None) -> GenerationResult:
        """Send a request and wait for it (tests, benchmarks, simple callers)."""
        done = threading.Event()
        out = []

        def on_done(result):
            out.append(result)
            done.set()
        self.start(GenerationRequest(tokens=self.prompt_tokens(messages), sampling=sampling,
                                     on_text=on_text, should_stop=should_stop,
                                     on_done=on_done, messages=list(messages)))
        if not done.wait(timeout):
            raise TimeoutError(f'no reply within {timeout} s')
        return out[0]

    def wake(self) -> None:
        """Poll the running requests' ``should_stop`` now (cancel, deactivate)."""
        if not self._closing:
            self._loop.call_soon_threadsafe(self._poll)

    def _launch(self, run: _Run) -> None:
        if self._closing:
            self._finish(run, 'cancelled', 'the engine is shutting down')
            return
        self._runs.append(run)
        run.task = self._loop.create_task(self._serve(run))
        if self._poll_handle is None:
            self._poll_handle = self._loop.call_later(POLL_S, self._poll)

    def _poll(self) -> None:
        self._poll_handle = None
        for run in list(self._runs):
            if not run.cancelled and run.task is not None and run.request.should_stop():
                run.cancelled = True
                run.task.cancel()
        if self._runs and not self._closing:
            self._poll_handle = self._loop.call_later(POLL_S, self._poll)

    async def _serve(self, run: _Run) -> None:
        reason, error = 'error', ''
        timeout = self.config.request_timeout_s
        try:
            async with self._slots:
                run.admitted = time.monotonic()
                if run.request.should_stop():
                    run.cancelled = True
                    raise asyncio.CancelledError
                # wait_for, not asyncio.timeout: Humble's Python is 3.10
                reason, error = await asyncio.wait_for(self._attempts(run), timeout)
        except asyncio.CancelledError:
            reason = 'cancelled'
            error = '' if run.cancelled else 'the engine is shutting down'
        except asyncio.TimeoutError:
            error = (f'the server at {self.url} did not finish the reply within '
                     f'request_timeout_s={timeout:g} s')
        except openai.APIStatusError as e:
            error = f'the server at {self.url} answered {self._status_text(e)}'
        except openai.APITimeoutError as e:
            error = (f'no answer from the server at {self.url} within '
                     f'{self._timeout_name(e)}: {self._exception_text(e)}')
        except openai.APIError as e:
            error = (('the connection to the server at {} broke mid-stream' if run.chunks
                      else 'cannot reach the server at {}').format(self.url)
                     + f': {self._exception_text(e)}')
        except ValueError as e:  # JSON that does not parse, a chunk of the wrong shape
            error = f'the server at {self.url} sent a malformed stream: {type(e).__name__}: {e}'
        except Exception as e:  # never leave a request without an answer
            error = f'{type(e).__name__}: {e}'
        self._finish(run, reason, self._scrub(error))

    async def _attempts(self, run: _Run):
        """
        Stream the reply, trying the next structured-output form if one is refused.

        The refusal comes before anything was streamed; the form that works is remembered.
        """
        name = run.request.response_format
        styles = self._format_styles.get(name, [None])
        retried = False
        while True:
            style = styles[0] if styles else None
            try:
                return await self._stream(run, style)
            except openai.APIConnectionError as e:
                # A kept-alive connection the server had closed (it does so after a failed
                # stream): nothing was sent back, so the request is sent once more on a new
                # connection. A server that is down fails to connect and is not retried.
                if retried or run.chunks or not self._stale_connection(e):
                    raise
                retried = True
                self._say('info', f'{self.url}: the server had closed a kept-alive '
                                  f'connection ({self._exception_text(e)}); sending again')
            except openai.APIStatusError as e:
                refused = (style is not None and len(styles) > 1 and e.status_code in (
                    400, 422, 500) and 'response_format' in self._body_text(e))
                if not refused:
                    raise
                if styles and styles[0] == style:  # another request may have moved on
                    styles.pop(0)
                self._say('warn', f'{self.url} refused response_format {style!r} '
                                  f'({self._status_text(e)[:200]}); using '
                                  f'{styles[0] or "none (replies validated afterwards)"!r}')

    def _request_args(self, run: _Run, style: Optional[str]) -> Dict[str, Any]:
        req, s = run.request, run.request.sampling
        args = {'model': self.config.model, 'messages': req.messages, 'max_tokens': s.max_tokens,
                'temperature': s.temperature, 'top_p': s.top_p, 'stream': True,
                'stream_options': {'include_usage': True}}
        if s.stop:
            args['stop'] = list(s.stop)
        if s.seed >= 0:
            args['seed'] = s.seed
        extra = {'top_k': s.top_k, 'min_p': s.min_p, 'repeat_penalty': s.repeat_penalty,
                 'repetition_penalty': s.repeat_penalty}
        schema = req.json_schema
        if style == 'json_schema' and schema is not None:
            args['response_format'] = {'type': 'json_schema',
                                       'json_schema': {'name': 'reply', 'schema': schema}}
        elif style == 'json_object':
            args['response_format'] = ({'type': 'json_object', 'schema': schema}
                                       if schema is not None else {'type': 'json_object'})
        elif req.grammar and style not in ('json_schema', 'json_object'):
            extra['grammar'] = req.grammar   # a grammar_file, or tool calls (text format)
        args['extra_body'] = extra
        return args

    async def _stream(self, run: _Run, style: Optional[str]):
        req = run.request
        stream = await self._client.chat.completions.create(**self._request_args(run, style))
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    run.usage = chunk.usage
                for choice in chunk.choices[:1]:
                    text = choice.delta.content if choice.delta else None
                    if text:
                        if run.first_token_at is None:
                            run.first_token_at = time.monotonic()
                        run.chunks += 1
                        run.emit(run.stream.feed(text.encode('utf-8')))
                    if choice.finish_reason:
                        run.server_finish = choice.finish_reason
                if run.stream.stopped:
                    return 'stop', ''            # a stop sequence the server did not apply
                if req.should_stop():
                    run.cancelled = True
                    return 'cancelled', ''
        finally:
            await asyncio.shield(stream.close())  # closes the HTTP stream: the server stops
        if run.server_finish is None:
            return 'error', (f'the server at {self.url} ended the stream without a '
                             'finish_reason (it stopped or interrupted the generation)')
        return FINISH_REASONS.get(run.server_finish, 'stop'), ''

    def _finish(self, run: _Run, reason: str, error: str = '') -> None:
        if run.finished:
            return
        run.finished = True
        if run in self._runs:
            self._runs.remove(run)
        req = run.request
        if reason != 'error':
            try:
                run.emit(run.stream.finish())
            except Exception as e:  # a failing on_text must not stop the engine
                self._say('error', f'on_text failed: {type(e).__name__}: {e}')
        else:
            self.last_error = error
        usage = run.usage
        prompt = getattr(usage, 'prompt_tokens', None) or len(req.tokens)
        details = getattr(usage, 'prompt_tokens_details', None)
        cached = getattr(details, 'cached_tokens', None) or 0
        if usage is not None and getattr(usage, 'prompt_tokens', None):
            self._learn(req.messages, usage.prompt_tokens)
        self.prompt_tokens_total += prompt
        self.prompt_tokens_cached += cached
        end = time.monotonic()
        admitted = run.admitted or end
        first = run.first_token_at or end
        result = GenerationResult(
            text=run.stream.text, finish_reason=reason, prompt_tokens=prompt,
            completion_tokens=getattr(usage, 'completion_tokens', None) or run.chunks,
            reused_prompt_tokens=cached, prompt_eval_s=first - admitted,
            generation_s=end - first,
            first_text_s=(run.first_text_at - admitted) if run.first_text_at else None,
            queued_s=admitted - run.submitted, error=error)
        if req.on_done is not None:
            try:
                req.on_done(result)
            except Exception as e:
                self._say('error', f'on_done failed: {type(e).__name__}: {e}')

    # ================================================================ error texts
    def _say(self, level: str, message: str) -> None:
        try:  # a failing logger must not leave a request unanswered
            self._log(level, message)
        except Exception:
            pass

    def _scrub(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, '***')
        if self.config.base_url != self.url:
            text = text.replace(self.config.base_url, self.url)
        return strip_userinfo(text)

    @staticmethod
    def _body_text(e: 'openai.APIStatusError') -> str:
        try:
            return e.response.text
        except Exception:
            return str(e.body)

    def _status_text(self, e: 'openai.APIStatusError') -> str:
        body = ' '.join(self._body_text(e).split())
        if len(body) > ERROR_BODY_CHARS:
            body = body[:ERROR_BODY_CHARS] + '...'
        return self._scrub(f'HTTP {e.status_code}: {body}')

    @staticmethod
    def _causes(e: BaseException) -> List[BaseException]:
        chain = []
        while e is not None and len(chain) < 8:
            chain.append(e)
            e = e.__cause__ or e.__context__
        return chain

    def _stale_connection(self, e: BaseException) -> bool:
        """Tell whether ``e`` broke an open connection before any reply (not a connect)."""
        if isinstance(e, openai.APITimeoutError):
            return False
        names = {type(c).__name__ for c in self._causes(e)}
        return bool(names & STALE_CONNECTION_ERRORS) and not names & CONNECT_ERRORS

    def _exception_text(self, e: BaseException) -> str:
        cause = e.__cause__ or e.__context__
        text = str(e)
        if cause is not None:
            text += f' ({type(cause).__name__}: {cause})' if str(cause) else \
                f' ({type(cause).__name__})'
        return self._scrub(text)

    def _timeout_name(self, e: BaseException, read_s: Optional[float] = None) -> str:
        cause = type(e.__cause__ or e.__context__).__name__
        if 'Connect' in cause or 'Pool' in cause:
            return f'connect_timeout_s={self.config.connect_timeout_s:g} s'
        if read_s is not None:
            return f'{read_s:g} s'
        return f'request_timeout_s={self.config.request_timeout_s:g} s'

    def _check_timeout(self) -> float:
        """Seconds configure waits for GET /models (a lifecycle transition must not hang)."""
        return min(self.config.request_timeout_s, CHECK_TIMEOUT_S)

    # ================================================================ teardown
    def close(self, save=None, timeout: float = 10.0) -> bool:
        """
        Cancel every request (each ends 'cancelled'), close the connections, stop the loop.

        ``save`` is not called: no KV state lives here (ChatCore has written the histories
        after each turn). False if the loop thread did not stop in time.
        """
        if self._closing:
            return not self._thread.is_alive()
        self._closing = True
        try:
            self._call(self._shutdown(), timeout)
        except Exception as e:
            self._say('warn', f'{self.url}: closing the connections: '
                              f'{self._scrub(str(e)) or type(e).__name__}')
        return self._stop_loop(timeout)

    async def _shutdown(self) -> None:
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None
        tasks = [r.task for r in self._runs if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    def _stop_loop(self, timeout: float = 10.0) -> bool:
        self._closing = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self._loop.close()
        return True
