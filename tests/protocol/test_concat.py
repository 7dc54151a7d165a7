"""Concatenation decisions (tusserver.protocol.concat and the concat parts of headers, rules and responses).

Item numbers refer to PROTOCOL.md (items 74-87).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import pytest

from storage_backends.base import StorageRef
from tusserver.protocol import errors
from tusserver.protocol.concat import (
    MAX_PARTS,
    Concat,
    FinalPlan,
    check_part_count,
    final_upload_id,
    parse_concat,
    plan_final,
)
from tusserver.protocol.headers import UPLOAD_ID, CreateRequest, PatchRequest, parse_create
from tusserver.protocol.model import Extension, UploadInfo
from tusserver.protocol.responses import head_response
from tusserver.protocol.rules import plan_create, plan_patch, supported_extensions

UPLOADS = "/files/"
WITH_CONCAT = supported_extensions(can_delete=True, expires=False, can_concatenate=True)
WITHOUT_CONCAT = supported_extensions(can_delete=True, expires=False)


def upload(
    upload_id: str = "abc",
    length: int | None = 5,
    offset: int = 0,
    concat: Literal["partial", "final"] | None = "partial",
    concat_header: str | None = None,
) -> UploadInfo:
    return UploadInfo(
        id=upload_id,
        length=length,
        offset=offset,
        storage=StorageRef(backend="memory", key=upload_id),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        concat=concat,
        concat_header=concat_header,
    )


def create_request(concat: Concat, *, has_body: bool = False) -> CreateRequest:
    return CreateRequest(
        length=None if concat.kind == "final" else 5,
        defer_length=False,
        metadata={},
        content_length=5 if has_body else None,
        has_body=has_body,
        body_is_offset_stream=True,
        concat=concat,
    )


# --- parse_concat (items 74, 76, 83) -----------------------------------------------------------------------------


def test_parse_concat_absent_is_none() -> None:
    assert parse_concat(None, UPLOADS) is None


@pytest.mark.parametrize("value", ["partial", " partial ", "partial\t"], ids=["plain", "spaces", "tab"])
def test_parse_concat_partial(value: str) -> None:
    """Item 74."""
    assert parse_concat(value, UPLOADS) == Concat("partial")


FINAL_PARTS = {
    "absolute": ("final;http://testserver/files/a http://testserver/files/b", ("a", "b")),
    "absolute-other-port": ("final;https://tus.example:8443/files/a", ("a",)),
    "relative-path": ("final;/files/a /files/b", ("a", "b")),
    "bare-id": ("final;a b", ("a", "b")),
    "dot-segments": ("final;./a ../files/b", ("a", "b")),
    "mixed": ("final;http://testserver/files/a /files/b c", ("a", "b", "c")),
    "repeated": ("final;/files/a /files/a", ("a", "a")),
    "extra-spaces": ("final;  /files/a   /files/b  ", ("a", "b")),
    "tab": ("final;/files/a\t/files/b", ("a", "b")),
    "space-before-semicolon": ("final ; /files/a", ("a",)),
    "query-and-fragment": ("final;/files/a?x=1#frag", ("a",)),
    "id-alphabet": ("final;/files/Ab-_9", ("Ab-_9",)),
    # Never fetched: another host's URL only names an id of this server (behind a proxy the public host is unknown).
    "other-host": ("final;http://evil.example/files/a", ("a",)),
}


@pytest.mark.parametrize(("value", "parts"), FINAL_PARTS.values(), ids=FINAL_PARTS.keys())
def test_parse_concat_final_parts(value: str, parts: tuple[str, ...]) -> None:
    """Item 76: absolute and relative URLs of this server's uploads give their ids, in order."""
    concat = parse_concat(value, UPLOADS)
    assert concat is not None
    assert (concat.kind, concat.parts) == ("final", parts)


def test_parse_concat_final_keeps_header_as_received() -> None:
    """Item 76: HEAD echoes the value as received (surrounding whitespace is not part of it)."""
    value = "final;http://testserver/files/a  b"
    assert parse_concat(f" {value} ", UPLOADS) == Concat("final", ("a", "b"), value)


REJECTED = {
    "empty": "",
    "foo": "foo",
    "final-without-semicolon": "final",
    "final-empty-list": "final;",
    "final-blank-list": "final; ",
    "partial-with-list": "partial;/files/a",
    "upper-case-final": "FINAL;/files/a",
    "capitalised-partial": "Partial",
    "colon": "final:/files/a",
    "outside-base-path": "final;/other/a",
    "collection-without-slash": "final;/files",
    "collection": "final;/files/",
    "trailing-slash": "final;/files/a/",
    "nested": "final;/files/a/b",
    "relative-nested": "final;files/a",
    "dot-dot-escape": "final;/files/../etc",
    "dot-dot-to-collection": "final;/files/a/..",
    "encoded-dot-dot": "final;/files/%2e%2e",
    "encoded-dot-dot-nested": "final;/files/%2e%2e/etc",
    "encoded-slash": "final;/files/..%2fetc",
    "absolute-dot-dot": "final;http://evil/../files/a",
    "prefix-lookalike": "final;/filesx/a",
    "dot-dot-id": "final;/files/..",
    "encoded-space": "final;/files/a%20b",
    "id-too-long": "final;/files/" + "x" * 129,
    "one-bad-url": "final;/files/a /other/b",
    # RFC 9110 §5.6.3: only spaces and tabs are whitespace here, not the Unicode kinds str.split() knows.
    "nbsp-separator": "final;/files/a\xa0/files/b",
    "vertical-tab-separator": "final;/files/a\x0b/files/b",
    "nbsp-only-list": "final;\xa0",
    "nbsp-partial": "partial\xa0",
}


@pytest.mark.parametrize("value", REJECTED.values(), ids=REJECTED.keys())
def test_parse_concat_rejects(value: str) -> None:
    """Items 83 and 76: malformed values and URLs that are not an upload of this server."""
    with pytest.raises(errors.InvalidConcatError):
        parse_concat(value, UPLOADS)


def test_parse_concat_resolves_against_mount_path() -> None:
    """Item 76: a mounted server's upload path includes the mount prefix."""
    value = "final;http://testserver/api/uploads/a /api/uploads/b c"
    concat = parse_concat(value, "/api/uploads/")
    assert concat is not None
    assert concat.parts == ("a", "b", "c")


def test_parse_concat_mounted_rejects_unmounted_path() -> None:
    with pytest.raises(errors.InvalidConcatError):
        parse_concat("final;/files/a", "/api/uploads/")


def test_parse_concat_accepts_max_parts() -> None:
    concat = parse_concat("final;" + " ".join(["a"] * MAX_PARTS), UPLOADS)
    assert concat is not None
    assert len(concat.parts) == MAX_PARTS


def test_parse_concat_rejects_more_than_max_parts() -> None:
    with pytest.raises(errors.TooManyPartsError) as raised:
        parse_concat("final;" + " ".join(["a"] * (MAX_PARTS + 1)), UPLOADS)
    assert (raised.value.status, raised.value.code) == (400, "ERR_CONCAT_TOO_MANY_PARTS")


def test_check_part_count_allows_the_limit() -> None:
    check_part_count(100, 100)


def test_check_part_count_over_the_limit_names_it() -> None:
    """Issue 19, defect 7: the `max_concat_parts` cap, with a one-line reason naming the limit."""
    with pytest.raises(errors.TooManyPartsError, match="at most 100 partial uploads; this one lists 101"):
        check_part_count(101, 100)


# --- final_upload_id (item 85: a retried final POST finds its upload) -------------------------------------------


def test_final_upload_id_is_deterministic() -> None:
    assert final_upload_id(["a", "b"], {"name": "eA=="}) == final_upload_id(("a", "b"), {"name": "eA=="})


def test_final_upload_id_is_a_valid_upload_id() -> None:
    assert UPLOAD_ID.fullmatch(final_upload_id(["a"], {}))


@pytest.mark.parametrize(
    ("parts", "metadata"),
    [
        (["b", "a"], {"name": "eA=="}),
        (["a"], {"name": "eA=="}),
        (["a", "b", "b"], {"name": "eA=="}),
        (["ab"], {"name": "eA=="}),
        (["a", "b"], {}),
        (["a", "b"], {"name": "eQ=="}),
        (["a", "b"], {"name": ""}),
        (["a", "b"], {"other": "eA=="}),
        (["a", "b"], {"name": "eA==", "type": "eA=="}),
    ],
    ids=[
        "order", "fewer-parts", "repeated-part", "joined-ids", "no-metadata", "other-value", "empty-value",
        "other-key", "more-metadata",
    ],
)  # fmt: skip
def test_final_upload_id_differs(parts: list[str], metadata: dict[str, str]) -> None:
    """Different lists or metadata are different finals (item 85: several finals from one partial)."""
    assert final_upload_id(parts, metadata) != final_upload_id(["a", "b"], {"name": "eA=="})


# --- plan_final (items 75, 78, 81, 86) ----------------------------------------------------------------------------


def test_plan_final_length_is_sum_of_partials() -> None:
    """Item 75."""
    partials = [upload("a", 5, 5), upload("b", 6, 6), upload("c", 0, 0)]
    assert plan_final(partials, max_size=None) == FinalPlan(length=11, complete=True)


def test_plan_final_same_partial_twice_counts_twice() -> None:
    """Item 85."""
    partial = upload("a", 5, 5)
    assert plan_final([partial, partial], max_size=None) == FinalPlan(length=10, complete=True)


def test_plan_final_with_unfinished_partial_is_incomplete_with_length() -> None:
    """Items 78 and 86: the length is known as soon as every partial's is."""
    assert plan_final([upload("a", 5, 5), upload("b", 6, 2)], max_size=None) == FinalPlan(length=11, complete=False)


def test_plan_final_with_deferred_partial_has_no_length() -> None:
    """Item 78: Upload-Length only once it can be computed."""
    plan = plan_final([upload("a", 5, 5), upload("b", None, 3)], max_size=None)
    assert plan == FinalPlan(length=None, complete=False)


@pytest.mark.parametrize(
    "concat", [None, "final"], ids=["plain-upload", "final-upload"]
)  # fmt: skip
def test_plan_final_rejects_non_partial(concat: Literal["final"] | None) -> None:
    """Item 81: only partial uploads can be joined."""
    with pytest.raises(errors.InvalidConcatError):
        plan_final([upload("a", 5, 5), upload("b", 5, 5, concat=concat)], max_size=None)


def test_plan_final_over_max_size_raises_413() -> None:
    with pytest.raises(errors.MaxSizeExceededError):
        plan_final([upload("a", 5, 5), upload("b", 6, 6)], max_size=10)


def test_plan_final_at_max_size_is_allowed() -> None:
    assert plan_final([upload("a", 5, 5), upload("b", 6, 6)], max_size=11).length == 11


def test_plan_final_deferred_partial_under_max_size_has_no_length_yet() -> None:
    assert plan_final([upload("a", 5, 5), upload("b", None, 5)], max_size=10).length is None


@pytest.mark.parametrize(
    "partials",
    [
        pytest.param([upload("a", 50, 50), upload("b", None, 0)], id="known-lengths-over"),
        pytest.param([upload("a", 5, 5), upload("b", None, 6)], id="deferred-bytes-so-far-over"),
    ],
)
def test_plan_final_with_deferred_partial_counts_known_bytes_against_max_size(partials: list[UploadInfo]) -> None:
    """Issue 19, defect 7: a final's length counts against Tus-Max-Size even before every length is known."""
    with pytest.raises(errors.MaxSizeExceededError):
        plan_final(partials, max_size=10)


def test_plan_final_same_partial_repeated_counts_against_max_size() -> None:
    """Issue 19, defect 7: listing one partial many times multiplies its length."""
    with pytest.raises(errors.MaxSizeExceededError):
        plan_final([upload("a", 4, 4)] * 3, max_size=10)


# --- parse_create, plan_create, plan_patch with Upload-Concat (items 77, 82, 83) -----------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"upload-length": "11"}, {"upload-defer-length": "1"}, {"upload-length": "11", "upload-defer-length": "1"}],
    ids=["length", "defer-length", "both"],
)
def test_parse_create_final_with_length_header_raises(headers: dict[str, str]) -> None:
    """Item 82: the final takes its length from its partials; the client MUST NOT send one."""
    with pytest.raises(errors.InvalidConcatError):
        parse_create(headers, Concat("final", ("a",), "final;a"))


def test_parse_create_final_without_length_is_accepted() -> None:
    concat = Concat("final", ("a",), "final;a")
    create = parse_create({"upload-metadata": "name eA=="}, concat)
    assert (create.length, create.defer_length, create.concat, create.metadata) == (
        None,
        False,
        concat,
        {"name": "eA=="},
    )


def test_parse_create_partial_still_needs_a_length() -> None:
    with pytest.raises(errors.InvalidLengthError):
        parse_create({}, Concat("partial"))


@pytest.mark.parametrize(
    "concat", [Concat("partial"), Concat("final", ("a",), "final;a")], ids=["partial", "final"]
)  # fmt: skip
def test_plan_create_concat_without_extension_raises(concat: Concat) -> None:
    """Item 83: Upload-Concat sent when concatenation is not supported → 400."""
    with pytest.raises(errors.ExtensionUnsupportedError):
        plan_create(create_request(concat), max_size=None, extensions=WITHOUT_CONCAT)


def test_plan_create_final_with_body_raises_403() -> None:
    with pytest.raises(errors.ModifyFinalError):
        plan_create(
            create_request(Concat("final", ("a",), "final;a"), has_body=True), max_size=None, extensions=WITH_CONCAT
        )


def test_plan_create_partial_with_body_reads_it() -> None:
    """Item 87: a partial created with creation-with-upload keeps its body."""
    plan = plan_create(create_request(Concat("partial"), has_body=True), max_size=None, extensions=WITH_CONCAT)
    assert (plan.read_body, plan.body_limit) == (True, 5)


@pytest.mark.parametrize("offset", [0, 5], ids=["pending", "complete"])
def test_plan_patch_final_raises_403(offset: int) -> None:
    """Item 77."""
    final = upload("f", 5, offset, concat="final")
    with pytest.raises(errors.ModifyFinalError):
        plan_patch(final, PatchRequest(offset=offset, length=None, content_length=0), max_size=None)


def test_plan_patch_partial_appends() -> None:
    plan = plan_patch(upload("a", 5, 2), PatchRequest(offset=2, length=None, content_length=3), max_size=None)
    assert plan.body_limit == 3


def test_supported_extensions_with_concatenation_lists_both() -> None:
    assert WITH_CONCAT[-2:] == (Extension.CONCATENATION, Extension.CONCATENATION_UNFINISHED)


def test_supported_extensions_without_concatenation_lists_neither() -> None:
    assert not {Extension.CONCATENATION, Extension.CONCATENATION_UNFINISHED} & set(WITHOUT_CONCAT)


# --- head_response (items 74, 75, 78) ------------------------------------------------------------------------------


def test_head_response_partial_echoes_concat_with_offset() -> None:
    """Item 74."""
    headers = head_response(upload("a", 5, 2, concat_header="partial")).headers
    assert (headers["Upload-Concat"], headers["Upload-Offset"], headers["Upload-Length"]) == ("partial", "2", "5")


def test_head_response_complete_final_has_offset_equal_length() -> None:
    """Item 75."""
    headers = head_response(upload("f", 11, 11, concat="final", concat_header="final;a b")).headers
    assert (headers["Upload-Concat"], headers["Upload-Offset"], headers["Upload-Length"]) == ("final;a b", "11", "11")


def test_head_response_pending_final_has_length_without_offset() -> None:
    """Item 78: no Upload-Offset before the join; Upload-Length as soon as it is known."""
    headers = head_response(upload("f", 11, 0, concat="final", concat_header="final;a b")).headers
    assert "Upload-Offset" not in headers
    assert (headers["Upload-Length"], headers["Upload-Concat"]) == ("11", "final;a b")


def test_head_response_pending_final_with_unknown_length_has_neither() -> None:
    """Item 78: a final's length is never deferred by the client, so no Upload-Defer-Length either."""
    headers = head_response(upload("f", None, 0, concat="final", concat_header="final;a")).headers
    assert not {"Upload-Offset", "Upload-Length", "Upload-Defer-Length"} & set(headers)


def test_head_response_plain_upload_has_no_concat() -> None:
    assert "Upload-Concat" not in head_response(upload("a", 5, 0, concat=None)).headers
