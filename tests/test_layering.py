"""Imports flow one way (DESIGN.md): backend <- kernels <- tensor+autograd <- functional <- nn <-
(optim, data, gradcheck, serialization) <- nets. Checked by parsing every module's imports."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LEVEL = {"_checks": 0, "backend": 0, "random": 0, "kernels": 1, "cuda": 1, "tensor": 2,
         "_tensor_methods": 2, "autograd": 2, "autograd_api": 2, "grad_mode": 2, "hooks": 2,
         "factories": 3, "functional": 3, "gradcheck": 3, "nn": 4, "optim": 5, "data": 5,
         "serialization": 5, "cuda_graph": 5, "profiler": 5, "summary": 5}


def _layer(module):
    parts = module.split(".")
    if parts[0] != "minidl":
        return None
    return LEVEL.get(parts[1]) if len(parts) > 1 else 6


def _imports(path, package):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    for a in node.names:
                        yield mod + "." + a.name
                    continue
                yield mod
            else:
                yield node.module


def test_minidl_imports_only_downward():
    bad = []
    for path in (ROOT / "minidl").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        own = _layer(name)
        if own is None or own == 6:
            continue
        for imp in _imports(path, package):
            other = _layer(imp)
            if other is not None and other > own:
                bad.append(f"{name} imports {imp}")
    assert not bad, bad


def test_nets_use_only_public_api():
    allowed = {"minidl", "minidl.nn", "minidl.functional", "minidl.nn.init"}
    bad = []
    for path in (ROOT / "nets").rglob("*.py"):
        for imp in _imports(path, "nets"):
            if imp.startswith("minidl") and imp not in allowed:
                bad.append(f"{path.name} imports {imp}")
    assert not bad, bad


def test_cupy_imported_only_in_backend_and_kernels():
    bad = []
    for path in (ROOT / "minidl").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ("minidl/backend.py",) or rel.startswith("minidl/kernels/"):
            continue
        for imp in _imports(path, "minidl"):
            if imp and imp.split(".")[0] in ("cupy", "cupyx"):
                bad.append(f"{rel} imports {imp}")
    assert not bad, bad
