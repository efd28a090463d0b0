"""Tile-exact transforms (docs/tiling.md): "the tiled output equals whole-image processing bit for bit,
for any tile size" -- checked on random layer geometries, on every shipped model, and end to end on
streams and pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fxlic import models
from fxlic.codec import LATENT_TILE_FACTOR, Codec, check_tile
from fxlic.fxp.conv import conv2d_output_size, conv_transpose2d_output_size
from fxlic.fxp.layer import QuantConv
from fxlic.reference.modelfile import load_model_file
from fxlic.reference.tiling import (
    array_source,
    chain_input_span,
    chain_output_shapes,
    chain_window,
    layer_input_span,
    one_blas_thread,
    run_chain_tiled,
    tile_spans,
)


def _shipped_model_paths() -> list:
    """Every shipped hyperprior model file (the tiled codec's models; charm codes whole images, docs/charm.md)."""
    from fxlic.reference.modelfile import load_model_file

    return [path for qualities in models.available().values() for path in qualities.values()
            if load_model_file(path).meta.get("architecture", "meanscale") != "charm"]


_CODECS: dict[str, Codec] = {}


def _codec(path, tile: int, latent_tile_factor: int = LATENT_TILE_FACTOR) -> Codec:
    key = str(path)
    if key not in _CODECS:
        _CODECS[key] = Codec(load_model_file(path), tile=0)
    base = _CODECS[key]
    codec = Codec.__new__(Codec)  # same network, another tile size (no reload of the model file)
    codec.__dict__.update(base.__dict__)
    codec.tile = check_tile(tile)
    codec.latent_tile_factor = latent_tile_factor
    return codec


def _random_layer(rng: np.random.Generator, index: int, c_in: int, transposed: bool, kernel: int, stride: int,
                  padding: int, activation: str, c_out: int | None = None) -> QuantConv:
    c_out = int(rng.integers(1, 4)) if c_out is None else c_out
    shape = (c_in, c_out, kernel, kernel) if transposed else (c_out, c_in, kernel, kernel)
    return QuantConv(name=f"l{index}", transposed=transposed, weight=rng.integers(-128, 128, shape).astype(np.int8),
                     bias=rng.integers(-128, 128, c_out).astype(np.int8), stride=stride, padding=padding,
                     fix_in=6, fix_w=7, fix_b=6, fix_out=6, activation=activation)


# Bounds of the random chains: what one example may cost is bounded by what it produces, not only by its
# input. Every tensor of the chain (input and each layer's output) is at most MAX_SIDE × MAX_SIDE with at most
# 3 channels, and the tiled run evaluates at most MAX_WINDOWS windows (the tile is drawn from the sizes that
# keep the count within it), each no more work than the whole chain. The largest example these bounds allow
# is the @example of the property below (docs/tiling.md).
MAX_SIDE = 64
MAX_WINDOWS = 64
ACTIVATIONS = ["none", "relu", "leaky_relu"]


def _windows(height: int, width: int, tile: int) -> int:
    return -(-height // tile) * -(-width // tile)


@st.composite
def tiled_chains(draw) -> tuple[int, int, list[tuple], int]:
    """(height, width, specs, tile): 1-4 layers (transposed, kernel, stride, padding, activation, channels),
    convs with kernel ≤ 3, transposed convs with kernel ≤ 5, strides 1-3, padding 0-2, the strides and paddings
    narrowed where they would take a side past MAX_SIDE or leave a layer without output; then a tile with at
    most MAX_WINDOWS windows on the chain's output."""
    height, width = draw(st.integers(5, 23), "height"), draw(st.integers(5, 23), "width")
    h, w, specs = height, width, []
    for _ in range(draw(st.integers(1, 4), "layers")):
        side = max(h, w)
        transposed = draw(st.booleans())
        if transposed:  # (side − 1)·s − 2p + k ≤ MAX_SIDE; k ≥ 2p + 1 keeps the output non-empty
            stride = draw(st.integers(1, min(3, (MAX_SIDE - 1) // max(side - 1, 1))))
            padding = draw(st.integers(0, 2))
            kernel = draw(st.integers(2 * padding + 1, min(5, MAX_SIDE - (side - 1) * stride + 2 * padding)))
            h, w = conv_transpose2d_output_size(h, w, kernel, kernel, stride, padding)
        else:  # ⌊(side + 2p − k)/s⌋ + 1 ≤ MAX_SIDE; k ≤ min(h, w) + 2p keeps the output non-empty
            kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            padding = draw(st.integers(0, min(2, (MAX_SIDE - side + kernel - 1) // 2)))
            kernel = min(kernel, min(h, w) + 2 * padding)
            h, w = conv2d_output_size(h, w, kernel, kernel, stride, padding)
        specs.append((transposed, kernel, stride, padding, draw(st.sampled_from(ACTIVATIONS)),
                      draw(st.integers(1, 3), "channels")))
    smallest = next(t for t in range(1, max(h, w) + 1) if _windows(h, w, t) <= MAX_WINDOWS)
    return height, width, specs, draw(st.integers(smallest, smallest + 8), "tile")


# The largest example: four layers at 64 × 64 × 3 channels, every kernel as large as the bounds allow, tile 8
# (8 × 8 = 64 windows).
LARGEST_CHAIN = (21, 21, [(True, 4, 3, 0, "relu", 3), (False, 3, 1, 1, "leaky_relu", 3),
                          (True, 5, 1, 2, "none", 3), (False, 3, 1, 1, "relu", 3)], 8)


@settings(max_examples=40, deadline=None)
@given(chain=tiled_chains(), seed=st.integers(0, 2**31 - 1))
@example(chain=LARGEST_CHAIN, seed=0)
def test_random_chain_tiled_equals_whole(chain, seed) -> None:
    """Any chain of convs / transposed convs (kernel, stride, padding drawn), any tile size: equal."""
    height, width, specs, tile = chain
    rng = np.random.default_rng(seed)
    layers, channels = [], 2
    for index, (transposed, kernel, stride, padding, activation, c_out) in enumerate(specs):
        layers.append(_random_layer(rng, index, channels, transposed, kernel, stride, padding, activation, c_out))
        channels = c_out
    x = rng.integers(-128, 128, (2, height, width)).astype(np.int8)
    shapes = chain_output_shapes(layers, x.shape)
    assert all(max(shape[1:]) <= MAX_SIDE for shape in shapes), shapes
    assert _windows(*shapes[-1][1:], tile) <= MAX_WINDOWS
    whole = x
    for layer in layers:
        whole = layer(whole)
    assert shapes[-1] == whole.shape
    for impl in ("reference", "blas"):
        tiled = run_chain_tiled(layers, array_source(x), x.shape, tile, impl=impl, workers=2)
        np.testing.assert_array_equal(tiled, whole)


def test_tile_threads_run_their_gemms_on_one_blas_thread_and_restore_it() -> None:
    """Tile threads and BLAS threads do not multiply (one_blas_thread); the BLAS's own setting comes back."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    with one_blas_thread():
        inside = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    after = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    assert inside == [1] * len(before)
    assert after == before


def test_window_outside_the_tensor_is_zero() -> None:
    """Positions outside a tensor's true extent are its consumer's zero padding."""
    rng = np.random.default_rng(1)
    layer = _random_layer(rng, 0, 2, False, 3, 1, 1, "relu")
    x = rng.integers(-128, 128, (2, 6, 6)).astype(np.int8)
    shapes = chain_output_shapes([layer], x.shape)
    window = chain_window([layer], array_source(x), shapes, (-2, 8), (-1, 7))
    whole = layer(x)
    np.testing.assert_array_equal(window[:, 2:8, 1:7], whole)
    assert not window[:, :2].any() and not window[:, 8:].any() and not window[:, :, :1].any()


def test_spans_of_the_shipped_geometry() -> None:
    """docs/tiling.md, table of halos: conv k5 s2 p2 needs [2·o0 − 2, 2·o1 + 1); transposed conv k4 s2 p1
    needs [⌊(o0 − 1)/2⌋, ⌊o1/2⌋ + 1); a g_s tile of 256 pixels aligned to 16 reads 16 + 2 latents."""
    rng = np.random.default_rng(2)
    conv = _random_layer(rng, 0, 1, False, 5, 2, 2, "relu")
    tconv = _random_layer(rng, 1, 1, True, 4, 2, 1, "relu")
    for o0, o1 in [(0, 1), (3, 9), (10, 11)]:
        assert layer_input_span(conv, (o0, o1), 0) == (2 * o0 - 2, 2 * o1 + 1)
        assert layer_input_span(tconv, (o0, o1), 0) == ((o0 - 1) // 2, o1 // 2 + 1)
    g_s = [_random_layer(rng, i, 1, True, 4, 2, 1, "relu") for i in range(4)]
    for a in range(4):
        assert chain_input_span(g_s, (256 * a, 256 * (a + 1)), 0) == (16 * a - 1, 16 * (a + 1) + 1)


def test_tile_spans_cover_exactly() -> None:
    assert tile_spans(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert tile_spans(10, 0) == [(0, 10)]
    assert tile_spans(3, 8) == [(0, 3)]


def test_tile_must_be_whole_latents() -> None:
    for bad in (-64, 32, 100):
        with pytest.raises(ValueError, match="multiple of 64"):
            check_tile(bad)
    assert check_tile(0) == 0 and check_tile(128) == 128


@pytest.mark.parametrize("path", _shipped_model_paths(), ids=lambda p: p.stem)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 150), width=st.integers(1, 150), tiles=st.lists(st.sampled_from([64, 128, 192]),
                                                                            min_size=1, max_size=2),
       seed=st.integers(0, 2**31 - 1))
def test_codec_streams_and_pixels_do_not_depend_on_the_tile(path, kodak_regions, height, width, tiles,
                                                            seed) -> None:
    """decode(tile=a) == decode(tile=b) == decode(whole image); same for the encoded streams; and the
    tiled path equals the traced whole-image path (the golden vectors' path). Crops of the bundled Kodak
    regions (at least 150 × 150)."""
    rng = np.random.default_rng(seed)
    large = [region for region in kodak_regions if min(region.shape[:2]) >= 150]
    image = large[int(rng.integers(len(large)))]
    top = int(rng.integers(0, image.shape[0] - height + 1))
    left = int(rng.integers(0, image.shape[1] - width + 1))
    pixels = np.ascontiguousarray(image[top : top + height, left : left + width])
    whole = _codec(path, 0)
    reference = whole.encode(pixels, keep_trace=True)
    trace: dict = {}
    decoded = whole.decode(reference.bitstream, trace=trace)
    for tile in [0, *tiles]:
        # the default latent tiles (one on crops this small) and latent tiles of the pixel tile's own footprint
        # (T/16 latents, h_a T/64: several per crop), so the latent stages' tiling is exercised too
        for factor in (LATENT_TILE_FACTOR, 1):
            codec = _codec(path, tile, factor)
            assert codec.encode(pixels).bitstream == reference.bitstream
            np.testing.assert_array_equal(codec.decode(reference.bitstream), decoded)


def test_cli_tile_option(tmp_path, kodak_image, capsys) -> None:
    """`fxlic encode/decode --tile`: identical streams and PNG pixels for --tile 64, 128 and 0 on an
    odd-sized image; a tile that is not a multiple of 64 is a usage error."""
    from PIL import Image

    from fxlic.cli import main

    source = tmp_path / "odd.png"
    Image.fromarray(kodak_image(3, (5, 7, 131, 197))).save(source)
    streams, pixels = [], []
    for tile in ("64", "128", "0"):
        stream, decoded = tmp_path / f"t{tile}.fxl", tmp_path / f"t{tile}.png"
        assert main(["encode", str(source), "-o", str(stream), "--tile", tile, "-q"]) == 0
        assert main(["decode", str(stream), "-o", str(decoded), "--tile", tile, "-q"]) == 0
        streams.append(stream.read_bytes())
        pixels.append(np.asarray(Image.open(decoded)))
    assert streams[0] == streams[1] == streams[2]
    assert all(np.array_equal(pixels[0], p) for p in pixels[1:]) and pixels[0].shape == (131, 197, 3)
    with pytest.raises(SystemExit):
        main(["encode", str(source), "-o", str(tmp_path / "bad.fxl"), "--tile", "100"])
    assert "multiple of 64" in capsys.readouterr().err


def test_out_of_memory_is_a_clear_error(tmp_path, synthetic_image, capsys, monkeypatch) -> None:
    """A MemoryError (numpy's _ArrayMemoryError) is reported as one line naming the file and what to
    do, exit code 1 -- not as an internal error."""
    from PIL import Image

    from fxlic.cli import main

    source = tmp_path / "small.png"
    Image.fromarray(synthetic_image(40, 40)).save(source)

    def no_memory(self, *args, **kwargs):
        raise np.core._exceptions._ArrayMemoryError((1 << 40,), np.dtype(np.int64))

    monkeypatch.setattr(Codec, "encode", no_memory)
    assert main(["encode", str(source), "-o", str(tmp_path / "s.fxl")]) == 1
    err = capsys.readouterr().err
    assert "small.png: out of memory; a smaller --tile needs less" in err and "internal" not in err
