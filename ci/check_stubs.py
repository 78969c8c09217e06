"""Check that the extension module's stub names match what it exports."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import sedonadb_zarr_meta._lib as lib

stub = Path(__file__).resolve().parent.parent / "python" / "sedonadb_zarr_meta" / "_lib.pyi"
tree = ast.parse(stub.read_text())
stubbed = set()
for node in tree.body:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
        stubbed.add(node.name)
    elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        stubbed.add(node.target.id)
exported = {n for n in dir(lib) if not n.startswith("_") or n == "__version__"}
missing, extra = exported - stubbed, stubbed - exported
if missing or extra:
    print(f"_lib.pyi out of date: missing {sorted(missing)}, stale {sorted(extra)}")
    sys.exit(1)
for cls in (n for n in stubbed if isinstance(getattr(lib, n, None), type)):
    node = next(x for x in tree.body if isinstance(x, ast.ClassDef) and x.name == cls)
    names = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
    public = {
        m
        for m in vars(getattr(lib, cls))
        if not m.startswith("_")
        or m.startswith("__arrow")
        or m.startswith("__sedonadb")
        or m.startswith("__datafusion")
    }
    if cls != "ZarrMetaError" and not public <= names | {"__new__"}:
        print(f"_lib.pyi: {cls} lacks {sorted(public - names)}")
        sys.exit(1)
print(f"stubs ok: {len(stubbed)} names")
