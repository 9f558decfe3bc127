"""The house rules of ``edge/`` (docs/design.md): rooms import only from rooms below
them, no module cycle, and edge never imports TensorFlow, Keras, convert or explain."""

import ast
import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import edge

HEAVY = ("tensorflow", "keras", "tf_keras", "convert", "explain", "matplotlib", "tf2onnx")
EDGE = Path(edge.__file__).parent
# Bottom to top: a module may import from its own room or from a room listed before it.
ROOMS = ("base", "media", "faces", "model", "gallery", "results", "video", "api", "service", "cli")


def _modules() -> dict[str, Path]:
    found = {}
    for path in EDGE.rglob("*.py"):
        parts = path.relative_to(EDGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _room(module: str) -> str | None:
    """The room of an ``edge`` module; None for the package façade ``edge`` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _edge_imports(path: Path) -> set[str]:
    """Every edge module ``path`` imports, at the top, in a function or for type checking."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if s in MODULES] or [node.module]
        else:
            continue
        targets.update(n for n in names if n.split(".")[0] == "edge")
    return targets


GRAPH = {name: _edge_imports(path) - {name} for name, path in MODULES.items()}


def test_the_rooms_are_the_ones_this_test_knows():
    top = {p.stem if p.is_file() else p.name for p in EDGE.iterdir() if p.name != "__pycache__"}
    assert top - {"__init__"} == set(ROOMS)
    assert len(top) <= 11, f"edge/ has {len(top)} entries at its top level"
    for room in ROOMS:
        package = EDGE / room / "__init__.py"
        if package.exists():
            assert ast.get_docstring(ast.parse(package.read_text())), (
                f"edge.{room} has no docstring"
            )


def test_every_room_imports_only_from_rooms_below_it():
    upward = []
    for module, targets in GRAPH.items():
        if _room(module) is None:  # the façade re-exports every room's public names
            continue
        here = ROOMS.index(_room(module))
        for target in targets:
            room = _room(target)
            if room is None or ROOMS.index(room) > here:
                upward.append(f"{module} -> {target}")
    assert upward == [], "imports from a room above:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_among_edge_modules():
    # depth-first search; a grey node met again closes a cycle
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "grey"
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == "grey":
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "black"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_layering_check_sees_a_violation():
    # the check above is only worth its pass if it can fail: an upward edge is reported
    assert "edge.results" in GRAPH["edge.api"]
    assert ROOMS.index(_room("edge.api")) > ROOMS.index(_room("edge.results"))


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


def test_importing_every_edge_module_loads_nothing_heavy():
    modules = [m.name for m in pkgutil.walk_packages(edge.__path__, "edge.")]
    if importlib.util.find_spec("fastapi") is None:  # no `serve` extra (a Pi)
        web = ("edge.service.http", "edge.service.web.routes")  # the FastAPI app and page
        modules = [m for m in modules if not m.startswith(web)]
    # the walk reached into the rooms: modules inside subpackages are really imported
    assert {"edge.model.backends", "edge.gallery.store", "edge.service.mqtt"} <= set(modules)
    loaded = _loaded_after(f"import importlib\nfor m in {modules!r}: importlib.import_module(m)")
    offenders = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert offenders == [], f"edge pulled in heavy modules: {offenders[:10]}"


def test_the_command_module_loads_neither_opencv_nor_numpy():
    loaded = _loaded_after("import edge.cli, edge.cli.main")
    assert "edge.cli.main" in loaded
    assert not {"cv2", "numpy"} & set(loaded)
