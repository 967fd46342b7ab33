#!/usr/bin/env python3
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Benchmark: the chat node with ``backend: openai`` vs calling the same server directly.

One OpenAI-compatible server (llama-cpp-python's ``python -m llama_cpp.server`` with the
default SmolLM2 model, started here on localhost) and two ways of getting a streamed reply:

  direct  the ``openai`` package's client (the library the node uses) streaming a chat
          completion from the server in this process;
  node    the chat node (backend openai, a subprocess) through its action (feedback) or, for
          the concurrency phase, its service; rclpy clients in this process.

Same messages and sampling on both paths (greedy: temperature 0, repeat_penalty 1, seed 42).
The server runs on CPU 0, the node and the clients on the other CPU(s) (``--no-pin`` to
share them): on a 2-core machine the node's own CPU use would otherwise slow the server
itself, which a real deployment (server on a GPU machine) does not have.
The server keeps the last request's tokens in its KV cache, so each pair (and each concurrent
batch, whose 8 clients send one prompt) is preceded by an unmeasured 1-token request with its
prompt: both paths then find the prompt cached alike, whichever goes first.
The paths alternate pair by pair (direct first in even pairs, node first in odd ones) so that
the noisy shared VM hits both alike; each figure is the median of per-pair values:

  added TTFT     node TTFT - direct TTFT (client side: goal sent -> first feedback, vs request
                 sent -> first text chunk). Target <= 20 ms.
  tokens/s       node / direct, streaming rate: the tokens after the first over the time
                 from the first to the last piece of text (chunk, or feedback). >= 97 %.
                 End-to-end latency (request -> complete reply, the node's including its
                 result message) is reported beside it.
  8 concurrent   aggregate tokens/s of 8 simultaneous clients through the node / of 8
                 simultaneous direct streams. >= 90 %. (llama-cpp-python's server generates
                 one request at a time: this measures what the node adds under concurrency,
                 not the server's batching.)

Usage (repo root, after ``source env.sh``):
    python bench/bench_remote.py            # 5 prompts x 3 rounds, 3 concurrency rounds
    python bench/bench_remote.py --quick    # smoke run (< 1 min)
Prints a markdown report (progress on stderr).
"""
import argparse
import os
from pathlib import Path
import statistics
import sys
import threading
import time
import uuid

from bench_common import PROMPTS, REPO, run_concurrently  # environment set on import
# remote_servers.LlamaServer (llama_cpp.server as a child process) is shared with
# test_remote_backend.py; nothing else of test/ is used
sys.path.append(str(REPO / 'test'))

from br_chat_lifecycle.client import ChatClient, wait_future  # noqa: E402
from br_chat_lifecycle.node_process import NodeProcess  # noqa: E402
from br_chat_lifecycle.settings import default_model_path  # noqa: E402
import openai  # noqa: E402
from remote_servers import LlamaServer  # noqa: E402

SAMPLING = {'temperature': 0.0, 'top_p': 0.9, 'top_k': 40, 'min_p': 0.05, 'repeat_penalty': 1.0,
            'seed': 42}
TARGET_ADDED_TTFT_S = 0.020
TARGET_TPS_RATIO = 0.97
TARGET_CONCURRENT_RATIO = 0.90
CLIENTS = 8


def log(msg):
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float('nan')


def _tps(tokens, first, last):
    """Streaming rate: the tokens after the first one over first text -> last text."""
    if first is None or last is None or last <= first or tokens < 2:
        return None
    return (tokens - 1) / (last - first)


class Direct:
    """
    The openai client talking straight to the server.

    One client per thread, as the client library recommends.
    """

    def __init__(self, url, max_tokens):
        self.url, self.max_tokens = url, max_tokens
        self._local = threading.local()

    def _client(self):
        if not hasattr(self._local, 'client'):
            self._local.client = openai.OpenAI(base_url=self.url, api_key='EMPTY',
                                               max_retries=0, timeout=300)
        return self._local.client

    def chat(self, prompt, max_tokens=None) -> dict:
        s = SAMPLING
        t0 = time.monotonic()
        first, last, chunks, parts = None, None, 0, []
        stream = self._client().chat.completions.create(
            model='smol', messages=[{'role': 'user', 'content': prompt}], stream=True,
            max_tokens=max_tokens or self.max_tokens, temperature=s['temperature'],
            top_p=s['top_p'], seed=s['seed'], stream_options={'include_usage': True},
            extra_body={'top_k': s['top_k'], 'min_p': s['min_p'],
                        'repeat_penalty': s['repeat_penalty']})
        for chunk in stream:
            for choice in chunk.choices[:1]:
                if choice.delta and choice.delta.content:
                    last = time.monotonic()
                    if first is None:
                        first = last
                    chunks += 1
                    parts.append(choice.delta.content)
        end = time.monotonic()
        return {'ttft_s': first - t0 if first else None, 'tokens': chunks,
                'tps': _tps(chunks, first, last), 'e2e_s': end - t0, 'text': ''.join(parts)}


class Node:
    """The chat node (backend openai) as a subprocess, called through a ChatClient."""

    def __init__(self, client: ChatClient, url, max_tokens):
        uid = uuid.uuid4().hex[:8]
        self.client = client
        self.service, self.action = f'bench_chat_{uid}', f'bench_action_{uid}'
        self.proc = NodeProcess(dict(
            backend='openai', base_url=url, model='smol', max_tokens=max_tokens,
            n_parallel=CLIENTS, max_queue=16, chat_service_name=self.service,
            chat_action_name=self.action, **SAMPLING), name=f'bench_remote_{uid}',
            cwd=str(REPO))
        self.name = self.proc.name
        client.lifecycle(self.name, transition_timeout=300.0)
        client.bring_up(self.name)
        client.wait_for_service(self.service, timeout=30.0)
        client.wait_for_action(self.action, timeout=30.0)

    def goal(self, prompt) -> dict:
        goal = self.client.send_goal(prompt, action=self.action, timeout=600.0)
        r = goal.result().result
        if not r.success:
            raise RuntimeError(f'goal failed: {r.error}')
        first, last = goal.first_feedback_at, goal.last_feedback_at
        end = goal.result_at or time.monotonic()
        return {'ttft_s': first - goal.sent_at if first else None, 'tokens': r.completion_tokens,
                'tps': _tps(r.completion_tokens, first, last), 'e2e_s': end - goal.sent_at,
                'text': r.response, 'node_ttft_s': r.time_to_first_token_s}

    def chat(self, prompt) -> dict:
        stamp = []
        t0 = time.monotonic()
        future = self.client.chat_async(prompt, service=self.service)
        future.add_done_callback(lambda _f: stamp.append(time.monotonic()))
        r = wait_future(future, 600.0, f'{self.service} reply')
        if not r.success:
            raise RuntimeError(f'service failed: {r.error}')
        return {'tokens': r.completion_tokens, 'e2e_s': (stamp or [time.monotonic()])[0] - t0,
                'text': r.response}

    def close(self):
        return self.proc.stop()


def concurrent(call, prompts) -> dict:
    results, errors, wall = run_concurrently(call, prompts, start_together=False)
    tokens = sum(r['tokens'] for r in results)
    return {'wall_s': wall, 'tokens': tokens, 'tps': tokens / wall, 'errors': errors}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument('--model', default=default_model_path())
    ap.add_argument('--quick', action='store_true', help='2 prompts x 1 round, 1 conc. round')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--max-tokens', type=int, default=128)
    ap.add_argument('--server-threads', type=int, default=1,
                    help="llama_cpp.server's n_threads (the other core runs node and client)")
    ap.add_argument('--no-pin', action='store_true',
                    help='do not pin the server to CPU 0 and node and clients to the others')
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    prompts = PROMPTS[:2] if args.quick else PROMPTS
    rounds = 1 if args.quick else args.rounds
    conc_rounds = 1 if args.quick else args.rounds
    max_tokens = 32 if args.quick else args.max_tokens
    load_start = os.getloadavg()
    log(f'load average {load_start}; starting llama_cpp.server with {args.model}')
    if pin:  # child processes inherit the affinity of this process when they start
        os.sched_setaffinity(0, cpus[:1])
    server = LlamaServer(args.model, n_threads=args.server_threads)
    if pin:
        os.sched_setaffinity(0, cpus[1:])
    client = ChatClient(name=f'bench_remote_client_{uuid.uuid4().hex[:6]}', wait_timeout=30.0)
    node = None
    try:
        node = Node(client, server.url, max_tokens)
        direct = Direct(server.url, max_tokens)
        log('warm-up')
        direct.chat(PROMPTS[0])
        node.goal(PROMPTS[0])
        pairs = []
        for r in range(rounds):
            for i, prompt in enumerate(prompts):
                order = ('direct', 'node') if len(pairs) % 2 == 0 else ('node', 'direct')
                # The server keeps the previous request's tokens in its KV cache: put this
                # prompt there first, so that both paths find it cached alike.
                direct.chat(prompt, max_tokens=1)
                res = {}
                for path in order:
                    res[path] = direct.chat(prompt) if path == 'direct' else node.goal(prompt)
                pairs.append(res)
                d, n = res['direct'], res['node']
                log(f'round {r + 1} prompt {i + 1}: TTFT direct {d["ttft_s"] * 1e3:.1f} ms, '
                    f'node {n["ttft_s"] * 1e3:.1f} ms; tok/s direct {d["tps"]:.1f}, node '
                    f'{n["tps"]:.1f}; same text: {d["text"] == n["text"]}')
        conc = []
        for r in range(conc_rounds):
            # one prompt for all: each request finds it in the server's KV cache alike
            batch = [PROMPTS[r % len(PROMPTS)]] * CLIENTS
            direct.chat(batch[0], max_tokens=1)
            order = ('direct', 'node') if r % 2 == 0 else ('node', 'direct')
            res = {}
            for path in order:
                res[path] = concurrent(direct.chat if path == 'direct' else node.chat, batch)
                if res[path]['errors']:
                    raise RuntimeError(f'{path}: {res[path]["errors"][:3]}')
            conc.append(res)
            log(f'concurrency round {r + 1}: {CLIENTS} clients direct '
                f'{res["direct"]["tps"]:.1f} tok/s, node {res["node"]["tps"]:.1f} tok/s')
    finally:
        if node is not None:
            node.close()
        client.close()
        server.stop()
    load_end = os.getloadavg()

    added = median(p['node']['ttft_s'] - p['direct']['ttft_s'] for p in pairs)
    tps_ratio = median(p['node']['tps'] / p['direct']['tps'] for p in pairs
                       if p['node']['tps'] and p['direct']['tps'])
    conc_ratio = median(c['node']['tps'] / c['direct']['tps'] for c in conc)
    same = sum(p['node']['text'] == p['direct']['text'] for p in pairs)

    def ok(good):
        return 'yes' if good else '**NO**'

    print(f'## Remote backend: node vs direct ({len(pairs)} pairs, max_tokens {max_tokens}, '
          f'{CLIENTS} concurrent clients x {len(conc)} rounds)\n')
    print(f'Server: llama_cpp.server (llama-cpp-python), model {Path(args.model).name}, '
          f'n_threads {args.server_threads}, on localhost'
          + (f', pinned to CPU {cpus[0]}; node and clients on CPU(s) '
             f'{",".join(map(str, cpus[1:]))} (as if the server were another machine)'
             if pin else ', not pinned') + '. Client library: openai '
          f'{openai.__version__}. Load average (1/5/15 min) at start '
          f'{"/".join(f"{x:.2f}" for x in load_start)}, at end '
          f'{"/".join(f"{x:.2f}" for x in load_end)} ({os.cpu_count()} CPUs).\n')
    print('| Metric | direct | node | per-pair median | Target | Met |')
    print('|---|---|---|---|---|---|')
    print(f'| TTFT (client side) | {median(p["direct"]["ttft_s"] for p in pairs) * 1e3:.1f} ms '
          f'| {median(p["node"]["ttft_s"] for p in pairs) * 1e3:.1f} ms (node-side '
          f'{median(p["node"]["node_ttft_s"] for p in pairs) * 1e3:.1f} ms) | added '
          f'{added * 1e3:+.1f} ms | <= {TARGET_ADDED_TTFT_S * 1e3:.0f} ms | '
          f'{ok(added <= TARGET_ADDED_TTFT_S)} |')
    print(f'| Generation tokens/s | {median(p["direct"]["tps"] for p in pairs):.1f} | '
          f'{median(p["node"]["tps"] for p in pairs):.1f} | {tps_ratio * 100:.1f} % | >= '
          f'{TARGET_TPS_RATIO * 100:.0f} % | {ok(tps_ratio >= TARGET_TPS_RATIO)} |')
    e2e = median(p['node']['e2e_s'] / p['direct']['e2e_s'] for p in pairs)
    print(f'| End-to-end latency | {median(p["direct"]["e2e_s"] for p in pairs):.3f} s | '
          f'{median(p["node"]["e2e_s"] for p in pairs):.3f} s | {e2e * 100:.1f} % | | |')
    print(f'| {CLIENTS} concurrent clients, aggregate tokens/s | '
          f'{median(c["direct"]["tps"] for c in conc):.1f} | '
          f'{median(c["node"]["tps"] for c in conc):.1f} | {conc_ratio * 100:.1f} % | >= '
          f'{TARGET_CONCURRENT_RATIO * 100:.0f} % | {ok(conc_ratio >= TARGET_CONCURRENT_RATIO)} |')
    print(f'\nIdentical greedy text on both paths in {same}/{len(pairs)} pairs (a difference '
          "comes from the server's KV-cache state: the same direct request sent twice in a "
          'row can differ too).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
