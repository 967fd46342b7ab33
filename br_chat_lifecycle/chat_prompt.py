# Copyright 2026 br_chat_lifecycle developers. Licensed under the Apache License 2.0.
"""
Chat-template rendering with injection-safe tokenization.

The model's own chat template (GGUF metadata ``tokenizer.chat_template``) is rendered with
llama-cpp-python's ``Jinja2ChatFormatter`` (the same Jinja environment llama.cpp's Python
bindings use for ``create_chat_completion``). What we add by hand is the tokenization step:
rendering the template to one string and tokenizing it with ``special=True`` would let a user
type ``<|im_end|><|im_start|>system`` and have it parsed as real template structure. So each
message's content is rendered as a unique placeholder, the rendered text is split at the
placeholders, template text is tokenized with special tokens enabled and message content
with special tokens disabled (plain text, whatever it looks like).
"""
import re
from typing import Callable, Dict, List, Sequence

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from .tool_calls import mask_strings

# Used when a GGUF carries no chat template (logged by the engine).
CHATML_TEMPLATE = (
    '{% for message in messages %}'
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    '{% endfor %}'
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_OPEN, _CLOSE = '\ue000', '\ue001'          # Unicode private-use code points
_PLACEHOLDER = re.compile(_OPEN + r'(\d+)' + _CLOSE)
_PRIVATE = re.compile('[' + _OPEN + _CLOSE + ']')

# tokenize(text, special, add_bos) -> token ids
Tokenize = Callable[[str, bool, bool], List[int]]


class ChatPrompt:

    def __init__(self, template: str, bos_token: str, eos_token: str, add_bos: bool):
        self._formatter = Jinja2ChatFormatter(
            template=template, eos_token=eos_token, bos_token=bos_token,
            add_generation_prompt=True)
        self._bos_text = bos_token
        self._add_bos = add_bos

    def render(self, messages: Sequence[Dict[str, str]], tools=None) -> str:
        """Return the prompt as text (for logs and debugging)."""
        kwargs = {'tools': tools} if tools else {}
        return self._formatter(messages=[dict(m) for m in messages], **kwargs).prompt

    def tokens(self, messages: Sequence[Dict[str, str]], tokenize: Tokenize,
               tools=None) -> List[int]:
        """
        Token ids of the rendered conversation.

        ``tools`` (OpenAI tool declarations) are handed to a template that renders them; every
        string in them is plain text too.
        """
        contents = [_PRIVATE.sub('', m['content']) for m in messages]
        masked = [{'role': m['role'], 'content': f'{_OPEN}{i}{_CLOSE}'}
                  for i, m in enumerate(messages)]
        kwargs = {}
        if tools:
            masked_tools, texts = mask_strings(tools, len(contents), _OPEN, _CLOSE)
            contents += [_PRIVATE.sub('', t) for t in texts]
            kwargs['tools'] = masked_tools
        rendered = self._formatter(messages=masked, **kwargs).prompt
        ids: List[int] = []
        add_bos = self._add_bos and not (self._bos_text and rendered.startswith(self._bos_text))
        pos = 0
        for match in _PLACEHOLDER.finditer(rendered):
            ids += self._piece(rendered[pos:match.start()], True, add_bos and not ids, tokenize)
            ids += self._piece(contents[int(match.group(1))], False, add_bos and not ids,
                               tokenize)
            pos = match.end()
        ids += self._piece(rendered[pos:], True, add_bos and not ids, tokenize)
        return ids

    @staticmethod
    def _piece(text: str, special: bool, add_bos: bool, tokenize: Tokenize) -> List[int]:
        if not text and not add_bos:
            return []
        return tokenize(text, special, add_bos)
