"""Upload a file with tuspy, resumable across runs: stop it (Ctrl-C, a crash, a lost network) and run it again.

Run: python examples/tuspy_resume.py FILE [http://127.0.0.1:8080/files/]
(a server: `tusserver`.) The upload URL is kept in .tus-uploads.db, keyed by the file's size and first bytes;
the next run asks the server how far it got (HEAD) and sends the rest, a chunk at a time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage

CHUNK = 4 * 1024 * 1024


def upload(path: Path, endpoint: str) -> str:
    """Upload `path` (or the rest of it); returns its URL."""
    storage = FileStorage(".tus-uploads.db")  # type: ignore[no-untyped-call]  # (tuspy is partly typed)
    length = path.stat().st_size
    uploader = TusClient(endpoint).uploader(
        str(path),
        chunk_size=CHUNK,
        metadata={"filename": path.name},
        store_url=True,
        url_storage=storage,
        retries=3,
        retry_delay=1,
    )
    if uploader.offset:
        print(f"resuming {uploader.url} at {uploader.offset}", flush=True)
    while uploader.offset < length:
        uploader.upload_chunk()  # type: ignore[no-untyped-call]
        print(f"progress {uploader.offset} {length}", flush=True)
    # Finished: nothing to resume (tuspy would keep the URL).
    storage.remove_item(uploader._get_fingerprint())  # type: ignore[no-untyped-call]
    url = str(uploader.url)
    print(f"done {url}", flush=True)
    return url


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python examples/tuspy_resume.py FILE [ENDPOINT]")
    try:
        upload(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080/files/")
    except KeyboardInterrupt:
        sys.exit("stopped: run again to resume")
