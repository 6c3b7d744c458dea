"""A description of the machine a benchmark ran on, stored beside every figure."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe() -> dict:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory_gib = round(kib / 1024 / 1024, 1)
    import duckdb

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }


def summary(machine: dict) -> str:
    return (
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB RAM, {machine['os']}, "
        f"Python {machine['python']}, DuckDB {machine['duckdb']}"
        + (f", PostgreSQL {machine['postgres']}" if machine.get("postgres") else "")
    )
