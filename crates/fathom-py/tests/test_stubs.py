"""The type stubs shipped in the wheel describe the module that is installed: every
public name and class member on one side is on the other."""

import ast
import inspect
import pathlib

import fathom

STUBS = pathlib.Path(__file__).resolve().parents[1] / "python" / "fathom" / "__init__.pyi"


def stub_tree():
    return ast.parse(STUBS.read_text())


def test_stub_and_module_name_the_same_things():
    tree = stub_tree()
    in_stub = set()
    classes = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            in_stub.add(node.name)
            classes[node.name] = node
        elif isinstance(node, ast.FunctionDef):
            in_stub.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            in_stub.add(node.target.id)
    # (An installed wheel is a package holding the native module `fathom.fathom`.)
    in_module = {n for n in dir(fathom) if not n.startswith("_")
                 and not inspect.ismodule(getattr(fathom, n))} | {"__version__"}
    in_stub.add("__version__")
    assert in_stub == in_module, (in_stub ^ in_module)

    for name, node in classes.items():
        cls = getattr(fathom, name)
        stub_members = set()
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                stub_members.add(item.name)
            elif isinstance(item, ast.AnnAssign):
                stub_members.add(item.target.id)
        # Members a class defines itself (inherited ones are its base's business).
        own = {n for n, _ in inspect.getmembers(cls) if n in vars(cls) and
               (not n.startswith("_") or n in ("__init__", "__repr__"))}
        own.discard("__init__") if "__init__" not in stub_members else None
        missing = own - stub_members
        assert not missing, (name, missing)
