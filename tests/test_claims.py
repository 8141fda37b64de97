"""Every number a reader sees is backed, and every command written in prose parses."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from onnx_deploy.cli import build_parser
from onnx_deploy.teach.claims import check
from onnx_deploy.teach.claims import claims_in
from onnx_deploy.teach.claims import main
from onnx_deploy.teach.claims import output_text

ROOT = Path(__file__).resolve().parents[1]


def test_every_number_in_the_notebooks_skills_and_readme_is_backed() -> None:
    report = check(ROOT)
    assert report.checked > 100, "the check found the prose"
    assert report.ok, report.summary()


def _notebook(cells: list[tuple[str, str, str]]) -> dict:
    out = []
    for kind, source, output in cells:
        cell = {"cell_type": kind, "metadata": {}, "source": source}
        if kind == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": output}]
        out.append(cell)
    return {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _root(tmp_path: Path, cells: list[tuple[str, str, str]], measurements: str = "") -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "skills").mkdir()
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(json.dumps(_notebook(cells)))
    if measurements:
        (tmp_path / "notebooks" / "MEASUREMENTS.md").write_text(measurements)
    return tmp_path


@pytest.mark.parametrize(
    ("prose", "output", "ok"),
    [
        ("INT8 ran 3.2x faster.", "INT8 speed-up 3.23x", True),  # rounds to what is written
        ("INT8 ran 3.3x faster.", "INT8 speed-up 3.23x", False),
        ("INT8 ran 3.23x faster.", "INT8 speed-up 3.2x", False),  # more precise than the output
        ("INT8 ran 3.2x faster.", "speed-up 3.23x", False),  # the output does not say of what
        ("accuracy 98.2%", "accuracy 0.9822", True),  # a fraction backs a percentage
        ("max abs 5.4e-07", "max abs 5.43e-07", True),
        ("it took 90 s", "took 12.0 s", False),
        ("batch 8 and opset 18", "", True),  # settings, not results
    ],
)
def test_a_claim_is_backed_by_an_output_above(
    tmp_path: Path, prose: str, output: str, ok: bool
) -> None:
    root = _root(tmp_path, [("code", "print(x)", output), ("markdown", prose, "")])
    assert check(root).ok is ok


def test_an_output_below_does_not_back_a_claim(tmp_path: Path) -> None:
    root = _root(tmp_path, [("markdown", "INT8 ran 3.23x faster.", ""), ("code", "", "3.23x")])
    report = check(root)
    assert not report.ok and report.unbacked[0].number.text == "3.23"


def test_a_link_to_a_measurements_section_backs_a_claim(tmp_path: Path) -> None:
    text = "## Speed on x86\n\n- **Command**: `bench`, 2026-12-01\n- resnet18 3.05x\n\n## Other\n\n- **Command**: x, 2026-12-01\n- 9.99x\n"
    good = "resnet18 [measured](MEASUREMENTS.md#speed-on-x86): 3.05x"
    root = _root(tmp_path, [("markdown", good, "")], text)
    assert check(root).ok
    wrong_section = "resnet18 [measured](MEASUREMENTS.md#speed-on-x86): 9.99x"
    (root / "notebooks" / "01_x.ipynb").write_text(
        json.dumps(_notebook([("markdown", wrong_section, "")]))
    )
    assert not check(root).ok
    missing = "resnet18 [measured](MEASUREMENTS.md#no-such-section): 3.05x"
    (root / "notebooks" / "01_x.ipynb").write_text(
        json.dumps(_notebook([("markdown", missing, "")]))
    )
    assert any("no section" in p for p in check(root).problems)


def test_a_measurements_entry_names_its_command(tmp_path: Path) -> None:
    root = _root(tmp_path, [("markdown", "no numbers", "")], "## An entry\n\n- 3.05x\n")
    assert any("names no **Command**" in p for p in check(root).problems)


def test_a_planted_wrong_number_in_the_real_files_fails(tmp_path: Path, capsys) -> None:
    """What the closing note shows: change one backed figure and the check names it."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "notebooks", copy / "notebooks")
    shutil.copytree(ROOT / "skills", copy / "skills")
    for name in ("SKILL.md", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    skill = copy / "skills" / "onnx-quantize" / "SKILL.md"
    text = skill.read_text()
    assert "3.05x" in text
    skill.write_text(text.replace("3.05x", "3.50x", 1))
    assert main([str(copy)]) == 1
    out = capsys.readouterr().out
    assert "skills/onnx-quantize/SKILL.md" in out and "3.50x unbacked" in out


# -- each kind of wrong claim, planted in a copy of a real notebook ----------------------


def _printed(nb: Path) -> str:
    return "\n".join(output_text(c) for c in json.loads(nb.read_text())["cells"])


def planted_claims(nb: Path) -> list[tuple[str, str]]:
    """Wrong claims of each kind, written from the figures notebook 12 prints (they move
    from run to run): (kind, prose). Each must fail the check."""
    out = _printed(nb)
    p50 = re.search(r"^\| FP32 \|(?:[^|]*\|){6} ([\d.]+) / ([\d.]+) \|", out, re.M)
    cocoeval = re.search(r"COCOeval mAP@0.5 ([\d.]+)", out)
    change = re.search(r"change -([\d.]+) points", out)
    assert p50 and cocoeval and change, "notebook 12 prints its table, COCOeval and mAP change"
    return [
        ("a speed-up backed by a latency sharing its digits", f"The served graph ran {p50[2]}x faster."),
        ("a ratio backed by an accuracy figure", f"INT8 ran {float(cocoeval[1]):.3f}x FP32's speed."),
        ("a percentage backed by a bare 1", "Every box matched: 100% of them."),
        ("a comparison whose direction was flipped", f"Without antialiasing the detector gained {change[1]} points."),
        ("a number in words", "The TensorRT form ran three times faster."),
        ("a unit the check once skipped: px", "The round trip was off by 7.5 px at most."),
        ("a unit the check once skipped: M", "A 110M-parameter detector would do better."),
        ("a unit the check once skipped: tok/s", "It decoded 900 tok/s."),
        ("a latency backed only by an output nbval ignores", f"FP32 took {p50[1]} ms per image."),
        ("a unit the check once skipped: points", "FP16 lost 3 points of mAP."),
        ("a unit the check once skipped: GFLOP/s", "The detector ran at 400 GFLOP/s."),
        ("a number backed by an unrelated line", f"Triton's queue held {float(cocoeval[1]):.4f} requests."),
    ]  # fmt: skip


KINDS = 12


@pytest.fixture(scope="module")
def notebook_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("planted")
    (root / "notebooks").mkdir()
    (root / "skills").mkdir()
    shutil.copy(ROOT / "notebooks" / "12_detection.ipynb", root / "notebooks")
    shutil.copy(ROOT / "notebooks" / "MEASUREMENTS.md", root / "notebooks")
    assert check(root).ok, check(root).summary()  # the copy passes as it is
    return root


def _plant(root: Path, prose: str) -> str:
    path = root / "notebooks" / "12_detection.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": prose})
    planted = root.parent / f"{root.name}-planted"
    shutil.rmtree(planted, ignore_errors=True)
    shutil.copytree(root, planted)
    (planted / "notebooks" / "12_detection.ipynb").write_text(json.dumps(nb))
    report = check(planted)
    shutil.rmtree(planted)
    return "" if report.ok else report.summary()


@pytest.mark.parametrize("k", range(KINDS))
def test_each_kind_of_wrong_claim_planted_in_a_notebook_fails(notebook_copy: Path, k: int) -> None:
    kind, prose = planted_claims(notebook_copy / "notebooks" / "12_detection.ipynb")[k]
    assert _plant(notebook_copy, prose), f"{kind}: {prose!r} passed the check"


def test_the_right_claims_beside_them_pass(notebook_copy: Path) -> None:
    """The check is not refusing everything: the true versions of some planted claims pass."""
    out = _printed(notebook_copy / "notebooks" / "12_detection.ipynb")
    p50 = re.search(r"^\| FP32 \|(?:[^|]*\|){6} ([\d.]+) / ", out, re.M)[1]
    change = re.search(r"change -([\d.]+) points", out)[1]
    error = re.search(r"largest box error, px\s+([\d.]+)", out)[1]
    for prose in (
        f"Without antialiasing the detector lost {change} points on some frame sizes.",
        f"FP32 took {p50} ms per image in this run.",  # hedged: the timing is this run's
        f"The round trip was off by {error} px at most.",
    ):
        assert not _plant(notebook_copy, prose), prose


def test_a_plot_backs_nothing(tmp_path: Path) -> None:
    cells = [("markdown", "The figure is 500 px high.", "")]
    nb = _notebook(cells)
    nb["cells"].insert(0, {"cell_type": "code", "metadata": {}, "source": "plt.show()",
        "outputs": [{"output_type": "display_data", "metadata": {}, "data": {
            "image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 900x500 px with 3 Axes>"}}]})  # fmt: skip
    root = _root(tmp_path, [])
    (root / "notebooks" / "01_x.ipynb").write_text(json.dumps(nb))
    assert not check(root).ok


def test_a_reviewed_constant_needs_no_source() -> None:
    from onnx_deploy.teach.claims import CONSTANTS

    assert all(reason for reason in CONSTANTS.values()), "each constant says why"


def test_code_and_links_are_not_prose() -> None:
    text = "Run `bench --iters 50` ([link](MEASUREMENTS.md#a-1-2)) <!-- 7.5x --> and 1.5x"
    assert [c.number.text for c in claims_in(text, "x")] == ["1.5"]


def test_a_metric_name_is_not_a_claim_but_its_value_is() -> None:
    text = "mAP@0.5 of FP32 was 0.97 and recall@10 rose"
    assert [c.number.text for c in claims_in(text, "x")] == ["0.97"]


# -- every command in prose parses --------------------------------------------------


def _prose_commands() -> list[tuple[str, str]]:
    found = []
    docs = [ROOT / "README.md", ROOT / "SKILL.md", *sorted((ROOT / "skills").glob("*/*.md"))]
    texts = [(str(p.relative_to(ROOT)), p.read_text()) for p in docs]
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for i, c in enumerate(cells):
            if c["cell_type"] == "markdown":
                texts.append((f"{nb.name} c{i}", "".join(c["source"])))
        found += printed_commands(nb)
    for where, text in texts:
        for span in re.findall(r"`(onnx-deploy [^`\n]+)`", text):
            if re.search(r"[|<>\[\]]|\.\.\.", span):  # a pattern, not a command
                continue
            found.append((where, span))
    return found


def printed_commands(nb: Path) -> list[tuple[str, str]]:
    """Commands a code cell prints (a notebook's "the same steps from a shell"): each line of
    its output that starts with ``onnx-deploy``, up to a ``#`` comment or ``&&``."""
    found = []
    for i, c in enumerate(json.loads(nb.read_text())["cells"]):
        if c["cell_type"] != "code":
            continue
        for line in output_text(c).splitlines():
            for part in line.split("&&"):
                part = part.split("  #")[0].strip()
                if part.startswith("onnx-deploy "):
                    found.append((f"{nb.name} c{i} (printed)", part))
    return found


def test_commands_printed_by_code_cells_are_parsed(tmp_path: Path) -> None:
    nb = _notebook([("code", "print(...)", "onnx-deploy validate m.onnx --data s.npz  # wrong\n")])
    (tmp_path / "03_x.ipynb").write_text(json.dumps(nb))
    [(_where, command)] = printed_commands(tmp_path / "03_x.ipynb")
    assert "unrecognized arguments: --data" in (parse_error(command) or "")
    assert any("12_detection.ipynb" in w for w, _ in _prose_commands()), "the real ones are read"


def parse_error(command: str) -> str | None:
    """What argparse says about a command written in prose (``None``: it parses, or it
    only names a command and some options, or fills a choice with a placeholder)."""
    args = shlex.split(command)[1:]
    if args and args[-1] in ("--help", "-h"):
        return None
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
        build_parser().parse_args(args)
        return None
    message = err.getvalue().strip().splitlines()[-1]
    if "the following arguments are required" in message:
        # names a command and some of its options, as prose does (`onnx-deploy fuse`): the
        # options it names must still exist
        unknown = [a.split("=")[0] for a in args if a.startswith("-")
                   and a.split("=")[0] not in _options(args)]  # fmt: skip
        return f"unrecognized arguments: {' '.join(unknown)}" if unknown else None
    placeholder = re.search(r"invalid choice: '([A-Z_]+)'", message)
    return None if placeholder else message


def _options(args: list[str]) -> set[str]:
    """The option strings of the (sub)command that ``args`` names."""
    parser = build_parser()
    for word in args:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    return set(parser._option_string_actions)


def test_the_prose_command_check_catches_a_wrong_flag() -> None:
    # notebook 08's checklist once said this; the CLI takes --reference and --inputs
    bad = "onnx-deploy validate model.onnx SPEC --weights W.pt --data samples.npz"
    assert "unrecognized arguments: --data" in (parse_error(bad) or "")
    assert parse_error("onnx-deploy validate model.onnx --reference SPEC --inputs s.npz") is None


@pytest.mark.parametrize(("where", "command"), _prose_commands(), ids=lambda v: v[:60])
def test_every_command_written_in_prose_parses(where: str, command: str) -> None:
    error = parse_error(command)
    assert error is None, f"{where}: `{command}` does not parse: {error}"
