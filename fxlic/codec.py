"""Image ⇄ bitstream with the integer reference: the golden encoder and decoder.

Encode: pixels → pad (edge replicate to a multiple of 64) → x = p − 128 (int8, fix 8) → g_a → y → ŷ;
h_a(y) → z → ẑ → z stream (per-channel factorized tables); h_s(ẑ) → (log2 σ, μ) → table index and μ_r →
y stream of ŷ − μ_r → container. Decode runs the same integer h_s on the decoded ẑ, so both sides select
the same tables bit for bit; the decoder never evaluates a float (docs/entropy.md, docs/bitstream.md).

Transforms run tile by tile (``tile`` pixels per side, 0 = whole image) with halos derived from the
layer geometry, so streams and pixels never depend on the tile size (``fxlic.reference.tiling``,
docs/tiling.md). Memory is bounded by the tiles, the latents and the image. The y stream is split into one
rANS substream per ``substream_tile`` × ``substream_tile`` pixels (a property of the stream, recorded in its
header, docs/bitstream.md BS-12), coded and decoded on ``workers`` threads; an image of one such tile keeps
the single y stream of format versions 1 and 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fxlic.entropy.bitstream import (
    COLOUR_RGB,
    MODEL_HASH_BYTES,
    BitstreamError,
    StreamHeader,
    pack,
    stream_architecture,
    substream_count,
    unpack,
)
from fxlic.entropy.conditional import factorized_table_indexes
from fxlic.entropy.rans import (
    EntropyDecodeError,
    available_cpus,
    decode_symbols,
    default_impl,
    encode_symbols,
    numba_ready,
    warm_up,
)
from fxlic.entropy.substreams import decode_substreams, encode_substreams, join_substreams, split_substreams
from fxlic.reference.hyperprior import PAD_MULTIPLE, IntegerHyperprior
from fxlic.reference.modelfile import ModelFile, ModelFileError
from fxlic.reference.tiling import Span, array_source, run_chain_tiled

DEFAULT_TILE = 256
"""Default tile side in pixels. Measured (``/usr/bin/time -v fxlic encode``, 2 threads, 2829 × 2121):
peak RSS 0.45 GiB at 256 vs 0.86 GiB at 512 (the int64 accumulators of g_a.0's window dominate a tile),
at no cost in time (55 s vs 60 s wall): the halo (30 + 15 pixels for g_a) is small next to 256."""

LATENT_TILE_FACTOR = 4
"""The transforms at latent resolution (g_a's last conv and its ŷ twin, h_a, h_s and its heads) run on tiles of
``LATENT_TILE_FACTOR`` × the pixel tile's side (docs/tiling.md). At 1/16 of the image's resolution a tile of the
pixel tile's own footprint is 16 × 16 latents (h_a: 4 × 4), so small that each tile's Python work and halo cost
more than its GEMMs: kodim23's h_s took 52 – 75 ms in 6 tiles against 21 – 32 ms whole, on 2 threads. At 4 × 256
pixels a latent tile holds at most 64 × 64 latents: about 40 MB of im2col per worker, next to g_s's 25 MB."""

DEFAULT_SUBSTREAM_TILE = 256
"""Default side in pixels of the tiles whose ŷ symbols form one rANS substream (docs/bitstream.md BS-12): the
default transform tile, so a tile's synthesis and its entropy decoding can pipeline on a board; K = 40
substreams at 1080p, 6 on a Kodak image, one (format version 1 or 2) up to 256 × 256 pixels."""

HASH_BYTES = MODEL_HASH_BYTES
PLAIN_MAX = 1 << 18
"""The first 2^18 symbols a process codes (the ẑ and ŷ of one image up to 2 MP) go through the plain-Python rANS
coder when the codec chooses the coder (``entropy_impl=None``) and Numba's kernels are not loaded: 0.16 s to
decode (0.12 s to encode) a Kodak image's ŷ on one core, against about 0.3 s for Numba's start-up in a fresh
process. Anything more (a larger image, the next images of a batch) uses Numba (80 M symbols/s per core). Same
bytes and values either way (tests/test_rans.py, tests/test_substreams.py)."""
_plain_left = [PLAIN_MAX]  # this process's remaining plain-coder budget (speed only: no result depends on it)


@dataclass
class CodingResult:
    """What one encode produced, with the integer intermediates the golden vectors record."""

    bitstream: bytes
    y_hat: np.ndarray  # int8 M×h×w
    z_hat: np.ndarray  # int8 N×h/4×w/4
    y_table_index: np.ndarray  # int32 M×h×w
    y_mean: np.ndarray  # int32 M×h×w (μ_r)
    trace: dict[str, np.ndarray]


def pad_image(pixels: np.ndarray, multiple: int = PAD_MULTIPLE) -> np.ndarray:
    """uint8 H×W×3 → edge-replicated right/bottom padding to multiples of ``multiple``."""
    height, width = pixels.shape[:2]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    return np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def pixels_to_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 → int8 3×H×W, q = p − 128 (fix 8: value (p − 128)/256, exact)."""
    return (pixels.astype(np.int16) - 128).astype(np.int8).transpose(2, 0, 1).copy()


def output_to_pixels(x_hat: np.ndarray) -> np.ndarray:
    """int8 3×H×W at fix 8 → uint8 H×W×3, p = q + 128 (exact, no clamp needed)."""
    return (x_hat.astype(np.int16) + 128).astype(np.uint8).transpose(1, 2, 0).copy()


def check_tile(tile: int, multiple: int = PAD_MULTIPLE) -> int:
    """A tile side in pixels: 0 (whole image) or a positive multiple of ``multiple`` (64), so that
    tiles of y (÷16) and z (÷64) are whole latents."""
    if not isinstance(tile, int) or tile < 0 or tile % multiple:
        raise ValueError(f"tile must be 0 (whole image) or a positive multiple of {multiple} pixels, got {tile!r}")
    return tile


def padded_pixel_source(pixels: np.ndarray, padded_height: int, padded_width: int):
    """Window source (``fxlic.reference.tiling``) of the network input for uint8 H×W×3 pixels: the
    image edge-replicated right/bottom to the padded size (exactly ``pad_image``), as q = p − 128,
    zero outside the padded image (g_a.0's zero padding). No padded copy of the image is made."""
    height, width = pixels.shape[:2]

    def window(rows: Span, cols: Span) -> np.ndarray:
        out = np.zeros((3, rows[1] - rows[0], cols[1] - cols[0]), dtype=np.int8)
        r0, r1 = max(rows[0], 0), min(rows[1], padded_height)
        c0, c1 = max(cols[0], 0), min(cols[1], padded_width)
        if r0 < r1 and c0 < c1:
            row_index = np.minimum(np.arange(r0, r1), height - 1)  # edge replicate (pad_image)
            col_index = np.minimum(np.arange(c0, c1), width - 1)
            block = pixels[row_index[:, None], col_index[None, :]]
            out[:, r0 - rows[0] : r1 - rows[0], c0 - cols[0] : c1 - cols[0]] = pixels_to_input(block)
        return out

    return window


class DecodeError(ValueError):
    """A bitstream that cannot be decoded with the given model; one-line reason."""


class Codec:
    """The golden codec for one integer model file."""

    def __init__(self, model: ModelFile, impl: str = "blas", entropy_impl: str | None = None,
                 tile: int = DEFAULT_TILE, workers: int | None = None,
                 substream_tile: int = DEFAULT_SUBSTREAM_TILE) -> None:
        """``impl``: conv implementation ("blas" and "reference" are NumPy only, "numba"); ``entropy_impl``:
        rANS coder ("numba", "reference" = plain Python; None = chosen at run time, see
        ``fxlic.entropy.rans.default_impl``); ``tile``: pixels per tile side (0 = whole image);
        ``workers``: threads running tiles and entropy substreams (None: every core). No choice changes a
        byte or a pixel. ``substream_tile``: the encoder's y substream tile in pixels (a multiple of 64;
        0 = one y stream), a property of the streams it writes (BS-12); the decoder follows the header."""
        self.model = model
        self.impl = impl
        self.entropy_impl = entropy_impl
        self.net = IntegerHyperprior(model, impl=impl)
        self.model_hash = model.stream_hash()  # a lite decoder's streams are its parent model's (BS-4)
        self.architecture = _stream_architecture(model)
        self.tile = check_tile(tile)
        self.latent_tile_factor = LATENT_TILE_FACTOR  # any factor gives the same tensors (TILE-1); tests vary it
        self.workers = workers
        self.substream_tile = check_tile(substream_tile)

    # ---- tiled transforms (bit-identical to the whole-image ones, docs/tiling.md) ---------------
    @property
    def latent_tile(self) -> int:
        """The tile of the transforms at latent resolution, in pixels (``latent_tile_factor`` × ``tile``; 0, the
        whole image, stays 0)."""
        return self.latent_tile_factor * self.tile

    def _analysis_tiled(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y, ŷ) as ``IntegerHyperprior.analysis_latents``. g_a up to its last input is tiled; the last conv
        (and the ŷ twin, which reads the same input) run tiled on that tensor (1/8 of the image's size)."""
        ph, pw = self.net.padded_size(*pixels.shape[:2])
        source = padded_pixel_source(pixels, ph, pw)
        last = self.net.g_a[-1]
        hidden = run_chain_tiled(self.net.g_a[:-1], source, (3, ph, pw),
                                 self.tile * last.stride // self.net.latent_stride, self.impl, self.workers)

        def last_conv(layer) -> np.ndarray:  # a QuantConv of g_a (or its ŷ twin)
            return run_chain_tiled([layer], array_source(hidden), hidden.shape,
                                   self.latent_tile // self.net.latent_stride, self.impl, self.workers)

        y = last_conv(last)
        twin = self.net.y_hat_twin
        return y, self.net.quantize_latent(y, self.net.fix_y) if twin is None else last_conv(twin)

    def _hyper_analysis_tiled(self, y: np.ndarray) -> np.ndarray:
        return run_chain_tiled(self.net.h_a, array_source(y), y.shape, self.latent_tile // PAD_MULTIPLE,
                               self.impl, self.workers)

    def _hyper_synthesis_tiled(self, z_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        tile = self.latent_tile // self.net.latent_stride
        heads = [self.net.h_s_scales] + ([self.net.h_s_means] if self.net.h_s_means is not None else [])
        # h_s once (its output, at ŷ's resolution, is as small as ŷ), then each head on it
        hidden = run_chain_tiled(self.net.h_s, array_source(z_hat), z_hat.shape, tile, self.impl, self.workers)
        outputs = [run_chain_tiled([head], array_source(hidden), hidden.shape, tile, self.impl, self.workers)
                   for head in heads]
        return outputs[0], outputs[1] if len(outputs) > 1 else None

    def _y_coding_params(self, scales: np.ndarray, means: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``net.y_coding_params`` a few channels at a time (it is elementwise), so its int64
        temporaries stay small next to the int32 results."""
        table = np.empty(scales.shape, dtype=np.int32)
        mean_r = np.empty(scales.shape, dtype=np.int32)
        step = 8
        for c in range(0, scales.shape[0], step):
            part = slice(c, c + step)
            table[part], mean_r[part] = self.net.y_coding_params(scales[part], None if means is None else means[part])
        return table, mean_r

    def _synthesis_tiled(self, y_hat: np.ndarray, height: int, width: int) -> np.ndarray:
        image = np.empty((height, width, 3), dtype=np.uint8)

        def store(values: np.ndarray, rows: Span, cols: Span) -> None:
            r1, c1 = min(rows[1], height), min(cols[1], width)
            if rows[0] < r1 and cols[0] < c1:  # tiles of the padding only are dropped
                crop = values[:, : r1 - rows[0], : c1 - cols[0]]
                image[rows[0] : r1, cols[0] : c1] = output_to_pixels(crop)

        run_chain_tiled(self.net.g_s, array_source(y_hat), y_hat.shape, self.tile, self.impl, self.workers,
                        store=store)
        return image

    # ---- encode --------------------------------------------------------------------------------
    def encode(self, pixels: np.ndarray, keep_trace: bool = False, colour: int = COLOUR_RGB,
               substream_tile: int | None = None) -> CodingResult:
        """uint8 H×W×3 → bitstream. ``colour`` records the source's colour type in the header (BS-10):
        COLOUR_GRAY for a grayscale source given as R = G = B, so decoders can write gray back.
        ``substream_tile`` (pixels, a multiple of 64; 0 = one y stream; None = the codec's): one y substream per
        tile (BS-12); an image of one tile is written as format version 1 or 2."""
        substream_tile = self.substream_tile if substream_tile is None else check_tile(substream_tile)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected uint8 H×W×3 pixels, got {pixels.dtype} {pixels.shape}")
        height, width = pixels.shape[:2]
        self._start_coder(int(np.prod(self.net.latent_shape(height, width))))
        trace: dict[str, np.ndarray] = {}
        whole = keep_trace or self.tile == 0  # tile 0: the network's own (overridable) whole-image methods
        if whole:  # the trace records whole layer outputs: whole-image transforms
            x = pixels_to_input(pad_image(pixels))
            trace["input"] = x
            y, y_hat = self.net.analysis_latents(x, trace)
        else:
            y, y_hat = self._analysis_tiled(pixels)
        z = self.net.hyper_analysis(y, trace) if whole else self._hyper_analysis_tiled(y)
        del y
        z_hat = self.net.quantize_latent(z, self.net.fix_z)
        trace["y_hat"], trace["z_hat"] = y_hat, z_hat
        z_stream = encode_symbols(z_hat.reshape(-1).astype(np.int32), factorized_table_indexes(z_hat.shape),
                                  self.model.z_tables, impl=self._coder(z_hat.size))
        scales, means = self.net.hyper_synthesis(z_hat, trace) if whole else self._hyper_synthesis_tiled(z_hat)
        table, mean_r = self._y_coding_params(scales, means)
        del scales, means
        symbols = y_hat.astype(np.int32) - mean_r
        offsets: tuple[int, ...] = ()
        if substream_count(width, height, substream_tile) < 2:
            substream_tile = 0  # one tile: the single y stream of versions 1 and 2 (BS-12)
            y_stream = encode_symbols(symbols.reshape(-1), table.reshape(-1), self.model.y_tables,
                                      impl=self._coder(symbols.size))
        else:
            y_stream, offsets = join_substreams(encode_substreams(
                symbols, table, self.model.y_tables, substream_tile // self.net.latent_stride,
                impl=self._coder(symbols.size), workers=self.workers))
        header = StreamHeader(model_name=self.model.name, model_hash=self.model_hash[:HASH_BYTES],
                              quality=self.model.quality, width=width, height=height, colour=colour,
                              architecture=self.architecture, substream_tile=substream_tile, substream_offsets=offsets)
        return CodingResult(pack(header, [z_stream, y_stream]), y_hat, z_hat, table, mean_r,
                            trace if keep_trace else {})

    # ---- decode --------------------------------------------------------------------------------
    def decode(self, bitstream: bytes, trace: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Bitstream → uint8 H×W×3; raises BitstreamError/DecodeError with a one-line reason."""
        header, streams = unpack(bitstream)
        self.check_header(header)
        if len(streams) != 2:
            raise DecodeError(f"expected 2 streams (z, y), found {len(streams)}")
        z_shape = self.net.hyper_latent_shape(header.height, header.width)
        y_shape = self.net.latent_shape(header.height, header.width)
        self._start_coder(int(np.prod(y_shape)))
        try:
            z_values = decode_symbols(streams[0], factorized_table_indexes(z_shape), self.model.z_tables,
                                      impl=self._coder(int(np.prod(z_shape))))
            z_hat = _as_int8(z_values, z_shape, "ẑ")
            if trace is not None or self.tile == 0:  # whole-image transforms (traces record whole layers)
                scales, means = self.net.hyper_synthesis(z_hat, trace)
            else:
                scales, means = self._hyper_synthesis_tiled(z_hat)
            table, mean_r = self._y_coding_params(scales, means)
            if header.substream_tile:  # BS-12: K independent substreams, decoded on `workers` threads
                symbols = decode_substreams(split_substreams(streams[1], header.substream_offsets), table,
                                            self.model.y_tables, header.substream_tile // self.net.latent_stride,
                                            impl=self._coder(table.size), workers=self.workers)
            else:
                symbols = decode_symbols(streams[1], table.reshape(-1), self.model.y_tables,
                                         impl=self._coder(table.size))
        except EntropyDecodeError as exc:
            raise DecodeError(f"corrupted entropy-coded data: {exc}") from None
        y_hat = _as_int8(symbols.reshape(y_shape).astype(np.int64) + mean_r, y_shape, "ŷ")
        del symbols, table, mean_r, scales, means
        if trace is None and self.tile:
            return self._synthesis_tiled(y_hat, header.height, header.width)
        x_hat = self.net.synthesis(y_hat, trace)
        if trace is not None:
            trace["y_hat"], trace["z_hat"] = y_hat, z_hat
        return output_to_pixels(x_hat)[: header.height, : header.width]

    def _start_coder(self, symbols: int) -> None:
        """Before an image of ``symbols`` ŷ symbols: if its streams will need Numba (``_coder``), start loading the
        kernels on another core now (``rans.warm_up``), so that Numba's start-up overlaps the transforms."""
        if (self.entropy_impl in (None, "numba") and (self.entropy_impl == "numba" or symbols > _plain_left[0])
                and available_cpus() > 1):
            warm_up()

    def _coder(self, count: int) -> str | None:
        """The rANS coder for a stream of ``count`` symbols: the codec's, except that when it chooses
        (``entropy_impl=None``) and Numba's kernels are not loaded, the first ``PLAIN_MAX`` symbols of the process
        go through the plain coder, which finishes them before Numba would have started."""
        if (self.entropy_impl is None and count <= _plain_left[0] and default_impl() == "numba"
                and not numba_ready()):
            _plain_left[0] -= count
            return "reference"
        return self.entropy_impl

    def check_header(self, header: StreamHeader) -> None:
        """Refuse a stream this model cannot decode: another architecture (BS-11), then other weights (BS-4)."""
        if header.architecture != self.architecture:
            raise DecodeError(
                f"bitstream is a {header.architecture} stream (format version {header.version}, model "
                f"{header.model_name!r} q{header.quality}), but model {self.model.name!r} q{self.model.quality} is "
                f"{self.model.meta.get('architecture', 'meanscale')}, which codes {self.architecture} streams"
            )
        if header.model_hash != self.model_hash[:HASH_BYTES]:
            raise DecodeError(
                f"bitstream was made with model {header.model_name!r} q{header.quality} "
                f"(weights {header.model_hash.hex()[:12]}), not with {self.model.name!r} q{self.model.quality} "
                f"(weights {self.model_hash.hex()[:12]})"
            )


def _stream_architecture(model: ModelFile) -> str:
    """The stream architecture (docs/bitstream.md BS-11) of a model file's codec; ModelFileError if none."""
    try:
        return stream_architecture(model.meta.get("architecture"))
    except ValueError as exc:
        raise ModelFileError(f"model {model.name!r} q{model.quality}: {exc}") from None


def _as_int8(values: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    if values.size and (values.min() < -128 or values.max() > 127):
        raise DecodeError(f"corrupted entropy-coded data: decoded {what} outside int8")
    return values.reshape(shape).astype(np.int8)


__all__ = ["DEFAULT_SUBSTREAM_TILE", "DEFAULT_TILE", "BitstreamError", "Codec", "CodingResult", "DecodeError",
           "check_tile"]
