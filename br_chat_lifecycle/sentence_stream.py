# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Splits streamed text into sentences as soon as each one is complete (for text-to-speech).

``SentenceStream(max_chars).feed(text)`` returns the sentences that became complete (possibly
several, possibly none); ``finish()`` returns the rest. The concatenation of everything
returned is exactly the text fed: whitespace after a sentence starts the next one, nothing is
dropped or added. Feeding a text in any pieces (one character at a time, or all at once) gives
the same sentences.

Rules (``_decide``), in order:
  * A newline ends a sentence (when there is more than whitespace before it).
  * ``。！？；!?;`` end a sentence, together with any terminators and closing quotes/brackets
    right after them (``?!``, ``。”``, ``!)``, ``."``; see CLOSERS).
  * ``.`` and ``…`` (and runs of them: ``...``, ``……``) end a sentence only when followed by
    whitespace: never inside a number (``3.5``, ``1,000.25``, ``v2.0``), a name
    (``example.com``) or before a comma (``e.g.,``), nor in Chinese ``……`` followed by text.
    Exceptions when followed by whitespace:
      - never after a title or an example marker (NEVER_END: ``Mr. Dr. e.g. i.e.`` ...), a
        single letter (an initial: ``J. R. R. Tolkien``; so ``vitamin C. It`` stays one
        sentence), or a 1-3 digit list number at the start of a line (``1. First``);
      - after an abbreviation that may end a sentence (MAY_END: ``etc.``, ``a.m.``), any
        dotted acronym (``U.S.``) and an ellipsis (``...``, ``…``): only when the next word
        does not start with a lowercase letter, a digit or ``,;:`` (``etc. are`` continues,
        ``etc. They`` splits).
  * A sentence longer than ``max_chars`` is cut: after the last comma (``，、``, or ``,``
    followed by whitespace) in the second half of the first ``max_chars`` characters, else
    before the last whitespace, else after any comma, else after exactly ``max_chars``
    characters. Pieces are at most ``max_chars`` long, except the very last one returned by
    ``finish`` when it ends in a terminator still waiting for its next character.

Latency: a sentence is returned by the ``feed`` call that brings the character deciding it.
That is the call with its last character when the decision needs nothing more (a newline, or
a terminator followed by more text in the same piece); a sentence whose text ends in a
terminator is held until the next piece shows the following character (it may be a closing
quote, more dots, a digit, or whitespace), or ``finish``. After an ellipsis or MAY_END
abbreviation it waits for the first character of the next word. Nothing is held for time.

Hand-written: the sentence rules above are specific to streaming speech (a complete sentence
must be released the moment the next character shows it is complete, and cut at a bounded
length); the sentence splitters of NLP libraries (nltk's punkt, pysbd, spaCy) work on whole
texts, not increments, and would add a large dependency for this one job.
"""
from typing import List, Optional, Tuple
import unicodedata

# Always end a sentence (with the closers that follow them).
HARD = frozenset('。！？；!?;')
# End a sentence only when followed by whitespace (see the module docstring).
SOFT = frozenset('.…')
# Closing quotes and brackets that stay with the terminator before them (and '*', the end of
# markdown emphasis, so "**Done.** Next" splits after "**").
CLOSERS = frozenset('"\'”’」』）)]】》〉*')
# Commas a too-long sentence may be cut after (ASCII ',' only when whitespace follows).
COMMAS = frozenset('，、,')
# Lower-cased words before '.' that never end a sentence: titles (followed by a name) and
# example markers. Deliberately short: a missing entry only splits a sentence early.
NEVER_END = frozenset(('mr', 'mrs', 'ms', 'dr', 'prof', 'sr', 'jr', 'st', 'vs', 'cf',
                       'e.g', 'i.e', 'approx', 'fig'))
# Words before '.' that end a sentence only when the next word looks like a new sentence.
MAY_END = frozenset(('etc', 'a.m', 'p.m'))

_UNDECIDED = -1


class SentenceStream:
    """Incremental sentence splitter; see the module docstring for the rules."""

    def __init__(self, max_chars: int = 200, preceding: str = ''):
        """
        Split text into pieces of at most ``max_chars``.

        ``preceding``: the text before the first one fed, when splitting the rest of a text
        split elsewhere (only its last character matters: a list number at the start of a
        line).
        """
        if max_chars < 1:
            raise ValueError(f'max_chars must be >= 1 (got {max_chars})')
        self.max_chars = max_chars
        self._buf = ''                  # text not yet returned
        self._before = preceding[-1:]   # the last character before _buf ('' at the start)

    def feed(self, text: str) -> List[str]:
        """Add ``text``; return the sentences it completed, in order (possibly [])."""
        self._buf += text
        out = []
        while True:
            piece = self._next(final=False)
            if piece is None:
                return out
            out.append(piece)

    def finish(self) -> str:
        """End the text: return everything not yet returned ('' if nothing)."""
        rest, self._buf = self._buf, ''
        if rest:
            self._before = rest[-1]
        return rest

    # ------------------------------------------------------------------ internals
    def _next(self, final: bool) -> Optional[str]:
        """Remove and return the next complete piece of the buffer, or None."""
        buf = self._buf
        end, clear = self._boundary(buf, final)
        if end is None or end > self.max_chars:
            if end is None and clear <= self.max_chars:
                return None   # no complete sentence yet, and not too long yet
            end = self._cut(buf)
        piece, self._buf = buf[:end], buf[end:]
        self._before = piece[-1]
        return piece

    def _boundary(self, buf: str, final: bool) -> Tuple[Optional[int], int]:
        """
        Find the first sentence end in ``buf``.

        Returns (its end index or None, the index up to which ``buf`` is known to hold no
        sentence end).
        """
        i, n = 0, len(buf)
        while i < n:
            if buf[i] == '\n' or buf[i] in HARD or buf[i] in SOFT:
                end = self._decide(buf, i, final)
                if end == _UNDECIDED:
                    return None, i
                if end and buf[:end].strip():
                    return end, end
                if end:   # only whitespace before it: not a sentence, go on
                    i = end
                    continue
                i = self._run_end(buf, i) if buf[i] != '\n' else i + 1
                continue
            i += 1
        return None, n

    @staticmethod
    def _run_end(buf: str, i: int) -> int:
        """Index after the terminators and closers starting at ``i`` (newlines excluded)."""
        j = i
        while j < len(buf) and (buf[j] in HARD or buf[j] in SOFT or buf[j] in CLOSERS):
            j += 1
        return j

    def _decide(self, buf: str, i: int, final: bool) -> int:
        """
        Decide whether the terminator at ``i`` ends a sentence.

        Returns the end index of the sentence it ends, 0 if it ends none, or _UNDECIDED when
        the characters needed to tell have not arrived yet.
        """
        if buf[i] == '\n':
            return i + 1
        j = self._run_end(buf, i)
        if j == len(buf):
            return j if final else _UNDECIDED
        run = buf[i:j]
        if any(c in HARD for c in run):
            return j
        if not buf[j].isspace():
            return 0                      # 3.5, v2.0, e.g., example.com, ……好
        word = self._word_before(buf, i)
        lower = word.lower()
        if lower in NEVER_END or (len(word) == 1 and word.isalpha()):
            return 0
        if word.isdigit() and len(word) <= 3 and self._at_line_start(buf, i - len(word)):
            return 0                      # "1. First item"
        dots = sum(1 for c in run if c in SOFT)
        if lower in MAY_END or '.' in word or dots > 1 or '…' in run:
            k = j
            while k < len(buf) and buf[k].isspace():
                if buf[k] == '\n':
                    return j
                k += 1
            if k == len(buf):
                return j if final else _UNDECIDED
            c = buf[k]
            if c.islower() or c.isdigit() or c in ',;:':
                return 0
        return j

    @staticmethod
    def _word_before(buf: str, i: int) -> str:
        """Return the letters, digits and inner dots right before ``i`` ('e.g', 'Dr', '3')."""
        k = i
        while k > 0 and (buf[k - 1].isalnum() or buf[k - 1] == '.') and \
                not _is_cjk(buf[k - 1]):
            k -= 1
        return buf[k:i].strip('.')

    def _at_line_start(self, buf: str, k: int) -> bool:
        """Only spaces between the start of the line and index ``k``."""
        while k > 0 and buf[k - 1] in ' \t':
            k -= 1
        before = buf[k - 1] if k > 0 else self._before
        return before in ('', '\n')

    def _cut(self, buf: str) -> int:
        """Where to cut a sentence longer than max_chars (1 <= result <= max_chars)."""
        m = self.max_chars
        commas, spaces = [], []
        for idx in range(min(m + 1, len(buf))):
            c = buf[idx]
            if c in COMMAS and idx < m and (c != ',' or buf[idx + 1].isspace()):
                commas.append(idx + 1)
            elif c.isspace() and buf[:idx].strip():
                spaces.append(idx)
        late = [p for p in commas if p >= m / 2 and buf[:p].strip()]
        if late:
            return late[-1]
        if spaces:
            return spaces[-1]
        commas = [p for p in commas if buf[:p].strip()]
        if commas:
            return commas[-1]
        return m


def _is_cjk(c: str) -> bool:
    """Tell a CJK ideograph or kana (no spaces between words: not part of an English word)."""
    return unicodedata.name(c, '').startswith(('CJK', 'HIRAGANA', 'KATAKANA'))


def split_sentences(text: str, max_chars: int = 200) -> List[str]:
    """Split a whole text the way a stream of it would be split (tests, offline use)."""
    stream = SentenceStream(max_chars)
    out = stream.feed(text)
    rest = stream.finish()
    return out + ([rest] if rest else [])
