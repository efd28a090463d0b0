"""The golden path must run on the board's ARM CPU: no torch, no compressai, no brevitas (docs/architecture.md)."""

import subprocess
import sys

GOLDEN_PATH = [
    "fxlic", "fxlic.fxp", "fxlic.reference", "fxlic.reference.hyperprior", "fxlic.entropy", "fxlic.golden",
    "fxlic.golden.vectors", "fxlic.codec", "fxlic.imageio", "fxlic.cli", "fxlic.models", "fxlic.rd",
    "fxlic.entropy.conditional", "fxlic.golden.goldenset", "fxlic.golden.cli", "fxlic.board.session",
    "fxlic.board.cli", "fxlic.batch", "fxlic.errors", "fxlic.options", "fxlic.rd.evaluate", "fxlic.rd.cli",
    "fxlic.reference.charm", "fxlic.charm_codec", "fxlic.board.vitis",
]


def test_golden_path_imports_no_torch() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in GOLDEN_PATH)
        + "heavy = ('torch', 'compressai', 'torchvision', 'brevitas')\n"
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"golden path imported {out.stdout.strip()}"


def test_cli_golden_commands_import_no_torch() -> None:
    code = (
        "import sys\nfrom fxlic.cli import main\n"
        "main(['models', '--json'])\n"
        "assert not any(m.split('.')[0] == 'torch' for m in sys.modules), 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
