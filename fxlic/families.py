"""The registry of model families: architecture name → everything the project builds for it.

A *family* is an architecture a model file can name (``meta["architecture"]``, docs/model-file.md). Every
front end looks families up here — the CLI and the codec (``open_codec``), golden sets, the board path, the
QAT side and ``fxlic hw-report`` — so a new family, or a new decoder of one, touches this table and the
modules it names, nothing else.

Each role is a ``"module:attribute"`` reference resolved on first use (``Family.resolve``): the golden path
(codec, integer model, partition, board net) never imports torch, and the torch roles (QAT model and config,
hw-report graph) are only imported by torch-side callers. Resolving by name also keeps the codec modules free
of each other: ``fxlic.codec`` (the mean-scale codec) and ``fxlic.charm_codec`` (which extends it) are both
reached from here, so neither imports a module that imports it back (``tools/import_contract.py`` checks
that the import graph has no cycle).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fxlic.entropy.bitstream import ARCH_CHARM, ARCH_HYPERPRIOR

if TYPE_CHECKING:
    from fxlic.codec import Codec
    from fxlic.reference.modelfile import ModelFile

LEGACY_ARCHITECTURE = "meanscale"
"""What a model file from before ``meta["architecture"]`` existed is: the mean-scale hyperprior."""


@dataclass(frozen=True)
class Family:
    """One architecture and the modules that implement it (``"module:attribute"`` references).

    Golden path (no torch): ``codec`` (image ⇄ bitstream), ``integer_model`` (the integer network a codec
    runs), ``partition`` (its DPU/CPU partition, ``fxlic.board.partition``), ``board_net`` (the integer network
    whose DPU work runs on a board runner). Torch side: ``qat_config`` and ``qat_model`` (training, QAT,
    export), ``hw_graph`` (the traced graph of ``fxlic hw-report``). ``stream_architecture`` is what its
    streams name (docs/bitstream.md BS-11); ``tiles`` whether the codec runs tiled transforms
    (docs/tiling.md); ``lite_decoders`` whether decoder files may replace its g_s (docs/model-file.md)."""

    name: str
    stream_architecture: str
    codec: str
    integer_model: str
    partition: str
    board_net: str
    qat_config: str
    qat_model: str
    hw_graph: str
    tiles: bool
    lite_decoders: bool
    description: str

    def resolve(self, role: str) -> Any:
        """The object a role names, imported on first use."""
        module, _, attribute = getattr(self, role).partition(":")
        return getattr(importlib.import_module(module), attribute)


_HYPERPRIOR_ROLES = {
    "stream_architecture": ARCH_HYPERPRIOR,
    "codec": "fxlic.codec:Codec",
    "integer_model": "fxlic.reference.hyperprior:IntegerHyperprior",
    "partition": "fxlic.board.partition:hyperprior_partition",
    "board_net": "fxlic.board.runner:RunnerBackedHyperprior",
    "qat_config": "fxlic.qat.models:ModelConfig",
    "qat_model": "fxlic.qat.models:MeanScaleHyperprior",
    "hw_graph": "fxlic.qat.hwreport:trace_meanscale",
    "tiles": True,
    "lite_decoders": True,
}

FAMILIES: dict[str, Family] = {
    "meanscale": Family("meanscale", **_HYPERPRIOR_ROLES,
                        description="mean-scale hyperprior (Minnen et al. 2018, no context model; DPU ops only)"),
    "scalehyper": Family("scalehyper", **_HYPERPRIOR_ROLES,
                         description="scale hyperprior (Ballé et al. 2018): the mean-scale model without μ"),
    "charm": Family("charm", stream_architecture=ARCH_CHARM, codec="fxlic.charm_codec:CharmCodec",
                    integer_model="fxlic.reference.charm:IntegerCharm",
                    partition="fxlic.board.partition:charm_partition",
                    board_net="fxlic.board.runner:RunnerBackedCharm",
                    qat_config="fxlic.qat.charm:CharmConfig", qat_model="fxlic.qat.charm:CharmHyperprior",
                    hw_graph="fxlic.qat.hwreport:trace_charm", tiles=False, lite_decoders=False,
                    description="channel-wise autoregression + LRP (Minnen & Singh 2020) on the same transforms"),
}


class UnknownFamilyError(ValueError):
    """An architecture no family implements."""


def family(name: str | None) -> Family:
    """The family of an architecture name (None: a model file from before the field, the mean-scale model)."""
    key = LEGACY_ARCHITECTURE if name is None else name
    if key not in FAMILIES:
        raise UnknownFamilyError(f"unknown model architecture {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[key]


def family_of(model: ModelFile | dict) -> Family:
    """The family of a model file (or of its ``meta`` / a training config with an ``architecture`` key)."""
    meta = model if isinstance(model, dict) else model.meta
    return family(meta.get("architecture"))


def open_codec(model: ModelFile, impl: str = "blas", **options: Any) -> Codec:
    """The golden codec of a model file's family. ``options`` (``entropy_impl``, ``tile``, ``workers``) are for
    families whose codec runs tiled transforms; a family without tiles codes whole images and takes none."""
    fam = family_of(model)
    codec_class = fam.resolve("codec")
    if not fam.tiles:
        return codec_class(model, impl=impl)
    return codec_class(model, impl=impl, **options)


__all__ = ["FAMILIES", "Family", "UnknownFamilyError", "family", "family_of", "open_codec"]
