#!/usr/bin/env python3
"""Benchmark: raw llama-cpp-python vs the chat node's service and action, in ONE run.

Same machine, same model, same prompts, greedy decoding (temperature 0, repeat_penalty 1.0,
fixed seed, fixed max_tokens) on three paths:

  raw      llama_cpp.Llama(...).create_chat_completion(messages, stream=True) in this process:
           the most direct path a llama-cpp-python user takes (same n_ctx / n_batch /
           n_threads as the node);
  service  chat_service (LLMChat) of the node, running as a subprocess; client in this process;
  action   chat_action (LLMChatAction, streamed feedback), same node, same client.

The paths are interleaved round by round (raw, action, service for the same prompt list) so
that a change in background load hits all of them alike; every figure is a median.

Usage (from the repo root, after `source env.sh`):
    python bench/bench_chat.py              # full run (several minutes on 2 cores)
    python bench/bench_chat.py --quick      # reduced smoke run (< 1 minute)
    python bench/bench_chat.py --model other.gguf --max-tokens 64 --rounds 5
Prints a markdown report; writes the raw numbers to bench/results/bench_<time>.json.
See bench/README.md for what every number means.
"""
import argparse
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / 'test')]
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ['PYTHONPATH'] = os.pathsep.join(
    [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])

import llama_cpp  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from unique_identifier_msgs.msg import UUID  # noqa: E402
from jobot_ai_msgs.action import LLMChatAction  # noqa: E402
from jobot_ai_msgs.srv import LLMChat  # noqa: E402

from br_chat_lifecycle import settings  # noqa: E402
from chat_harness import ChatNodeProcess, GraphClient  # noqa: E402

TABLE_HEADER = '| Metric | raw llama-cpp-python | chat_service | chat_action | Target |'

PROMPTS = [
    'Explain how a robot vacuum cleaner finds its way around a house.',
    'Write a short story about a lighthouse keeper and a lost ship.',
    'What are the main differences between a car engine and an electric motor?',
    'Describe a day in the life of a honey bee.',
    'Give me step by step instructions to plant a tree.',
]
SESSION_TURNS = [
    'Tell me about the planet Mars.',
    'How long would it take to travel there?',
    'What would astronauts eat on the way?',
    'And how would they come back?',
]
EVICT_PROMPT = 'List five colours of the rainbow.'

TARGET_TPS_RATIO = 0.97     # action tokens/s >= 97 % of raw
TARGET_ADDED_TTFT_S = 0.020  # action TTFT - raw TTFT <= 20 ms
TARGET_RSS_RETURNED = 0.90   # cleanup returns >= 90 % of the model's RSS


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float('nan')


def log(msg):
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


# ============================================================================ raw
class Raw:
    """llama-cpp-python used directly, with the node's model settings."""

    def __init__(self, model, n_ctx, n_threads, n_batch=512):
        self.kwargs = dict(model_path=model, n_ctx=n_ctx, n_batch=n_batch,
                           n_ubatch=min(n_batch, 512), n_threads=n_threads,
                           n_threads_batch=n_threads, verbose=False)
        self.llm = None

    def load(self) -> float:
        self.close()
        t0 = time.monotonic()
        self.llm = llama_cpp.Llama(**self.kwargs)
        return time.monotonic() - t0

    def close(self):
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    def chat(self, prompt, max_tokens, seed) -> dict:
        t0 = time.monotonic()
        first, parts, finish = None, [], None
        for chunk in self.llm.create_chat_completion(
                messages=[{'role': 'user', 'content': prompt}], stream=True, temperature=0.0,
                top_k=40, top_p=0.9, min_p=0.05, repeat_penalty=1.0, max_tokens=max_tokens,
                seed=seed):
            choice = chunk['choices'][0]
            piece = choice['delta'].get('content')
            if piece:
                if first is None:
                    first = time.monotonic()
                parts.append(piece)
            finish = choice.get('finish_reason') or finish
        end = time.monotonic()
        text = ''.join(parts)
        # streamed chunks carry no usage: count the reply's tokens by tokenizing it (the
        # same count as the node's for identical greedy text, checked in the report)
        tokens = len(self.llm.tokenize(text.encode('utf-8'), add_bos=False, special=False))
        return dict(ttft_s=first - t0 if first else None, e2e_s=end - t0, tokens=tokens,
                    tps=_tps(tokens, first, end), text=text, finish=finish)


def _tps(tokens, first, end):
    return tokens / (end - first) if first is not None and end > first and tokens > 1 else None


# ============================================================================ node
class Node:
    """The chat node as a subprocess and a client for it.

    The action client is what a user writes: rclpy's ActionClient with a feedback_callback
    (here: it timestamps the first and last feedback of each goal). One feedback subscription,
    as in any real client - the client's per-message work is part of what is measured."""

    def __init__(self, graph, model, n_ctx, n_threads, max_tokens, seed,
                 feedback_interval=0.0):
        uid = uuid.uuid4().hex[:8]
        self.graph = graph
        self.service = f'bench_chat_{uid}'
        self.action = f'bench_action_{uid}'
        self.proc = ChatNodeProcess({
            'model_path': model, 'n_ctx': n_ctx, 'n_threads': n_threads,
            'max_tokens': max_tokens, 'temperature': 0.0, 'top_k': 40, 'top_p': 0.9,
            'min_p': 0.05, 'repeat_penalty': 1.0, 'seed': seed, 'max_queue': 16,
            'chat_service_name': self.service, 'chat_action_name': self.action,
            'feedback_min_interval_s': float(feedback_interval),
        }, name=f'bench_node_{uid}')
        self.name = self.proc.name
        node = graph.node
        self._lock = threading.Lock()
        self._feedback = {}   # goal uuid bytes -> [t_first, t_last, n]
        self.stats = None
        self._stats_sub = node.create_subscription(String, f'/{self.name}/stats',
                                                   self._on_stats, 10)
        self.srv = node.create_client(LLMChat, self.service)
        self.act = ActionClient(node, LLMChatAction, self.action,
                                feedback_sub_qos_profile=QoSProfile(
                                    depth=1000, reliability=ReliabilityPolicy.RELIABLE))

    def _on_feedback(self, msg):
        now = time.monotonic()
        key = bytes(msg.goal_id.uuid)
        with self._lock:
            rec = self._feedback.setdefault(key, [now, now, 0])
            rec[1] = now
            rec[2] += 1

    def _on_stats(self, msg):
        self.stats = json.loads(msg.data)

    def transition(self, name) -> float:
        t0 = time.monotonic()
        ok = self.graph.change_state(self.name, name, timeout=300)
        took = time.monotonic() - t0
        if not ok:
            raise RuntimeError(f'{name} failed:\n{self.proc.log_text()[-2000:]}')
        return took

    def wait_servers(self):
        assert self.srv.wait_for_service(timeout_sec=30), 'chat service not available'
        assert self.act.wait_for_server(timeout_sec=30), 'chat action not available'

    @staticmethod
    def _wait(future, timeout=600.0):
        """Wait for an rclpy future; returns (result, monotonic time it completed)."""
        done = threading.Event()
        stamp = []
        future.add_done_callback(lambda f: (stamp.append(time.monotonic()), done.set()))
        if not done.wait(timeout):
            raise TimeoutError('no reply')
        return future.result(), stamp[0]

    def chat(self, prompt, **fields) -> dict:
        t0 = time.monotonic()
        res, end = self._wait(self.srv.call_async(LLMChat.Request(prompt=prompt, **fields)))
        if not res.success:
            raise RuntimeError(f'service failed: {res.error}')
        return dict(e2e_s=end - t0, tokens=res.completion_tokens, text=res.response,
                    prompt_tokens=res.prompt_tokens, node_latency_s=res.latency_s,
                    finish=res.finish_reason)

    def goal(self, prompt, **fields) -> dict:
        gid = UUID(uuid=list(uuid.uuid4().bytes))
        key = bytes(gid.uuid)
        t0 = time.monotonic()
        handle, _ = self._wait(self.act.send_goal_async(
            LLMChatAction.Goal(prompt=prompt, **fields), feedback_callback=self._on_feedback,
            goal_uuid=gid))
        if not handle.accepted:
            raise RuntimeError('goal rejected')
        res, end = self._wait(handle.get_result_async())
        result = res.result
        if not result.success:
            raise RuntimeError(f'goal failed: {result.error}')
        with self._lock:
            rec = self._feedback.pop(key, None)
        first = rec[0] if rec else None
        return dict(ttft_s=first - t0 if first else None, e2e_s=end - t0,
                    tokens=result.completion_tokens,
                    tps=_tps(result.completion_tokens, first, end),
                    text=result.response, prompt_tokens=result.prompt_tokens,
                    node_ttft_s=result.time_to_first_token_s, node_latency_s=result.latency_s,
                    finish=result.finish_reason)

    def wait_stats(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self.stats
            if snap and predicate(snap):
                return snap
            time.sleep(0.05)
        return self.stats or {}

    def close(self):
        node = self.graph.node
        node.destroy_subscription(self._stats_sub)
        node.destroy_client(self.srv)
        self.act.destroy()
        return self.proc.stop()


# ============================================================================ phases
def phase_load(raw, node, reps, max_tokens):
    """Model load: raw Llama() vs the configure transition; memory of one cycle."""
    out = dict(raw_load_s=[], configure_s=[], node_load_s=[], cycles=[])
    for i in range(reps):
        out['raw_load_s'].append(raw.load())
        rss0 = node.proc.rss_mb()
        out['configure_s'].append(node.transition('configure'))
        snap = node.wait_stats(lambda s: s.get('lifecycle_state') == 'inactive')
        out['node_load_s'].append(snap.get('model_load_s'))
        node.transition('activate')
        node.wait_servers()
        node.chat(PROMPTS[0])
        rss1 = node.proc.rss_mb()
        if i < reps - 1:  # the last cycle stays up for the next phases
            node.transition('deactivate')
            node.transition('cleanup')
            rss2 = node.proc.rss_mb()
            out['cycles'].append(dict(before_mb=rss0, loaded_mb=rss1, after_cleanup_mb=rss2))
        log(f'load {i + 1}/{reps}: raw {out["raw_load_s"][-1]:.3f} s, configure '
            f'{out["configure_s"][-1]:.3f} s')
    return out


def phase_latency(raw, node, prompts, rounds, max_tokens, seed):
    """Per prompt and path: TTFT, tokens/s, end-to-end latency (interleaved rounds)."""
    runs = dict(raw=[], action=[], service=[])
    for r in range(rounds):
        for path in ('raw', 'action', 'service'):
            for i, prompt in enumerate(prompts):
                if path == 'raw':
                    res = raw.chat(prompt, max_tokens, seed)
                elif path == 'action':
                    res = node.goal(prompt)
                else:
                    res = node.chat(prompt)
                res.update(round=r, prompt=i)
                runs[path].append(res)
            m = runs[path][-len(prompts):]
            log(f'round {r + 1}/{rounds} {path:7s}: median e2e {median(x["e2e_s"] for x in m):.2f}'
                f' s, tok/s {median(x.get("tps") for x in m):.1f}')
    return runs


def phase_throughput(node, levels, per_client):
    out = []
    for clients in levels:
        results, errors = [], []
        lock = threading.Lock()

        def worker(k):
            for j in range(per_client):
                try:
                    res = node.chat(PROMPTS[(k + j) % len(PROMPTS)])
                    with lock:
                        results.append(res)
                except Exception as e:  # noqa: BLE001 - reported
                    with lock:
                        errors.append(str(e))

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        tokens = sum(r['tokens'] for r in results)
        row = dict(clients=clients, requests=len(results), errors=len(errors), wall_s=wall,
                   req_per_s=len(results) / wall, tokens_per_s=tokens / wall,
                   median_latency_s=median(r['e2e_s'] for r in results))
        out.append(row)
        log(f'throughput {clients} clients: {row["req_per_s"]:.2f} req/s, '
            f'{row["tokens_per_s"]:.1f} tok/s, {len(errors)} errors')
    return out


def phase_session(node, turns, reps):
    """TTFT of the last turn of a session: right after the previous turn (warm: llama.cpp
    reuses the KV cache of the history) vs the same session continued after an unrelated
    request evicted the cache (cold: the whole history is evaluated again)."""
    out = dict(warm=[], cold=[])
    for r in range(reps):
        for kind in ('warm', 'cold'):
            sid = f'{kind}-{r}-{uuid.uuid4().hex[:6]}'
            for k, prompt in enumerate(turns[:-1]):
                node.goal(prompt, session_id=sid, reset_session=(k == 0))
            if kind == 'cold':
                node.chat(EVICT_PROMPT)  # stateless: the KV cache now holds another prompt
            res = node.goal(turns[-1], session_id=sid)
            out[kind].append(dict(node_ttft_s=res['node_ttft_s'], ttft_s=res['ttft_s'],
                                  prompt_tokens=res['prompt_tokens'], text=res['text']))
        log(f'session {r + 1}/{reps}: warm {out["warm"][-1]["node_ttft_s"] * 1e3:.0f} ms, '
            f'cold {out["cold"][-1]["node_ttft_s"] * 1e3:.0f} ms')
    return out


# ============================================================================ report
def summarize(cfg, load, runs, thr, sess, memory):
    raw, act, srv = runs['raw'], runs['action'], runs['service']
    s = {}
    s['raw_load_s'] = median(load['raw_load_s'])
    s['configure_s'] = median(load['configure_s'])
    s['node_load_s'] = median(load['node_load_s'])
    s['raw_ttft_s'] = median(x['ttft_s'] for x in raw)
    s['action_ttft_s'] = median(x['ttft_s'] for x in act)
    s['action_node_ttft_s'] = median(x['node_ttft_s'] for x in act)
    s['raw_tps'] = median(x['tps'] for x in raw)
    s['action_tps'] = median(x['tps'] for x in act)
    s['raw_e2e_s'] = median(x['e2e_s'] for x in raw)
    s['action_e2e_s'] = median(x['e2e_s'] for x in act)
    s['service_e2e_s'] = median(x['e2e_s'] for x in srv)
    s['service_tps_e2e'] = median(x['tokens'] / x['e2e_s'] for x in srv)
    s['raw_tps_e2e'] = median(x['tokens'] / x['e2e_s'] for x in raw)
    s['action_tps_e2e'] = median(x['tokens'] / x['e2e_s'] for x in act)
    # per (round, prompt) ratios, then the median: robust to drifting background load
    def ratios(a, key):
        by = {(x['round'], x['prompt']): x for x in raw}
        return [x[key] / by[(x['round'], x['prompt'])][key] for x in a
                if x.get(key) and by[(x['round'], x['prompt'])].get(key)]
    s['action_e2e_ratio'] = median(ratios(act, 'e2e_s'))
    s['service_e2e_ratio'] = median(ratios(srv, 'e2e_s'))
    s['tps_ratio'] = median(ratios(act, 'tps'))
    s['added_ttft_s'] = median(
        x['ttft_s'] - r['ttft_s'] for x, r in zip(act, raw) if x['ttft_s'] and r['ttft_s'])
    s['tokens_raw'] = median(x['tokens'] for x in raw)
    s['tokens_node'] = median(x['tokens'] for x in act)
    same = sum(1 for x, r in zip(act, raw) if x['text'] == r['text'])
    s['identical_outputs'] = f'{same}/{len(act)}'
    s['rss_before_mb'] = memory['before_mb']
    s['rss_loaded_mb'] = memory['loaded_mb']
    s['rss_after_cleanup_mb'] = memory['after_cleanup_mb']
    model_rss = memory['loaded_mb'] - memory['before_mb']
    s['rss_returned'] = ((memory['loaded_mb'] - memory['after_cleanup_mb']) / model_rss
                         if model_rss > 0 else float('nan'))
    s['session_warm_ttft_s'] = median(x['node_ttft_s'] for x in sess['warm'])
    s['session_cold_ttft_s'] = median(x['node_ttft_s'] for x in sess['cold'])
    s['session_warm_client_ttft_s'] = median(x['ttft_s'] for x in sess['warm'])
    s['session_cold_client_ttft_s'] = median(x['ttft_s'] for x in sess['cold'])
    s['session_prompt_tokens'] = median(x['prompt_tokens'] for x in sess['warm'] + sess['cold'])
    pairs = list(zip(sess['warm'], sess['cold']))
    s['session_same_prompt'] = (
        f'{sum(w["prompt_tokens"] == c["prompt_tokens"] for w, c in pairs)}/{len(pairs)}')
    s['targets'] = {
        'tps_ratio': s['tps_ratio'] >= TARGET_TPS_RATIO,
        'added_ttft': s['added_ttft_s'] <= TARGET_ADDED_TTFT_S,
        'rss_returned': s['rss_returned'] >= TARGET_RSS_RETURNED,
    }
    return s


def render(cfg, s, thr):
    ms = lambda v: f'{v * 1e3:.0f} ms'  # noqa: E731
    ok = lambda b: 'met' if b else '**MISSED**'  # noqa: E731
    t = s['targets']
    lines = [
        f'## br_chat_lifecycle benchmark ({cfg["mode"]})',
        '',
        f'Model `{os.path.basename(cfg["model"])}`, {cfg["cpus"]} CPUs, n_threads '
        f'{cfg["n_threads"]}, n_ctx {cfg["n_ctx"]}, greedy, max_tokens {cfg["max_tokens"]}, '
        f'seed {cfg["seed"]}, feedback_min_interval_s {cfg["feedback_interval_s"]}; {cfg["n_prompts"]} prompts x {cfg["rounds"]} rounds, medians. '
        f'Raw path: `Llama.create_chat_completion(stream=True)`. Load avg at start '
        f'{cfg["loadavg_start"]}, at end {cfg["loadavg_end"]}.',
        '',
        TABLE_HEADER,
        '|---|---|---|---|---|',
        f'| Model load | {s["raw_load_s"]:.3f} s (`Llama()`) | configure transition '
        f'{s["configure_s"]:.3f} s (node load {s["node_load_s"]:.3f} s) | same node | |',
        f'| Time to first token | {ms(s["raw_ttft_s"])} | - | {ms(s["action_ttft_s"])} at first '
        f'feedback (node: {ms(s["action_node_ttft_s"])}) | |',
        f'| Added TTFT vs raw | - | - | {ms(s["added_ttft_s"])} | <= 20 ms: '
        f'{ok(t["added_ttft"])} |',
        f'| Generation tokens/s | {s["raw_tps"]:.1f} | - | {s["action_tps"]:.1f} '
        f'({s["tps_ratio"] * 100:.1f} % of raw) | >= 97 %: {ok(t["tps_ratio"])} |',
        f'| End-to-end latency | {s["raw_e2e_s"]:.2f} s | {s["service_e2e_s"]:.2f} s | '
        f'{s["action_e2e_s"]:.2f} s | |',
        f'| Overhead ratio to raw (e2e) | 1.00 | {s["service_e2e_ratio"]:.3f} | '
        f'{s["action_e2e_ratio"]:.3f} | |',
        f'| Tokens per reply (median) | {s["tokens_raw"]:.0f} | - | {s["tokens_node"]:.0f} '
        f'(identical text: {s["identical_outputs"]}) | |',
        f'| Node RSS: before configure / loaded / after cleanup | - | '
        f'{s["rss_before_mb"]:.0f} / {s["rss_loaded_mb"]:.0f} / '
        f'{s["rss_after_cleanup_mb"]:.0f} MB | {s["rss_returned"] * 100:.0f} % of the model\'s '
        f'RSS returned | >= 90 %: {ok(t["rss_returned"])} |',
        '',
        '| Concurrent clients (service) | Requests | req/s | Aggregate tokens/s | '
        'Median latency |',
        '|---|---|---|---|---|',
    ]
    for row in thr:
        err = f' ({row["errors"]} errors)' if row['errors'] else ''
        lines.append(f'| {row["clients"]} | {row["requests"]}{err} | {row["req_per_s"]:.2f} | '
                     f'{row["tokens_per_s"]:.1f} | {row["median_latency_s"]:.2f} s |')
    lines += [
        '',
        '| Session follow-up (last turn, node time_to_first_token_s) | Warm (KV prefix '
        'reused) | Cold (cache evicted) | Prompt tokens |',
        '|---|---|---|---|',
        f'| turn {cfg["session_turns"]} of a session | {ms(s["session_warm_ttft_s"])} '
        f'(client {ms(s["session_warm_client_ttft_s"])}) | {ms(s["session_cold_ttft_s"])} '
        f'(client {ms(s["session_cold_client_ttft_s"])}) | {s["session_prompt_tokens"]:.0f} '
        f'(warm = cold in {s["session_same_prompt"]} pairs) |',
    ]
    return '\n'.join(lines)


# ============================================================================ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default=settings.default_model_path(),
                    help='GGUF model (default: $BR_CHAT_DEFAULT_MODEL / SmolLM2)')
    ap.add_argument('--max-tokens', type=int, default=None, help='default 128 (quick: 32)')
    ap.add_argument('--rounds', type=int, default=None, help='default 3 (quick: 1)')
    ap.add_argument('--prompts', type=int, default=None, help='default 5 (quick: 2)')
    ap.add_argument('--n-ctx', type=int, default=2048)
    ap.add_argument('--n-threads', type=int, default=0,
                    help="0 = the node's default (half the cores, at least 1; also "
                         "llama-cpp-python's own default)")
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--feedback-interval', type=float, default=0.0,
                    help="the node's feedback_min_interval_s (0: one feedback per piece)")
    ap.add_argument('--quick', action='store_true', help='reduced run (< 1 minute)')
    ap.add_argument('--out', default=str(REPO / 'bench' / 'results'))
    args = ap.parse_args(argv)
    if not args.model or not os.path.isfile(args.model):
        ap.error(f'model not found: {args.model!r} (source env.sh or pass --model)')
    quick = args.quick
    cfg = dict(
        mode='quick' if quick else 'full', model=args.model, n_ctx=args.n_ctx,
        n_threads=args.n_threads or max(1, (os.cpu_count() or 1) // 2), cpus=os.cpu_count(),
        seed=args.seed, feedback_interval_s=args.feedback_interval,
        max_tokens=args.max_tokens or (32 if quick else 128),
        rounds=args.rounds or (1 if quick else 3),
        n_prompts=args.prompts or (2 if quick else 5),
        load_reps=1 if quick else 3,
        throughput_levels=[1, 2] if quick else [1, 4, 8],
        throughput_per_client=1 if quick else 2,
        session_turns=2 if quick else len(SESSION_TURNS),
        session_reps=1 if quick else 3,
        loadavg_start='%.2f %.2f %.2f' % os.getloadavg(),
        python=platform.python_version(), llama_cpp_python=llama_cpp.__version__,
    )
    prompts = PROMPTS[:cfg['n_prompts']]
    t_start = time.monotonic()
    raw = Raw(args.model, cfg['n_ctx'], cfg['n_threads'])
    graph = GraphClient(f'bench_client_{uuid.uuid4().hex[:6]}')
    node = Node(graph, args.model, cfg['n_ctx'], cfg['n_threads'], cfg['max_tokens'],
                args.seed, args.feedback_interval)
    rc = None
    try:
        assert graph.get_state(node.name, timeout=30) == 'unconfigured'
        rss_before = node.proc.rss_mb()
        load = phase_load(raw, node, cfg['load_reps'], cfg['max_tokens'])
        runs = phase_latency(raw, node, prompts, cfg['rounds'], cfg['max_tokens'], args.seed)
        raw.close()
        thr = phase_throughput(node, cfg['throughput_levels'], cfg['throughput_per_client'])
        sess = phase_session(node, SESSION_TURNS[:cfg['session_turns']], cfg['session_reps'])
        rss_loaded = node.proc.rss_mb()
        node.transition('deactivate')
        node.transition('cleanup')
        time.sleep(0.5)
        memory = dict(before_mb=rss_before, loaded_mb=rss_loaded,
                      after_cleanup_mb=node.proc.rss_mb(), cycles=load['cycles'])
    finally:
        raw.close()
        rc = node.close()
        graph.close()
    cfg['loadavg_end'] = '%.2f %.2f %.2f' % os.getloadavg()
    cfg['duration_s'] = time.monotonic() - t_start
    summary = summarize(cfg, load, runs, thr, sess, memory)
    report = render(cfg, summary, thr)
    print(report)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f'bench_{time.strftime("%Y%m%d_%H%M%S")}_{cfg["mode"]}.json')
    with open(path, 'w') as f:
        json.dump(dict(config=cfg, summary=summary, load=load, runs=runs, throughput=thr,
                       session=sess, memory=memory, node_exit_code=rc), f, indent=1,
                  default=str)
    log(f'done in {cfg["duration_s"]:.0f} s; JSON: {path}; node exit code {rc}')
    return 0 if rc == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
