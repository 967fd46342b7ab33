#!/usr/bin/env python3
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Benchmark: raw llama-cpp-python vs the chat node, single stream and parallel slots, ONE run.

Same machine, same model, greedy decoding (temperature 0, repeat_penalty 1.0, fixed seed, the
node's max_tokens) everywhere. Phases (see bench/README.md for every number):

  load         raw ``Llama()`` vs the configure transition; RSS of load/cleanup cycles
  latency      single stream: raw ``create_chat_completion(stream=True)`` vs chat_action vs
               chat_service, per prompt: TTFT, tokens/s, end-to-end (targets >= 97 %, +20 ms);
               and chat_action with every option per request vs without (within noise)
  concurrency  1, 2, 4 concurrent service clients: aggregate tokens/s vs 1 client (target
               >= 1.8x at 4), beside raw batched ``llama_decode`` with 1, 2, 4 sequences
               (the physical ceiling of this machine and model)
  busy         a short request while 3 long generations run: TTFT vs idle (target <= 2x)
  sessions     8 sessions round-robin on n_parallel 4, ~300-token histories: each follow-up's
               TTFT vs the same turn on a cold node (n_parallel 1, session_cache_mb 0)
               (target <= 25 %)
  restart      the next turn of every session after cleanup -> configure -> activate, and
               after SIGKILL + a new process on the same session_dir, vs cold (<= 25 %)
  memory       RSS with the session cache full (<= loaded + session_cache_mb + 10 %), cleanup
               (>= 90 % of the model's RSS returned), 20 configure/cleanup cycles (< 5 % drift)

Compared paths are interleaved pair by pair (round by round, alternating which goes first)
so drifting background load hits both alike; every target uses the median of per-pair ratios,
printed with its spread (min-max) and the load average.

Usage (from the repo root, after `source env.sh`):
    python bench/bench_chat.py                     # full run (~8 min on 2 cores, SmolLM2)
    python bench/bench_chat.py --quick             # reduced smoke run (< 1 minute)
    python bench/bench_chat.py --model gemma       # the Gemma 3 270M GGUF (bench/get_gemma.py)
    python bench/bench_chat.py --model other.gguf --phases latency,concurrency --rounds 5
Prints a markdown report; writes the raw numbers to bench/results/bench_<time>_<mode>.json.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid

from bench_common import PROMPTS, REPO, run_concurrently  # environment set on import

from br_chat_lifecycle import settings  # noqa: E402
from br_chat_lifecycle.client import ChatClient, wait_future  # noqa: E402
from br_chat_lifecycle.lifecycle_client import LifecycleError  # noqa: E402
from br_chat_lifecycle.node_process import NodeProcess  # noqa: E402
import llama_cpp  # noqa: E402
from raw_llama import DecodeCeiling, Raw, tps  # noqa: E402

TABLE_HEADER = '| Metric | raw llama-cpp-python | chat_service | chat_action | Target |'
PHASES = ('load', 'latency', 'concurrency', 'busy', 'sessions', 'restart', 'memory')

LONG_PROMPTS = [  # replies that run to max_tokens
    'Write a long story about a robot that learns to paint, with many details.',
    'Describe, in great detail, every room of a large old castle.',
    'Write a long letter from a sailor to his family, describing his voyage.',
    'Explain in detail how bread is made, from the wheat field to the bakery.',
]
SHORT_PROMPTS = [  # pairs (idle, busy) of the same shape
    'In one word: what colour is a ripe banana?',
    'In one word: what colour is a ripe tomato?',
    'In one word: what colour is a fresh lettuce?',
    'In one word: what colour is a clear sky?',
]
ROOMS = ['kitchen', 'garage', 'library', 'garden', 'attic', 'cellar', 'workshop', 'studio']
NAMES = ['Ada', 'Bolt', 'Cog', 'Dot', 'Echo', 'Flux', 'Gear', 'Hex']
INTRO = (
    'You are {name}, a household robot who works in the {room} of a large family house. '
    'The family has two parents, three children, a dog called Max and a cat called Luna. '
    'Every morning you check the {room}, tidy what was left out the evening before, and '
    'report anything broken. You charge your battery at the dock next to the back door. '
    'You must never enter the bathroom while it is in use, never open the front door to '
    'strangers, and always speak politely. The children are allowed to ask you for help '
    'with homework, but you must not do their homework for them. When the parents are away, '
    'you keep a log of everything that happens in the {room} and read it to them when they '
    'come back. Introduce yourself in two sentences, then say which room you look after.')
FOLLOW_UPS = [
    'What is your name, and which room do you look after?',
    'List three things you do every morning.',
    'What do you do when the parents are away?',
    'Where do you charge your battery?',
    'Summarise the family rules you must follow.',
]

TARGET_TPS_RATIO = 0.97      # action tokens/s >= 97 % of raw
TARGET_ADDED_TTFT_S = 0.020  # action TTFT - raw TTFT <= 20 ms
TARGET_RSS_RETURNED = 0.90   # cleanup returns >= 90 % of the model's RSS
TARGET_CONCURRENCY = 1.8     # 4 clients: aggregate tokens/s >= 1.8x one client
TARGET_BUSY_TTFT = 2.0       # short request beside 3 long ones: TTFT <= 2x idle
TARGET_WARM_RATIO = 0.25     # follow-up / restored turn TTFT <= 25 % of cold
TARGET_CACHE_RSS = 0.10      # RSS with the cache full <= (loaded + session_cache_mb) x 1.10
TARGET_DRIFT = 0.05          # 20 configure/cleanup cycles: RSS drift < 5 %


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float('nan')


def spread(values):
    """(median, min, max, n) of the values that are not None."""
    values = [v for v in values if v is not None]
    if not values:
        return {'median': float('nan'), 'min': float('nan'), 'max': float('nan'), 'n': 0}
    return {'median': statistics.median(values), 'min': min(values), 'max': max(values),
            'n': len(values)}


def loadavg():
    return '%.2f %.2f %.2f' % os.getloadavg()


def log(msg):
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


# ============================================================================ node
class BenchNode:
    """
    The chat node as a subprocess (unique names) and the client's calls on it.

    The action calls are what a user writes: ChatClient.send_goal with a plain rclpy
    ActionClient underneath (exact_feedback off); the client's per-message work is part of
    what is measured.
    """

    def __init__(self, client: ChatClient, params: dict, tag: str = 'bench'):
        self.client = client
        self.params = dict(params)
        self.tag = tag
        self._start()

    def _start(self):
        uid = uuid.uuid4().hex[:8]
        self.service = f'{self.tag}_chat_{uid}'
        self.action = f'{self.tag}_action_{uid}'
        self.proc = NodeProcess(dict(self.params, chat_service_name=self.service,
                                     chat_action_name=self.action,
                                     **{'diagnostic_updater.period': 0.5}),
                                name=f'{self.tag}_node_{uid}', cwd=str(REPO))
        self.name = self.proc.name
        self.stats = self.client.stats(f'/{self.name}')
        self.client.lifecycle(self.name, transition_timeout=300.0).get_state(wait=60.0)

    def restart(self, kill=True):
        """
        Replace the node process with a new one with the same parameters (same session_dir).

        The old one is SIGKILLed (with ``kill=False``: stopped).
        """
        if kill:
            self.proc.kill()
        else:
            self.proc.stop()
        self._start()

    def transition(self, name) -> float:
        t0 = time.monotonic()
        try:
            self.client.lifecycle(self.name, transition_timeout=300.0)
            self.client.transition(self.name, name)
        except LifecycleError as e:
            raise RuntimeError(f'{e}\n--- node log ---\n{self.proc.log_text()[-3000:]}')
        return time.monotonic() - t0

    def bring_up(self):
        self.transition('configure')
        self.transition('activate')
        self.wait_servers()

    def wait_servers(self):
        self.client.wait_for_service(self.service, timeout=30.0)
        self.client.wait_for_action(self.action, timeout=30.0)

    def chat(self, prompt, **fields) -> dict:
        stamp = []
        t0 = time.monotonic()
        future = self.client.chat_async(prompt, service=self.service, **fields)
        future.add_done_callback(lambda _f: stamp.append(time.monotonic()))
        res = wait_future(future, 900.0, f'{self.service} reply')
        end = stamp[0] if stamp else time.monotonic()
        if not res.success:
            raise RuntimeError(f'service failed: {res.error}')
        return {'e2e_s': end - t0, 'tokens': res.completion_tokens, 'text': res.response,
                'prompt_tokens': res.prompt_tokens, 'cached': res.cached_prompt_tokens,
                'node_latency_s': res.latency_s, 'finish': res.finish_reason}

    def send_goal(self, prompt, **fields):
        return self.client.send_goal(prompt, action=self.action, timeout=900.0, **fields)

    @staticmethod
    def goal_record(goal) -> dict:
        outcome = goal.result()
        result = outcome.result
        if not result.success:
            raise RuntimeError(f'goal failed: {outcome.status}: {result.error}')
        first, end = goal.first_feedback_at, goal.result_at or time.monotonic()
        return {'ttft_s': first - goal.sent_at if first else None, 'e2e_s': end - goal.sent_at,
                'tokens': result.completion_tokens,
                'tps': tps(result.completion_tokens, first, end), 'text': result.response,
                'prompt_tokens': result.prompt_tokens, 'cached': result.cached_prompt_tokens,
                'node_ttft_s': result.time_to_first_token_s, 'node_latency_s': result.latency_s,
                'finish': result.finish_reason, 'first_at': first, 'end_at': end}

    def goal(self, prompt, **fields) -> dict:
        return self.goal_record(self.send_goal(prompt, **fields))

    def wait_stats(self, predicate, timeout=10.0) -> dict:
        try:
            return self.stats.wait(predicate, timeout, since=0.0)
        except TimeoutError:
            return self.stats.latest or {}

    def close(self):
        return self.proc.stop()


# ============================================================================ phases
def phase_load(raw, node, reps):
    """Model load: raw Llama() vs the configure transition; memory of each cycle."""
    out = {'raw_load_s': [], 'configure_s': [], 'node_load_s': [], 'cycles': []}
    for i in range(reps):
        out['raw_load_s'].append(raw.load())
        rss0 = node.proc.rss_mb()
        out['configure_s'].append(node.transition('configure'))
        snap = node.wait_stats(lambda s: s.get('lifecycle_state') == 'inactive'
                               and s.get('model_load_s'))
        out['node_load_s'].append(snap.get('model_load_s'))
        node.transition('activate')
        node.wait_servers()
        node.chat(PROMPTS[0])
        rss1 = node.proc.rss_mb()
        if i < reps - 1:  # the last cycle stays up for the next phases
            node.transition('deactivate')
            node.transition('cleanup')
            out['cycles'].append({'before_mb': rss0, 'loaded_mb': rss1,
                                  'after_cleanup_mb': node.proc.rss_mb()})
        log(f'load {i + 1}/{reps}: raw {out["raw_load_s"][-1]:.3f} s, configure '
            f'{out["configure_s"][-1]:.3f} s')
    return out


def phase_latency(raw, node, prompts, rounds, max_tokens, seed, options):
    """
    Per prompt and path: TTFT, tokens/s, end-to-end latency (interleaved rounds).

    Path ``options`` is the action with every generation option sent per request (``options``:
    the node's own values, so the replies stay the same): the cost of per-request options.
    """
    runs = {'raw': [], 'action': [], 'options': [], 'service': []}
    for r in range(rounds):
        for path in ('raw', 'action', 'options', 'service'):
            for i, prompt in enumerate(prompts):
                if path == 'raw':
                    res = raw.chat(prompt, max_tokens, seed)
                elif path == 'action':
                    res = node.goal(prompt)
                elif path == 'options':
                    res = node.goal(prompt, **options)
                else:
                    res = node.chat(prompt)
                res.update(round=r, prompt=i)
                runs[path].append(res)
            m = runs[path][-len(prompts):]
            log(f'round {r + 1}/{rounds} {path:7s}: median e2e {median(x["e2e_s"] for x in m):.2f}'
                f' s, tok/s {median(x.get("tps") for x in m):.1f}')
    return runs


def phase_concurrency(node, ceiling, levels, rounds):
    """
    Measure the aggregate generation tokens/s of N clients and of raw batched decoding.

    N simultaneous service clients, and raw batched llama_decode with N sequences, level by
    level within each round.
    """
    rows = []
    for r in range(rounds):
        for n in levels:
            ceil = ceiling.run(n)['tokens_per_s'] if ceiling is not None else None
            prompts = [LONG_PROMPTS[(r + k) % len(LONG_PROMPTS)] for k in range(n)]
            results, errors, wall = run_concurrently(node.chat, prompts)
            tokens = sum(x['tokens'] for x in results)
            rows.append({'round': r, 'clients': n, 'requests': len(results), 'errors': errors,
                         'wall_s': wall, 'tokens': tokens, 'tokens_per_s': tokens / wall,
                         'median_latency_s': median(x['e2e_s'] for x in results),
                         'ceiling_tokens_per_s': ceil})
            log(f'concurrency round {r + 1}/{rounds}, {n} clients: {tokens / wall:.1f} tok/s '
                f'(raw llama_decode x{n}: {ceil or float("nan"):.1f}), {len(errors)} errors')
    return rows


def phase_busy(node, rounds):
    """
    Measure the TTFT of a short request alone vs while 3 long generations run.

    The pair alternates which goes first.
    """
    pairs = []
    for r in range(rounds):
        p_idle, p_busy = SHORT_PROMPTS[(2 * r) % 4], SHORT_PROMPTS[(2 * r + 1) % 4]
        rec = {}
        for kind in (('idle', 'busy') if r % 2 == 0 else ('busy', 'idle')):
            if kind == 'idle':
                rec['idle'] = node.goal(p_idle)
                continue
            longs = [node.send_goal(LONG_PROMPTS[k]) for k in range(3)]
            for g in longs:
                g.wait_feedback()
            rec['busy'] = node.goal(p_busy)
            ends = [BenchNode.goal_record(g)['end_at'] for g in longs]
            rec['busy']['longs_running'] = sum(e > rec['busy']['first_at'] for e in ends)
        pairs.append({'round': r, 'idle': rec['idle'], 'busy': rec['busy'],
                      'ratio': rec['busy']['node_ttft_s'] / rec['idle']['node_ttft_s'],
                      'client_ratio': (rec['busy']['ttft_s'] / rec['idle']['ttft_s']
                                       if rec['busy']['ttft_s'] and rec['idle']['ttft_s']
                                       else None)})
        log(f'busy {r + 1}/{rounds}: idle {rec["idle"]["node_ttft_s"] * 1e3:.0f} ms, beside 3 '
            f'long {rec["busy"]["node_ttft_s"] * 1e3:.0f} ms ({rec["busy"]["longs_running"]}/3 '
            'still running at its first token)')
    return pairs


def _turn_prompt(turn, i):
    if turn == 0:
        return INTRO.format(name=NAMES[i % len(NAMES)], room=ROOMS[i % len(ROOMS)])
    return FOLLOW_UPS[(turn - 1) % len(FOLLOW_UPS)]


def _session_turn(warm, cold, sid, turn, i, label):
    """One turn of session ``sid`` on both nodes (alternating which goes first)."""
    prompt = _turn_prompt(turn, i)
    rec = {}
    for which in (('warm', 'cold') if (turn + i) % 2 == 0 else ('cold', 'warm')):
        rec[which] = (warm if which == 'warm' else cold).goal(prompt, session_id=sid)
    w, c = rec['warm'], rec['cold']
    return {'phase': label, 'turn': turn, 'session': i, 'warm': w, 'cold': c,
            'ratio': w['node_ttft_s'] / c['node_ttft_s'] if c['node_ttft_s'] else None,
            'client_ratio': (w['ttft_s'] / c['ttft_s'] if w['ttft_s'] and c['ttft_s']
                             else None)}


def phase_sessions(warm, cold, sids, turns):
    """
    Run round-robin turns of every session on the warm and the cold node.

    The warm node has n_parallel slots and the RAM cache; the cold node one slot and no cache:
    every follow-up evaluates its whole history.
    """
    pairs = []
    for turn in range(turns):
        for i, sid in enumerate(sids):
            pair = _session_turn(warm, cold, sid, turn, i, 'interleaved')
            if turn > 0:
                pairs.append(pair)
        if turn > 0:
            m = median(p['ratio'] for p in pairs if p['turn'] == turn)
            log(f'sessions turn {turn + 1}/{turns}: warm/cold TTFT median {m * 100:.0f} %')
    return pairs


def phase_restart(warm, cold, sids, first_turn, quick):
    """
    Measure the next turn of every session after a reconfigure and after a process restart.

    First after cleanup -> configure -> activate, then after SIGKILL and a new process on the same
    session_dir.
    """
    out = {'pairs': [], 'snapshots': {}}
    for k, how in enumerate(('reconfigure', 'process restart')):
        if how == 'reconfigure':
            for t in ('deactivate', 'cleanup', 'configure', 'activate'):
                warm.transition(t)
            warm.wait_servers()
        else:
            warm.restart(kill=True)
            warm.bring_up()
        out['snapshots'][how] = warm.wait_stats(lambda s: s.get('lifecycle_state') == 'active')
        turn = first_turn + k
        for i, sid in enumerate(sids):
            out['pairs'].append(_session_turn(warm, cold, sid, turn, i, how))
        out['snapshots'][how + ' after'] = warm.wait_stats(
            lambda s: s.get('prompt_tokens_total', 0) > 0, timeout=5.0)
        m = median(p['ratio'] for p in out['pairs'] if p['phase'] == how)
        log(f'restart ({how}): restored turn / cold TTFT median {m * 100:.0f} %')
    return out


def phase_memory(client, base_params, cache_mb, max_sessions, cycles, n_sessions_dir):
    """
    Measure the RSS of a fresh node through its lifecycle.

    RSS before/loaded/with the session cache full/after cleanup, then configure/activate/one
    session turn/deactivate/cleanup cycles.
    """
    params = dict(base_params, session_cache_mb=float(cache_mb), max_tokens=8,
                  session_dir=n_sessions_dir)
    node = BenchNode(client, params, tag='bench_mem')
    out = {'cache_mb': cache_mb, 'cycles': []}
    try:
        out['before_mb'] = node.proc.rss_mb()
        node.bring_up()
        node.chat(PROMPTS[0])
        out['loaded_mb'] = node.proc.rss_mb()
        # Fill until the cache is (nearly) full: at 90 % of session_cache_mb, or once the
        # number of sessions kept in RAM stops growing (the LRU evicts: it is full).
        filled, in_ram = 0, []
        for i in range(max_sessions):
            node.goal(_turn_prompt(0, i) + f' (session {i})', session_id=f'mem{i}')
            filled += 1
            snap = node.stats.wait(lambda s: True, timeout=5.0)
            in_ram.append(snap.get('sessions_in_ram', 0))
            if (snap.get('session_cache_mb', 0) >= 0.9 * cache_mb
                    or (len(in_ram) >= 3 and in_ram[-1] <= in_ram[-3] and in_ram[-1] > 0)):
                break
        snap = node.stats.wait(lambda s: True, timeout=5.0)
        out.update(sessions=filled, full_mb=node.proc.rss_mb(),
                   cache_used_mb=snap.get('session_cache_mb'),
                   sessions_in_ram=snap.get('sessions_in_ram'),
                   sessions_in_slots=snap.get('sessions_in_slots'))
        node.transition('deactivate')
        node.transition('cleanup')
        time.sleep(0.5)
        out['after_cleanup_mb'] = node.proc.rss_mb()
        log(f'memory: before {out["before_mb"]:.0f}, loaded {out["loaded_mb"]:.0f}, cache full '
            f'({out["cache_used_mb"]:.1f} of {cache_mb} MB, {filled} sessions) '
            f'{out["full_mb"]:.0f}, after cleanup {out["after_cleanup_mb"]:.0f} MB')
        for k in range(cycles):
            node.bring_up()
            node.goal(FOLLOW_UPS[k % len(FOLLOW_UPS)], session_id=f'mem{k % filled}')
            loaded = node.proc.rss_mb()
            node.transition('deactivate')
            node.transition('cleanup')
            out['cycles'].append({'loaded_mb': loaded, 'after_cleanup_mb': node.proc.rss_mb()})
        if cycles:
            log(f'memory: {cycles} cycles, loaded RSS {out["cycles"][0]["loaded_mb"]:.0f} -> '
                f'{out["cycles"][-1]["loaded_mb"]:.0f} MB, after cleanup '
                f'{out["cycles"][0]["after_cleanup_mb"]:.0f} -> '
                f'{out["cycles"][-1]["after_cleanup_mb"]:.0f} MB')
    finally:
        out['exit_code'] = node.close()
    return out


# ============================================================================ report
def summarize(cfg, r):
    s = {}
    targets = {}
    if 'load' in r:
        load = r['load']
        s['raw_load_s'] = median(load['raw_load_s'])
        s['configure_s'] = median(load['configure_s'])
        s['node_load_s'] = median(load['node_load_s'])
    if 'latency' in r:
        runs = r['latency']
        raw, act, srv = runs['raw'], runs['action'], runs['service']
        s['raw_ttft_s'] = median(x['ttft_s'] for x in raw)
        s['action_ttft_s'] = median(x['ttft_s'] for x in act)
        s['action_node_ttft_s'] = median(x['node_ttft_s'] for x in act)
        s['raw_tps'] = median(x['tps'] for x in raw)
        s['action_tps'] = median(x['tps'] for x in act)
        s['raw_e2e_s'] = median(x['e2e_s'] for x in raw)
        s['action_e2e_s'] = median(x['e2e_s'] for x in act)
        s['service_e2e_s'] = median(x['e2e_s'] for x in srv)
        by = {(x['round'], x['prompt']): x for x in raw}

        def ratios(a, key):
            return [x[key] / by[(x['round'], x['prompt'])][key] for x in a
                    if x.get(key) and by[(x['round'], x['prompt'])].get(key)]
        s['action_e2e_ratio'] = median(ratios(act, 'e2e_s'))
        s['service_e2e_ratio'] = median(ratios(srv, 'e2e_s'))
        s['tps_ratio'] = spread(ratios(act, 'tps'))
        s['added_ttft_s'] = spread(
            x['ttft_s'] - by[(x['round'], x['prompt'])]['ttft_s'] for x in act
            if x['ttft_s'] and by[(x['round'], x['prompt'])]['ttft_s'])
        s['tokens_raw'] = median(x['tokens'] for x in raw)
        s['tokens_node'] = median(x['tokens'] for x in act)
        same = sum(1 for x in act if x['text'] == by[(x['round'], x['prompt'])]['text'])
        s['identical_outputs'] = f'{same}/{len(act)}'
        targets['tps_ratio'] = s['tps_ratio']['median'] >= TARGET_TPS_RATIO
        if runs.get('options'):
            plain = {(x['round'], x['prompt']): x for x in act}
            pairs = [(x, plain[(x['round'], x['prompt'])]) for x in runs['options']]
            s['options_tps'] = median(x['tps'] for x, _ in pairs)
            s['options_tps_ratio'] = spread(x['tps'] / p['tps'] for x, p in pairs
                                            if x.get('tps') and p.get('tps'))
            s['options_added_ttft_s'] = spread(x['ttft_s'] - p['ttft_s'] for x, p in pairs
                                               if x['ttft_s'] and p['ttft_s'])
            same = sum(x['text'] == p['text'] for x, p in pairs)
            s['options_identical'] = f'{same}/{len(pairs)}'
        targets['added_ttft'] = s['added_ttft_s']['median'] <= TARGET_ADDED_TTFT_S
    if 'concurrency' in r:
        rows = r['concurrency']
        levels = sorted({x['clients'] for x in rows})
        s['concurrency'] = []
        for n in levels:
            node_ratio, ceil_ratio = [], []
            for x in rows:
                if x['clients'] != n:
                    continue
                one = next(y for y in rows if y['round'] == x['round'] and y['clients'] == 1)
                node_ratio.append(x['tokens_per_s'] / one['tokens_per_s']
                                  if one['tokens_per_s'] else None)
                if x['ceiling_tokens_per_s'] and one['ceiling_tokens_per_s']:
                    ceil_ratio.append(x['ceiling_tokens_per_s'] / one['ceiling_tokens_per_s'])
            mine = [x for x in rows if x['clients'] == n]
            s['concurrency'].append({
                'clients': n, 'tokens_per_s': median(x['tokens_per_s'] for x in mine),
                'ratio': spread(node_ratio), 'ceiling_tokens_per_s': median(
                    x['ceiling_tokens_per_s'] for x in mine), 'ceiling_ratio': spread(ceil_ratio),
                'median_latency_s': median(x['median_latency_s'] for x in mine),
                'errors': sum(len(x['errors']) for x in mine)})
        top = s['concurrency'][-1]
        if top['clients'] == 4:
            targets['concurrency'] = top['ratio']['median'] >= TARGET_CONCURRENCY
    if 'busy' in r:
        pairs = r['busy']
        s['busy'] = {'idle_ttft_s': median(p['idle']['node_ttft_s'] for p in pairs),
                     'busy_ttft_s': median(p['busy']['node_ttft_s'] for p in pairs),
                     'ratio': spread(p['ratio'] for p in pairs),
                     'client_ratio': spread(p['client_ratio'] for p in pairs),
                     'longs_running': median(p['busy']['longs_running'] for p in pairs)}
        targets['busy'] = s['busy']['ratio']['median'] <= TARGET_BUSY_TTFT
    groups = []
    if 'sessions' in r:
        groups.append(('interleaved', r['sessions']))
    if 'restart' in r:
        for how in ('reconfigure', 'process restart'):
            groups.append((how, [p for p in r['restart']['pairs'] if p['phase'] == how]))
    s['warm'] = {}
    for label, pairs in groups:
        same = sum(p['warm']['prompt_tokens'] == p['cold']['prompt_tokens'] for p in pairs)
        s['warm'][label] = {
            'warm_ttft_s': median(p['warm']['node_ttft_s'] for p in pairs),
            'cold_ttft_s': median(p['cold']['node_ttft_s'] for p in pairs),
            'ratio': spread(p['ratio'] for p in pairs),
            'client_ratio': spread(p['client_ratio'] for p in pairs),
            'prompt_tokens': median(p['warm']['prompt_tokens'] for p in pairs),
            'warm_cached': median(p['warm']['cached'] for p in pairs),
            'cold_prompt_tokens': median(p['cold']['prompt_tokens'] for p in pairs),
            'cold_cached': median(p['cold']['cached'] for p in pairs),
            'same_prompt': f'{same}/{len(pairs)}',
            'worst': max((p['ratio'] for p in pairs if p['ratio'] is not None), default=None)}
        targets[f'warm {label}'] = s['warm'][label]['ratio']['median'] <= TARGET_WARM_RATIO
    if 'final_memory' in r:
        m = r['final_memory']
        model_rss = m['loaded_mb'] - m['before_mb']
        s['main_memory'] = dict(m, returned=((m['loaded_mb'] - m['after_cleanup_mb']) / model_rss
                                             if model_rss > 0 else float('nan')))
        targets['rss_returned'] = s['main_memory']['returned'] >= TARGET_RSS_RETURNED
    if 'memory' in r:
        m = dict(r['memory'])
        model_rss = m['loaded_mb'] - m['before_mb']
        m['limit_mb'] = (m['loaded_mb'] + m['cache_mb']) * (1 + TARGET_CACHE_RSS)
        m['returned'] = ((m['loaded_mb'] - m['after_cleanup_mb']) / model_rss
                         if model_rss > 0 else float('nan'))
        cyc = m['cycles']
        if cyc:
            # loaded RSS of the last cycle vs the first (the target); RSS left after cleanup
            # that grew over the cycles, as a share of the model's RSS (shown)
            m['drift_loaded'] = (cyc[-1]['loaded_mb'] - cyc[0]['loaded_mb']) / cyc[0]['loaded_mb']
            m['growth_cleanup_mb'] = cyc[-1]['after_cleanup_mb'] - cyc[0]['after_cleanup_mb']
            m['growth_cleanup'] = (m['growth_cleanup_mb'] / model_rss if model_rss > 0
                                   else float('nan'))
            targets['drift'] = abs(m['drift_loaded']) < TARGET_DRIFT
        s['memory'] = m
        targets['cache_rss'] = m['full_mb'] <= m['limit_mb']
        targets['rss_returned_cache_full'] = m['returned'] >= TARGET_RSS_RETURNED
    s['targets'] = targets
    return s


def _ratio(sp, pct=False):
    if not sp or not sp['n']:
        return '-'
    f = (lambda v: f'{v * 100:.0f} %') if pct else (lambda v: f'{v:.2f}x')
    return f'{f(sp["median"])} [{f(sp["min"])}-{f(sp["max"])}, n={sp["n"]}]'


def render(cfg, s):
    def ms(v):
        return f'{v * 1e3:.0f} ms' if v == v else '-'

    def ok(key):
        return '' if key not in s['targets'] else ('met' if s['targets'][key] else '**MISSED**')
    lines = [
        f'## br_chat_lifecycle benchmark ({cfg["mode"]})',
        '',
        f'Model `{os.path.basename(cfg["model"])}`, {cfg["cpus"]} CPUs, n_threads '
        f'{cfg["n_threads"]}, n_ctx {cfg["n_ctx"]}, n_batch {cfg["n_batch"]}, n_parallel '
        f'{cfg["n_parallel"]}, greedy, '
        f'max_tokens {cfg["max_tokens"]}, seed {cfg["seed"]}, feedback_min_interval_s '
        f'{cfg["feedback_interval_s"]}; {cfg["n_prompts"]} prompts x {cfg["rounds"]} rounds. '
        f'Medians; [min-max, n] of per-pair ratios. Load average at start '
        f'{cfg["loadavg_start"]}, at end {cfg["loadavg_end"]}.',
        '',
    ]
    if 'raw_tps' in s or 'raw_load_s' in s:
        lines += [TABLE_HEADER, '|---|---|---|---|---|']
        if 'raw_load_s' in s:
            lines.append(
                f'| Model load | {s["raw_load_s"]:.3f} s (`Llama()`) | configure transition '
                f'{s["configure_s"]:.3f} s (node load {s["node_load_s"]:.3f} s) | same node | |')
        if 'raw_tps' in s:
            lines += [
                f'| Time to first token | {ms(s["raw_ttft_s"])} | - | {ms(s["action_ttft_s"])} '
                f'at first feedback (node: {ms(s["action_node_ttft_s"])}) | |',
                f'| Added TTFT vs raw | - | - | {ms(s["added_ttft_s"]["median"])} '
                f'[{ms(s["added_ttft_s"]["min"])} to {ms(s["added_ttft_s"]["max"])}] | '
                f'<= 20 ms: {ok("added_ttft")} |',
                f'| Generation tokens/s | {s["raw_tps"]:.1f} | - | {s["action_tps"]:.1f} '
                f'({_ratio(s["tps_ratio"], pct=True)} of raw) | >= 97 %: {ok("tps_ratio")} |',
                f'| End-to-end latency | {s["raw_e2e_s"]:.2f} s | {s["service_e2e_s"]:.2f} s | '
                f'{s["action_e2e_s"]:.2f} s | |',
                f'| Overhead ratio to raw (e2e) | 1.00 | {s["service_e2e_ratio"]:.3f} | '
                f'{s["action_e2e_ratio"]:.3f} | |',
                f'| Tokens per reply (median) | {s["tokens_raw"]:.0f} | - | '
                f'{s["tokens_node"]:.0f} (identical text: {s["identical_outputs"]}) | |']
            if 'options_tps' in s:
                ttft = s['options_added_ttft_s']
                lines.append(
                    f'| Action with every option per request | - | - | {s["options_tps"]:.1f} '
                    f'tok/s ({_ratio(s["options_tps_ratio"], pct=True)} of the action '
                    f'without), TTFT {ms(ttft["median"])} [{ms(ttft["min"])} to '
                    f'{ms(ttft["max"])}], same text {s["options_identical"]} | within noise |')
        if 'main_memory' in s:
            m = s['main_memory']
            lines.append(
                f'| Node RSS: before configure / loaded / after cleanup | - | '
                f'{m["before_mb"]:.0f} / {m["loaded_mb"]:.0f} / {m["after_cleanup_mb"]:.0f} MB '
                f'| {m["returned"] * 100:.0f} % of the model\'s RSS returned | >= 90 %: '
                f'{ok("rss_returned")} |')
        lines.append('')
    if 'concurrency' in s:
        lines += ['| Concurrent clients (service) | Aggregate tokens/s | vs 1 client | '
                  'Raw `llama_decode`, N sequences | vs 1 sequence | Median latency | Target |',
                  '|---|---|---|---|---|---|---|']
        for row in s['concurrency']:
            err = f' ({row["errors"]} errors)' if row['errors'] else ''
            target = f'>= 1.8x: {ok("concurrency")}' if row['clients'] == 4 else ''
            lines.append(
                f'| {row["clients"]}{err} | {row["tokens_per_s"]:.1f} | {_ratio(row["ratio"])} | '
                f'{row["ceiling_tokens_per_s"]:.1f} | {_ratio(row["ceiling_ratio"])} | '
                f'{row["median_latency_s"]:.2f} s | {target} |')
        lines.append('')
    if 'busy' in s:
        b = s['busy']
        lines += ['| Short request (node TTFT) | Idle | Beside 3 long generations | Ratio | '
                  'Target |', '|---|---|---|---|---|',
                  f'| {SHORT_PROMPTS[0]!r}-like | {ms(b["idle_ttft_s"])} | {ms(b["busy_ttft_s"])} '
                  f'({b["longs_running"]:.0f}/3 still running at its first token) | '
                  f'{_ratio(b["ratio"])} (client side {_ratio(b["client_ratio"])}) | <= 2x: '
                  f'{ok("busy")} |', '']
    if s.get('warm'):
        lines += ['| Session turn (node TTFT) | Warm node | Cold node | Warm / cold | Prompt '
                  'tokens warm (cached) / cold (cached) | Target |', '|---|---|---|---|---|---|']
        for label, w in s['warm'].items():
            lines.append(
                f'| {label} | {ms(w["warm_ttft_s"])} | {ms(w["cold_ttft_s"])} | '
                f'{_ratio(w["ratio"], pct=True)} | {w["prompt_tokens"]:.0f} '
                f'({w["warm_cached"]:.0f}) / {w["cold_prompt_tokens"]:.0f} '
                f'({w["cold_cached"]:.0f}); same prompt in {w["same_prompt"]} | <= 25 %: '
                f'{ok("warm " + label)} |')
        lines.append('')
    if 'memory' in s:
        m = s['memory']
        lines += ['| Memory (separate node) | Value | Target |', '|---|---|---|',
                  f'| RSS before configure / loaded | {m["before_mb"]:.0f} / {m["loaded_mb"]:.0f} '
                  'MB | |',
                  f'| RSS with the session cache full ({m["cache_used_mb"]:.1f} of '
                  f'{m["cache_mb"]} MB, {m["sessions"]} sessions) | {m["full_mb"]:.0f} MB | <= '
                  f'{m["limit_mb"]:.0f} MB: {ok("cache_rss")} |',
                  f'| RSS after cleanup | {m["after_cleanup_mb"]:.0f} MB, '
                  f'{m["returned"] * 100:.0f} % of the model\'s RSS returned | >= 90 %: '
                  f'{ok("rss_returned_cache_full")} |']
        if m['cycles']:
            c = m['cycles']
            lines.append(
                f'| {len(c)} configure/turn/cleanup cycles: loaded RSS | {c[0]["loaded_mb"]:.0f}'
                f' -> {c[-1]["loaded_mb"]:.0f} MB ({m["drift_loaded"] * 100:+.1f} %); after '
                f'cleanup {c[0]["after_cleanup_mb"]:.0f} -> {c[-1]["after_cleanup_mb"]:.0f} MB '
                f'({m["growth_cleanup"] * 100:+.1f} % of the model\'s RSS) | loaded RSS < 5 %: '
                f'{ok("drift")} |')
        lines.append('')
    return '\n'.join(lines)


# ============================================================================ main
def resolve_model(value):
    """(GGUF path, chat template: '' = the model's own)."""
    if value == 'gemma':
        from get_gemma import GEMMA3_TEMPLATE, gemma_path
        return gemma_path(), GEMMA3_TEMPLATE
    return value, ''


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default=settings.default_model_path(),
                    help="GGUF model, or 'gemma' (assembled by bench/get_gemma.py); default: "
                         '$BR_CHAT_DEFAULT_MODEL / SmolLM2')
    ap.add_argument('--max-tokens', type=int, default=None, help='default 128 (quick: 32)')
    ap.add_argument('--rounds', type=int, default=None, help='default 3 (quick: 1)')
    ap.add_argument('--prompts', type=int, default=None, help='default 5 (quick: 2)')
    ap.add_argument('--n-ctx', type=int, default=2048)
    ap.add_argument('--n-parallel', type=int, default=4)
    ap.add_argument('--n-batch', type=int, default=settings.BY_NAME['n_batch'].default,
                    help="llama.cpp batch of the node and the raw path (default: the node's)")
    ap.add_argument('--n-threads', type=int, default=0,
                    help="0 = the node's default (half the cores, at least 1; also "
                         "llama-cpp-python's own default)")
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--feedback-interval', type=float, default=0.0,
                    help="the node's feedback_min_interval_s (0: one feedback per piece)")
    ap.add_argument('--phases', default=','.join(PHASES),
                    help=f'comma-separated subset of {",".join(PHASES)}')
    ap.add_argument('--quick', action='store_true', help='reduced run (< 1 minute)')
    ap.add_argument('--out', default=str(REPO / 'bench' / 'results'))
    args = ap.parse_args(argv)
    try:
        model, chat_template = resolve_model(args.model)
    except (RuntimeError, ValueError, OSError) as e:
        ap.error(str(e))
    if not model or not os.path.isfile(model):
        ap.error(f'model not found: {model!r} (source env.sh or pass --model)')
    phases = [p.strip() for p in args.phases.split(',') if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        ap.error(f'unknown phase(s) {unknown}; known: {", ".join(PHASES)}')
    quick = args.quick
    cfg = {
        'mode': 'quick' if quick else 'full', 'model': model, 'n_ctx': args.n_ctx,
        'n_batch': args.n_batch,
        'n_parallel': args.n_parallel, 'phases': phases, 'chat_template': chat_template,
        'n_threads': args.n_threads or max(1, (os.cpu_count() or 1) // 2), 'cpus': os.cpu_count(),
        'seed': args.seed, 'feedback_interval_s': args.feedback_interval,
        'max_tokens': args.max_tokens or (32 if quick else 128),
        'rounds': args.rounds or (1 if quick else 3),
        'n_prompts': args.prompts or (2 if quick else 5),
        'load_reps': 1 if quick else 3,
        'concurrency_levels': [1, 2] if quick else [1, 2, 4],
        'concurrency_rounds': args.rounds or (1 if quick else 3),
        'ceiling_steps': 16 if quick else 64,
        'busy_rounds': args.rounds or (1 if quick else 4),
        'sessions': 2 if quick else 8, 'session_turns': 2 if quick else 3,
        'memory_cache_mb': 8 if quick else 32, 'memory_max_sessions': 4 if quick else 24,
        'memory_n_parallel': 1 if quick else args.n_parallel,
        'memory_cycles': 2 if quick else 20,
        'loadavg_start': loadavg(),
        'python': platform.python_version(), 'llama_cpp_python': llama_cpp.__version__,
    }
    base = {'model_path': model, 'n_ctx': cfg['n_ctx'], 'n_batch': cfg['n_batch'],
            'n_threads': cfg['n_threads'],
            'max_tokens': cfg['max_tokens'], 'temperature': 0.0, 'top_k': 40, 'top_p': 0.9,
            'min_p': 0.05, 'repeat_penalty': 1.0, 'seed': cfg['seed'], 'max_queue': 16,
            'feedback_min_interval_s': float(args.feedback_interval)}
    if chat_template:
        base['chat_template'] = chat_template
    t_start = time.monotonic()
    session_dir = tempfile.mkdtemp(prefix='bench_sessions_')
    memory_dir = tempfile.mkdtemp(prefix='bench_memory_')
    client = ChatClient(name=f'bench_client_{uuid.uuid4().hex[:6]}', wait_timeout=30.0,
                        timeout=900.0)
    raw = Raw(model, cfg['n_ctx'], cfg['n_threads'], cfg['n_batch'], chat_template)
    results = {}
    node = cold = ceiling = None
    rc = None
    try:
        node = BenchNode(client, dict(base, n_parallel=cfg['n_parallel'],
                                      session_dir=session_dir))
        rss_before = node.proc.rss_mb()
        if 'load' in phases:
            results['load'] = phase_load(raw, node, cfg['load_reps'])
        else:
            node.bring_up()
            node.chat(PROMPTS[0])
        if 'latency' in phases:
            if raw.llm is None:
                raw.load()
            options = {k: base[k] for k in ('max_tokens', 'temperature', 'top_k', 'top_p',
                                            'min_p', 'repeat_penalty', 'seed')}
            results['latency'] = phase_latency(raw, node, PROMPTS[:cfg['n_prompts']],
                                               cfg['rounds'], cfg['max_tokens'], cfg['seed'],
                                               options)
        raw.close()
        if 'concurrency' in phases:
            ceiling = DecodeCeiling(model, cfg['n_threads'], max(cfg['concurrency_levels']),
                                    steps=cfg['ceiling_steps'])
            results['concurrency'] = phase_concurrency(node, ceiling, cfg['concurrency_levels'],
                                                       cfg['concurrency_rounds'])
            ceiling.close()
            ceiling = None
        if 'busy' in phases:
            results['busy'] = phase_busy(node, cfg['busy_rounds'])
        sids = [f'bench-{i}-{uuid.uuid4().hex[:6]}' for i in range(cfg['sessions'])]
        if 'sessions' in phases or 'restart' in phases:
            cold = BenchNode(client, dict(base, n_parallel=1, session_cache_mb=0.0),
                             tag='bench_cold')
            cold.bring_up()
            turns = cfg['session_turns']
            pairs = phase_sessions(node, cold, sids, turns)
            if 'sessions' in phases:
                results['sessions'] = pairs
            if 'restart' in phases:
                results['restart'] = phase_restart(node, cold, sids, turns, quick)
            results['cold_exit_code'] = cold.close()
            cold = None
        rss_loaded = node.proc.rss_mb()
        node.transition('deactivate')
        node.transition('cleanup')
        time.sleep(0.5)
        results['final_memory'] = {'before_mb': rss_before, 'loaded_mb': rss_loaded,
                                   'after_cleanup_mb': node.proc.rss_mb(),
                                   'cycles': results.get('load', {}).get('cycles', [])}
        rc = node.close()
        node = None
        if 'memory' in phases:
            results['memory'] = phase_memory(client, dict(base,
                                                          n_parallel=cfg['memory_n_parallel']),
                                             cfg['memory_cache_mb'],
                                             cfg['memory_max_sessions'], cfg['memory_cycles'],
                                             memory_dir)
    finally:
        raw.close()
        if ceiling is not None:
            ceiling.close()
        for n in (cold, node):
            if n is not None:
                code = n.close()
                rc = code if rc is None else rc
        client.close()
        shutil.rmtree(session_dir, ignore_errors=True)
        shutil.rmtree(memory_dir, ignore_errors=True)
    cfg['loadavg_end'] = loadavg()
    cfg['duration_s'] = time.monotonic() - t_start
    summary = summarize(cfg, results)
    print(render(cfg, summary))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f'bench_{time.strftime("%Y%m%d_%H%M%S")}_{cfg["mode"]}.json')
    with open(path, 'w') as f:
        json.dump({'config': cfg, 'summary': summary, 'results': results, 'node_exit_code': rc}, f,
                  indent=1, default=str)
    log(f'done in {cfg["duration_s"]:.0f} s; JSON: {path}; node exit code {rc}')
    return 0 if rc == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
