"""Input references: keys and URIs inside the service's own storage, never anything else.

The API fetches no URL: an input is an object already in the configured bucket (an
upload from ``POST /v1/uploads``, or any object there an operator put in), named by key
or by URI. Its existence and size are checked with one HEAD request before a job exists.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from api.errors import RETRY_AFTER_S, ApiError
from shared.core.errors import InvalidStorageKey
from shared.core.storage import LocalStorage, S3Storage, Storage, validate_key

UPLOADS = "uploads"
OUTPUTS = "outputs"
_HEAD_THREADS = 16

RETRY_LATER = {"Retry-After": str(RETRY_AFTER_S)}


def owner_tag(owner: str) -> str:
    """The folder of an owner's uploads: a hash, so owner names stay out of keys."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class InputObject:
    key: str
    uri: str
    size: int


def input_key(storage: Storage, input_uri: str | None, input_key: str | None, where: str) -> str:
    """The storage key an item names; ApiError 422 for anything outside the storage."""
    if (input_uri is None) == (input_key is None):
        raise ApiError(422, "invalid_input", f"{where}: give exactly one of input_uri, input_key")
    if input_key is not None:
        try:
            return validate_key(input_key)
        except InvalidStorageKey as exc:
            raise ApiError(422, "invalid_input_key", f"{where}.input_key: {exc.message}") from exc
    try:
        return storage.key_from_uri(input_uri)
    except (InvalidStorageKey, ValueError) as exc:
        raise ApiError(
            422, "invalid_input_uri",
            f"{where}.input_uri: {input_uri!r} is not an object of this service's storage "
            f"({storage_root(storage)}/...); upload inputs with POST /v1/uploads",
        ) from exc  # fmt: skip


def storage_root(storage: Storage) -> str:
    if isinstance(storage, S3Storage):
        return storage.uri_root
    if isinstance(storage, LocalStorage):
        return f"file://{storage.root.as_posix()}"
    return repr(storage)


def check_owner(key: str, owner: str, owns_batch: Any, where: str) -> None:
    """Uploads and outputs belong to their owner; ApiError 403 for another owner's."""
    parts = key.split("/")
    if parts[0] == UPLOADS and (len(parts) < 3 or parts[1] != owner_tag(owner)):
        raise ApiError(403, "forbidden_input", f"{where}: {key!r} is not one of your uploads")
    if parts[0] == OUTPUTS and (len(parts) < 3 or not owns_batch(parts[1])):
        raise ApiError(403, "forbidden_input", f"{where}: {key!r} is not one of your results")


def object_size(storage: Storage, key: str) -> int | None:
    """The object's size in bytes, or None if it does not exist."""
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        return path.stat().st_size if path.is_file() else None
    if isinstance(storage, S3Storage):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = storage.client.head_object(Bucket=storage.bucket, Key=storage.object_key(key))
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or exc.response.get("Error", {}).get("Code") in ("404", "NotFound"):
                return None
            raise ApiError(503, "storage_unavailable", f"cannot check {key!r}: {exc}",
                           RETRY_LATER) from exc
        except BotoCoreError as exc:
            raise ApiError(503, "storage_unavailable", f"cannot check {key!r}: {exc}",
                           RETRY_LATER) from exc
        return int(head["ContentLength"])
    return len(storage.get(key)) if storage.exists(key) else None


def check_objects(
    storage: Storage, keys: list[tuple[str, str]], max_bytes: int
) -> list[InputObject]:
    """HEAD every ``(where, key)`` (in parallel); ApiError for a missing, empty or too
    large object."""
    if len(keys) == 1:
        sizes = [object_size(storage, keys[0][1])]
    else:
        with ThreadPoolExecutor(min(_HEAD_THREADS, len(keys))) as pool:
            sizes = list(pool.map(lambda item: object_size(storage, item[1]), keys))
    found = []
    for (where, key), size in zip(keys, sizes, strict=True):
        if size is None:
            raise ApiError(422, "input_not_found", f"{where}: no object {key!r} in storage")
        if size == 0:
            raise ApiError(422, "invalid_image", f"{where}: {key!r} is empty (0 bytes)")
        if size > max_bytes:
            raise ApiError(
                422, "image_too_large",
                f"{where}: {key!r} is {size} bytes, over the limit of {max_bytes} "
                "(FACEDIT_MAX_IMAGE_BYTES)",
            )  # fmt: skip
        found.append(InputObject(key, storage.uri(key), size))
    return found
