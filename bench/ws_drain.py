#!/usr/bin/env python3
"""Holds N WebSocket connections to a pytake server for a while, reading and
discarding what arrives (answering pings), with or without offering
permessage-deflate. Standard library only: the handshake and framing are
done by hand, and compressed payloads are not inflated (the server's byte
counter is what is measured).

    ws_drain.py URL_BASE TOKEN N SECONDS [--deflate] [--path /ws/tenant/{t}]
"""
import asyncio
import base64
import os
import sys

TENANTS = ["acme", "globex", "initech"]
OFFER = "permessage-deflate; client_max_window_bits"


def masked(opcode, payload):
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


async def hold(host, port, path, deflate, seconds, counts):
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    ext = f"Sec-WebSocket-Extensions: {OFFER}\r\n" if deflate else ""
    writer.write(
        (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\n"
         f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
         f"Sec-WebSocket-Key: {key}\r\n{ext}\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"upgrade refused: {head[:200]!r}")
    negotiated = b"permessage-deflate" in head.lower()
    if negotiated != deflate:
        raise SystemExit(f"negotiation: offered {deflate}, got {negotiated}")
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    try:
        while loop.time() < end:
            try:
                h = await asyncio.wait_for(reader.readexactly(2), end - loop.time())
            except asyncio.TimeoutError:
                break
            n = h[1] & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            payload = await reader.readexactly(n)
            op = h[0] & 0x0F
            counts["frames"] += 1
            counts["compressed"] += bool(h[0] & 0x40)
            if op == 0x9:
                writer.write(masked(0xA, payload))
            elif op == 0x8:
                raise SystemExit(f"server closed: {payload[:2].hex()} {payload[2:]!r}")
        writer.write(masked(0x8, (1000).to_bytes(2, "big")))
        await writer.drain()
    finally:
        writer.close()


async def main():
    base, token, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    deflate = "--deflate" in sys.argv
    host, port = base.split("//")[1].rstrip("/").split(":")
    counts = {"frames": 0, "compressed": 0}
    tasks = [
        hold(host, int(port), f"/ws/tenant/{TENANTS[i % 3]}?token={token}", deflate, seconds, counts)
        for i in range(n)
    ]
    await asyncio.gather(*tasks)
    print(f"frames={counts['frames']} compressed={counts['compressed']}")


asyncio.run(main())
