"""The layer's verbal-feedback methods (mixed into :class:`persona.PreferenceLayer`): learn a
feedback with C3PO, widen or narrow where it applies, and ask the user where it is unsure."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from persona.config import (
    MAX_PREFERENCE_CHARS,
    check_count,
    check_optional_text,
    check_pref_id,
    check_prompts,
    check_text,
    check_user_id,
)
from persona.errors import InvalidInputError
from persona.learn.base import Write
from persona.learn.scope_questions import MAX_QUESTIONS
from persona.types import Preference, ScopeQuestion

if TYPE_CHECKING:
    from persona.learn.c3po import C3PO


class FeedbackMethods:
    """``learn_from_feedback``, ``edit_scope`` and ``scope_questions``."""

    c3po: C3PO

    def _known(self, user_id: str) -> str:  # provided by PreferenceLayer
        raise NotImplementedError

    def _get(self, user_id: str, pref_id: int) -> Preference:  # by ManualPreferenceMethods
        raise NotImplementedError

    def _writing(self, user_id: str) -> AbstractContextManager[Write]:  # by PreferenceLayer
        raise NotImplementedError

    def learn_from_feedback(
        self,
        user_id: str,
        feedback: str,
        in_scope: Sequence[str] | None = None,
        out_of_scope: Sequence[str] | None = None,
    ) -> Preference:
        """Verbal feedback ("no emojis in emails to my boss"), learned with C3PO.

        The layer's LLM writes the feedback's synthetic dataset (where it applies, where it
        must not); ``in_scope`` / ``out_of_scope`` example requests from the user widen or
        narrow it. A scope model fitted on it decides, per request and without an LLM, whether
        the feedback applies. Returns the one preference the user sees, with its ``scope``.
        """
        check_user_id(user_id)
        feedback = check_text(feedback, "feedback", limit=MAX_PREFERENCE_CHARS).strip()
        ins = check_prompts(in_scope, "in_scope")
        outs = check_prompts(out_of_scope, "out_of_scope")
        return self.c3po.learn(self._writing, user_id, feedback, ins, outs)

    def edit_scope(
        self,
        user_id: str,
        pref_id: int,
        *,
        scope: str | None = None,
        add_in_scope: Sequence[str] | None = None,
        add_out_of_scope: Sequence[str] | None = None,
    ) -> Preference:
        """Widen or narrow where a feedback applies: rename its scope ("emails to anyone at
        work"), or add requests where it should (``add_in_scope``) or should not
        (``add_out_of_scope``) apply. No LLM call; the scope model is refitted."""
        self._known(user_id)
        pref = self._get(user_id, check_pref_id(pref_id))
        scope = check_optional_text(scope, "scope", limit=MAX_PREFERENCE_CHARS)
        ins = check_prompts(add_in_scope, "add_in_scope")
        outs = check_prompts(add_out_of_scope, "add_out_of_scope")
        return self.c3po.edit_scope(
            self._writing,
            user_id,
            pref,
            scope=scope.strip() if scope else None,
            add_in_scope=ins,
            add_out_of_scope=outs,
        )

    def scope_questions(
        self,
        user_id: str,
        pref_id: int,
        *,
        candidates: Sequence[str] | None = None,
        k: int = 4,
        recent: Sequence[str] = (),
    ) -> list[ScopeQuestion]:
        """Up to ``k`` requests on which a feedback's scope is least sure, to ask the user
        "should it apply here?"; answer with :meth:`edit_scope` (``add_in_scope`` /
        ``add_out_of_scope``). ``candidates``: the requests to choose from instead of the
        defaults; None: the user's edited requests, labeled prompts and other feedbacks'
        examples, plus the general requests nearest the feedback. ``recent``: requests the
        user made lately (e.g. this chat session's, which the layer does not keep), weighed
        with the others; the user's own requests are asked first while unsure. No LLM
        call."""
        self._known(user_id)
        pref = self._get(user_id, check_pref_id(pref_id))
        texts = None if candidates is None else check_prompts(candidates, "candidates")
        lately = check_prompts(recent, "recent")
        check_count("k", k)
        if k > MAX_QUESTIONS:
            raise InvalidInputError(f"k={k} asks too much of a person; pass k <= {MAX_QUESTIONS}.")
        return self.c3po.questions(user_id, pref, texts, k, recent=lately)
