"""The house's layers, read from the imports (``ast``; nothing is imported).

Two rules, each a test:

1. No import loop between files (counting imports inside functions and under ``TYPE_CHECKING``:
   a loop that only typing closes is still a loop a reader has to untangle).
2. Imports go only in the allowed directions below, written once here and drawn in
   ``docs/architecture.md``'s map, whose folders a third test checks against the tree.

``from a.b import c`` counts as an import of ``a.b.c`` when that is a module, else of ``a.b``;
a package's ``__init__`` is its own node, so importing ``a.b.c`` is not an import of ``a.b``.
"""

from __future__ import annotations

import ast
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cli", "workflows", "agent", "sandbox")

# Patterns: "x.*" is the module x and everything under it; "x" is exactly that module.
# The library's foundation: small modules every part of agent/ may use (errors, settings, secrets, JSON,
# paths, time, files, counters, the access policy, terminal-safe text). They import only each other.
AGENT_FOUNDATION = {"agent", "agent.errors", "agent.redact", "agent.paths", "agent.timeparse", "agent.files",
                    "agent.display", "agent.usage", "agent.policy", "agent.config", "agent.inflight",
                    "agent.tls", "agent.terminal", "agent.console", "agent.jsontext"}

# Where each part may import from; a module belongs to the longest part that prefixes it, and a part
# may always import from itself.
ALLOWED: dict[str, set[str]] = {
    # the command layer: above everything; the sandbox only for `sandbox serve|ground-truth`
    "cli": {"workflows.*", "agent.*", "sandbox.__main__"},
    # workflows: one folder per feature, each on the library and the shared steps only
    "workflows.qa": {"agent.*", "workflows.steps"},
    "workflows.report": {"agent.*", "workflows.steps"},
    "workflows.campaign": {"agent.*", "workflows.steps"},
    "workflows.schedule": {"agent.*", "workflows.steps"},
    "workflows.squad": {"agent.*", "workflows.steps"},
    "workflows.steps": {"agent.*"},
    "workflows.chat_tools": {"agent.*", "workflows.*"},  # offers every workflow to the chat agent
    "workflows.fleet": {"agent.*", "workflows.*"},  # runs the qa-grade and report pipelines per account
    "workflows": {"agent.*"},
    # the library: the composition on top, its parts below it, the foundation at the bottom
    "agent": {"agent.*"},
    # the one door into the sandbox
    "agent.runtime": {"agent.*", "sandbox.app", "sandbox.fleet", "sandbox.world.config"},
    "agent.mcp": AGENT_FOUNDATION | {"agent.ratelimit.*"},
    "agent.ratelimit": AGENT_FOUNDATION,
    "agent.store": AGENT_FOUNDATION,
    "agent.fleet": AGENT_FOUNDATION | {"agent.ratelimit.*", "agent.mcp.servers"},
    "agent.model": AGENT_FOUNDATION,
    "agent.toolconv": set(),
    **{name: AGENT_FOUNDATION for name in AGENT_FOUNDATION if name != "agent"},
    # the sandbox: the world at the bottom, the type the faces share, the faces, then the composition
    "sandbox": {"sandbox.*"},
    "sandbox.world": set(),
    "sandbox.core": {"sandbox.world.*"},
    "sandbox.rest": {"sandbox.world.*", "sandbox.core.*"},
    "sandbox.truto": {"sandbox.world.*", "sandbox.core.*", "sandbox.rest.*"},  # Truto proxies Vapi's REST API
}


def module_files() -> dict[str, Path]:
    """Every module of the four packages, by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, modules: set[str]) -> Iterator[tuple[str, int]]:
    """(imported module of ours, line) for every import in the file, wherever it sits."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                child = f"{target}.{alias.name}"
                yield (child if child in modules else target), node.lineno


def graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports."""
    files = module_files()
    names = set(files)
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        edges[name] = {target for target, _ in imports_of(name, path, names) if target != name}
    return edges


def part_of(module: str, parts: set[str] | dict[str, set[str]]) -> str:
    """The longest listed prefix of a dotted module name."""
    best = ""
    for part in parts:
        if (module == part or module.startswith(part + ".")) and len(part) > len(best):
            best = part
    return best


def matches(target: str, pattern: str) -> bool:
    """``x.*``: x or anything under it; else exactly the module (a package's ``__init__``)."""
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return target == base or target.startswith(base + ".")
    return target == pattern


def allowed(source: str, target: str) -> bool:
    """Whether ``source`` may import ``target`` under ALLOWED."""
    rule = part_of(source, ALLOWED)
    assert rule, f"{source} is in no part of ALLOWED: add it"
    if part_of(target, ALLOWED) == rule:
        return True
    return any(matches(target, pattern) for pattern in ALLOWED[rule])


def test_no_import_loops() -> None:
    edges = graph()
    loops = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                loops.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt in edges and not state.get(nxt):
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(edges):
        if not state.get(start):
            visit(start, [start])
    assert not loops, "import loops:\n" + "\n".join(loops)


def test_imports_follow_the_allowed_directions() -> None:
    edges = graph()
    wrong = sorted(f"{src} imports {dst}" for src, targets in edges.items() for dst in targets
                   if not allowed(src, dst))
    assert not wrong, "imports against the layers (see ALLOWED):\n" + "\n".join(wrong)


def test_the_rules_can_fail() -> None:
    """Negative controls: the checks see an upward import and a loop."""
    assert not allowed("agent.mcp.hub", "workflows.qa.grade")
    assert not allowed("agent.loop", "cli.runner")
    assert not allowed("sandbox.world.workspace", "sandbox.rest.app")
    assert not allowed("sandbox.rest.app", "sandbox.truto.server")
    assert not allowed("workflows.qa.grade", "workflows.report.pipeline")
    assert not allowed("agent.ratelimit.policy", "agent.runtime")
    assert not allowed("agent.errors", "agent.mcp.hub")
    assert allowed("agent.runtime", "sandbox.app") and allowed("cli.commands.ask", "workflows.chat_tools")
    assert allowed("agent.mcp.connection", "agent.ratelimit.transport") and allowed("agent.mcp.hub", "agent.errors")


def test_architecture_map_matches_the_tree() -> None:
    """Every folder the map in docs/architecture.md names exists, and every package folder is named."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index("## Map")
    block = text[start: text.index("```", text.index("```", start) + 3)]
    named = set(re.findall(r"^\s*([a-z_]+(?:/[a-z_]+)*/)", block, re.M))
    assert named, "the map names no folder"
    missing = sorted(f for f in named if not (ROOT / f).is_dir())
    assert not missing, f"the map names folders that do not exist: {missing}"
    folders = {str(p.parent.relative_to(ROOT)) + "/" for package in PACKAGES
               for p in (ROOT / package).rglob("__init__.py")}
    unnamed = sorted(folders - named)
    assert not unnamed, f"package folders missing from the map: {unnamed}"


@pytest.mark.slow
def test_wheel_installs_only_our_top_level_names(tmp_path: Path) -> None:
    """The wheel's top-level import names are exactly cli, agent, workflows, sandbox (agent and
    workflows are also names of other PyPI distributions: the README says to install isolated)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("vapi_agent-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert tops == set(PACKAGES)
