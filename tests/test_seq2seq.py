"""Encoder-decoders exported for generation (``convert.seq2seq``, optimum's layout) and
their greedy tokens against transformers' from the CLI: T5, BART, Whisper (tiny configs,
weights drawn wide enough that greedy decoding does not repeat one token)."""

from __future__ import annotations

import json
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from onnx_deploy.cli import main

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from onnx_deploy.teach.families import family  # noqa: E402
from onnx_deploy.teach.families import save_feature_extractor  # noqa: E402

WIDE = {"t5": {"initializer_factor": 8.0}, "bart": {"init_std": 0.5}, "whisper": {"init_std": 0.5}}


def _save(name: str, folder: Path, beams: int | None = None) -> str:
    fam = family(name)
    model = replace(fam, config=fam.config | WIDE[name]).build()
    if beams is not None:
        model.generation_config.num_beams = beams
    model.save_pretrained(folder)
    save_feature_extractor(model, folder)  # Whisper's preprocessor_config.json
    return f"hf:{folder}"


def _wav(path: Path, seconds: float, rate: int = 16_000, channels: int = 1) -> Path:
    """A PCM clip: a chirp with a little noise, int16."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.05 * rng.standard_normal(t.size)
    frames = np.repeat(mono[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((frames * 32767).astype("<i2").tobytes())
    return path


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
    } | ({"preprocessor_config.json"} if name == "whisper" else set())  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder
    code, out, err = run_cli(
        capsys, "generate", folder, "--reference", spec, "--num-prompts", "6",
        "--max-new-tokens", "10", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["identical"] == 6, report
    produced = {t for want, _ in report["tokens"] for t in want}
    shown = [f"{name}: {len(produced)} distinct tokens over 6 inputs (at least 4 needed)"]
    assert len(produced) >= 4  # the check compared varied sequences, not one repeated token
    if name == "t5":  # a quantized folder, judged by its tokens
        half = tmp_path / "t5_fp16"
        code, out, err = run_cli(capsys, "quantize", folder, "--method", "fp16", "-o", half)
        assert code == 0, err
        assert "identical on" in out and "inputs" in out, out  # judged against its parent
        shown.append(out.splitlines()[-1])
        code, out, err = run_cli(
            capsys, "generate", half, "--reference", spec, "--num-prompts", "6",
            "--max-new-tokens", "10", "--min-identical", "0.5", "--json",
        )  # fmt: skip
        assert code == 0, err
        identical = json.loads(out)["identical"]
        shown.append(f"t5 FP16 vs transformers: identical on {identical}/6 (3 needed)")
    print("\n".join(shown))


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
    # sampling: the same seed gives the same tokens; seeds differ somewhere
    sampled = []
    for seed in (1, 1, 2, 3, 4):
        code, out, _ = run_cli(capsys, "generate", folder, "--prompt-ids", "5,17,9", "--sample",
                               "--seed", seed, "--max-new-tokens", "8")  # fmt: skip
        assert code == 0
        sampled.append(out.strip())
    assert sampled[0] == sampled[1] and len(set(sampled)) >= 2, sampled
    # speed: the folder and transformers, each in its own block
    code, out, err = run_cli(capsys, "generate", folder, "--bench", "--reference", spec,
                             "--num-prompts", "2", "--max-new-tokens", "4")  # fmt: skip
    assert code == 0, err
    assert "ONNX Runtime (bart_onnx)" in out and "transformers generate" in out, out


def test_speech_from_a_wav_file_to_transformers_tokens_and_bad_audio_refused(tmp_path, capsys):
    """Whisper end to end: a .wav through the folder's feature extractor (numpy) and the
    three graphs, against transformers' feature extractor and model; clips at another rate,
    longer than the window or empty are refused, stereo is averaged and said."""
    spec = _save("whisper", tmp_path / "whisper")
    folder = tmp_path / "whisper_onnx"
    assert run_cli(capsys, "export", spec, "--with-cache", "-o", folder)[0] == 0
    clip = _wav(tmp_path / "clip.wav", 0.6)
    code, out, err = run_cli(
        capsys, "generate", folder, "--audio", clip, "--reference", spec, "--max-new-tokens",
        "12", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    print(f"features max abs vs transformers {report['features_max_abs']:.2e} (at most 1e-4)")
    assert report["features_max_abs"] <= 1e-4 and report["ok"]
    assert report["tokens"] == report["reference_tokens"] and len(report["tokens"]) >= 1
    code, out, _ = run_cli(
        capsys, "generate", folder, "--audio", _wav(tmp_path / "st.wav", 0.5, channels=2)
    )
    assert code == 0 and "2 channels averaged to one" in out
    for path, words in [
        (_wav(tmp_path / "8k.wav", 0.5, rate=8000), "8000 Hz; the model takes 16000 Hz"),
        (_wav(tmp_path / "long.wav", 1.5), "1.50 s; the model reads 1 s at a time"),
        (_wav(tmp_path / "empty.wav", 0.0), "empty"),
    ]:
        code, _, err = run_cli(capsys, "generate", folder, "--audio", path)
        assert code != 0 and words in err, err
