"""Issue 20: `Upload.Storage` says where the bytes are as tusd's stores do (HOOKS.md: filestore, s3store,
azurestore), so receivers written for tusd find them."""

from __future__ import annotations

from types import SimpleNamespace

from storage_backends.base import StorageRef
from tusserver.coordination.hooks.requests import storage_description


def test_local_files_are_described_as_tusds_filestore() -> None:
    storage = SimpleNamespace(root="/srv/uploads")
    ref = StorageRef(backend="file", key="abc")
    assert storage_description(storage, ref) == {"Type": "filestore", "Path": "/srv/uploads/abc"}


def test_s3_objects_are_described_as_tusds_s3store() -> None:
    storage = SimpleNamespace(options=SimpleNamespace(bucket="tus"))
    ref = StorageRef(backend="s3", key="uploads/abc")
    assert storage_description(storage, ref) == {"Type": "s3store", "Bucket": "tus", "Key": "uploads/abc"}


def test_azure_blobs_are_described_as_tusds_azurestore() -> None:
    storage = SimpleNamespace(options=SimpleNamespace(container="tus"))
    ref = StorageRef(backend="azure", key="uploads/abc")
    assert storage_description(storage, ref) == {"Type": "azurestore", "Container": "tus", "Key": "uploads/abc"}


def test_other_stores_say_their_name_and_key() -> None:
    assert storage_description(object(), StorageRef(backend="memory", key="abc")) == {"Type": "memory", "Key": "abc"}
