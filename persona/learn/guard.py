"""Learned preferences are data, not instructions: detect texts that try to be instructions."""

from __future__ import annotations

import re

_INJECTION = re.compile(
    r"""(
        ignore\s+(all\s+|any\s+|the\s+)?(previous|prior|above|earlier|system)\b
      | disregard\s+(all\s+|any\s+|the\s+)?(previous|prior|above|system|instructions|rules)
      | forget\s+(all\s+|your\s+|the\s+)?(previous\s+)?(instructions|rules)
      | (new|override|overwrite|replace)\s+(the\s+)?(system\s+prompt|instructions)
      | system\s+prompt
      | you\s+are\s+now\b
      | act\s+as\s+(if\s+you\s+are\s+)?(an?\s+)?(unfiltered|jailbroken|dan)\b
      | reveal\s+(your|the)\s+(system|hidden|secret)
      | </?\s*(system|user-preferences|assistant)\s*>
      | \bjailbreak
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def looks_like_injection(text: str) -> bool:
    """True when ``text`` reads like an attempt to override the system prompt."""
    return bool(_INJECTION.search(text))


def as_data(text: str) -> str:
    """Render a stored preference safely inside a delimited block: one line, no tags."""
    one_line = " ".join(text.split())
    return one_line.replace("<", "‹").replace(">", "›")
