"""Build the CLIP tokenizer files in assets/clip-tokenizer/ from OpenAI's BPE file.

transformers ships no vocabulary and ti-tui never downloads from a model hub, so the demo
model's tokenizer is rebuilt here from `bpe_simple_vocab_16e6.txt.gz` (MIT, OpenAI), which
sits inside the PyPI wheel of `clip-anytorch`. Get the wheel without installing it (it would
pull torchvision, which breaks diffusers here):

    pip download --no-deps clip-anytorch==2.6.0 -d /tmp/clipwheel
    python tools/make_tokenizer_assets.py /tmp/clipwheel/clip_anytorch-2.6.0-py3-none-any.whl

The argument may also be the extracted `.txt.gz` file. The result matches the tokenizer in
Stable Diffusion 1.x folders: "a photo of a cat" -> [49406, 320, 1125, 539, 320, 2368, 49407].
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "assets" / "clip-tokenizer"
BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"

# CLIP's vocabulary is 49408 = 256 bytes + 256 bytes-with-</w> + 48894 merges + 2 specials,
# so only the first 48894 merge lines of the file are used (line 0 is a header).
NUM_MERGES = 49408 - 2 * 256 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
CHECK_TEXT = "a photo of a cat"
CHECK_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]

LICENSE = """\
The files vocab.json and merges.txt in this folder are derived from
bpe_simple_vocab_16e6.txt.gz, part of OpenAI CLIP (https://github.com/openai/CLIP),
by tools/make_tokenizer_assets.py.

MIT License

Copyright (c) 2021 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable unicode characters.

    Printable bytes map to themselves; the rest are shifted above U+0100 so that BPE never
    has to deal with whitespace or control characters. The dict's order fixes ids 0..255.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def read_bpe_lines(source: Path) -> list[str]:
    """The decompressed lines of the BPE file, from a wheel or from the .txt.gz itself."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith(BPE_NAME)), None)
            if member is None:
                raise SystemExit(f"{source} holds no {BPE_NAME}.")
            data = gzip.decompress(wheel.read(member))
    else:
        data = gzip.decompress(source.read_bytes())
    return data.decode("utf-8").split("\n")


def build(lines: list[str]) -> tuple[dict[str, int], list[str]]:
    """Return (vocab token -> id, merge lines) in the order SD's tokenizer uses."""
    merges = lines[1 : 1 + NUM_MERGES]
    if len(merges) != NUM_MERGES or any(len(m.split()) != 2 for m in merges):
        raise SystemExit("The BPE file does not look like CLIP's bpe_simple_vocab_16e6.")
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise SystemExit("Duplicate tokens in the vocabulary; the BPE file is not CLIP's.")
    return vocab, merges


def write(out: Path, vocab: dict[str, int], merges: list[str]) -> None:
    """Write vocab.json, merges.txt, the two tokenizer configs and the licence into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        **special,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", "utf-8")
    (out / "LICENSE").write_text(LICENSE, encoding="utf-8")


def check(out: Path) -> None:
    """Load the result the way the trainer does and compare with real SD 1.5's ids."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(out), local_files_only=True)
    ids = tok(CHECK_TEXT).input_ids
    if ids != CHECK_IDS or len(tok) != 49408 or tok.model_max_length != 77:
        raise SystemExit(f"Check failed: {CHECK_TEXT!r} -> {ids}, {len(tok)} tokens.")
    print(f"ok: {CHECK_TEXT!r} -> {ids}; {len(tok)} tokens; written to {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help=f"clip-anytorch wheel or {BPE_NAME}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--no-check", action="store_true", help="skip loading with transformers")
    args = parser.parse_args(argv)
    vocab, merges = build(read_bpe_lines(args.source))
    write(args.out, vocab, merges)
    if not args.no_check:
        check(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
