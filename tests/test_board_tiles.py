"""Fixed-shape DPU tiles (board/tiles.py, docs/board.md "Tiles"): a subgraph run window by window on
one fixed input shape, with the DPU's own padding inside each window, stitches to the whole-image
tensors bit for bit; a golden set records its tile; a fault in one window is located to that window
and layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fxlic.board.compare import DIVERGES, compare_image
from fxlic.board.dumps import chw_to_nhwc, default_names, open_dump
from fxlic.board.partition import partition_from_model
from fxlic.board.runner import BoardError, SimulatedDpuRunner
from fxlic.board.session import run_golden_set
from fxlic.board.tiles import TiledRunner, plan_subgraph, subgraph_tiles
from fxlic.cli import main
from fxlic.golden.goldenset import GoldenSet

TILE = 512  # pixels: encoder 512×512, hyper_decoder 8×8 ẑ, decoder 32×32 ŷ
CROP = (3, 5, 505, 700)  # kodim01 crop, 505×700 → padded 512×704: 1×2 windows per subgraph


@pytest.fixture(scope="module")
def traced(codec, kodak_image):
    """Whole-image encode trace of a crop big enough for several encoder windows."""
    return codec.encode(kodak_image(1, CROP), keep_trace=True).trace


def _check_stitched_equals_whole(model, subgraph: str, source: str, x: np.ndarray, tile: tuple[int, int]) -> int:
    whole_runner = SimulatedDpuRunner(model)
    whole_runner.run_subgraph(subgraph, {source: chw_to_nhwc(x)})
    whole = whole_runner.layer_outputs()
    tiled_runner = TiledRunner(SimulatedDpuRunner(model), model, {subgraph: tile})
    tiled_runner.run_subgraph(subgraph, {source: chw_to_nhwc(x)})
    tiled = tiled_runner.layer_outputs()
    assert set(tiled) == set(whole)
    for name in whole:
        np.testing.assert_array_equal(tiled[name], whole[name], err_msg=f"{subgraph} {name} tile {tile}")
    return tiled_runner.plans[subgraph].count


MAX_WINDOWS = 150  # windows per subgraph and example (overlapping: a window is the fixed input shape, halo included)


def _draw_tile(data, model, subgraph: str, h: int, w: int, low: int, high: int, label: str) -> tuple[int, int]:
    """A fixed window (rows, cols) in [low, high]² that cuts the h × w input of ``subgraph`` into at most
    MAX_WINDOWS windows."""
    partition = partition_from_model(model)

    def count(rows: int, cols: int) -> int:
        return plan_subgraph(partition, model, subgraph, (h, w), (rows, cols)).count

    rows = data.draw(st.integers(next(r for r in range(low, high + 1) if count(r, high) <= MAX_WINDOWS), high),
                     f"{label} tile rows")
    cols = data.draw(st.integers(next(c for c in range(low, high + 1) if count(rows, c) <= MAX_WINDOWS), high),
                     f"{label} tile cols")
    return rows, cols


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_decoder_side_tiles_stitch_to_the_whole_image(codec, traced, data) -> None:
    """hyper_decoder and decoder: any window shape the halo allows, any latent size: every tensor equal."""
    y_hat, z_hat = traced["y_hat"], traced["z_hat"]
    h = data.draw(st.integers(2, y_hat.shape[1]), "y rows")
    w = data.draw(st.integers(2, y_hat.shape[2]), "y cols")
    top = data.draw(st.integers(0, y_hat.shape[1] - h))
    left = data.draw(st.integers(0, y_hat.shape[2] - w))
    tile = _draw_tile(data, codec.model, "decoder", h, w, 3, 12, "y")
    sub = np.ascontiguousarray(y_hat[:, top : top + h, left : left + w])
    assert _check_stitched_equals_whole(codec.model, "decoder", "y_hat", sub, tile) <= MAX_WINDOWS
    z_tile = _draw_tile(data, codec.model, "hyper_decoder", *z_hat.shape[1:], 3, 6, "z")
    assert _check_stitched_equals_whole(codec.model, "hyper_decoder", "z_hat", z_hat, z_tile) <= MAX_WINDOWS


def test_encoder_tiles_stitch_to_the_whole_image(codec, traced) -> None:
    count = _check_stitched_equals_whole(codec.model, "encoder", "input", traced["input"], (TILE, TILE))
    assert count == 2


def test_too_small_tile_is_refused(codec, traced) -> None:
    runner = TiledRunner(SimulatedDpuRunner(codec.model), codec.model, {"encoder": (128, 128)})
    with pytest.raises(BoardError, match="too small"):
        runner.run_subgraph("encoder", {"input": chw_to_nhwc(traced["input"])})


def test_subgraph_tiles_are_the_xmodel_shapes(codec) -> None:
    assert subgraph_tiles(codec.model, 512) == {"encoder": (512, 512), "hyper_decoder": (8, 8), "decoder": (32, 32)}
    with pytest.raises(BoardError, match="multiple of 64"):
        subgraph_tiles(codec.model, 100)


@pytest.fixture(scope="module")
def tiled_golden(tmp_path_factory, kodak_image) -> GoldenSet:
    folder = tmp_path_factory.mktemp("tiles")
    source = folder / "k01.png"
    from PIL import Image

    top, left, height, width = CROP
    Image.fromarray(kodak_image(1, CROP)).save(source)
    assert main(["golden", "make", "--images", str(source), "--out", str(folder / "golden"),
                 "--tile", str(TILE)]) == 0
    return GoldenSet(folder / "golden")


def test_tiled_session_is_bit_exact(tiled_golden, tmp_path, capsys) -> None:
    """golden make --tile records the tile; board run --simulate runs it tile by tile; compare: exact."""
    assert json.loads((tiled_golden.folder / "manifest.json").read_text())["tile"] == TILE
    g, out = str(tiled_golden.folder), tmp_path / "run"
    assert main(["board", "run", "--simulate", "--golden", g, "--out", str(out)]) == 0
    assert json.loads((out / "board-run.json").read_text())["tile"] == TILE
    assert "tile 512 px" in capsys.readouterr().out
    assert main(["board", "compare", "--golden", g, "--dump", str(out)]) == 0
    assert "BIT-EXACT" in capsys.readouterr().out


@pytest.mark.parametrize(("layer", "window"), [("g_s.1", 1), ("g_a.2", 0)])
def test_fault_in_one_tile_is_located_to_that_tile_and_layer(codec, tiled_golden, tmp_path, layer, window) -> None:
    partition = partition_from_model(codec.model)
    holder: dict[str, TiledRunner] = {}

    def faulty(quant_layer, x):
        out = quant_layer(x)
        if holder["runner"].window_index == window:
            # corrupt one value at the window's outer edge (the image border): inside its core, not
            # in the overlap another window also computes
            c, h, w = out.shape
            out = out.copy()
            out[0, h // 2, 1 if window == 0 else w - 2] ^= 0x10
        return out

    base = SimulatedDpuRunner(codec.model, layer_fns={layer: faulty})
    runner = holder["runner"] = TiledRunner(base, codec.model, subgraph_tiles(codec.model, TILE))
    run_golden_set(runner, tiled_golden, default_names(partition), tmp_path, log=lambda *_: None)
    image = tiled_golden.names()[0]
    comparison = compare_image(tiled_golden, image, open_dump(tmp_path / image), default_names(partition),
                               partition, codec.model, tiles=subgraph_tiles(codec.model, TILE),
                               geometry=codec.model)
    first = comparison.first_divergence
    assert first is not None and first.tensor == layer and first.status == DIVERGES
    assert first.tile is not None and first.tile.startswith(f"tile {window} of 2"), first.tile


def test_partition_prints_the_tile_shapes(capsys) -> None:
    """board partition --tile: the fixed input shape each xmodel is compiled for, and the window count."""
    assert main(["board", "partition", "--tile", "512", "--size", "505x700", "--json"]) == 0
    tile = json.loads(capsys.readouterr().out)["tile"]
    assert tile["pixels"] == 512
    assert tile["subgraphs"]["decoder"]["input_nhwc"][:3] == [1, 32, 32]
    assert tile["subgraphs"]["encoder"]["input_nhwc"] == [1, 512, 512, 3]
    assert tile["subgraphs"]["encoder"]["windows"] == 2


def test_board_codec_decodes_on_the_runner_without_a_trace(codec, kodak_image) -> None:
    """board_codec's decoder runs h_s and g_s on the runner, traced or not (not the codec's own tiles)."""
    from fxlic.board.runner import board_codec

    calls: list[str] = []

    class Counting(SimulatedDpuRunner):
        def run_subgraph(self, name, inputs):
            calls.append(name)
            return super().run_subgraph(name, inputs)

    stream = codec.encode(kodak_image(4, (0, 0, 40, 56))).bitstream
    pixels = board_codec(codec.model, Counting(codec.model)).decode(stream)
    assert calls == ["hyper_decoder", "decoder"]
    np.testing.assert_array_equal(pixels, codec.decode(stream))
