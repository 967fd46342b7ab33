# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Turns a stream of token byte-pieces into text pieces that are safe to publish.

Two things make naive streaming wrong:
  * a token may end in the middle of a multi-byte UTF-8 character (common for Chinese and
    emoji with byte-level BPE vocabularies), so decoding each piece alone yields U+FFFD;
  * a stop sequence may arrive split over several tokens, so text that could be the start of
    a stop sequence must be held back until it is known not to be one;
  * a NUL character (a model can emit the byte 0x00) cannot travel in a ROS string (it is a
    C string: everything after the NUL is silently cut off), so NULs are dropped.

``TextStream.feed`` returns only text that is final; ``TextStream.finish`` returns the rest.
The concatenation of every returned piece is exactly ``TextStream.text``.
"""
import codecs
from typing import Iterable, List


class TextStream:

    def __init__(self, stop: Iterable[str] = ()):
        self._stops: List[str] = [s for s in stop if s]
        self._decoder = codecs.getincrementaldecoder('utf-8')(errors='replace')
        self._held = ''          # decoded text not yet released (possible stop prefix)
        self._emitted: List[str] = []
        self.stopped = False     # a stop sequence was seen; nothing more is accepted

    @property
    def text(self) -> str:
        return ''.join(self._emitted)

    def feed(self, piece: bytes) -> str:
        """Add the bytes of one token; return the text that became final (may be '')."""
        if self.stopped:
            return ''
        self._held += self._decoder.decode(piece).replace('\x00', '')
        if not self._stops:
            out, self._held = self._held, ''
            return self._emit(out)
        cut = self._first_stop(self._held)
        if cut >= 0:
            out = self._held[:cut]
            self._held = ''
            self.stopped = True
            return self._emit(out)
        keep = self._longest_stop_prefix_suffix(self._held)
        out = self._held[:len(self._held) - keep]
        self._held = self._held[len(self._held) - keep:]
        return self._emit(out)

    def finish(self) -> str:
        """
        Release everything still held.

        An incomplete trailing UTF-8 sequence (generation stopped in the middle of a character) is
        dropped rather than turned into U+FFFD.
        """
        if self.stopped:
            return ''
        self._decoder.reset()
        out, self._held = self._held, ''
        return self._emit(out)

    def _emit(self, out: str) -> str:
        if out:
            self._emitted.append(out)
        return out

    def _first_stop(self, text: str) -> int:
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        return min(hits) if hits else -1

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        best = 0
        for s in self._stops:
            for n in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:n]):
                    best = max(best, n)
                    break
        return best
