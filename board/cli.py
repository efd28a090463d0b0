"""``fxlic board``: on-board bit-exact validation (run, compare, decode, export-golden, partition).

    fxlic board run --xmodel M [M ...] --golden DIR --out DUMP [--simulate] [--assume leaky=double ...]
    fxlic board compare --golden DIR --dump DUMP [--json]
    fxlic board decode --xmodel M --stream FILE.fxl --out OUT.png [--simulate] [--golden DIR]
    fxlic board export-golden --golden DIR --out VITISDIR
    fxlic board partition [--model-file F] [--size HxW] [--json]
    fxlic board vitis-script [--model-file F] [--golden DIR] -o vitis_quantize.py
    fxlic board check-quant-info quant_info.json [--model-file F] [--node-map fxlic_nodes.json]

With ``--simulate`` the DPU is the integer reference (``SimulatedDpuRunner``) and ``--xmodel`` may be a
model file (``.npz``) or omitted (the model the golden set / stream names). Exit codes: 0 equal (or
done), 1 mismatch or error, 2 usage. See ``docs/board.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fxlic.golden.goldenset import GoldenSet
from fxlic.options import add_model_options

from .dumps import (
    chw_to_nhwc,
    open_dump,
    write_deploy_check,
    write_golden_dir,
)
from .partition import partition_from_model
from .runner import BoardError, board_codec
from .session import (
    BoardUsageError,
    describe_assumptions,
    first_size,
    image_dump_dir,
    image_list,
    make_runner,
    model_for,
    name_map,
    parse_assumptions,
    partition_without_model,
    resolve_tile,
    run_golden_set,
    simulation_model,
    subgraph_list,
)

EXIT_OK, EXIT_MISMATCH = 0, 1

# ---- run -------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    golden = GoldenSet(args.golden)
    out = Path(args.out)
    name, quality, stream_hash = golden.model["name"], golden.model["quality"], golden.model["hash"]
    model = (simulation_model(args, name, quality, stream_hash, golden.decoder) if args.simulate
             else model_for(name, quality, args.model_file, stream_hash, golden.decoder))
    partition = partition_from_model(model)
    names = name_map(args.names, partition)
    out.mkdir(parents=True, exist_ok=True)
    tile = resolve_tile(args, golden)
    runner = make_runner(args, model, names, out, tile)
    subgraphs = subgraph_list(partition, args.subgraph) or runner.subgraph_names
    images = image_list(golden, args.image)
    tiled = f" (tile {tile} px)" if tile else ""
    print(f"board run: {runner.kind} DPU{tiled}, model {model.name} q{model.quality} ({partition.model_hash[:12]}), "
          f"golden {golden.folder}, {len(images)} image(s) -> {out}")
    start = time.perf_counter()
    run_golden_set(runner, golden, names, out, images, subgraphs, overwrite=args.simulate)
    names.save(out / "names.json")
    record = {"runner": runner.kind, "model": {"name": model.name, "quality": model.quality,
                                                "hash": partition.model_hash},
              "golden": str(golden.folder), "images": images, "subgraphs": subgraphs,
              "xmodels": [str(p) for p in (args.xmodel or [])], "tile": tile}
    if args.simulate:
        record["assumptions"] = describe_assumptions(*parse_assumptions(args.assume))
    (out / "board-run.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"done in {time.perf_counter() - start:.1f} s; names in {out / 'names.json'}; "
          f"next: fxlic board compare --golden {golden.folder} --dump {out}")
    return EXIT_OK


# ---- compare ---------------------------------------------------------------------------------------
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
            model = model_for(golden.model["name"], golden.model["quality"], args.model_file, golden.model["hash"],
                              golden.decoder)
        except (BoardError, ValueError, OSError) as exc:
            model_note = f" (no model to recompute with: {str(exc).splitlines()[0]}; attribution by dataflow)"
    partition = partition_from_model(model) if model is not None else partition_without_model(args, golden)
    names = name_map(args.names, partition, dump)
    images = image_list(golden, args.image)
    tile = resolve_tile(args, golden)
    tiles, geometry = None, None
    if tile:
        from fxlic import models

        from .tiles import subgraph_tiles

        geometry = model or models.load(golden.model["name"], golden.model["quality"], args.model_file,
                                        decoder=golden.decoder)
        tiles = subgraph_tiles(geometry, tile)
    comparisons = []
    for image in images:
        folder = image_dump_dir(dump, image, len(images) == 1)
        if folder is None:
            raise BoardError(f"{dump}: no dump for image {image} (expected {dump / image})")
        store = open_dump(folder)
        subgraphs = subgraph_list(partition, args.subgraph) or [
            sg.name for sg in partition.subgraphs if any(store.find(names, t) for t in partition.dpu_tensors(sg.name))]
        if not subgraphs:
            raise BoardError(f"{folder}: none of the golden tensors is in this dump ({store.layout}, "
                             f"{len(store.files)} files); are the names right (--names)?")
        reference = None
        if args.reference_dump:
            ref_root = Path(args.reference_dump)
            ref_folder = image_dump_dir(ref_root, image, len(images) == 1)
            if ref_folder is None:
                raise BoardError(f"{ref_root}: no dump for image {image}")
            reference = (open_dump(ref_folder), name_map(None, partition, ref_root))
        comparisons.append(compare_image(golden, image, store, names, partition, model, subgraphs,
                                         args.allow_missing, reference, tiles, geometry))
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


# ---- decode ----------------------------------------------------------------------------------------
def cmd_decode(args: argparse.Namespace) -> int:
    from fxlic.entropy.bitstream import unpack
    from fxlic.imageio import encode_png, read_image, write_atomically

    from .compare import ImageComparison, compare_tensors, format_report, golden_expected

    data = Path(args.stream).read_bytes()
    header, _ = unpack(data)
    if args.simulate:
        model = simulation_model(args, header.model_name, header.quality, None, args.decoder)
    else:
        model = model_for(header.model_name, header.quality, args.model_file, decoder=args.decoder)
    partition = partition_from_model(model)
    names = name_map(args.names, partition)
    with contextlib.ExitStack() as stack:
        dump_dir = Path(args.dump) if args.dump else None
        if dump_dir is None and args.golden and not args.simulate:  # let VART dump internals for the comparison
            dump_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fxlic-board-")))
        runner = make_runner(args, model, names, dump_dir, args.tile or 0)
        codec = board_codec(model, runner)
        trace: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        pixels = codec.decode(data, trace=trace)
        elapsed = time.perf_counter() - start
    write_atomically(args.out, encode_png(pixels))
    decoder_side = [sg.name for sg in partition.subgraphs[1:]]
    print(f"board decode: {args.stream} -> {args.out}: {header.width}x{header.height}, {', '.join(decoder_side)} "
          f"on the {runner.kind} DPU ({len(decoder_side)} calls), entropy decoding and table selection on the CPU, "
          f"{elapsed:.2f} s")
    if not args.golden:
        return EXIT_OK
    golden = GoldenSet(args.golden)
    image = golden.find_by_bitstream(data)
    if image is None:
        raise BoardError(f"{args.stream} is not one of the bitstreams of golden set {golden.folder}")
    tensors = [t for name in decoder_side for t in partition.dpu_tensors(name)]
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
        model = model_for(golden.model["name"], golden.model["quality"], args.model_file, golden.model["hash"],
                              golden.decoder)
    except (BoardError, ValueError, OSError) as exc:
        raise BoardError(f"export-golden needs the golden set's model file: {exc}") from None
    partition = partition_from_model(model)
    names = name_map(args.names, partition)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params = {}
    for layer_name, layer in model.layers.items():
        params[f"{layer_name}.weight"] = (layer.weight, layer.transposed)
        params[f"{layer_name}.bias"] = (layer.bias, False)
    print(f"export-golden: {golden.folder} -> {out} (model {model.name} q{model.quality}, {partition.model_hash[:12]})")
    for image in image_list(golden, args.image):
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
    (out / "partition.txt").write_text(partition.describe(*first_size(golden)) + "\n")
    (out / "README.txt").write_text(_EXPORT_README)
    print(f"  names: {out / 'names.json'}; partition: {out / 'partition.txt'}")
    return EXIT_OK


# ---- partition -------------------------------------------------------------------------------------
def cmd_partition(args: argparse.Namespace) -> int:
    from fxlic import models

    model = models.load(args.model, args.quality, args.model_file, decoder=args.decoder)
    partition = partition_from_model(model)
    from fxlic.families import family

    if args.tile and not family(partition.architecture).tiles:
        raise BoardError("--tile: fixed-shape tiles are mean-scale only (charm codes whole images, docs/board.md)")
    height = width = None
    if args.size:
        try:
            height, width = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise BoardUsageError(f"--size wants HxW, got {args.size!r}") from None
    tiles = _tile_table(model, partition, args.tile, height, width) if args.tile else None
    if args.json:
        data = partition.to_json()
        if height:
            data["shapes_nhwc"] = {k: list(v) for k, v in partition.shapes(height, width).items()}
        if tiles:
            data["tile"] = {"pixels": args.tile, "subgraphs": tiles}
        print(json.dumps(data, indent=1))
    else:
        print(partition.describe(height, width))
        if tiles:
            print(f"\nfixed-shape tiles for --tile {args.tile} (compile each xmodel for its input shape, "
                  "docs/board.md 'Tiles'):")
            for name, info in tiles.items():
                windows = f", {info['windows']} windows for {height}x{width}" if "windows" in info else ""
                print(f"  {name:14s} input {info['input']} NHWC {tuple(info['input_nhwc'])}{windows}")
    return EXIT_OK


def _tile_table(model, partition, tile: int, height: int | None, width: int | None) -> dict:
    """Per subgraph: the fixed input shape of a tile (the xmodel's) and, for an image size, the windows."""
    from fxlic.reference.hyperprior import padded_size

    from .tiles import plan_subgraph, subgraph_tiles

    shapes = partition.shapes(*padded_size(height, width)) if height else None
    table = {}
    for name, (h, w) in subgraph_tiles(model, tile).items():
        (source,) = partition.subgraph(name).inputs
        info: dict = {"input": source, "input_nhwc": [1, h, w, partition.tensors[source].channels]}
        if shapes:
            _, ih, iw, _ = shapes[source]
            info["windows"] = plan_subgraph(partition, model, name, (ih, iw), (h, w)).count
        table[name] = info
    return table


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
    p.add_argument("--tile", type=int, metavar="PIXELS",
                   help="run each subgraph as fixed-shape windows for a tile of PIXELS (the xmodels' input "
                        "shapes, docs/board.md 'Tiles'); default: the golden set's tile, else whole images")
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
    p.add_argument("--subgraph", action="append", metavar="NAME",
                   help="only this subgraph (repeatable): encoder, hyper_decoder, decoder; charm also slice_1 … "
                        "slice_S (fxlic board partition lists them)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="compare a dump with a golden set, layer by layer")
    p.add_argument("--golden", required=True, help="fxlic golden set")
    p.add_argument("--dump", required=True, help="board run output, a VART dump, an XLNX_GOLDEN_DIR-style folder "
                                                 "or a deploy_check_data_int folder")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--names", help="name map (default: DUMP/names.json, else fxlic's default names)")
    p.add_argument("--model-file", help="model file for recomputing layers (default: the golden set's model)")
    p.add_argument("--image", action="append", help="only this golden image (repeatable)")
    p.add_argument("--subgraph", action="append", metavar="NAME",
                   help="only this subgraph (repeatable; default: every subgraph found in the dump)")
    p.add_argument("--allow-missing", action="store_true", help="tensors absent from the dump do not fail")
    p.add_argument("--no-recompute", action="store_true", help="attribute by dataflow only (no model recompute)")
    p.add_argument("--tile", type=int, metavar="PIXELS",
                   help="the DPU tile of the run: name the window of each first mismatch (default: the golden "
                        "set's tile)")
    p.add_argument("--reference-dump", help="expected values from this dump instead of the golden set (e.g. "
                                            "board run --simulate --assume ...: confirm the board computes that)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("decode", help="end-to-end decode: entropy decoding on the CPU, the decoder-side subgraphs "
                                      "(h_s, g_s; charm: also the slice stacks) on the DPU")
    _runner_args(p)
    p.add_argument("--stream", required=True, help=".fxl bitstream")
    p.add_argument("--out", required=True, help="decoded PNG")
    p.add_argument("--golden", help="golden set holding this bitstream: compare every decoder tensor and the image")
    p.add_argument("--dump", help="folder for VART's own dump (XLNX_ENABLE_DUMP) during the decode (VART only)")
    p.add_argument("--decoder", metavar="NAME", help="decode with this lite decoder of the stream's model "
                   "(default: the model's own g_s; `fxlic models` lists them)")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("export-golden", help="write a golden set in the XLNX_GOLDEN_DIR and deploy_check layouts")
    p.add_argument("--golden", required=True, help="fxlic golden set")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--names", help="name map (default: fxlic's default names)")
    p.add_argument("--model-file", help="model file (default: the golden set's model)")
    p.add_argument("--image", action="append", help="only this golden image (repeatable)")
    p.set_defaults(func=cmd_export_golden)

    p = sub.add_parser("partition", help="print the DPU/CPU partition of a model")
    add_model_options(p, "partition")
    p.add_argument("--decoder", metavar="NAME", help="partition the model with this lite decoder's g_s")
    p.add_argument("--size", help="image size HxW: also print NHWC shapes")
    p.add_argument("--tile", type=int, metavar="PIXELS",
                   help="print each subgraph's fixed tile input shape (what to compile the xmodel for) and, "
                        "with --size, the number of windows")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_partition)

    from .vitis import add_vitis_commands  # vitis-script, check-quant-info (docs/board.md §2.2)

    add_vitis_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fxlic board`` (delegated from ``fxlic.cli``). Board-side problems are raised as
    the CLI's one-line errors."""
    from fxlic.errors import UsageError

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except BoardUsageError as exc:
        print(f"fxlic board: {exc}", file=sys.stderr)
        return 2
    except (BoardError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise UsageError(str(message)) from None


if __name__ == "__main__":
    sys.exit(main())
