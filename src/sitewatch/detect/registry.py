"""Named detector models.

A model is found, in order, from: an explicit path, a registered name, ``$SITEWATCH_MODEL``
(through :class:`~sitewatch.settings.Settings`), then the default (:func:`default_model`), a
model bundled with the package (no network).

Two twins are bundled: ``sitewatch-det`` (float32) and ``sitewatch-det-int8``, its static int8
quantisation (:mod:`sitewatch.detect.quantize`). The int8 twin is the default on CPUs with int8
dot-product instructions (x86 VNNI or AMX, Arm dot product), where ONNX Runtime runs it about
1.6 times as fast (measured: docs/detect.md), **when** its stored held-out evaluation is within
:data:`INT8_MAX_AP50_DROP` AP50 of the float model's on every set and category
(:func:`int8_within_float`); elsewhere the float32 model is. ``--model sitewatch-det`` (or
``SITEWATCH_MODEL``) picks one explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from sitewatch.errors import ModelError
from sitewatch.settings import Settings

#: Names of the bundled float32 model and of its int8 twin.
FLOAT_MODEL = "sitewatch-det"
INT8_MODEL = "sitewatch-det-int8"
#: CPU flags (Linux ``/proc/cpuinfo``) of int8 dot-product instructions: x86 AVX-512 VNNI, AVX-VNNI,
#: AMX-INT8; Arm (``Features``) dot product.
INT8_CPU_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them, or none where it does not (not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


#: Largest AP50 the int8 twin may lose against the float model, on any held-out set and category
#: both stored evaluations hold, to be the default.
INT8_MAX_AP50_DROP = 0.01


def ap50_shortfalls(
    reference: dict, candidate: dict, max_drop: float = INT8_MAX_AP50_DROP
) -> list[tuple[str, str, float]]:
    """``(dataset, category, AP50 drop)`` for every held-out set and category of two evaluations
    (``sitewatch evaluate --json`` reports) where ``candidate`` is more than ``max_drop`` below
    ``reference``; categories either report leaves unscored are skipped."""
    out = []
    for ds, cats in reference.get("by_dataset", {}).items():
        for cat, r in cats.items():
            r8 = candidate.get("by_dataset", {}).get(ds, {}).get(cat)
            if r.get("ap50") is None or r8 is None or r8.get("ap50") is None:
                continue
            if r8["ap50"] < r["ap50"] - max_drop:
                out.append((ds, cat, r["ap50"] - r8["ap50"]))
    return out


def int8_shortfalls() -> list[tuple[str, str, float]]:
    """:func:`ap50_shortfalls` of the bundled int8 twin's stored held-out evaluation against the
    float model's; one ``("*", reason, nan)`` row where the two cannot be compared (an evaluation
    missing, another version or image set)."""
    from sitewatch.detect.reliability import model_evaluation, model_metadata

    version = model_metadata(FLOAT_MODEL).get("version")
    if not version or model_metadata(INT8_MODEL).get("version") != version:
        return [("*", "the twins' versions differ or cannot be read", float("nan"))]
    ev32 = model_evaluation(f"{FLOAT_MODEL} {version}")
    ev8 = model_evaluation(f"{INT8_MODEL} {version}")
    if ev32 is None or ev8 is None or ev32.get("images") != ev8.get("images"):
        return [("*", "no comparable held-out evaluations stored", float("nan"))]
    return ap50_shortfalls(ev32, ev8)


def int8_within_float() -> bool:
    """Whether the bundled int8 twin is within :data:`INT8_MAX_AP50_DROP` AP50 of the float model
    on every held-out set and category (their stored evaluations)."""
    return not int8_shortfalls()


def default_model(flags: frozenset[str] | None = None) -> str:
    """The default model's name: the int8 twin where the CPU has int8 dot-product instructions and
    the twin is within :data:`INT8_MAX_AP50_DROP` AP50 of the float model (:func:`int8_within_float`)."""
    flags = cpu_flags() if flags is None else flags
    return INT8_MODEL if flags & INT8_CPU_FLAGS and int8_within_float() else FLOAT_MODEL


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
            model = configured if configured is not None else default_model()
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


#: The process-wide registry, with the bundled models.
models = ModelRegistry()
models.register(FLOAT_MODEL, _bundled("sitewatch-det.onnx"))
models.register(INT8_MODEL, _bundled("sitewatch-det.int8.onnx"))
