"""The layers of docs/architecture.md stay true: a module imports only layers listed
before its own, and from another layer only public names.

Every import counts, top-level or inside a function: a late import still makes the
lower layer know the upper one. A lower layer reaches an upper one through a
registration (the upper layer installs a hook when it is imported).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rxnb"

LAYERS = [
    "errors",
    "store",
    "reactive",
    "functions",
    "execution",
    "workflows",
    "llm",
    "agents",
    "otel",
    "widgets",
    "evals",
    "ipython",
    "cli",
    "__init__",
    "testing",
]
"""The layer order of docs/architecture.md: each layer imports only those before it."""


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name under `rxnb` (None outside rxnb)."""
    parts = module.split(".")
    if parts[0] != "rxnb":
        return None
    if len(parts) == 1:
        return "__init__"
    name = parts[1]
    return "cli" if name == "__main__" else name


@dataclass(frozen=True)
class Violation:
    where: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.problem}"


def absolute(module: str, target: str | None, level: int, package: bool) -> str:
    """The dotted name `from <level dots><target> import ...` means in `module` (a
    package's `__init__` is its own package)."""
    if level == 0:
        return target or ""
    parts = module.split(".") if package else module.split(".")[:-1]
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, target] if target else base)


def violations(module: str, source: str, *, package: bool = False) -> list[Violation]:
    """The imports of `module` (dotted name, its `source`; `package`: an `__init__`)
    that break the layering."""
    own = layer_of(module)
    assert own in LAYERS, f"{module} is in no layer of LAYERS; add its layer in order"
    rank = LAYERS.index(own)
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[tuple[str, list[str]]] = []
        if isinstance(node, ast.Import):
            targets = [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute(module, node.module, node.level, package)
            names = [alias.name for alias in node.names]
            # `from . import x` may name a module: count each name as one too
            targets = [(base, names)] if node.module else [(f"{base}.{n}", []) for n in names]
        for target, names in targets:
            layer = layer_of(target)
            if layer is None or layer == own:
                continue
            if layer not in LAYERS:
                found.append(Violation(module, node.lineno, f"imports {target}: no such layer"))
            elif LAYERS.index(layer) > rank:
                found.append(
                    Violation(
                        module,
                        node.lineno,
                        f"imports {target}, of layer `{layer}`, listed after its own "
                        f"(`{own}`): reach it through a registration instead",
                    )
                )
            elif any(part.startswith("_") for part in target.split(".")[1:]) or any(
                name.startswith("_") for name in names
            ):
                found.append(
                    Violation(
                        module,
                        node.lineno,
                        f"imports a private name of layer `{layer}` ({target}"
                        f"{': ' + ', '.join(names) if names else ''}): give it a public "
                        "name in that layer's package",
                    )
                )
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def test_every_module_imports_only_earlier_layers_and_their_public_names() -> None:
    found = [
        v
        for name, path in modules()
        for v in violations(name, path.read_text(), package=path.name == "__init__.py")
    ]
    assert not found, "\n".join(map(str, found))


@pytest.mark.parametrize(
    ("module", "source", "problem"),
    [
        ("rxnb.execution._handles", "from rxnb.widgets import follow", "listed after"),
        ("rxnb.store._database", "def f():\n    import rxnb.reactive\n", "listed after"),
        ("rxnb.widgets._chat", "from rxnb.execution._actions import cancel_in", "private"),
        ("rxnb.widgets._chat", "from rxnb.execution import _cancel", "private"),
        ("rxnb.execution._handles", "from ..widgets import follow", "listed after"),
        ("rxnb.execution._handles", "from .. import widgets", "listed after"),
        ("rxnb.widgets._chat", "from ..execution._actions import cancel_in", "private"),
    ],
)
def test_the_check_sees_an_upward_or_private_import(module: str, source: str, problem: str) -> None:
    (found,) = violations(module, source)
    assert problem in found.problem


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("rxnb.widgets._chat", "from rxnb.execution import cancel_in"),
        ("rxnb.execution._executor", "from rxnb.execution._model import Run"),
        ("rxnb", "from rxnb.widgets import chat"),
        ("rxnb.cli", "from rxnb.reactive import open"),
        ("rxnb.execution._executor", "from ._model import Run"),
        ("rxnb.execution._executor", "from . import _model"),
    ],
)
def test_the_check_lets_a_downward_public_import_be(module: str, source: str) -> None:
    assert violations(module, source) == []
