"""The WebUI unit tests' one ``Services``: settings under ``tmp_path`` (no embedding model) and an engine
holder that is loaded, loading or failed — without a browser and without a real model.

- ``services``: a ``Services`` whose engine failed to load (pages that never generate).
- ``make_services(holder=None, overrides=None, *, holder_for=None)``: another one — ``holder`` is a
  :class:`Holder`, ``overrides`` more settings (``{"model.base_model": …}``), ``holder_for(settings)``
  makes the holder from the settings (a real ``EngineHolder``).  Every one made is closed at the end of
  the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xiaoshuo.config import load
from xiaoshuo.testing import EngineHolderStub as Holder
from xiaoshuo.webui.services import Services


def settings_for(tmp_path: Path, **overrides: Any):
    """Settings with every path under ``tmp_path`` and no embedding model (``overrides`` on top)."""
    return load(
        None,
        overrides={
            "paths.data_dir": str(tmp_path / "data"),
            "paths.checkpoints_dir": str(tmp_path / "checkpoints"),
            "paths.logs_dir": str(tmp_path / "logs"),
            "paths.models_dir": str(tmp_path / "models"),
            "memory.embedding_model": "none",
            **overrides,
        },
        env={},
    )


@pytest.fixture
def make_services(tmp_path: Path) -> Iterator[Callable[..., Services]]:
    made: list[Services] = []

    def make(
        holder: Any = None,
        overrides: dict[str, Any] | None = None,
        *,
        holder_for: Callable[[Any], Any] | None = None,
    ) -> Services:
        settings = settings_for(tmp_path, **(overrides or {}))
        holder = holder_for(settings) if holder_for is not None else holder
        services = Services(settings, engine=holder or Holder())
        made.append(services)
        return services

    yield make
    for services in made:
        services.close()


@pytest.fixture
def services(make_services) -> Services:
    return make_services()
