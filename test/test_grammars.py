# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
br_chat_lifecycle.grammars: JSON-schema grammars with bounds (reliability issue #9).

Part 1 (no model): the hostile schemas of issue #9 and every other expansion are refused with
a message naming the JSON pointer, the value and the limit; each limit's boundary value is
accepted (the grammar passes llama.cpp's parser), one more is refused; the robot command
schema still converts; the copied GBNF check and JSON grammar behave as the engine's; the
byte-bounded LRU evicts by bytes. No timing is asserted (bench/bench_grammars.py prints it).
Part 2 (slow): SmolLM2-135M-Instruct generates under converted schemas (llama_cpp.Llama with
LlamaGrammar.from_string); every complete reply is valid JSON under its schema.
"""
import json
from pathlib import Path

from br_chat_lifecycle import grammars
from br_chat_lifecycle.grammars import (ByteLRU, check_gbnf, check_schema_limits, LIMITS,
                                        schema_to_gbnf)
import jsonschema
import pytest

REPO = Path(__file__).resolve().parent.parent
ROBOT_SCHEMA_TEXT = (REPO / 'config' / 'robot_command.schema.json').read_text()
L = LIMITS
WHERE = 'request json_schema'


def refused(schema, *fragments):
    """Assert schema_to_gbnf refuses ``schema`` with a message containing every fragment."""
    text = schema if isinstance(schema, str) else json.dumps(schema)
    with pytest.raises(ValueError) as err:
        schema_to_gbnf(text, WHERE)
    message = str(err.value)
    assert message.startswith(WHERE + ':'), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def accepted(schema):
    gbnf, parsed = schema_to_gbnf(json.dumps(schema), WHERE)
    check_gbnf(gbnf)  # schema_to_gbnf checked it already; a second time costs nothing
    assert len(gbnf.encode()) <= L.max_grammar_bytes
    assert parsed == schema
    return gbnf


# =============================================================================== part 1
def test_hostile_schemas_of_issue_9_are_refused_naming_the_keyword():
    refused({'type': 'string', 'minLength': 100_000_000},
            '#/minLength', 'minLength = 100000000', f'limit {L.max_string_length}')
    for i in range(6):  # six distinct ~1e7 schemas (1.4 GB kept before)
        refused({'type': 'string', 'minLength': 10_000_000 + i},
                '#/minLength', f'minLength = {10_000_000 + i}')
    for i in range(5):  # five maxItems ~2e6 (blocked everything ~35 s before)
        refused({'type': 'array', 'items': {'type': 'integer'}, 'maxItems': 2_000_000 + i},
                '#/maxItems', f'maxItems = {2_000_000 + i}', f'limit {L.max_items}')
    refused({'type': 'string', 'maxLength': 100_000}, '#/maxLength', 'maxLength = 100000')


@pytest.mark.parametrize('schema, fragments', [
    ({'type': 'object', 'properties': {'a/b': {'type': 'array', 'items': {
        'type': 'string', 'maxLength': 5000}}}},
     ['#/properties/a~1b/items/maxLength', 'maxLength = 5000']),
    ({'type': 'array', 'items': {'type': 'integer'}, 'minItems': 300},
     ['#/minItems', 'minItems = 300']),
    ({'type': 'object', 'properties': {'x': {'type': 'integer'}}, 'maxProperties': 100000},
     ['#/maxProperties', 'maxProperties = 100000', f'limit {L.max_object_size}']),
    ({'type': 'string', 'pattern': '^[a-z]{2,100000}$'},
     ['#/pattern', 'quantifier {2,100000}', f'limit {L.max_string_length}']),
    ({'type': 'string', 'pattern': '^' + 'a' * 600 + '$'},
     ['#/pattern', 'pattern is 602 characters', f'limit {L.max_pattern_chars}']),
    ({'type': 'string', 'pattern': 'no-anchors'},
     ['#/pattern', 'Pattern must start with "^" and end with "$"']),
    ({'enum': list(range(300))}, ['#/enum', '300 enum values', f'limit {L.max_enum_values}']),
    ({'enum': ['ok', 'x' * 2000]}, ['#/enum/1', '2002 characters', 'limit 1024']),
    ({'const': {'k': 'v' * 2000}}, ['#/const', 'characters of JSON']),
    ({'type': 'object', 'properties': {f'p{i}': {'type': 'integer'} for i in range(65)}},
     ['#/properties', '65 properties', f'limit {L.max_properties}']),
    ({'type': 'object', 'properties': {f'o{j}': {'type': 'object', 'properties': {
        f'p{i}': {'type': 'integer'} for i in range(60)}} for j in range(4)}},
     ['more than 200 subschemas']),
    ({'anyOf': [{'type': 'object', 'properties': {'k': {'const': i}}} for i in range(70)]},
     ['#/anyOf', '70 alternatives', f'limit {L.max_alternatives}']),
    ({'type': 'object', 'properties': {f'p{i}': {'type': 'string', 'maxLength': 1000}
                                       for i in range(40)}},
     ['the grammar would be about', f'limit {L.max_grammar_bytes}', 'largest parts: #/']),
    ({'$ref': 'https://example.com/schema.json'}, ['#/$ref', 'only local references']),
    ({'$ref': '#'}, ['#/$ref', 'no "#" self reference']),
    ({'type': 'object', 'properties': {'a': {'$ref': '#/$defs/missing'}}, '$defs': {}},
     ['#/properties/a/$ref', "points nowhere ('missing' not found)"]),
    ({'type': 'object', 'properties': {'a': {'$ref': '#/$defs/x'}},
      '$defs': {'x': {'$ref': '#/$defs/y'}, 'y': {'$ref': '#/$defs/x'}}},
     ['#/properties/a/$ref', 'cycle of references']),
    ({'type': 'object', 'properties': {'a': {'$ref': '#/$defs/d0'}}, '$defs': dict(
        {f'd{i}': {'$ref': f'#/$defs/d{i + 1}'} for i in range(12)},
        d12={'type': 'integer'})},
     ['#/properties/a/$ref', f'chain of more than {L.max_ref_chain} references']),
    ({'type': 'object', 'properties': dict(
        {f'p{i}': {'$ref': '#/$defs/v'} for i in range(40)},
        o={'type': 'object', 'properties': {f'q{i}': {'$ref': '#/$defs/v'} for i in range(30)}}),
      '$defs': {'v': {'type': 'integer'}}},
     [f'more than {L.max_refs} $ref']),
    ({'$defs': {'node': {'type': 'object', 'properties': {'kids': {
        'type': 'array', 'items': {'$ref': '#/$defs/node'}}}}}, '$ref': '#/$defs/node'},
     ['#/$defs/node/properties/kids/items/$ref', 'inside a schema that itself has a $ref']),
    ({'allOf': [{'$ref': '#/$defs/A'}], '$defs': {
        'A': {'properties': {'x': {'allOf': [{'$ref': '#/$defs/B'}]}}},
        'B': {'properties': {'y': {'allOf': [{'$ref': '#/$defs/A'}]}}}}},
     ['allOf $ref', 'includes itself again']),
    ({'type': 'object', 'properties': {'a': True}}, ['#/properties/a', 'boolean schemas']),
    ({'type': 'array', 'items': False}, ['#/items', 'boolean schemas']),
    ({'type': 'object', 'properties': {'a': {'description': 'anything'}}},
     ['#/properties/a', 'cannot turn this schema into a grammar', 'description']),
    # Ambiguous alternatives nested through $ref multiply llama.cpp's grammar stacks.
    ({'type': 'object', 'properties': {'x': {'$ref': '#/$defs/L1'}}, '$defs': {
        f'L{k}': {'anyOf': [{'type': 'object', 'properties': {
            'a': {'$ref': f'#/$defs/L{k + 1}'} if k < 6 else {'type': 'string'},
            f'b{i}': {'type': 'integer'}}, 'required': ['a']} for i in range(8)]}
        for k in range(1, 7)}},
     ['grammar alternatives can be alive at once', f'limit {L.max_parse_stacks}']),
    ({'type': 'object', 'properties': {'v': {'$ref': '#/$defs/R'}}, '$defs': {'R': {'anyOf': [
        {'type': 'object', 'properties': {'a': {'$ref': '#/$defs/R'}}, 'required': ['a']},
        {'type': 'object', 'properties': {'a': {'$ref': '#/$defs/R'}, 'b': {'type': 'integer'}},
         'required': ['a']}]}}},
     ['#/$defs/R/anyOf', 'recursive $ref inside alternatives']),
])
def test_expanding_or_unsupported_schemas_are_refused_naming_the_pointer(schema, fragments):
    refused(schema, *fragments)


@pytest.mark.parametrize('text, fragments', [
    ('{"type": ', ['not valid JSON']),
    ('[]', ['must be a JSON object']),
    ('{"type": "strng"}', ['invalid JSON schema at #/type']),
    ('{"type": "string", "maxLength": -1}', ['#/maxLength', 'non-negative integer']),
    ('[' * 30000 + ']' * 30000, ['nested too deeply']),
    ('{"a":' * 70 + '1' + '}' * 70, ['nested 70 levels deep', f'limit {L.max_json_depth}']),
    (json.dumps({'type': 'string', 'description': 'x' * 70000}),
     ['the JSON text is', f'limit {L.max_schema_bytes}']),
])
def test_bad_schema_texts_are_refused_precisely(text, fragments):
    refused(text, *fragments)


def test_each_limit_is_accepted_at_its_boundary_and_refused_one_above():
    cases = [
        (lambda n: {'type': 'string', 'maxLength': n}, L.max_string_length),
        (lambda n: {'type': 'string', 'minLength': n, 'maxLength': n}, L.max_string_length),
        (lambda n: {'type': 'array', 'items': {'type': 'integer'}, 'maxItems': n}, L.max_items),
        (lambda n: {'type': 'array', 'items': {'type': 'boolean'}, 'minItems': n},
         L.max_items),
        (lambda n: {'type': 'string', 'pattern': f'^[a-z]{{1,{n}}}$'}, L.max_string_length),
        (lambda n: {'enum': [f'v{i}' for i in range(n)]}, L.max_enum_values),
        (lambda n: {'const': 'c' * (n - 2)}, L.max_literal_chars),
        (lambda n: {'type': 'object', 'properties': {f'p{i}': {'type': 'integer'}
                                                     for i in range(n)}}, L.max_properties),
        (lambda n: {'type': 'object', 'properties': {'a': {'type': 'integer'}},
                    'maxProperties': n}, L.max_object_size),
        (lambda n: {'anyOf': [{'const': i} for i in range(n)]}, L.max_alternatives),
        (lambda n: {'type': 'object', 'properties': {'a': {'$ref': '#/$defs/d1'}},
                    '$defs': dict({f'd{i}': {'$ref': f'#/$defs/d{i + 1}'} for i in range(1, n)},
                                  **{f'd{n}': {'type': 'integer'}})}, L.max_ref_chain),
    ]
    for make, limit in cases:
        accepted(make(limit))
        with pytest.raises(ValueError):
            schema_to_gbnf(json.dumps(make(limit + 1)), WHERE)


def test_worst_allowed_string_grammar_nests_within_llama_cpp_bounds():
    gbnf = accepted({'type': 'string', 'maxLength': L.max_string_length})
    assert grammars._nesting(gbnf) == L.max_string_length < grammars.MAX_GBNF_NESTING


def test_integral_floats_are_accepted_as_integers():
    gbnf = accepted({'type': 'string', 'minLength': 2.0, 'maxLength': 3.0})
    assert 'char char (char)?' in gbnf


def test_robot_command_schema_converts_checks_and_matches_the_engine_grammar():
    gbnf, schema = schema_to_gbnf(ROBOT_SCHEMA_TEXT, 'json_schema_file')
    check_gbnf(gbnf)
    assert gbnf == grammars.json_grammar(ROBOT_SCHEMA_TEXT)
    assert schema == json.loads(ROBOT_SCHEMA_TEXT)
    cost = check_schema_limits(json.loads(ROBOT_SCHEMA_TEXT), 'x')
    assert 0 < cost.estimated_grammar_bytes <= L.max_grammar_bytes
    assert cost.estimated_grammar_bytes >= len(gbnf)  # the estimate errs on the safe side
    assert grammars.unenforced_keywords(schema) == []


def test_recursive_tree_schema_with_defs_beside_the_root_type_converts():
    gbnf = accepted({'type': 'object', 'properties': {'root': {'$ref': '#/$defs/node'}},
                     '$defs': {'node': {'type': 'object', 'properties': {
                         'v': {'type': 'integer'},
                         'kids': {'type': 'array', 'items': {'$ref': '#/$defs/node'},
                                  'maxItems': 4}}, 'required': ['v']}}})
    assert 'node ::= ' in gbnf


def test_unenforced_keywords_are_listed_by_pointer():
    schema = {'type': 'object', 'properties': {
        'n': {'type': 'integer', 'minimum': 0, 'description': 'ok'},
        'e': {'type': 'string', 'format': 'email'},
        'd': {'type': 'string', 'format': 'date', 'default': {'minimum': 'not a keyword'}}},
        'minProperties': 1}
    assert grammars.unenforced_keywords(schema) == [
        '#/minProperties', '#/properties/e/format', '#/properties/n/minimum']


def test_copied_gbnf_check_reports_llama_cpp_reasons_and_deep_nesting():
    with pytest.raises(ValueError, match="Undefined rule identifier 'missing'"):
        check_gbnf('root ::= "a" missing')
    with pytest.raises(ValueError, match='left recursion'):
        check_gbnf('root ::= root "a"')
    deep = 'root ::= ' + '("a" ' * 3000 + ')?' * 3000
    with pytest.raises(ValueError, match='groups nest 3000 levels deep'):
        check_gbnf(deep)
    check_gbnf(grammars.json_grammar(None))
    # The JSON string character fix: no raw control characters inside strings.
    gbnf = grammars.json_grammar('{"type": "string"}')
    assert r'char ::= [^"\\\x7F\x00-\x1F] |' in gbnf


def test_byte_lru_evicts_least_recently_used_by_bytes():
    cache = ByteLRU(100)
    assert cache.put('a', 'A', 40) and cache.put('b', 'B', 40)
    assert cache.bytes == 80 and len(cache) == 2
    assert cache.get('a') == 'A'              # 'a' is now the most recently used
    assert cache.put('c', 'C', 30)            # 110 > 100: evicts 'b' (least recent)
    assert 'b' not in cache and cache.get('b') is None
    assert cache.get('a') == 'A' and cache.get('c') == 'C' and cache.bytes == 70
    assert cache.put('a', 'A2', 10)           # replacing updates the size
    assert cache.bytes == 40 and cache.get('a') == 'A2'
    assert not cache.put('huge', 'H', 101)    # larger than the whole cache: not kept
    assert 'huge' not in cache and cache.bytes == 40
    assert cache.put('d', 'D', 100)           # exactly the budget: everything else goes
    assert len(cache) == 1 and cache.bytes == 100
    assert cache.get('missing', 'default') == 'default'
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0
    with pytest.raises(ValueError):
        ByteLRU(0)
    with pytest.raises(ValueError):
        cache.put('neg', 'x', -1)


def test_byte_lru_bounds_grammar_caches_by_size_not_count():
    cache = ByteLRU(16 * 1024)
    for n in (100, 200, 1000, 50, 300, 900):
        gbnf = accepted({'type': 'string', 'maxLength': n})
        cache.put(gbnf, gbnf, len(gbnf.encode()))
        assert cache.bytes <= 16 * 1024
    assert 0 < len(cache) < 6


# =============================================================================== part 2
SCHEMAS = [
    json.loads(ROBOT_SCHEMA_TEXT),
    {'type': 'object', 'properties': {
        'rooms': {'type': 'array', 'minItems': 1, 'maxItems': 3, 'items': {
            'type': 'string', 'enum': ['kitchen', 'bedroom', '客厅']}},
        'count': {'type': 'integer'},
        'note': {'type': 'string', 'maxLength': 30},
        'mode': {'$ref': '#/$defs/mode'}},
     'required': ['rooms', 'count', 'note', 'mode'], 'additionalProperties': False,
     '$defs': {'mode': {'anyOf': [{'const': 'auto'}, {'type': 'null'}]}}},
    {'type': 'string', 'pattern': '^[A-Z][a-z]{2,8}-[0-9]{1,3}$'},
]
PROMPTS = ['Go to the kitchen and bring me a cup.', '去客厅看看有没有人', 'Say hello.']


@pytest.fixture(scope='module')
def smollm(default_model_path):
    import llama_cpp
    llm = llama_cpp.Llama(default_model_path, n_ctx=1024, n_threads=2, verbose=False)
    yield llm
    llm.close()


@pytest.mark.slow
@pytest.mark.parametrize('index', range(len(SCHEMAS)))
def test_smollm_output_under_a_converted_schema_is_valid_json(smollm, index):
    import llama_cpp
    schema = SCHEMAS[index]
    gbnf, parsed = schema_to_gbnf(json.dumps(schema), 'test schema')
    for seed, prompt in enumerate(PROMPTS):
        tokens = smollm.tokenize(
            f'<|im_start|>user\nAnswer in JSON. {prompt}<|im_end|>\n<|im_start|>assistant\n'
            .encode(), special=True)
        smollm.set_seed(seed)
        out, finished = [], False
        gen = smollm.generate(tokens, temp=0.7, top_k=40, top_p=0.95, min_p=0.05,
                              repeat_penalty=1.1, reset=True,
                              grammar=llama_cpp.LlamaGrammar.from_string(gbnf))
        try:
            for token in gen:
                if llama_cpp.llama_vocab_is_eog(smollm._model.vocab, token):
                    finished = True
                    break
                out.append(token)
                if len(out) >= 200:
                    break
        finally:
            gen.close()
        text = smollm.detokenize(out).decode('utf-8')
        print(f'schema {index} seed {seed}: {text!r}')
        assert finished, f'no end of generation within 200 tokens: {text!r}'
        jsonschema.validate(json.loads(text), parsed)
