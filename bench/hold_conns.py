#!/usr/bin/env python3
"""Opens many keep-alive connections and holds them, for `bench/run.sh memory`.

    hold_conns.py --port 8080 --count 5000 --hold 5 --ready-file FILE

Opens COUNT connections to 127.0.0.1:PORT, sends one HTTP/1.1 keep-alive request on each
(GET PATH) and reads the whole response. Once every connection has had its response it
writes "READY <open connections>" to the ready file (the caller reads the server's memory
then), holds the connections open for HOLD seconds, reports how many the server closed in
the meantime, and closes them. Exits 1 if fewer than COUNT connections got a 200.
"""

import argparse
import asyncio
import resource
import sys


def raise_fd_limit(want: int) -> None:
    """Like `ulimit -n 65536`: as high as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def open_one(port: int, path: str, gate: asyncio.Semaphore):
    """Connects, does one request and returns (reader, writer, status)."""
    async with gate:  # limit concurrent handshakes so the accept backlog does not overflow
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: hold_conns\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            await reader.readexactly(length)
        return reader, writer, status


async def run(args) -> int:
    gate = asyncio.Semaphore(args.concurrency)
    results = await asyncio.gather(
        *(open_one(args.port, args.path, gate) for _ in range(args.count)),
        return_exceptions=True,
    )
    conns = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    ok = sum(1 for _, _, status in conns if status == 200)
    print(f"hold_conns: {len(conns)} connected, {ok} got 200, {len(errors)} failed", flush=True)
    if errors:
        print(f"hold_conns: first error: {errors[0]!r}", file=sys.stderr, flush=True)

    with open(args.ready_file, "w") as f:
        f.write(f"READY {len(conns)}\n")
    await asyncio.sleep(args.hold)

    closed = sum(1 for reader, _, _ in conns if reader.at_eof())
    print(f"hold_conns: {closed} of {len(conns)} closed by the server while held", flush=True)
    for _, writer, _ in conns:
        writer.close()
    return 0 if ok == args.count else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--hold", type=float, default=5.0, help="seconds to hold them open")
    ap.add_argument("--path", default="/api/v1/users/42")
    ap.add_argument("--concurrency", type=int, default=256, help="handshakes in flight")
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()
    raise_fd_limit(65536)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
