"""What the reliability tests share: a fresh key prefix in the session's SeaweedFS bucket, and a fresh blob name
prefix in the session's Azurite container."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.azure_server import Azurite
from tests.e2e.test_azure_e2e import Container
from tests.e2e.test_s3_e2e import Bucket
from tests.s3_server import SeaweedS3


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedS3, seaweedfs_bucket: str) -> Iterator[Bucket]:
    """The session's bucket under a fresh prefix, emptied afterwards (asked for by the S3 cases only)."""
    bucket = Bucket(seaweedfs, seaweedfs_bucket)
    try:
        yield bucket
    finally:
        bucket.empty()
        bucket.client.close()


@pytest.fixture
def azure_container(azurite: Azurite, azurite_container: str) -> Iterator[Container]:
    """The session's Azurite container under a fresh prefix, emptied afterwards (asked for by Azure cases only)."""
    container = Container(azurite, azurite_container)
    try:
        yield container
    finally:
        container.empty()
        container.service.close()
