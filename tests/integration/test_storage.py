"""Both storage backends against the same cases: a local directory and SeaweedFS's S3."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from shared.core.errors import InputNotFound, InvalidStorageKey, StorageError, StorageUnavailable
from shared.core.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    input_key,
    open_storage,
    output_key,
    validate_key,
)
from tests.fixtures.services import S3Server, free_ports

INVALID_KEYS = {
    "empty": "",
    "absolute": "/etc/passwd",
    "dotdot": "../outside.png",
    "inner dotdot": "inputs/../../outside.png",
    "trailing dotdot": "inputs/..",
    "dot segment": "./inputs/a.png",
    "double slash": "inputs//a.png",
    "trailing slash": "inputs/",
    "backslash": "inputs\\a.png",
    "nul": "inputs/a\x00.png",
    "newline": "inputs/a\n.png",
    "carriage return": "inputs/a\r.png",
    "tab": "inputs/a\t.png",
    "del": "inputs/a\x7f.png",
    "c1 control": "inputs/a\x85.png",
    "too long": "a/" * 600,
}


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(f"file://{tmp_path / 'store'}")
    return request.getfixturevalue("s3_storage")


def _http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def test_put_get_exists_delete(storage: Storage) -> None:
    key = "outputs/b1/j1/result.png"
    data = bytes(range(256)) * 3
    assert not storage.exists(key)

    uri = storage.put(key, data, content_type="image/png")

    assert uri == storage.uri(key)
    assert storage.exists(key)
    assert storage.get(key) == data
    assert storage.key_from_uri(uri) == key

    storage.put(key, b"replaced")
    assert storage.get(key) == b"replaced"

    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting a missing key is fine
    assert not storage.exists(key)


def test_empty_object_and_unicode_key(storage: Storage) -> None:
    key = "inputs/photos/Zoë älter.jpg"
    storage.put(key, b"")
    assert storage.exists(key)
    assert storage.get(key) == b""
    assert storage.key_from_uri(storage.uri(key)) == key


def test_missing_key_is_input_not_found(storage: Storage) -> None:
    with pytest.raises(InputNotFound, match="inputs/none.png"):
        storage.get("inputs/none.png")
    assert InputNotFound.code == "input_not_found"


def test_a_prefix_of_a_key_is_not_an_object(storage: Storage) -> None:
    storage.put("outputs/b/j/result.png", b"x")
    assert not storage.exists("outputs/b")
    with pytest.raises(InputNotFound):
        storage.get("outputs/b/j")


@pytest.mark.parametrize("key", list(INVALID_KEYS.values()), ids=list(INVALID_KEYS))
def test_invalid_keys_are_refused_everywhere(storage: Storage, key: str) -> None:
    calls = {
        "put": lambda: storage.put(key, b"x"),
        "get": lambda: storage.get(key),
        "exists": lambda: storage.exists(key),
        "delete": lambda: storage.delete(key),
        "uri": lambda: storage.uri(key),
        "presigned_url": lambda: storage.presigned_url(key),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidStorageKey) as info:
            call()
        message = str(info.value)
        assert "storage key" in message, name
        if key:
            assert repr(key)[:40] in message or repr(key)[1:40] in message, (name, message)
        assert isinstance(info.value, ValueError)


def test_validate_key_explains_the_problem() -> None:
    assert validate_key("inputs/sha256/ab/x.png") == "inputs/sha256/ab/x.png"
    problems = {
        "": "empty",
        "/a": "absolute",
        "a/../b": "'..'",
        "a\\b": "backslash",
        "a\x00b": "control character",
        "a\nb": "control character",
        "a\x7fb": "control character",
    }
    for key, problem in problems.items():
        with pytest.raises(InvalidStorageKey, match=problem):
            validate_key(key)
    with pytest.raises(InvalidStorageKey, match="must be a str"):
        validate_key(b"bytes/key")  # type: ignore[arg-type]


def test_presigned_get_downloads(storage: Storage) -> None:
    key = "outputs/b1/j1/mask.png"
    data = os.urandom(4096)
    storage.put(key, data)
    url = storage.presigned_url(key, "GET", expires=300)
    if isinstance(storage, LocalStorage):
        assert url is None
        return
    assert url is not None and url.startswith("http")
    status, body = _http(url)
    assert status == 200
    assert body == data


def test_presigned_put_uploads(storage: Storage) -> None:
    key = "inputs/uploads/new.png"
    data = os.urandom(2048)
    url = storage.presigned_url(key, "PUT", expires=300)
    if isinstance(storage, LocalStorage):
        assert url is None
        return
    assert url is not None
    status, _ = _http(url, "PUT", data)
    assert status == 200
    assert storage.get(key) == data


def test_presigned_url_arguments_are_checked(storage: Storage) -> None:
    with pytest.raises(ValueError, match="method"):
        storage.presigned_url("a.png", "POST")
    with pytest.raises(ValueError, match="expires"):
        storage.presigned_url("a.png", "GET", expires=0)


def test_key_from_uri_refuses_foreign_uris(storage: Storage, tmp_path: Path) -> None:
    assert storage.key_from_uri(storage.uri("a/b.png")) == "a/b.png"
    foreign = [
        "http://example.com/a/b.png",
        "",
        storage.uri("a/b.png").replace("a/b.png", "../b.png"),
        storage.uri("a/b.png").replace("a/b.png", "a//b.png"),
    ]
    if isinstance(storage, S3Storage):
        foreign += [
            f"s3://other-bucket/{storage.prefix}/a/b.png",
            f"s3://{storage.bucket}/a/b.png",  # outside the prefix
            f"s3://{storage.bucket}/{storage.prefix}x/a/b.png",
            "file:///tmp/a/b.png",
        ]
    else:
        assert isinstance(storage, LocalStorage)
        foreign += [
            (tmp_path / "elsewhere" / "b.png").as_uri(),
            f"file://{storage.root}-sibling/a/b.png",
            f"s3://bucket/{storage.root}/a/b.png",
        ]
    for uri in foreign:
        with pytest.raises(InvalidStorageKey):
            storage.key_from_uri(uri)


def test_local_symlink_escape_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (storage.root / "link").symlink_to(outside, target_is_directory=True)
    (storage.root / "file-link").symlink_to(outside / "secret.txt")

    for key in ("link/secret.txt", "link/new.txt", "file-link"):
        for call in (
            lambda k=key: storage.get(k),
            lambda k=key: storage.put(k, b"overwrite"),
            lambda k=key: storage.exists(k),
            lambda k=key: storage.delete(k),
        ):
            with pytest.raises(InvalidStorageKey, match="outside the storage root"):
                call()
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert not (outside / "new.txt").exists()
    with pytest.raises(InvalidStorageKey):
        storage.key_from_uri(f"file://{storage.root}/link/secret.txt")


def test_local_symlink_inside_root_is_allowed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.put("real/a.png", b"a")
    (storage.root / "alias").symlink_to(storage.root / "real", target_is_directory=True)
    assert storage.get("alias/a.png") == b"a"


def test_local_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    key = output_key("batch", "job")
    storage.put(key, b"first")
    storage.put(key, b"second")
    files = sorted(p.relative_to(storage.root).as_posix() for p in storage.root.rglob("*"))
    assert files == ["outputs", "outputs/batch", "outputs/batch/job", key]
    assert (storage.root / key).read_bytes() == b"second"
    assert storage.uri(key) == (storage.root / key).as_uri()


def test_local_root_from_relative_and_quoted_urls(tmp_path: Path) -> None:
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        relative = open_storage("file://data/store")
    finally:
        os.chdir(previous)
    assert isinstance(relative, LocalStorage)
    assert relative.root == (tmp_path / "data" / "store").resolve()
    spaced = open_storage((tmp_path / "with space").as_uri())
    assert isinstance(spaced, LocalStorage)
    assert spaced.root == (tmp_path / "with space").resolve()
    assert spaced.key_from_uri(spaced.put("a b/c.png", b"c")) == "a b/c.png"


def test_s3_put_records_content_type(s3_storage: S3Storage) -> None:
    s3_storage.put("outputs/b/j/result.png", b"png", content_type="image/png")
    head = s3_storage.client.head_object(
        Bucket=s3_storage.bucket, Key=s3_storage.object_key("outputs/b/j/result.png")
    )
    assert head["ContentType"] == "image/png"
    assert s3_storage.uri("x.png") == f"s3://{s3_storage.bucket}/facedit/x.png"


def test_s3_without_prefix(s3_server: S3Server, s3_bucket: str) -> None:
    storage = open_storage(
        f"s3://{s3_bucket}",
        s3_server.endpoint_url,
        s3_server.region,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )
    assert isinstance(storage, S3Storage)
    uri = storage.put("a.png", b"a")
    assert uri == f"s3://{s3_bucket}/a.png"
    assert storage.key_from_uri(uri) == "a.png"
    assert storage.get("a.png") == b"a"


def test_s3_missing_bucket_is_a_storage_error(s3_server: S3Server) -> None:
    storage = s3_server.storage("no-such-bucket-facedit")
    with pytest.raises(StorageError, match="no-such-bucket-facedit"):
        storage.put("a.png", b"a")
    assert not StorageError.transient


def test_s3_wrong_credentials_are_a_storage_error(s3_server: S3Server, s3_bucket: str) -> None:
    storage = open_storage(
        f"s3://{s3_bucket}",
        s3_server.endpoint_url,
        access_key=s3_server.access_key,
        secret_key="wrong",
    )
    with pytest.raises(StorageError, match="SignatureDoesNotMatch|AccessDenied|403"):
        storage.get("a.png")


def test_s3_unreachable_endpoint_is_transient() -> None:
    port = free_ports(1)[0]  # nothing listens there
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    storage = S3Storage("bucket", "p", client=client)
    for call in (lambda: storage.get("a.png"), lambda: storage.put("a.png", b"a")):
        with pytest.raises(StorageUnavailable, match="a.png") as info:
            call()
        assert info.value.transient


def test_layout_helpers() -> None:
    digest = hashlib.sha256(b"photo").hexdigest()
    assert input_key(digest, "png") == f"inputs/sha256/{digest[:2]}/{digest}.png"
    assert input_key(digest, ".JPG") == f"inputs/sha256/{digest[:2]}/{digest}.jpg"
    assert output_key("b1", "j1") == "outputs/b1/j1/result.png"
    assert output_key("b1", "j1", "mask.png") == "outputs/b1/j1/mask.png"
    for bad_digest in ("abc", digest.upper(), digest[:-1] + "g", None):
        with pytest.raises(ValueError, match="sha256"):
            input_key(bad_digest, "png")  # type: ignore[arg-type]
    for bad_ext in ("", "p/ng", "png\n", "verylongextension"):
        with pytest.raises(ValueError, match="ext"):
            input_key(digest, bad_ext)
    for args in (("", "j"), ("b/c", "j"), ("b", ".."), ("b", "j", "a/b.png"), ("b", "j", "")):
        with pytest.raises(ValueError):
            output_key(*args)


def test_open_storage_dispatch(tmp_path: Path) -> None:
    local = open_storage(f"file://{tmp_path}")
    assert isinstance(local, LocalStorage) and local.root == tmp_path.resolve()
    s3 = open_storage("s3://bucket/some/prefix/", "http://127.0.0.1:1")
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert s3.uri("k.png") == "s3://bucket/some/prefix/k.png"
    for url in ("http://example.com", "s3://", "/plain/path", "file://"):
        with pytest.raises(ValueError, match="storage url"):
            open_storage(url)


# -- listing and deleting many (retention) ------------------------------------------------


def test_list_finds_objects_under_a_prefix(storage: Storage) -> None:
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC) - timedelta(seconds=5)
    stored = {
        "outputs/b1/j1/result.png": b"r" * 10,
        "outputs/b1/j1/mask.png": b"m" * 3,
        "outputs/b2/j2/result.png": b"",
        "uploads/owner/a.png": b"u" * 7,
        "outputsx/not-a-folder.png": b"x",
    }
    for key, data in stored.items():
        storage.put(key, data)
    after = datetime.now(UTC) + timedelta(seconds=5)

    found = {info.key: info for info in storage.list("outputs/")}

    assert set(found) == {k for k in stored if k.startswith("outputs/")}
    for key, info in found.items():
        assert info.size == len(stored[key])
        assert info.modified.tzinfo is not None and before <= info.modified <= after
    assert {i.key for i in storage.list("outputs")} == set(found) | {"outputsx/not-a-folder.png"}
    assert {i.key for i in storage.list()} == set(stored)
    assert {i.key for i in storage.list("outputs/b1/j1/m")} == {"outputs/b1/j1/mask.png"}
    assert list(storage.list("nothing/here/")) == []


def test_delete_many_removes_only_the_given_keys(storage: Storage) -> None:
    keys = [f"outputs/b/j{i}/result.png" for i in range(5)]
    for key in keys:
        storage.put(key, b"x")
    storage.put("uploads/o/keep.png", b"k")

    storage.delete_many([*keys[:3], "outputs/b/never/stored.png"])

    assert sorted(i.key for i in storage.list()) == [*keys[3:], "uploads/o/keep.png"]
    storage.delete_many([])
    with pytest.raises(InvalidStorageKey):
        storage.delete_many(["../escape.png"])


def test_s3_delete_many_takes_more_than_one_request(s3_storage: S3Storage) -> None:
    keys = [f"outputs/b/j/{i:04d}.png" for i in range(1005)]  # DeleteObjects takes 1,000
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3_storage.put(k, b"x"), keys))
    assert sum(1 for _ in s3_storage.list("outputs/")) == 1005  # listed over several pages
    s3_storage.delete_many(keys)
    assert list(s3_storage.list()) == []


def test_s3_list_is_relative_to_the_prefix(s3_server: S3Server, s3_bucket: str) -> None:
    inside = s3_server.storage(s3_bucket, "data")
    outside = s3_server.storage(s3_bucket, "other")
    inside.put("outputs/b/j/result.png", b"1")
    outside.put("outputs/b/j/result.png", b"2")
    assert [i.key for i in inside.list("outputs/")] == ["outputs/b/j/result.png"]
    inside.delete_many(["outputs/b/j/result.png"])
    assert outside.get("outputs/b/j/result.png") == b"2"


def test_local_delete_many_prunes_empty_folders(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.put("outputs/b1/j1/result.png", b"1")
    storage.put("outputs/b1/j1/mask.png", b"1")
    storage.put("outputs/b1/j2/result.png", b"2")
    storage.delete_many(["outputs/b1/j1/result.png", "outputs/b1/j1/mask.png"])
    assert not (storage.root / "outputs/b1/j1").exists()
    assert (storage.root / "outputs/b1/j2/result.png").is_file()
    storage.delete_many(["outputs/b1/j2/result.png"])
    assert sorted(p.name for p in storage.root.iterdir()) == []  # the root itself stays
    storage.put("outputs/b1/j1/result.png", b"again")  # the folders come back
    assert storage.get("outputs/b1/j1/result.png") == b"again"


def test_local_list_skips_files_being_written_and_links_out(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.put("outputs/b/j/result.png", b"1")
    (storage.root / "outputs/b/j/.tmp-abc.part").write_bytes(b"half")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"secret")
    (storage.root / "outputs/b/j/link.png").symlink_to(outside)
    (storage.root / "outputs/b/j/dangling.png").symlink_to(tmp_path / "gone.png")
    assert [i.key for i in storage.list("outputs/")] == ["outputs/b/j/result.png"]
    assert list(storage.list("../")) == []


# -- presigned POST: an upload whose size S3 bounds -------------------------------------------


def _post(form: dict, data: bytes, **changes: str) -> tuple[int, str]:
    import httpx

    answer = httpx.post(form["url"], data={**form["fields"], **changes},
                        files={"file": ("photo.png", data)}, timeout=60)
    return answer.status_code, answer.text


def test_presigned_post_is_s3_only(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    assert storage.presigned_post("uploads/a.png", 100) is None
    with pytest.raises(InvalidStorageKey):
        storage.presigned_post("../a.png", 100)
    for bad in ({"max_bytes": 0}, {"max_bytes": True}, {"expires": 0}):
        with pytest.raises(ValueError):
            storage.presigned_post("uploads/a.png", **{"max_bytes": 100, **bad})


def test_s3_enforces_the_presigned_post_size_range(s3_storage: S3Storage) -> None:
    """SeaweedFS, like AWS, checks the policy's content-length-range itself: a file over
    the limit (or empty) is refused and nothing is stored; one at the limit is stored."""
    key = "uploads/owner/photo.png"
    form = s3_storage.presigned_post(key, 1000, expires=300, content_type="image/png")
    assert form is not None and form["fields"]["key"] == s3_storage.object_key(key)
    assert form["fields"]["Content-Type"] == "image/png"

    status, body = _post(form, b"x" * 1001)
    assert status == 400 and "EntityTooLarge" in body
    assert not s3_storage.exists(key)
    status, body = _post(form, b"x" * 50_000_000)  # far over: refused just the same
    assert status == 400 and "EntityTooLarge" in body
    status, body = _post(form, b"")
    assert status == 400 and "EntityTooSmall" in body
    assert not s3_storage.exists(key)

    status, body = _post(form, b"y" * 1000)
    assert status == 204, body
    assert s3_storage.get(key) == b"y" * 1000
    head = s3_storage.client.head_object(Bucket=s3_storage.bucket,
                                         Key=s3_storage.object_key(key))
    assert head["ContentType"] == "image/png"


def test_s3_presigned_post_fixes_the_key_and_content_type(s3_storage: S3Storage) -> None:
    form = s3_storage.presigned_post("uploads/owner/a.png", 100, 300, "image/png")
    assert form is not None
    other = s3_storage.object_key("uploads/someone-else/a.png")
    status, body = _post(form, b"x", key=other)
    assert status == 403 and "Policy" in body
    status, body = _post(form, b"x", **{"Content-Type": "text/html"})
    assert status == 403 and "Policy" in body
    assert list(s3_storage.list()) == []


def test_s3_takes_the_lifecycle_rules_offered_in_infra(s3_server: S3Server) -> None:
    """infra/s3/lifecycle.json is a configuration a real S3 server accepts as written."""
    import json

    rules = json.loads((Path(__file__).resolve().parents[2] / "infra" / "s3"
                        / "lifecycle.json").read_text("utf-8"))
    bucket = f"lifecycle-{os.getpid()}"
    client = s3_server.storage(bucket).client
    client.create_bucket(Bucket=bucket)
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules)
    applied = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    expiry = {rule["Filter"]["Prefix"]: rule["Expiration"]["Days"] for rule in applied}
    assert expiry == {"uploads/": 7, "outputs/": 30}
