"""The CLIP tokenizer shipped in assets/ tokenises exactly like Stable Diffusion 1.5's."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from trainer.assets import asset_path

TOKENIZER = asset_path("clip-tokenizer")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(TOKENIZER), local_files_only=True)


def test_asset_path_finds_the_repo_assets():
    assert TOKENIZER.is_dir()
    assert TOKENIZER == Path(__file__).resolve().parents[2] / "assets" / "clip-tokenizer"


def test_ids_match_stable_diffusion(tokenizer):
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer) == 49408
    assert tokenizer.model_max_length == 77


def test_special_tokens(tokenizer):
    assert tokenizer.bos_token == "<|startoftext|>"
    assert tokenizer.eos_token == tokenizer.pad_token == tokenizer.unk_token == "<|endoftext|>"
    assert tokenizer.pad_token_id == 49407
    padded = tokenizer("a cat", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[-1] == 49407


def test_files_and_licence():
    merges = (TOKENIZER / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2"
    assert len(merges) == 1 + 48894
    vocab = json.loads((TOKENIZER / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408 and sorted(vocab.values()) == list(range(49408))
    licence = (TOKENIZER / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Copyright (c) 2021 OpenAI" in licence


def test_generator_byte_table_matches_shipped_vocab():
    # The tool needs the clip-anytorch wheel to run, but its byte table (ids 0..511) can be
    # checked against the shipped vocabulary without it.
    path = Path(__file__).resolve().parents[2] / "tools" / "make_tokenizer_assets.py"
    spec = importlib.util.spec_from_file_location("make_tokenizer_assets", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    symbols = list(tool.bytes_to_unicode().values())
    vocab = json.loads((TOKENIZER / "vocab.json").read_text(encoding="utf-8"))
    by_id = sorted(vocab, key=vocab.get)
    assert by_id[:512] == symbols + [s + "</w>" for s in symbols]
    assert by_id[-2:] == ["<|startoftext|>", "<|endoftext|>"]
