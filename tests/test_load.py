"""Load: 20 real kernels x 500 concurrent calls each, in both modes; nothing lost or misrouted."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import resource
import sys

import pytest

pytestmark = pytest.mark.load

KERNELS = 20
CALLS = 500

LOAD_CODE = f"""
import asyncio, os
from greenroom import server
me = os.environ["GREENROOM_KERNEL_ID"]
results = await asyncio.gather(*(server.call_async("echo", me, i) for i in range({CALLS})))
wrong = [i for i, result in enumerate(results) if result != [[me, i], {{}}]]
print(len(results), len(wrong))
"""


def rss_mb() -> float:
    """Resident size of this process (which runs the server) after returning freed heap pages to the OS."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "greenroom_config",
    [
        {"max_calls_per_session": CALLS, "prefork": 4, "call_timeout": 120},
        {"persistent": True, "workers": 4, "max_calls_per_session": CALLS, "call_timeout": 120},
    ],
    ids=["fresh", "persistent"],
)
async def test_twenty_kernels_five_hundred_calls_each(start_kernel, host, jp_serverapp, greenroom_config):
    for log in (jp_serverapp.log, host.log):  # the test's log capture would otherwise grow with every request
        log.setLevel(logging.WARNING)
    kernels = [await start_kernel() for _ in range(KERNELS)]  # one by one: concurrent starts race for ports
    sizes: list[float] = []
    blocks: list[int] = []
    for _round in range(4):  # two rounds warm up (allocator arenas, buffers, dicts sized for 500 calls in flight)
        outputs = await asyncio.gather(*(kernel.run(LOAD_CODE, timeout=400) for kernel in kernels))
        assert [out.split() for out in outputs] == [[str(CALLS), "0"]] * KERNELS  # none lost, duplicated or misrouted
        sizes.append(rss_mb())
        blocks.append(sys.getallocatedblocks())
    print(f"host RSS per round (MB): {[round(size) for size in sizes]}; Python blocks: {blocks}")
    assert sum(host.in_flight.values()) == 0
    assert sizes[3] - sizes[1] < 15, f"host process grew from {sizes[1]:.0f} MB to {sizes[3]:.0f} MB over 20,000 calls"
