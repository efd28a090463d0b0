"""Integer CDF tables, the rANS coder and the bitstream container (spec: docs/entropy.md, docs/bitstream.md)."""

from .bitstream import (
    FORMAT_VERSION,
    MAGIC,
    MAX_PIXELS,
    MAX_SIDE,
    BitstreamError,
    StreamHeader,
    pack,
    unpack,
)
from .rans import EntropyDecodeError, decode_symbols, encode_symbols
from .tables import PRECISION, TableSet, gaussian_pmf, quantize_pmf, table_set_from_pmfs

__all__ = [
    "PRECISION",
    "TableSet",
    "quantize_pmf",
    "table_set_from_pmfs",
    "gaussian_pmf",
    "EntropyDecodeError",
    "encode_symbols",
    "decode_symbols",
    "MAGIC",
    "FORMAT_VERSION",
    "MAX_PIXELS",
    "MAX_SIDE",
    "BitstreamError",
    "StreamHeader",
    "pack",
    "unpack",
]
