"""Every run's files against each tool's own loading rule (tests/tool_rules.py) and the real
diffusers loader: for SD 1.x, 2.x and SDXL, and any number of vectors."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import save_file

from trainer.formats import save_embedding

from tests.tool_rules import (COMFY_ENCODERS, Refused, a1111_load, a1111_safe_unpickle,
                         comfyui_load_embed, invokeai4_install, invokeai23_load,
                         kohya_weights, picklescan_globals)

WIDTHS = {"sd1": {"text_encoder": 768}, "sd2": {"text_encoder": 1024},
          "sdxl": {"clip_l": 768, "clip_g": 1280}}
BASES = {"sd1": "sd-1", "sd2": "sd-2", "sdxl": "sdxl"}


def parts_for(family: str, n: int, widths=None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(n)
    return {key: torch.randn(n, width, generator=generator)
            for key, width in (widths or WIDTHS[family]).items()}


def model_width(family: str) -> int:
    return sum(WIDTHS[family].values())


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_default_output_has_one_file_every_tool_installs(tmp_path, family, n):
    parts = parts_for(family, n)
    paths = save_embedding(tmp_path, "<my-cat>", parts, family, step=9, model_name="m")
    single = paths["standalone"]
    assert single.name == "my-cat.safetensors"
    # InvokeAI 4+: probe, base and loader.
    base, embedding, embedding_2 = invokeai4_install(single)
    assert base == BASES[family]
    if family == "sdxl":
        assert torch.equal(embedding, parts["clip_g"]) and torch.equal(embedding_2,
                                                                       parts["clip_l"])
    else:
        assert torch.equal(embedding, parts["text_encoder"]) and embedding_2 is None
    # AUTOMATIC1111 / Forge: registered under the file's stem, all vectors, the model's width.
    assert a1111_load(single, model_width(family)) == ("my-cat", n, model_width(family))
    # ComfyUI: `embedding:my-cat`, each encoder gets its own rows.
    for (width, key), rows in zip(COMFY_ENCODERS[family], parts.values(), strict=True):
        assert torch.equal(comfyui_load_embed(single, width, key), rows)
    # kohya sd-scripts, --weights: one tensor per encoder.
    assert all(a.equal(b) for a, b in zip(kohya_weights(single, family, n), parts.values(),
                                           strict=True))
    # Every torch file in the default output passes A1111's safe-unpickle and picklescan too.
    for path in paths.values():
        if path.suffix in (".bin", ".pt"):
            a1111_safe_unpickle(path)
            assert picklescan_globals(path) <= {("torch._utils", "_rebuild_tensor_v2"),
                                                ("torch", "FloatStorage"),
                                                ("collections", "OrderedDict")}


@pytest.mark.parametrize("family", ["sd1", "sd2"])
@pytest.mark.parametrize("n", [1, 3])
def test_the_a1111_pt_loads_everywhere(tmp_path, family, n):
    parts = parts_for(family, n)
    paths = save_embedding(tmp_path, "<my-cat>", parts, family, step=9, model_name="m",
                           save_as="a1111", suffix="-steps-9")
    pt = paths["a1111"]
    assert pt.name == "my-cat-steps-9.pt"
    width = model_width(family)
    assert a1111_load(pt, width) == ("my-cat-steps-9", n, width)
    base, embedding, _ = invokeai4_install(pt)
    assert base == BASES[family] and torch.equal(embedding, parts["text_encoder"])
    assert torch.equal(comfyui_load_embed(pt, *COMFY_ENCODERS[family][0]), parts["text_encoder"])
    trigger, rows = invokeai23_load(pt, width)
    assert trigger == "my-cat" and torch.equal(rows, parts["text_encoder"])


@pytest.mark.parametrize("n", [1, 2])
def test_invokeai_2_3_reads_the_file_the_root_copy_takes(tmp_path, n):
    """The copy into ROOT/embeddings/ is the .bin for one vector, else <name>.safetensors
    (trainer/install_guide.py): each is what InvokeAI 2.3 reads for that count."""
    parts = parts_for("sd1", n)
    paths = save_embedding(tmp_path, "<my-cat>", parts, "sd1", step=1, model_name="m")
    chosen = paths["diffusers_bin"] if n == 1 else paths["standalone"]
    trigger, rows = invokeai23_load(chosen, 768)
    assert trigger == "<my-cat>" and torch.equal(rows, parts["text_encoder"])
    if n > 1:
        with pytest.raises(Refused, match="incompatible token dimension"):
            invokeai23_load(paths["diffusers_bin"], 768)


def test_the_rules_refuse_what_was_measured_on_the_old_output(tmp_path):
    """Before the registry: a 2-vector learned_embeds.safetensors (and .bin), and any file
    torch.save wrote directly."""
    rows = torch.randn(2, 768)
    save_file({"<my-cat>": rows}, str(tmp_path / "learned_embeds.safetensors"))
    with pytest.raises(Refused, match="unrecognized token dimension 2"):
        invokeai4_install(tmp_path / "learned_embeds.safetensors")
    torch.save({"<my-cat>": rows}, tmp_path / "learned_embeds.bin")
    with pytest.raises(Refused, match="unrecognized token dimension 2"):
        invokeai4_install(tmp_path / "learned_embeds.bin")
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": rows}, "name": "x",
                "step": 1}, tmp_path / "x.pt")
    with pytest.raises(Refused, match="bad file inside .*(format_version|byteorder)"):
        a1111_safe_unpickle(tmp_path / "x.pt")


def test_a1111_safe_unpickle_refuses_code_even_in_an_allowed_layout(tmp_path):
    from trainer.formats import torch_bytes

    path = tmp_path / "evil.pt"
    path.write_bytes(torch_bytes({"x": io.BytesIO}))  # a global outside the allow-list
    with pytest.raises(Refused, match="forbidden"):
        a1111_safe_unpickle(path)
    with pytest.raises(Refused, match="not innocuous"):
        picklescan_globals(path)


# --- diffusers: the real library ---------------------------------------------------------------

def _tiny_pipeline(model_dir):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(str(model_dir), safety_checker=None,
                                                   requires_safety_checker=False)


def _rows_for(tokenizer, text_encoder, tokens: list[str]) -> torch.Tensor:
    ids = tokenizer.convert_tokens_to_ids(tokens)
    return text_encoder.get_input_embeddings().weight[ids].detach()


@pytest.mark.parametrize("n", [1, 3])
def test_diffusers_loads_each_sd_file_into_a_tiny_pipeline(tmp_path, tiny_model_dir, n):
    from trainer.models import check_model_folder

    width = check_model_folder(tiny_model_dir).token_dim
    rows = parts_for("sd1", n, {"text_encoder": width})
    paths = save_embedding(tmp_path, "<my-cat>", rows, "sd1", step=2, model_name="m",
                           save_as="a1111")
    tokens = ["<my-cat>"] + [f"<my-cat>_{i}" for i in range(1, n)]
    for name in ("diffusers", "diffusers_bin", "a1111", "standalone"):
        pipe = _tiny_pipeline(tiny_model_dir)
        if name == "diffusers":  # diffusers' own default: the folder, learned_embeds.*
            pipe.load_textual_inversion(str(tmp_path))
        else:
            pipe.load_textual_inversion(str(paths[name]), token="<my-cat>")
        loaded = _rows_for(pipe.tokenizer, pipe.text_encoder, tokens)
        assert torch.equal(loaded, rows["text_encoder"]), name


@pytest.fixture(scope="module")
def sdxl_encoders():
    """The two SDXL text encoders at their real widths (one layer each) and the real vocab."""
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,
                              CLIPTokenizer)

    from trainer.assets import asset_path

    torch.manual_seed(0)

    def config(hidden):
        return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=32,
                              num_hidden_layers=1, num_attention_heads=2,
                              max_position_embeddings=77, projection_dim=hidden)

    tokenizers = [CLIPTokenizer.from_pretrained(str(asset_path("clip-tokenizer")))
                  for _ in range(2)]
    return tokenizers, [CLIPTextModel(config(768)), CLIPTextModelWithProjection(config(1280))]


def _load(source, token, tokenizer, encoder):
    """diffusers' own loader (TextualInversionLoaderMixin, what every pipeline inherits) on a
    holder with just what it reads from a pipeline besides the encoder passed in."""
    from diffusers.loaders import TextualInversionLoaderMixin

    class Holder(TextualInversionLoaderMixin):
        hf_device_map = None
        components: dict = {}

    Holder().load_textual_inversion(source, token=token, tokenizer=tokenizer,
                                    text_encoder=encoder)


@pytest.mark.parametrize("save_as", ["diffusers", "diffusers_sdxl"])
def test_diffusers_loads_the_sdxl_halves_into_each_encoder(tmp_path, sdxl_encoders, save_as):
    from safetensors.torch import load_file

    tokenizers, encoders = (list(x) for x in sdxl_encoders)
    token = f"<cat-{save_as}>"  # each case adds its own token to the shared encoders
    parts = parts_for("sdxl", 2)
    paths = save_embedding(tmp_path, token, parts, "sdxl", step=2, model_name="m",
                           save_as=save_as)
    if save_as == "diffusers":  # the one file, as diffusers' docs load it (diffusers#8854)
        state = load_file(str(paths["standalone"]))
        sources = [state["clip_l"], state["clip_g"]]
    else:
        sources = [str(paths["diffusers"]), str(paths["diffusers_2"])]
    for source, tokenizer, encoder, key in zip(sources, tokenizers, encoders, parts,
                                               strict=True):
        _load(source, token, tokenizer, encoder)
        loaded = _rows_for(tokenizer, encoder, [token, f"{token}_1"])
        assert torch.equal(loaded, parts[key]), key
