"""Board validation sessions, without the command line: which model, which runner, which images, and feeding
a golden set through a runner (``fxlic board`` in ``board/cli.py`` parses arguments and prints; this
module does the work, so other front ends and tests can call it directly). See ``docs/board.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from fxlic.fxp.assumptions import DEFAULT, DpuAssumptions
from fxlic.golden.goldenset import GoldenSet

from .dumps import NameMap, chw_to_nhwc, default_names, write_vart_dump
from .partition import Partition, partition_from_model
from .runner import BoardError, BoardRunner, SimulatedDpuRunner, VartRunner
from .tiles import TiledRunner, subgraph_tiles

_ASSUME_KEYS = {
    "leaky": "leaky_relu_rounding", "leaky_relu_rounding": "leaky_relu_rounding",
    "nsb": "negative_shift_bias", "negative_shift_bias": "negative_shift_bias",
    "acc": "accumulator_bits", "accumulator_bits": "accumulator_bits",
    "eltwise": "eltwise_add", "eltwise_add": "eltwise_add",
}


class BoardUsageError(ValueError):
    pass


# ---- shared helpers --------------------------------------------------------------------------------
def parse_assumptions(items: list[str] | None) -> tuple[DpuAssumptions, dict[str, DpuAssumptions]]:
    """``[LAYER:]KEY=VALUE`` items → (assumptions for every layer, per-layer overrides).

    Keys: ``leaky`` (single|double), ``nsb`` (scale_accumulator|floor_bias), ``acc`` (none|16..63),
    ``eltwise`` (exact|floor_read_2bit), or the ``DpuAssumptions`` field names.
    """
    global_kv: dict[str, object] = {}
    layer_kv: dict[str, dict[str, object]] = {}
    for item in items or []:
        target, _, assignment = item.rpartition(":") if ":" in item else ("", "", item)
        key, sep, value = assignment.partition("=")
        if not sep or key.strip() not in _ASSUME_KEYS:
            raise BoardUsageError(f"--assume {item!r}: want [LAYER:]KEY=VALUE with KEY in leaky, nsb, acc, eltwise")
        field = _ASSUME_KEYS[key.strip()]
        value = value.strip()
        parsed: object = value
        if field == "accumulator_bits":
            parsed = None if value.lower() in ("none", "exact", "") else int(value)
        (layer_kv.setdefault(target, {}) if target else global_kv)[field] = parsed
    try:
        base = dataclasses.replace(DEFAULT, **global_kv)
        per_layer = {layer: dataclasses.replace(base, **kv) for layer, kv in layer_kv.items()}
    except (ValueError, TypeError) as exc:
        raise BoardUsageError(f"--assume: {exc}") from None
    return base, per_layer


def describe_assumptions(base: DpuAssumptions, per_layer: dict[str, DpuAssumptions]) -> dict:
    return {"all": dataclasses.asdict(base), "layers": {k: dataclasses.asdict(v) for k, v in per_layer.items()}}


def load_model(path: str | Path):
    from fxlic import models

    return models.load(path=path)


def model_for(name: str, quality: int, model_file: str | None, expect_hash: str | None = None,
              decoder: str | None = None):
    """The model file named (or given), with a lite decoder if named, checked against the stream hash a golden
    set / stream expects (a lite decoder's streams are its parent model's)."""
    from fxlic import models

    model = models.load(name, quality, model_file, decoder=decoder)
    if expect_hash is not None and model.stream_hash().hex() != expect_hash:
        raise BoardError(f"model {model.name} q{model.quality} ({model.stream_hash().hex()[:12]}) is not the model "
                         f"of the golden set ({expect_hash[:12]}); pass the right --model-file")
    return model


def name_map(path: str | None, partition: Partition, fallback_dir: Path | None = None) -> NameMap:
    if path:
        return NameMap.load(path).merged(partition)
    if fallback_dir is not None and (fallback_dir / "names.json").is_file():
        return NameMap.load(fallback_dir / "names.json").merged(partition)
    return default_names(partition)


def simulation_model(args: argparse.Namespace, name: str, quality: int, expect_hash: str | None,
                     decoder: str | None = None):
    xmodels = args.xmodel or []
    if len(xmodels) > 1:
        raise BoardUsageError("--simulate takes at most one --xmodel (a model file .npz)")
    if xmodels and not xmodels[0].endswith(".npz"):
        raise BoardUsageError(f"--simulate runs the integer reference: --xmodel must be a model file (.npz), "
                          f"got {xmodels[0]}")
    model_file = xmodels[0] if xmodels else args.model_file
    return model_for(name, quality, model_file, expect_hash, decoder)


def make_runner(args: argparse.Namespace, model, names: NameMap, dump_dir: Path | None, tile: int = 0) -> BoardRunner:
    """The runner the arguments ask for; with ``tile`` (pixels) it runs every subgraph as fixed-shape
    windows (``board/tiles.py``: the xmodels' input shapes, ``subgraph_tiles``) and stitches."""
    runner = _make_base_runner(args, model, names, dump_dir)
    from fxlic.families import family

    if tile and not family(runner.partition.architecture).tiles:
        raise BoardError("tiled board runs (--tile) are mean-scale only: the charm codec codes whole images "
                         "(docs/board.md, charm); use --tile 0")
    return TiledRunner(runner, model, subgraph_tiles(model, tile)) if tile else runner


def resolve_tile(args: argparse.Namespace, golden: GoldenSet | None) -> int:
    """--tile if given, else the golden set's recorded tile, else 0 (whole images)."""
    if getattr(args, "tile", None) is not None:
        return int(args.tile)
    return golden.tile if golden is not None else 0


def _make_base_runner(args: argparse.Namespace, model, names: NameMap, dump_dir: Path | None) -> BoardRunner:
    partition = partition_from_model(model)
    if args.simulate:
        base, per_layer = parse_assumptions(args.assume)
        return SimulatedDpuRunner(model, base, per_layer, partition=partition)
    if args.assume:
        raise BoardUsageError("--assume changes the simulator's arithmetic; it needs --simulate")
    if not args.xmodel:
        raise BoardUsageError("--xmodel is required without --simulate")
    runner = VartRunner(args.xmodel, partition, names, dump_dir=dump_dir, check_fix=not args.no_fix_check)
    names.subgraphs.update(runner.xmodel_subgraphs)  # dumps then land where VART writes its own
    return runner


def subgraph_list(partition: Partition, wanted: list[str] | None) -> list[str] | None:
    """The --subgraph names, checked against the partition (mean-scale: encoder, hyper_decoder, decoder;
    charm also slice_1 … slice_S); None when none was given."""
    if not wanted:
        return None
    known = [sg.name for sg in partition.subgraphs]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise BoardUsageError(f"--subgraph {', '.join(unknown)}: the partition of {partition.model_name} has "
                              f"{', '.join(known)}")
    return list(wanted)


def image_list(golden: GoldenSet, wanted: list[str] | None) -> list[str]:
    if not wanted:
        return golden.names()
    for name in wanted:
        golden.image(name)
    return wanted


def run_golden_set(runner: BoardRunner, golden: GoldenSet, names: NameMap, out: Path, images: list[str] | None = None,
                   subgraphs: list[str] | None = None, overwrite: bool = True, log=print) -> None:
    """Feed every golden image's subgraph inputs to the runner and dump every tensor it hands back.

    Writes ``out/<image>/dump/<subgraph>/{input,internal,output}/0.<tensor>.bin`` (the VART dump layout,
    ``board/dumps.py``). With a ``VartRunner`` the runner's working directory is ``out/<image>`` so that
    VART's own dump lands in the same place; ``overwrite=False`` keeps VART's files.
    """
    partition = runner.partition
    for image in images or golden.names():
        folder = out / image
        backend = runner.base if isinstance(runner, TiledRunner) else runner
        if isinstance(backend, VartRunner):
            backend.dump_dir = folder
        log(f"  {image}")
        for sg_name in subgraphs or runner.subgraph_names:
            sg = partition.subgraph(sg_name)
            inputs = {}
            for t in sg.inputs:
                value = golden.dpu_tensor(image, t, partition)
                if value is None:
                    raise BoardError(f"golden set lacks {t} for image {image}")
                inputs[t] = chw_to_nhwc(value)
            runner.run_subgraph(sg_name, inputs)
            tensors = runner.layer_outputs()
            write_vart_dump(folder / "dump", partition, names, sg_name, tensors, overwrite=overwrite)
            internal = sum(t in tensors for t in sg.internal)
            log(f"    {sg_name:14s} {len(sg.inputs)} input(s), {internal}/{len(sg.internal)} internal, "
                f"{len(sg.outputs)} output(s) -> {folder / 'dump'}")


def image_dump_dir(dump: Path, image: str, single: bool) -> Path | None:
    if (dump / image).is_dir():
        return dump / image
    return dump if single else None


def partition_without_model(args: argparse.Namespace, golden: GoldenSet) -> Partition:
    """Without the model's hash matching we still need its geometry: take the shipped/given file as is."""
    from fxlic import models

    return partition_from_model(models.load(golden.model["name"], golden.model["quality"], args.model_file,
                                            decoder=golden.decoder))


def first_size(golden: GoldenSet) -> tuple[int | None, int | None]:
    if not golden.images:
        return None, None
    return int(golden.images[0]["height"]), int(golden.images[0]["width"])
