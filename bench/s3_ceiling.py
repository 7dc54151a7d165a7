"""The S3 ceiling: the same bytes uploaded straight to S3 by aiobotocore, as one multipart upload.

Parts of `--part-size` bytes are read from the file one after another and up to `--concurrency` of them are
uploaded at once, which is what tusserver's S3 storage does with a request body (the same part size, the same
parts in flight, the same aiobotocore client configuration, on uvloop as under uvicorn). No HTTP server, no tus:
the cost of "file to S3 multipart upload" in Python.

Protocol with bench/s3.py, so that the harness measures only the upload (like a server it has warmed up):
the process imports, connects (HEAD bucket, a tiny PUT and DELETE), creates the multipart upload, prints
`ready`, waits for a line on stdin, uploads every part and completes the upload, prints one JSON line
({"wall_s", "bytes", "parts"}), then waits for stdin to close and exits.

Usage: python bench/s3_ceiling.py --endpoint URL --bucket B --key K --file PATH [--part-size 8M]
       [--concurrency 4] [--unsigned]   (credentials from the AWS environment variables)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef


def _config(unsigned: bool) -> AioConfig:
    """storage_backends/s3/store.py's client configuration; --unsigned adds UNSIGNED-PAYLOAD (no SHA-256 of bodies)."""
    s3: dict[str, Any] = {"addressing_style": "path"}
    if unsigned:
        s3["payload_signing_enabled"] = False
    return AioConfig(
        s3=s3,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=64,
        connect_timeout=10,
        read_timeout=60,
    )


async def _upload_parts(
    client: Any, args: argparse.Namespace, upload_id: str
) -> tuple[int, list[CompletedPartTypeDef]]:
    """Read the file part by part; up to `concurrency` parts in flight. Returns (bytes, parts for Complete)."""
    slots = anyio.Semaphore(args.concurrency)
    etags: dict[int, str] = {}
    sent = 0

    async def send(number: int, body: bytes) -> None:
        try:
            answer = await client.upload_part(
                Bucket=args.bucket, Key=args.key, UploadId=upload_id, PartNumber=number, Body=body
            )
            etags[number] = answer["ETag"]
        finally:
            slots.release()

    async with anyio.create_task_group() as tasks:
        with open(args.file, "rb") as source:  # noqa: ASYNC230 - page-cache reads of one part, like a recv
            number = 1
            while body := source.read(args.part_size):
                await slots.acquire()  # the next part is read while `concurrency` parts are in flight
                tasks.start_soon(send, number, body)
                sent += len(body)
                number += 1
    return sent, [{"PartNumber": number, "ETag": etags[number]} for number in sorted(etags)]


async def main(args: argparse.Namespace) -> None:
    session = get_session()
    async with session.create_client("s3", endpoint_url=args.endpoint, config=_config(args.unsigned)) as client:
        await client.head_bucket(Bucket=args.bucket)
        await client.put_object(Bucket=args.bucket, Key=args.key + ".warm", Body=b"x" * 1024)
        await client.delete_object(Bucket=args.bucket, Key=args.key + ".warm")
        created = await client.create_multipart_upload(Bucket=args.bucket, Key=args.key)
        upload_id = created["UploadId"]
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        start = time.perf_counter()
        sent, parts = await _upload_parts(client, args, upload_id)
        await client.complete_multipart_upload(
            Bucket=args.bucket, Key=args.key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        wall = time.perf_counter() - start
        print(json.dumps({"wall_s": wall, "bytes": sent, "parts": len(parts)}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the harness has read the meters


def _size(text: str) -> int:
    units = {"K": 10, "M": 20, "G": 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(text[:-1]) << units[text[-1]] if text[-1:] in units else int(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--part-size", type=_size, default=8 << 20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--unsigned", action="store_true", help="UNSIGNED-PAYLOAD: no SHA-256 of the part bodies")
    return parser.parse_args(argv)


if __name__ == "__main__":
    anyio.run(main, parse_args(sys.argv[1:]), backend="asyncio", backend_options={"use_uvloop": True})
