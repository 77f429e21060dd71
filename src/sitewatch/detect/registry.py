"""Named detector models.

A model is found, in order, from: an explicit path, a registered name, ``$SITEWATCH_MODEL``
(through :class:`~sitewatch.settings.Settings`), then the default name ``"sitewatch-det"``, the
model bundled with the package (no network).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from sitewatch.errors import ModelError
from sitewatch.settings import Settings

#: Name of the bundled default model.
DEFAULT_MODEL = "sitewatch-det"


def _bundled(filename: str) -> Callable[[], Path]:
    def locate() -> Path:
        return Path(str(resources.files("sitewatch.detect").joinpath("models", filename)))

    return locate


class ModelRegistry:
    """Names → model files. Names are unique: registering one twice is an error unless ``replace``."""

    def __init__(self) -> None:
        self._models: dict[str, Callable[[], Path]] = {}

    def register(self, name: str, locate: Path | Callable[[], Path], *, replace: bool = False) -> None:
        """Register ``name`` for a model file (or a function that finds it when needed).

        Raises:
            ValueError: ``name`` is already registered and ``replace`` is False.
        """
        if name in self._models and not replace:
            raise ValueError(f"model name {name!r} is already registered")
        if callable(locate):
            self._models[name] = locate
        else:
            path = Path(locate)
            self._models[name] = lambda: path

    def names(self) -> list[str]:
        return sorted(self._models)

    def path(self, name: str) -> Path:
        """The file of a registered model.

        Raises:
            ModelError: unknown name.
        """
        if name not in self._models:
            raise ModelError(
                f"unknown model {name!r}; known models: {', '.join(self.names())} (or give a path to an "
                ".onnx file)"
            )
        return self._models[name]()

    def resolve(self, model: str | Path | None = None, settings: Settings | None = None) -> Path:
        """The model file for ``model``: a path, a registered name, or None for the configured default.

        Raises:
            ModelError: unknown name, or the file does not exist.
        """
        if model is None:
            configured = (settings or Settings()).model
            model = configured if configured is not None else DEFAULT_MODEL
        text = str(model)
        if text in self._models:
            path = self.path(text)
        elif isinstance(model, Path) or "/" in text or "\\" in text or text.endswith(".onnx"):
            path = Path(text).expanduser()
        else:
            path = self.path(text)  # raises: unknown name
        if not path.is_file():
            what = f"model {text!r}" if text in self._models else "model file"
            raise ModelError(f"{path}: {what} not found")
        return path


#: The process-wide registry, with the bundled model.
models = ModelRegistry()
models.register(DEFAULT_MODEL, _bundled("sitewatch-det.onnx"))
