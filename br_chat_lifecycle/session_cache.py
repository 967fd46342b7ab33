# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Every conversation's KV cache kept warm: in RAM (bounded by bytes) and, optionally, on disk.

When a slot is needed by another request, the engine saves the sequence state of the
conversation it held (``llama_state_seq_get_data``: only that sequence's KV cells, not the
logits array that ``Llama.save_state`` copies) into ``SessionCache``; when the conversation
speaks again the state is restored into a free slot and only the new tokens are evaluated.
The RAM cache is an LRU bounded by ``session_cache_mb``.

With a ``session_dir``, ``SessionDisk`` also writes each conversation (its text history and,
when it has one, its KV state) to one file per session, after every completed turn (in a
background thread, write-then-rename: a crash mid-write leaves the previous file intact) and
at cleanup. At configure the files are read back: the history always (if the file is intact),
the KV state only if it was made with the same model file, n_ctx, chat template and
llama-cpp-python version - else it is ignored with the reason. A truncated, corrupt or
foreign file is skipped with a warning, never a crash. States are read from disk lazily, when
their conversation speaks.

Hand-written: no library keeps llama.cpp sequence states; the file format is ours (below).
File: MAGIC, 8-byte little-endian header length, JSON header, int32 tokens, KV blob.
"""
import collections
from dataclasses import dataclass
import hashlib
import json
import os
import struct
import threading
from typing import Callable, Dict, List, Optional, Tuple

MAGIC = b'BRCHATSESSION1\n'
SUFFIX = '.session'
_HASH_SPAN = 4 << 20   # model identity: size + sha256 of the first and last 4 MiB


@dataclass
class SavedSequence:
    """A conversation's KV state: the tokens it covers and llama.cpp's state bytes."""

    tokens: List[int]
    blob: bytes

    @property
    def nbytes(self) -> int:
        return len(self.blob) + 4 * len(self.tokens)


@dataclass
class StoredSession:
    """What a session file holds, as read at configure (the KV blob is read lazily)."""

    session_id: str
    history: List[Tuple[str, str]]
    kv_usable: bool
    reason: str            # why the KV state is not usable ('' when it is)
    path: str


def model_identity(model_path: str, n_ctx: int, template: str, llama_version: str) -> Dict:
    """
    Return what a saved KV state depends on.

    Reading 8 MiB of the model takes a few ms.
    """
    size = os.path.getsize(model_path)
    h = hashlib.sha256()
    with open(model_path, 'rb') as f:
        h.update(f.read(_HASH_SPAN))
        if size > 2 * _HASH_SPAN:
            f.seek(size - _HASH_SPAN)
            h.update(f.read(_HASH_SPAN))
    return {'model_file': os.path.basename(model_path), 'model_size': size,
            'model_sha256': h.hexdigest(), 'n_ctx': n_ctx,
            'template_sha256': hashlib.sha256(template.encode('utf-8')).hexdigest(),
            'llama_cpp_python': llama_version}


def identity_mismatch(saved: Dict, current: Dict) -> str:
    """'' if a state saved under ``saved`` can be loaded now, else the reason."""
    names = {'model_sha256': 'another model file', 'model_size': 'another model file',
             'n_ctx': 'another n_ctx', 'template_sha256': 'another chat template',
             'llama_cpp_python': 'another llama-cpp-python version'}
    for key, what in names.items():
        if saved.get(key) != current.get(key):
            return (f'saved with {what} ({key} {saved.get(key)!r}, now '
                    f'{current.get(key)!r})')
    return ''


class SessionCache:
    """
    The RAM cache: session id -> SavedSequence, least recently used evicted beyond ``max_bytes``.

    Used by the engine's scheduler thread only (the counters are read by diagnostics from other
    threads: plain ints).
    """

    def __init__(self, max_bytes: int, disk: Optional['SessionDisk'] = None):
        self.max_bytes = max_bytes
        self.disk = disk
        self._ram: 'collections.OrderedDict[str, SavedSequence]' = collections.OrderedDict()
        self.ram_bytes = 0

    def __len__(self) -> int:
        return len(self._ram)

    def put(self, session: str, saved: SavedSequence) -> None:
        self.discard_ram(session)
        if saved.nbytes > self.max_bytes:
            return  # bigger than the whole cache (the disk copy, if any, stays)
        self._ram[session] = saved
        self.ram_bytes += saved.nbytes
        while self.ram_bytes > self.max_bytes:
            _, old = self._ram.popitem(last=False)
            self.ram_bytes -= old.nbytes

    def take(self, session: str) -> Tuple[Optional[SavedSequence], str]:
        """
        Remove and return the session's saved state and where it came from.

        Returns (state, 'ram' or 'disk'), or (None, '') when there is none.
        """
        saved = self._ram.pop(session, None)
        if saved is not None:
            self.ram_bytes -= saved.nbytes
            return saved, 'ram'
        if self.disk is not None:
            saved = self.disk.read_kv(session)
            if saved is not None:
                return saved, 'disk'
        return None, ''

    def discard_ram(self, session: str) -> None:
        old = self._ram.pop(session, None)
        if old is not None:
            self.ram_bytes -= old.nbytes

    def clear(self) -> None:
        self._ram.clear()
        self.ram_bytes = 0


class SessionDisk:
    """One file per session under ``directory``; writes happen on a background thread."""

    def __init__(self, directory: str, identity: Dict,
                 log: Callable[[str, str], None] = lambda level, msg: None):
        self.directory = directory
        self.identity = identity
        self._log = log
        os.makedirs(directory, exist_ok=True)
        self._pending: 'collections.OrderedDict[str, Tuple]' = collections.OrderedDict()
        self._cond = threading.Condition()
        self._writing = False
        self._closed = False
        self._kv_ok: Dict[str, bool] = {}   # sessions whose file holds a usable KV state
        self._thread = threading.Thread(target=self._run, name='session-writer', daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ paths
    def path(self, session: str) -> str:
        # ids are [A-Za-z0-9_.:-]{1,64}: hex keeps '..' and ':' out of file names
        return os.path.join(self.directory, session.encode('utf-8').hex() + SUFFIX)

    @property
    def kv_sessions(self) -> int:
        return sum(1 for ok in self._kv_ok.values() if ok)

    # ------------------------------------------------------------------ writing
    def write(self, session: str, history: List[Tuple[str, str]],
              saved: Optional[SavedSequence]) -> None:
        """Queue a write; a newer write of the same session replaces a queued one."""
        with self._cond:
            self._pending[session] = (list(history), saved)
            self._pending.move_to_end(session)
            self._cond.notify_all()

    def delete(self, session: str) -> None:
        with self._cond:
            self._pending.pop(session, None)
            self._kv_ok.pop(session, None)
        try:
            os.remove(self.path(session))
        except FileNotFoundError:
            pass
        except OSError as e:
            self._log('warn', f'session {session!r}: could not delete its file: {e}')

    def flush(self, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._writing,
                                       timeout)

    def close(self, timeout: float = 10.0) -> bool:
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return done

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                session, (history, saved) = self._pending.popitem(last=False)
                self._writing = True
            try:
                self._write_file(session, history, saved)
            except OSError as e:
                self._log('warn', f'session {session!r}: could not save it to '
                                  f'{self.directory}: {e}')
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _write_file(self, session: str, history, saved: Optional[SavedSequence]) -> None:
        blob = saved.blob if saved is not None else b''
        tokens = saved.tokens if saved is not None else []
        header = json.dumps({
            'session_id': session, 'identity': self.identity, 'history': history,
            'n_tokens': len(tokens), 'kv_bytes': len(blob),
            'kv_sha256': hashlib.sha256(blob).hexdigest()}).encode('utf-8')
        path = self.path(session)
        tmp = f'{path}.tmp-{os.getpid()}'
        with open(tmp, 'wb') as f:
            f.write(MAGIC)
            f.write(struct.pack('<Q', len(header)))
            f.write(header)
            f.write(struct.pack(f'<{len(tokens)}i', *tokens))
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one
        self._kv_ok[session] = bool(blob)

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _read_header(path: str) -> Tuple[Dict, int]:
        """(header, offset of the token array); ValueError says what is wrong."""
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise ValueError('not a session file (bad magic)')
            raw = f.read(8)
            if len(raw) != 8:
                raise ValueError('truncated header')
            (n,) = struct.unpack('<Q', raw)
            if n > 64 << 20 or len(MAGIC) + 8 + n > size:
                raise ValueError('truncated or corrupt header')
            try:
                header = json.loads(f.read(n).decode('utf-8'))
            except (ValueError, UnicodeDecodeError) as e:
                raise ValueError(f'corrupt header: {e}') from e
        if not isinstance(header, dict) or not isinstance(header.get('history'), list):
            raise ValueError('corrupt header: no history')
        offset = len(MAGIC) + 8 + n
        expected = offset + 4 * int(header.get('n_tokens', 0)) + int(header.get('kv_bytes', 0))
        if expected != size:
            raise ValueError(f'truncated: {size} bytes, the header says {expected}')
        return header, offset

    def load_all(self) -> List[StoredSession]:
        """
        Every intact session file (history; whether its KV state is usable, and why not).

        Bad files are skipped with a warning; leftover temporary files are removed.
        """
        found = []
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            if '.tmp-' in name:
                try:
                    os.remove(path)  # an interrupted write: the previous file is intact
                except OSError:
                    pass
                continue
            if not name.endswith(SUFFIX):
                continue
            try:
                header, _ = self._read_header(path)
                session = header['session_id']
                history = [(str(u), str(a)) for u, a in header['history']]
            except (OSError, ValueError, KeyError, TypeError) as e:
                self._log('warn', f'session file {path} skipped: {e}')
                continue
            if self.path(session) != path:
                self._log('warn', f'session file {path} skipped: its name does not match '
                                  f'its session id {session!r}')
                continue
            reason = ''
            if not header.get('kv_bytes'):
                reason = 'no KV state saved'
            else:
                reason = identity_mismatch(header.get('identity') or {}, self.identity)
            self._kv_ok[session] = not reason
            found.append(StoredSession(session, history, not reason, reason, path))
        return found

    def read_kv(self, session: str) -> Optional[SavedSequence]:
        """Return the session's KV state from its file, if usable (identity and checksum)."""
        if not self._kv_ok.get(session):
            return None
        path = self.path(session)
        try:
            header, offset = self._read_header(path)
            if identity_mismatch(header.get('identity') or {}, self.identity):
                return None
            n_tokens, n_kv = int(header['n_tokens']), int(header['kv_bytes'])
            with open(path, 'rb') as f:
                f.seek(offset)
                tokens = list(struct.unpack(f'<{n_tokens}i', f.read(4 * n_tokens)))
                blob = f.read(n_kv)
            if hashlib.sha256(blob).hexdigest() != header.get('kv_sha256'):
                raise ValueError('KV state checksum mismatch')
        except (OSError, ValueError, KeyError, struct.error) as e:
            self._log('warn', f'session {session!r}: its saved KV state is unusable ({e}); '
                              'the history is evaluated again')
            self._kv_ok[session] = False
            return None
        return SavedSequence(tokens, blob)
