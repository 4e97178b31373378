"""``slopeft serve``: load the base model and the adapters, then serve them over HTTP."""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import os
import signal
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from slopeft.errors import ConfigError


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name could resolve to any interface


def parse_adapters(values: list[str]) -> list[tuple[str, Path]]:
    """``NAME=RUN_DIR`` pairs; a bare ``RUN_DIR`` is named after its folder."""
    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).name, value
        if not name or not path:
            raise ConfigError(f"--adapter takes NAME=RUN_DIR, not {value!r}.")
        pairs.append((name, Path(path)))
    names = [n for n, _ in pairs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"Two adapters are named {', '.join(duplicates)}; give each --adapter its own NAME=.")
    return pairs


def grid_adapters(grid: Path, out: Path | None = None) -> list[tuple[str, Path]]:
    """The finished training runs of a grid (its output folder: ``out``, else the grid's own), named by run id.

    A run counts when its folder holds a completed training record (read as a
    :class:`~slopeft.records.RunRecord`) and its adapter; a run done only in the published results
    (``results/<grid>/``, records without adapters) has nothing to serve and is left out.
    """
    from slopeft.experiments.grid import load_grid
    from slopeft.experiments.runner import grid_status
    from slopeft.records import RECORD, read_record
    from slopeft.training.adapter import ADAPTER_DIR, ADAPTER_META

    loaded = load_grid(grid, out)
    states, _ = grid_status(loaded)
    runs = []
    for state in states:
        run_dir = loaded.runs_dir / state.run.run_id
        if state.state != "done" or not (run_dir / RECORD).is_file() or not (run_dir / ADAPTER_DIR / ADAPTER_META).is_file():
            continue
        record = read_record(run_dir)
        if record.kind == "train" and record.status == "completed":
            runs.append((state.run.run_id, run_dir))
    return runs


def same_base_runs(base: Any, runs: list[tuple[str, Path]]) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(runs trained on ``base``'s shape, the others), by the base fingerprint their adapters carry."""
    from slopeft.training.adapter import ADAPTER_DIR, read_adapter_meta
    from slopeft.training.build import shape_digest

    _, digest = shape_digest(base.config)
    mine, others = [], []
    for name, path in runs:
        meta = read_adapter_meta(path / ADAPTER_DIR)
        (mine if meta["base"]["digest"] == digest else others).append((name, path))
    return mine, others


def api_key_from(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key.strip():
        raise ConfigError(f"--api-key-env {variable}: the environment variable {variable} is unset or empty.")
    return key.strip()


def overhead_setting(value: str) -> int | str | None:
    """``--pass-overhead-tokens``: auto, none, or a number of tokens."""
    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--pass-overhead-tokens takes auto, none or a number of tokens, not {value!r}.") from None


def check_binding(host: str, api_key: str | None) -> None:
    """Refuses to listen beyond this machine without an API key."""
    if not is_loopback(host) and api_key is None:
        raise ConfigError(
            f"Refusing to listen on {host} without an API key: anyone who can reach this address could run and "
            "hot-load adapters. Set a key in an environment variable and pass --api-key-env VAR (clients send "
            "Authorization: Bearer <key>), or listen on 127.0.0.1."
        )


def check_port(host: str, port: int) -> None:
    """Refuses an address that cannot be listened on (taken, unknown, not this machine's) before the
    model loads: uvicorn finds out only after minutes of loading."""
    import socket

    # The socket uvicorn makes for --host: IPv6 for an address with a colon, else IPv4, SO_REUSEADDR.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as err:
            raise ConfigError(f"Cannot listen on {host}: the name does not resolve ({err.strerror}). Pass an "
                              "address of this machine with --host (127.0.0.1 by default).") from None
        except OSError as err:
            raise ConfigError(
                f"Cannot listen on {host}:{port} ({err.strerror}). "
                + ("Another server holds the port (an earlier `slopeft serve`?): stop it or pass another --port."
                   if err.errno == errno.EADDRINUSE else
                   "Pass an address of this machine with --host and a port you may use with --port.")
            ) from None


def serve(
    model: Annotated[str, typer.Option(help="The base model every adapter was trained on (alias, Hub id or folder).")],
    adapter: Annotated[
        list[str] | None,
        typer.Option("--adapter", help="NAME=RUN_DIR of a run to serve (repeatable)."),
    ] = None,
    grid: Annotated[
        Path | None, typer.Option(help="Serve every finished training run of this grid file (named by run id).")
    ] = None,
    grid_out: Annotated[
        Path | None, typer.Option(help="The grid's output folder (default: the grid's out:, else outputs/grids/<name>).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; beyond loopback an API key is required.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API key clients send as a Bearer token.")
    ] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most examples in one batch.")] = 32,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="How long the oldest request waits for a batch to fill.")] = 10.0,
    max_queue: Annotated[int, typer.Option(min=1, help="Most examples waiting; beyond it requests get 429.")] = 1024,
    max_input_tokens: Annotated[int, typer.Option(min=1, help="Longest input in tokens; longer ones get 413.")] = 1024,
    pass_overhead_tokens: Annotated[
        str,
        typer.Option(help="Cost of one more forward pass in padded tokens: a batch is split into passes of similar "
                     "input length when that saves more padding. auto: 32 on CPU, 4096 on GPU; none: never split."),
    ] = "auto",
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto (cuda when there is a GPU).")] = "auto",
    threads: Annotated[
        int | None, typer.Option(min=1, help="Torch CPU threads for the model (default: torch's choice).")
    ] = None,
) -> None:
    """Serve many adapters from one base model: mixed-adapter batches over an HTTP API (also OpenAI-compatible)."""
    if not math.isfinite(max_wait_ms):
        raise ConfigError(f"--max-wait-ms must be a finite number of milliseconds ≥ 0, not {max_wait_ms}.")
    key = api_key_from(api_key_env)
    check_binding(host, key)  # before the imports and minutes of model loading
    check_port(host, port)
    import torch

    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise ConfigError(
            f"slopeft serve needs {err.name}, which is not installed: pip install 'slopeft[serve]'."
        ) from None

    from slopeft.serving.adapters import SharedBase
    from slopeft.serving.api import create_app
    from slopeft.serving.engine import Engine
    from slopeft.serving.metrics import ServingMetrics

    pairs = parse_adapters(adapter or [])
    grid_runs = grid_adapters(grid, grid_out) if grid is not None else []
    if threads:
        torch.set_num_threads(threads)
    if not torch.cuda.is_available():
        from slopeft.config import TrainingConfig
        from slopeft.training.memory import limit_heap_fragmentation

        # Batches of every length fragment glibc's heap as in training; the trainer's CPU setting applies.
        limit_heap_fragmentation(TrainingConfig().malloc_mmap_threshold_kib)
    # PEFT's prompt learning ignores the position ids candidate scoring passes, as `slopeft predict` does.
    warnings.filterwarnings("ignore", message="Position ids are not supported for parameter efficient tuning")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    base = SharedBase(model, device=("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    metrics = ServingMetrics()
    engine = Engine(
        base, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, metrics=metrics,
        pass_overhead_tokens=overhead_setting(pass_overhead_tokens),
    )
    engine.start()
    mine, others = same_base_runs(base, grid_runs)
    if others:
        typer.echo(f"{len(others)} finished runs of {grid} were trained on other base models; not served.")
    for name, path in pairs + mine:
        loaded = engine.load(name, path)
        typer.echo(f"{name}: {loaded.method} on {loaded.task.name}, served {loaded.mode} ({loaded.note})")
    app = create_app(engine, api_key=key, max_input_tokens=max_input_tokens, metrics=metrics)
    from slopeft.serving.engine import MAX_RETRY_AFTER

    # Idle connections stay open longer than any Retry-After. With uvicorn's default of 5 s, a client
    # told to wait longer reuses a pooled connection the server is closing: 2 of 5 load-test runs
    # under OMP_NUM_THREADS=1 ended 4 of 2,000 requests in a ReadError; with this setting 3 of 3 had none.
    config = uvicorn.Config(app, host=host, port=port, log_level="info", timeout_keep_alive=MAX_RETRY_AFTER + 5)
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM (in-flight requests finish, the engine drains), then
    # re-raises the signal to the handler that was installed before it; a no-op one lets the
    # process end with status 0 after a clean drain.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    if not server.started:
        raise ConfigError(f"Could not listen on {host}:{port} (see the message above).")
