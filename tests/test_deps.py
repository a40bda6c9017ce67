"""Each rule's lib() inputs name exactly the package modules its script imports."""

import re

import pytest
from conftest import ROOT

from nucleoflow.deps import module_files, script_modules

RULES = ROOT / "workflow" / "rules"


def rules():
    """(rule name, modules named in lib(...), script path) for every rule with a script."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":")[0]
            script = re.search(r'script:\s*"\.\./scripts/(\w+\.py)"', block)
            libs = re.search(r"lib\(([^)]*)\)", block)
            if script:
                found.append((name, set(re.findall(r'"(\w+)"', libs.group(1))) if libs else set(), ROOT / "workflow" / "scripts" / script.group(1)))
    return found


@pytest.mark.parametrize("name, named, script", rules(), ids=lambda v: v if isinstance(v, str) else "")
def test_lib_lists_match_script_imports(name, named, script):
    assert named == script_modules(script), f"rule {name}: lib() names {sorted(named)}, {script.name} imports {sorted(script_modules(script))}"


def test_module_files_follow_imports():
    files = {p.split("/")[-1] for p in module_files("segment")}
    assert {"segment.py", "blocks.py", "infer.py", "normalize.py", "appearance.py", "options.py", "postprocess.py", "__init__.py"} <= files
    assert "train.py" not in files
