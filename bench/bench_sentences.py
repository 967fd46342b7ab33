#!/usr/bin/env python3
# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Benchmark: sentence streaming (stream_unit "sentence") of the real chat node.

Measured on SmolLM2 (greedy: temperature 0, repeat_penalty 1.0, fixed seed) through the real
node process and an rclpy client in this process, replies of at least 3 sentences:

  sentence latency   from the moment the node generated the token that holds a sentence's
                     last character to the moment that sentence's feedback arrives at the
                     client. Node-side time stamps without touching the node's code: the node
                     process is this script in "node mode" (BENCH_SENTENCES_NODE_LOG set),
                     which wraps each goal's feedback object (ChatNode._goal_feedback) to log
                     time.monotonic() of every piece of text the generation hands it, then
                     runs chat_node.main(). CLOCK_MONOTONIC is one clock for all processes of
                     a machine, so node and client times compare directly.
                       vs last token  includes the wait for the next piece that a sentence
                                      ending in a terminator needs (is the next character a
                                      closing quote, a digit, a space?);
                       vs next piece  (the piece that decided it, or the end of generation for
                                      the last sentence) is the splitter's and transport's
                                      own delay.
                     The token-mode stream (each piece published at once) of the same prompt,
                     run alternately (T S, S T, ...), gives the transport baseline.
  first sentence     time from sending the goal to the first sentence's feedback, against the
                     time to the result (the full reply).
  splitter CPU       SentenceStream.feed per token piece, in this process.

Targets (issue #12): first sentence <= 40 % of the full reply time; sentence latency <= 20 ms
p95.

Usage (from the repo root, after `source env.sh`):
    python bench/bench_sentences.py            # 5 prompts x 3 rounds, max_tokens 128
    python bench/bench_sentences.py --quick    # 2 prompts x 1 round, max_tokens 96
Prints a markdown table on stdout (progress on stderr). Run on an otherwise idle machine: the
load average is printed; llama.cpp slows down a lot on busy cores, which stretches the gaps
between tokens (and so "vs last token").
"""
import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from bench_common import PROMPTS, REPO  # environment set on import

from br_chat_lifecycle import settings  # noqa: E402
from br_chat_lifecycle.client import ChatClient  # noqa: E402
from br_chat_lifecycle.lifecycle_client import LifecycleError  # noqa: E402
from br_chat_lifecycle.sentence_stream import SentenceStream  # noqa: E402
import yaml  # noqa: E402

TARGET_FIRST_RATIO = 0.40
TARGET_LATENCY_P95_MS = 20.0
NODE_LOG_ENV = 'BENCH_SENTENCES_NODE_LOG'


def log(msg):
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


def pct(values, q):
    if not values:
        return float('nan')
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ============================================================================ node mode
def run_node(log_path: str) -> None:
    """Run the chat node with each goal's feedback pieces time-stamped into ``log_path``."""
    from br_chat_lifecycle import chat_node
    lock = threading.Lock()
    original = chat_node.ChatNode._goal_feedback

    def timed_goal_feedback(self, goal_handle):
        feedback, reply = original(self, goal_handle)
        if feedback is not None:
            goal = bytes(goal_handle.goal_id.uuid).hex()
            pieces = []
            add, flush = feedback.add, feedback.flush

            def timed_add(piece):
                pieces.append((time.monotonic(), piece))
                add(piece)

            def timed_flush():
                end = time.monotonic()
                flush()
                with lock, open(log_path, 'a', encoding='utf-8') as f:
                    f.write(json.dumps({'goal': goal, 'pieces': pieces, 'end': end},
                                       ensure_ascii=False) + '\n')
            feedback.add, feedback.flush = timed_add, timed_flush
        return feedback, reply
    chat_node.ChatNode._goal_feedback = timed_goal_feedback
    chat_node.main()


# ============================================================================ client
class Bench:
    """The instrumented chat node as a subprocess and a client that timestamps feedback."""

    def __init__(self, client: ChatClient, model, max_tokens, n_threads):
        uid = uuid.uuid4().hex[:8]
        self.client = client
        self.name = f'bench_sentence_node_{uid}'
        self.action = f'bench_sentence_action_{uid}'
        folder = tempfile.mkdtemp(prefix='bench_sentences_')
        self.node_log = os.path.join(folder, 'pieces.jsonl')
        params = os.path.join(folder, 'params.yaml')
        with open(params, 'w') as f:
            yaml.safe_dump({self.name: {'ros__parameters': {
                'model_path': model, 'n_ctx': 2048, 'n_threads': n_threads,
                'max_tokens': max_tokens, 'temperature': 0.0, 'repeat_penalty': 1.0,
                'seed': 42, 'chat_action_name': self.action,
                'chat_service_name': f'bench_sentence_{uid}'}}}, f)
        self.proc_log = os.path.join(folder, 'node.log')
        with open(self.proc_log, 'w') as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), '--ros-args', '-r',
                 f'__node:={self.name}', '--params-file', params],
                stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO),
                env=dict(os.environ, **{NODE_LOG_ENV: self.node_log}))

    def start(self):
        try:
            self.client.lifecycle(self.name, transition_timeout=300.0)
            self.client.bring_up(self.name)
        except LifecycleError as e:
            raise RuntimeError(f'{e}:\n{open(self.proc_log).read()}')
        self.client.wait_for_action(self.action, timeout=30.0)

    def close(self):
        self.proc.send_signal(2)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def _node_pieces(self, goal: str, timeout=10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.node_log):
                with open(self.node_log, encoding='utf-8') as f:
                    for line in f:
                        entry = json.loads(line)
                        if entry['goal'] == goal:
                            return entry
            time.sleep(0.01)
        raise AssertionError(f'goal {goal}: no node-side record')

    def run(self, prompt, unit) -> dict:
        """One goal: text, client receive times of its partials, node times of its pieces."""
        got = []    # (monotonic receive time, partial): every one (exact_feedback)
        goal = self.client.send_goal(
            prompt, action=self.action, exact_feedback=True, timeout=600.0, stream_unit=unit,
            feedback=lambda text: got.append((time.monotonic(), text)))
        outcome = goal.result()
        text = outcome.result.response
        if not outcome.feedback_complete:
            raise AssertionError(f'{unit}: feedback does not concatenate to the reply')
        key = goal.key
        node = self._node_pieces(key.hex())
        assert ''.join(p for _, p in node['pieces']) == text
        return {'text': text, 'sent': goal.sent_at, 'result': goal.result_at,
                'tokens': outcome.result.completion_tokens,
                'partials': got, 'pieces': node['pieces'], 'end': node['end']}


def sentence_latencies(run):
    """Per sentence: (receive - its last character's piece, receive - the deciding piece)."""
    owner = []                                # per character: index of its piece
    for i, (_, piece) in enumerate(run['pieces']):
        owner.extend([i] * len(piece))
    out, end = [], 0
    for k, (t_recv, sentence) in enumerate(run['partials']):
        end += len(sentence)
        i = owner[end - 1]
        t_last = run['pieces'][i][0]
        # the sentence's end is decided by the next piece, or by the end of the generation
        t_next = run['pieces'][i + 1][0] if i + 1 < len(run['pieces']) else run['end']
        if t_next > t_recv:                   # released within its own piece (no look-ahead)
            t_next = t_last
        out.append((t_recv - t_last, t_recv - t_next, k == len(run['partials']) - 1))
    return out


def token_latencies(run):
    """Token mode: receive - generation time of each piece (one partial per piece)."""
    if len(run['partials']) != len(run['pieces']):
        return []
    return [t_recv - t_gen for (t_recv, _), (t_gen, _) in zip(run['partials'], run['pieces'])]


def splitter_cpu_us(piece_runs):
    """SentenceStream.feed CPU time per token piece (microseconds), over real token streams."""
    calls, t0 = 0, time.process_time()
    for _ in range(20):
        for pieces in piece_runs:
            stream = SentenceStream(200)
            for piece in pieces:
                stream.feed(piece)
                calls += 1
            stream.finish()
    return (time.process_time() - t0) / max(calls, 1) * 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', default=settings.default_model_path())
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--max-tokens', type=int, default=128)
    parser.add_argument('--n-threads', type=int, default=0)
    parser.add_argument('--quick', action='store_true', help='2 prompts x 1 round')
    args = parser.parse_args(argv)
    prompts = PROMPTS[:2] if args.quick else PROMPTS
    rounds = 1 if args.quick else args.rounds
    max_tokens = min(args.max_tokens, 96) if args.quick else args.max_tokens
    load_start = os.getloadavg()
    client = ChatClient(name=f'bench_sentences_{uuid.uuid4().hex[:6]}')
    bench = Bench(client, args.model, max_tokens, args.n_threads)
    vs_last, vs_next, transport = [], [], []
    inner_last, inner_next, final_last = [], [], []
    first_ratio, first_s, full_s = [], [], []
    short, replies = 0, 0
    piece_runs = []
    try:
        bench.start()
        for p, prompt in enumerate(prompts):
            log(f'prompt {p + 1}/{len(prompts)}: warm-up')
            bench.run(prompt, 'token')
            for r in range(rounds):
                order = ('token', 'sentence') if (p + r) % 2 == 0 else ('sentence', 'token')
                runs = {unit: bench.run(prompt, unit) for unit in order}
                tok, sen = runs['token'], runs['sentence']
                transport.extend(1e3 * x for x in token_latencies(tok))
                piece_runs.append([piece for _, piece in tok['pieces']])
                if len(sen['partials']) < 3:
                    short += 1
                    log(f'  round {r + 1}: only {len(sen["partials"])} sentence(s), skipped')
                    continue
                replies += 1
                for last, nxt, final in sentence_latencies(sen):
                    vs_last.append(last * 1e3)
                    vs_next.append(nxt * 1e3)
                    (final_last if final else inner_last).append(last * 1e3)
                    if not final:
                        inner_next.append(nxt * 1e3)
                first = sen['partials'][0][0] - sen['sent']
                full = sen['result'] - sen['sent']
                first_s.append(first)
                full_s.append(full)
                first_ratio.append(first / full)
                log(f'  round {r + 1}: {len(sen["partials"])} sentences, {sen["tokens"]} '
                    f'tokens, first sentence {first:.2f} s of {full:.2f} s')
    finally:
        bench.close()
        client.close()
    cpu_us = splitter_cpu_us(piece_runs)
    load_end = os.getloadavg()

    def row(name, value, target=''):
        print(f'| {name} | {value} | {target} |')

    def p50_95(values):
        return f'{pct(values, 0.5):.1f} / {pct(values, 0.95):.1f}'
    print(f'\nModel {Path(args.model).name}, max_tokens {max_tokens}, {len(prompts)} prompts '
          f'x {rounds} round(s); load average {load_start[0]:.2f} -> {load_end[0]:.2f} '
          f'({os.cpu_count()} CPUs)\n')
    print('| Metric | Value | Target |')
    print('| --- | --- | --- |')
    row('replies measured (>= 3 sentences)', f'{replies} ({short} skipped: < 3 sentences)')
    row('sentences measured', len(vs_last))
    row('sentence latency vs its last token, p50 / p95 (ms)', p50_95(vs_last),
        f'<= {TARGET_LATENCY_P95_MS:.0f} ms p95')
    row('sentence latency vs the piece that decided it, p50 / p95 (ms)', p50_95(vs_next))
    row('  sentences inside the reply: vs last token / vs deciding piece, p50 / p95 (ms)',
        f'{p50_95(inner_last)} ; {p50_95(inner_next)}')
    row('  last sentence (sent when the reply ends): vs last token, p50 / p95 (ms)',
        p50_95(final_last))
    row('token mode: piece generated -> feedback received, p50 / p95 (ms)',
        p50_95(transport))
    row('time to first sentence, median (s)',
        f'{statistics.median(first_s):.3f}' if first_s else 'n/a')
    row('time to full reply, median (s)',
        f'{statistics.median(full_s):.3f}' if full_s else 'n/a')
    row('first sentence / full reply, median / max (%)',
        f'{pct(first_ratio, 0.5) * 100:.0f} / '
        f'{max(first_ratio, default=float("nan")) * 100:.0f}',
        f'<= {TARGET_FIRST_RATIO * 100:.0f} %')
    row('SentenceStream.feed CPU per token piece (us)', f'{cpu_us:.1f}')
    return 0


if __name__ == '__main__':
    if os.environ.get(NODE_LOG_ENV):
        run_node(os.environ[NODE_LOG_ENV])
    else:
        sys.exit(main())
