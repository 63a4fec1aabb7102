from __future__ import annotations

import pytest

from dialogs.text import Word, escape_markdown, fold, plain_quote, split_words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('US 425 "Contoso Support"', ["US", "425", "Contoso Support"]),
        ("'Help Desk' now", ["Help Desk", "now"]),
        ("\u201cContoso Support\u201d", ["Contoso Support"]),
        ("\u2018Help Desk\u2019", ["Help Desk"]),
        ("\u201eHilfe Desk\u201c", ["Hilfe Desk"]),
        ("'O'Brien Line' x", ["O'Brien Line", "x"]),
        ('"Contoso Support", thanks', ["Contoso Support", ",", "thanks"]),
        ("  spaced    out  ", ["spaced", "out"]),
    ],
)
def test_quoted_phrases_stay_one_word(text: str, expected: list[str]) -> None:
    assert [w.text for w in split_words(text)] == expected


def test_apostrophe_inside_a_word_does_not_open_a_quote() -> None:
    assert split_words("O'Brien's line") == [Word("O'Brien's"), Word("line")]


def test_unterminated_quote_runs_to_the_end() -> None:
    assert split_words('US "Contoso Support') == [Word("US"), Word("Contoso Support", quoted=True)]


def test_fold_ignores_case_accents_and_spacing() -> None:
    assert fold("  Österreich   ESPAÑA ") == "osterreich espana"


@pytest.mark.parametrize(
    "attack",
    [
        "[click](http://evil.example)",
        "<at>Everyone</at>",
        "**bold** _it_ `code` ~~gone~~",
        "![img](http://evil.example/x.png)",
        "line one\n# heading\n> quote",
    ],
)
def test_escaped_text_has_no_live_markdown_or_tags(attack: str) -> None:
    escaped = escape_markdown(attack)
    for special in "[]()*_`~#":
        assert escaped.count(special) == escaped.count("\\" + special)
    assert "<" not in escaped
    assert ">" not in escaped
    assert "\n" not in escaped


def test_escaping_keeps_the_visible_text() -> None:
    assert escape_markdown("[click](x)") == r"\[click\]\(x\)"
    assert escape_markdown("<at>Everyone</at>") == "&lt;at&gt;Everyone&lt;/at&gt;"
    assert escape_markdown("Tom & Jerry") == "Tom &amp; Jerry"
    assert escape_markdown("Contoso Support") == "Contoso Support"


def test_plain_quote_is_one_bounded_line() -> None:
    quoted = plain_quote("a\nb\tc" + "x" * 100, limit=20)
    assert "\n" not in quoted
    assert len(quoted) == 22
    assert quoted.startswith("\u201ca b c")
    assert quoted.endswith("\u2026\u201d")
