"""The layer's per-user adapter methods (mixed into :class:`persona.PreferenceLayer`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persona.errors import InvalidInputError
from persona.store.base import Store

Tick = Callable[[str, float], None]
#: What :func:`persona.config.safe_dir_name` produces; anything else is never a folder name.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class AdapterMethods:
    """``train_adapter`` and ``adapter_status``, and where a served adapter's files are."""

    store: Store
    home: Path | None
    follow_adapter: bool | str

    def _known(self, user_id: str) -> str:  # provided by PreferenceLayer
        raise NotImplementedError

    def train_adapter(
        self, user_id: str, *, progress: Tick | None = None, **config: Any
    ) -> dict[str, Any]:
        """Train the user's LoRA adapter now (``config``: the fields of
        :class:`persona.adapters.train.AdapterConfig`); returns its record (loss curve,
        held-out pair accuracy, time, memory). ``progress(event, value)`` is called with
        ("answers", answers generated so far) and ("step", loss). Blocks for the whole run
        (minutes on a CPU); ``persona train-adapters`` does it in batch. It trains on the
        layer's local model, with its follow adapter unless ``follow_adapter=`` says another."""
        from persona.adapters.train import AdapterConfig, train_user_adapter

        cfg = AdapterConfig.of({"follow_adapter": self.follow_adapter, **config})
        home, user = self._adapters_home(), self._known(user_id)
        return train_user_adapter(self.store, home, user, cfg, tick=progress)

    def adapter_status(self, user_id: str) -> dict[str, Any]:
        """Whether the user has an adapter, its data version and whether it is stale (trained
        on older data, or for this layer's local model with another follow adapter: ``unfit``
        says why, and such an adapter is not served until retrained)."""
        from persona.adapters.train import adapter_status

        home, user = self._adapters_home(), self._known(user_id)
        return adapter_status(self.store, home, user, self.follow_adapter)

    def _adapter_folder(self, name: str) -> str | None:
        """The trained adapter named ``name`` under this layer's home, if its weights are
        there (the folder is derived here, never read from the store)."""
        if self.home is None or not _SAFE_NAME.match(name):
            return None
        folder = self.home / "adapters" / name
        return str(folder) if (folder / "adapter_model.safetensors").is_file() else None

    def _adapters_home(self) -> Path:
        if self.home is None:
            raise InvalidInputError(
                "this layer has no data directory for adapter files; open it with "
                "PreferenceLayer.open(path)."
            )
        return self.home
