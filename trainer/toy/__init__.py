"""Toy models and data, kept out of the training engine.

`demo` builds the tiny SD-1.x-shaped demo model and its sample images (`ti-tui demo`, the
tests); `world` is the toy world of 32 px shape scenes that the shipped toy model knows
(docs/RESULTS.md). The engine never imports this package (an import-linter contract in
pyproject.toml); the demo command, the tests, bench/ and tools/ do.
"""
