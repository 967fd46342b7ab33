# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
r"""
Tool calls valid by construction: parse the tools, prompt for them, constrain, parse back.

Format (Hermes / Qwen2.5, which llama.cpp's server also parses): the model answers with one or
more blocks ``<tool_call>\n{"name": "<name>", "arguments": {...}}\n</tool_call>``.

What is the ecosystem's:
  * the JSON of each call is constrained by a llama.cpp grammar converted by llama-cpp-python's
    JSON-schema converter from ONE combined schema (``oneOf`` over
    ``{"name": {"const": ...}, "arguments": <parameters>}``, name first), through
    grammars.schema_dict_to_gbnf's limits; arguments are re-validated with jsonschema;
  * ``tool_choice`` "auto" is an ordinary (eager) llama.cpp grammar: text that cannot contain
    ``<tool_call>``, then optionally calls. So any ``<tool_call>`` the model writes starts a
    constrained call. NOT llama.cpp's lazy grammar sampler (free text until a trigger pattern,
    as llama.cpp's server does), although it costs nothing per text token where this grammar
    costs ~6 ms on SmolLM2-135M (bench/eval_tool_calls.py --compare-lazy): the token that
    completes the trigger is sampled unconstrained, and when it carries characters the
    grammar rejects (SmolLM2 wrote ``<tool_call></tool_call>`` while echoing its
    instructions) llama.cpp throws "Unexpected empty grammar stack after accepting piece"
    out of llama_sampler_sample, which through ctypes is std::terminate: the whole process
    aborts (llama.cpp issues #12597, #26787). Eager grammars never sample a rejected token;
  * templates that know tools (their Jinja source uses ``tools``, e.g. Qwen2.5) render them
    themselves: llama-cpp-python's ``Jinja2ChatFormatter.__call__`` forwards ``tools=``.
Hand-written (no library has them for this format): the request checks with precise errors,
the generic tools system message for templates without tool support (Qwen2.5's own wording),
the mapping of ``tool`` messages for such templates, and the extraction of the blocks.
"""
import copy
import dataclasses
from dataclasses import dataclass, field
import functools
import json
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jsonschema

from . import grammars

TOOL_NAME = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
CALL_OPEN, CALL_CLOSE = '<tool_call>', '</tool_call>'
CHOICES = ('auto', 'none', 'required')
EMPTY_PARAMETERS = {'type': 'object', 'properties': {}}


@dataclass(frozen=True)
class ToolLimits:
    """Bounds on a request's tools (the schemas also obey grammars.LIMITS, each and combined)."""

    # tools_json text, UTF-8 bytes: everything in it is also rendered into the prompt.
    max_tools_json_bytes: int = 64 * 1024
    # Declared tools (one grammar alternative each where the call starts).
    max_tools: int = 32
    # Calls in one reply (the grammar allows 1..max_calls blocks).
    max_calls: int = 4
    # Subschemas of all the tools' parameters together (each tool also obeys
    # grammars.LIMITS.max_subschemas): bounds jsonschema's check_schema time per request.
    max_total_subschemas: int = 400


TOOL_LIMITS = ToolLimits()


@dataclass(frozen=True)
class Tool:
    """One declared function tool."""

    name: str
    description: str
    parameters: Dict[str, Any] = field(hash=False)

    def openai(self) -> Dict[str, Any]:
        """Return the OpenAI-style declaration (what tool-aware chat templates expect)."""
        function = {'name': self.name, 'description': self.description,
                    'parameters': self.parameters}
        if not self.description:
            del function['description']
        return {'type': 'function', 'function': function}


# =============================================================================== request


def parse_tools(tools_json: str, limits: ToolLimits = TOOL_LIMITS,
                schema_limits: grammars.SchemaLimits = grammars.LIMITS) -> List[Tool]:
    """Parse the tools of a request (``[]`` for an empty field); ValueError names the fault."""
    if not tools_json.strip():
        return []
    items = grammars.load_json(tools_json, 'tools_json', limits.max_tools_json_bytes)
    if not isinstance(items, list):
        raise ValueError('tools_json must be a JSON array of {"type": "function", "function": '
                         f'{{...}}}} objects (got a JSON {_json_type(items)})')
    if not items:
        raise ValueError('tools_json is an empty array: declare at least one tool, or leave '
                         'the field empty for no tools')
    if len(items) > limits.max_tools:
        raise ValueError(f'tools_json declares {len(items)} tools, over the limit '
                         f'{limits.max_tools}')
    tools: List[Tool] = []
    seen: Dict[str, int] = {}
    total = 0
    for i, item in enumerate(items):
        where = f'tools_json[{i}]'
        if not isinstance(item, dict):
            raise ValueError(f'{where} must be an object (got a JSON {_json_type(item)})')
        if item.get('type') != 'function':
            raise ValueError(f'{where}.type must be "function" (got '
                             f'{json.dumps(item.get("type"))})')
        function = item.get('function')
        if not isinstance(function, dict):
            raise ValueError(f'{where}.function must be an object with "name" and optionally '
                             '"description" and "parameters"')
        name = function.get('name')
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise ValueError(f'{where}.function.name must be 1-64 characters of [A-Za-z0-9_-] '
                             f'(got {json.dumps(name, ensure_ascii=False)[:80]})')
        if name in seen:
            raise ValueError(f'{where}.function.name {name!r} is already declared by '
                             f'tools_json[{seen[name]}]')
        seen[name] = i
        description = function.get('description', '')
        if not isinstance(description, str):
            raise ValueError(f'{where}.function.description must be a string')
        where = f'{where}.function.parameters'
        parameters = function.get('parameters', EMPTY_PARAMETERS)
        if not isinstance(parameters, dict):
            raise ValueError(f'{where} must be a JSON Schema object (got a JSON '
                             f'{_json_type(parameters)})')
        if parameters.get('type', 'object') != 'object':
            raise ValueError(f'{where} must describe an object ("type": "object"; got '
                             f'{json.dumps(parameters.get("type"))})')
        parameters = copy.deepcopy(parameters)
        # Each schema is bounded on its own (so is the time of this check), all together too.
        total += grammars.check_schema(parameters, where, schema_limits).subschemas
        if total > limits.max_total_subschemas:
            raise ValueError(f'{where}: the parameters of the tools have more than '
                             f'{limits.max_total_subschemas} subschemas together (the limit)')
        tools.append(Tool(name, description, parameters))
    return tools


def parse_tool_choice(choice: str, tools: Sequence[Tool]) -> str:
    """'auto', 'none', 'required' or a tool name. '' means 'auto' ('none' without tools)."""
    value = choice.strip()
    names = [t.name for t in tools]
    if value in ('', 'auto'):
        return 'auto' if tools else 'none'
    if value == 'none':
        return 'none'
    if not tools:
        raise ValueError(f'tool_choice {choice!r} needs tools: tools_json is empty')
    if value == 'required' or value in names:
        return value
    raise ValueError(f'tool_choice {choice!r} is not one of "" (auto), "auto", "none", '
                     f'"required" or a declared tool ({", ".join(names)})')


def _json_type(value: Any) -> str:
    return {dict: 'object', list: 'array', str: 'string', bool: 'boolean', int: 'number',
            float: 'number', type(None): 'null'}.get(type(value), type(value).__name__)


# =============================================================================== prompt

# For templates without tool support: Qwen2.5's own tools text (the format the grammar
# enforces), appended to the system message.
TOOLS_SYSTEM_HEADER = (
    '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n'
    'You are provided with function signatures within <tools></tools> XML tags:\n<tools>')
TOOLS_SYSTEM_FOOTER = (
    '\n</tools>\n\nFor each function call, return a json object with function name and '
    'arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n'
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def template_supports_tools(template: str) -> bool:
    """Whether a chat template renders tools itself (its Jinja source uses ``tools``)."""
    try:
        import jinja2
        from jinja2 import meta
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        env = jinja2.Environment(extensions=[Jinja2ChatFormatter.IgnoreGenerationTags,
                                             'jinja2.ext.loopcontrols'])
        return 'tools' in meta.find_undeclared_variables(env.parse(template))
    except Exception:  # a template Jinja cannot parse alone: look at the source
        return re.search(r'\btools\b', template) is not None


def tools_system_message(tools: Sequence[Tool]) -> str:
    """Write the generic tools instructions: each declaration as JSON, then the format."""
    lines = [TOOLS_SYSTEM_HEADER]
    lines += ['\n' + json.dumps(t.openai(), ensure_ascii=False) for t in tools]
    return ''.join(lines) + TOOLS_SYSTEM_FOOTER


def adapt_messages(messages: Sequence[Dict[str, Any]],
                   template_supports_tools: bool) -> List[Dict[str, str]]:
    """
    Messages (OpenAI style) as {"role", "content"} dicts the chat template can render.

    * assistant messages with ``tool_calls`` (OpenAI form): the calls become
      ``<tool_call>`` blocks appended to the content (the format the model was shown);
    * ``tool`` messages (results a client sends back): kept for templates that know tools
      (Qwen2.5 renders them as ``<tool_response>``); otherwise rendered as a user message
      ``Tool result for <name>: <content>`` (consecutive results merged into one message,
      so templates that require alternating roles still render).
    """
    out: List[Dict[str, str]] = []
    merged_tool_result = False
    for m in messages:
        role, content = m.get('role', ''), m.get('content') or ''
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        if role == 'assistant' and m.get('tool_calls'):
            blocks = [format_call(_call_of(c)) for c in m['tool_calls']]
            content = '\n'.join(([content] if content else []) + blocks)
        if role == 'tool' and not template_supports_tools:
            name = m.get('name') or m.get('tool_call_id') or 'the tool'
            text = f'Tool result for {name}: {content}'
            if merged_tool_result:
                out[-1]['content'] += '\n\n' + text
            else:
                out.append({'role': 'user', 'content': text})
            merged_tool_result = True
            continue
        merged_tool_result = False
        out.append({'role': role, 'content': content})
    return out


def _call_of(tool_call: Dict[str, Any]) -> Dict[str, Any]:
    call = tool_call.get('function', tool_call)
    arguments = call.get('arguments', {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    return {'name': call.get('name', ''), 'arguments': arguments}


def prompt_with_tools(messages: Sequence[Dict[str, Any]], tools: Sequence[Tool], choice: str,
                      template_supports_tools: bool
                      ) -> Tuple[List[Dict[str, str]], Dict[str, Any]]:
    """
    (messages, extra template kwargs) to render a request with tools.

    With tool support: ``{"tools": [...]}`` for the template (Jinja2ChatFormatter forwards
    it). Without: the tools system message is appended to the first system message (or
    becomes one). With choice "none" the tools are not shown at all.
    """
    adapted = adapt_messages(messages, template_supports_tools)
    if not tools or choice == 'none':
        return adapted, {}
    if template_supports_tools:
        return adapted, {'tools': [t.openai() for t in tools]}
    text = tools_system_message(tools)
    if adapted and adapted[0]['role'] == 'system':
        first = adapted[0]['content']
        adapted[0] = {'role': 'system', 'content': f'{first}\n\n{text}' if first else text}
    else:
        adapted.insert(0, {'role': 'system', 'content': text})
    return adapted, {}


def mask_strings(value: Any, first_index: int, open_mark: str = '\ue000',
                 close_mark: str = '\ue001') -> Tuple[Any, List[str]]:
    """
    Replace every string of ``value`` (keys too) by a placeholder; return it and the texts.

    Placeholders are ``<open><n><close>``, n counting from ``first_index``; the texts are
    JSON-escaped (as ``tojson`` writes them).

    For injection-safe rendering of client-supplied tools by a chat template (chat_prompt's
    scheme): the template renders the placeholders (``tojson`` keeps them as they are), and
    the texts are tokenized as plain text, never as special tokens.
    """
    texts: List[str] = []

    def mask(s: str) -> str:
        texts.append(json.dumps(s, ensure_ascii=False)[1:-1])
        return f'{open_mark}{first_index + len(texts) - 1}{close_mark}'

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return mask(v)
        if isinstance(v, dict):
            return {mask(k): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v
    return walk(value), texts


# =============================================================================== grammar


def call_schema(tools: Sequence[Tool]) -> Dict[str, Any]:
    """
    Build ONE JSON Schema for a call of any of ``tools``: name first, then its arguments.

    Each tool's parameters become ``$defs/<tool>-args`` of the combined schema (the converter
    follows $ref through object keys only, not through ``oneOf/<i>``): the tool's local $refs
    are rebased there and its own $defs renamed ``<tool>-<name>`` (the converter names a
    $ref's rule after the last component, so equal names in two tools would collide).
    """
    alternatives, defs = [], {}
    for tool in tools:
        key = f'{tool.name}-args'
        defs[key] = _rebase(tool.parameters, f'#/$defs/{key}', tool.name)
        alternatives.append({
            'type': 'object',
            'properties': {'name': {'const': tool.name},
                           'arguments': {'$ref': f'#/$defs/{key}'}},
            'required': ['name', 'arguments'], 'additionalProperties': False})
    schema = alternatives[0] if len(alternatives) == 1 else {'oneOf': alternatives}
    return dict(schema, **{'$defs': defs})


def _rebase(parameters: Dict[str, Any], base: str, tool: str) -> Dict[str, Any]:
    params = copy.deepcopy(parameters)
    renames = {}
    for key in ('$defs', 'definitions'):
        if isinstance(params.get(key), dict):
            params[key] = {f'{tool}-{k}': v for k, v in params[key].items()}
            renames.update({f'#/{key}/{k}': f'#/{key}/{tool}-{k}' for k in parameters[key]})

    def fix(ref: str) -> str:
        for old, new in renames.items():
            if ref == old or ref.startswith(old + '/'):
                ref = new + ref[len(old):]
                break
        return base + ref[1:] if ref.startswith('#/') else ref

    stack = [params]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get('$ref'), str):
                node['$ref'] = fix(node['$ref'])
            stack.extend(v for k, v in node.items() if k not in ('const', 'enum', 'default',
                                                                 'examples'))
        elif isinstance(node, list):
            stack.extend(node)
    return params


def tool_call_grammar(tools: Sequence[Tool], choice: str,
                      limits: ToolLimits = TOOL_LIMITS,
                      schema_limits: grammars.SchemaLimits = grammars.LIMITS) -> Optional[str]:
    """
    Build the GBNF grammar for ``choice`` (from parse_tool_choice); None for "none"/no tools.

    "required": 1..max_calls calls of any tool; a tool name: calls of that tool only; "auto":
    text that never contains ``<tool_call>``, then optionally such calls. Calls are separated
    by one newline. Every grammar has passed grammars.check_gbnf; hand it to the engine like
    any GBNF grammar.
    """
    if choice == 'none' or not tools:
        return None
    if choice in ('auto', 'required'):
        chosen = list(tools)
    else:
        chosen = [t for t in tools if t.name == choice]
        if not chosen:
            raise ValueError(f'tool_choice {choice!r} is not a declared tool')
    where = 'tools_json (all tools as one call schema)' if len(chosen) > 1 else \
        f'tools_json ({chosen[0].name})'
    # Each tool passed schema_limits on its own; together they obey max_total_subschemas.
    combined_limits = dataclasses.replace(
        schema_limits, max_subschemas=limits.max_total_subschemas + 4 * len(chosen) + 1,
        max_alternatives=max(schema_limits.max_alternatives, limits.max_tools))
    body = grammars.schema_dict_to_gbnf(call_schema(chosen), where, combined_limits)
    gbnf = _wrap_calls(body, limits.max_calls, text_first=choice == 'auto')
    grammars.check_gbnf(gbnf)
    return gbnf


@functools.lru_cache(maxsize=1)
def no_call_grammar() -> str:
    """
    Return GBNF for text that contains neither ``<tool_call>`` nor ``</tool_call>``.

    Used for tool_choice "none" when the conversation shows tools or tool calls (a model would
    imitate them).
    """
    rules = ['root ::= tool-text'] + _text_rules('tool-text', 'tool-div', 'tool-part',
                                                 [CALL_OPEN[1:], CALL_CLOSE[1:]])
    gbnf = '\n'.join(rules) + '\n'
    grammars.check_gbnf(gbnf)
    return gbnf


def _wrap_calls(body: str, max_calls: int, text_first: bool) -> str:
    r"""
    Wrap ``call ("\n" call){0,max_calls-1}`` around the converter's call grammar.

    ``text_first``: ``root ::= text (calls)?`` where the text contains neither
    ``<tool_call>`` nor ``</tool_call>`` (see ``_text_rules``).
    """
    rules = {line.split(' ::= ', 1)[0] for line in body.splitlines() if ' ::= ' in line}
    names = ('tool-call', 'tool-call-json', 'tool-text', 'tool-div', 'tool-part')
    suffix = ''
    while {n + suffix for n in names} & rules:
        suffix = str(int(suffix or 0) + 1)
    call, call_json, text, div, part = (n + suffix for n in names)
    lines = [f'{call_json} ::= ' + line[len('root ::= '):] if line.startswith('root ::= ')
             else line for line in body.splitlines()]
    more = f' ("\\n" {call}){{0,{max_calls - 1}}}' if max_calls > 1 else ''
    head = [f'{call} ::= "{CALL_OPEN}\\n" {call_json} "\\n{CALL_CLOSE}"']
    if text_first:
        head = [f'root ::= {text} ({call}{more})?'] + _text_rules(
            text, div, part, [CALL_OPEN[1:], CALL_CLOSE[1:]]) + head
    else:
        head = [f'root ::= {call}{more}'] + head
    return '\n'.join(head + lines) + '\n'


def _text_rules(text: str, div: str, part: str, literals: Sequence[str]) -> List[str]:
    """
    GBNF rules for text in which "<" is never followed by one of ``literals``.

    ``text ::= ([^<] | "<" div)* ("<"+ part)?``: after a "<", ``div`` follows the literals'
    common prefixes and must leave them with a different character (or another "<", which
    starts over); the text may end after a "<" and a proper prefix (``part``). Completing a
    literal is impossible, so in "auto" every ``<tool_call>`` starts a constrained call.
    """
    trie: Dict[str, Any] = {}
    for literal in literals:
        node = trie
        for c in literal:
            node = node.setdefault(c, {})
        node['$'] = {}

    def cls(chars: Sequence[str]) -> str:
        escaped = ''.join('\\' + c if c in '\\]^-[' else c for c in chars)
        return f'[^{escaped}<]'

    def diverge(node: Dict[str, Any]) -> str:
        chars = sorted(c for c in node if c != '$')
        alts = [cls(chars), f'"<" {div}']
        for c in chars:
            if set(node[c]) != {'$'}:  # completing a literal is not an alternative
                alts.append(f'"{c}" ({diverge(node[c])})')
        return ' | '.join(alts)

    def prefix(node: Dict[str, Any]) -> str:
        alts = []
        for c in sorted(c for c in node if c != '$'):
            if set(node[c]) != {'$'}:
                inner = prefix(node[c])
                alts.append(f'"{c}"' + (f' ({inner})?' if inner else ''))
        return ' | '.join(alts)

    return [f'{text} ::= ([^<] | "<" {div})* ("<"+ {part})?',
            f'{div} ::= {diverge(trie)}',
            f'{part} ::= ({prefix(trie)})?']


# =============================================================================== result


def parse_tool_calls(text: str, tools: Sequence[Tool], choice: str = 'auto',
                     limits: ToolLimits = TOOL_LIMITS
                     ) -> Tuple[str, List[Dict[str, Any]]]:
    """
    (content text, calls) of a reply; each call ``{"name": ..., "arguments": {...}}``.

    Every ``<tool_call>`` block is extracted, parsed and checked: a declared tool, arguments
    valid under its schema (jsonschema), the ``choice`` respected, at most ``max_calls``.
    Anything else raises ValueError with the reason: never a half-parsed call. The content
    text is the reply without the blocks (stripped).
    """
    by_name = {t.name: t for t in tools}
    calls: List[Dict[str, Any]] = []
    content: List[str] = []
    pos = 0
    while True:
        start = text.find(CALL_OPEN, pos)
        if start < 0:
            content.append(text[pos:])
            break
        content.append(text[pos:start])
        end = text.find(CALL_CLOSE, start + len(CALL_OPEN))
        if end < 0:
            raise ValueError(f'tool call {len(calls) + 1}: {CALL_OPEN} at character {start} is '
                             f'never closed by {CALL_CLOSE} (the reply was cut short?)')
        calls.append(_parse_call(text[start + len(CALL_OPEN):end], len(calls) + 1, by_name))
        pos = end + len(CALL_CLOSE)
    stray = next((c for c in content if CALL_CLOSE in c), None)
    if stray is not None:
        raise ValueError(f'{CALL_CLOSE} without a matching {CALL_OPEN}')
    if len(calls) > limits.max_calls:
        raise ValueError(f'{len(calls)} tool calls, over the limit {limits.max_calls}')
    if choice == 'none' and calls:
        raise ValueError('tool_choice "none" but the reply contains tool calls')
    if choice not in ('auto', 'none') and not calls:
        raise ValueError(f'tool_choice {choice!r} but the reply contains no tool call')
    if choice not in CHOICES:
        wrong = [c['name'] for c in calls if c['name'] != choice]
        if wrong:
            raise ValueError(f'tool_choice {choice!r} but the reply calls {wrong[0]!r}')
    return ''.join(content).strip(), calls


def _parse_call(block: str, n: int, by_name: Dict[str, Tool]) -> Dict[str, Any]:
    try:
        call = json.loads(block)
    except ValueError as e:
        raise ValueError(f'tool call {n}: not valid JSON: {e}') from e
    except RecursionError as e:
        raise ValueError(f'tool call {n}: nested too deeply') from e
    if not isinstance(call, dict) or set(call) != {'name', 'arguments'}:
        keys = sorted(call) if isinstance(call, dict) else _json_type(call)
        raise ValueError(f'tool call {n}: must be an object with exactly "name" and '
                         f'"arguments" (got {keys})')
    name, arguments = call['name'], call['arguments']
    if name not in by_name:
        raise ValueError(f'tool call {n}: {json.dumps(name, ensure_ascii=False)[:80]} is not a '
                         f'declared tool ({", ".join(by_name)})')
    if not isinstance(arguments, dict):
        raise ValueError(f'tool call {n} ({name}): arguments must be a JSON object (got a '
                         f'JSON {_json_type(arguments)})')
    schema = by_name[name].parameters
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is not None:
        at = '#/' + '/'.join(str(p) for p in error.absolute_path)
        raise ValueError(f'tool call {n} ({name}): arguments do not match its parameters '
                         f'schema at {at}: {error.message[:200]}')
    return {'name': name, 'arguments': arguments}


def format_call(call: Dict[str, Any]) -> str:
    """One call as the model writes it (for histories sent back to the model)."""
    return (f'{CALL_OPEN}\n{json.dumps(call, ensure_ascii=False)}\n{CALL_CLOSE}')


def tool_calls_json(calls: Sequence[Dict[str, Any]]) -> str:
    """Format the reply field ``tool_calls_json`` ("" without calls)."""
    return json.dumps(list(calls), ensure_ascii=False) if calls else ''
