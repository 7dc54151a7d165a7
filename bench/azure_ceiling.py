"""The Azure ceiling: the same bytes uploaded straight to Azure Blob by azure-storage-blob's async client.

Blocks of `--block-size` bytes are read from the file one after another and up to `--concurrency` of them are
staged at once, then the block list is committed: what tusserver's Azure storage does with a request body (the
same block size, the same blocks in flight, the same client settings and body type, on uvloop as under
uvicorn). No HTTP server, no tus: the cost of "file to Azure staged blocks" in Python.

Protocol with bench/azure_blob.py (as bench/s3_ceiling.py's): it connects (a tiny upload and delete), prints `ready`,
waits for a line on stdin, stages every block and commits, prints one JSON line ({"wall_s", "bytes", "blocks"}),
then waits for stdin to close and exits.

Usage: python bench/azure_ceiling.py --connection-string CS --container C --blob NAME --file PATH
       [--block-size 8M] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time

import anyio
import anyio.to_thread
from azure.storage.blob import BlobBlock
from azure.storage.blob.aio import BlobClient, BlobServiceClient, LinearRetry


class Body(io.BytesIO):
    """storage_backends.azure.calls.Body: sent in pieces, kept open for the SDK's retries."""

    def close(self) -> None:
        pass


async def _stage_blocks(blob: BlobClient, args: argparse.Namespace) -> tuple[int, list[str]]:
    """Read the file block by block; up to `concurrency` blocks in flight. Returns (bytes, block IDs)."""
    slots = anyio.Semaphore(args.concurrency)
    ids: list[str] = []
    sent = 0

    async def stage(block: str, body: Body, size: int) -> None:
        try:
            await blob.stage_block(block, body, length=size)
        finally:
            slots.release()

    async with anyio.create_task_group() as tasks:
        with open(args.file, "rb") as source:  # noqa: ASYNC230 - page-cache reads of one block, like a recv
            while data := source.read(args.block_size):
                await slots.acquire()  # the next block is read while `concurrency` blocks are in flight
                ids.append(f"{len(ids):06d}-000000000000")
                tasks.start_soon(stage, ids[-1], Body(data), len(data))
                sent += len(data)
    return sent, ids


async def main(args: argparse.Namespace) -> None:
    retry = LinearRetry(backoff=0.3, random_jitter_range=0.2, retry_total=2)  # type: ignore[arg-type]
    service = BlobServiceClient.from_connection_string(args.connection_string, retry_policy=retry)
    async with service:
        blob = service.get_blob_client(args.container, args.blob)
        warm = service.get_blob_client(args.container, args.blob + ".warm")
        await warm.upload_blob(b"x" * 1024, overwrite=True)
        await warm.delete_blob()
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        start = time.perf_counter()
        sent, ids = await _stage_blocks(blob, args)
        await blob.commit_block_list([BlobBlock(block) for block in ids])
        wall = time.perf_counter() - start
        print(json.dumps({"wall_s": wall, "bytes": sent, "blocks": len(ids)}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the harness has read the meters


def _size(text: str) -> int:
    units = {"K": 10, "M": 20, "G": 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(text[:-1]) << units[text[-1]] if text[-1:] in units else int(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--blob", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--block-size", type=_size, default=8 << 20)
    parser.add_argument("--concurrency", type=int, default=4)
    return parser.parse_args(argv)


if __name__ == "__main__":
    anyio.run(main, parse_args(sys.argv[1:]), backend="asyncio", backend_options={"use_uvloop": True})
