"""``adapters export --format gguf`` without llama.cpp: the Ollama Modelfile and its syntax check, the
errors raised before any work (llama-cpp-python missing, an unsupported architecture, an existing or
protected target).  The export itself (convert, quantize, verify in llama.cpp) is in
tests/integration/test_gguf_export.py."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import pytest

from xiaoshuo.errors import DependencyError, XiaoshuoError
from xiaoshuo.gguf_export import (
    CHATML_TEMPLATE,
    ExportError,
    export_gguf,
    modelfile_text,
    ollama_name,
    parse_modelfile,
)
from xiaoshuo.testing import tiny_engine_settings


@pytest.fixture
def no_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend llama-cpp-python is installed (these checks run before it is used)."""
    import xiaoshuo.engine.llamacpp_backend as backend

    monkeypatch.setattr(backend, "import_llama_cpp", lambda: object())


def test_modelfile_of_the_tiny_model_is_chatml_with_our_sampling(tiny_model: Path, tmp_path: Path) -> None:
    settings = tiny_engine_settings(
        tiny_model, tmp_path, **{"generation.temperature": 0.7, "generation.repetition_penalty": 1.1}
    )
    text = modelfile_text(settings, tiny_model, "mystyle-Q4_K_M.gguf", adapter_name="mystyle")
    parsed = parse_modelfile(text)
    assert parsed[0] == ("FROM", "./mystyle-Q4_K_M.gguf")
    values = dict((k, a) for k, a in parsed if k != "PARAMETER")
    assert values["TEMPLATE"] == CHATML_TEMPLATE
    params = [a for k, a in parsed if k == "PARAMETER"]
    assert 'stop "<|im_end|>"' in params
    assert "temperature 0.7" in params and "repeat_penalty 1.1" in params and "top_p 0.9" in params
    assert values["SYSTEM"] == settings.engine.system_prompt
    # a LoRA: FROM the base GGUF, ADAPTER the file beside the Modelfile
    lora = parse_modelfile(modelfile_text(settings, tiny_model, "a.gguf", base_from="/m/base.gguf"))
    assert ("FROM", "/m/base.gguf") in lora and ("ADAPTER", "./a.gguf") in lora


GOOD = 'FROM ./x.gguf\nTEMPLATE """{{ if .System }}{{ .System }}{{ end }}"""\nPARAMETER stop "<|im_end|>"\n'


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("PARAMETER temperature 0.8\n", "exactly one FROM"),
        ("FROM ./a.gguf\nFROM ./b.gguf\n", "exactly one FROM"),
        ("FROM ./x.gguf\nPROMPT hello\n", "unknown instruction"),
        ('FROM ./x.gguf\nTEMPLATE """{{ .Prompt }}\n', 'unclosed """'),
        ('FROM ./x.gguf\nTEMPLATE """{{ if .System }}{{ .System }}"""\n', "without {{ end }}"),
        ('FROM ./x.gguf\nTEMPLATE """{{ .System }"""\n', "unbalanced"),
        ('FROM ./x.gguf\nTEMPLATE """a""" b\n', "text after the closing"),
        ("FROM ./x.gguf\nPARAMETER temprature 0.8\n", "unknown parameter"),
        ("FROM ./x.gguf\nPARAMETER top_k lots\n", "a int"),
        ('FROM ./x.gguf\nPARAMETER stop "<|im_end|>\n', "badly quoted"),
        ("FROM\n", "without an argument"),
    ],
)
def test_modelfile_syntax_errors_are_caught(text: str, fragment: str) -> None:
    parse_modelfile(GOOD)  # the good one passes
    with pytest.raises(ExportError, match="Modelfile") as err:
        parse_modelfile(text)
    assert fragment in str(err.value)


def test_ollama_names() -> None:
    assert ollama_name("MyStyle v2") == "mystyle-v2"
    assert ollama_name("归途") == "xiaoshuo-style"


def test_missing_llama_cpp_names_make_llamacpp(
    tiny_model: Path, tiny_loras: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "llama_cpp" or name.startswith("llama_cpp."):
            raise ImportError("No module named 'llama_cpp'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    settings = tiny_engine_settings(tiny_model, tmp_path)
    with pytest.raises(DependencyError, match="make llamacpp"):
        export_gguf(settings, str(tiny_loras["a"]), output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unsupported_architecture_names_the_supported_ones(
    tiny_model: Path, tiny_loras: dict[str, Path], tmp_path: Path, no_llama: None
) -> None:
    base = tmp_path / "gpt2"
    shutil.copytree(tiny_model, base)
    cfg = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPT2LMHeadModel"]}))
    settings = tiny_engine_settings(tiny_model, tmp_path)
    with pytest.raises(ExportError, match="Qwen2ForCausalLM / Qwen3ForCausalLM") as err:
        export_gguf(settings, str(tiny_loras["a"]), base=str(base), output=tmp_path / "out")
    assert "GPT2LMHeadModel" in str(err.value) and "convert_hf_to_gguf" in str(err.value)


def test_existing_or_protected_targets_are_refused_before_any_work(
    tiny_model: Path, tiny_loras: dict[str, Path], tmp_path: Path, no_llama: None
) -> None:
    settings = tiny_engine_settings(tiny_model, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-Q4_K_M.gguf").write_bytes(b"mine")
    with pytest.raises(XiaoshuoError, match="exists") as err:
        export_gguf(settings, str(tiny_loras["a"]), output=out)
    assert "--overwrite" in str(err.value)
    assert (out / "a-Q4_K_M.gguf").read_bytes() == b"mine"
    assert [p.name for p in out.iterdir()] == ["a-Q4_K_M.gguf"]  # no work folder left
    (out / "Modelfile").write_text("FROM ./x.gguf\n")
    with pytest.raises(XiaoshuoError, match="exists"):
        export_gguf(settings, str(tiny_loras["a"]), output=out, quant="F16", ollama=True)
    with pytest.raises(XiaoshuoError, match=r"paths\.models_dir"):
        export_gguf(settings, str(tiny_loras["a"]), output=Path(settings.paths.models_dir) / "x")
    assert not (Path(settings.paths.models_dir) / "merged").exists()  # refused before the merge
    with pytest.raises(ExportError, match="Q4_K_M"):
        export_gguf(settings, str(tiny_loras["a"]), output=out, quant="Q3")
    with pytest.raises(ExportError, match="no such adapter"):
        export_gguf(settings, str(tmp_path / "nothing"), output=out)
