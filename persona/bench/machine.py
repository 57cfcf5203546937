"""What a benchmark ran on: every result file records :func:`machine_info`.

Versions are read from package metadata, so nothing heavy (torch, faiss) is imported here.
"""

from __future__ import annotations

import os
import platform
import shlex
import sqlite3
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions change benchmark numbers.
PACKAGES = (
    "persona",
    "torch",
    "faiss-cpu",
    "sentence-transformers",
    "transformers",
    "numpy",
    "sqlite-utils",
    "langchain-core",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="ignore").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _gpu() -> str | None:
    """The CUDA device's name, read only where torch is already loaded (nothing heavy is
    imported here); ``None`` where there is none or torch was not used."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except (RuntimeError, AssertionError):  # a CPU build, or a driver that does not answer
        pass
    return None


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed: ``persona bench latency --users 10`` (program name, not its path)."""
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = Path(args[0]).name
    return shlex.join(args)


def machine_info(argv: list[str] | None = None) -> dict[str, Any]:
    """CPU model, cores, RAM, Python, key package versions, platform and the command line."""
    ram = _ram_bytes()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "gpu": _gpu(),  # None: the run used no GPU (or did not load torch)
        "packages": {name: _version(name) for name in PACKAGES},
        # Other processes competing for the CPU skew latency figures: check this first.
        "load_average_1_5_15m": [round(x, 2) for x in os.getloadavg()],
        "command": command_line(argv),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
