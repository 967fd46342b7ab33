# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
llama.cpp grammar tools: bounded JSON Schema -> GBNF, the GBNF safety check, a byte-bounded LRU.

The one place for GBNF / JSON-schema grammar work (ROS-free). What is llama.cpp's:
  * JSON Schema -> GBNF is llama-cpp-python's converter (``llama_grammar.json_schema_to_gbnf``);
  * parsing a grammar is llama.cpp's own parser (``llama_sampler_init_grammar``, in
    ``check_gbnf``);
  * schema validity is jsonschema's ``check_schema``.
Hand-written, because neither has it:
  * ``check_schema_limits``: the converter expands ``minLength``/``maxItems``/pattern
    quantifiers textually and has no bounds at all ({"minLength": 100000000} took 23 s and
    3 GB); the walk refuses, before any conversion, what would expand too far, naming the
    JSON pointer, the value and the limit (table ``LIMITS``). It mirrors the converter's
    traversal (rule names, ``$ref``/``allOf`` handling) closely enough to estimate the
    grammar's size, and refuses schemas the converter would crash on (boolean subschemas,
    unresolvable or cyclic ``$ref``, unsupported patterns) with a precise reason;
  * ``_nesting``: llama.cpp's recursive grammar parser overflows the C stack on deep groups;
  * the JSON string character rule fix (the converter lets raw control characters in);
  * ``ByteLRU``: ``functools.lru_cache`` bounds by entry count, not by bytes.
"""
from collections import OrderedDict
import copy
import ctypes
from dataclasses import dataclass
import json
import os
import re
import sys
import tempfile
import threading
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

import jsonschema
import llama_cpp
from llama_cpp import llama_grammar
from llama_cpp._logger import llama_log_callback  # llama-cpp-python's own log handler

# =============================================================================== limits


@dataclass(frozen=True)
class SchemaLimits:
    """
    Bounds on a JSON Schema before llama-cpp-python turns it into a GBNF grammar.

    Picked by measuring (bench/bench_grammars.py prints the numbers): the worst schema each
    limit allows goes through ``schema_to_gbnf`` in at most ~40 ms of CPU (jsonschema's
    check_schema included) to a grammar of at most ``max_grammar_bytes``, and llama.cpp's
    grammar sampler stays within ~2.5x the plain JSON grammar per token on SmolLM2-135M
    (36 vs 15 ms for 256 enum values sharing a 250-character prefix).
    """

    # JSON text of one schema, in UTF-8 bytes (a tools_json has its own, larger limit).
    max_schema_bytes: int = 64 * 1024
    # Nesting of JSON objects/arrays in the schema text (bounds every recursive walk:
    # jsonschema's check_schema and the converter recurse per level).
    max_json_depth: int = 64
    # Subschemas, counting properties, items, anyOf/oneOf alternatives, $defs and every
    # re-visit of an allOf $ref target. Conversion is linear in them, and so is jsonschema's
    # check_schema, the slowest step (draft 2020-12: ~0.1-0.2 ms per subschema).
    max_subschemas: int = 200
    # Properties of one object. Optional properties cost O(n^2) conversion time (a "rest"
    # rule chain per start position) and one grammar stack each at the object's start.
    max_properties: int = 64
    # minLength / maxLength: each character is one grammar element, written out
    # (minLength) or as one nested "(char ...)?" level (maxLength - minLength).
    max_string_length: int = 1000
    # minItems / maxItems: each item is written out like a character.
    max_items: int = 256
    # minProperties / maxProperties: not expanded by this converter version (so not
    # enforced either); bounded so a converter that expands them stays bounded.
    max_object_size: int = 256
    # enum values (one grammar alternative each = one sampler stack per token).
    max_enum_values: int = 256
    # JSON text of one const or enum value, in characters.
    max_literal_chars: int = 1024
    # A "pattern" regex, in characters; its {m,n} quantifiers obey max_string_length.
    max_pattern_chars: int = 512
    # anyOf / oneOf alternatives of one subschema (one sampler stack each).
    max_alternatives: int = 64
    # $ref occurrences in the schema, and the longest chain of schemas that are only a $ref.
    max_refs: int = 64
    max_ref_chain: int = 8
    # Upper bound of llama.cpp grammar stacks alive at once (alternatives that match the same
    # text so far). The sampler checks every vocabulary token against every stack: ~0.1 ms
    # (literal stacks) to ~0.8 ms (object stacks) per stack per token on SmolLM2's 49152
    # tokens; 512 stacks of an 8^3 $ref DAG took 436 ms for one token. Bound computed
    # without disambiguation, except that
    # anyOf/oneOf alternatives of different JSON types, or objects whose first required
    # property differs (name or const value), do not add up. Recursion through alternatives
    # that add up would multiply the stacks per nesting level: refused.
    max_parse_stacks: int = 256
    # The grammar text: estimated before converting (the walk), measured after.
    max_grammar_bytes: int = 256 * 1024


LIMITS = SchemaLimits()

# Deepest "( ... )" nesting handed to llama.cpp's grammar parser, which recurses per level: a
# request schema {"type": "string", "maxLength": 100000} becomes 100000 nested groups and
# crashed the process (SIGSEGV, stack overflow); 10000 levels still parse. llama.cpp itself
# refuses such repetitions from about 2000 levels on ("exceeds sane defaults").
MAX_GBNF_NESTING = 2000

# Keywords llama-cpp-python's converter (0.3.x) turns into grammar rules; a schema using only
# these (plus annotations) makes every grammar-constrained reply valid under it.
ENFORCED_KEYWORDS = frozenset({
    'type', 'enum', 'const', 'properties', 'required', 'additionalProperties', 'anyOf',
    'oneOf', 'allOf', 'items', 'prefixItems', 'minItems', 'maxItems', 'minLength',
    'maxLength', 'pattern', 'format', '$ref', '$defs', 'definitions'})
ANNOTATION_KEYWORDS = frozenset({
    '$schema', '$id', '$comment', '$anchor', 'title', 'description', 'examples', 'default',
    'deprecated', 'readOnly', 'writeOnly'})
# Formats the converter enforces (others are ignored).
ENFORCED_FORMATS = frozenset({'date', 'time', 'date-time', 'uuid', 'uuid1', 'uuid2', 'uuid3',
                              'uuid4', 'uuid5'})

# Subschema-valued keywords the converter does not visit (walked for counting only).
_OTHER_SCHEMA_KEYS = ('not', 'if', 'then', 'else', 'contains', 'propertyNames',
                      'unevaluatedItems', 'unevaluatedProperties', 'additionalItems')
_OTHER_SCHEMA_MAPS = ('patternProperties', 'dependentSchemas')
# Upper bound of the converter's shared primitive rules (char, string, number, value, object,
# array, date/time/uuid), written at most once per grammar.
_PRIMITIVES_BYTES = 2048
_QUANTIFIER = re.compile(r'\\.|\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}')


# =============================================================================== GBNF check

_SCHEMA_CHAR_RULE = r'char ::= [^"\\] |'                    # llama-cpp-python's converter
_JSON_CHAR_RULE = r'char ::= [^"\\\x7F\x00-\x1F] |'      # llama.cpp json.gbnf's string chars
_CAPTURE_LOCK = threading.Lock()


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
    """
    Raise ValueError (with llama.cpp's reason) unless llama.cpp accepts the GBNF grammar.

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


def fix_json_chars(gbnf: str) -> str:
    """
    Keep raw control characters out of the converter's JSON strings.

    The converter's string character class lets a raw newline (any control character) into
    strings, which is not JSON: exclude them as llama.cpp's json.gbnf does.
    """
    return gbnf.replace(_SCHEMA_CHAR_RULE, _JSON_CHAR_RULE)


def json_grammar(schema: Optional[str] = None) -> str:
    """
    Return GBNF for any JSON object (schema None) or for JSON valid under ``schema``.

    ``schema`` is JSON Schema text; llama-cpp-python's own converter does the work. No
    bounds: a request schema goes through ``schema_to_gbnf`` instead.
    """
    if not schema:
        return llama_grammar.JSON_GBNF
    try:
        gbnf = llama_grammar.json_schema_to_gbnf(schema)
    except Exception as e:
        raise ValueError(f'JSON schema cannot be turned into a grammar: {e}') from e
    return fix_json_chars(gbnf)


# =============================================================================== schema walk


def _pointer(path: Sequence[Any]) -> str:
    """JSON pointer (URI fragment form, as in $ref) of ``path``."""
    if not path:
        return '#'
    return '#/' + '/'.join(str(p).replace('~', '~0').replace('/', '~1') for p in path)


def _fail(where: str, path: Sequence[Any], message: str) -> None:
    raise ValueError(f'{where}: {_pointer(path)}: {message}')


def _json_depth(value: Any) -> int:
    """Deepest nesting of JSON containers (iterative: any depth is safe)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return deepest


def _literal_bytes(value: Any) -> int:
    # The converter writes json.dumps(value) as a GBNF literal (quotes escaped once more).
    text = json.dumps(value)
    return len(text) + text.count('"') + 2


class _Walk:
    """One pass over a schema, mirroring llama-cpp-python's SchemaConverter.visit."""

    def __init__(self, schema: dict, where: str, limits: SchemaLimits):
        self.root = schema
        self.where = where
        self.limits = limits
        self.subschemas = 0
        self.refs = 0
        self.grammar_bytes = _PRIMITIVES_BYTES  # shared rules (string, number, value...)
        self.contributors: Dict[str, int] = {}  # pointer -> estimated grammar bytes
        self.allof_stack: List[str] = []
        self.stack_memo: Dict[str, Tuple[int, bool]] = {}
        self.deferred: Optional[str] = None

    # ----------------------------------------------------------------- helpers
    def fail(self, path, message):
        _fail(self.where, path, message)

    def unsupported(self, path, message):
        """
        Record the first thing the converter cannot handle.

        It is raised after jsonschema's check_schema, whose message is better for a schema
        that is simply invalid.
        """
        if self.deferred is None:
            self.deferred = f'{self.where}: {_pointer(path)}: {message}'

    def charge(self, path, n_bytes: int) -> None:
        self.grammar_bytes += n_bytes
        key = _pointer(path)
        self.contributors[key] = self.contributors.get(key, 0) + n_bytes

    def bound(self, path, key: str, value: Any, limit: int, why: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.fail(path + [key], f'{key} must be a non-negative integer (got {value!r})')
        if value > limit:
            self.fail(path + [key], f'{key} = {value} is over the limit {limit} ({why})')
        return value

    def resolve(self, ref: Any, path) -> Tuple[Any, List[Any]]:
        """Find the target of a local $ref as the converter does (no ~0/~1 unescaping)."""
        if not isinstance(ref, str):
            self.fail(path + ['$ref'], f'$ref must be a string (got {ref!r})')
        if not ref.startswith('#/'):
            self.fail(path + ['$ref'], f'$ref {ref!r} is not supported: the llama-cpp-python '
                      'converter resolves only local references of the form "#/..." (no remote '
                      'documents, no "#" self reference)')
        target: Any = self.root
        target_path: List[Any] = []
        for sel in ref[2:].split('/'):
            if isinstance(target, dict) and sel in target:
                target = target[sel]
            elif isinstance(target, list):
                self.fail(path + ['$ref'], f'$ref {ref!r} goes through an array ({sel!r}); '
                          'the llama-cpp-python converter follows object keys only (put the '
                          'target in $defs)')
            else:
                self.fail(path + ['$ref'], f'$ref {ref!r} points nowhere ({sel!r} not found)')
            target_path.append(sel)
        if not isinstance(target, dict):
            self.fail(path + ['$ref'], f'$ref {ref!r} must point at a schema object (booleans '
                      'are not supported by the llama-cpp-python converter)')
        return target, target_path

    # ----------------------------------------------------------------- the walk
    def schema(self, node: Any, path: List[Any], name: str, depth: int, under_ref: bool,
               visited: bool = True) -> None:
        """Check one subschema. ``visited``: the converter turns it into rules."""
        if isinstance(node, bool):
            if visited:
                self.unsupported(path, 'boolean schemas (true/false) are not supported here by '
                                 'the llama-cpp-python converter; use {} or leave the keyword out')
            return
        if not isinstance(node, dict):
            return  # check_schema has refused anything else
        lim = self.limits
        self.subschemas += 1
        if self.subschemas > lim.max_subschemas:
            self.fail(path, f'more than {lim.max_subschemas} subschemas (the limit; '
                      'conversion time grows with each)')
        if visited:
            self.charge(path, 2 * len(name) + 40)

        if '$ref' in node:
            self.ref(node, path, name, under_ref)
            under_ref = True  # the converter does not resolve $refs below a $ref
        self.keywords(node, path, name, visited and '$ref' not in node)

        # Children, named as the converter names their rules.
        prefix = f'{name}-' if name else ''
        for key in ('anyOf', 'oneOf'):
            alternatives = node.get(key)
            if isinstance(alternatives, list):
                if len(alternatives) > lim.max_alternatives:
                    self.fail(path + [key], f'{key} has {len(alternatives)} alternatives, '
                              f'over the limit {lim.max_alternatives} (each is one grammar '
                              'stack per generated token)')
                for i, sub in enumerate(alternatives):
                    self.schema(sub, path + [key, i],
                                f'{name}-{i}' if name else f'alternative-{i}', depth + 1,
                                under_ref)
        properties = node.get('properties')
        if isinstance(properties, dict):
            if len(properties) > lim.max_properties:
                self.fail(path + ['properties'], f'{len(properties)} properties, over the '
                          f'limit {lim.max_properties} per object')
            required = node.get('required') if isinstance(node.get('required'), list) else []
            for prop, sub in properties.items():
                prop_name = prefix + prop
                cost = 3 * len(prop_name) + _literal_bytes(prop) + 40
                if prop not in required:
                    cost += 6 * len(prop_name) + 60   # the "-rest" rule chain
                self.charge(path + ['properties', prop], cost)
                self.schema(sub, path + ['properties', prop], prop_name, depth + 1, under_ref)
        additional = node.get('additionalProperties')
        if isinstance(additional, dict):
            self.schema(additional, path + ['additionalProperties'],
                        f'{prefix}additional-value', depth + 1, under_ref)
        items = node.get('items')
        if isinstance(items, (dict, bool)):
            self.schema(items, path + ['items'], f'{prefix}item', depth + 1, under_ref)
        for key in ('items', 'prefixItems'):
            if isinstance(node.get(key), list):
                for i, sub in enumerate(node[key]):
                    self.schema(sub, path + [key, i], f'{prefix}tuple-{i}', depth + 1,
                                under_ref)
        if isinstance(node.get('allOf'), list):
            self.all_of(node['allOf'], path, name, depth, under_ref)
        for key in ('$defs', 'definitions'):
            if isinstance(node.get(key), dict):
                for def_name, sub in node[key].items():
                    # Rules of a referenced definition are named after its last component.
                    self.schema(sub, path + [key, def_name], def_name, depth + 1, under_ref)
        for key in _OTHER_SCHEMA_KEYS:
            if key in node:
                self.schema(node[key], path + [key], name, depth + 1, under_ref, False)
        for key in _OTHER_SCHEMA_MAPS:
            if isinstance(node.get(key), dict):
                for sub_key, sub in node[key].items():
                    self.schema(sub, path + [key, sub_key], name, depth + 1, under_ref, False)

    def ref(self, node: dict, path, name: str, under_ref: bool) -> None:
        lim = self.limits
        self.refs += 1
        if self.refs > lim.max_refs:
            self.fail(path + ['$ref'], f'more than {lim.max_refs} $ref (the limit)')
        if under_ref:
            self.fail(path + ['$ref'], 'this $ref lies inside a schema that itself has a $ref; '
                      'the llama-cpp-python converter does not resolve it (put $defs in a schema '
                      'without $ref, e.g. next to "type" at the root)')
        target, target_path = self.resolve(node['$ref'], path)
        chain = [tuple(target_path)]
        while '$ref' in target:  # a schema that is only a reference: follow the chain
            target, target_path = self.resolve(target['$ref'], target_path)
            if tuple(target_path) in chain:
                self.fail(path + ['$ref'], f'$ref {node["$ref"]!r} is a cycle of references '
                          'that never reaches a schema (a left-recursive grammar)')
            chain.append(tuple(target_path))
            if len(chain) > lim.max_ref_chain:
                self.fail(path + ['$ref'], f'$ref {node["$ref"]!r} is a chain of more than '
                          f'{lim.max_ref_chain} references (the limit)')
        self.charge(path, 2 * len(name) + 20)

    def all_of(self, parts: list, path, name: str, depth: int, under_ref: bool) -> None:
        """
        Walk allOf as the converter does.

        It merges the properties of the allOf parts (and of their anyOf parts, and of the
        $ref targets of either) into one object, visiting them again each time.
        """
        prefix = f'{name}-' if name else ''
        components = []
        for i, part in enumerate(parts):
            if not isinstance(part, dict):
                self.fail(path + ['allOf', i], 'boolean schemas (true/false) are not '
                          'supported in allOf by the llama-cpp-python converter')
            if isinstance(part.get('anyOf'), list):
                for j, sub in enumerate(part['anyOf']):
                    if not isinstance(sub, dict):
                        self.fail(path + ['allOf', i, 'anyOf', j], 'boolean schemas are not '
                                  'supported in allOf by the llama-cpp-python converter')
                    components.append((sub, path + ['allOf', i, 'anyOf', j]))
            else:
                components.append((part, path + ['allOf', i]))
        for comp, comp_path in components:
            if '$ref' in comp:
                target, target_path = self.resolve(comp['$ref'], comp_path)
                key = _pointer(target_path)
                if key in self.allof_stack:
                    self.fail(comp_path + ['$ref'], f'allOf $ref {comp["$ref"]!r} includes '
                              'itself again (the llama-cpp-python converter would recurse '
                              'forever)')
                props = target.get('properties')
                if isinstance(props, dict):
                    self.allof_stack.append(key)
                    for prop, sub in props.items():
                        self.charge(comp_path, 9 * len(prefix + prop) + 100)
                        self.schema(sub, target_path + ['properties', prop], prefix + prop,
                                    depth + 1, under_ref)
                    self.allof_stack.pop()
            elif isinstance(comp.get('properties'), dict):
                # Walked in place as a normal subschema (its properties get the merged names).
                self.schema(comp, comp_path, name, depth + 1, under_ref)

    def keywords(self, node: dict, path, name: str, visited: bool) -> None:
        """Check the expanding keywords of one subschema; estimate their grammar size."""
        lim = self.limits
        for key in ('minLength', 'maxLength'):
            if key in node:
                self.bound(path, key, node[key], lim.max_string_length,
                           'each character is a grammar element written out')
        for key in ('minItems', 'maxItems'):
            if key in node:
                self.bound(path, key, node[key], lim.max_items,
                           'each item is a grammar element written out')
        for key in ('minProperties', 'maxProperties'):
            if key in node:
                self.bound(path, key, node[key], lim.max_object_size,
                           'bounded object size')
        types = node.get('type')
        types = types if isinstance(types, list) else [types]
        if visited and 'string' in types and ('minLength' in node or 'maxLength' in node) \
                and len(types) == 1:
            lo = int(node.get('minLength', 0))
            hi = int(node.get('maxLength', lo))
            self.charge(path, 6 * lo + 9 * max(0, hi - lo))
        items = node.get('items')
        if visited and (None in types or 'array' in types) and isinstance(items, (dict, bool)):
            lo = int(node.get('minItems', 0))
            hi = int(node.get('maxItems', lo))
            unit = len(name) + 24
            self.charge(path + ['items'], unit * (lo + max(0, hi - lo)))
        if 'enum' in node and isinstance(node['enum'], list):
            if len(node['enum']) > lim.max_enum_values:
                self.fail(path + ['enum'], f'{len(node["enum"])} enum values, over the limit '
                          f'{lim.max_enum_values} (each is one grammar stack per token)')
            for i, value in enumerate(node['enum']):
                self.literal(path + ['enum', i], value, visited)
        if 'const' in node:
            self.literal(path + ['const'], node['const'], visited)
        if 'pattern' in node and isinstance(node['pattern'], str):
            self.pattern(path, node['pattern'], name,
                         visited and (None in types or 'string' in types))
        if visited and not self.recognized(node):
            keys = ', '.join(sorted(node)) or 'none'
            self.unsupported(path, 'the llama-cpp-python converter cannot turn this schema '
                             f'into a grammar (keywords: {keys}): give it a "type", or '
                             'properties / items / enum / const / anyOf / oneOf / allOf / $ref '
                             '/ pattern')

    def literal(self, path, value: Any, visited: bool) -> None:
        size = len(json.dumps(value))
        if size > self.limits.max_literal_chars:
            self.fail(path, f'value is {size} characters of JSON, over the limit '
                      f'{self.limits.max_literal_chars}')
        if visited:
            self.charge(path, _literal_bytes(value) + 3)

    def pattern(self, path, pattern: str, name: str, visited: bool) -> None:
        lim = self.limits
        if len(pattern) > lim.max_pattern_chars:
            self.fail(path + ['pattern'], f'pattern is {len(pattern)} characters, over the '
                      f'limit {lim.max_pattern_chars}')
        expanded = 0
        for match in _QUANTIFIER.finditer(pattern):
            if match.group(0).startswith('\\'):
                continue
            for number in match.groups():
                if number and int(number) > lim.max_string_length:
                    self.fail(path + ['pattern'], f'quantifier {match.group(0)} repeats '
                              f'{int(number)} times, over the limit {lim.max_string_length}')
            lo = int(match.group(1) or 0)
            hi = int(match.group(2)) if match.group(2) else lo
            expanded += max(lo, hi)
        if not visited:
            return
        converter = llama_grammar.SchemaConverter(
            prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        try:
            converter._visit_pattern(pattern, 'pattern')
        except (AssertionError, ValueError, IndexError, RecursionError) as e:
            reason = str(e) or type(e).__name__
            self.unsupported(path + ['pattern'], 'the llama-cpp-python converter cannot turn '
                             f'this pattern into a grammar: {reason[:160]}')
        self.charge(path + ['pattern'], 3 * len(pattern) + expanded * (len(name) + 24))

    # ----------------------------------------------------------------- parse stacks
    def stacks(self, node: Any, path: List[Any], in_progress: Tuple[str, ...]) -> Tuple[int, bool]:
        """(upper bound of concurrent grammar stacks inside ``node``, reaches a $ref cycle)."""
        if not isinstance(node, dict):
            return 1, False
        if '$ref' in node:
            target, target_path = self.resolve(node['$ref'], path)
            while '$ref' in target:
                target, target_path = self.resolve(target['$ref'], target_path)
            key = _pointer(target_path)
            if key in in_progress:
                return 1, True
            if key not in self.stack_memo:
                self.stack_memo[key] = self.stacks(target, target_path, in_progress + (key,))
            return self.stack_memo[key]
        bound, recursive = 1, False
        for key in ('anyOf', 'oneOf'):
            if isinstance(node.get(key), list):
                return self.union(node[key], path + [key], in_progress)
        types = node.get('type')
        if isinstance(types, list):
            return max(1, len(types)) * 2, False
        if 'const' in node:
            return 1, False
        if isinstance(node.get('enum'), list):
            return max(1, len(node['enum'])), False
        children: List[Tuple[Any, List[Any]]] = []
        optional = 0
        parts = [(node, path)]
        if isinstance(node.get('allOf'), list):
            for i, part in enumerate(node['allOf']):
                subs = part.get('anyOf') if isinstance(part.get('anyOf'), list) else [part]
                for sub in subs:
                    if isinstance(sub, dict) and '$ref' in sub:
                        sub, _ = self.resolve(sub['$ref'], path + ['allOf', i])
                    parts.append((sub, path + ['allOf', i]))
        for part, part_path in parts:
            props = part.get('properties') if isinstance(part, dict) else None
            if isinstance(props, dict):
                required = part.get('required') if isinstance(part.get('required'), list) else []
                optional += sum(1 for p in props if p not in required)
                children += [(sub, part_path + ['properties', p]) for p, sub in props.items()]
        if isinstance(node.get('additionalProperties'), dict):
            optional += 1
            children.append((node['additionalProperties'], path + ['additionalProperties']))
        items = node.get('items', node.get('prefixItems'))
        if isinstance(items, dict):
            children.append((items, path + ['items']))
            bound = 2
        elif isinstance(items, list):
            children += [(sub, path + ['items', i]) for i, sub in enumerate(items)]
            bound = 2
        bound = max(bound, optional + 1)
        for child, child_path in children:
            b, r = self.stacks(child, child_path, in_progress)
            bound, recursive = max(bound, b), recursive or r
        if isinstance(node.get('pattern'), str):
            bound = max(bound, 1 + node['pattern'].count('|'))
        if not children and types in ('number', 'integer', 'object', 'array', None):
            bound = max(bound, 8)  # optional parts of numbers; a free JSON value's 6 kinds
        return bound, recursive

    def union(self, alternatives: list, path: List[Any],
              in_progress: Tuple[str, ...]) -> Tuple[int, bool]:
        results = [self.stacks(alt, path + [i], in_progress) for i, alt in enumerate(alternatives)]
        keys = [self.discriminator(alt, path + [i]) for i, alt in enumerate(alternatives)]
        if None in keys:
            keys = [None] * len(keys)
        groups: Dict[Any, List[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        bound = len(alternatives)
        for members in groups.values():
            total = sum(results[i][0] for i in members)
            if len(members) > 1 and any(results[i][1] for i in members):
                self.fail(path, 'a recursive $ref inside alternatives that are not told apart by '
                          'their JSON type or first required property would multiply '
                          'the llama.cpp grammar stacks at every nesting level; give the '
                          'alternatives distinct types or a distinct first property (const)')
            bound = max(bound, total)
        if bound > self.limits.max_parse_stacks:
            self.fail(path, f'up to {bound} grammar alternatives can be alive at once, over the '
                      f'limit {self.limits.max_parse_stacks} (the sampler checks every token '
                      'against each)')
        return bound, any(r for _, r in results)

    def discriminator(self, node: Any, path: List[Any]) -> Any:
        """
        Return what tells this alternative apart early (None: unknown).

        That is its JSON type and, for objects, the first required property (and its const).
        """
        seen = 0
        while isinstance(node, dict) and '$ref' in node and seen <= self.limits.max_ref_chain:
            node, path = self.resolve(node['$ref'], path)
            seen += 1
        if not isinstance(node, dict):
            return None
        t = node.get('type')
        if 'const' in node:
            return ('const', json.dumps(node['const']))
        if isinstance(node.get('enum'), list) and len(node['enum']) == 1:
            return ('const', json.dumps(node['enum'][0]))
        if isinstance(t, list) or 'anyOf' in node or 'oneOf' in node or 'enum' in node:
            return None
        if t is None and 'properties' in node:
            t = 'object'
        if t in (None, 'object') and isinstance(node.get('properties'), dict):
            required = node.get('required') if isinstance(node.get('required'), list) else []
            first = next((p for p in node['properties'] if p in required), None)
            if first is None:
                return ('object',)
            value = node['properties'][first]
            const = self.discriminator(value, path + ['properties', first])
            return ('object', first, const if const and const[0] == 'const' else None)
        if t in ('integer', 'number'):
            return ('number',)
        return (t,) if t else None

    @staticmethod
    def recognized(node: dict) -> bool:
        """Whether SchemaConverter.visit has a branch for ``node`` (else it asserts)."""
        t = node.get('type')
        if '$ref' in node or 'oneOf' in node or 'anyOf' in node or isinstance(t, list):
            return True
        if 'const' in node or 'enum' in node or len(node) == 0:
            return True
        if t in (None, 'object') and ('properties' in node or 'allOf' in node
                                      or 'additionalProperties' in node):
            return True
        if t in (None, 'array') and ('items' in node or 'prefixItems' in node):
            return True
        if t in (None, 'string') and ('pattern' in node or 'format' in node
                                      and str(node['format']) in ENFORCED_FORMATS):
            return True
        return t in ('object', 'string', 'number', 'integer', 'boolean', 'null', 'array')


@dataclass(frozen=True)
class SchemaCost:
    """What ``check_schema_limits`` measured (for logs and the benchmark)."""

    subschemas: int
    refs: int
    estimated_grammar_bytes: int
    parse_stacks: int


def check_schema_limits(schema: Any, where: str,
                        limits: SchemaLimits = LIMITS) -> SchemaCost:
    """
    Refuse (ValueError) a parsed JSON Schema whose grammar would be too large or slow.

    Run BEFORE converting. The message names ``where``, the JSON pointer of the offending
    keyword, its value and the limit, e.g. ``request json_schema: #/maxLength: maxLength =
    100000000 is over the limit 1000 (...)``. Also refuses what llama-cpp-python's converter
    would crash or loop on. Integral floats of length/count keywords (5.0) are made ints in
    place (the converter multiplies by them).
    """
    cost, unsupported = _walk_schema(schema, where, limits)
    if unsupported:
        raise ValueError(unsupported)
    return cost


def _walk_schema(schema: Any, where: str,
                 limits: SchemaLimits) -> Tuple[SchemaCost, Optional[str]]:
    if not isinstance(schema, dict):
        raise ValueError(f'{where}: a JSON schema must be a JSON object')
    depth = _json_depth(schema)
    if depth > limits.max_json_depth:
        raise ValueError(f'{where}: nested {depth} levels deep, over the limit '
                         f'{limits.max_json_depth}')
    _normalize_integers(schema)
    walk = _Walk(schema, where, limits)
    walk.schema(schema, [], '', 0, False)
    stacks, _ = walk.stacks(schema, [], ())
    if stacks > limits.max_parse_stacks:
        raise ValueError(f'{where}: up to {stacks} grammar alternatives can be alive at once, '
                         f'over the limit {limits.max_parse_stacks} (the sampler checks every '
                         'token against each)')
    if walk.grammar_bytes > limits.max_grammar_bytes:
        top = sorted(walk.contributors.items(), key=lambda kv: -kv[1])[:3]
        parts = ', '.join(f'{p} ~{n} B' for p, n in top)
        raise ValueError(f'{where}: the grammar would be about {walk.grammar_bytes} bytes, '
                         f'over the limit {limits.max_grammar_bytes} (largest parts: {parts})')
    return SchemaCost(walk.subschemas, walk.refs, walk.grammar_bytes, stacks), walk.deferred


def _normalize_integers(node: Any) -> None:
    keys = ('minLength', 'maxLength', 'minItems', 'maxItems', 'minProperties', 'maxProperties')
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in keys:
                value = node.get(key)
                if isinstance(value, float) and value.is_integer():
                    node[key] = int(value)
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def unenforced_keywords(schema: Any) -> List[str]:
    """
    List the JSON pointers of keywords the converter ignores.

    The grammar does not enforce them, so a constrained reply may still fail validation,
    e.g. ``#/properties/n/minimum``.
    """
    found: List[str] = []
    stack: List[Tuple[Any, List[Any]]] = [(schema, [])]
    maps = ('properties', '$defs', 'definitions', 'patternProperties', 'dependentSchemas')
    lists = ('anyOf', 'oneOf', 'allOf', 'items', 'prefixItems')
    singles = ('items', 'additionalProperties') + _OTHER_SCHEMA_KEYS
    while stack:
        node, path = stack.pop()
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key in maps and isinstance(value, dict):
                stack.extend((v, path + [key, k]) for k, v in value.items())
            elif key in lists and isinstance(value, list):
                stack.extend((v, path + [key, i]) for i, v in enumerate(value))
            elif key in singles and isinstance(value, dict):
                stack.append((value, path + [key]))
            if key in ANNOTATION_KEYWORDS:
                continue
            if key not in ENFORCED_KEYWORDS or (key == 'format'
                                                and str(value) not in ENFORCED_FORMATS):
                found.append(_pointer(path + [key]))
    return sorted(found)


# =============================================================================== conversion


def load_json(text: str, where: str, max_bytes: Optional[int] = None) -> Any:
    """
    Parse a client's JSON text, with errors that name ``where``.

    The size is checked first (before parsing anything), then the syntax; a ValueError says
    ``<where>: the JSON text is N bytes, over the limit M``, ``<where>: not valid JSON:
    <position>`` or ``<where>: nested too deeply``.
    """
    size = len(text.encode('utf-8'))
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f'{where}: the JSON text is {size} bytes, over the limit {max_bytes}')
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f'{where}: not valid JSON: {e}') from e
    except RecursionError as e:
        raise ValueError(f'{where}: nested too deeply') from e


def parse_schema(schema_text: str, where: str, limits: SchemaLimits = LIMITS) -> dict:
    """Parse and check a JSON Schema text: size, JSON, then ``check_schema``."""
    schema = load_json(schema_text, where, limits.max_schema_bytes)
    check_schema(schema, where, limits)
    return schema


def check_schema(schema: Any, where: str, limits: SchemaLimits = LIMITS) -> SchemaCost:
    """
    Check a parsed schema: an object within ``limits``, valid for its JSON Schema draft.

    The limits are walked first (cheap, and they bound what follows), then jsonschema's
    check_schema runs (~0.1-0.2 ms per subschema for draft 2020-12).
    """
    cost, unsupported = _walk_schema(schema, where, limits)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        at = _pointer(list(e.absolute_path))
        raise ValueError(f'{where}: invalid JSON schema at {at}: {e.message[:200]}') from e
    except RecursionError as e:  # pragma: no cover (max_json_depth comes first)
        raise ValueError(f'{where}: nested too deeply') from e
    if unsupported:
        raise ValueError(unsupported)
    return cost


def schema_to_gbnf(schema_text: str, where: str,
                   limits: SchemaLimits = LIMITS) -> Tuple[str, dict]:
    """
    GBNF for JSON valid under the JSON Schema ``schema_text``, within ``limits``.

    Returns ``(gbnf, parsed_schema)``; the grammar has passed ``check_gbnf``. Raises
    ValueError starting with ``where`` for: not JSON, not an object, an invalid schema, a
    schema over the limits (naming the JSON pointer, value and limit), one the converter
    cannot handle, or a grammar over ``limits.max_grammar_bytes`` / too deeply nested.
    """
    schema = parse_schema(schema_text, where, limits)
    return schema_dict_to_gbnf(schema, where, limits), schema


def schema_dict_to_gbnf(schema: dict, where: str, limits: SchemaLimits = LIMITS) -> str:
    """``schema_to_gbnf`` for an already parsed schema (limits checked again: cheap)."""
    check_schema_limits(schema, where, limits)
    try:
        # The converter rewrites $refs in place: give it its own copy.
        gbnf = llama_grammar.json_schema_to_gbnf(json.dumps(copy.deepcopy(schema)))
    except RecursionError as e:
        raise ValueError(f'{where}: nested too deeply for the llama-cpp-python converter') from e
    except Exception as e:  # the converter raises AssertionError/KeyError/ValueError...
        reason = str(e) or type(e).__name__
        raise ValueError(f'{where}: the llama-cpp-python converter cannot turn this schema into a '
                         f'grammar: {reason[:200]}') from e
    gbnf = fix_json_chars(gbnf)
    size = len(gbnf.encode('utf-8'))
    if size > limits.max_grammar_bytes:
        raise ValueError(f'{where}: the grammar is {size} bytes, over the limit '
                         f'{limits.max_grammar_bytes}')
    try:
        check_gbnf(gbnf)
    except ValueError as e:
        raise ValueError(f'{where}: {e}') from e
    return gbnf


# =============================================================================== cache


class ByteLRU:
    """
    A least-recently-used cache bounded by the total size (bytes) of its values.

    ``put(key, value, size)``: the caller states the size (e.g. the grammar's length). A
    value larger than ``max_bytes`` is not kept. Thread-safe.
    """

    def __init__(self, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f'max_bytes must be positive (got {max_bytes})')
        self.max_bytes = max_bytes
        self._items: 'OrderedDict[Hashable, Tuple[Any, int]]' = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:  # noqa: A003 (the natural name; shadows nothing in the class)
        """Sum of the sizes of the values held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable, default: Any = None) -> Any:
        """Return the value of ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return default
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: Any, size: int) -> bool:
        """Keep ``value``, evicting least recently used ones; False if it is too large."""
        if size < 0:
            raise ValueError(f'size must be >= 0 (got {size})')
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return False
            while self._items and self._bytes + size > self.max_bytes:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted
            self._items[key] = (value, size)
            self._bytes += size
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
