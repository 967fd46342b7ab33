# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Bounded store of multi-turn conversations (their text), keyed by session id.

Bounds: at most ``max_sessions`` conversations (the least recently used one is forgotten when
a new one would exceed it) and at most ``max_turns`` user/assistant turns per conversation
(oldest dropped first). Thread-safe: the dispatcher reads histories while the engine thread
appends replies. The KV caches of the conversations live in session_cache.py.
"""
from collections import OrderedDict
import re
import threading
from typing import List, Optional, Tuple

SESSION_ID_PATTERN = re.compile(r'^[A-Za-z0-9_.:\-]{1,64}$')

Turn = Tuple[str, str]  # (user text, assistant text)


def session_id_error(session_id: str) -> Optional[str]:
    """None if ``session_id`` is acceptable, else a human-readable reason."""
    if session_id == '' or SESSION_ID_PATTERN.match(session_id):
        return None
    shown = session_id if len(session_id) <= 40 else session_id[:40] + '...'
    return (f'invalid session_id {shown!r} ({len(session_id)} chars): use 1-64 characters '
            'of A-Z a-z 0-9 _ . : -')


class SessionStore:

    def __init__(self, max_sessions: int, max_turns: int):
        self.max_sessions = max_sessions
        self.max_turns = max_turns
        self._sessions: 'OrderedDict[str, List[Turn]]' = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def history(self, session_id: str, touch: bool = True) -> List[Turn]:
        """Return a copy of the session's turns (empty for unknown or empty ids)."""
        if not session_id:
            return []
        with self._lock:
            turns = self._sessions.get(session_id)
            if turns is None:
                return []
            if touch:
                self._sessions.move_to_end(session_id)
            return list(turns)

    def reset(self, session_id: str) -> bool:
        """Forget a session; True if it existed."""
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def append(self, session_id: str, user: str, assistant: str) -> None:
        if not session_id:
            return
        with self._lock:
            turns = self._sessions.setdefault(session_id, [])
            self._sessions.move_to_end(session_id)
            turns.append((user, assistant))
            del turns[:-self.max_turns]
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def replace(self, session_id: str, turns: List[Turn], create: bool = False) -> None:
        """
        Store a trimmed history, or with ``create`` a history read back from session_dir.

        A trimmed history is what is left after dropping the turns that no longer fit n_ctx.
        """
        with self._lock:
            if session_id in self._sessions or create:
                self._sessions[session_id] = list(turns)[-self.max_turns:]
                while len(self._sessions) > self.max_sessions:
                    self._sessions.popitem(last=False)

    def ids(self) -> List[str]:
        with self._lock:
            return list(self._sessions)

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
