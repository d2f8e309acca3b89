"""One storage interface with two backends: a local directory and S3 (boto3).

Keys are relative POSIX paths (``inputs/sha256/ab/<sha256>.png``); a backend maps them
to files under its root directory or to objects under its bucket and prefix, and never
lets a key escape that root. URIs name stored objects across processes:
``file:///abs/root/<key>`` and ``s3://bucket/prefix/<key>``.

Besides bytes by key, a backend lists what it holds under a key prefix (with sizes and
modification times) and deletes many keys at once — what retention (``facedit gc``) needs —
and S3 signs upload forms whose size S3 itself bounds (:meth:`Storage.presigned_post`).
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from shared.core.errors import InputNotFound, InvalidStorageKey, StorageError, StorageUnavailable

if TYPE_CHECKING:
    from shared.core.config import Settings

MAX_KEY_BYTES = 1024  # the S3 limit, applied to every backend so keys stay portable
PRESIGN_METHODS = ("GET", "PUT", "HEAD", "DELETE")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
_S3_MISSING = {"404", "NoSuchKey", "NotFound"}
_S3_TRANSIENT = {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "503"}
_S3_DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
_TEMP_PREFIX, _TEMP_SUFFIX = ".tmp-", ".part"  # LocalStorage's files being written


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object, as :meth:`Storage.list` finds it."""

    key: str
    size: int
    modified: datetime  # timezone-aware UTC: when the object was last written


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative POSIX path, else raise InvalidStorageKey."""
    if not isinstance(key, str):
        raise InvalidStorageKey(f"storage key must be a str, got {type(key).__name__}")
    if not key:
        raise InvalidStorageKey("storage key is empty")
    problem = _key_problem(key)
    if problem:
        raise InvalidStorageKey(f"storage key {key!r} is invalid: {problem}")
    return key


def _key_problem(key: str) -> str | None:
    for char in key:
        if unicodedata.category(char) == "Cc":
            return f"contains the control character {char!r}"
    if "\\" in key:
        return "contains a backslash (keys use '/' only)"
    if key.startswith("/"):
        return "is an absolute path (keys are relative to the storage root)"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"is longer than {MAX_KEY_BYTES} bytes"
    for segment in key.split("/"):
        if segment == "..":
            return "contains a '..' segment"
        if segment == ".":
            return "contains a '.' segment"
        if segment == "":
            return "contains an empty path segment ('//' or a trailing '/')"
    return None


def input_key(sha256: str, ext: str) -> str:
    """``inputs/sha256/<ab>/<sha256>.<ext>``: the content-addressed key of an input image."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
    extension = ext.lower().removeprefix(".") if isinstance(ext, str) else ext
    if not isinstance(extension, str) or not _EXTENSION.fullmatch(extension):
        raise ValueError(f"ext must be 1-10 letters or digits (like 'png'), got {ext!r}")
    return f"inputs/sha256/{sha256[:2]}/{sha256}.{extension}"


def output_key(batch_id: str, job_id: str, name: str = "result.png") -> str:
    """``outputs/<batch_id>/<job_id>/<name>``: where a job's result and intermediates go."""
    for argument, value in (("batch_id", batch_id), ("job_id", job_id), ("name", name)):
        if not isinstance(value, str) or not value or "/" in value:
            raise ValueError(f"{argument} must be one non-empty path segment, got {value!r}")
    return validate_key(f"outputs/{batch_id}/{job_id}/{name}")


class Storage(ABC):
    """Bytes by key. Every method validates its key first (InvalidStorageKey)."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str | None = None) -> str:
        """Store ``data`` under ``key`` (replacing any object there); return its URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; InputNotFound if there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every object of ``keys`` (missing ones are not an error)."""
        for key in keys:
            self.delete(key)

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a plain string prefix: give
        ``"outputs/"`` for the folder), in no promised order. Objects whose names are not
        valid keys (put there by other tools) are left out."""

    @abstractmethod
    def presigned_url(self, key: str, method: str = "GET", expires: int = 3600) -> str | None:
        """A time-limited HTTP URL for ``method`` on the object, or None if the backend has none."""

    def presigned_post(
        self, key: str, max_bytes: int, expires: int = 3600, content_type: str | None = None
    ) -> dict[str, Any] | None:
        """A time-limited HTML-form upload of the object ``key`` whose size the storage itself
        bounds to 1..``max_bytes`` bytes: ``{"url": …, "fields": {…}}`` (POST the fields,
        then the file as the last field, ``file``), or None if the backend has none."""
        validate_key(key)
        _check_post_args(max_bytes, expires)
        return None

    @abstractmethod
    def uri(self, key: str) -> str:
        """The URI naming ``key`` in this storage (no I/O)."""

    @abstractmethod
    def key_from_uri(self, uri: str) -> str:
        """The key a URI of this storage names; InvalidStorageKey if it lies outside it."""


class LocalStorage(Storage):
    """Files under a root directory; writes are atomic (temp file + ``os.replace``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file a key maps to, after checking that it (symlinks resolved) stays in root."""
        validate_key(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidStorageKey(
                f"storage key {key!r} is invalid: it resolves to {path}, outside the storage "
                f"root {self.root} (through a symlink)"
            )
        return path

    def put(self, key: str, data: bytes, content_type: str | None = None) -> str:
        path = self.path(key)
        try:
            fd, tmp_name = self._temp_file(path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp_name, path)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write storage key {key!r} to {path}: {exc}") from exc
        return self.uri(key)

    @staticmethod
    def _temp_file(directory: Path) -> tuple[int, str]:
        """A new temp file in ``directory`` (created, again if a concurrent
        :meth:`delete_many` removed it as empty in between)."""
        for attempt in range(3):
            directory.mkdir(parents=True, exist_ok=True)
            try:
                return tempfile.mkstemp(dir=directory, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX)
            except FileNotFoundError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise InputNotFound(f"storage key {key!r} not found in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read storage key {key!r} from {path}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete storage key {key!r} at {path}: {exc}") from exc

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove the files, then the folders that became empty (up to the root)."""
        parents = set()
        for key in keys:
            self.delete(key)
            parents.add((self.root / key).parent)
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            while parent != self.root and parent.is_relative_to(self.root):
                try:
                    parent.rmdir()
                except OSError:  # not empty (or already gone): stop climbing
                    break
                parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the folder the prefix names (its last, partial segment filters names).
        folder, _, _ = prefix.rpartition("/")
        start = self.root / folder if folder else self.root
        if folder and (_key_problem(folder) or not start.resolve().is_relative_to(self.root)):
            return
        for directory, subdirs, files in os.walk(start):
            subdirs.sort()
            base = Path(directory).relative_to(self.root).as_posix()
            for name in sorted(files):
                if name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX):
                    continue  # being written (or left by a crash): not an object
                key = name if base == "." else f"{base}/{name}"
                if not key.startswith(prefix) or _key_problem(key):
                    continue
                try:
                    stat = self.path(key).stat()
                except InvalidStorageKey:  # a link out of the root: not ours to list
                    continue
                except OSError:  # removed meanwhile, or a dangling link
                    continue
                modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                yield ObjectInfo(key, stat.st_size, modified)

    def presigned_url(self, key: str, method: str = "GET", expires: int = 3600) -> str | None:
        validate_key(key)
        _check_presign_args(method, expires)
        return None

    def uri(self, key: str) -> str:
        validate_key(key)
        return "file://" + quote(f"{self.root.as_posix()}/{key}")

    def key_from_uri(self, uri: str) -> str:
        if not isinstance(uri, str) or not uri.startswith("file://"):
            raise InvalidStorageKey(f"URI {uri!r} is not a file:// URI of {self.root}")
        path = _path_from_file_url(uri)
        prefix = self.root.as_posix().rstrip("/") + "/"
        if not path.startswith(prefix):
            raise InvalidStorageKey(f"URI {uri!r} lies outside the storage root {self.root}")
        key = validate_key(path[len(prefix) :])
        self.path(key)
        return key


class S3Storage(Storage):
    """Objects in ``bucket`` under ``prefix`` through a boto3 S3 client."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"bucket must be a non-empty bucket name, got {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        self.client = client

    def __repr__(self) -> str:
        return f"S3Storage({self.uri_root!r})"

    @property
    def uri_root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str | None = None) -> str:
        extra = {"ContentType": content_type} if content_type else {}
        with _s3_errors(self, key, "write"):
            self.client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data, **extra)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        with _s3_errors(self, key, "read"):
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            return response["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            with _s3_errors(self, key, "check"):
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except InputNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        with _s3_errors(self, key, "delete"):
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def delete_many(self, keys: Iterable[str]) -> None:
        """DeleteObjects, up to 1,000 keys a request; StorageError if S3 refused any."""
        keys = list(keys)
        object_keys = [self.object_key(key) for key in keys]
        for start in range(0, len(object_keys), _S3_DELETE_BATCH):
            chunk = object_keys[start : start + _S3_DELETE_BATCH]
            with _s3_errors(self, keys[start], "delete"):
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"cannot delete {len(errors)} of {len(chunk)} objects in {self.uri_root}; "
                    f"first: {first.get('Key')!r}: {first.get('Code')}: {first.get('Message')}"
                )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        start = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        with _s3_errors(self, prefix or ".", "list"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start + prefix):
                for item in page.get("Contents") or []:
                    key = item["Key"][len(start) :]
                    if _key_problem(key) or not key:
                        continue
                    modified = item["LastModified"]
                    modified = (modified.replace(tzinfo=UTC) if modified.tzinfo is None
                                else modified.astimezone(UTC))
                    yield ObjectInfo(key, int(item["Size"]), modified)

    def presigned_post(
        self, key: str, max_bytes: int, expires: int = 3600, content_type: str | None = None
    ) -> dict[str, Any] | None:
        """A presigned POST policy: the key is fixed, the size must be within 1..``max_bytes``
        (``content-length-range``, which S3 checks before it stores anything) and, when
        given, the Content-Type is fixed too."""
        _check_post_args(max_bytes, expires)
        fields: dict[str, str] = {}
        conditions: list[Any] = [["content-length-range", 1, max_bytes]]
        if content_type:
            fields["Content-Type"] = content_type
            conditions.append({"Content-Type": content_type})
        with _s3_errors(self, key, "presign"):
            form = self.client.generate_presigned_post(
                self.bucket, self.object_key(key), Fields=fields, Conditions=conditions,
                ExpiresIn=expires,
            )  # fmt: skip
        return {"url": form["url"], "fields": dict(form["fields"])}

    def presigned_url(self, key: str, method: str = "GET", expires: int = 3600) -> str | None:
        method = _check_presign_args(method, expires)
        operation = {
            "GET": "get_object",
            "PUT": "put_object",
            "HEAD": "head_object",
            "DELETE": "delete_object",
        }[method]
        params = {"Bucket": self.bucket, "Key": self.object_key(key)}
        with _s3_errors(self, key, "presign"):
            return self.client.generate_presigned_url(
                operation, Params=params, ExpiresIn=expires, HttpMethod=method
            )

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def key_from_uri(self, uri: str) -> str:
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise InvalidStorageKey(f"URI {uri!r} is not an s3:// URI of {self.uri_root}")
        bucket, _, object_key = uri[len("s3://") :].partition("/")
        if bucket != self.bucket:
            raise InvalidStorageKey(f"URI {uri!r} is not in bucket {self.bucket!r}")
        if self.prefix:
            if not object_key.startswith(self.prefix + "/"):
                raise InvalidStorageKey(f"URI {uri!r} lies outside {self.uri_root}")
            object_key = object_key[len(self.prefix) + 1 :]
        return validate_key(object_key)


def open_storage(
    url: str,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> Storage:
    """A backend for ``file://DIR`` or ``s3://bucket/prefix``.

    S3 credentials come from ``access_key``/``secret_key`` when given, else from boto3's
    usual chain (``AWS_*`` variables, config files, instance roles).
    """
    if not isinstance(url, str):
        raise ValueError(f"storage url must be a str, got {type(url).__name__}")
    if url.startswith("file://"):
        return LocalStorage(_path_from_file_url(url))
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"storage url {url!r} names no bucket (expected s3://bucket/prefix)")
        client = make_s3_client(endpoint_url, region, access_key=access_key, secret_key=secret_key)
        return S3Storage(bucket, prefix, client=client)
    raise ValueError(f"storage url {url!r} must start with file:// or s3://")


def storage_from_settings(settings: Settings | None = None) -> Storage:
    """The storage that ``FACEDIT_STORAGE_URL`` / ``FACEDIT_S3_*`` configure."""
    if settings is None:
        from shared.core.config import get_settings

        settings = get_settings()
    return open_storage(settings.storage_url, settings.s3_endpoint_url, settings.s3_region)


def make_s3_client(
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> Any:
    """A boto3 S3 client set up to work with AWS and S3-compatible servers alike."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=region,
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        # SeaweedFS/MinIO reject or mangle the CRC checksums newer botocore sends by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


def _path_from_file_url(url: str) -> str:
    """The absolute POSIX path of ``file:///abs``, ``file://localhost/abs`` or ``file://rel``."""
    rest = url[len("file://") :]
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    path = unquote(rest)
    if not path:
        raise ValueError(f"storage url {url!r} names no directory")
    return Path(path).expanduser().resolve().as_posix() if not path.startswith("/") else path


def _check_post_args(max_bytes: int, expires: int) -> None:
    _check_expires(expires)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")


def _check_presign_args(method: str, expires: int) -> str:
    upper = method.upper() if isinstance(method, str) else method
    if upper not in PRESIGN_METHODS:
        raise ValueError(f"method must be one of {', '.join(PRESIGN_METHODS)}, got {method!r}")
    _check_expires(expires)
    return upper


def _check_expires(expires: int) -> None:
    if isinstance(expires, bool) or not isinstance(expires, int) or not 1 <= expires <= 604800:
        raise ValueError(f"expires must be 1..604800 seconds, got {expires!r}")


@contextmanager
def _s3_errors(storage: S3Storage, key: str, action: str) -> Iterator[None]:
    """Translate botocore errors into facedit's storage errors."""
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    where = f"storage key {key!r} in {storage.uri_root}"
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"{code or status}: {error.get('Message') or exc}"
        if code in _S3_MISSING or (status == 404 and code != "NoSuchBucket"):
            raise InputNotFound(f"{where} not found") from exc
        if status >= 500 or code in _S3_TRANSIENT:
            raise StorageUnavailable(f"cannot {action} {where}: {detail}") from exc
        raise StorageError(f"cannot {action} {where}: {detail}") from exc
    except (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError) as exc:
        raise StorageUnavailable(f"cannot {action} {where}: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"cannot {action} {where}: {exc}") from exc
