"""Reading what people type and echoing it back safely.

Chat text arrives in any case, with accents, stray punctuation and whichever quote marks
the keyboard produced; these helpers turn it into something to compare against. Text that
goes back out as markdown passes through ``escape_markdown`` so a user cannot smuggle a
link or an ``<at>`` mention into the bot's own message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Word",
    "escape_markdown",
    "fold",
    "plain_quote",
    "split_words",
    "strip_trailing_punctuation",
]

_LDQ, _RDQ = "\N{LEFT DOUBLE QUOTATION MARK}", "\N{RIGHT DOUBLE QUOTATION MARK}"
_LSQ, _RSQ = "\N{LEFT SINGLE QUOTATION MARK}", "\N{RIGHT SINGLE QUOTATION MARK}"
_LOW9 = "\N{DOUBLE LOW-9 QUOTATION MARK}"
_LAQ = "\N{LEFT-POINTING DOUBLE ANGLE QUOTATION MARK}"
_RAQ = "\N{RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK}"

# Each opening mark with the marks accepted as its close. Curly quotes are paired loosely
# because phones and Word substitute them inconsistently.
_QUOTES: Final[Mapping[str, str]] = {
    '"': f'"{_RDQ}{_LDQ}',
    "'": f"'{_RSQ}{_LSQ}",
    _LDQ: f'{_RDQ}{_LDQ}"',
    _RDQ: f'{_RDQ}"',
    _LSQ: f"{_RSQ}{_LSQ}'",
    _RSQ: f"{_RSQ}'",
    _LOW9: f'{_LDQ}{_RDQ}"',
    _LAQ: _RAQ,
}
# A closing quote counts only before a space, the end, or punctuation, so the apostrophe
# in 'O'Brien Desk' does not end the quote early.
_AFTER_CLOSE: Final = frozenset(",.;:!?)")

_MARKDOWN_SPECIALS: Final = frozenset("\\`*_~[]()|#")
_HTML_ENTITIES: Final[Mapping[str, str]] = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


@dataclass(frozen=True)
class Word:
    text: str
    quoted: bool = False


def split_words(text: str) -> list[Word]:
    """Split on whitespace, keeping anything in straight or curly quotes as one word.

    An unterminated quote runs to the end of the text rather than being an error: a chat
    user who forgets the closing quote still means everything after the opening one.
    """
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        closers = _QUOTES.get(text[i])
        if closers is not None:
            j = i + 1
            while j < n and not (
                text[j] in closers
                and (j + 1 == n or text[j + 1].isspace() or text[j + 1] in _AFTER_CLOSE)
            ):
                j += 1
            inner = " ".join(text[i + 1 : j].split())
            if inner:
                words.append(Word(inner, quoted=True))
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        words.append(Word(text[i:j]))
        i = j
    return words


def fold(text: str) -> str:
    """Lower-case, accent-free, single-spaced text for comparing what people type."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def plain_quote(text: str, limit: int = 60) -> str:
    """Quote user text inside a plain-text sentence: one line, bounded length, “curly quoted”.

    The result is still plain text; escape it before it goes into markdown.
    """
    one_line = " ".join(
        "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text).split()
    )
    if len(one_line) > limit:
        one_line = one_line[: limit - 1].rstrip() + "\N{HORIZONTAL ELLIPSIS}"
    return f"\N{LEFT DOUBLE QUOTATION MARK}{one_line}\N{RIGHT DOUBLE QUOTATION MARK}"


def escape_markdown(text: str) -> str:
    """Make text inert in a Teams markdown message.

    Link, emphasis and code punctuation is backslash-escaped, and ``& < >`` become HTML
    entities so ``<at>Everyone</at>`` and other tags render as text instead of mentions.
    Line breaks become spaces so echoed text cannot start a heading, list or quote.
    """
    out: list[str] = []
    for ch in text:
        if ch in _HTML_ENTITIES:
            out.append(_HTML_ENTITIES[ch])
        elif ch in _MARKDOWN_SPECIALS:
            out.append("\\" + ch)
        elif ch in "\r\n\t\v\f\u2028\u2029":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


_TRAILING_PUNCTUATION: Final = re.compile(r"[\s.!?,;:]+$")


def strip_trailing_punctuation(text: str) -> str:
    """'help?' and 'cancel!' mean the same as without the mark."""
    return _TRAILING_PUNCTUATION.sub("", text)
