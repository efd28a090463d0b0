"""Which files a command reads and writes: input expansion and the output plan of a batch.

Rules (``fxlic encode`` / ``fxlic decode``; tested in tests/test_cli_user.py):

- Inputs are files or folders; a folder contributes its files with one of the accepted extensions
  (not recursive), sorted by name. A file named twice is read once.
- ``-o FILE`` names the output of exactly one input file. ``--out-dir DIR`` takes any number of inputs and
  writes ``DIR/<input stem><suffix>``. Nothing else is accepted, so ``-o`` never silently becomes a folder.
- Before anything is written, the plan is checked: two inputs that would write the same output
  (``a/x.png`` and ``b/x.png``, or ``photo.jpg`` and ``photo.webp``) are refused with both names, so no
  output written in a run is ever overwritten by the same run, and an output may not be one of the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fxlic.errors import UsageError


def collect_inputs(paths: list[str | Path], suffixes: tuple[str, ...]) -> list[Path]:
    """Files named, plus the files with an accepted suffix in each folder named; UsageError if none."""
    files: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                raise UsageError(f"{path}: no {'/'.join(suffixes)} files in this folder")
        elif path.exists():
            found = [path]
        else:
            raise UsageError(f"{path}: no such file or folder")
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files


@dataclass(frozen=True)
class Job:
    """One input and the output it writes."""

    source: Path
    target: Path


def plan_outputs(raw_inputs: list[str], inputs: list[Path], output: str | None, out_dir: str | None,
                 suffix: str) -> list[Job]:
    """Pair every input with its output by the rules above; UsageError (nothing written) if ambiguous."""
    if (output is None) == (out_dir is None):
        raise UsageError("give either -o FILE (one input) or --out-dir DIR (any number of inputs)")
    if output is not None:
        target = Path(output)
        if len(inputs) != 1 or Path(raw_inputs[0]).is_dir():
            raise UsageError(f"-o names one output file, but {len(inputs)} inputs were given "
                             f"({', '.join(map(str, inputs[:3]))}{', …' if len(inputs) > 3 else ''}); "
                             "use --out-dir DIR for several")
        if target.is_dir():
            raise UsageError(f"-o {target} is a folder; -o names the output file (or use --out-dir {target})")
        jobs = [Job(inputs[0], target)]
    else:
        folder = Path(out_dir)
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--out-dir {folder} exists and is not a folder")
        jobs = [Job(src, folder / (src.stem + suffix)) for src in inputs]
    by_target: dict[Path, list[Path]] = {}
    for job in jobs:
        by_target.setdefault(job.target.resolve(), []).append(job.source)
    for target, sources in by_target.items():
        if len(sources) > 1:
            names = " and ".join(str(s) for s in sources)
            raise UsageError(f"{names} would all be written to {target}; nothing was written. "
                             "Rename one of them, or process them in separate runs with different --out-dir")
    sources = {job.source.resolve() for job in jobs}
    for job in jobs:
        if job.target.resolve() in sources:
            raise UsageError(f"output {job.target} is also an input; choose another output name")
    return jobs
