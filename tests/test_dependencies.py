"""Every third-party import of the package is declared in pyproject.toml, and every declared
core dependency is imported by the package (or named here with the reason it is needed)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sitewatch"

#: Declared core dependencies that the package needs without importing them by name.
USED_INDIRECTLY = {
    "pyarrow": "geopandas writes and reads GeoParquet through it",
    "scikit-image": "imported as skimage",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0])


def _requirement_names(reqs: list[str]) -> set[str]:
    """Names of the requirements, and of the extras they pull that are distributions of their
    own (``dask[distributed]`` declares ``distributed``)."""
    out = set()
    for r in reqs:
        out.add(_requirement_name(r))
        m = re.search(r"\[([^\]]+)\]", r)
        if m:
            out.update(_norm(x) for x in m.group(1).split(","))
    return out


def _imports(folder: Path) -> dict[str, set[str]]:
    """Top-level module name → files importing it (absolute imports only)."""
    out: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                out.setdefault(n.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return out


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = {k: _requirement_names(v) for k, v in project.get("optional-dependencies", {}).items()}
    return core, extras


def _third_party(imports: dict[str, set[str]]) -> dict[str, tuple[set[str], set[str]]]:
    """Module → (distributions that provide it, files importing it), for imports that are
    neither stdlib nor sitewatch."""
    dists = packages_distributions()
    return {
        module: ({_norm(d) for d in dists.get(module, [module])}, files)
        for module, files in imports.items()
        if module not in sys.stdlib_module_names and module not in ("sitewatch", "__future__")
    }


def test_every_import_is_declared() -> None:
    core, extras = _declared()
    declared = core | set().union(*extras.values())
    missing = {m: sorted(f)[:3] for m, (d, f) in _third_party(_imports(SRC)).items() if not d & declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_core_dependency_is_used() -> None:
    core, _ = _declared()
    used = set().union(*(d for d, _ in _third_party(_imports(SRC)).values()))
    unused = sorted(d for d in core if d not in used and d not in USED_INDIRECTLY)
    assert not unused, f"declared in pyproject.toml but never imported by the package: {unused}"


def test_extras_are_named_in_the_readme() -> None:
    _, extras = _declared()
    readme = (ROOT / "README.md").read_text()
    for name in extras:
        if name != "dev":
            assert f"[{name}]" in readme, f"extra [{name}] not named in README.md"
