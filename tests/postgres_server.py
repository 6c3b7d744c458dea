"""Finds a PostgreSQL server for the tests: MAILROOM_TEST_PG_URL, else 127.0.0.1:5432 as postgres,
else a throwaway cluster started with initdb/pg_ctl when the binaries are installed."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg

from dagster_project.settings import PostgresTarget, parse_postgres_url


def _answers(target: PostgresTarget) -> bool:
    try:
        with psycopg.connect(
            host=target.host, port=target.port, user=target.user, password=target.password,
            dbname="postgres", connect_timeout=3,
        ):
            return True
    except psycopg.OperationalError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


@contextmanager
def _throwaway_cluster(bin_dir: Path):
    if os.geteuid() == 0:
        raise RuntimeError("initdb refuses to run as root; set MAILROOM_TEST_PG_URL to a running server")
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-pg-"))
    port = _free_port()
    subprocess.run([bin_dir / "initdb", "-D", workdir / "data", "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([bin_dir / "pg_ctl", "-D", workdir / "data", "-o", f"-p {port} -k {workdir}",
                    "-l", workdir / "log", "-w", "start"], check=True, capture_output=True)
    try:
        yield PostgresTarget(host="127.0.0.1", port=port, user="postgres")
    finally:
        subprocess.run([bin_dir / "pg_ctl", "-D", workdir / "data", "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def postgres_server():
    """Yields a PostgresTarget for a reachable server, or None when there is none."""
    configured = os.environ.get("MAILROOM_TEST_PG_URL")
    target = parse_postgres_url(configured, "MAILROOM_TEST_PG_URL") if configured else PostgresTarget()
    if _answers(target):
        yield target
        return
    bin_dir = _binaries()
    if bin_dir is None or configured:
        yield None
        return
    try:
        with _throwaway_cluster(bin_dir) as started:
            yield started
    except (RuntimeError, subprocess.CalledProcessError):
        yield None


def _admin(target: PostgresTarget):
    return psycopg.connect(
        host=target.host, port=target.port, user=target.user, password=target.password,
        dbname="postgres", autocommit=True,
    )


@contextmanager
def fresh_database(server: PostgresTarget, prefix: str = "mailroom_test", template: str | None = None):
    """A new database on `server` (empty, or a copy of `template`), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin(server) as admin:
        if template:
            # A template must have no sessions; an idle pooled connection of the build may remain.
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", [template])
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PostgresTarget(server.host, server.port, server.user, server.password, name)
    finally:
        with _admin(server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
