"""Image ⇄ bitstream with the integer reference: the golden encoder and decoder.

Encode: pixels → pad (edge replicate to a multiple of 64) → x = p − 128 (int8, fix 8) → g_a → y → ŷ;
h_a(y) → z → ẑ → z stream (per-channel factorized tables); h_s(ẑ) → (log2 σ, μ) → table index and μ_r →
y stream of ŷ − μ_r → container. Decode runs the same integer h_s on the decoded ẑ, so both sides select
the same tables bit for bit; the decoder never evaluates a float (docs/entropy.md, docs/bitstream.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fxlic.entropy.bitstream import COLOUR_RGB, MODEL_HASH_BYTES, BitstreamError, StreamHeader, pack, unpack
from fxlic.entropy.conditional import factorized_table_indexes
from fxlic.entropy.rans import EntropyDecodeError, decode_symbols, encode_symbols
from fxlic.reference.hyperprior import PAD_MULTIPLE, IntegerHyperprior
from fxlic.reference.modelfile import ModelFile

HASH_BYTES = MODEL_HASH_BYTES


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


class DecodeError(ValueError):
    """A bitstream that cannot be decoded with the given model; one-line reason."""


class Codec:
    """The golden codec for one integer model file."""

    def __init__(self, model: ModelFile, impl: str = "blas", entropy_impl: str | None = None) -> None:
        """``impl``: conv implementation ("blas" and "reference" are NumPy only, "numba"); ``entropy_impl``:
        rANS coder ("numba", "reference" = plain Python; None = chosen at run time, see
        ``fxlic.entropy.rans.default_impl``). All combinations give identical bytes and pixels."""
        self.model = model
        self.entropy_impl = entropy_impl
        self.net = IntegerHyperprior(model, impl=impl)
        self.model_hash = model.content_hash()

    # ---- encode --------------------------------------------------------------------------------
    def encode(self, pixels: np.ndarray, keep_trace: bool = False, colour: int = COLOUR_RGB) -> CodingResult:
        """uint8 H×W×3 → bitstream. ``colour`` records the source's colour type in the header (BS-10):
        COLOUR_GRAY for a grayscale source given as R = G = B, so decoders can write gray back."""
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected uint8 H×W×3 pixels, got {pixels.dtype} {pixels.shape}")
        height, width = pixels.shape[:2]
        trace: dict[str, np.ndarray] = {}
        x = pixels_to_input(pad_image(pixels))
        trace["input"] = x
        y = self.net.analysis(x, trace)
        y_hat = self.net.quantize_latent(y, self.net.fix_y)
        z = self.net.hyper_analysis(y, trace)
        z_hat = self.net.quantize_latent(z, self.net.fix_z)
        trace["y_hat"], trace["z_hat"] = y_hat, z_hat
        z_stream = encode_symbols(z_hat.reshape(-1).astype(np.int32), factorized_table_indexes(z_hat.shape),
                                  self.model.z_tables, impl=self.entropy_impl)
        scales, means = self.net.hyper_synthesis(z_hat, trace)
        table, mean_r = self.net.y_coding_params(scales, means)
        symbols = y_hat.astype(np.int32) - mean_r
        y_stream = encode_symbols(symbols.reshape(-1), table.reshape(-1), self.model.y_tables, impl=self.entropy_impl)
        header = StreamHeader(model_name=self.model.name, model_hash=self.model_hash[:HASH_BYTES],
                              quality=self.model.quality, width=width, height=height, colour=colour)
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
        try:
            z_values = decode_symbols(streams[0], factorized_table_indexes(z_shape), self.model.z_tables,
                                      impl=self.entropy_impl)
            z_hat = _as_int8(z_values, z_shape, "ẑ")
            scales, means = self.net.hyper_synthesis(z_hat, trace)
            table, mean_r = self.net.y_coding_params(scales, means)
            symbols = decode_symbols(streams[1], table.reshape(-1), self.model.y_tables, impl=self.entropy_impl)
        except EntropyDecodeError as exc:
            raise DecodeError(f"corrupted entropy-coded data: {exc}") from None
        y_hat = _as_int8(symbols.reshape(y_shape).astype(np.int64) + mean_r, y_shape, "ŷ")
        x_hat = self.net.synthesis(y_hat, trace)
        if trace is not None:
            trace["y_hat"], trace["z_hat"] = y_hat, z_hat
        return output_to_pixels(x_hat)[: header.height, : header.width]

    def check_header(self, header: StreamHeader) -> None:
        if header.model_hash != self.model_hash[:HASH_BYTES]:
            raise DecodeError(
                f"bitstream was made with model {header.model_name!r} q{header.quality} "
                f"(weights {header.model_hash.hex()[:12]}), not with {self.model.name!r} q{self.model.quality} "
                f"(weights {self.model_hash.hex()[:12]})"
            )


def open_codec(model: ModelFile, impl: str = "blas") -> Codec:
    """The golden codec for a model file's architecture: ``charm`` (slice by slice, ``fxlic.charm_codec``)
    or the mean-scale / scale hyperprior (this module)."""
    if model.meta.get("architecture") == "charm":
        from .charm_codec import CharmCodec

        return CharmCodec(model, impl=impl)
    return Codec(model, impl=impl)


def _as_int8(values: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    if values.size and (values.min() < -128 or values.max() > 127):
        raise DecodeError(f"corrupted entropy-coded data: decoded {what} outside int8")
    return values.reshape(shape).astype(np.int8)


__all__ = ["BitstreamError", "Codec", "CodingResult", "DecodeError", "open_codec"]
