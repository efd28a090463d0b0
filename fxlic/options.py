"""Command-line options shared by every front end that picks a model (``fxlic encode``, ``fxlic golden make``,
``fxlic board partition``): one wording, and the --quality help lists what is actually installed."""

from __future__ import annotations

import argparse


def shipped_qualities_help() -> str:
    """'shipped: q0, q2, … (default q4)' for --quality help lines; computed from the installed models."""
    from fxlic import models

    try:
        name = models.default_model()
        qualities = sorted(models.available()[name])
        return f"{name} ships {', '.join(map(str, qualities))}; default {models.default_quality(name)}"
    except (KeyError, models.UnknownModelError):
        return "no model is shipped"


def add_model_options(p: argparse.ArgumentParser, what: str = "encode") -> None:
    """--model, --quality, --model-file, the same in every command that picks a model."""
    p.add_argument("--model", help=f"shipped model to {what} with (default: the default model; see `fxlic models`)")
    p.add_argument("--quality", type=int, metavar="Q", help=f"quality index of the model ({shipped_qualities_help()})")
    p.add_argument("--model-file", metavar="FILE.npz", help="use this integer model file instead of a shipped one")


def tile_argument(text: str) -> int:
    """argparse type of --tile: 0 or a positive multiple of 64 (``fxlic.codec.check_tile``)."""
    from fxlic.codec import check_tile

    try:
        return check_tile(int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_tile_option(p: argparse.ArgumentParser) -> None:
    """--tile PIXELS, the same in encode and decode; the result never depends on it (docs/tiling.md)."""
    from fxlic.codec import DEFAULT_TILE

    p.add_argument("--tile", type=tile_argument, default=DEFAULT_TILE, metavar="PIXELS",
                   help=f"process the image in tiles of PIXELS×PIXELS (a multiple of 64; 0 = whole image; "
                   f"default {DEFAULT_TILE}). Streams and pixels are identical for every tile size; memory is "
                   f"bounded by the tile, the latents and the image. Tiles run on all cores.")


def add_substream_option(p: argparse.ArgumentParser) -> None:
    """--substream-tile PIXELS (encode): the y stream's substream tiles, a property of the stream (BS-12)."""
    from fxlic.codec import DEFAULT_SUBSTREAM_TILE

    p.add_argument("--substream-tile", type=tile_argument, default=DEFAULT_SUBSTREAM_TILE, metavar="PIXELS",
                   help=f"code the latents of each PIXELS×PIXELS tile as an independent entropy substream, so "
                   f"decoders can decode them on all cores (a multiple of 64; default {DEFAULT_SUBSTREAM_TILE}; "
                   f"0 = one stream, readable by fxlic before format version 4). Recorded in the stream: decoding "
                   f"needs no option, and the pixels are the same for every value.")
