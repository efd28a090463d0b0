"""Image ⇄ bitstream for ChARM model files (Minnen & Singh 2020): the slice-by-slice golden codec.

Encode: as the mean-scale codec up to ẑ and its stream; then for slice i = 0 … S−1 the slice stacks turn the
supports and ŷ_0 … ŷ_{i−1} into (table index, μ_r) and ŷ_i − μ_r is coded into its own rANS stream.
Container streams: [z, y_0, …, y_{S−1}] (docs/charm.md). Decode mirrors it: slice i's tables need the decoded
ŷ_0 … ŷ_{i−1}, so streams are decoded in order; then the LRP residuals, ỹ and g_s.
"""

from __future__ import annotations

import numpy as np

from fxlic.entropy.bitstream import ARCH_CHARM, COLOUR_RGB, StreamHeader, pack, unpack
from fxlic.entropy.conditional import factorized_table_indexes
from fxlic.entropy.rans import EntropyDecodeError, decode_symbols, encode_symbols
from fxlic.reference.charm import IntegerCharm
from fxlic.reference.modelfile import ModelFile

from .codec import (
    HASH_BYTES,
    Codec,
    CodingResult,
    DecodeError,
    _as_int8,
    _stream_architecture,
    output_to_pixels,
    pad_image,
    pixels_to_input,
)


class CharmCodec(Codec):
    """The golden codec of a ChARM model file (architecture ``charm``)."""

    def __init__(self, model: ModelFile, impl: str = "blas") -> None:
        self.model = model
        self.net = IntegerCharm(model, impl=impl)
        self.model_hash = model.content_hash()
        self.architecture = _stream_architecture(model)  # ARCH_CHARM
        # the mean-scale codec's options, fixed here: whole-image transforms, rANS coder chosen at run time
        self.impl, self.entropy_impl, self.tile, self.workers = impl, None, 0, None

    def encode(self, pixels: np.ndarray, keep_trace: bool = False, colour: int = COLOUR_RGB,
               substream_tile: int | None = None) -> CodingResult:
        """uint8 H×W×3 → bitstream with streams [z, y_0, …, y_{S−1}]. ``substream_tile`` is accepted for the
        mean-scale codec's signature and has no effect: substreams (docs/bitstream.md BS-12) are defined for
        hyperprior streams only, and a charm stream's slices are decoded in order anyway."""
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected uint8 H×W×3 pixels, got {pixels.dtype} {pixels.shape}")
        net = self.net
        height, width = pixels.shape[:2]
        trace: dict[str, np.ndarray] = {}
        x = pixels_to_input(pad_image(pixels))
        trace["input"] = x
        y, y_hat = net.analysis_latents(x, trace)
        z = net.hyper_analysis(y, trace)
        z_hat = net.quantize_latent(z, net.fix_z)
        trace["y_hat"], trace["z_hat"] = y_hat, z_hat
        streams = [encode_symbols(z_hat.reshape(-1).astype(np.int32), factorized_table_indexes(z_hat.shape),
                                  self.model.z_tables)]
        scale_support, mean_support = net.hyper_synthesis(z_hat, trace)
        slices = [y_hat[net.slice_bounds(i)] for i in range(net.slices)]
        tables, means = [], []
        for i, y_slice in enumerate(slices):
            table, mean_r = net.slice_coding_params(i, scale_support, mean_support, slices[:i], trace)
            symbols = y_slice.astype(np.int32) - mean_r
            streams.append(encode_symbols(symbols.reshape(-1), table.reshape(-1), self.model.y_tables))
            tables.append(table)
            means.append(mean_r)
        header = StreamHeader(model_name=self.model.name, model_hash=self.model_hash[:HASH_BYTES],
                              quality=self.model.quality, width=width, height=height, colour=colour,
                              architecture=ARCH_CHARM)  # format version 3 (docs/bitstream.md BS-11)
        return CodingResult(pack(header, streams), y_hat, z_hat, np.concatenate(tables), np.concatenate(means),
                            trace if keep_trace else {})

    def decode(self, bitstream: bytes, trace: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Bitstream → uint8 H×W×3, slice by slice; raises BitstreamError/DecodeError with a one-line reason."""
        header, streams = unpack(bitstream)
        self.check_header(header)
        net = self.net
        if len(streams) != 1 + net.slices:
            raise DecodeError(f"expected {1 + net.slices} streams (z and {net.slices} y slices), found {len(streams)}")
        z_shape = net.hyper_latent_shape(header.height, header.width)
        _, h, w = net.latent_shape(header.height, header.width)
        slice_shape = (net.slice_channels, h, w)
        slices: list[np.ndarray] = []
        try:
            z_values = decode_symbols(streams[0], factorized_table_indexes(z_shape), self.model.z_tables)
            z_hat = _as_int8(z_values, z_shape, "ẑ")
            scale_support, mean_support = net.hyper_synthesis(z_hat, trace)
            for i in range(net.slices):
                table, mean_r = net.slice_coding_params(i, scale_support, mean_support, slices, trace)
                symbols = decode_symbols(streams[1 + i], table.reshape(-1), self.model.y_tables)
                slices.append(_as_int8(symbols.reshape(slice_shape).astype(np.int64) + mean_r, slice_shape, "ŷ"))
        except EntropyDecodeError as exc:
            raise DecodeError(f"corrupted entropy-coded data: {exc}") from None
        residuals = [net.residual(i, mean_support, slices[: i + 1], trace) for i in range(net.slices)]
        y_tilde = net.synthesis_input(slices, residuals)
        x_hat = net.synthesis(y_tilde, trace)
        if trace is not None:
            trace["y_hat"], trace["z_hat"], trace["y_tilde"] = np.concatenate(slices), z_hat, y_tilde
        return output_to_pixels(x_hat)[: header.height, : header.width]
