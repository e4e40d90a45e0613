"""Sandbox throughput: MCP tool calls per second over loopback, and paging 1,000 of 100,000 calls.

The sandbox runs in its own process (``python -m sandbox serve``), so client and server do not
share a GIL. Each figure is measured beside a baseline in the same run and printed as a ratio:

- tool calls per second: ``get_single_vapi_call_by_id`` through our MCP connection (JSON-RPC over
  Streamable HTTP, Truto-style proxying to the REST app) against the same lookups as plain REST
  ``GET /call/{id}`` (the cost of the MCP layer);
- paging: the newest 1,000 calls of a 100,000-call dataset through ``list_all_vapi_calls``
  (``next_cursor`` pages of at most ``--page-cap``) against one REST ``GET /call?limit=1000``.

Run: ``.venv/bin/python bench/sandbox.py [--calls 100000] [--lookups 300] [--concurrency 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(calls: int, port: int, token: str, page_cap: int) -> tuple[subprocess.Popen[bytes], float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--calls", str(calls), "--token", token,
         "--page-cap", str(page_cap), "--no-access-log"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the sandbox did not start within 120 s")


async def rest_lookups(base: str, ids: list[str], concurrency: int) -> float:
    import httpx2

    limit = asyncio.Semaphore(concurrency)
    async with httpx2.AsyncClient(base_url=base, headers={"Authorization": "Bearer sandbox-key"}) as http:
        async def one(call_id: str) -> None:
            async with limit:
                (await http.get(f"/call/{call_id}")).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        return time.perf_counter() - started


async def mcp_session(url: str):  # type: ignore[no-untyped-def]
    from agent.config import load_settings
    from agent.runtime import open_runtime

    return open_runtime(load_settings({"mcp_url": url, "mcp_kind": "sandbox"}, env={}), store=None,
                        notice=lambda _m: None)


async def mcp_lookups(url: str, ids: list[str], concurrency: int) -> float:
    limit = asyncio.Semaphore(concurrency)
    async with await mcp_session(url) as rt:
        async def one(call_id: str) -> None:
            async with limit:
                (await rt.hub.call("get_single_vapi_call_by_id", {"id": call_id})).raise_for_error()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        return time.perf_counter() - started


async def rest_page(base: str) -> tuple[float, int]:
    import httpx2

    async with httpx2.AsyncClient(base_url=base, headers={"Authorization": "Bearer sandbox-key"},
                                  timeout=120) as http:
        started = time.perf_counter()
        response = await http.get("/call", params={"limit": 1000})
        response.raise_for_status()
        return time.perf_counter() - started, len(response.json())


async def mcp_page(url: str) -> tuple[float, int]:
    async with await mcp_session(url) as rt:
        started = time.perf_counter()
        calls = await rt.vapi.list_all("calls.list", limit=1000, full=True)
        return time.perf_counter() - started, len(calls)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--page-cap", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    port, token = free_port(), secrets.token_urlsafe(12)
    proc, startup = start_sandbox(args.calls, port, token, args.page_cap)
    base, url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/mcp/{token}"
    try:
        import httpx2

        async with httpx2.AsyncClient(base_url=base, headers={"Authorization": "Bearer sandbox-key"}) as http:
            listed = (await http.get("/call", params={"limit": args.lookups})).json()
        ids = [c["id"] for c in listed]
        await rest_lookups(base, ids[:20], args.concurrency)  # warm both paths
        await mcp_lookups(url, ids[:20], args.concurrency)
        rest_s = await rest_lookups(base, ids, args.concurrency)
        mcp_s = await mcp_lookups(url, ids, args.concurrency)
        rest_page_s, rest_n = await rest_page(base)
        mcp_page_s, mcp_n = await mcp_page(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    figures = {
        "dataset_calls": args.calls, "sandbox_start_seconds": round(startup, 2),
        "lookups": len(ids), "concurrency": args.concurrency,
        "mcp_tool_calls_per_second": round(len(ids) / mcp_s, 1),
        "rest_requests_per_second": round(len(ids) / rest_s, 1),
        "mcp_vs_rest_time_ratio": round(mcp_s / rest_s, 2),
        "page_1000_mcp_seconds": round(mcp_page_s, 3), "page_1000_mcp_items": mcp_n,
        "page_1000_rest_seconds": round(rest_page_s, 3), "page_1000_rest_items": rest_n,
        "page_mcp_vs_rest_ratio": round(mcp_page_s / rest_page_s, 2), "page_cap": args.page_cap,
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"sandbox with {args.calls:,} calls started (ready to serve) in {startup:.2f} s")
    print(f"tool calls/s over loopback: MCP {figures['mcp_tool_calls_per_second']} vs REST "
          f"{figures['rest_requests_per_second']} (MCP takes {figures['mcp_vs_rest_time_ratio']}x the REST time; "
          f"{len(ids)} lookups, concurrency {args.concurrency})")
    print(f"page 1,000 of {args.calls:,} calls: MCP {mcp_page_s:.3f} s ({mcp_n} items, pages of {args.page_cap}) "
          f"vs REST limit=1000 {rest_page_s:.3f} s ({figures['page_mcp_vs_rest_ratio']}x)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
