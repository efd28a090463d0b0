"""The layer contract (tools/import_contract.py) holds for the code and the docs table (issue 15)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _contract():
    spec = importlib.util.spec_from_file_location("import_contract", REPO / "tools" / "import_contract.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_code_and_docs_follow_the_contract() -> None:
    contract = _contract()
    report = contract.check_code()
    assert report.violations == []
    assert report.phantoms == []
    assert contract.docs_table() == contract.table(), "python tools/import_contract.py --write"


def test_no_library_module_imports_the_cli() -> None:
    contract = _contract()
    report = contract.check_code()
    assert not [edge for (source, dest), edge in report.edges.items() if dest == "cli"]


def test_checker_finds_a_planted_violation(tmp_path, monkeypatch) -> None:
    """A golden module importing the CLI (as golden/cli.py did before issue 15) and one importing torch fail."""
    contract = _contract()
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from fxlic.cli import load_codec\n    import torch\n")
    real = contract.modules()
    monkeypatch.setattr(contract, "modules", lambda: {**real, "fxlic.golden.planted": planted})
    violations = contract.check_code().violations
    assert any("fxlic.golden.planted imports fxlic.cli" in v for v in violations)
    assert any("package torch" in v for v in violations)


def test_module_imports_have_no_cycle() -> None:
    """No module imports one that imports it back, lazily or not (codec.py and charm_codec.py did, until the
    registry of model families, fxlic/families.py, became the one place that picks a codec)."""
    assert _contract().check_code().cycles == []


def test_cycle_finder_on_planted_graphs() -> None:
    find = _contract().import_cycles
    assert find({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert find({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}}) == [["a", "b", "c"], ["d", "e"]]


def test_checker_finds_the_old_codec_cycle(tmp_path, monkeypatch) -> None:
    """The cycle as it was: fxlic.codec picking CharmCodec, which extends fxlic.codec's Codec."""
    contract = _contract()
    codec = tmp_path / "codec.py"
    codec.write_text((REPO / "fxlic" / "codec.py").read_text()
                     + "\n\ndef pick():\n    from .charm_codec import CharmCodec\n    return CharmCodec\n")
    real = contract.modules()
    monkeypatch.setattr(contract, "modules", lambda: {**real, "fxlic.codec": codec})
    assert ["fxlic.charm_codec", "fxlic.codec"] in contract.check_code().cycles
