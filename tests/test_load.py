"""Load: 20 real kernels x 500 concurrent calls each, in both modes; nothing lost or misrouted, and the host
does not grow over the rounds."""

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
    ("greenroom_config", "rounds"),
    [
        # Fresh calls cost a fork each (about 4 ms of CPU here): one round warms up, two are compared.
        ({"max_calls_per_session": CALLS, "prefork": 4, "call_timeout": 120}, 3),
        ({"persistent": True, "workers": 4, "max_calls_per_session": CALLS, "call_timeout": 120}, 4),
    ],
    ids=["fresh", "persistent"],
)
async def test_twenty_kernels_five_hundred_calls_each(start_kernel, host, jp_serverapp, greenroom_config, rounds):
    for log in (jp_serverapp.log, host.log):  # the test's log capture would otherwise grow with every request
        log.setLevel(logging.WARNING)
    kernels = [await start_kernel() for _ in range(KERNELS)]  # one by one: concurrent starts race for ports
    sizes: list[float] = []
    blocks: list[int] = []
    for _round in range(rounds):  # the first rounds warm up (allocator arenas, buffers, dicts sized for 500 calls)
        outputs = await asyncio.gather(*(kernel.run(LOAD_CODE, timeout=400) for kernel in kernels))
        assert [out.split() for out in outputs] == [[str(CALLS), "0"]] * KERNELS  # none lost, duplicated or misrouted
        sizes.append(rss_mb())
        blocks.append(sys.getallocatedblocks())
    print(f"host RSS per round (MB): {[round(size) for size in sizes]}; Python blocks: {blocks}")
    assert sum(host.in_flight.values()) == 0
    grown = sizes[-1] - sizes[1]
    assert grown < 15, (
        f"host process grew from {sizes[1]:.0f} MB to {sizes[-1]:.0f} MB over {(rounds - 2) * 10_000} calls"
    )
