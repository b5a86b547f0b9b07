"""Start or connect to a real Prefect server on loopback (schedules do not run on the ephemeral API)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200


class PrefectServerError(RuntimeError):
    """The Prefect server did not become healthy in time (the message points at its log)."""


@dataclass
class PrefectServer:
    api_url: str
    process: subprocess.Popen | None = None  # None when we connected to a server someone else runs
    log_path: Path | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def is_healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_server(
    *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, log_path: Path | None = None, timeout: float = 180.0,
    env: dict[str, str] | None = None,
) -> PrefectServer:
    """Connect to the server at host:port, or start `prefect server start` there and wait until healthy.

    Raises:
        ValueError: ``host`` is not a loopback address (this command never exposes the server).
        PrefectServerError: the server did not answer within ``timeout`` seconds.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"host {host!r}: only loopback addresses are allowed for a server started here")
    api_url = f"http://{host}:{port}/api"
    if is_healthy(api_url):
        return PrefectServer(api_url)
    prefect_bin = Path(sys.executable).parent / "prefect"
    log_path = log_path or Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")) / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server_env = {**os.environ, **(env or {}), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server_env.pop("PREFECT_API_URL", None)  # the server itself must not try to talk to another API
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(prefect_bin), "server", "start", "--host", host, "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=server_env, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PrefectServerError(f"prefect server exited with {process.returncode}; see {log_path}")
        if is_healthy(api_url):
            return PrefectServer(api_url, process, log_path)
        time.sleep(1.0)
    process.terminate()
    raise PrefectServerError(f"prefect server on {api_url} not healthy after {timeout:.0f} s; see {log_path}")
