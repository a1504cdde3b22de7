"""The package layout: layers import downwards only, and ``twin.policies`` stays light.

``scenario <- world <- policies <- (agents) <- sim <- results <- report/studies <- cli``;
``serve`` imports only ``policies``, ``world``, ``scenario``, ``errors`` and its C loops
``ext._route``; ``twin`` imports ``rl`` only in the CLI. The walk covers every import statement, also those inside functions
(a lazy import upwards is still an upward dependency).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Rank of each layer: a module may import modules of its own rank or lower.
LAYERS: dict[str, int] = {
    "twin.errors": 0,
    "twin.scenario": 1, "scenarios": 1,
    "twin.world": 2,
    "twin.policies": 3,
    "agents": 4,
    "twin.sim": 5, "ext": 5, "ext._route": 5,
    "twin.results": 6,
    "twin.report": 7, "twin.studies": 7,
    "twin.cli": 8, "twin": 8,
    "rl": 9,
}
#: ``serve`` sits beside the stack: it may import only these (``ext._route``: its own C loops,
#: numpy only, not the event kernel).
SERVE_MAY_IMPORT = ("twin.errors", "twin.scenario", "scenarios", "twin.world", "twin.policies", "twin.serve",
                    "ext._route")


def _layer(module: str) -> str | None:
    """The layer a dotted module name belongs to (the longest matching prefix), or None (outside)."""
    best = None
    for name in (*LAYERS, "twin.serve"):
        if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best)):
            best = name
    return best


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # `from twin import plots` names a submodule
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names if _layer(f"{mod}.{a.name}") != _layer(mod)]
    return out


def _sources() -> list[Path]:
    files = []
    for d in ("twin", "agents", "scenarios", "rl", "ext"):
        files += sorted((ROOT / d).rglob("*.py"))
    return files


def violations() -> list[str]:
    bad = []
    for path in _sources():
        src = _layer(_module_name(path))
        for line, mod in _imports(path):
            dst = _layer(mod)
            if src is None or dst is None or src == dst:
                continue
            where = f"{path.relative_to(ROOT)}:{line}: {src} imports {mod}"
            if src == "twin.serve":
                if dst not in SERVE_MAY_IMPORT:
                    bad.append(f"{where} (serve may import only {', '.join(SERVE_MAY_IMPORT)})")
            elif dst == "twin.serve":
                if LAYERS[src] < LAYERS["twin.cli"]:
                    bad.append(f"{where} (only the CLI may import serve)")
            elif src == "twin.cli" and dst == "rl":
                continue  # the CLI's optional commands (train, evaluate) import rl when run
            elif LAYERS[dst] > LAYERS[src]:
                bad.append(f"{where} ({dst} is above {src})")
    return bad


def test_layers_import_downwards_only() -> None:
    bad = violations()
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_walk_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import, also a lazy one inside a function, is caught."""
    f = ROOT / "twin" / "world" / "_layout_probe.py"
    f.write_text("def f():\n    from twin.results.kpis import KPIS\n    return KPIS\n")
    try:
        bad = violations()
    finally:
        f.unlink()
    assert any("_layout_probe.py:2: twin.world imports twin.results.kpis" in b for b in bad), bad


def test_every_module_is_in_a_layer() -> None:
    missing = [str(p.relative_to(ROOT)) for p in _sources() if _layer(_module_name(p)) is None]
    assert not missing


HEAVY = ("simpy", "mesa", "pandas", "matplotlib", "torch", "gymnasium", "stable_baselines3")


@pytest.mark.parametrize("module", ["twin.policies", "twin"])
def test_light_import(module: str) -> None:
    """A routing service imports the policies (and ``twin`` itself) without the heavy stack."""
    code = (f"import sys, {module}\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"


ENGINE_CLASSES = ("KernelEngine", "SimPyEngine")


def test_no_concrete_engine_named_outside_the_engine_modules() -> None:
    """Engines are found through the registry (:mod:`twin.sim.engine`) by string entry point."""
    allowed = {ROOT / "twin" / "sim" / "kernel.py", ROOT / "twin" / "sim" / "reference.py"}
    bad = []
    for path in [*_sources(), *sorted((ROOT / "tests").glob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]:
        if path in allowed or path == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else (
                None)
            names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            if name in ENGINE_CLASSES or any(n in ENGINE_CLASSES for n in names):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "concrete engine classes named outside their modules: " + ", ".join(sorted(set(bad)))


def test_no_test_reads_a_private_attribute() -> None:
    """Tests go through public interfaces: no ``obj._name`` on a policy, an env, an engine or
    anything else (so a refactor of internals cannot be pinned by a test)."""
    bad = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "\n".join(bad)
