"""The concatenation extension end to end (PROTOCOL.md items 74-87, issue 5).

- tus-js-client under Node with `parallelUploads: 4`, built like the README's snippet (js/parallel.mjs), uploads
  200 MiB: four partial uploads streamed at once, then the final; the final's stored bytes match by SHA-256.
- curl downloads that final, whole and resumed with `-C -`.
- A final created while a partial is unfinished (concatenation-unfinished) is joined by a HEAD on a new server
  process on the same data directory, after the first one was stopped with SIGTERM; and by a GET alone.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    TUS,
    MiB,
    ServerProcess,
    StartServer,
    create_upload,
    head_offset,
    patch,
    random_file,
    sha256_file,
    target_of,
    tool,
    upload_id,
    wait_until,
)

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).with_name("js")
SIZE = 200 * MiB
PARTS = 4
NODE_TIMEOUT = 120
PARTIAL = {"Upload-Concat": "partial"}
# The restart test's partials: odd lengths, so a join that is off by a byte cannot match by chance.
LENGTH_A = 3 * MiB + 7
LENGTH_B = 5 * MiB + 3
HALF_B = LENGTH_B // 2
ACCESS_LOG = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+)" (?P<status>\d+) [0-9.]+ms upload=(?P<id>\S+)')


# --- tus-js-client parallelUploads (one 200 MiB upload per ASGI server, shared by the tests below) -------------


@dataclass(frozen=True)
class ParallelUpload:
    """What js/parallel.mjs reported, and the server it uploaded to."""

    server: ServerProcess
    report: dict[str, Any]

    @property
    def url(self) -> str:
        url: str = self.report["url"]
        return url

    @property
    def partials(self) -> list[str]:
        partials: list[str] = self.report["partials"]
        return partials

    @property
    def requests(self) -> list[dict[str, Any]]:
        recorded: list[dict[str, Any]] = self.report["requests"]
        return recorded


def run_parallel(server: ServerProcess, source: Path) -> dict[str, Any]:
    """Run js/parallel.mjs against the server; returns its JSON report (see the script's header)."""
    assert (JS_DIR / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` in tests/e2e/js"
    command = [tool("node"), "parallel.mjs", server.url, str(source), str(PARTS)]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=NODE_TIMEOUT, check=False)
    assert done.returncode == 0, f"node exited with {done.returncode}:\n{done.stdout}\n{done.stderr}\n{server.log()}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_file(tmp_path_factory.mktemp("concat-source") / "parallel.bin", SIZE)


@pytest.fixture(scope="module")
def source_sha256(source: Path) -> str:
    return sha256_file(source)


@pytest.fixture(scope="module")
def parallel(module_server: ServerProcess, source: Path) -> Iterator[ParallelUpload]:
    """One parallel upload per server; afterwards the final and its partials are deleted (termination)."""
    upload = ParallelUpload(module_server, run_parallel(module_server, source))
    yield upload
    for url in [upload.url, *upload.partials]:
        response = requests.delete(url, headers=TUS, timeout=IO_TIMEOUT)
        assert response.status_code == 204, (url, response.status_code, response.text)


def test_parallel_uploads_store_the_exact_bytes(
    shared_server: ServerProcess, parallel: ParallelUpload, source_sha256: str
) -> None:
    assert parallel.report.get("done"), parallel.report
    assert parallel.report["size"] == SIZE
    stored = shared_server.stored_path(parallel.url)
    assert stored.stat().st_size == SIZE
    assert sha256_file(stored) == source_sha256


def test_parallel_uploads_send_four_partials_then_the_final(
    shared_server: ServerProcess, parallel: ParallelUpload
) -> None:
    recorded = parallel.requests
    assert all(200 <= request["status"] < 300 for request in recorded), recorded  # no retried failure
    *partial_requests, final = recorded
    creations = [request for request in partial_requests if request["method"] == "POST"]
    patches = [request for request in partial_requests if request["method"] == "PATCH"]
    assert len(recorded) == 2 * PARTS + 1, recorded
    # Four partial uploads, created with Upload-Concat: partial, splitting the file between them.
    assert [request["uploadConcat"] for request in creations] == ["partial"] * PARTS
    assert [request["status"] for request in creations] == [201] * PARTS
    assert sum(int(request["uploadLength"]) for request in creations) == SIZE
    locations = [request["location"] for request in creations]
    assert len(set(locations)) == PARTS
    # One PATCH per partial, the whole part from offset 0, acknowledged in full.
    lengths = {request["location"]: request["uploadLength"] for request in creations}
    assert sorted(request["url"] for request in patches) == sorted(locations)
    assert all(request["uploadOffset"] == "0" and request["status"] == 204 for request in patches), patches
    assert all(request["responseOffset"] == lengths[request["url"]] for request in patches), patches
    # Then the final: sent after every partial finished, naming them (absolute URLs), without Upload-Length.
    assert (final["method"], final["status"], final["uploadLength"]) == ("POST", 201, None)
    assert final["uploadConcat"] == "final;" + " ".join(parallel.partials)
    assert sorted(parallel.partials) == sorted(locations)
    assert final["location"] == parallel.url
    # The server saw the same: its access log has each partial's POST and PATCH, and the final's POST.
    expected = sorted(
        [("PATCH", "204", upload_id(location)) for location in locations]
        + [("POST", "201", upload_id(location)) for location in [*locations, parallel.url]]
    )
    wait_until(lambda: logged(shared_server, expected) == expected, what="the uploads' lines in the access log")


def logged(server: ServerProcess, expected: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(method, status, upload id) of every access-log line about the uploads in `expected`, sorted."""
    ids = {name for _, _, name in expected}
    entries = (match.groupdict() for match in ACCESS_LOG.finditer(server.log()))
    return sorted((entry["method"], entry["status"], entry["id"]) for entry in entries if entry["id"] in ids)


def test_head_on_the_parallel_final_and_its_partials(parallel: ParallelUpload) -> None:
    head = requests.head(parallel.url, headers=TUS, timeout=IO_TIMEOUT)
    assert head.status_code == 200
    # PROTOCOL.md items 75, 78: offset and length present and equal once joined; Upload-Concat as received.
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (str(SIZE), str(SIZE))
    assert head.headers["Upload-Concat"] == "final;" + " ".join(parallel.partials)
    assert head.headers["Upload-Metadata"] == "filename cGFyYWxsZWwuYmlu"  # parallel.bin, sent on the final POST
    total = 0
    for url in parallel.partials:
        partial = requests.head(url, headers=TUS, timeout=IO_TIMEOUT)
        assert partial.status_code == 200
        assert partial.headers["Upload-Concat"] == "partial"
        assert partial.headers["Upload-Offset"] == partial.headers["Upload-Length"]
        assert "Upload-Metadata" not in partial.headers  # tus-js-client sends none for partials
        total += int(partial.headers["Upload-Length"])
    assert total == SIZE


def curl_get(url: str, output: Path, *args: str) -> tuple[int, int]:
    """GET `url` into `output` with curl; returns (status, bytes downloaded)."""
    command = [tool("curl"), "-sS", "--max-time", "60", "-o", str(output), "-w", "%{http_code} %{size_download}"]
    done = subprocess.run([*command, *args, url], capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, f"curl exited with {done.returncode}: {done.stderr}"
    status, size = done.stdout.split()
    return int(status), int(size)


def test_curl_downloads_the_parallel_final(parallel: ParallelUpload, source_sha256: str, tmp_path: Path) -> None:
    output = tmp_path / "download.bin"
    assert curl_get(parallel.url, output) == (200, SIZE)
    assert sha256_file(output) == source_sha256
    output.unlink()


def test_curl_resumes_a_partial_download_of_the_final(
    parallel: ParallelUpload, source_sha256: str, tmp_path: Path
) -> None:
    output = tmp_path / "download.bin"
    cut = 77 * MiB + 12345  # inside the second partial's bytes, not on a read-chunk boundary
    # What an interrupted download leaves behind: the first `cut` bytes.
    assert curl_get(parallel.url, output, "--range", f"0-{cut - 1}") == (206, cut)
    assert output.stat().st_size == cut
    # curl -C - asks for the rest (Range: bytes=cut-) and appends it.
    assert curl_get(parallel.url, output, "-C", "-") == (206, SIZE - cut)
    assert sha256_file(output) == source_sha256
    output.unlink()


# --- concatenation-unfinished: partials that finish after the final was created -------------------------------


def head(url: str) -> requests.Response:
    response = requests.head(url, headers=TUS, timeout=IO_TIMEOUT)
    assert response.status_code == 200, (url, response.status_code, dict(response.headers))
    return response


def create_final(server: ServerProcess, concat: str, *, pending: bool = False) -> str:
    """POST a final upload with `Upload-Concat: final;<concat>`; returns its absolute URL.

    `pending`: some partial is unfinished, so the 201 carries no Upload-Offset (like HEAD, item 78).
    """
    headers = TUS | {"Upload-Concat": f"final;{concat}", "Upload-Metadata": "filename am9pbmVkLmJpbg=="}
    response = requests.post(server.url, headers=headers, timeout=IO_TIMEOUT)
    assert response.status_code == 201, (response.status_code, response.text)
    assert ("Upload-Offset" in response.headers) is not pending, dict(response.headers)
    return requests.compat.urljoin(server.url, response.headers["Location"])


def restart(start_server: StartServer, old: ServerProcess) -> ServerProcess:
    """Stop `old` with SIGTERM, then start a new server process on its data directory.

    The new process gets a work directory and port of its own; its `--data-dir` flag comes last, and the last
    occurrence of a flag is the one the CLI uses.
    """
    assert old.stop() == 0, old.log()
    new = start_server("--data-dir", str(old.data_dir))
    return replace(new, data_dir=old.data_dir)


def test_final_whose_partial_finishes_after_a_restart(start_server: StartServer, tmp_path: Path) -> None:
    first = start_server()
    options = requests.options(first.url, headers=TUS, timeout=IO_TIMEOUT)
    assert {"concatenation", "concatenation-unfinished"} <= set(options.headers["Tus-Extension"].split(","))
    data_a = random_file(tmp_path / "a.bin", LENGTH_A).read_bytes()
    data_b = random_file(tmp_path / "b.bin", LENGTH_B).read_bytes()
    url_a = create_upload(first, LENGTH_A, PARTIAL)
    url_b = create_upload(first, LENGTH_B, PARTIAL)
    assert patch(url_a, 0, data_a).status_code == 204
    assert patch(url_b, 0, data_b[:HALF_B]).status_code == 204
    # PROTOCOL.md item 76: one absolute and one relative URL in the list.
    final = create_final(first, f"{url_a} {target_of(url_b)}", pending=True)

    # PROTOCOL.md items 78, 86: no Upload-Offset before the join, Upload-Length as soon as it is known.
    unfinished = head(final)
    assert "Upload-Offset" not in unfinished.headers
    assert unfinished.headers["Upload-Length"] == str(LENGTH_A + LENGTH_B)
    assert unfinished.headers["Upload-Concat"] == f"final;{url_a} {target_of(url_b)}"
    # Nothing of an unfinished final can be downloaded, and it cannot be written to (item 77).
    assert requests.get(final, headers=TUS, timeout=IO_TIMEOUT).status_code == 409
    assert patch(final, 0, b"x").status_code == 403

    second = restart(start_server, first)
    moved_b = second.origin + target_of(url_b)
    moved_final = second.origin + target_of(final)
    assert "Upload-Offset" not in head(moved_final).headers  # state survived; B is still unfinished
    assert head_offset(moved_b) == HALF_B
    # The client retries the final's POST after the restart (a lost response): the same upload comes back.
    assert create_final(second, f"{url_a} {target_of(url_b)}", pending=True) == moved_final
    assert patch(moved_b, HALF_B, data_b[HALF_B:]).status_code == 204

    joined = head(moved_final)  # this HEAD finds both partials finished and joins them
    total = LENGTH_A + LENGTH_B
    assert (joined.headers["Upload-Offset"], joined.headers["Upload-Length"]) == (str(total), str(total))
    expected = hashlib.sha256(data_a + data_b).hexdigest()
    download = requests.get(moved_final, timeout=IO_TIMEOUT)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == expected
    assert sha256_file(second.stored_path(moved_final)) == expected
    # The partials are unchanged by the join.
    assert hashlib.sha256(requests.get(moved_b, timeout=IO_TIMEOUT).content).hexdigest() == (
        hashlib.sha256(data_b).hexdigest()
    )


def test_get_alone_joins_a_final_whose_partials_finished(shared_server: ServerProcess) -> None:
    server = shared_server
    parts = [b"hello", b" ", b"world"]
    urls = [create_upload(server, len(part), PARTIAL) for part in parts]
    assert patch(urls[0], 0, parts[0]).status_code == 204
    final = create_final(server, " ".join(target_of(url) for url in urls), pending=True)  # relative URLs only
    assert patch(urls[1], 0, parts[1]).status_code == 204
    assert patch(urls[2], 0, parts[2]).status_code == 204
    # No HEAD in between: the GET itself finds every partial finished and joins them.
    download = requests.get(final, timeout=IO_TIMEOUT)
    assert (download.status_code, download.content) == (200, b"hello world")
    joined = head(final)
    assert (joined.headers["Upload-Offset"], joined.headers["Upload-Length"]) == ("11", "11")
