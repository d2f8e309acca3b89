"""shared/core/webhooks.py: per-owner signing secrets, signatures, the callback URL policy."""

from __future__ import annotations

import pytest

from shared.core.webhooks import WebhookUrlError, check_callback_url, owner_secret, sign, verify


def test_webhook_signatures() -> None:
    secret = owner_secret("server", "alice")
    assert secret != owner_secret("server", "bob") != owner_secret("other", "alice")
    body = b'{"event":"batch.completed"}'
    header = sign(body, secret, timestamp=1_700_000_000)
    assert verify(body, header, secret, now=1_700_000_100)
    assert not verify(body, header, secret, now=1_700_000_000 + 301)  # too old: replayed
    assert not verify(body + b"x", header, secret, now=1_700_000_000)
    assert not verify(body, header.replace("v1=", "v1=0"), secret, now=1_700_000_000)
    assert not verify(body, "garbage", secret)
    with pytest.raises(ValueError):
        owner_secret("", "alice")


def test_callback_url_policy() -> None:
    assert check_callback_url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    assert check_callback_url("http://127.0.0.1:9000/x", {"127.0.0.1"})
    assert check_callback_url("http://devbox:8080/x", {"devbox:8080"})
    for url, allowed in (
        ("http://hooks.example.com/x", ()),
        ("http://devbox:9090/x", {"devbox:8080"}),
        ("gopher://example.com", ()),
        ("https://", ()),
        ("https://u:p@example.com/", ()),
        ("https://example.com:99999/", ()),
        ("https://example.com/" + "a" * 3000, ()),
    ):
        with pytest.raises(WebhookUrlError):
            check_callback_url(url, allowed)
