"""The side-by-side harnesses of `make bench-optimum` and `make bench-olive`: their tables
pair rounds, and Olive's config carries the card's goal and a bounded search."""

from __future__ import annotations

from pathlib import Path


def _timings() -> list[dict]:
    rounds = {1: {0: 10.0, 1: 11.0, 2: 10.5, 3: 12.0}, 8: {0: 70.0, 1: 72.0, 2: 71.0, 3: 69.0}}
    out = []
    for name, scale in (("ours: the card's choice (INT8)", 1.0), ("theirs", 1.5)):
        for b, r in rounds.items():
            out.append({"name": name, "batch_size": b, "median_ms": scale * sorted(r.values())[1],
                        "rounds_ms": {str(k): scale * v for k, v in r.items()}})  # fmt: skip
    return out


def test_the_choice_is_compared_round_by_round() -> None:
    from onnx_deploy.workflows.compare_olive import table
    from onnx_deploy.workflows.compare_optimum import choice_speedups

    timings = _timings()
    choice = "ours: the card's choice (INT8)"
    assert choice_speedups(timings, choice, choice) == ["-", "-"]
    b1, b8 = choice_speedups(timings, choice, "theirs")
    assert b1.startswith("1.50x (95% interval 1.50-1.50, 4 rounds)") and b8.startswith("1.50x")
    text = table(
        {"timings": timings, "agreement_with_fp32": {choice: 0.96875, "theirs": 1.0}}, choice
    )
    assert "| theirs | 15.8 |" in text and "96.9%" in text and "100.0%" in text


def test_olive_gets_the_cards_goal_and_a_bounded_search(tmp_path: Path) -> None:
    from onnx_deploy.workflows.compare_olive import olive_config

    cfg = olive_config(tmp_path / "bert", tmp_path, tmp_path, samples=7)
    search = cfg["search_strategy"]
    assert search["max_iter"] == 7 and search["max_samples"] == 7  # the search's and its sampler's
    metrics = {m["name"]: m for m in cfg["evaluators"]["goal"]["metrics"]}
    assert "type" not in cfg["evaluators"]["goal"], "an empty evaluator type fails validation"
    acc = metrics["accuracy"]["sub_types"][0]["goal"]
    assert acc == {"type": "max-degradation", "value": 0.005}  # the card's 0.5 points
    assert 0 < metrics["latency"]["sub_types"][0]["goal"]["value"] < 100
    assert set(cfg["passes"]) == {"conversion", "transformers_optimization", "quantization"}
