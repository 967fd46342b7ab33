"""Bounded store of multi-turn conversations, keyed by session id.

Bounds: at most ``max_sessions`` conversations (the least recently used one is evicted when
a new one would exceed it) and at most ``max_turns`` user/assistant turns per conversation
(oldest dropped first). Only the chat worker thread touches it, so it needs no lock for
correctness; ``len()`` from other threads (diagnostics) is safe in CPython.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

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
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def history(self, session_id: str) -> List[Turn]:
        """A copy of the session's turns (empty for unknown or empty ids)."""
        if not session_id:
            return []
        turns = self._sessions.get(session_id)
        if turns is None:
            return []
        self._sessions.move_to_end(session_id)
        return list(turns)

    def reset(self, session_id: str) -> bool:
        """Forget a session; True if it existed."""
        return self._sessions.pop(session_id, None) is not None

    def append(self, session_id: str, user: str, assistant: str) -> None:
        if not session_id:
            return
        turns = self._sessions.setdefault(session_id, [])
        self._sessions.move_to_end(session_id)
        turns.append((user, assistant))
        del turns[:-self.max_turns]
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
            self.evicted += 1

    def replace(self, session_id: str, turns: List[Turn]) -> None:
        """Store a trimmed history (after dropping turns that no longer fit n_ctx)."""
        if session_id in self._sessions:
            self._sessions[session_id] = list(turns)

    def clear(self) -> None:
        self._sessions.clear()

    def snapshot(self) -> Dict[str, int]:
        return {sid: len(turns) for sid, turns in self._sessions.items()}
