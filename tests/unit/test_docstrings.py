"""Every public function, class, method and dataclass field in trainer/ and ti_tui/ has a
docstring (STYLE.md points 14-15; issue 13 item 5).

Public means the name has no leading underscore. Checked: module-level functions and classes,
and the public methods and properties of every module-level class (a private class such as
`_Loop` still documents the methods others call). Exempt, because the name already says what
they are and the framework defines their contract:

- dunder methods (`__init__`, `__post_init__`, `__iter__`...): the class docstring covers them;
- property setters and deleters (the getter carries the docstring);
- Textual hooks: `compose`, `render`, `on_mount`, `on_unmount`, `on_<message>` handlers,
  `watch_<reactive>` watchers and `action_<name>` key actions (their BINDINGS line gives the
  user-facing description).

A public dataclass field is documented by a string literal right under it, or by its help
metadata (TrainConfig's `opt(...)`/`field(metadata=...)`: the help the CLI and the form show),
or by its class docstring naming it in backticks; ClassVars (an event's `type`) are exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("trainer", "ti_tui")
TEXTUAL_HOOKS = {"compose", "render", "on_mount", "on_unmount"}
TEXTUAL_PREFIXES = ("on_", "watch_", "action_")

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _exempt_method(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    if node.name.startswith("_"):
        return True  # private and dunder methods
    if node.name in TEXTUAL_HOOKS or node.name.startswith(TEXTUAL_PREFIXES):
        return True
    return any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter")
               for d in node.decorator_list)


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "dataclass"
               or isinstance(d, ast.Call) and getattr(d.func, "id", None) == "dataclass"
               for d in node.decorator_list)


def _field_has_help(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Call) and (
        getattr(value.func, "id", None) == "opt"
        or any(keyword.arg == "metadata" for keyword in value.keywords))


def undocumented_fields(node: ast.ClassDef) -> tuple[list[tuple[int, str]], int]:
    """(line, name) of a dataclass's public fields without documentation, and the count."""
    if not _is_dataclass(node):
        return [], 0
    class_doc = ast.get_docstring(node) or ""
    missing, checked = [], 0
    for index, statement in enumerate(node.body):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        name = statement.target.id
        if name.startswith("_") or "ClassVar" in ast.unparse(statement.annotation):
            continue
        checked += 1
        after = node.body[index + 1] if index + 1 < len(node.body) else None
        documented = (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                      and isinstance(after.value.value, str))
        if not (documented or _field_has_help(statement.value) or f"`{name}`" in class_doc):
            missing.append((statement.lineno, name))
    return missing, checked


def undocumented(path: Path) -> tuple[list[str], int]:
    """The public definitions in one source file that lack a docstring, as
    `path:line name` strings, and how many public definitions were checked."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    missing: list[str] = []
    checked = 0
    for node in tree.body:
        if not isinstance(node, (*_DEFS, ast.ClassDef)):
            continue
        if not node.name.startswith("_"):
            checked += 1
            if ast.get_docstring(node) is None:
                missing.append(f"{rel}:{node.lineno} {node.name}")
        if isinstance(node, ast.ClassDef):
            fields, count = undocumented_fields(node)
            checked += count
            missing += [f"{rel}:{line} {node.name}.{name}" for line, name in fields]
            for sub in node.body:
                if isinstance(sub, _DEFS) and not _exempt_method(sub):
                    checked += 1
                    if ast.get_docstring(sub) is None:
                        missing.append(f"{rel}:{sub.lineno} {node.name}.{sub.name}")
    return missing, checked


def test_public_definitions_have_docstrings():
    missing: list[str] = []
    checked = 0
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found, count = undocumented(path)
            missing += found
            checked += count
    assert checked > 900  # the walk found the packages
    assert not missing, (f"{len(missing)} of {checked} public definitions have no docstring:\n"
                         + "\n".join(missing))


def test_checker_sees_a_missing_docstring(tmp_path):
    """The walk reports an undocumented function, method and dataclass field, and skips the
    exempt hooks and the fields documented another way."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from dataclasses import dataclass, field\n"
        "from typing import ClassVar\n\n\n"
        "def f():\n    pass\n\n\n"
        "class C:\n    \"\"\"Doc.\"\"\"\n\n"
        "    def run(self):\n        pass\n\n    def on_click(self):\n        pass\n\n"
        "    def __init__(self):\n        pass\n\n\n"
        "@dataclass\nclass D:\n    \"\"\"Doc naming `named`.\"\"\"\n\n"
        "    type: ClassVar[str] = 'd'\n    bare: int\n    documented: int\n"
        "    \"\"\"Doc.\"\"\"\n    named: int\n"
        "    helped: int = field(default=0, metadata={'help': 'Doc.'})\n",
        encoding="utf-8")
    found, count = undocumented(probe)
    names = [line.split(" ", 1)[1] for line in found]
    assert names == ["f", "C.run", "D.bare"] and count == 8
