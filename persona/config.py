"""Where persona keeps its data, and the limits every public entry point enforces."""

from __future__ import annotations

import hashlib
import math
import operator
import os
import re
from pathlib import Path

from persona.errors import InvalidInputError

#: The one environment variable persona reads for its data directory.
HOME_ENV = "PERSONA_HOME"
#: Where the converted local model is kept when set (default ``<home>/models``): several homes
#: on one machine (servers, test runs) then share one conversion of ≈ 540 MB.
MODELS_ENV = "PERSONA_MODELS"

#: Longest text accepted for a preference, a context, an answer or a feedback (characters).
#: Long enough for a full document to summarize; short enough to embed and store quickly.
MAX_TEXT_CHARS = 20_000
#: Longest preference text (characters): a preference is a short description, not a document.
MAX_PREFERENCE_CHARS = 1_000
#: Longest user id (characters).
MAX_USER_ID_CHARS = 128

_SAFE_DIR = re.compile(r"[^A-Za-z0-9_.-]+")


def default_home() -> Path:
    """``$PERSONA_HOME``, else ``~/.local/share/persona``."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "persona"


def models_dir(home: Path | None = None) -> Path:
    """``$PERSONA_MODELS`` when set, else ``<home>/models`` (``home``: the persona home)."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    return (Path(home) if home else default_home()) / "models"


def resolve_home(path: object) -> tuple[Path, Path]:
    """``(data directory, database file)`` for ``PreferenceLayer.open(path)``, created if
    missing: a directory holds ``persona.db``; a ``.db`` path names the file itself."""
    if path is not None and not isinstance(path, str | Path):
        raise InvalidInputError(
            f"path must be a directory or a .db file path, got {type(path).__name__} {path!r:.60}."
        )
    home = Path(path).expanduser() if path is not None else default_home()
    if home.suffix in {".db", ".sqlite", ".sqlite3"}:
        db_path, home = home, home.parent
    else:
        db_path = home / "persona.db"
    try:
        str(home).encode("utf-8")
        home.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:  # ValueError: NUL byte or unpaired surrogate
        raise InvalidInputError(
            f"cannot use {str(home)!r:.80} as the data directory ({exc}); pass a writable "
            "path or set PERSONA_HOME."
        ) from exc
    return home, db_path


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (x86 AVX512-BF16/AMX, Arm BF16); where
    it does not, bfloat16 is emulated and slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore").split()
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(flags))


def env_dtype() -> str:
    """``$PERSONA_DTYPE`` ("bfloat16" or "float32"), or "auto" when it is unset or empty."""
    value = os.environ.get("PERSONA_DTYPE", "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value not in ("bfloat16", "float32"):
        raise InvalidInputError(
            f"PERSONA_DTYPE={value!r}: expected 'bfloat16', 'float32' or 'auto'; unset it to "
            "let the local model choose."
        )
    return value


def set_offline() -> None:
    """Never let transformers / sentence-transformers reach for a model hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _bad_char(text: str) -> str | None:
    """The first character no stored text may hold: NUL or a lone surrogate (not encodable)."""
    for ch in text:
        if ch == "\x00" or "\ud800" <= ch <= "\udfff":
            return ch
    return None


def _control(ch: str) -> bool:
    """C0, DEL and C1 control characters (and lone surrogates): never part of an id."""
    code = ord(ch)
    return code < 32 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF


def check_user_id(user_id: object) -> str:
    """Validate a user id. Any printable text works; it never becomes a raw path."""
    if not isinstance(user_id, str):
        raise InvalidInputError(
            f"user_id must be a string, got {type(user_id).__name__} {user_id!r:.60}; "
            "pass the user's id as text, e.g. 'alice'."
        )
    if not user_id.strip():
        raise InvalidInputError(
            f"user_id {user_id!r} is empty; pass a non-empty id such as 'alice'."
        )
    if len(user_id) > MAX_USER_ID_CHARS:
        raise InvalidInputError(
            f"user_id {user_id[:40]!r}... is {len(user_id)} characters; "
            f"use at most {MAX_USER_ID_CHARS}."
        )
    if any(_control(c) for c in user_id):
        raise InvalidInputError(
            f"user_id {user_id!r} contains a control character or an unpaired surrogate; "
            "remove it from the id."
        )
    if user_id != user_id.strip():
        raise InvalidInputError(
            f"user_id {user_id!r} starts or ends with a space; pass {user_id.strip()!r}."
        )
    if "/" in user_id or "\\" in user_id or ".." in user_id:
        raise InvalidInputError(
            f"user_id {user_id!r} contains '/', a backslash or '..'; "
            "user ids must not look like paths — use e.g. 'alice' or 'team-a.alice'."
        )
    return user_id


def safe_dir_name(user_id: str) -> str:
    """A file-system-safe, collision-free folder name for a user id (never the raw id)."""
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]
    readable = _SAFE_DIR.sub("_", user_id)[:40].strip("._") or "user"
    return f"{readable}-{digest}"


def check_text(value: object, name: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """Validate a text argument: a non-empty string within ``limit`` characters, with no NUL
    and no unpaired surrogate (neither can be stored as UTF-8)."""
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{name} must be a string, got {type(value).__name__} {value!r:.60}; pass text."
        )
    if not value.strip():
        raise InvalidInputError(f"{name} {value!r} is empty or whitespace; pass some text.")
    if len(value) > limit:
        raise InvalidInputError(
            f"{name} is {len(value):,} characters ({value[:40]!r}...); the limit is "
            f"{limit:,}: shorten it."
        )
    bad = _bad_char(value)
    if bad is not None:
        what = "a NUL character" if bad == "\x00" else f"an unpaired surrogate {bad!r}"
        raise InvalidInputError(f"{name} {value[:40]!r} contains {what}; remove it.")
    return value


def check_optional_text(value: object, name: str, *, limit: int = MAX_TEXT_CHARS) -> str | None:
    """``None``, or a valid text (see :func:`check_text`)."""
    return None if value is None else check_text(value, name, limit=limit)


#: Row ids are SQLite integers: 1 .. 2**63 - 1.
MAX_ROW_ID = 2**63 - 1


def check_pref_id(value: object, name: str = "pref_id") -> int:
    """A preference id: a positive int (not a bool, not a float, not a string)."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise InvalidInputError(
            f"{name} must be an integer id, got {type(value).__name__} {value!r:.60}; pass "
            "the id shown beside the preference, e.g. 3."
        )
    value = operator.index(value)  # type: ignore[arg-type]  # numpy integers too
    if not 1 <= value <= MAX_ROW_ID:
        raise InvalidInputError(
            f"{name} {value} is out of range; ids are positive integers below 2**63."
        )
    return value


#: Most example prompts one feedback may carry (in scope or out of scope).
MAX_SCOPE_PROMPTS = 256


def check_prompts(value: object, name: str) -> list[str]:
    """``None`` or a list/tuple of texts (a single string is refused: it is not a list)."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise InvalidInputError(
            f"{name} must be a list of prompts, got {type(value).__name__} {value!r:.60}; "
            f"pass e.g. {name}=['Write an email to my boss']."
        )
    if len(value) > MAX_SCOPE_PROMPTS:
        raise InvalidInputError(
            f"{name} has {len(value)} prompts; pass at most {MAX_SCOPE_PROMPTS}."
        )
    return [check_text(p, f"{name}[{i}]") for i, p in enumerate(value)]


def check_count(name: str, value: object, *, minimum: int = 1) -> None:
    """A count option (``top_k``, ``cipher_k``, ...): a whole number >= ``minimum``, not a
    bool."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(
            f"{name}={value!r:.40} must be a whole number >= {minimum}, e.g. 5."
        )


def check_follow_adapter(value: object) -> None:
    """The local model's follow adapter option: True, False or a folder path."""
    if not isinstance(value, bool | str):
        raise InvalidInputError(
            f"follow_adapter={value!r:.40} must be True (the shipped adapter), "
            "False (none) or the path of an adapter folder."
        )


def check_similarity(name: str, value: object) -> None:
    """A cosine threshold: a finite number in [-1, 1], not a bool."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not -1.0 <= value <= 1.0
    ):
        raise InvalidInputError(
            f"{name}={value!r:.40} must be a cosine similarity between -1 and 1, e.g. 0.25."
        )


#: Most prompts of one list of a C3PO dataset (the paper's sizes fit: 30 x 32 = 960).
MAX_DATASET_PROMPTS = 4_096


def check_dataset(value: object, where: str) -> dict[str, object] | None:
    """A feedback's C3PO dataset (as stored and exported), or ``None``: every list a list of
    texts, the three prompt sets split into ``train`` and ``test``."""
    if value is None:
        return None

    def bad(problem: str) -> InvalidInputError:
        return InvalidInputError(
            f"import: {where} {problem}; export the user again, or remove the dataset (it is "
            "rebuilt without an LLM from the feedback and its examples)."
        )

    if not isinstance(value, dict):
        raise bad(f"must be an object, got {type(value).__name__}")

    def texts(item: object, name: str) -> None:
        if not isinstance(item, list) or len(item) > MAX_DATASET_PROMPTS:
            raise bad(f"{name} must be a list of at most {MAX_DATASET_PROMPTS} texts")
        for i, t in enumerate(item):
            try:
                check_text(t, f"{name}[{i}]")
            except InvalidInputError as exc:
                raise bad(str(exc)) from None

    if not isinstance(value.get("feedback"), str):
        raise bad("has no 'feedback' text")
    for key in ("scope", "categories", "user_in_scope", "user_out_of_scope"):
        texts(value.get(key, []), key)
    for key in ("in_scope", "near_scope", "out_of_scope"):
        split = value.get(key)
        if not isinstance(split, dict) or set(split) != {"train", "test"}:
            raise bad(f"{key} must be an object with 'train' and 'test' lists")
        texts(split["train"], f"{key}.train")
        texts(split["test"], f"{key}.test")
    answers = value.get("answers", {})
    if not isinstance(answers, dict) or not all(
        isinstance(k, str)
        and isinstance(v, dict)
        and all(isinstance(x, str | None) for x in v.values())
        for k, v in answers.items()
    ):
        raise bad("answers must map prompts to {'baseline': text, 'revised': text or null}")
    return value
