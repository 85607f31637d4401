"""How many physical CPU cores this machine has: the thread count llama.cpp decodes best with.

llama.cpp's matrix kernels saturate a core's vector units, so a second
hyper-thread on the same core adds nothing and the extra synchronisation
costs. llama-cpp-python defaults to half of ``os.cpu_count()``, which on a
2-core box without SMT is 1 thread: the demo Gemma then decodes at 23-26 tok/s
against 40-42 with both cores (``shared/FACTS.md``).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_CPUS = Path("/sys/devices/system/cpu")


def _topology_cores(root: Path) -> int:
    """Unique (package, core) pairs under ``root``; 0 when the topology cannot be read."""
    cores: set[tuple[str, str]] = set()
    try:
        for cpu in root.glob("cpu[0-9]*"):
            topology = cpu / "topology"
            try:
                package = (topology / "physical_package_id").read_text().strip()
                core = (topology / "core_id").read_text().strip()
            except OSError:  # offline CPUs have no topology directory
                continue
            cores.add((package, core))
    except OSError:
        return 0
    return len(cores)


@cache
def physical_cores() -> int:
    """Physical cores usable by this process (Linux topology; else ``os.cpu_count()``).

    Capped by the CPUs this process may run on (a container's ``cpuset``), so a
    16-core host that lends us 2 CPUs answers 2.
    """
    logical = os.cpu_count() or 1
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = logical
    found = _topology_cores(_CPUS)
    cores = found if found > 0 else logical
    return max(1, min(cores, allowed))
