"""The service commands' checks that need no service: a missing extra is one line, and bad
arguments exit 2 before any upload. (Against a real stack: tests/integration/service/test_cli.py;
without the extra installed: tests/e2e/test_run_outputs.py.)"""

from __future__ import annotations

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from facedit.cli import app
from facedit.cli.service import ApiClient, needs_service_extra


def test_a_missing_service_module_is_one_line_naming_the_extra(capsys) -> None:
    @needs_service_extra
    def submit() -> None:
        raise ModuleNotFoundError("No module named 'httpx'", name="httpx")

    with pytest.raises(typer.Exit) as exit_info:
        submit()
    assert exit_info.value.exit_code == 1
    error = capsys.readouterr().err.strip()
    assert error.splitlines() == [error]
    assert "`facedit submit` needs the service extra" in error
    assert "pip install 'facedit[service]'" in error


def test_other_missing_modules_are_not_blamed_on_the_extra() -> None:
    @needs_service_extra
    def worker() -> None:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    with pytest.raises(ModuleNotFoundError):
        worker()


@pytest.mark.parametrize("arguments, message", [
    ([], "at least one --edit"),
    (["-e", "smile"], "smile"),
    (["-e", "smile=+1", "--format", "gif"], "format"),
    (["-e", "smile=+1", "--align", "sometimes"], "align"),
])  # fmt: skip
def test_submit_refuses_bad_arguments_before_reaching_the_api(
        tmp_path, monkeypatch, arguments, message) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "photo.png")

    def no_client(*args, **kwargs):
        raise AssertionError("the API was contacted")

    monkeypatch.setattr(ApiClient, "__init__", no_client)
    result = CliRunner().invoke(app, ["submit", str(tmp_path), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_submit_without_images_exits_2(tmp_path) -> None:
    result = CliRunner().invoke(app, ["submit", str(tmp_path), "-e", "smile=+1"])
    assert result.exit_code == 2 and "no images found" in result.output


def test_the_client_waits_out_the_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """429 rate_limited changed nothing: the call is sent again after Retry-After."""
    import httpx

    import facedit.cli.service as service

    answers = iter([
        httpx.Response(429, headers={"Retry-After": "2"},
                       json={"error": {"code": "rate_limited", "message": "slow down"}}),
        httpx.Response(429, headers={"Retry-After": "soon"},
                       json={"error": {"code": "rate_limited", "message": "slow down"}}),
        httpx.Response(200, json={"ok": True}),
    ])  # fmt: skip
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return next(answers)

    slept: list[float] = []
    monkeypatch.setattr(service.time, "sleep", slept.append)
    client = ApiClient("http://api.invalid", "key")
    client.http = httpx.Client(base_url="http://api.invalid", transport=httpx.MockTransport(answer))
    assert client.call("POST", "/v1/jobs", json={}) == {"ok": True}
    assert sent == ["/v1/jobs"] * 3 and slept == [2.0, 1.0]
