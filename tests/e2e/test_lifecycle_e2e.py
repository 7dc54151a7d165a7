"""Issue 21 against the real server, with tuspy and an HTTP hook receiver: the README's whole-file digest snippet
(accepted, `Repr-Digest` on GET); an upload declaring a wrong SHA-256 ends rejected with its reason (the
issue's acceptance); a receiver's `pre-finish` verdict in tusd's JSON, as the README writes it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader.uploader import Uploader

from tests.e2e.helpers import IO_TIMEOUT, MiB, ServerProcess, StartServer, random_file
from tests.e2e.hook_receiver import Answer, HookReceiver

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"


@pytest.fixture
def asgi_server() -> str:
    return "uvicorn"  # the life cycle lives above the ASGI server: one of them is enough here


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[HookReceiver]:
    (tmp_path / "receiver").mkdir()
    receiver = HookReceiver(tmp_path / "receiver")
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def server(start_server: StartServer, receiver: HookReceiver) -> ServerProcess:
    return start_server("--hooks-http", receiver.url, "--hooks-enabled-events", "pre-finish,post-finish")


def readme_block(section: str, language: str) -> str:
    """The first fenced `language` block of the README's `section`."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    assert found is not None
    return found.group(1)


def tuspy_upload(server: ServerProcess, path: Path, checksum: str) -> None:
    with path.open("rb") as file:
        metadata = {"filename": path.name, "checksum": checksum}
        TusClient(server.url).uploader(file_stream=file, metadata=metadata, chunk_size=MiB).upload()


def test_readme_tuspy_snippet_then_a_wrong_sha256(
    server: ServerProcess, receiver: HookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = random_file(tmp_path / "scan.tif", 3 * MiB)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(readme_block("Whole-file digest", "python").replace("http://127.0.0.1:8080/files/", server.url), namespace)
    uploader = namespace["uploader"]
    assert isinstance(uploader, Uploader)
    download = requests.get(str(uploader.url), timeout=IO_TIMEOUT)
    expected = base64.b64encode(hashlib.sha256(source.read_bytes()).digest()).decode()
    assert (download.content == source.read_bytes(), download.headers["Repr-Digest"]) == (True, f"sha-256=:{expected}:")

    wrong = "sha256 " + base64.b64encode(hashlib.sha256(b"another file").digest()).decode()
    with pytest.raises(TusCommunicationError) as refused:
        tuspy_upload(server, source, wrong)
    assert refused.value.status_code == 403
    finished = receiver.wait_for(lambda got: len([r for r in got if r.type == "post-finish"]) == 2, what="finishes")
    rejected = [record for record in finished if record.type == "post-finish"][-1]
    assert rejected.upload["State"] == "rejected"
    assert len(receiver.received("pre-finish")) == 1  # a digest that does not match is not put to the hook
    answer = requests.get(server.url + rejected.upload_id, timeout=IO_TIMEOUT)
    assert answer.status_code == 403
    assert answer.text.startswith(f"ERR_UPLOAD_REJECTED: checksum mismatch: the file's sha256 is {expected}, not ")


def test_receiver_rejects_in_pre_finish_with_the_readme_answer(
    server: ServerProcess, receiver: HookReceiver, tmp_path: Path
) -> None:
    body = readme_block("Upload life cycle", "json")
    assert json.loads(body)["RejectUpload"] is True
    receiver.script({"pre-finish": Answer(body=body)})
    source = random_file(tmp_path / "setup.exe", MiB + 5)
    checksum = "sha256 " + base64.b64encode(hashlib.sha256(source.read_bytes()).digest()).decode()
    with pytest.raises(TusCommunicationError) as refused:
        tuspy_upload(server, source, checksum)
    assert refused.value.status_code == 403
    (asked,) = receiver.received("pre-finish")
    answer = requests.get(server.url + asked.upload_id, timeout=IO_TIMEOUT)
    assert (answer.status_code, answer.text) == (403, "ERR_UPLOAD_REJECTED: executables are not accepted\n")
