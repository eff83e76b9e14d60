"""A folder of every wheel the course installs, so that a room whose network fails can still install.

    python tools/wheelhouse.py DEST                       # this machine's platform and Python
    python tools/wheelhouse.py DEST --platform macosx_11_0_arm64 --python-version 3.11
    make wheelhouse [WHEELHOUSE=DEST]                     # the first line, DEST=wheelhouse/

What goes in: pyproject.toml's dependencies (torch exactly as `make install` takes it: on Linux the
CPU build, from PyTorch's CPU index when tools/torch_index.py chooses it) with everything they
need, and the build backend that `pip install -e .` needs (pyproject.toml's [build-system]
requires). Wheels only (`--only-binary=:all:`): nothing is compiled in the room. The pip run here
keeps the machine's own pip configuration (its mirror or local wheels serve as they would for
`make install`). Running it again on the same DEST downloads only what is missing.

Installing from it, with no network (docs/workshop/offline.md):

    PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/wheelhouse BNCOURSE_TORCH_INDEX=default make install

Only the standard library: it runs with the pip of whatever Python will use the wheels.
"""
import argparse
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import torch_index  # noqa: E402

CUDA_ONLY = ("nvidia_", "nvidia-", "triton-", "pytorch_triton")  # wheels only torch's CUDA build pulls


def requirements(pyproject=REPO / "pyproject.toml"):
    """The course's dependencies, then its build backend's requirements."""
    meta = tomllib.loads(Path(pyproject).read_text())
    return list(meta["project"]["dependencies"]) + list(meta["build-system"]["requires"])


def os_of(platform_tag):
    """sys.platform's spelling of a wheel platform tag (torch_index.choose keys on it)."""
    if platform_tag.startswith(("manylinux", "musllinux", "linux")):
        return "linux"
    if platform_tag.startswith("macosx"):
        return "darwin"
    if platform_tag.startswith("win"):
        return "win32"
    raise ValueError(f"--platform {platform_tag!r}: expected a wheel platform tag such as "
                     "manylinux_2_28_x86_64, macosx_11_0_arm64 or win_amd64")


def pip_command(dest, platform_tag=None, python_version=None):
    """The `pip download` that fills DEST, and a notice (or None) from the torch index choice."""
    index_args, notice = torch_index.choose(platform=os_of(platform_tag) if platform_tag else None)
    target = []
    if platform_tag:
        target += ["--platform", platform_tag]
    if python_version:
        target += ["--python-version", python_version]
    return ([sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest),
             "--progress-bar", "off", *target, *index_args, *requirements()], notice)


INSTRUCTIONS = "INSTALL.txt"  # beside the wheels, for whoever finds the folder on a USB stick (pip skips it)


def instructions(platform_tag=None, python_version=None):
    version = python_version or ".".join(map(str, sys.version_info[:2]))
    built_for = f"{platform_tag or sysconfig.get_platform()}, Python {version}"
    return f"""Wheels for installing the course with no network, for {built_for} (tools/wheelhouse.py).

With this folder beside the course's repository (../wheelhouse), in the repository:

    PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/../wheelhouse BNCOURSE_TORCH_INDEX=default make install
    make doctor

Without make:

    python{version} -m venv .venv
    .venv/bin/python -m pip install --no-index --find-links ../wheelhouse torch==2.13.0
    .venv/bin/python -m pip install --no-index --find-links ../wheelhouse -e .
    .venv/bin/python -m bncourse.doctor

(On Windows without WSL: .venv\\Scripts\\python in place of .venv/bin/python.)

More in the repository: docs/workshop/offline.md
"""


def cuda_wheels(dest):
    return sorted(p.name for p in Path(dest).glob("*.whl") if p.name.lower().startswith(CUDA_ONLY))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", help="the folder to fill (created if missing)")
    parser.add_argument("--platform", help="a wheel platform tag, for another machine than this one")
    parser.add_argument("--python-version", help="e.g. 3.12, for another Python than this one")
    args = parser.parse_args(argv)
    dest = Path(args.dest)
    if dest.exists() and not dest.is_dir():
        parser.error(f"{dest} exists and is not a folder")
    try:
        command, notice = pip_command(dest.resolve(), args.platform, args.python_version)
    except ValueError as error:
        parser.error(str(error))
    if notice:
        print(notice, file=sys.stderr)
    dest.mkdir(parents=True, exist_ok=True)
    print("$", " ".join(command[2:]), flush=True)
    if subprocess.run(command).returncode != 0:
        print(f"error: pip could not download every wheel into {dest} (above: the package it stopped at)",
              file=sys.stderr)
        return 1
    cuda = cuda_wheels(dest)
    if cuda:  # a looser torch than the CPU build: gigabytes nobody in the room needs
        print(f"error: {dest} holds CUDA wheels ({', '.join(cuda[:3])}{' ...' if len(cuda) > 3 else ''}): torch "
              "came from the ordinary index; set BNCOURSE_TORCH_INDEX=cpu (or a CPU wheel's index) and "
              "build again into an empty folder", file=sys.stderr)
        return 1
    (dest / INSTRUCTIONS).write_text(instructions(args.platform, args.python_version))
    wheels = sorted(dest.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels)
    torch = [p.name for p in wheels if p.name.startswith("torch-")]
    print(f"{dest}: {len(wheels)} wheels, {size / 1e6:.0f} MB ({', '.join(torch)}).\n"
          f"Offline: PIP_NO_INDEX=1 PIP_FIND_LINKS={dest.resolve()} BNCOURSE_TORCH_INDEX=default make install")
    return 0


if __name__ == "__main__":
    sys.exit(main())
