"""Sandbox throughput: MCP tool calls per second over loopback, and paging 1,000 of 100,000 calls.

The sandbox runs in its own process (``python -m sandbox serve``), so client and server do not
share a GIL. Each figure is measured beside a baseline in the same run and printed as a ratio:

- tool calls per second: ``get_single_vapi_call_by_id`` through our MCP connection (JSON-RPC over
  Streamable HTTP, Truto-style proxying to the REST app) against the same lookups as plain REST
  ``GET /call/{id}`` (the cost of the MCP layer);
- paging: the newest 1,000 calls of a 100,000-call dataset through ``list_all_vapi_calls``
  (``next_cursor`` pages of at most ``--page-cap``) against one REST ``GET /call?limit=1000``.

Run: ``.venv/bin/python bench/throughput.py [--calls 100000] [--lookups 300] [--concurrency 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from served import auth, served_sandbox  # noqa: E402 - bench/ is on sys.path as the script's folder


async def rest_lookups(base: str, ids: list[str], concurrency: int) -> float:
    import httpx2

    limit = asyncio.Semaphore(concurrency)
    async with httpx2.AsyncClient(base_url=base, headers=auth()) as http:
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

    async with httpx2.AsyncClient(base_url=base, headers=auth(),
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

    started = time.perf_counter()
    with served_sandbox("--calls", str(args.calls), "--page-cap", str(args.page_cap)) as (url, base):
        startup = time.perf_counter() - started
        import httpx2

        async with httpx2.AsyncClient(base_url=base, headers=auth()) as http:
            listed = (await http.get("/call", params={"limit": args.lookups})).json()
        ids = [c["id"] for c in listed]
        await rest_lookups(base, ids[:20], args.concurrency)  # warm both paths
        await mcp_lookups(url, ids[:20], args.concurrency)
        rest_s = await rest_lookups(base, ids, args.concurrency)
        mcp_s = await mcp_lookups(url, ids, args.concurrency)
        rest_page_s, rest_n = await rest_page(base)
        mcp_page_s, mcp_n = await mcp_page(url)

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
