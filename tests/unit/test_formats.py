"""The embedding format registry (trainer/formats.py): names, file rules, writers, reading back."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch
from safetensors.torch import load_file
from safetensors.torch import save_file

from trainer import formats
from trainer.errors import ResumeError
from trainer.formats import check_dimension, load_embedding, save_embedding

WIDTHS = {"sd1": {"text_encoder": 768}, "sd2": {"text_encoder": 1024},
          "sdxl": {"clip_l": 768, "clip_g": 1280}}


def parts_for(family: str, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(n, width, generator=generator)
            for key, width in WIDTHS[family].items()}


def test_default_files_per_family_are_looked_up_by_name():
    sd1 = {f.name: f.file_name("<my-cat>") for f in formats.formats_for("sd1")}
    assert sd1 == {"standalone": "my-cat.safetensors", "diffusers": "learned_embeds.safetensors",
                   "diffusers_bin": "learned_embeds.bin"}
    assert [f.name for f in formats.formats_for("sdxl")] == ["standalone"]
    assert [f.name for f in formats.formats_for("sdxl", "diffusers_sdxl")] == [
        "standalone", "diffusers", "diffusers_2"]
    assert [f.name for f in formats.formats_for("sd2", "a1111")][-1] == "a1111"
    assert "a1111" not in [f.name for f in formats.formats_for("sdxl", "a1111")]
    with pytest.raises(ValueError):
        formats.formats_for("sd3")


def test_snapshot_names_and_a_trigger_named_like_the_diffusers_file(tmp_path):
    paths = save_embedding(tmp_path, "<star>", parts_for("sd1", 1), "sd1", step=4,
                           model_name="m", suffix="-steps-4", save_as="a1111")
    assert sorted(p.name for p in paths.values()) == [
        "learned_embeds-steps-4.bin", "learned_embeds-steps-4.safetensors",
        "star-ti-steps-4.pt", "star-ti-steps-4.safetensors"]
    paths = save_embedding(tmp_path / "x", "<learned_embeds>", parts_for("sd1", 1), "sd1",
                           step=0, model_name="m")
    assert paths["standalone"].name == "learned_embeds-ti.safetensors"
    assert set(load_file(str(paths["diffusers"]))) == {"<learned_embeds>"}


def test_torch_files_hold_only_the_members_old_readers_allow(tmp_path):
    paths = save_embedding(tmp_path, "<star>", parts_for("sd1", 2), "sd1", step=3,
                           model_name="m", save_as="a1111")
    for name in ("diffusers_bin", "a1111"):
        archive = zipfile.ZipFile(paths[name])
        members = archive.namelist()
        # The storage holds exactly the rows (2 x 768 float32), never a larger table's view.
        assert [archive.getinfo(m).file_size for m in members if "/data/" in m] == [2 * 768 * 4]
        assert all(m.rsplit("/", 1)[-1] in ("data.pkl", "version") or "/data/" in m
                   for m in members), members
        assert not any(m.endswith(("byteorder", ".format_version", "serialization_id"))
                       for m in members)
    # Plain torch.save writes those members (why the rewrite exists).
    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(1)}, buffer)
    assert any(m.endswith("byteorder") for m in zipfile.ZipFile(buffer).namelist())


def test_torch_bytes_round_trips_with_weights_only_and_mmap(tmp_path):
    value = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(5, dtype=torch.float16),
             "name": "x", "step": 3, "none": None}
    target = tmp_path / "x.pt"
    target.write_bytes(formats.torch_bytes(value))
    for kwargs in ({}, {"mmap": True}):
        loaded = torch.load(target, weights_only=True, **kwargs)
        assert loaded["name"] == "x" and loaded["step"] == 3 and loaded["none"] is None
        assert torch.equal(loaded["a"], value["a"]) and torch.equal(loaded["b"], value["b"])


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("n", [1, 3])
def test_every_written_file_reads_back_as_the_trained_rows(tmp_path, family, n):
    parts = parts_for(family, n)
    joined = torch.cat(list(parts.values()), dim=1)
    save_as = "diffusers_sdxl" if family == "sdxl" else "a1111"
    paths = save_embedding(tmp_path, "<star>", parts, family, step=5, model_name="m",
                           save_as=save_as)
    for name, path in paths.items():
        _, rows = load_embedding(path)
        if name == "diffusers" and family == "sdxl":
            expected = parts["clip_l"]
        elif name == "diffusers_2":
            expected = parts["clip_g"]
        else:
            expected = joined
        assert torch.equal(rows, expected), name


def test_standalone_layouts(tmp_path):
    sd1 = save_embedding(tmp_path / "a", "<star>", parts_for("sd1", 2), "sd1", step=7,
                         model_name="m")["standalone"]
    assert set(load_file(str(sd1))) == {"emb_params"}
    sdxl = save_embedding(tmp_path / "b", "<star>", parts_for("sdxl", 2), "sdxl", step=7,
                          model_name="m")["standalone"]
    data = load_file(str(sdxl))
    assert set(data) == {"clip_l", "clip_g"}
    assert data["clip_l"].shape == (2, 768) and data["clip_g"].shape == (2, 1280)


def test_nan_rows_write_nothing(tmp_path):
    parts = parts_for("sdxl", 1)
    parts["clip_g"][0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        save_embedding(tmp_path / "out", "<star>", parts, "sdxl", step=1, model_name="m")
    assert not (tmp_path / "out").exists()


def test_wrong_parts_for_the_family_are_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="text_encoder"):
        save_embedding(tmp_path, "<star>", parts_for("sdxl", 1), "sd1", step=1, model_name="m")


@pytest.mark.parametrize("layout", ["a1111", "kohya", "onetrainer", "diffusers_1d", "sdxl",
                                    "onetrainer_sdxl"])
def test_load_embedding_understands_other_tools_layouts(tmp_path, layout):
    rows = torch.randn(2, 768)
    g = torch.randn(2, 1280)
    path = tmp_path / "e.safetensors"
    if layout == "a1111":
        path = tmp_path / "e.pt"
        torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": rows},
                    "name": "e", "step": 1}, path)
    elif layout == "kohya":
        save_file({"emb_params": rows}, str(path))
    elif layout == "onetrainer":
        save_file({"emp_params": rows}, str(path))
    elif layout == "diffusers_1d":
        rows = rows[:1]
        path = tmp_path / "learned_embeds.bin"
        torch.save({"<e>": rows[0]}, path)
    else:
        extra = {"clip_l_out": torch.zeros(2, 768)} if layout == "onetrainer_sdxl" else {}
        save_file({"clip_g": g, "clip_l": rows, **extra}, str(path))
        rows = torch.cat([rows, g], dim=1)
    _, loaded = load_embedding(path)
    assert torch.equal(loaded, rows)


def test_load_embedding_refuses_half_an_sdxl_pair(tmp_path):
    path = tmp_path / "e.safetensors"
    save_file({"clip_l": torch.zeros(2, 768), "clip_g": torch.zeros(3, 1280)}, str(path))
    with pytest.raises(ResumeError, match="no embedding tensor"):
        load_embedding(path)


@pytest.mark.parametrize(("width", "model", "words"), [
    (1024, 768, ["token dimension 1024 (SD 2.x)", "token dimension 768 (SD 1.x)"]),
    (768, 2048, ["token dimension 768 (SD 1.x)", "2048 (SDXL", "clip_l and clip_g"]),
    (1280, 2048, ["clip_g half of an SDXL embedding alone"]),
    (2048, 32, ["token dimension 2048 (SDXL", "768 + 1280: SDXL"]),
])
def test_check_dimension_names_every_family_in_one_sentence(width, model, words):
    with pytest.raises(ResumeError) as info:
        check_dimension(torch.zeros(1, width), model, "e.safetensors")
    message = str(info.value)
    assert info.value.field == "initial_embedding"
    assert message.count(". ") == 0 and message.endswith(".") and "\n" not in message
    for word in words:
        assert word in message
    check_dimension(torch.zeros(2, model), model, "e.safetensors")  # the right width passes


def test_tool_lines_name_the_file_each_tool_reads(tmp_path):
    from trainer.install_guide import tool_lines

    sd1 = save_embedding(tmp_path / "sd1", "<cat>", parts_for("sd1", 2), "sd1", step=1,
                         model_name="m")
    lines = tool_lines(tmp_path / "sd1", "<cat>", None, 2)
    # Two vectors: InvokeAI 2.3 refuses them in the .bin, so the line names <name>.safetensors.
    assert f"InvokeAI 2.3/3.x: {sd1['standalone']}" in lines
    assert f"diffusers: {sd1['diffusers']} (pipe.load_textual_inversion)" in lines
    one = save_embedding(tmp_path / "one", "<cat>", parts_for("sd1", 1), "sd1", step=1,
                         model_name="m")
    assert f"InvokeAI 2.3/3.x: {one['diffusers_bin']}" in tool_lines(tmp_path / "one", "<cat>")
    sdxl = save_embedding(tmp_path / "xl", "<cat>", parts_for("sdxl", 2), "sdxl", step=1,
                          model_name="m")
    lines = tool_lines(tmp_path / "xl", "<cat>", None, 2)
    assert f"InvokeAI 3.x: {sdxl['standalone']}" in lines  # 2.3 has no SDXL
    assert any(line.startswith(f"diffusers: {sdxl['standalone']}, clip_l into text_encoder")
               for line in lines)
    modern = tmp_path / "root"
    (modern / "databases").mkdir(parents=True)
    (modern / "databases" / "invokeai.db").write_bytes(b"")
    lines = tool_lines(tmp_path / "sd1", "<cat>", modern, 2)
    assert not any(line.startswith(("InvokeAI 2.3", "InvokeAI 4+:")) for line in lines)
    assert lines[-1].startswith("To use it in InvokeAI 4+, open the Model Manager")


def test_sdxl_parts_as_views_of_one_parameter(tmp_path):
    """The conditioner's split gives column views of the one [n, 768 + 1280] parameter."""
    vectors = torch.randn(2, 2048)
    parts = {"clip_l": vectors[:, :768], "clip_g": vectors[:, 768:]}
    path = save_embedding(tmp_path, "<star>", parts, "sdxl", step=1,
                          model_name="m")["standalone"]
    data = load_file(str(path))
    assert data["clip_l"].equal(vectors[:, :768]) and data["clip_g"].equal(vectors[:, 768:])
    assert path.stat().st_size < 2 * 2048 * 4 + 1024  # each half stored once, nothing more
    assert load_embedding(path)[1].equal(vectors)
