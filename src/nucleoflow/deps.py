"""Which library files a workflow script depends on, read from the import statements.

Snakemake does not track Python imports, so each rule's inputs include the library files its
script imports, directly or through other modules of the package (script_files): editing one
module reruns exactly the rules whose code changed. Read from the source when the workflow is
parsed, the lists cannot drift from the code. Every import counts, a function's own included:
a module imported anywhere in a file may run. So a module that imports another only to
re-export its names would make every rule that uses it depend on the other: none does.
"""

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@functools.cache
def _imported_modules(path):
    """Names of the nucleoflow modules one file imports (absolute or relative imports)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    inside = Path(path).resolve().parent == PACKAGE
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1 and inside:
                base = node.module or ""
            elif node.level == 0 and (node.module or "").split(".")[0] == "nucleoflow":
                base = node.module[len("nucleoflow") :].lstrip(".")
            else:
                continue
            names = [base] if base else [a.name for a in node.names]
            found.update(n.split(".")[0] for n in names if n)
            continue
        else:
            continue
        found.update(n.split(".")[1] for n in names if n.startswith("nucleoflow.") and n.count("."))
    return frozenset(m for m in found if (PACKAGE / f"{m}.py").exists())


def script_modules(script):
    """The package modules a workflow script imports itself."""
    return _imported_modules(str(script))


def module_files(*modules):
    """Sorted paths of the given package modules and every module they import, with __init__."""
    todo = set(modules) | {"__init__"}
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo |= _imported_modules(str(PACKAGE / f"{name}.py")) - seen
    return sorted(str(PACKAGE / f"{name}.py") for name in seen)


def script_files(script):
    """Sorted paths of the package modules a workflow script runs: those it imports, every
    module they import in turn, and __init__."""
    return module_files(*script_modules(script))
