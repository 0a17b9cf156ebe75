"""Every public function, class and method in trainer/ and ti_tui/ has a docstring
(STYLE.md points 14-15; issue 13 item 5).

Public means the name has no leading underscore. Checked: module-level functions and classes,
and the public methods and properties of every module-level class (a private class such as
`_Loop` still documents the methods others call). Exempt, because the name already says what
they are and the framework defines their contract:

- dunder methods (`__init__`, `__post_init__`, `__iter__`...): the class docstring covers them;
- property setters and deleters (the getter carries the docstring);
- Textual hooks: `compose`, `render`, `on_mount`, `on_unmount`, `on_<message>` handlers,
  `watch_<reactive>` watchers and `action_<name>` key actions (their BINDINGS line gives the
  user-facing description).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
    assert checked > 300  # the walk found the packages
    assert not missing, (f"{len(missing)} of {checked} public definitions have no docstring:\n"
                         + "\n".join(missing))


def test_checker_sees_a_missing_docstring(tmp_path):
    """The walk reports an undocumented function and method, and skips the exempt hooks."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    pass\n\n\nclass C:\n    \"\"\"Doc.\"\"\"\n\n"
                     "    def run(self):\n        pass\n\n    def on_click(self):\n"
                     "        pass\n\n    def __init__(self):\n        pass\n",
                     encoding="utf-8")
    found, count = undocumented(probe)
    names = [line.split(" ", 1)[1] for line in found]
    assert names == ["f", "C.run"] and count == 3
