"""Encoder-decoders exported for generation (``convert.seq2seq``, optimum's layout) and
their greedy tokens against transformers' from the CLI: T5, BART, Whisper (tiny configs,
weights drawn wide enough that greedy decoding does not repeat one token)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from onnx_deploy.cli import main

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from onnx_deploy.teach.families import family  # noqa: E402

WIDE = {"t5": {"initializer_factor": 8.0}, "bart": {"init_std": 0.5}, "whisper": {"init_std": 0.5}}


def _save(name: str, folder: Path, beams: int | None = None) -> str:
    fam = family(name)
    model = replace(fam, config=fam.config | WIDE[name]).build()
    if beams is not None:
        model.generation_config.num_beams = beams
    model.save_pretrained(folder)
    return f"hf:{folder}"


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["t5", "whisper"])
def test_an_encoder_decoder_generates_transformers_tokens_from_the_cli(name, tmp_path, capsys):
    spec = _save(name, tmp_path / name)
    folder = tmp_path / f"{name}_onnx"
    code, out, err = run_cli(capsys, "export", spec, "--with-cache", "-o", folder)
    assert code == 0, err
    assert "identical on 3/3 inputs" in out and "PASS" in out, out
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "config.json", "generation_config.json", "encoder_model.onnx", "decoder_model.onnx",
        "decoder_with_past_model.onnx",
    }  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder
    code, out, err = run_cli(
        capsys, "generate", folder, "--reference", spec, "--num-prompts", "6",
        "--max-new-tokens", "10", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["identical"] == 6, report
    produced = {t for want, _ in report["tokens"] for t in want}
    print(f"{name}: {len(produced)} distinct tokens over 6 inputs (at least 4 needed)")
    assert len(produced) >= 4  # the check compared varied sequences, not one repeated token


def test_beams_in_the_generation_config_are_refused_or_greedy_on_request(tmp_path, capsys):
    spec = _save("bart", tmp_path / "bart", beams=4)
    folder = tmp_path / "bart_onnx"
    assert run_cli(capsys, "export", spec, "--with-cache", "-o", folder)[0] == 0
    code, _, err = run_cli(capsys, "generate", folder, "--reference", spec, "--num-prompts", "2")
    assert code != 0 and "asks for 4 beams" in err and "--num-beams 1" in err, err
    code, out, err = run_cli(
        capsys, "generate", folder, "--reference", spec, "--num-prompts", "3",
        "--max-new-tokens", "8", "--num-beams", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "identical on 3/3 inputs" in out and "4 beams not used" in out, out
    code, _, err = run_cli(capsys, "generate", folder, "--reference", spec, "--num-beams", "4")
    assert code != 0 and "--num-beams 1" in err
    # an existing folder is not replaced without --force
    code, _, err = run_cli(capsys, "export", spec, "--with-cache", "-o", folder)
    assert code != 0 and "already exists" in err
    code, out, _ = run_cli(capsys, "generate", folder, "--prompt-ids", "5,17,9",
                           "--max-new-tokens", "4")  # fmt: skip
    assert code == 0 and out.startswith("tokens")
