"""The package's rooms: no import circles, and every import in the direction each package declares.

Imports are read from the source (module level, inside functions, and under `TYPE_CHECKING`), so
a lazy import that would close a circle counts. Type-only imports (under `TYPE_CHECKING`) must
follow the declared direction too, but do not make a circle: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgeweave"
ROOMS_ABOVE_PLATFORM = {"actors": {"platform"}, "tune": {"platform", "actors"}, "api": {"platform"}}


def module_names(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under `package`."""
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(module imported, runs) for every import of `path`: `runs` is False under `if TYPE_CHECKING`.
    `from a.b import c` names the module `a.b.c` when that is a module, else `a.b`."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runs: bool) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runs)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, runs) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((full if full in known else node.module, runs))
        for child in ast.iter_child_nodes(node):
            visit(child, runs)

    visit(ast.parse(path.read_text()), True)
    return found


def graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports when it runs (type-only imports left out)."""
    names = module_names(package)
    known = set(names)
    edges = {}
    for name, path in names.items():
        edges[name] = {target for target, runs in imports(path, known) if runs and target in known and target != name}
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def room(module: str) -> str:
    """The room of a module: `platform.<package>` inside the platform, else the top-level name."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] == "platform":
        return f"platform.{parts[2]}"
    return parts[1] if len(parts) > 1 else parts[0]


def declared(package_init: Path) -> tuple[str, ...]:
    """A platform package's MAY_IMPORT, read from its source."""
    for node in ast.parse(package_init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MAY_IMPORT" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError(f"{package_init} declares no MAY_IMPORT")


def wrong_way(package: Path) -> list[str]:
    """Every import, type-only ones included, that goes against a room's declared direction."""
    names = module_names(package)
    known = set(names)
    platform = package / "platform"
    allowed = {
        f"platform.{p.parent.name}": {f"platform.{d}" for d in declared(p)} for p in platform.glob("*/__init__.py")
    }
    found = []
    for name, path in sorted(names.items()):
        src = room(name)
        for target, _ in imports(path, known):
            if target.split(".")[0] == "ray" and src.startswith("platform"):
                found.append(f"{name} imports ray")
            if not target.startswith(f"{package.name}.") or target not in known:
                continue
            dst = room(target)
            if dst == src or src == "cli":
                continue
            if src.startswith("platform."):
                ok = dst in allowed[src]
            elif src in ROOMS_ABOVE_PLATFORM:
                ok = dst.split(".")[0] in ROOMS_ABOVE_PLATFORM[src]
            else:
                ok = False
            if not ok:
                found.append(f"{name} imports {target} ({src} -> {dst})")
    return found


def test_no_module_of_the_package_is_in_an_import_circle():
    assert circles(graph(PACKAGE)) == []


def test_every_import_follows_the_declared_direction_and_the_platform_never_imports_ray():
    assert wrong_way(PACKAGE) == []


def test_the_platform_is_all_rooms_each_saying_what_it_holds_and_may_import():
    platform = PACKAGE / "platform"
    assert sorted(p.name for p in platform.glob("*.py")) == ["__init__.py"]
    for init in platform.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 15, f"{init} says too little of what it holds"
        rooms = {p.parent.name for p in platform.glob("*/__init__.py")}
        assert set(declared(init)) <= rooms - {init.parent.name}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "edgeweave"


def test_the_checks_find_a_lazy_circle_and_an_import_the_wrong_way(tmp_path):
    package = write(
        tmp_path,
        {
            "edgeweave/__init__.py": "",
            "edgeweave/platform/__init__.py": "",
            "edgeweave/platform/core/__init__.py": "MAY_IMPORT = ()\n",
            "edgeweave/platform/core/a.py": "def f():\n    from edgeweave.platform.core import b\n",
            "edgeweave/platform/core/b.py": "from edgeweave.platform.core.a import f\n",
            "edgeweave/platform/run/__init__.py": "MAY_IMPORT = ('core',)\n",
            "edgeweave/platform/run/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from edgeweave.platform.run import d\n",
            "edgeweave/platform/run/d.py": "import ray\nfrom edgeweave.platform.run.c import x\n",
            "edgeweave/platform/core/e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from edgeweave.platform.run.c import x\n",
            "edgeweave/actors/__init__.py": "from edgeweave.tune import t\n",
            "edgeweave/tune/__init__.py": "",
            "edgeweave/tune/t.py": "from edgeweave.platform.core import a\n",
        },
    )
    assert circles(graph(package)) == [["edgeweave.platform.core.a", "edgeweave.platform.core.b"]]
    assert wrong_way(package) == [
        "edgeweave.actors imports edgeweave.tune.t (actors -> tune)",
        "edgeweave.platform.core.e imports edgeweave.platform.run.c (platform.core -> platform.run)",
        "edgeweave.platform.run.d imports ray",
    ]


def test_the_examples_import_only_the_stable_api_which_holds_every_name_it_lists():
    import subprocess
    import sys

    known = set(module_names(PACKAGE))
    plugins = sorted((ROOT / "examples").rglob("*.py")) + [ROOT / "benchmarks/whole/cifar_data.py"]
    used = {target for path in plugins for target, _ in imports(path, known) if target.startswith("edgeweave")}
    assert used == {"edgeweave.api"}
    code = (
        "import sys, edgeweave.api as api; torch = 'torch' in sys.modules; "
        "missing = [n for n in api.__all__ if getattr(api, n, None) is None]; print(torch, missing)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "[]"]


def test_importing_a_room_loads_no_room_it_may_not_import():
    """What the source does not show (a registry lookup through importlib when a class is defined, say)
    still may not load a room against the declared direction: each room's modules, imported in a fresh
    interpreter, load only rooms it may import."""
    import subprocess
    import sys

    platform = PACKAGE / "platform"
    names = module_names(PACKAGE)
    code = (
        "import importlib, sys\n"
        "for m in sys.argv[1:]: importlib.import_module(m)\n"
        "print(' '.join(sorted({m.split('.')[2] for m in sys.modules if m.startswith('edgeweave.platform.')})))"
    )
    running = {}
    for init in sorted(platform.glob("*/__init__.py")):
        room_name = init.parent.name
        modules = [n for n in names if n.startswith(f"edgeweave.platform.{room_name}")]
        running[room_name] = subprocess.Popen(
            [sys.executable, "-c", code, *modules], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
    for room_name, proc in running.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        allowed = set(declared(platform / room_name / "__init__.py")) | {room_name}
        assert set(out.split()) <= allowed, (room_name, sorted(set(out.split()) - allowed))
