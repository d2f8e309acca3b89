"""api/auth.py: the Authorization header → the API key's owner, or a 401 that says why.
(Over HTTP, on every route: test_bad_input.py's test_bad_keys.)"""

from __future__ import annotations

import pytest

from api.auth import authenticate
from api.errors import ApiError
from shared.jobs import ApiKeys, JobStore


def test_authenticate_says_what_is_wrong_with_a_key(sqlite_store: JobStore) -> None:
    keys = ApiKeys(sqlite_store)
    alice = keys.create("alice", "tests")[1]
    record, carol = keys.create("carol")
    assert keys.revoke(record.id)
    assert authenticate(f"Bearer {alice}", keys) == "alice"
    assert authenticate(f"bearer  {alice} ", keys) == "alice"
    for header, code in (
        (None, "missing_api_key"),
        ("", "missing_api_key"),
        ("Basic abc", "invalid_api_key"),
        ("Bearer", "invalid_api_key"),
        ("Bearer   ", "invalid_api_key"),
        (f"Token {alice}", "invalid_api_key"),
        ("Bearer fdk_000000000000_" + "x" * 43, "invalid_api_key"),
        (f"Bearer {carol}", "api_key_revoked"),
    ):
        with pytest.raises(ApiError) as caught:
            authenticate(header, keys)
        error = caught.value
        assert (error.status, error.code, error.headers) == (
            401, code, {"WWW-Authenticate": "Bearer"}
        ), header
