"""tools/rd_curve.py: cutting a ladder's curve and replacing one measured point."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("rd_curve", REPO / "tools" / "rd_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replacing_a_point_keeps_the_others_and_checks_the_quality() -> None:
    tool = _tool()
    ladder = json.loads((REPO / "results" / "kodak" / "meanscale.json").read_text())
    qualities = ladder["meta"]["qualities"]
    k = qualities.index(4)
    point = {"name": "one", "meta": {"qualities": [4]},
             "results": {key: [float(i + 1)] for i, key in enumerate(ladder["results"])}}
    out = tool.replace_point(ladder, k, point)
    for i, key in enumerate(ladder["results"]):
        expected = ladder["results"][key][:k] + [float(i + 1)] + ladder["results"][key][k + 1:]
        assert out["results"][key] == expected
    assert out["meta"] == ladder["meta"] and out["name"] == ladder["name"]
    with pytest.raises(ValueError, match="quality"):
        tool.replace_point(ladder, k + 1, point)
    with pytest.raises(ValueError, match="points"):
        tool.replace_point(ladder, len(qualities), point)


def test_replacing_a_point_of_a_float_curve_replaces_its_per_point_meta(tmp_path: Path) -> None:
    tool = _tool()
    curve = {"name": "f", "meta": {"bpp_ideal": [0.1, 0.2, 0.3], "rate": "ideal"},
             "results": {"bpp": [0.1, 0.2, 0.3], "psnr-rgb": [25.0, 28.0, 30.0]}}
    point = {"name": "p", "meta": {"bpp_ideal": [0.25], "rate": "ideal"},
             "results": {"bpp": [0.25], "psnr-rgb": [28.5]}}
    (tmp_path / "c.json").write_text(json.dumps(curve))
    (tmp_path / "p.json").write_text(json.dumps(point))
    tool.main([str(tmp_path / "c.json"), str(tmp_path / "o.json"), "--replace-point", "1", str(tmp_path / "p.json")])
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["results"] == {"bpp": [0.1, 0.25, 0.3], "psnr-rgb": [25.0, 28.5, 30.0]}
    assert out["meta"] == {"bpp_ideal": [0.1, 0.25, 0.3], "rate": "ideal"}
