# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Loading a GGUF model and creating its llama.cpp context, with the checks that must come first.

Before anything is allocated: the file must be a readable GGUF, the context must not exceed
what the model was trained for, and the KV cache for ``n_ctx`` tokens x ``n_parallel`` slots
must fit the RAM that is available (``n_ctx 1000000`` used to allocate 10 GB before anything
said no). Then llama-cpp-python's model/context wrappers (``llama_cpp._internals``) do the
loading: one context with ``n_seq_max = n_parallel`` sequences, each with its own ``n_ctx``
cells (non-unified KV cache), so every slot has the full context a client expects.
"""
import ctypes
from dataclasses import dataclass
import os
import time
from typing import Optional, Tuple

import llama_cpp
from llama_cpp import _internals

GGUF_MAGIC = b'GGUF'
# Context memory besides the KV cache: llama.cpp's compute and output buffers (measured:
# SmolLM2 at n_ctx 2048 adds ~110 MB to RSS besides its weights; the estimate says 45 + 64).
CONTEXT_MARGIN_MB = 64.0


class ModelLoadError(Exception):
    """The model could not be loaded; the message says what and where."""


@dataclass
class ModelConfig:
    """Model and context settings (field = node parameter; defaults: settings.PARAMS)."""

    model_path: str
    n_ctx: int                   # per slot: prompt + history + reply of one conversation
    n_parallel: int              # slots (llama.cpp sequences) generating at the same time
    n_threads: int               # 0: half the cores (at least 1)
    n_threads_batch: int         # 0: same as n_threads
    n_batch: int
    n_gpu_layers: int
    use_mmap: bool
    use_mlock: bool
    chat_template: str           # '': the GGUF's own template


@dataclass
class ModelInfo:
    """What was loaded, for logs and diagnostics."""

    path: str
    file_size_bytes: int
    load_time_s: float
    n_ctx: int
    n_parallel: int
    n_ctx_train: int
    n_threads: int
    n_threads_batch: int
    chat_template_source: str


@dataclass
class ModelShape:
    """What the GGUF metadata says about the sizes that decide the context's memory."""

    architecture: str
    n_ctx_train: int
    n_layer: int
    n_head_kv: int
    key_length: int
    value_length: int
    n_vocab: int

    def kv_bytes(self, n_tokens: int) -> int:
        """Bytes of the f16 KV cache for ``n_tokens`` cells (llama.cpp's default type)."""
        return (n_tokens * self.n_layer * self.n_head_kv
                * (self.key_length + self.value_length) * 2)


def check_model_file(path: str) -> None:
    """Raise ModelLoadError with a precise reason if ``path`` is not a readable GGUF file."""
    if not path:
        raise ModelLoadError('model_path is empty and no default model was found')
    if not os.path.exists(path):
        raise ModelLoadError(f'model file not found: {path}')
    if not os.path.isfile(path):
        raise ModelLoadError(f'model path is not a regular file: {path}')
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f'model file is not readable (permissions): {path}')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f'not a GGUF model file (magic {magic!r}, expected {GGUF_MAGIC!r}): {path}')


def read_model_shape(path: str) -> ModelShape:
    """
    Read the context-relevant sizes from the GGUF metadata without loading any weights.

    Uses llama.cpp's vocab-only load (~0.1 s). Missing keys read as 0.
    """
    from llama_cpp._logger import set_verbose
    set_verbose(False)  # the vocab-only load logs every metadata key at INFO
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(path.encode('utf-8'), params)
    if not model:
        raise ModelLoadError(f'llama.cpp could not load {path}: its GGUF metadata is '
                             'unreadable (truncated or corrupt file?)')
    buf = ctypes.create_string_buffer(512)

    def meta(key: str) -> str:
        n = llama_cpp.llama_model_meta_val_str(model, key.encode('utf-8'), buf, len(buf))
        return buf.value.decode('utf-8', 'replace') if n >= 0 else ''

    def meta_int(key: str, default: int = 0) -> int:
        try:
            return int(meta(key))
        except ValueError:  # absent, or a per-layer array: use the default
            return default
    try:
        arch = meta('general.architecture')
        n_embd = meta_int(f'{arch}.embedding_length')
        n_head = meta_int(f'{arch}.attention.head_count', 1) or 1
        head_dim = n_embd // n_head
        return ModelShape(
            architecture=arch, n_ctx_train=meta_int(f'{arch}.context_length'),
            n_layer=meta_int(f'{arch}.block_count'),
            n_head_kv=meta_int(f'{arch}.attention.head_count_kv', n_head),
            key_length=meta_int(f'{arch}.attention.key_length', head_dim),
            value_length=meta_int(f'{arch}.attention.value_length', head_dim),
            n_vocab=llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model)))
    finally:
        llama_cpp.llama_model_free(model)


def mem_available_mb() -> float:
    """Return MemAvailable from /proc/meminfo in MB (inf where unknown)."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return float('inf')


def check_context_fits(shape: ModelShape, n_ctx: int, n_parallel: int, path: str,
                       available_mb: Optional[float] = None) -> float:
    """
    Refuse a context the model was not trained for or the RAM cannot hold.

    Checked before llama.cpp allocates it. Returns the estimated context memory in MB.
    """
    if shape.n_ctx_train and n_ctx > shape.n_ctx_train:
        raise ModelLoadError(
            f'n_ctx={n_ctx} exceeds the context {os.path.basename(path)} was trained for '
            f'({shape.n_ctx_train} tokens): set n_ctx <= {shape.n_ctx_train}')
    kv_mb = shape.kv_bytes(n_ctx * n_parallel) / 2**20
    need_mb = kv_mb + CONTEXT_MARGIN_MB
    available = mem_available_mb() if available_mb is None else available_mb
    if need_mb > available:
        raise ModelLoadError(
            f'n_ctx={n_ctx} x n_parallel={n_parallel} needs about {need_mb:.0f} MB for the '
            f'context (KV cache {kv_mb:.0f} MB: {shape.n_layer} layers x {shape.n_head_kv} KV '
            f'heads) but only {available:.0f} MB of RAM are available: lower n_ctx or '
            'n_parallel')
    return need_mb


def resolve_threads(config: ModelConfig) -> Tuple[int, int]:
    """(n_threads, n_threads_batch) with 0 meaning: half the cores, and n_threads."""
    n_threads = config.n_threads if config.n_threads > 0 else max(1, (os.cpu_count() or 1) // 2)
    n_threads_batch = config.n_threads_batch if config.n_threads_batch > 0 else n_threads
    return n_threads, n_threads_batch


def load(config: ModelConfig) -> Tuple['_internals.LlamaModel', '_internals.LlamaContext',
                                       ModelShape, float, float]:
    """
    Check, then load the model and create its context.

    Returns (model, context, shape, estimated context MB, load seconds). Raises
    ModelLoadError with the reason.
    """
    check_model_file(config.model_path)
    shape = read_model_shape(config.model_path)
    context_mb = check_context_fits(shape, config.n_ctx, config.n_parallel, config.model_path)
    n_threads, n_threads_batch = resolve_threads(config)
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = config.n_gpu_layers
    mparams.load_mode = (
        llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK if config.use_mmap and config.use_mlock else
        llama_cpp.LLAMA_LOAD_MODE_MLOCK if config.use_mlock else
        llama_cpp.LLAMA_LOAD_MODE_MMAP if config.use_mmap else
        llama_cpp.LLAMA_LOAD_MODE_NONE)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = config.n_ctx * config.n_parallel
    cparams.n_batch = config.n_batch
    cparams.n_ubatch = min(config.n_batch, 512)
    cparams.n_seq_max = config.n_parallel
    cparams.n_threads = n_threads
    cparams.n_threads_batch = n_threads_batch
    cparams.kv_unified = False   # each sequence gets its own n_ctx cells
    cparams.swa_full = True      # sliding-window models keep the whole prefix: reusable
    cparams.no_perf = True
    # As llama-cpp-python's Llama (flash_attn=False): llama.cpp's default "auto" turns flash
    # attention on for the CPU, which rounds differently - a greedy reply would then differ
    # from raw llama-cpp-python's after a few dozen tokens. Measured: same speed either way.
    cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    t0 = time.monotonic()
    model = context = None
    try:
        model = _internals.LlamaModel(path_model=config.model_path, params=mparams,
                                      verbose=False)
        context = _internals.LlamaContext(model=model, params=cparams, verbose=False)
    except Exception as e:  # llama-cpp-python raises ValueError/RuntimeError
        if context is not None:
            context.close()
        if model is not None:
            model.close()
        raise ModelLoadError(f'llama.cpp could not load {config.model_path}: {e}') from e
    return model, context, shape, context_mb, time.monotonic() - t0
