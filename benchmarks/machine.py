"""The machine a run happened on, and the software versions."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata

from benchmarks.config import REPO

PACKAGES = ("jax", "jaxlib", "optax", "tensorflow", "tensorflow-cpu", "tf-keras", "keras", "numpy", "jaxopt_keras")


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    key, value = (s.strip() for s in line.split(":", 1))
                    info.setdefault(key, value)
    except OSError:
        pass
    return info


def proc_bytes(path: str, field: str) -> int | None:
    """A ``field:  N kB`` line of a ``/proc`` file, in bytes (``None`` where there is none)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git() -> dict[str, str | bool] | None:
    """The commit benchmarked (read-only git queries), or ``None`` outside a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def describe() -> dict:
    """CPU model, cores, RAM, OS, versions, git commit, date (UTC) and load average."""
    cpu = _cpuinfo()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu.get("model name", platform.processor() or "unknown"),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_bytes": proc_bytes("/proc/meminfo", "MemTotal"),
        "os": f"{platform.system()} {platform.release()}",
        "versions": _versions(),
        "git": _git(),
        "load_average_start": load_average(),
    }
