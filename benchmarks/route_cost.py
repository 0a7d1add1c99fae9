"""What the JSON route headers cost on the call path, against a binary header (the lever issue 16 names).

``.venv/bin/python benchmarks/route_cost.py`` times, for the four headers a persistent call carries (the
client's call, the host's call to its worker, the worker's result, the host's reply), encoding and parsing
them as greenroom does (:func:`greenroom.wire.route_bytes`, :func:`greenroom.wire.parse_route`) and as a
fixed ``struct`` layout would (a prototype here, not in the product: a kind byte, the id, flags, lengths
and the name).  The host encodes two headers and parses two per call; the client and the worker one each.
"""

from __future__ import annotations

import json
import struct
import sys
import timeit
from typing import Any

from greenroom.wire import parse_route, route_bytes

HEADERS: dict[str, dict[str, Any]] = {
    "client call": {"kind": "call", "id": 17, "name": "add"},
    "host -> worker call": {
        "kind": "call",
        "cid": 1234,
        "name": "add",
        "caller": ["kernel", "3f0c9a52-8a7e-4d0b-9b64-6c1f0b6f2d11"],
        "user": None,
        "nbuf": 0,
        "lent": False,
    },
    "worker result": {"kind": "result", "cid": 1234, "ok": True, "nbuf": 0, "session": False},
    "host reply": {"kind": "reply", "id": 17, "ok": True},
}

HOST_ENCODES = {"host -> worker call", "host reply"}
KINDS = ["call", "result", "reply"]
_FIXED = struct.Struct("!BQBH")  # kind, id, flags, buffer count; then name and caller as length-prefixed text


def binary_encode(route: dict[str, Any]) -> bytes:
    name = (route.get("name") or "").encode()
    caller = json.dumps(route["caller"]).encode() if "caller" in route else b""
    flags = (1 if route.get("ok") else 0) | (2 if route.get("lent") else 0) | (4 if route.get("session") else 0)
    fixed = _FIXED.pack(KINDS.index(route["kind"]), route.get("id", route.get("cid", 0)), flags, route.get("nbuf", 0))
    return b"".join((fixed, struct.pack("!HH", len(name), len(caller)), name, caller))


def binary_parse(data: bytes) -> dict[str, Any]:
    kind, ident, flags, nbuf = _FIXED.unpack_from(data)
    name_length, caller_length = struct.unpack_from("!HH", data, _FIXED.size)
    start = _FIXED.size + 4
    route: dict[str, Any] = {"kind": KINDS[kind], "id": ident, "ok": bool(flags & 1), "nbuf": nbuf}
    if name_length:
        route["name"] = data[start : start + name_length].decode()
    if caller_length:
        route["caller"] = json.loads(data[start + name_length : start + name_length + caller_length])
    return route


def microseconds(function: Any, argument: Any, number: int = 50000) -> float:
    return min(timeit.repeat(lambda: function(argument), number=number, repeat=5)) / number * 1e6


def main() -> int:
    print(f"{'header':<22}{'bytes json/bin':>16}{'json enc / parse':>20}{'binary enc / parse':>22}")
    host_json = host_binary = 0.0
    for label, route in HEADERS.items():
        encoded, packed = route_bytes(route), binary_encode(route)
        json_us = microseconds(route_bytes, route), microseconds(parse_route, encoded)
        binary_us = microseconds(binary_encode, route), microseconds(binary_parse, packed)
        step = 0 if label in HOST_ENCODES else 1  # the host encodes what it sends, parses what it receives
        host_json += json_us[step]
        host_binary += binary_us[step]
        print(
            f"{label:<22}{len(encoded):>8}/{len(packed):<7}{json_us[0]:>9.2f} /{json_us[1]:>6.2f} us"
            f"{binary_us[0]:>11.2f} /{binary_us[1]:>6.2f} us"
        )
    print(
        f"\nper call on the host (it encodes the call to its worker and the reply, parses the client's call and "
        f"the worker's result): JSON {host_json:.1f} us, binary {host_binary:.1f} us; saved {host_json - host_binary:.1f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
