"""The S3 server fixtures work: a bucket, then an object put and read back, on each server."""

from __future__ import annotations

import boto3
import pytest

from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, SeaweedS3, client_config, create_bucket


@pytest.mark.parametrize("server_fixture", ["seaweedfs", "moto_s3"])
def test_put_and_get_an_object(request: pytest.FixtureRequest, server_fixture: str, s3_bucket_name: str) -> None:
    server: SeaweedS3 | MotoS3 = request.getfixturevalue(server_fixture)
    create_bucket(server.endpoint, s3_bucket_name)
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=client_config(),
    )
    try:
        client.put_object(Bucket=s3_bucket_name, Key="dir/hello.txt", Body=b"hello, s3", ContentType="text/plain")
        got = client.get_object(Bucket=s3_bucket_name, Key="dir/hello.txt")
        assert got["Body"].read() == b"hello, s3"
        assert got["ContentLength"] == 9
        listed = client.list_objects_v2(Bucket=s3_bucket_name, Prefix="dir/")
        assert [entry["Key"] for entry in listed["Contents"]] == ["dir/hello.txt"]
    finally:
        client.close()
