"""Rate-distortion curves in CompressAI's JSON results layout.

The layout (as written by ``compressai.utils.eval_model`` and used by CompressAI's
``results/image/kodak`` folder)::

    {
      "name": "VTM",
      "description": "...",
      "results": {
        "bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
        "encoding_time": [...], "decoding_time": [...]
      }
    }

Variants handled by :func:`load_curve`:

- ``psnr`` / ``ms-ssim`` (older CompressAI key names) as aliases of ``psnr-rgb`` / ``ms-ssim-rgb``;
- ``ms-ssim-db-rgb`` (MS-SSIM already in dB, ``-10 log10(1 - MS-SSIM)``, used by curves transcribed
  from papers), converted back to linear MS-SSIM;
- missing ``psnr-rgb`` (MS-SSIM-only paper curves), missing MS-SSIM and missing times -> ``None``;
- extra top-level keys (``meta``, ``settings``, ``per_image``, ...) and extra ``results`` keys are kept
  in :attr:`RDCurve.extra` / :attr:`RDCurve.extra_results` and written back by :func:`save_curve`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RDCurve", "load_curve", "save_curve", "load_curves", "msssim_to_db", "db_to_msssim"]

_PSNR_KEYS = ("psnr-rgb", "psnr")
_MSSSIM_KEYS = ("ms-ssim-rgb", "ms-ssim")
_MSSSIM_DB_KEYS = ("ms-ssim-db-rgb", "ms-ssim-db")
_KNOWN_RESULT_KEYS = {"bpp", "encoding_time", "decoding_time", *_PSNR_KEYS, *_MSSSIM_KEYS, *_MSSSIM_DB_KEYS}


def msssim_to_db(value: float) -> float:
    """MS-SSIM in dB: ``-10 log10(1 - value)`` (``inf`` for a perfect 1.0)."""
    value = float(value)
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


def db_to_msssim(value_db: float) -> float:
    """Inverse of :func:`msssim_to_db`: ``1 - 10^(-dB / 10)``."""
    return 1.0 - 10.0 ** (-float(value_db) / 10.0)


def _floats(values: Any, key: str, n: int | None = None) -> list[float]:
    """Convert a JSON number list (or a single number, broadcast to ``n`` points) to floats."""
    if isinstance(values, (int, float)) and n is not None:
        return [float(values)] * n
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise ValueError(f"results[{key!r}] must be a list of numbers, got {type(values).__name__}")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"results[{key!r}] holds a non-numeric value: {exc}") from None


@dataclass
class RDCurve:
    """One codec's rate-distortion points (one point per quality setting, averaged over a data set).

    Attributes:
        name: display name (legend / table label).
        bpp: bits per pixel of each point.
        psnr: PSNR (dB, RGB, peak 255) of each point; ``None`` for MS-SSIM-only curves from papers.
        ms_ssim: linear MS-SSIM (RGB, data range 255) of each point, or ``None``.
        encoding_time: seconds per image of each point, or ``None``.
        decoding_time: seconds per image of each point, or ``None``.
        description: free text (versions, settings, source).
        extra: other top-level JSON keys (``meta``, ``settings``, ``per_image``...), kept on save.
        extra_results: other keys of ``results``, kept on save.
    """

    name: str
    bpp: list[float]
    psnr: list[float] | None
    ms_ssim: list[float] | None = None
    encoding_time: list[float] | None = None
    decoding_time: list[float] | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    extra_results: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.bpp)
        self.bpp = [float(v) for v in self.bpp]
        for attr in ("psnr", "ms_ssim", "encoding_time", "decoding_time"):
            values = getattr(self, attr)
            if values is None:
                continue
            values = [float(v) for v in values]
            if len(values) != n:
                raise ValueError(f"curve {self.name!r}: {attr} has {len(values)} points, bpp has {n}")
            setattr(self, attr, values)

    def __len__(self) -> int:
        return len(self.bpp)

    @property
    def ms_ssim_db(self) -> list[float] | None:
        """MS-SSIM of each point in dB (``-10 log10(1 - MS-SSIM)``), or ``None``."""
        if self.ms_ssim is None:
            return None
        return [msssim_to_db(v) for v in self.ms_ssim]

    def to_dict(self) -> dict[str, Any]:
        """The CompressAI JSON layout of this curve."""
        results: dict[str, Any] = {"bpp": list(self.bpp)}
        if self.psnr is not None:
            results["psnr-rgb"] = list(self.psnr)
        if self.ms_ssim is not None:
            results["ms-ssim-rgb"] = list(self.ms_ssim)
        if self.encoding_time is not None:
            results["encoding_time"] = list(self.encoding_time)
        if self.decoding_time is not None:
            results["decoding_time"] = list(self.decoding_time)
        for key, value in self.extra_results.items():
            results.setdefault(key, value)
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        for key, value in self.extra.items():
            if key not in ("name", "description", "results"):
                out[key] = value
        out["results"] = results
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], default_name: str = "") -> RDCurve:
        """Build a curve from a parsed CompressAI results JSON object (see the module docstring)."""
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
            raise ValueError("not a CompressAI results file: no 'results' object")
        res: dict[str, Any] = data["results"]
        if "bpp" not in res:
            raise ValueError("not a CompressAI results file: 'results' has no 'bpp'")
        bpp = _floats(res["bpp"], "bpp")
        n = len(bpp)

        def first(keys: tuple[str, ...]) -> tuple[str, Any] | None:
            for k in keys:
                if k in res and res[k] is not None:
                    return k, res[k]
            return None

        psnr = ms = None
        if (hit := first(_PSNR_KEYS)) is not None:
            psnr = _floats(hit[1], hit[0])
        if (hit := first(_MSSSIM_KEYS)) is not None:
            ms = _floats(hit[1], hit[0])
        elif (hit := first(_MSSSIM_DB_KEYS)) is not None:
            ms = [db_to_msssim(v) for v in _floats(hit[1], hit[0])]
        times = {}
        for key in ("encoding_time", "decoding_time"):
            times[key] = _floats(res[key], key, n) if res.get(key) is not None else None
        if psnr is None and ms is None:
            raise ValueError(
                "results hold neither PSNR ('psnr-rgb') nor MS-SSIM ('ms-ssim-rgb' / 'ms-ssim-db-rgb')"
            )
        name = data.get("name") or default_name
        return cls(
            name=str(name),
            bpp=bpp,
            psnr=psnr,
            ms_ssim=ms,
            encoding_time=times["encoding_time"],
            decoding_time=times["decoding_time"],
            description=str(data.get("description") or ""),
            extra={k: v for k, v in data.items() if k not in ("name", "description", "results")},
            extra_results={k: v for k, v in res.items() if k not in _KNOWN_RESULT_KEYS},
        )


def load_curve(path: str | Path) -> RDCurve:
    """Read one RD curve from a CompressAI-layout JSON file.

    The name defaults to the file stem when the file has none.

    Raises:
        ValueError: the file is not a results file (no ``results.bpp``, no quality metric, or list
            lengths that disagree). The message names the file.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    try:
        return RDCurve.from_dict(data, default_name=path.stem)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def load_curves(paths: Sequence[str | Path], skip_invalid: bool = False) -> list[RDCurve]:
    """Load curves from files and directories (every ``*.json`` in a directory, sorted by name).

    With ``skip_invalid``, files that are not results files (e.g. timing reports) are skipped
    instead of raising.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    curves = []
    for f in files:
        try:
            curves.append(load_curve(f))
        except (ValueError, json.JSONDecodeError):
            if not skip_invalid:
                raise
    return curves


def save_curve(curve: RDCurve, path: str | Path) -> None:
    """Write ``curve`` as CompressAI-layout JSON (indent 2), so it mixes with the anchor files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        json.dump(curve.to_dict(), f, indent=2)
        f.write("\n")
