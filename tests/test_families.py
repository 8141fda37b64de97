"""Every model family a user brings: ``export hf:DIR`` with no other flag exports and
validates it with named outputs (``onnx_deploy.teach.families``: tiny configs, random
weights, nothing downloaded). ``make test`` runs ``SUBSET`` (one per task);
``make test-families`` (``ONNX_DEPLOY_FAMILIES=all``) runs every family."""

from __future__ import annotations

import os
import re
import time

import pytest

from onnx_deploy.cli import main

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from onnx_deploy.teach.families import FAMILIES  # noqa: E402
from onnx_deploy.teach.families import SUBSET  # noqa: E402
from onnx_deploy.teach.families import family  # noqa: E402
from onnx_deploy.teach.families import save_family  # noqa: E402

ALL = os.environ.get("ONNX_DEPLOY_FAMILIES", "") == "all"
NAMES = [f.name for f in FAMILIES] if ALL else list(SUBSET)
# what the issue asks of each family: exported and validated in at most this long
BUDGET_S = 30.0
# the names the dynamo exporter gives an output it cannot name (the node that made it)
EXPORTER_NAME = re.compile(r"^(linear|layer_norm|add|matmul|view|getitem|cat|mul)(_\d+)?$")


@pytest.mark.parametrize("name", NAMES)
def test_a_family_exports_and_validates_with_no_flags(name, tmp_path, capsys):
    import onnx

    fam = family(name)
    spec = save_family(name, tmp_path / name)
    output = tmp_path / f"{name}.onnx"
    start = time.perf_counter()
    code = main(["export", spec, "-o", str(output)])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    if fam.reason:
        assert code != 0 and not output.exists(), f"{name} passed; drop its reason"
        return
    assert code == 0, f"{name}: {err[-600:]}"
    assert "PASS" in out, out[-600:]
    names = [o.name for o in onnx.load(str(output), load_external_data=False).graph.output]
    unnamed = [n for n in names if EXPORTER_NAME.match(n)]
    assert not unnamed, f"{name}: outputs named after nodes: {unnamed}"
    print(f"{name}: exported and validated in {seconds:.1f} s (budget {BUDGET_S:.0f} s)")
    assert seconds <= BUDGET_S, f"{name}: {seconds:.1f} s > {BUDGET_S} s"


def test_the_subset_covers_every_task():
    tasks = {f.task for f in FAMILIES}
    assert {family(n).task for n in SUBSET} == tasks - {"causal-lm"}  # decoders: test_hf.py
    assert len(FAMILIES) >= 35 and len(set(f.name for f in FAMILIES)) == len(FAMILIES)


def test_the_skill_lists_every_family():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "skills/onnx-transformers/reference.md").read_text()
    rows = re.findall(r"^\| `([\w-]+)` \| [\w-]+ \| `\w+` \|", text, flags=re.M)
    assert sorted(rows) == sorted(f.name for f in FAMILIES)
