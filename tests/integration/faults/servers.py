"""Servers the fault tests own, and can stop and start again on the same port with the same
data: a Redis server and a PostgreSQL cluster. (SeaweedFS is
:class:`tests.fixtures.services.SeaweedFS`.)

Nothing here is shared with the other tests' services: stopping one of these breaks only
the fault stack.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.fixtures.services import free_ports, redis_server_binary

START_TIMEOUT_S = 60.0


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def _stop_group(process: subprocess.Popen[bytes], sig: int, timeout_s: float) -> None:
    """Signal a process this module started (it leads its own session) and wait for it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class RedisServer:
    """``redis-server`` on a fixed port. :meth:`stop` saves the data set (``SHUTDOWN SAVE``)
    and :meth:`start` loads it again: an outage, not a data loss (that is :meth:`flushall`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_ports(1)[0]
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.binary = redis_server_binary()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, timeout_s: float = 2.0) -> Any:
        """A redis.Redis on this server."""
        import redis

        return redis.Redis.from_url(
            self.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        import redis

        if self.running:
            return
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--dbfilename", "dump.rdb", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        client = self.client(timeout_s=1.0)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with code {self.process.returncode} while "
                        f"starting; log ({self.log_path}):\n{_tail(self.log_path)}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.RedisError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Save the data set and exit (``SHUTDOWN SAVE``); SIGKILL if that does not work."""
        if not self.running:
            return
        assert self.process is not None
        client = self.client()
        try:
            client.shutdown(save=True)
        except Exception:  # noqa: BLE001 - the server may already be going
            pass
        finally:
            client.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _stop_group(self.process, signal.SIGKILL, 10)

    def flushall(self) -> None:
        """Lose every key (what a Redis without persistence does when it restarts)."""
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def close(self) -> None:
        if self.process is not None:
            _stop_group(self.process, signal.SIGTERM, 5)


def postgres_bin_dir() -> Path:
    """The PostgreSQL binaries the ``pgserver`` package ships (no system install needed)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the fault tests run their own PostgreSQL from the pgserver package, which is not "
            "installed: pip install -e '.[dev]' (or make install-dev)"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "pg_ctl").is_file():
        raise RuntimeError(f"pgserver is installed but has no {bin_dir / 'pg_ctl'}")
    return bin_dir


class PostgresCluster:
    """A PostgreSQL cluster of its own (TCP on 127.0.0.1, a fixed port, trust auth, user
    ``postgres``) that can be stopped and started again on the same port and data.

    PostgreSQL refuses to run as root: as root the cluster runs as the ``pgserver`` system
    user (created by pgserver's own helper, as the ``pgserver`` fixture does)."""

    def __init__(self, directory: Path) -> None:
        self.bin = postgres_bin_dir()
        self.directory = directory
        self.data_dir = directory / "data"
        self.log_path = directory / "postgres.log"
        self.port = free_ports(1)[0]
        self.user: str | None = None
        self._running = False
        if os.geteuid() == 0:
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            entry = ensure_user_exists("pgserver")
            assert entry is not None
            ensure_prefix_permissions(directory)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            self.user = "pgserver"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._running

    def _run(self, *args: str, timeout_s: float = START_TIMEOUT_S) -> None:
        try:
            subprocess.run(
                [str(self.bin / args[0]), *args[1:]], check=True, capture_output=True,
                text=True, user=self.user, timeout=timeout_s,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"{' '.join(args)} failed ({exc.returncode}):\n{exc.stdout}\n{exc.stderr}\n"
                f"log ({self.log_path}):\n{_tail(self.log_path)}"
            ) from exc

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-sync")
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "max_connections": "200",
            # a throwaway cluster: durability is not what is tested
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/integration/faults\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def start(self) -> None:
        if self._running:
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                  "-t", str(int(START_TIMEOUT_S)), "start")
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast``: every session is ended, then the server exits."""
        if not self._running:
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        self._running = False

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` on every connection to ``database``; how many."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        return sum(1 for (done,) in rows if done)

    def close(self) -> None:
        """Stop the server and delete its data (the log stays)."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
