# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Smoke test of the benchmark: `bench/bench_chat.py --quick` runs end to end.

It uses the real model and a real node process, and prints its markdown table. Numbers are not
checked here - they depend on the machine and its load; run the full benchmark for those (see
bench/README.md).
"""
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_quick_runs_and_prints_the_table(default_model_path, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / 'bench' / 'bench_chat.py'), '--quick',
         '--model', default_model_path, '--out', str(tmp_path)],
        cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}'
    assert '| Metric | raw llama-cpp-python | chat_service | chat_action | Target |' \
        in proc.stdout, proc.stdout
    assert list(tmp_path.glob('bench_*_quick.json')), 'no JSON result written'
