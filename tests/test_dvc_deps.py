"""dvc.yaml lists, for every stage, exactly the src/taste code its notebook imports (directly or through other modules).

A stage whose deps miss a package it imports would report outputs made by old code as current after that package
changes (issue 11, section 5). The import closure is read from the source with `ast`, imports inside functions included.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from taste.stages import STAGE_NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "taste"


def imported_taste_modules(path: Path) -> set[str]:
    """Dotted `taste.*` module names that the Python file at `path` imports anywhere in its body."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "taste"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "taste":
                names.add(node.module)
                # `from taste.data import report` imports the module taste.data.report
                names |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
    return names


def module_file(name: str) -> Path | None:
    """The source file of the dotted module `name` under src/taste, or None when it is not a module."""
    rel = Path(*name.split(".")[1:])
    for candidate in (SRC / rel / "__init__.py", (SRC / rel).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def import_closure(path: Path) -> set[str]:
    """Every taste module reached from the file `path` by following imports (package __init__ files included)."""
    seen: set[str] = set()
    todo = sorted(imported_taste_modules(path))
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(2, len(parts) + 1):  # importing taste.a.b runs taste/a/__init__.py first
            prefix = ".".join(parts[:k])
            if prefix in seen or module_file(prefix) is None:
                continue
            seen.add(prefix)
            todo += sorted(imported_taste_modules(module_file(prefix)))
    return seen


def dep_path(module: str) -> str:
    """The dvc.yaml dep that covers `module`: its top-level folder under src/taste, or the file of a top-level module."""
    top = module.split(".")[1]
    return f"src/taste/{top}" if (SRC / top).is_dir() else f"src/taste/{top}.py"


def test_closure_follows_imports_inside_functions(tmp_path):
    """A reference case for the reader: a function-local import counts, a string mentioning a module does not."""
    f = tmp_path / "nb.py"
    f.write_text("import os\nx = 'taste.lm'\ndef g():\n    from taste.data import records\n", encoding="utf-8")
    assert imported_taste_modules(f) == {"taste.data", "taste.data.records"}
    assert {dep_path(m) for m in import_closure(f)} == {"src/taste/data"}


@pytest.mark.parametrize("stage", sorted(STAGE_NOTEBOOKS))
def test_stage_deps_cover_exactly_the_code_its_notebook_imports(stage):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    listed = {d for d in stages[stage]["deps"] if d.startswith("src/taste")}
    needed = {dep_path(m) for m in import_closure(ROOT / "notebooks" / f"{STAGE_NOTEBOOKS[stage]}.py")}
    assert not needed - listed, f"dvc.yaml stage {stage!r} misses deps it imports: {sorted(needed - listed)}"
    assert not listed - needed, f"dvc.yaml stage {stage!r} lists deps it does not import: {sorted(listed - needed)}"


def test_lm_pretrain_does_not_depend_on_the_taste_tokenizer():
    """Issue 12: the text LM and the S3-unit LM are their own stage so that a tokenizer change does not retrain them:
    nothing of the tokenizer stage (its code, params, models or codes) may be among that stage's deps."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    pretrain = stages["lm_pretrain"]
    tokenizer_outs = {o if isinstance(o, str) else next(iter(o)) for o in stages["tokenizer"]["outs"]}
    assert not tokenizer_outs & set(pretrain["deps"])
    assert "src/taste/tokenizer" not in pretrain["deps"]
    assert not [p for p in pretrain["params"] if p.split(".")[0] == "tokenizer" or p in ("lm", "lm.taste_model")]
    # stage taslm reads the trained models and its metrics instead of retraining them
    assert {"models/lm_pretrain", "outputs/lm_pretrain/metrics.json"} <= set(stages["taslm"]["deps"])
    assert "models/lm_pretrain" in pretrain["outs"] and "models/lm" in stages["taslm"]["outs"]
