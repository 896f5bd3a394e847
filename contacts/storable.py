"""Text every database Herald runs on can store, whichever door it came in by.

Files, JSON escapes and webhook payloads can all spell characters that no column
takes: PostgreSQL refuses NUL, and no database can encode a lone surrogate.
"""


def storable_text(text: str) -> bool:
    """Whether every database can store `text`: no NUL, no unpaired surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
