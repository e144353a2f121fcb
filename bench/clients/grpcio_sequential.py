"""Sequential unary calls from Python grpcio, a client we did not write.

Usage: grpcio_sequential.py ADDR METHOD REQUEST_HEX CALLS [MAX_SECONDS]

Sends CALLS unary calls one after another on one channel to METHOD (a full
path such as /tradewire.v1.TradeService/GetTradeRecord) with the request
given as hex-encoded protobuf bytes, stopping early after MAX_SECONDS. No
generated stubs: requests and responses pass as raw bytes. Prints one JSON
object: calls made, errors, response size and latency quantiles in ms.
"""

import json
import sys
import time

import grpc


def main() -> int:
    addr, method, request_hex, calls = sys.argv[1:5]
    max_seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    request = bytes.fromhex(request_hex)
    channel = grpc.insecure_channel(addr)
    call = channel.unary_unary(method)
    call(request, timeout=10)  # warm-up: connection and first exchange
    latencies = []
    errors = 0
    first_error = None
    response_len = None
    deadline = time.monotonic() + max_seconds
    for _ in range(int(calls)):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        try:
            response = call(request, timeout=10)
            response_len = len(response)
        except grpc.RpcError as error:
            errors += 1
            first_error = first_error or f"{error.code()}: {error.details()}"
        latencies.append((time.perf_counter() - started) * 1000.0)
    latencies.sort()

    def quantile(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    print(
        json.dumps(
            {
                "client": f"python grpcio {grpc.__version__}",
                "calls": len(latencies),
                "errors": errors,
                "first_error": first_error,
                "response_bytes": response_len,
                "mean_ms": sum(latencies) / max(1, len(latencies)),
                "p50_ms": quantile(0.5),
                "p99_ms": quantile(0.99),
                "max_ms": latencies[-1] if latencies else 0.0,
            }
        )
    )
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
