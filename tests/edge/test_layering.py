"""DESIGN.md's one rule: edge never imports TensorFlow, Keras, convert or explain."""

import importlib.util
import json
import pkgutil
import subprocess
import sys

import edge

HEAVY = ("tensorflow", "keras", "tf_keras", "convert", "explain", "matplotlib", "tf2onnx")


def test_importing_every_edge_module_loads_nothing_heavy():
    modules = [f"edge.{m.name}" for m in pkgutil.walk_packages(edge.__path__)]
    if importlib.util.find_spec("fastapi") is None:  # no `serve` extra (a Pi): edge.serve unused
        modules.remove("edge.serve")
    assert "edge.backends" in modules  # the walk found the package's modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    offenders = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert offenders == [], f"edge pulled in heavy modules: {offenders[:10]}"
