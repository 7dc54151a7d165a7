"""Small concurrency helpers the object stores share (S3 and Azure)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Sequence

import anyio

from storage_backends.errors import StorageError

__all__ = ["count_bytes", "run_all"]


async def count_bytes(chunks: AsyncIterable[bytes]) -> int:
    """Read `chunks` to the end; how many bytes they held."""
    return sum([len(chunk) async for chunk in chunks])


async def run_all(jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run `jobs` concurrently; the first storage error cancels the rest and is raised as itself."""
    failure: list[StorageError] = []
    async with anyio.create_task_group() as tasks:

        async def run(job: Callable[[], Awaitable[None]]) -> None:
            try:
                await job()
            except StorageError as exc:
                failure.append(exc)
                tasks.cancel_scope.cancel()

        for job in jobs:
            tasks.start_soon(run, job)
    if failure:
        raise failure[0]
