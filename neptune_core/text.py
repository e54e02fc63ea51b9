"""Text that is safe to write: :func:`clean_text`."""

from __future__ import annotations


def clean_text(s: str) -> str:
    """``s`` as valid Unicode text (encodable as UTF-8): surrogate pairs joined into the character
    they encode, lone surrogates replaced by U+FFFD. Text that is already valid is returned as is."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
