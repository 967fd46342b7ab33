"""The LLM engine: llama-cpp-python behind a small, ROS-free interface.

This is the only module (with chat_prompt.py) that knows about llama.cpp. It is NOT
thread-safe (neither is ``llama_cpp.Llama``): exactly one thread may call ``generate``;
chat_core.py guarantees that by running every generation on its single worker thread.

Hand-written here, because llama-cpp-python has no API for it:
  * a token loop over ``Llama.generate`` that can be cancelled between any two tokens,
    enforces a hard ``max_tokens`` cap, and streams UTF-8-safe text (text_stream.py);
  * timing of prompt evaluation vs generation per request.
Everything else is llama.cpp's: model loading, chat templates, sampling, grammars and the
KV-cache prefix reuse inside ``Llama.generate`` (a follow-up turn only evaluates new tokens).
"""
import ctypes
import gc
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Dict

import llama_cpp
from llama_cpp._logger import llama_log_callback  # llama-cpp-python's own log handler

from .chat_prompt import CHATML_TEMPLATE, ChatPrompt
from .text_stream import TextStream

GGUF_MAGIC = b'GGUF'


class ModelLoadError(Exception):
    """The model could not be loaded; the message says what and where."""


@dataclass
class ModelConfig:
    """Model and context settings (field = node parameter; defaults: settings.PARAMS)."""
    model_path: str
    n_ctx: int
    n_threads: int               # 0: half the cores (at least 1)
    n_threads_batch: int         # 0: same as n_threads
    n_batch: int
    n_gpu_layers: int
    use_mmap: bool
    use_mlock: bool
    chat_template: str           # '': the GGUF's own template


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


@dataclass
class GenerationResult:
    text: str
    finish_reason: str           # 'stop' | 'length' | 'cancelled'
    prompt_tokens: int
    completion_tokens: int
    reused_prompt_tokens: int    # prompt tokens served from the KV cache
    prompt_eval_s: float         # start -> first token sampled
    generation_s: float          # first token -> end
    first_text_s: Optional[float] = None  # start -> first non-empty text piece


@dataclass
class ModelInfo:
    path: str
    file_size_bytes: int
    load_time_s: float
    n_ctx: int
    n_ctx_train: int
    n_threads: int
    n_threads_batch: int
    chat_template_source: str
    metadata: Dict[str, str] = field(default_factory=dict)


def check_model_file(path: str) -> None:
    """Raise ModelLoadError with a precise reason if ``path`` is not a readable GGUF file."""
    if not path:
        raise ModelLoadError('model_path is empty and no default model was found')
    if not os.path.exists(path):
        raise ModelLoadError(f'model file not found: {path}')
    if not os.path.isfile(path):
        raise ModelLoadError(f'model path is not a regular file: {path}')
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f'model file is not readable (permissions): {path}')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f'not a GGUF model file (magic {magic!r}, expected {GGUF_MAGIC!r}): {path}')


@dataclass
class ModelShape:
    """What the GGUF metadata says about the sizes that decide the context's memory."""
    architecture: str
    n_ctx_train: int
    n_layer: int
    n_head_kv: int
    key_length: int
    value_length: int
    n_vocab: int

    def kv_bytes(self, n_ctx: int) -> int:
        """Bytes of the f16 KV cache for ``n_ctx`` tokens (llama.cpp's default cache type)."""
        return n_ctx * self.n_layer * self.n_head_kv * (self.key_length + self.value_length) * 2


def read_model_shape(path: str) -> ModelShape:
    """Read the context-relevant sizes from the GGUF metadata without loading any weights
    (llama.cpp's vocab-only load: ~0.1 s). Missing keys read as 0."""
    from llama_cpp._logger import set_verbose
    set_verbose(False)  # the vocab-only load logs every metadata key at INFO
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode('utf-8'), params)
    if not model:
        raise ModelLoadError(f'llama.cpp could not load {path}: its GGUF metadata is unreadable '
                             '(truncated or corrupt file?)')
    buf = ctypes.create_string_buffer(512)

    def meta(key: str) -> str:
        n = llama_cpp.llama_model_meta_val_str(model, key.encode('utf-8'), buf, len(buf))
        return buf.value.decode('utf-8', 'replace') if n >= 0 else ''

    def meta_int(key: str, default: int = 0) -> int:
        try:
            return int(meta(key))
        except ValueError:  # absent, or a per-layer array: use the default
            return default
    try:
        arch = meta('general.architecture')
        n_embd = meta_int(f'{arch}.embedding_length')
        n_head = meta_int(f'{arch}.attention.head_count', 1) or 1
        head_dim = n_embd // n_head
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        return ModelShape(
            architecture=arch, n_ctx_train=meta_int(f'{arch}.context_length'),
            n_layer=meta_int(f'{arch}.block_count'),
            n_head_kv=meta_int(f'{arch}.attention.head_count_kv', n_head),
            key_length=meta_int(f'{arch}.attention.key_length', head_dim),
            value_length=meta_int(f'{arch}.attention.value_length', head_dim),
            n_vocab=n_vocab)
    finally:
        llama_cpp.llama_model_free(model)


def mem_available_mb() -> float:
    """MemAvailable from /proc/meminfo in MB (inf where unknown)."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return float('inf')


def check_context_fits(shape: ModelShape, n_ctx: int, path: str,
                       available_mb: Optional[float] = None) -> float:
    """Refuse a context the model was not trained for or the RAM cannot hold, before
    llama.cpp allocates it (n_ctx 1000000 used to allocate 10 GB before anything said no).
    Returns the estimated context memory in MB."""
    if shape.n_ctx_train and n_ctx > shape.n_ctx_train:
        raise ModelLoadError(
            f'n_ctx={n_ctx} exceeds the context {os.path.basename(path)} was trained for '
            f'({shape.n_ctx_train} tokens): set n_ctx <= {shape.n_ctx_train}')
    # KV cache + a margin for llama.cpp's compute and output buffers (measured: SmolLM2 at
    # n_ctx 2048 adds ~110 MB to RSS besides its weights; the estimate says 45 + 64).
    need_mb = shape.kv_bytes(n_ctx) / 2**20 + CONTEXT_MARGIN_MB
    available = mem_available_mb() if available_mb is None else available_mb
    if need_mb > available:
        raise ModelLoadError(
            f'n_ctx={n_ctx} needs about {need_mb:.0f} MB for the context (KV cache '
            f'{shape.kv_bytes(n_ctx) / 2**20:.0f} MB: {shape.n_layer} layers x '
            f'{shape.n_head_kv} KV heads) but only {available:.0f} MB of RAM are available: '
            'lower n_ctx')
    return need_mb


class LlamaEngine:

    def __init__(self, config: ModelConfig):
        check_model_file(config.model_path)
        self.shape = read_model_shape(config.model_path)
        self.context_mb = check_context_fits(self.shape, config.n_ctx, config.model_path)
        n_threads = config.n_threads if config.n_threads > 0 else max(1, (os.cpu_count() or 1) // 2)
        n_threads_batch = config.n_threads_batch if config.n_threads_batch > 0 else n_threads
        t0 = time.monotonic()
        try:
            self._llm = llama_cpp.Llama(
                model_path=config.model_path, n_ctx=config.n_ctx, n_batch=config.n_batch,
                n_ubatch=min(config.n_batch, 512),
                n_threads=n_threads, n_threads_batch=n_threads_batch,
                n_gpu_layers=config.n_gpu_layers, use_mmap=config.use_mmap,
                use_mlock=config.use_mlock, verbose=False)
        except Exception as e:  # llama-cpp-python raises ValueError/RuntimeError
            raise ModelLoadError(f'llama.cpp could not load {config.model_path}: {e}') from e
        load_time = time.monotonic() - t0
        source = 'GGUF metadata'
        try:
            self._vocab = self._llm._model.vocab
            meta = dict(self._llm.metadata)
            template, source = config.chat_template, 'parameter chat_template'
            if not template:
                template, source = meta.get('tokenizer.chat_template', ''), 'GGUF metadata'
            if not template:
                template, source = CHATML_TEMPLATE, 'built-in ChatML (GGUF has no template)'
            bos_id, eos_id = self._llm.token_bos(), self._llm.token_eos()
            model = self._llm._model
            self._prompt = ChatPrompt(
                template,
                bos_token=model.token_get_text(bos_id) if bos_id >= 0 else '',
                eos_token=model.token_get_text(eos_id) if eos_id >= 0 else '',
                add_bos=model.add_bos_token())
            # Render once so a broken template fails configure, not the first request.
            probe = [{'role': 'user', 'content': 'Hello robot'}]
            rendered = self._prompt.render(probe)
            self._prompt.tokens(probe, self._tokenize)
        except Exception as e:
            self.close()
            raise ModelLoadError(f'chat template ({source}) of {config.model_path} is '
                                 f'unusable: {type(e).__name__}: {e}') from e
        if 'Hello robot' not in rendered:
            self.close()
            shown = rendered if len(rendered) <= 60 else rendered[:57] + '...'
            raise ModelLoadError(
                f'chat template ({source}) does not render the messages: a user message '
                f'"Hello robot" became {shown!r}; fix the chat_template parameter')
        self.info = ModelInfo(
            path=config.model_path, file_size_bytes=os.path.getsize(config.model_path),
            load_time_s=load_time, n_ctx=self._llm.n_ctx(),
            n_ctx_train=int(meta.get('llama.context_length', 0) or 0) or _ctx_train(meta),
            n_threads=n_threads, n_threads_batch=n_threads_batch,
            chat_template_source=source, metadata=meta)
        self._grammars: Dict[str, 'llama_cpp.LlamaGrammar'] = {}
        self._n_batch = config.n_batch
        self._prompt_tps = PROMPT_TPS_GUESS

    # ----------------------------------------------------------------- prompt
    def _live_llm(self) -> 'llama_cpp.Llama':
        if self._llm is None:
            raise RuntimeError('LlamaEngine is closed: the model was released by close()')
        return self._llm

    def _tokenize(self, text: str, special: bool, add_bos: bool) -> List[int]:
        return self._live_llm().tokenize(text.encode('utf-8'), add_bos=add_bos, special=special)

    def prompt_tokens(self, messages: Sequence[Dict[str, str]]) -> List[int]:
        """Token ids of the templated conversation, ending with the assistant header."""
        return self._prompt.tokens(messages, self._tokenize)

    def render(self, messages: Sequence[Dict[str, str]]) -> str:
        return self._prompt.render(messages)

    @property
    def n_ctx(self) -> int:
        return self.info.n_ctx

    # ----------------------------------------------------------------- grammar
    def compile_grammar(self, gbnf: str) -> 'llama_cpp.LlamaGrammar':
        """Parse a GBNF grammar (cached). Raises ValueError with llama.cpp's reason."""
        grammar = self._grammars.get(gbnf)
        if grammar is None:
            check_gbnf(gbnf)
            grammar = llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
            if len(self._grammars) > 32:
                self._grammars.clear()
            self._grammars[gbnf] = grammar
        return grammar

    @staticmethod
    def json_grammar(schema: Optional[str] = None) -> str:
        """GBNF for any JSON object (schema None) or for JSON valid under ``schema`` (JSON
        Schema text), using llama.cpp's own schema-to-grammar converter."""
        from llama_cpp import llama_grammar
        if not schema:
            return llama_grammar.JSON_GBNF
        try:
            gbnf = llama_grammar.json_schema_to_gbnf(schema)
        except Exception as e:
            raise ValueError(f'JSON schema cannot be turned into a grammar: {e}') from e
        # The converter's string character class lets raw control characters (a newline...)
        # into strings, which is not JSON: exclude them as llama.cpp's json.gbnf does.
        return gbnf.replace(_SCHEMA_CHAR_RULE, _JSON_CHAR_RULE)

    # ----------------------------------------------------------------- generate
    def generate(self, prompt: List[int], params: SamplingParams,
                 on_text: Optional[Callable[[str], None]] = None,
                 should_stop: Callable[[], bool] = lambda: False,
                 grammar: Optional[str] = None) -> GenerationResult:
        """Generate a reply to ``prompt`` (token ids).

        ``on_text`` receives each new piece of text (never splitting a UTF-8 character); the
        pieces concatenate to ``GenerationResult.text``. ``should_stop`` is polled between
        tokens: when it returns True generation ends with finish_reason 'cancelled'.
        The caller must ensure len(prompt) < n_ctx.
        """
        llm = self._live_llm()
        n_ctx = llm.n_ctx()
        limit = max(0, min(params.max_tokens, n_ctx - len(prompt)))
        stream = TextStream(params.stop)
        reused = _common_prefix(llm.input_ids[:llm.n_tokens].tolist(), prompt)
        llm.set_seed(params.seed if params.seed >= 0 else int.from_bytes(os.urandom(4), 'little'))
        t0 = time.monotonic()
        t_first_token = None
        first_text = None
        n_out = 0
        finish = 'length'
        emit = (lambda s: on_text(s) if s else None) if on_text else (lambda s: None)

        if limit == 0 or should_stop():
            finish = 'cancelled' if limit else 'length'
        elif not self._eval_prompt(llm, prompt, reused, should_stop):
            finish = 'cancelled'
        else:
            # The whole prompt is in the KV cache now: Llama.generate finds it there (exact
            # prefix match) and samples the first token without evaluating anything again.
            tokens = llm.generate(
                prompt, top_k=params.top_k, top_p=params.top_p, min_p=params.min_p,
                temp=params.temperature, repeat_penalty=params.repeat_penalty, reset=True,
                grammar=self.compile_grammar(grammar) if grammar else None)
            try:
                for token in tokens:
                    if t_first_token is None:
                        t_first_token = time.monotonic()
                    if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                        finish = 'stop'
                        break
                    n_out += 1
                    piece = stream.feed(llm.detokenize([token]))
                    if piece:
                        if first_text is None:
                            first_text = time.monotonic() - t0
                        emit(piece)
                    if stream.stopped:
                        finish = 'stop'
                        break
                    if n_out >= limit:
                        finish = 'length'
                        break
                    if should_stop():
                        finish = 'cancelled'
                        break
            finally:
                tokens.close()
        tail = stream.finish()
        if tail:
            if first_text is None:
                first_text = time.monotonic() - t0
            emit(tail)
        t_end = time.monotonic()
        t_first_token = t_first_token or t_end
        return GenerationResult(
            text=stream.text, finish_reason=finish, prompt_tokens=len(prompt),
            completion_tokens=n_out, reused_prompt_tokens=reused,
            prompt_eval_s=t_first_token - t0, generation_s=t_end - t_first_token,
            first_text_s=first_text)

    def _eval_prompt(self, llm, prompt: List[int], reused: int,
                     should_stop: Callable[[], bool]) -> bool:
        """Evaluate the prompt tokens not yet in the KV cache, in chunks, polling
        ``should_stop`` between chunks; False if it asked to stop (the cache then holds a
        valid prefix of the prompt, reused by the next request).

        ``Llama.generate`` would evaluate the whole prompt in one uninterruptible call (~17 s
        for 900 tokens of a 0.5B model on one thread). Chunks are sized from the measured
        prompt speed so that one takes about PROMPT_CHUNK_S (at most n_batch tokens): cancel,
        deactivate and shutdown take effect within that time. Smaller chunks cost no speed
        on CPU (measured: 64-token chunks evaluate as fast as 512-token ones).
        """
        # Keep the shared prefix; at least the last prompt token is evaluated again, because
        # sampling needs its logits.
        start = min(reused, len(prompt) - 1)
        llm.n_tokens = start
        pos = start
        while pos < len(prompt):
            if should_stop():
                return False
            size = max(PROMPT_CHUNK_MIN, min(self._n_batch, int(self._prompt_tps * PROMPT_CHUNK_S)))
            chunk = prompt[pos:pos + size]
            t0 = time.monotonic()
            llm.eval(chunk)  # drops cached tokens beyond n_tokens first, then decodes
            dt = time.monotonic() - t0
            if dt > 0 and len(chunk) >= PROMPT_CHUNK_MIN:
                self._prompt_tps = 0.5 * self._prompt_tps + 0.5 * len(chunk) / dt
            pos += len(chunk)
        return True

    # ----------------------------------------------------------------- teardown
    def close(self) -> None:
        """Free the model and its context now (``del`` alone leaves it to the GC)."""
        llm = getattr(self, '_llm', None)
        if llm is not None:
            self._grammars = {}
            llm.close()
            self._llm = None
            gc.collect()


# Prompt evaluation chunking (see LlamaEngine._eval_prompt): target seconds per chunk, the
# smallest chunk, and the speed assumed before the first measurement (tokens/s).
PROMPT_CHUNK_S = 0.2
PROMPT_CHUNK_MIN = 8
PROMPT_TPS_GUESS = 100.0
CONTEXT_MARGIN_MB = 64.0

_SCHEMA_CHAR_RULE = r'char ::= [^"\\] |'                    # llama-cpp-python's converter
_JSON_CHAR_RULE = r'char ::= [^"\\\x7F\x00-\x1F] |'      # llama.cpp json.gbnf's string chars
_CAPTURE_LOCK = threading.Lock()
# Deepest "( ... )" nesting handed to llama.cpp's grammar parser, which recurses per level: a
# request schema {"type": "string", "maxLength": 100000} becomes 100000 nested groups and
# crashed the process (SIGSEGV, stack overflow); 10000 levels still parse. llama.cpp itself
# refuses such repetitions from about 2000 levels on ("exceeds sane defaults").
MAX_GBNF_NESTING = 2000


def _nesting(gbnf: str) -> int:
    """Deepest parenthesis nesting of a GBNF text (literals, classes and comments skipped)."""
    depth = deepest = i = 0
    n = len(gbnf)
    while i < n:
        c = gbnf[i]
        if c in '"[':
            close = '"' if c == '"' else ']'
            i += 1
            while i < n and gbnf[i] != close:
                i += 2 if gbnf[i] == '\\' else 1
        elif c == '#':
            while i < n and gbnf[i] != '\n':
                i += 1
        elif c == '(':
            depth += 1
            deepest = max(deepest, depth)
        elif c == ')':
            depth -= 1
        i += 1
    return deepest


def check_gbnf(gbnf: str) -> None:
    """Raise ValueError (with llama.cpp's reason) unless llama.cpp accepts the GBNF grammar.

    ``LlamaGrammar.from_string`` (llama-cpp-python 0.3) does not parse the grammar: a bad one
    is only seen when generation starts, where the NULL grammar sampler crashes the process
    (SIGSEGV). So parse it now with llama.cpp's own parser (no model needed). The parser
    prints its reason on the C stderr: fd 2 is redirected for that call and what it caught
    is copied back to stderr afterwards, so nothing another thread wrote is lost.
    """
    if not gbnf.strip():
        raise ValueError('invalid GBNF grammar: it is empty')
    depth = _nesting(gbnf) if gbnf.count('(') > MAX_GBNF_NESTING else 0
    if depth > MAX_GBNF_NESTING:  # llama.cpp's recursive parser would overflow the stack
        raise ValueError(f'invalid GBNF grammar: groups nest {depth} levels deep, more than '
                         f'{MAX_GBNF_NESTING} (a JSON schema maxLength/maxItems this large '
                         'cannot be a grammar)')
    messages: List[str] = []

    @llama_cpp.llama_log_callback
    def on_log(level, text, user_data):
        messages.append(text.decode('utf-8', 'replace'))

    with _CAPTURE_LOCK, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved_fd = os.dup(2)
        os.dup2(captured.fileno(), 2)
        llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
        try:
            sampler = llama_cpp.llama_sampler_init_grammar(None, gbnf.encode('utf-8'), b'root')
        finally:
            llama_cpp.llama_log_set(llama_log_callback, ctypes.c_void_p(0))
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            captured.seek(0)
            stderr_text = captured.read().decode('utf-8', 'replace')
    if stderr_text:
        sys.stderr.write(stderr_text)
        sys.stderr.flush()
    if sampler:
        llama_cpp.llama_sampler_free(sampler)
        return
    reasons = [line.strip() for text in [stderr_text] + messages for line in text.splitlines()
               if 'error' in line or 'grammar' in line or 'Undefined' in line]
    reasons = [r.split('error parsing grammar: ', 1)[-1] for r in reasons
               if r != 'failed to parse grammar'] or ['llama.cpp could not parse it']
    reason = reasons[0] if len(reasons[0]) <= 160 else reasons[0][:157] + '...'
    raise ValueError(f'invalid GBNF grammar: {reason}')


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _ctx_train(meta: Dict[str, str]) -> int:
    for key, value in meta.items():
        if key.endswith('.context_length'):
            try:
                return int(value)
            except ValueError:
                pass
    return 0
