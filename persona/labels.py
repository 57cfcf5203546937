"""The layer's labeled-pair methods (mixed into :class:`persona.PreferenceLayer`): learn,
list and delete a user's "this answer over that one" labels, and score answers by them (FSPO)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from persona.config import check_pref_id, check_prompts, check_text, check_user_id
from persona.errors import InvalidInputError
from persona.learn.base import Write
from persona.store.base import Store
from persona.types import Label

if TYPE_CHECKING:
    from persona.learn.fspo import FSPO


class LabelMethods:
    """``learn_from_labels``, ``labels``, ``delete_label`` and ``score``."""

    store: Store
    fspo: FSPO

    def _known(self, user_id: str) -> str:  # provided by PreferenceLayer
        raise NotImplementedError

    def _writing(self, user_id: str) -> AbstractContextManager[Write]:  # by PreferenceLayer
        raise NotImplementedError

    def learn_from_labels(self, user_id: str, prompt: str, chosen: str, rejected: str) -> Label:
        """FSPO: for ``prompt`` this user prefers ``chosen`` to ``rejected``.

        The pair is stored with its prompt's embedding; requests near it get it (with the
        nearest others) as a few-shot example, and :meth:`score` learns from it. With
        ``fspo_describe=True`` the LLM also refreshes the user description.
        """
        check_user_id(user_id)
        prompt = check_text(prompt, "prompt")
        chosen = check_text(chosen, "chosen")
        rejected = check_text(rejected, "rejected")
        if chosen.strip() == rejected.strip():
            raise InvalidInputError(
                "chosen and rejected are the same text; label two different answers."
            )
        return self.fspo.learn(self._writing, user_id, prompt, chosen, rejected)

    def labels(self, user_id: str) -> list[Label]:
        """The user's labeled pairs, oldest first."""
        return self.store.list_labels(self._known(user_id))

    def delete_label(self, user_id: str, label_id: int) -> None:
        """Delete one labeled pair (and refresh the user description, if there is one)."""
        self.fspo.delete(self._writing, self._known(user_id), check_pref_id(label_id, "label_id"))

    def score(self, user_id: str, prompt: str, responses: Sequence[str]) -> list[float]:
        """FSPO's personalized reward: one score per response, higher = this user is
        predicted to prefer it. Learned from the user's labeled pairs (``scorer`` option)."""
        self._known(user_id)
        prompt = check_text(prompt, "prompt")
        texts = check_prompts(responses, "responses")
        return self.fspo.score(user_id, prompt, texts)

    def _reward(self, user_id: str, prompt: str, responses: list[str]) -> list[float]:
        """:meth:`score`, neutral for a user with no data yet (nothing to prefer by)."""
        if not self.store.has_user(user_id):
            return [0.0] * len(responses)
        return self.score(user_id, prompt, responses)
