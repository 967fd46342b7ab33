# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
A generation that fails is answered with the reason and turns the diagnostics to ERROR.

Real engine and core (no mocks): the failure is real - the engine's model is released under
the running core, so the next generation raises inside llama.cpp's wrapper.
"""
from br_chat_lifecycle.chat_core import ChatCore, ChatRequest, CoreConfig, GenerationSettings
from br_chat_lifecycle.chat_diagnostics import ERROR, level_and_message, OK, WARN
from br_chat_lifecycle.engine import LlamaEngine, ModelConfig, SamplingParams
from br_chat_lifecycle.settings import build
from br_chat_lifecycle.structured_output import FormatResolver
from tiny_gguf import write_tiny_model


def _snapshot(core, state='active'):
    snap = dict(core.stats.snapshot())
    snap.update(lifecycle_state=state, configure_error='', last_error=core.stats.last_error,
                last_generation_failed=core.stats.last_generation_failed, rss_mb=100.0,
                queue_depth=core.queue_depth, max_queue=core.config.max_queue,
                generating=core.busy)
    return snap


def test_failed_generation_is_reported_and_the_core_keeps_serving(tmp_path):
    model = str(write_tiny_model(tmp_path / 'tiny.gguf'))
    engine = LlamaEngine(build(ModelConfig, model_path=model, n_ctx=512, n_threads=1))
    formats = FormatResolver('text', '', '')
    core = ChatCore(engine, build(CoreConfig, max_queue=2), formats)
    settings = build(GenerationSettings,
                     sampling=build(SamplingParams, max_tokens=8, temperature=0.0))
    limits = {'latency_warn_s': 1e9, 'rss_warn_mb': 1e9, 'queue_warn_ratio': 1.0}
    try:
        job = core.submit(ChatRequest('hello'), settings)
        assert job.done.wait(60) and job.result.success
        assert level_and_message(_snapshot(core), **limits)[0] == OK

        engine.close()                       # a real failure inside the next generation
        job = core.submit(ChatRequest('hello again'), settings)
        assert job.done.wait(60)
        reply = job.result
        assert not reply.success and reply.finish_reason == 'error'
        assert 'generation failed' in reply.error and 'closed' in reply.error
        level, message = level_and_message(_snapshot(core), **limits)
        assert level == ERROR and message.startswith('generation failed:')
        assert core.stats.requests_failed == 1

        # The worker survived: it answers the next request (with the same clear error).
        job = core.submit(ChatRequest('still there?'), settings)
        assert job.done.wait(60) and 'generation failed' in job.result.error
        # Not serving states are WARN whatever happened before.
        core.stats.last_generation_failed = False
        assert level_and_message(_snapshot(core, 'inactive'), **limits)[0] == WARN
    finally:
        core.close()
