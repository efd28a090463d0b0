"""``fxlic board``: on-board bit-exact validation (run, compare, decode, export-golden, partition).

    fxlic board run --xmodel M [M ...] --golden DIR --out DUMP [--simulate] [--assume leaky=double ...]
    fxlic board compare --golden DIR --dump DUMP [--json]
    fxlic board decode --xmodel M --stream FILE.fxl --out OUT.png [--simulate] [--golden DIR]
    fxlic board export-golden --golden DIR --out VITISDIR
    fxlic board partition [--model-file F] [--size HxW] [--json]

With ``--simulate`` the DPU is the integer reference (``SimulatedDpuRunner``) and ``--xmodel`` may be a
model file (``.npz``) or omitted (the model the golden set / stream names). Exit codes: 0 equal (or
done), 1 mismatch or error, 2 usage. See ``docs/board.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fxlic.fxp.assumptions import DEFAULT, DpuAssumptions

from .dumps import (
    GoldenSet,
    NameMap,
    chw_to_nhwc,
    default_names,
    open_dump,
    write_deploy_check,
    write_golden_dir,
    write_vart_dump,
)
from .partition import Partition, partition_from_model
from .runner import BoardError, BoardRunner, SimulatedDpuRunner, VartRunner, board_codec

EXIT_OK, EXIT_MISMATCH = 0, 1

_ASSUME_KEYS = {
    "leaky": "leaky_relu_rounding", "leaky_relu_rounding": "leaky_relu_rounding",
    "nsb": "negative_shift_bias", "negative_shift_bias": "negative_shift_bias",
    "acc": "accumulator_bits", "accumulator_bits": "accumulator_bits",
    "eltwise": "eltwise_add", "eltwise_add": "eltwise_add",
}


class _UsageError(ValueError):
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
            raise _UsageError(f"--assume {item!r}: want [LAYER:]KEY=VALUE with KEY in leaky, nsb, acc, eltwise")
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
        raise _UsageError(f"--assume: {exc}") from None
    return base, per_layer


def _describe_assumptions(base: DpuAssumptions, per_layer: dict[str, DpuAssumptions]) -> dict:
    return {"all": dataclasses.asdict(base), "layers": {k: dataclasses.asdict(v) for k, v in per_layer.items()}}


def _load_model(path: str | Path):
    from fxlic.reference.modelfile import load_model_file

    return load_model_file(path)


def _model_for(name: str, quality: int, model_file: str | None, expect_hash: str | None = None):
    """The model file named (or given), checked against the hash a golden set / stream expects."""
    from fxlic import models

    model = _load_model(model_file or models.resolve(name, quality))
    if expect_hash is not None and model.content_hash().hex() != expect_hash:
        raise BoardError(f"model {model.name} q{model.quality} ({model.content_hash().hex()[:12]}) is not the model "
                         f"of the golden set ({expect_hash[:12]}); pass the right --model-file")
    return model


def _names(path: str | None, partition: Partition, fallback_dir: Path | None = None) -> NameMap:
    if path:
        return NameMap.load(path).merged(partition)
    if fallback_dir is not None and (fallback_dir / "names.json").is_file():
        return NameMap.load(fallback_dir / "names.json").merged(partition)
    return default_names(partition)


def _simulation_model(args: argparse.Namespace, name: str, quality: int, expect_hash: str | None):
    xmodels = args.xmodel or []
    if len(xmodels) > 1:
        raise _UsageError("--simulate takes at most one --xmodel (a model file .npz)")
    if xmodels and not xmodels[0].endswith(".npz"):
        raise _UsageError(f"--simulate runs the integer reference: --xmodel must be a model file (.npz), "
                          f"got {xmodels[0]}")
    model_file = xmodels[0] if xmodels else args.model_file
    return _model_for(name, quality, model_file, expect_hash)


def _make_runner(args: argparse.Namespace, model, names: NameMap, dump_dir: Path | None) -> BoardRunner:
    partition = partition_from_model(model)
    if args.simulate:
        base, per_layer = parse_assumptions(args.assume)
        return SimulatedDpuRunner(model, base, per_layer, partition=partition)
    if args.assume:
        raise _UsageError("--assume changes the simulator's arithmetic; it needs --simulate")
    if not args.xmodel:
        raise _UsageError("--xmodel is required without --simulate")
    runner = VartRunner(args.xmodel, partition, names, dump_dir=dump_dir, check_fix=not args.no_fix_check)
    names.subgraphs.update(runner.xmodel_subgraphs)  # dumps then land where VART writes its own
    return runner


def _image_list(golden: GoldenSet, wanted: list[str] | None) -> list[str]:
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
        if isinstance(runner, VartRunner):
            runner.dump_dir = folder
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


# ---- run -------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    golden = GoldenSet(args.golden)
    out = Path(args.out)
    model = (_simulation_model(args, golden.model["name"], golden.model["quality"], golden.model["hash"])
             if args.simulate else _model_for(golden.model["name"], golden.model["quality"], args.model_file,
                                              golden.model["hash"]))
    partition = partition_from_model(model)
    names = _names(args.names, partition)
    out.mkdir(parents=True, exist_ok=True)
    runner = _make_runner(args, model, names, out)
    subgraphs = args.subgraph or runner.subgraph_names
    images = _image_list(golden, args.image)
    print(f"board run: {runner.kind} DPU, model {model.name} q{model.quality} ({partition.model_hash[:12]}), "
          f"golden {golden.folder}, {len(images)} image(s) -> {out}")
    start = time.perf_counter()
    run_golden_set(runner, golden, names, out, images, subgraphs, overwrite=args.simulate)
    names.save(out / "names.json")
    record = {"runner": runner.kind, "model": {"name": model.name, "quality": model.quality,
                                                "hash": partition.model_hash},
              "golden": str(golden.folder), "images": images, "subgraphs": subgraphs,
              "xmodels": [str(p) for p in (args.xmodel or [])]}
    if args.simulate:
        record["assumptions"] = _describe_assumptions(*parse_assumptions(args.assume))
    (out / "board-run.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"done in {time.perf_counter() - start:.1f} s; names in {out / 'names.json'}; "
          f"next: fxlic board compare --golden {golden.folder} --dump {out}")
    return EXIT_OK


# ---- compare ---------------------------------------------------------------------------------------
def _image_dump_dir(dump: Path, image: str, single: bool) -> Path | None:
    if (dump / image).is_dir():
        return dump / image
    return dump if single else None


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_image, format_report

    golden = GoldenSet(args.golden)
    dump = Path(args.dump)
    if not dump.is_dir():
        raise FileNotFoundError(f"{dump}: no such dump folder")
    model = None
    model_note = ""
    if not args.no_recompute:
        try:
            model = _model_for(golden.model["name"], golden.model["quality"], args.model_file, golden.model["hash"])
        except (BoardError, ValueError, OSError) as exc:
            model_note = f" (no model to recompute with: {str(exc).splitlines()[0]}; attribution by dataflow)"
    partition = partition_from_model(model) if model is not None else _partition_without_model(args, golden)
    names = _names(args.names, partition, dump)
    images = _image_list(golden, args.image)
    comparisons = []
    for image in images:
        folder = _image_dump_dir(dump, image, len(images) == 1)
        if folder is None:
            raise BoardError(f"{dump}: no dump for image {image} (expected {dump / image})")
        store = open_dump(folder)
        subgraphs = args.subgraph or [sg.name for sg in partition.subgraphs
                                      if any(store.find(names, t) for t in partition.dpu_tensors(sg.name))]
        if not subgraphs:
            raise BoardError(f"{folder}: none of the golden tensors is in this dump ({store.layout}, "
                             f"{len(store.files)} files); are the names right (--names)?")
        reference = None
        if args.reference_dump:
            ref_root = Path(args.reference_dump)
            ref_folder = _image_dump_dir(ref_root, image, len(images) == 1)
            if ref_folder is None:
                raise BoardError(f"{ref_root}: no dump for image {image}")
            reference = (open_dump(ref_folder), _names(None, partition, ref_root))
        comparisons.append(compare_image(golden, image, store, names, partition, model, subgraphs,
                                         args.allow_missing, reference))
    ok = all(c.ok for c in comparisons)
    if args.json:
        print(json.dumps({"golden": str(golden.folder), "dump": str(dump), "ok": ok,
                          "recomputed": model is not None,
                          "images": [c.to_json() for c in comparisons]}, indent=1))
    else:
        against = f"reference dump {args.reference_dump}" if args.reference_dump else f"golden {golden.folder}"
        header = (f"board compare: {against} (model {golden.model['name']} q{golden.model['quality']}, "
                  f"{golden.model['hash'][:12]}) vs dump {dump}{model_note}")
        print(format_report(comparisons, header))
        print(f"{sum(c.ok for c in comparisons)}/{len(comparisons)} image(s) bit-exact")
    return EXIT_OK if ok else EXIT_MISMATCH


def _partition_without_model(args: argparse.Namespace, golden: GoldenSet) -> Partition:
    """Without the model's hash matching we still need its geometry: take the shipped/given file as is."""
    from fxlic import models

    return partition_from_model(_load_model(args.model_file or models.resolve(golden.model["name"],
                                                                                 golden.model["quality"])))


# ---- decode ----------------------------------------------------------------------------------------
def cmd_decode(args: argparse.Namespace) -> int:
    from fxlic.entropy.bitstream import unpack
    from fxlic.imageio import encode_png, read_image, write_atomically

    from .compare import ImageComparison, compare_tensors, format_report, golden_expected

    data = Path(args.stream).read_bytes()
    header, _ = unpack(data)
    if args.simulate:
        model = _simulation_model(args, header.model_name, header.quality, None)
    else:
        model = _model_for(header.model_name, header.quality, args.model_file)
    partition = partition_from_model(model)
    names = _names(args.names, partition)
    with contextlib.ExitStack() as stack:
        dump_dir = Path(args.dump) if args.dump else None
        if dump_dir is None and args.golden and not args.simulate:  # let VART dump internals for the comparison
            dump_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fxlic-board-")))
        runner = _make_runner(args, model, names, dump_dir)
        codec = board_codec(model, runner)
        trace: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        pixels = codec.decode(data, trace=trace)
        elapsed = time.perf_counter() - start
    write_atomically(args.out, encode_png(pixels))
    print(f"board decode: {args.stream} -> {args.out}: {header.width}x{header.height}, h_s and g_s on the "
          f"{runner.kind} DPU, entropy decoding and table selection on the CPU, {elapsed:.2f} s")
    if not args.golden:
        return EXIT_OK
    golden = GoldenSet(args.golden)
    image = golden.find_by_bitstream(data)
    if image is None:
        raise BoardError(f"{args.stream} is not one of the bitstreams of golden set {golden.folder}")
    tensors = [t for sg in ("hyper_decoder", "decoder") for t in partition.dpu_tensors(sg)]
    shapes = partition.shapes(header.height, header.width)
    expected = golden_expected(golden, image, partition, tensors)
    got = {t: (chw_to_nhwc(trace[t]) if t in trace else None) for t in tensors}
    # internal layers are compared when the runner could see them; the decoded image always is
    comparison = ImageComparison(image, header.height, header.width,
                                 compare_tensors(partition, expected, got, shapes, model, tensors), allow_missing=True)
    reference = read_image(golden.decoded_path(image))
    same = reference.shape == pixels.shape and np.array_equal(reference, pixels)
    print(format_report([comparison], f"decoder tensors vs golden set {golden.folder}"))
    if same:
        print(f"decoded image: BIT-EXACT with {golden.decoded_path(image)}")
    else:
        count = int(np.count_nonzero(reference != pixels)) if reference.shape == pixels.shape else -1
        print(f"decoded image: MISMATCH with {golden.decoded_path(image)} "
              f"({count if count >= 0 else 'shape'} differing values)")
    return EXIT_OK if same and comparison.ok else EXIT_MISMATCH


# ---- export-golden ---------------------------------------------------------------------------------
_EXPORT_README = """fxlic golden set in the Vitis AI layouts (docs/board.md). Per image:
  <image>/golden/<tensor>.bin                    XLNX_GOLDEN_DIR layout (raw int8 NHWC, VART-mangled names)
  <image>/deploy_check_data_int/<graph>/...      vai_q_pytorch deploy_check layout (<node>_fix.bin, weights OHWI)
names.json maps fxlic names to xmodel names: edit it to match your xmodel, then re-export with --names.
On the board, per image (inputs are the golden files of the subgraph inputs):
  XLNX_ENABLE_DEBUG_MODE=1 XLNX_ENABLE_DUMP=1 XLNX_GOLDEN_DIR=<image>/golden \\
    xdputil run model.xmodel -i <subgraph index> <image>/golden/<input tensor>.bin 2>log.txt
  grep 'XLNX_GOLDEN_DIR.*fail' log.txt
or, with Python: fxlic board run --xmodel model.xmodel --golden <fxlic golden set> --out dump
"""


def cmd_export_golden(args: argparse.Namespace) -> int:
    golden = GoldenSet(args.golden)
    try:
        model = _model_for(golden.model["name"], golden.model["quality"], args.model_file, golden.model["hash"])
    except (BoardError, ValueError, OSError) as exc:
        raise BoardError(f"export-golden needs the golden set's model file: {exc}") from None
    partition = partition_from_model(model)
    names = _names(args.names, partition)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = {}
    for layer_name, layer in model.layers.items():
        params[f"{layer_name}.weight"] = (layer.weight, layer.transposed)
        params[f"{layer_name}.bias"] = (layer.bias, False)
    print(f"export-golden: {golden.folder} -> {out} (model {model.name} q{model.quality}, {partition.model_hash[:12]})")
    for image in _image_list(golden, args.image):
        tensors = {}
        for t in partition.dpu_tensors():
            value = golden.dpu_tensor(image, t, partition)
            if value is not None:
                tensors[t] = chw_to_nhwc(value)
        write_golden_dir(out / image / "golden", names, tensors)
        graph_dir = write_deploy_check(out / image, names, tensors, params)
        print(f"  {image}: {len(tensors)} tensors -> {out / image / 'golden'} and {graph_dir} "
              f"(+{len(params)} parameter files)")
    names.save(out / "names.json")
    (out / "partition.txt").write_text(partition.describe(*_first_size(golden)) + "\n")
    (out / "README.txt").write_text(_EXPORT_README)
    print(f"  names: {out / 'names.json'}; partition: {out / 'partition.txt'}")
    return EXIT_OK


def _first_size(golden: GoldenSet) -> tuple[int | None, int | None]:
    if not golden.images:
        return None, None
    return int(golden.images[0]["height"]), int(golden.images[0]["width"])


# ---- partition -------------------------------------------------------------------------------------
def cmd_partition(args: argparse.Namespace) -> int:
    from fxlic import models

    model = _load_model(args.model_file or models.resolve(args.model, args.quality))
    partition = partition_from_model(model)
    height = width = None
    if args.size:
        try:
            height, width = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise _UsageError(f"--size wants HxW, got {args.size!r}") from None
    if args.json:
        data = partition.to_json()
        if height:
            data["shapes_nhwc"] = {k: list(v) for k, v in partition.shapes(height, width).items()}
        print(json.dumps(data, indent=1))
    else:
        print(partition.describe(height, width))
    return EXIT_OK


# ---- parser ----------------------------------------------------------------------------------------
def _runner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--xmodel", nargs="+", help="compiled xmodel(s); with --simulate: a model file .npz (optional)")
    p.add_argument("--simulate", action="store_true", help="run the DPU subgraphs with the integer reference")
    p.add_argument("--assume", action="append", metavar="[LAYER:]KEY=VALUE",
                   help="simulator DPU semantics: leaky=single|double, nsb=scale_accumulator|floor_bias, "
                        "acc=none|32, eltwise=exact|floor_read_2bit (repeatable; LAYER: limits it to one layer)")
    p.add_argument("--names", help="name map JSON (our names -> xmodel names); default: fxlic's default names")
    p.add_argument("--model-file", help="the integer model file (default: the shipped model named by the golden "
                                        "set / stream)")
    p.add_argument("--no-fix-check", action="store_true",
                   help="run even if the xmodel's fix_point differ from the model file's (VART only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxlic board", description="On-board bit-exact validation (docs/board.md).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="feed golden inputs to each DPU subgraph, dump every layer output")
    _runner_args(p)
    p.add_argument("--golden", required=True, help="fxlic golden set (fxlic golden make)")
    p.add_argument("--out", required=True, help="output folder: <image>/dump/<subgraph>/{input,internal,output}/")
    p.add_argument("--image", action="append", help="only this golden image (repeatable)")
    p.add_argument("--subgraph", action="append", choices=["encoder", "hyper_decoder", "decoder"],
                   help="only this subgraph (repeatable)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="compare a dump with a golden set, layer by layer")
    p.add_argument("--golden", required=True, help="fxlic golden set")
    p.add_argument("--dump", required=True, help="board run output, a VART dump, an XLNX_GOLDEN_DIR-style folder "
                                                 "or a deploy_check_data_int folder")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--names", help="name map (default: DUMP/names.json, else fxlic's default names)")
    p.add_argument("--model-file", help="model file for recomputing layers (default: the golden set's model)")
    p.add_argument("--image", action="append", help="only this golden image (repeatable)")
    p.add_argument("--subgraph", action="append", choices=["encoder", "hyper_decoder", "decoder"],
                   help="only this subgraph (default: every subgraph found in the dump)")
    p.add_argument("--allow-missing", action="store_true", help="tensors absent from the dump do not fail")
    p.add_argument("--no-recompute", action="store_true", help="attribute by dataflow only (no model recompute)")
    p.add_argument("--reference-dump", help="expected values from this dump instead of the golden set (e.g. "
                                            "board run --simulate --assume ...: confirm the board computes that)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("decode", help="end-to-end decode: entropy decoding on the CPU, h_s and g_s on the DPU")
    _runner_args(p)
    p.add_argument("--stream", required=True, help=".fxl bitstream")
    p.add_argument("--out", required=True, help="decoded PNG")
    p.add_argument("--golden", help="golden set holding this bitstream: compare every decoder tensor and the image")
    p.add_argument("--dump", help="folder for VART's own dump (XLNX_ENABLE_DUMP) during the decode (VART only)")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("export-golden", help="write a golden set in the XLNX_GOLDEN_DIR and deploy_check layouts")
    p.add_argument("--golden", required=True, help="fxlic golden set")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--names", help="name map (default: fxlic's default names)")
    p.add_argument("--model-file", help="model file (default: the golden set's model)")
    p.add_argument("--image", action="append", help="only this golden image (repeatable)")
    p.set_defaults(func=cmd_export_golden)

    p = sub.add_parser("partition", help="print the DPU/CPU partition of a model")
    p.add_argument("--model", help="model name (default: see fxlic models)")
    p.add_argument("--quality", type=int)
    p.add_argument("--model-file")
    p.add_argument("--size", help="image size HxW: also print NHWC shapes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_partition)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fxlic board`` (delegated from ``fxlic.cli``). Board-side problems are raised as
    the CLI's one-line errors."""
    from fxlic.cli import CliError

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except _UsageError as exc:
        print(f"fxlic board: {exc}", file=sys.stderr)
        return 2
    except (BoardError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise CliError(str(message)) from None


if __name__ == "__main__":
    sys.exit(main())
