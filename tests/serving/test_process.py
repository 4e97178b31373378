"""`slopeft serve` as a process: refusing public addresses without a key, draining on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from slopeft.errors import ConfigError
from slopeft.serving.cli import check_binding, check_port, is_loopback, parse_adapters

REPO = Path(__file__).resolve().parents[2]


def slopeft(*args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """``python -m slopeft.cli ARGS`` with its output in ``log`` (a pipe nobody reads would fill up
    with access-log lines and block the server)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "slopeft.cli", *args], env=environment, stdout=out, stderr=subprocess.STDOUT
        )


def wait_until_up(server: subprocess.Popen, url: str, log: Path) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert server.poll() is None, log.read_text()
        time.sleep(0.2)
    raise AssertionError(f"the server did not come up: {log.read_text()[-2000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_binding_rules():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("myhost")
    check_binding("0.0.0.0", "key")
    with pytest.raises(ConfigError, match="Refusing to listen on 0.0.0.0 without an API key"):
        check_binding("0.0.0.0", None)
    assert parse_adapters(["cb=/runs/a", "/runs/rte-run"]) == [("cb", Path("/runs/a")), ("rte-run", Path("/runs/rte-run"))]
    with pytest.raises(ConfigError, match="Two adapters are named cb"):
        parse_adapters(["cb=/a", "cb=/b"])


def test_an_address_that_cannot_be_listened_on_is_refused_before_the_model_loads():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"Cannot listen on 127.0.0.1:{port} .*pass another --port"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", port)  # free again
    with pytest.raises(ConfigError, match="does not resolve"):
        check_port("no-such-host.invalid", 8000)


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "70000"), ("--port", "0"), ("--max-batch", "0"), ("--max-queue", "0"),
                        ("--max-wait-ms", "-1"), ("--max-wait-ms", "inf"), ("--max-input-tokens", "0"), ("--threads", "0")]
)
def test_serve_refuses_out_of_range_flags_before_loading_anything(cli, flag, value):
    message = cli.fails("serve", "--model", "/nonexistent-model-folder", flag, value)
    assert flag in message


def test_serve_refuses_a_public_address_without_a_key(bert_base, tmp_path):
    log = tmp_path / "serve.log"
    assert slopeft("serve", "--model", bert_base, "--host", "0.0.0.0", log=log).wait(120) == 2
    assert "Refusing to listen on 0.0.0.0 without an API key" in " ".join(log.read_text().split())
    assert slopeft("serve", "--model", bert_base, "--api-key-env", "SLOPEFT_TEST_UNSET_KEY", log=log).wait(120) == 2
    assert "SLOPEFT_TEST_UNSET_KEY" in log.read_text()


def test_sigterm_finishes_requests_in_flight_then_exits_0(serving_runs, opt_base, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    run = serving_runs("opt-lora-sl-en")
    # One example per batch: eight translations take a while, so SIGTERM lands while they are in flight.
    server = slopeft(
        "serve", "--model", opt_base, "--adapter", f"sl-en={run}", "--port", str(port), "--max-batch", "1",
        "--api-key-env", "SLOPEFT_TEST_KEY", env={"SLOPEFT_TEST_KEY": "k"}, log=log,
    )
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": "Bearer k"}
    try:
        wait_until_up(server, url, log)
        answers: list[tuple[int, float]] = []

        def translate(i: int) -> None:
            body = {"model": "sl-en", "prompt": f"Danes je {i}. dan.", "max_tokens": 32}
            response = httpx.post(f"{url}/v1/completions", json=body, headers=headers, timeout=120)
            answers.append((response.status_code, time.monotonic()))

        threads = [threading.Thread(target=translate, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for _ in range(200):  # wait until the server has them all
            text = httpx.get(f"{url}/metrics", headers=headers, timeout=5).text
            queued = [line for line in text.splitlines() if line.startswith("slopeft_queue_depth ")]
            if queued and float(queued[0].split()[1]) >= 5:
                break
            time.sleep(0.02)
        stopped = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(120)
        code = server.wait(120)
    finally:
        if server.poll() is None:
            server.kill()
    text = log.read_text()
    assert code == 0, text
    assert [status for status, _ in answers] == [200] * 8, text
    assert sum(at > stopped for _, at in answers) >= 4  # answered after SIGTERM: drained, not dropped
    assert "Shutting down" in text
