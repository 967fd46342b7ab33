# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
How a goal's streamed text becomes action feedback: per piece, batched, or per sentence.

No ROS: ``publish(text)`` is the node's. Either way nothing is lost - ``flush`` sends what is
left when the generation ends - so the partials always concatenate to the reply.
"""
import threading
import time

from .sentence_stream import SentenceStream


class FeedbackBatcher:
    """
    Publishes streamed text as feedback, every piece at once or batched per ``interval``.

    Every piece at once (interval 0, the default), or at most one message per ``interval`` seconds
    carrying everything generated since the last one (lower client CPU for fast models). ``flush``
    sends the rest; nothing is ever lost, so the partials still concatenate to the reply.
    """

    def __init__(self, publish, interval: float):
        self._publish = publish
        self._interval = interval
        self._pending = []
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, piece: str) -> None:
        with self._lock:
            self._pending.append(piece)
            now = time.monotonic()
            if self._interval > 0 and now - self._last < self._interval:
                return
            self._last = now
            text, self._pending = ''.join(self._pending), []
            self._publish(text)

    def flush(self) -> None:
        with self._lock:
            text, self._pending = ''.join(self._pending), []
            if text:
                self._publish(text)


class SentenceFeedback:
    """
    Publishes streamed text as feedback, one complete sentence per message.

    For stream_unit "sentence" (text-to-speech): each sentence is published as soon as the
    text that completes it is generated (a sentence ending in a terminator waits for the next
    piece, which shows whether a closing quote, a digit or a space follows; see
    sentence_stream), several in a row if one piece completes several; ``flush`` sends the
    rest. No timer: feedback_min_interval_s does not apply. The partials still concatenate to
    the reply.
    """

    def __init__(self, publish, max_chars: int):
        self._publish = publish
        self._stream = SentenceStream(max_chars)
        self._lock = threading.Lock()

    def add(self, piece: str) -> None:
        with self._lock:
            for sentence in self._stream.feed(piece):
                self._publish(sentence)

    def flush(self) -> None:
        with self._lock:
            rest = self._stream.finish()
            if rest:
                self._publish(rest)
