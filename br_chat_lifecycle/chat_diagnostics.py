# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
The node's diagnostic status: level, message and key/values from a state snapshot.

Works with diagnostic_updater's DiagnosticStatusWrapper and with the in-package fallback
(diagnostics_compat.py): only ``summary`` and ``add`` are used. Keys carry their unit.
"""
from diagnostic_msgs.msg import DiagnosticStatus

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR

KEYS = (  # (key in the status, key in the snapshot, format)
    ('lifecycle_state', 'lifecycle_state', '{}'),
    ('backend', 'backend', '{}'),
    ('base_url', 'base_url', '{}'),     # without credentials
    ('model', 'model', '{}'),           # the model's name on the server (backend openai)
    ('model_path', 'model_path', '{}'),
    ('model_file_mb', 'model_file_mb', '{:.1f}'),
    ('model_load_s', 'model_load_s', '{:.3f}'),
    ('n_ctx', 'n_ctx', '{}'),
    ('n_threads', 'n_threads', '{}'),
    ('rss_mb', 'rss_mb', '{:.1f}'),
    ('model_rss_mb', 'model_rss_mb', '{:.1f}'),
    ('requests_total', 'requests_total', '{}'),
    ('requests_ok', 'requests_ok', '{}'),
    ('requests_failed', 'requests_failed', '{}'),
    ('requests_refused', 'requests_refused', '{}'),
    ('requests_cancelled', 'requests_cancelled', '{}'),
    ('queue_depth', 'queue_depth', '{}'),
    ('max_queue', 'max_queue', '{}'),
    ('generating', 'generating', '{}'),
    ('slots_busy', 'slots_busy', '{}'),                 # generations running now
    ('slots_total', 'slots_total', '{}'),               # n_parallel
    ('active_sessions', 'active_sessions', '{}'),       # conversations the node keeps
    ('sessions_in_slots', 'sessions_in_slots', '{}'),   # ... with their KV cache in a slot
    ('sessions_in_ram', 'sessions_in_ram', '{}'),       # ... in the RAM cache
    ('sessions_on_disk', 'sessions_on_disk', '{}'),     # ... in session_dir
    ('session_cache_mb', 'session_cache_mb', '{:.1f}'),
    ('prompt_cache_ratio', 'prompt_cache_ratio', '{:.3f}'),  # prompt tokens from the cache
    ('sessions_restored_ram', 'sessions_restored_ram', '{}'),
    ('sessions_restored_disk', 'sessions_restored_disk', '{}'),
    ('latency_last_s', 'latency_last_s', '{:.3f}'),
    ('latency_mean_s', 'latency_mean_s', '{:.3f}'),
    ('latency_p95_s', 'latency_p95_s', '{:.3f}'),
    ('ttft_last_s', 'ttft_last_s', '{:.3f}'),
    ('ttft_mean_s', 'ttft_mean_s', '{:.3f}'),
    ('generation_last_tps', 'generation_last_tps', '{:.1f}'),
    ('generation_mean_tps', 'generation_mean_tps', '{:.1f}'),
    ('prompt_last_tps', 'prompt_last_tps', '{:.1f}'),
    ('prompt_mean_tps', 'prompt_mean_tps', '{:.1f}'),
    ('last_error', 'last_error', '{}'),
)


def level_and_message(snap: dict, latency_warn_s: float, rss_warn_mb: float,
                      queue_warn_ratio: float):
    state = snap['lifecycle_state']
    if snap.get('configure_error') and state == 'unconfigured':
        return ERROR, f'configure failed: {snap["configure_error"]}'
    if snap.get('last_generation_failed'):
        return ERROR, f'generation failed: {snap["last_error"]}'
    if state != 'active':
        return WARN, f'{state}: not serving'
    warnings = []
    if snap['latency_p95_s'] > latency_warn_s:
        warnings.append(f'p95 latency {snap["latency_p95_s"]:.1f} s > {latency_warn_s:.1f} s')
    if snap['rss_mb'] > rss_warn_mb:
        warnings.append(f'RSS {snap["rss_mb"]:.0f} MB > {rss_warn_mb:.0f} MB')
    max_queue = snap['max_queue']
    if max_queue and snap['queue_depth'] >= max(1, queue_warn_ratio * max_queue):
        warnings.append(f'queue near full ({snap["queue_depth"]}/{max_queue})')
    if warnings:
        return WARN, '; '.join(warnings)
    return OK, 'active: serving' + (' (generating)' if snap['generating'] else '')


def fill_status(stat, snap: dict, latency_warn_s: float, rss_warn_mb: float,
                queue_warn_ratio: float):
    level, message = level_and_message(snap, latency_warn_s, rss_warn_mb, queue_warn_ratio)
    stat.summary(level, message)
    for key, src, fmt in KEYS:
        stat.add(key, fmt.format(snap.get(src, '')))
    return stat
