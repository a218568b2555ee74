"""The package's shape, checked from its source (docs/architecture.md draws it):

    adapters   ivr.cli, ivr.web, ivr.rehearsal, ivr.agi.classic   (and ivr.runtime,
               the engine's composition root, which serves the calls)
    services   ivr.services                 what staff do, for the CLI and the web alike
    domain     flow, contingency, callback, calls, prompts, audit, accounts, configset,
               admission, ami, agi, project
    base       redisdb, yamldoc, errors, names, logs, clock, settings, metrics, ...

Imports only point down (or sideways within a layer); the CLI and the web
reach the stores only through the services, with a short allow-list below,
each entry with its reason; the production commands never import the
simulator (``ivr.rehearsal``); no two modules import each other in a circle,
and no module reaches into another's private names.

The import graph is built from every module's syntax tree. Every import
counts, also one inside a function: a cycle through a function-level import
still ties the two modules together, it only fails later (at call time rather
than at import). Imports under ``if TYPE_CHECKING:`` do not count (they never
run). Importing ``ivr.a.b`` runs ``ivr/a/__init__.py`` first, but that implicit
edge is not drawn: a package that imports its own submodules is the usual
shape, not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ivr"
ADAPTERS = ("ivr.cli", "ivr.web")


def _module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(root.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Import nodes anywhere in the module, except under ``if TYPE_CHECKING``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``from X import ...`` names (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def import_graph(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """module -> the ivr modules it imports; and (importer, module, name) for
    every private name (``_x``) imported from another ivr module."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            else:
                base = _base(module, path, node)
                targets = [(f"{base}.{a.name}", (base, a.name)) if f"{base}.{a.name}" in modules
                           else (base, (base, a.name)) for a in node.names]
            for target, imported in targets:
                if target in modules and target != module:
                    graph[module].add(target)
                if imported and imported[0] in modules and imported[1].startswith("_") \
                        and not imported[1].startswith("__"):
                    private.append((module, imported[0], imported[1]))
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _in_adapters(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ADAPTERS)


def test_no_modules_import_each_other_in_a_circle():
    graph, _ = import_graph(_modules())
    assert not cycles(graph), f"import cycles: {cycles(graph)}"


def test_no_module_imports_another_modules_private_names():
    _, private = import_graph(_modules())
    crossing = [(m, src, name) for m, src, name in private]
    assert not crossing, "private names imported across modules (make them public or move them): " + \
        ", ".join(f"{m} imports {src}.{name}" for m, src, name in crossing)


def test_the_cli_and_the_web_go_through_the_services_not_through_each_other():
    graph, _ = import_graph(_modules())
    cli_to_web = sorted((m, t) for m, ts in graph.items() if m.startswith("ivr.cli") for t in ts
                        if t.startswith("ivr.web"))
    web_to_cli = sorted((m, t) for m, ts in graph.items() if m.startswith("ivr.web") for t in ts
                        if t.startswith("ivr.cli"))
    assert not cli_to_web and not web_to_cli, (cli_to_web, web_to_cli)


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "ivr"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from ivr.sub.b import _g\n")
    (pkg / "sub" / "b.py").write_text("from . import a\nfrom typing import TYPE_CHECKING\n"
                                      "if TYPE_CHECKING:\n    from ivr import c\n")
    (pkg / "c.py").write_text("import ivr.sub.a\n")
    modules = {_module_name(p, tmp_path): p for p in sorted(pkg.rglob("*.py"))}
    graph, private = import_graph(modules)
    assert graph["ivr.sub.a"] == {"ivr.sub.b"} and graph["ivr.sub.b"] == {"ivr.sub.a"}
    assert graph["ivr.c"] == {"ivr.sub.a"}
    assert cycles(graph) == [["ivr.sub.a", "ivr.sub.b"]]
    assert private == [("ivr.sub.a", "ivr.sub.b", "_g")]


LAYERS = {  # (prefixes) -> layer; anything not listed is domain (2)
    4: ("ivr.cli", "ivr.web", "ivr.rehearsal", "ivr.agi.classic", "ivr.__main__"),
    3: ("ivr.services", "ivr.runtime"),
    1: ("ivr.redisdb", "ivr.yamldoc", "ivr.errors", "ivr.names", "ivr.logs", "ivr.clock", "ivr.settings",
        "ivr.aio", "ivr.call_channel", "ivr.child_process", "ivr.stats", "ivr.metrics"),
}
# What the CLI and the web must reach only through ivr.services: the stores
# (Redis, the files on disk) and the AMI link.
STORES = ("ivr.redisdb.keys", "ivr.redisdb.live", "ivr.redisdb.replies", "ivr.redisdb.durable", "ivr.audit.chain",
          "ivr.ami", "ivr.project", "ivr.configset", "ivr.flow.registry", "ivr.callback.report_data",
          "ivr.callback.trail")
ALLOWED = {
    ("ivr.web.context", "ivr.accounts.store"): "the guard checks the session or token of every request",
    ("ivr.web.app", "ivr.accounts.store"): "sign-in and sign-out create and end sessions",
    ("ivr.web.context", "ivr.audit.chain"): "the console's own log of sign-ins and edits (keys.CONSOLE_AUDIT)",
    ("ivr.web.context", "ivr.redisdb.keys"): "that log's key",
    ("ivr.web.login_limit", "ivr.audit.chain"): "the sign-in limiter records the blocks it imposes",
    ("ivr.web.login_limit", "ivr.redisdb.keys"): "the sign-in limiter's own counters",
}


def layer(module: str) -> int:
    for n, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return n
    return 2


def _under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") or module.endswith(".store") and p == "*.store"
               for p in prefixes)


def test_imports_point_down_the_layers():
    graph, _ = import_graph(_modules())
    upward = sorted((m, t) for m, ts in graph.items() for t in ts if layer(t) > layer(m))
    assert not upward, "imports up the layers (adapters > services/runtime > domain > base): " + \
        ", ".join(f"{m} -> {t}" for m, t in upward)


def test_the_cli_and_the_web_reach_the_stores_only_through_the_services():
    graph, _ = import_graph(_modules())
    direct = sorted((m, t) for m, ts in graph.items() if _in_adapters(m) for t in ts
                    if (_under(t, STORES) or t.endswith(".store")) and (m, t) not in ALLOWED)
    assert not direct, "the CLI or the web reaches a store directly (add a service): " + \
        ", ".join(f"{m} -> {t}" for m, t in direct)
    unused = sorted(k for k in ALLOWED if k[1] not in graph.get(k[0], set()))
    assert not unused, f"allow-list entries no longer needed (remove them): {unused}"


def test_the_production_commands_never_import_the_simulator():
    graph, _ = import_graph(_modules())
    production = [m for m in graph if not m.startswith("ivr.rehearsal")]
    reach = sorted((m, t) for m in production for t in graph[m] if t.startswith("ivr.rehearsal")
                   and (m, t) != ("ivr.cli", "ivr.rehearsal.commands"))
    assert not reach, reach


def test_ivr_serve_loads_no_rehearsal_module():
    import subprocess
    import sys
    code = ("import sys, ivr.cli; ivr.cli.build_parser(['serve']); import ivr.runtime.engine; "
            "print(sorted(m for m in sys.modules if m.startswith('ivr.rehearsal')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
