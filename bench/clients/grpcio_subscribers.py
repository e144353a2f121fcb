"""Live subscribers from Python grpcio (asyncio), a client we did not write.

Usage: grpcio_subscribers.py ADDR SUBSCRIBERS REPORTS MAX_SECONDS

Opens SUBSCRIBERS SubscribeExportReports streams on one channel, prints
"ready" once every stream has caught up, then reads until each stream has
seen REPORTS reports (or MAX_SECONDS pass). No generated stubs: frames are
raw bytes, and only the report's sequence and publish_time are decoded.
Prints one JSON object: deliveries, lost, duplicated and publish-to-receive
latency quantiles in ms (server and client share this machine's clock).
"""

import asyncio
import json
import sys
import time

import grpc

METHOD = "/tradewire.v1.ExportReportService/SubscribeExportReports"


def varint(buf, i):
    value, shift = 0, 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def fields(buf):
    """Yields (field number, wire type, value) for each field of a message."""
    i = 0
    while i < len(buf):
        tag, i = varint(buf, i)
        wire = tag & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 2:
            length, i = varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield tag >> 3, wire, value


def report_of(frame):
    """(sequence, publish time in ns) of a report frame, else None; "caught_up" for the marker."""
    for number, wire, value in fields(frame):
        if number == 2 and wire == 2:
            return "caught_up"
        if number == 1 and wire == 2:
            sequence, publish_ns = 0, 0
            for f, w, v in fields(value):
                if f == 2 and w == 0:
                    sequence = v
                elif f == 3 and w == 2:
                    secs = nanos = 0
                    for tf, _, tv in fields(v):
                        if tf == 1:
                            secs = tv
                        elif tf == 2:
                            nanos = tv
                    publish_ns = secs * 1_000_000_000 + nanos
            return sequence, publish_ns
    return None


async def subscriber(channel, reports, caught_up, latencies, tally):
    call = channel.unary_stream(METHOD)(b"")
    last = 0
    seen = 0
    async for frame in call:
        received_ns = time.time_ns()
        event = report_of(frame)
        if event == "caught_up":
            caught_up.release()
            continue
        if event is None:
            continue
        sequence, publish_ns = event
        if sequence <= last:
            tally["duplicated"] += 1
            continue
        last = sequence
        seen += 1
        tally["deliveries"] += 1
        latencies.append((received_ns - publish_ns) / 1e6)
        if seen >= reports:
            break
    call.cancel()


async def main():
    addr, subscribers, reports, max_seconds = sys.argv[1:5]
    subscribers, reports, max_seconds = int(subscribers), int(reports), float(max_seconds)
    latencies, tally = [], {"deliveries": 0, "duplicated": 0}
    caught_up = asyncio.Semaphore(0)
    async with grpc.aio.insecure_channel(addr) as channel:
        tasks = [
            asyncio.create_task(subscriber(channel, reports, caught_up, latencies, tally))
            for _ in range(subscribers)
        ]
        for _ in range(subscribers):
            await asyncio.wait_for(caught_up.acquire(), timeout=60)
        print("ready", flush=True)
        done, pending = await asyncio.wait(tasks, timeout=max_seconds)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
    latencies.sort()

    def quantile(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    print(
        json.dumps(
            {
                "client": f"python grpcio {grpc.__version__}",
                "subscribers": subscribers,
                "deliveries": tally["deliveries"],
                "lost": subscribers * reports - tally["deliveries"],
                "duplicated": tally["duplicated"],
                "p50_ms": quantile(0.5),
                "p99_ms": quantile(0.99),
                "max_ms": latencies[-1] if latencies else 0.0,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
