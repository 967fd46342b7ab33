#!/usr/bin/env python3
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Benchmark: JSON-schema grammars under br_chat_lifecycle.grammars' limits.

Prints (markdown) for
  1. the hostile schemas of reliability issue #9: time and peak Python memory until
     ``schema_to_gbnf`` refuses them, and the message;
  2. the worst schemas the limits ALLOW (one per limit, each at its boundary): conversion
     time (limits walk + llama-cpp-python's converter), llama.cpp's parse of the grammar
     (``check_gbnf``), grammar size, peak memory, the walk's parse-stack bound;
  3. with a model (default $BR_CHAT_DEFAULT_MODEL, SmolLM2-135M): milliseconds per token of
     ``Llama.generate`` unconstrained, with llama.cpp's plain JSON grammar and with each
     worst-allowed grammar (median, 90th percentile and max over the generated tokens).
  4. --unbounded: what the bare converter does with a scaled-down hostile schema (1e6).

Usage (repo root, after `source env.sh`):
    python bench/bench_grammars.py               # all sections (~2-4 min on 2 cores)
    python bench/bench_grammars.py --no-model    # sections 1-2 only (seconds)
    python bench/bench_grammars.py --tokens 64 --threads 2 --unbounded
Run it on an otherwise idle machine: per-token times include llama.cpp's decode.
"""
import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import time
import tracemalloc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from br_chat_lifecycle import grammars  # noqa: E402
from br_chat_lifecycle.grammars import check_gbnf, LIMITS, schema_to_gbnf  # noqa: E402

L = LIMITS


def hostile_schemas():
    """Yield the schemas of reliability issue #9 (23 s / GBs / seconds of blocking each)."""
    yield 'minLength 1e8', {'type': 'string', 'minLength': 100_000_000}
    for i in range(6):
        yield f'minLength ~1e7 #{i + 1}', {'type': 'string', 'minLength': 10_000_000 + i}
    for i in range(5):
        yield f'maxItems ~2e6 #{i + 1}', {'type': 'array', 'items': {'type': 'integer'},
                                          'maxItems': 2_000_000 + i}
    yield 'maxLength 1e5 (C stack)', {'type': 'string', 'maxLength': 100_000}
    yield 'pattern a{1000000}', {'type': 'string', 'pattern': '^a{1000000}$'}
    yield 'enum 100000 values', {'enum': [f'v{i}' for i in range(100_000)]}
    yield '500 props x maxLength 1000', {'type': 'object', 'properties': {
        f'p{i}': {'type': 'string', 'maxLength': 1000} for i in range(500)}}
    levels = {f'L{k}': {'anyOf': [{'type': 'object', 'properties': {
        'a': {'$ref': f'#/$defs/L{k + 1}'} if k < 6 else {'type': 'string'},
        f'b{i}': {'type': 'integer'}}, 'required': ['a']} for i in range(8)]}
        for k in range(1, 7)}
    yield '8^6 ambiguous $ref DAG', {'type': 'object', 'properties': {
        'x': {'$ref': '#/$defs/L1'}}, '$defs': levels}


def worst_allowed():
    """One schema per limit at its boundary: (name, schema, prompt for the model)."""
    yield ('string maxLength', {'type': 'string', 'maxLength': L.max_string_length},
           'Write a very long story as one JSON string.')
    yield ('string minLength=maxLength', {'type': 'string', 'minLength': L.max_string_length,
                                          'maxLength': L.max_string_length},
           'Write a very long story as one JSON string.')
    yield ('array maxItems', {'type': 'array', 'maxItems': L.max_items,
                              'items': {'type': 'integer'}},
           'List many numbers as a JSON array.')
    yield ('object, max optional properties', {'type': 'object', 'properties': {
        f'property_{i:02d}': {'type': 'string', 'maxLength': 20}
        for i in range(L.max_properties)}}, 'Describe a robot as a JSON object.')
    # Enum values sharing a long prefix: every value's stack stays alive over the prefix.
    n = min(L.max_enum_values, L.max_parse_stacks)
    width = min((L.max_schema_bytes - 64) // n - 4, (L.max_grammar_bytes - 4096) // n - 12,
                L.max_literal_chars - 8)
    yield (f'enum {n} x {width} chars, shared prefix',
           {'enum': ['x' * (width - 5) + f'{i:05d}' for i in range(n)]},
           'Pick one value.')
    # Ambiguous alternatives nested through $ref, up to max_parse_stacks stacks.
    yield (*_dag(), 'Write a nested JSON object.')
    # As many subschemas as allowed: objects of optional properties (O(n^2) conversion).
    n_objects = 3
    per_object = min(L.max_properties, (L.max_subschemas - 1) // n_objects - 1)
    yield (f'{n_objects} objects x {per_object} optional properties', {
        'type': 'object', 'properties': {f'o{j}': {'type': 'object', 'properties': {
            f'p{i}': {'type': 'integer'} for i in range(per_object)}}
            for j in range(n_objects)}}, 'Describe a robot as a JSON object.')
    yield ('robot_command.schema.json', json.loads(
        (REPO / 'config' / 'robot_command.schema.json').read_text()),
        'Go to the kitchen and bring me a cup.')


def _dag(per=2):
    """Build the deepest DAG of ``per`` ambiguous alternatives a level the limits allow."""
    best = None
    for k in range(1, 16):
        levels = {f'L{j}': {'anyOf': [{'type': 'object', 'properties': {
            'a': {'$ref': f'#/$defs/L{j + 1}'} if j < k else {'type': 'string',
                                                              'maxLength': 40},
            f'b{i}': {'type': 'integer'}}, 'required': ['a']} for i in range(per)]}
            for j in range(1, k + 1)}
        schema = {'type': 'object', 'properties': {'x': {'$ref': '#/$defs/L1'}},
                  'required': ['x'], '$defs': levels}
        try:
            grammars.check_schema_limits(json.loads(json.dumps(schema)), 'dag')
        except ValueError:
            return best
        best = (f'{per}^{k} ambiguous $ref DAG', schema)
    return best


def measure(fn, repeat=1):
    """
    Run ``fn``: (result or exception, median wall s, median CPU s, peak MiB allocated).

    CPU time is what a busy machine does not inflate.
    """
    times, cpu, result = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            result = fn()
        except ValueError as e:
            result = e
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    tracemalloc.start()
    try:
        fn()
    except ValueError:
        pass
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return result, statistics.median(times), statistics.median(cpu), peak


def section_hostile():
    print('\n## 1. Hostile schemas (issue #9): refused before conversion\n')
    print('| Schema | Time to refuse (CPU) | Peak memory | Message |')
    print('|---|---|---|---|')
    for name, schema in hostile_schemas():
        text = json.dumps(schema)
        result, dt, cpu, peak = measure(lambda: schema_to_gbnf(text, 'request json_schema'))
        msg = str(result) if isinstance(result, ValueError) else 'ACCEPTED (!)'
        msg = msg.replace('|', '\\|')
        print(f'| {name} | {dt * 1000:.2f} ms ({cpu * 1000:.2f}) | {peak:.2f} MiB | '
              f'{msg[:150]} |')


def section_allowed():
    print('\n## 2. Worst allowed schemas: conversion\n')
    print('| Schema | schema_to_gbnf (CPU) | llama.cpp parse | Grammar | Peak memory '
          '| Subschemas | Stack bound |')
    print('|---|---|---|---|---|---|---|')
    grammars_out = []
    for name, schema, prompt in worst_allowed():
        text = json.dumps(schema)
        result, dt, cpu, peak = measure(lambda: schema_to_gbnf(text, 'bench'), repeat=5)
        if isinstance(result, ValueError):
            print(f'| {name} | REFUSED: {str(result)[:120]} | | | | | |')
            continue
        gbnf, parsed = result
        cost = grammars.check_schema_limits(json.loads(text), 'bench')
        t0 = time.perf_counter()
        check_gbnf(gbnf)
        parse = time.perf_counter() - t0
        print(f'| {name} | {dt * 1000:.1f} ms ({cpu * 1000:.1f}) | {parse * 1000:.1f} ms | '
              f'{len(gbnf) / 1024:.1f} KiB | {peak:.2f} MiB | {cost.subschemas} | '
              f'{cost.parse_stacks} |')
        grammars_out.append((name, gbnf, prompt))
    return grammars_out


def section_unbounded():
    from llama_cpp import llama_grammar
    print('\n## 4. The bare converter (no limits), scaled-down hostile schemas\n')
    print('| Schema | Convert | Grammar | Peak memory |')
    print('|---|---|---|---|')
    for name, schema in [('minLength 1e6', {'type': 'string', 'minLength': 1_000_000}),
                         ('maxItems 2e5', {'type': 'array', 'items': {'type': 'integer'},
                                           'maxItems': 200_000})]:
        text = json.dumps(schema)
        gbnf, dt, _, peak = measure(lambda: llama_grammar.json_schema_to_gbnf(text))
        print(f'| {name} | {dt * 1000:.0f} ms | {len(gbnf) / 2 ** 20:.1f} MiB | '
              f'{peak:.0f} MiB |')


def section_tokens(model, n_tokens, threads, allowed):
    import llama_cpp
    print(f'\n## 3. Per-token time with a grammar ({Path(model).name}, {threads} thread(s), '
          f'up to {n_tokens} tokens, temperature 0.8, seed 1)\n')
    llm = llama_cpp.Llama(model, n_ctx=4096, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    eog = llm._model.vocab

    def run(gbnf, prompt):
        tokens = llm.tokenize(
            f'<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n'.encode(),
            special=True)
        grammar = llama_cpp.LlamaGrammar.from_string(gbnf) if gbnf else None
        llm.set_seed(1)
        times, last, n = [], time.perf_counter(), 0
        gen = llm.generate(tokens, temp=0.8, top_k=40, top_p=0.95, min_p=0.05,
                           repeat_penalty=1.1, grammar=grammar, reset=True)
        try:
            for token in gen:
                now = time.perf_counter()
                times.append(now - last)
                last = now
                if llama_cpp.llama_vocab_is_eog(eog, token):
                    break
                n += 1
                if n >= n_tokens:
                    break
        finally:
            gen.close()
        steps = sorted(times[1:]) or [0.0]  # times[0] includes the prompt evaluation
        return n, steps

    print('| Grammar | Tokens | ms/token median | p90 | max |')
    print('|---|---|---|---|---|')
    rows = [('unconstrained', None, 'Write a long JSON document about robots.'),
            ('llama.cpp JSON grammar', grammars.json_grammar(None),
             'Write a long JSON document about robots.')] + allowed
    for name, gbnf, prompt in rows:
        n, steps = run(gbnf, prompt)
        p90 = steps[int(0.9 * (len(steps) - 1))]
        print(f'| {name} | {n} | {statistics.median(steps) * 1000:.1f} | {p90 * 1000:.1f} | '
              f'{steps[-1] * 1000:.1f} |', flush=True)
    llm.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', default=os.environ.get('BR_CHAT_DEFAULT_MODEL', ''))
    parser.add_argument('--no-model', action='store_true', help='skip the per-token section')
    parser.add_argument('--tokens', type=int, default=96)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--unbounded', action='store_true',
                        help='also run the bare converter on scaled-down hostile schemas')
    args = parser.parse_args()
    print(f'# Grammar limits benchmark (load average {os.getloadavg()[0]:.2f})')
    print('\nLimits: ' + ', '.join(f'{k}={v}' for k, v in vars(LIMITS).items()))
    section_hostile()
    allowed = section_allowed()
    if not args.no_model and args.model:
        section_tokens(args.model, args.tokens, args.threads, allowed)
    if args.unbounded:
        section_unbounded()
    print(f'\n(load average at the end {os.getloadavg()[0]:.2f})')


if __name__ == '__main__':
    main()
