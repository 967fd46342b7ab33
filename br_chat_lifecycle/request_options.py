# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
What a request may change for itself: generation options and a client-owned history.

Each option field of LLMChat / LLMChatAction defaults to a sentinel that means "the node's
parameter" (so a client that sets only ``prompt`` behaves as before); any other value is
checked with the very rules of the node parameter of the same name (settings.PARAMS), and
an invalid one is refused naming the field and the allowed range. A request never changes
the node's parameters or another request's settings: it gets its own copy.

``messages_json`` is an OpenAI-style conversation owned by the client; it is checked here
(JSON, shape, roles, content types, total size) with a precise error for each problem.
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional, Sequence

from . import settings as node_settings
from .grammars import load_json

ROLES = ('system', 'user', 'assistant', 'tool')
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 200
SEED_RANDOM = -2   # the request's seed field: -1 = the node's seed, -2 = random


def apply_options(request, node, n_ctx: int):
    """
    Return the node's GenerationSettings ``node`` with the request's options applied.

    The result is a new object. Raises ValueError naming every invalid field.
    """
    overrides: Dict[str, Any] = {}
    errors: List[str] = []
    if request.max_tokens < 0:
        errors.append(f"max_tokens: must be >= 0 (0 = the node's max_tokens) (got "
                      f'{request.max_tokens})')
    elif request.max_tokens > 0:
        overrides['max_tokens'] = int(request.max_tokens)
    for name in ('temperature', 'top_p', 'min_p', 'repeat_penalty'):
        value = float(getattr(request, name))
        if value >= 0:                 # negative: the node's parameter
            overrides[name] = _shortest(value)
    if request.top_k >= 0:
        overrides['top_k'] = int(request.top_k)
    if request.seed == SEED_RANDOM:
        overrides['seed'] = -1
    elif request.seed >= 0:
        overrides['seed'] = int(request.seed)
    elif request.seed != -1:
        errors.append(f"seed: must be -1 (the node's seed), -2 (random) or in [0, "
                      f'4294967294] (got {request.seed})')
    errors += node_settings.validate(overrides)
    max_tokens = overrides.get('max_tokens', node.sampling.max_tokens)
    if 'max_tokens' in overrides and max_tokens >= n_ctx:
        errors.append(f'max_tokens: must be smaller than n_ctx ({max_tokens} >= {n_ctx})')
    stops = [s for s in request.stop if s]
    if len(stops) > MAX_STOP_SEQUENCES:
        errors.append(f'stop: at most {MAX_STOP_SEQUENCES} sequences (got {len(stops)})')
    elif any(len(s) > MAX_STOP_CHARS for s in stops):
        errors.append(f'stop: each sequence at most {MAX_STOP_CHARS} characters')
    if errors:
        raise ValueError('invalid request option: ' + '; '.join(errors))
    sampling = dataclasses.replace(node.sampling, **overrides,
                                   stop=tuple(node.sampling.stop) + tuple(stops))
    return dataclasses.replace(node, sampling=sampling,
                               system_prompt=request.system_prompt or node.system_prompt)


def _shortest(value: float) -> float:
    """
    Return a float32 field's value as the shortest decimal that rounds to it.

    That is what the client wrote: 0.7, not 0.699999988079071.
    """
    for digits in range(1, 10):
        candidate = round(value, digits)
        if abs(candidate - value) <= abs(value) * 6e-8:
            return candidate
    return value


def parse_messages(text: str, max_chars: int) -> List[Dict[str, Any]]:
    """Return the messages of ``messages_json``; a ValueError says precisely what is wrong."""
    messages = load_json(text, 'messages_json')
    if not isinstance(messages, list):
        raise ValueError(f'messages_json: must be a JSON array of {{"role", "content"}} '
                         f'objects (got a JSON {type(messages).__name__})')
    total = 0
    out = []
    for i, m in enumerate(messages):
        where = f'messages_json[{i}]'
        if not isinstance(m, dict):
            raise ValueError(f'{where}: must be an object with "role" and "content" (got '
                             f'{type(m).__name__})')
        role = m.get('role')
        if role not in ROLES:
            raise ValueError(f'{where}.role: must be one of {", ".join(ROLES)} (got '
                             f'{json.dumps(role)[:40]})')
        content = m.get('content')
        if content is None and role == 'assistant' and m.get('tool_calls'):
            content = ''
        if not isinstance(content, str):
            raise ValueError(f'{where}.content: must be a string (got '
                             f'{type(content).__name__})')
        unknown = set(m) - {'role', 'content', 'name', 'tool_call_id', 'tool_calls'}
        if unknown:
            raise ValueError(f'{where}: unknown key(s) {sorted(unknown)} (allowed: role, '
                             'content, name, tool_call_id, tool_calls)')
        for key in ('name', 'tool_call_id'):
            if key in m and not isinstance(m[key], str):
                raise ValueError(f'{where}.{key}: must be a string')
        if 'tool_calls' in m and (role != 'assistant' or not isinstance(m['tool_calls'], list)):
            raise ValueError(f'{where}.tool_calls: only an assistant message may have them, '
                             'as an array')
        if '\x00' in content:
            raise ValueError(f'{where}.content: contains a NUL character')
        total += len(content)
        out.append(dict(m, content=content))
    if total > max_chars:
        raise ValueError(f'messages_json: {total} characters of content, the limit is '
                         f'max_history_chars={max_chars}')
    return out


def conversation(system_prompt: str, request_system: str,
                 client: Optional[Sequence[Dict[str, Any]]],
                 history: Sequence, prompt: str) -> List[Dict[str, Any]]:
    """
    Return the messages to render.

    A system message, the history (the client's messages, or a session's (user, assistant) turns),
    then the new prompt.

    System message precedence: the request's ``system_prompt`` field, then the client's own
    system message(s) in ``messages_json``, then the node's ``system_prompt`` parameter.
    """
    messages: List[Dict[str, Any]] = []
    if client is not None:
        own_system = [m for m in client if m['role'] == 'system']
        rest = [m for m in client if m['role'] != 'system']
        if request_system:
            messages.append({'role': 'system', 'content': request_system})
        elif own_system:
            messages += own_system
        elif system_prompt:
            messages.append({'role': 'system', 'content': system_prompt})
        messages += rest
    else:
        if system_prompt:
            messages.append({'role': 'system', 'content': system_prompt})
        for user, assistant in history:
            messages.append({'role': 'user', 'content': user})
            messages.append({'role': 'assistant', 'content': assistant})
    messages.append({'role': 'user', 'content': prompt})
    return messages
