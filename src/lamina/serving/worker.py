"""A worker: a second serving process on the API port that takes Invoke off the primary.

One event loop in Python saturates at ~2,400 warm invokes/s on a 2-core machine
(docs/warm-path.md); more serving processes share the port (SO_REUSEPORT, so the
kernel spreads connections over them) and each runs invocations on environments of
its own. A worker is deliberately narrow. It serves a request itself only when it can
decide it exactly as the primary would:

- an `Invoke` (RequestResponse) signed with the root credentials (root needs no IAM
  evaluation, and the worker holds no IAM state);
- of a function it knows, Active, without reserved concurrency (counted exactly by the
  primary alone), provisioned concurrency on the qualifier or SnapStart (those
  environments are the primary's).

Everything else is forwarded to the primary (serving/forward.py): the control plane,
other signers, async invokes, every other service, the gateway. The functions are read
from the database and read again whenever the primary's generation moves (it bumps it
after every committed change of a function: serving/shared.py); the account's
concurrency and the node's memory budget are counted across processes there too. An
environment's role credentials and gateway key come from the primary, which is where
calls signed with them are checked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import pickle
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from lamina.engine import capacity_for, closing, colocation_for, spawner_for
from lamina.environments.cgroups import CgroupLayout
from lamina.environments.deploy_warmer import DeployWarmer
from lamina.environments.interpreters import discover
from lamina.environments.launcher import HostFacts
from lamina.environments.pool import EnvironmentPool
from lamina.environments.runtime_lib import lend_runtime_libraries
from lamina.environments.sandbox import interpreter_prefixes, probe_sandbox
from lamina.environments.spawn import ZygoteSpawner
from lamina.errors import LaminaError
from lamina.functions.model import FunctionConfig, State
from lamina.functions.registry import FunctionRegistry
from lamina.invocation.concurrency import Concurrency
from lamina.invocation.invoker import Invoker
from lamina.protocols.asgi import lifespan, send_json
from lamina.protocols.http_direct import DirectHandler, via_unix_socket
from lamina.protocols.router import AwsRouter, ServiceBinding
from lamina.protocols.sigv4 import SigV4Verifier
from lamina.protocols.wire import HttpResponse
from lamina.secrets import Envelope, EnvironmentCipher, KeyStore, load_or_create_master_key
from lamina.services.lambda_.invoke_api import InvokeApi
from lamina.services.lambda_.shapes import Shapes
from lamina.services.operations import OperationTable
from lamina.serving.forward import Forwarder
from lamina.serving.placement import Placement
from lamina.serving.shared import SharedCounters
from lamina.settings import Settings
from lamina.storage.blobs import LocalBlobStore
from lamina.storage.credentials import load_or_create
from lamina.storage.database import open_database, sqlite_url
from lamina.storage.functions import FunctionRepository
from lamina.telemetry.logstore import LogStore

Scope = MutableMapping[str, Any]
log = logging.getLogger("lamina.worker")

# What the primary hands a worker, in its environment (serving/supervisor.py).
SETTINGS_VAR = "LAMINA_WORKER_SETTINGS"
SLOT_VAR = "LAMINA_WORKER_SLOT"
CGROUPS_VAR = "LAMINA_WORKER_CGROUPS"

INTERNAL = "/_lamina/internal/"
SOCKET_PATH_MAX = 100
FOLLOW_S = 0.25  # how often a worker looks whether the functions changed
CREDENTIALS_REUSE_S = 15 * 60.0


def primary_socket(data_dir: Path) -> Path:
    """The primary's Unix socket, that workers forward to."""
    return _socket_path(data_dir, "primary.sock")


def worker_socket(data_dir: Path, slot: int) -> Path:
    """A worker's own Unix socket, on which the primary asks it things."""
    return _socket_path(data_dir, f"worker-{slot}.sock")


def _socket_path(data_dir: Path, name: str) -> Path:
    path = data_dir / "run" / name
    if len(str(path)) < SOCKET_PATH_MAX:
        return path
    # A Unix socket's path has room for 107 bytes: a deep data dir gets a short folder
    # of its own in the temporary directory, named after it.
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lamina-{digest}" / name


def encode_settings(settings: Settings) -> str:
    # The gateway's configuration stays with the primary, which alone serves it.
    return base64.b64encode(pickle.dumps(replace(settings, config={}, config_env={}))).decode()


def decode_settings(text: str) -> Settings:
    settings = pickle.loads(base64.b64decode(text))
    if not isinstance(settings, Settings):
        raise ValueError(f"{SETTINGS_VAR} does not hold lamina's settings")
    return settings


def encode_cgroups(layout: CgroupLayout | None) -> str:
    if layout is None:
        return ""
    paths = [str(p) if p is not None else None for p in (layout.memory, layout.pids, layout.cpu)]
    return orjson.dumps({"version": layout.version, "paths": paths}).decode()


def decode_cgroups(text: str) -> CgroupLayout | None:
    if not text:
        return None
    data = orjson.loads(text)
    memory, pids, cpu = (Path(p) if p else None for p in data["paths"])
    return CgroupLayout(int(data["version"]), memory, pids, cpu)


@dataclass(slots=True)
class WorkerPlatform:
    slot: int
    shared: SharedCounters
    forwarder: Forwarder
    registry: FunctionRegistry
    concurrency: Concurrency
    pool: EnvironmentPool
    logs: LogStore
    aws: AwsRouter
    placement: Placement
    warmer: DeployWarmer
    generation: int = -1
    mark: int | None = None  # the function change log's, as of the last read
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                await closer()

    async def follow(self) -> None:
        """Read the functions again soon after each change, not only when a call comes:
        the environments of a revision just replaced or deleted stop then, as the
        primary's do."""
        while True:
            await asyncio.sleep(FOLLOW_S)
            try:
                await self.fresh()
            except Exception:
                log.exception("worker %d could not read the functions again", self.slot)

    async def fresh(self) -> int:
        """Read the functions again if the primary changed any since the last read; the
        generation of what was read."""
        if self.shared.generation() == self.generation:
            return self.generation
        async with self.reloading:
            seen = self.shared.generation()
            if seen == self.generation:
                return seen  # another request reloaded them while this one waited
            # Only the functions changed since the last read: with many functions, reading
            # them all on every change stalled the next call here for as long.
            self.mark, changed = await self.registry.catch_up(self.mark)
            self._settle_reservations(changed)
            for name, was in changed.items():
                self._follow_deploy(name, was)
            self.generation = seen
            return seen

    def _settle_reservations(self, names: Collection[str]) -> None:
        """Take the changed functions' reservations as the primary now has them: all
        given up first, so that no new one is refused over another's old size."""
        for name in names:
            self.concurrency.unreserve(name)
        for name in names:
            with contextlib.suppress(LaminaError):
                reserved = self.registry.get(name).reserved_concurrency
                if reserved is not None:
                    self.concurrency.reserve(name, reserved)

    def _follow_deploy(self, name: str, was: FunctionConfig | None) -> None:
        """What the primary does on a change, for this worker's environments: those of
        revisions no longer wanted stop, and a new $LATEST is pre-warmed as many times as
        this worker ran the one it replaced (environments/deploy_warmer.py)."""
        try:
            fn = self.registry.get(name)
        except LaminaError:
            self.pool.retire(name)  # deleted: none of its environments is wanted
            self.warmer.forget(name)
            return
        if was is not None and was.revision_id != fn.latest.revision_id:
            self.warmer.note_change(fn)  # before the old revision's environments go
        wanted = {fn.latest.code_key} | {v.code_key for v in fn.versions.values()}
        self.pool.retire(name, keep=lambda c: c.code_key in wanted)
        if fn.latest.state is State.ACTIVE:
            self.warmer.activated(fn.latest)


class WorkerApp:
    """The worker's ASGI app and direct routes (protocols/http_direct.py)."""

    def __init__(self, settings: Settings, slot: int, cgroups: CgroupLayout | None) -> None:
        self.settings = settings
        self.slot = slot
        self.cgroups = cgroups
        self.platform: WorkerPlatform | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        platform = self.platform
        if platform is None or scope["type"] != "http":
            return
        if scope["path"].startswith(INTERNAL):
            # Only on the worker's own Unix socket: the primary's questions. Never sent on
            # from the network: the primary's socket takes these from workers alone.
            if via_unix_socket(scope):
                await self._internal(platform, scope, send)
            else:
                await send_json(send, 404, {"message": "Not found."})
            return
        await platform.forwarder.asgi(scope, receive, send)

    def direct(self, method: str, path: str) -> tuple[DirectHandler, int] | None:
        platform = self.platform
        if platform is None or path.startswith(INTERNAL):
            return None
        return self._serve, platform.aws.max_body_bytes

    async def _serve(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> HttpResponse:
        platform = self.platform
        assert platform is not None
        placement = platform.placement
        config = await placement.claim(method, path, query, headers)
        if config is None:
            return await platform.forwarder.whole(method, path, query, headers, body, source_ip)
        peer = placement.elsewhere(config, headers)
        if peer is not None:
            return await placement.send(peer, method, path, query, headers, body, source_ip)
        return await platform.aws.direct(method, path, query, headers, body, source_ip)

    async def _internal(self, platform: WorkerPlatform, scope: Scope, send: Any) -> None:
        path = scope["path"][len(INTERNAL) :]
        if path == "flush-logs":
            await platform.logs.flush()
            if scope.get("query_string") == b"forget=1":
                platform.logs.forget_streams()
            body: Any = {"flushed": True}
        elif path == "environments":
            body = {"environments": platform.pool.describe()}
        else:
            await send_json(send, 404, {"message": f"no such internal call: {path}"})
            return
        await send_json(send, 200, body)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        await lifespan(receive, send, self._start, self._stop, f"lamina worker {self.slot}")

    async def _start(self) -> None:
        self.platform = await start_worker(self.settings, self.slot, self.cgroups)

    async def _stop(self) -> None:
        if self.platform is not None:
            await self.platform.close()


async def start_worker(
    settings: Settings, slot: int, cgroups: CgroupLayout | None
) -> WorkerPlatform:
    data = settings.data_dir.resolve()
    creds = load_or_create(data, settings.access_key_id, settings.secret_access_key)
    shared = SharedCounters.attach(data / "run" / "serving.shm", slot)
    shared.claim(os.getpid())
    closers: list[Callable[[], Awaitable[None]]] = [closing(shared.close)]
    engine = await open_database(sqlite_url(data / "lamina.db"))
    logs_engine = await open_database(sqlite_url(data / "logs.db"), durable=False)
    closers += [engine.dispose, logs_engine.dispose]
    logs = LogStore(logs_engine)
    await logs.start()
    closers.append(logs.close)

    master = load_or_create_master_key(data, settings.master_key)
    cipher = EnvironmentCipher(Envelope(master, KeyStore(engine, master, settings.account_id)))
    shapes = Shapes(settings.region, settings.account_id)
    registry = FunctionRegistry(
        FunctionRepository(engine, sealer=cipher), LocalBlobStore(data / "blobs"), data / "code",
        shapes.arn,
    )  # fmt: skip

    interpreters = await discover(settings.python_interpreters, settings.search_path)
    runtime_lib = lend_runtime_libraries(data / "runtime-lib")
    sandbox = await probe_sandbox(
        settings.sandbox,
        runtime_dirs=[
            *interpreter_prefixes(interpreters.values()),
            *([runtime_lib] if runtime_lib else []),
        ],
        cgroup_layout=cgroups.nested(f"worker-{os.getpid()}") if cgroups is not None else None,
    )
    closers.append(sandbox.close)
    facts = HostFacts(
        region=settings.region, account_id=settings.account_id, endpoint=settings.endpoint,
        interpreters=interpreters, code_root=data / "code", run_root=data / "run",
        path=settings.function_path, runtime_lib=runtime_lib, sandbox=sandbox,
    )  # fmt: skip
    colocation = colocation_for(settings)
    spawner = spawner_for(
        settings, list(interpreters.values()), sandbox, colocation, facts.run_root
    )
    if isinstance(spawner, ZygoteSpawner):
        spawner.start()
        closers.append(spawner.close)

    forwarder = Forwarder(str(primary_socket(data)))
    secret = creds.secret_access_key

    # What the primary gave, per function revision and role, for CREDENTIALS_REUSE_S: the
    # round trip (~0.6 ms, at times ~10) is otherwise on every new environment's start.
    # Environments live at most 11 h and role credentials last 12 h, so reused ones still
    # outlive the environments they are given to.
    given: dict[tuple[str, str, str], tuple[float, dict[str, str]]] = {}

    async def role_environment(config: FunctionConfig) -> dict[str, str]:
        key, now = (config.name, config.revision_id, config.role), time.monotonic()
        found = given.get(key)
        if found is not None and now - found[0] < CREDENTIALS_REUSE_S:
            return dict(found[1])
        fetched = await fetch_role_environment(config)
        if len(given) >= 1024:
            given.clear()
        given[key] = (now, fetched)
        return dict(fetched)

    async def fetch_role_environment(config: FunctionConfig) -> dict[str, str]:
        response = await forwarder.whole(
            "POST", INTERNAL + "function-environment", "",
            [("authorization", f"Bearer {secret}"), ("content-type", "application/json")],
            orjson.dumps({"name": config.name, "version": config.version}), "",
        )  # fmt: skip
        if response.status != 200:
            raise LaminaError(
                f"the primary could not give {config.name}'s environment its credentials: "
                f"{response.body[:300].decode(errors='replace')}",
                code="ServiceException", status=500,
            )  # fmt: skip
        return dict(orjson.loads(response.body))

    pool = EnvironmentPool(
        facts, logs, settings.idle_environment_s, spawner=spawner,
        capacity=capacity_for(settings, shared),
        credentials=role_environment, runtime_channel=settings.runtime_channel,
    )  # fmt: skip
    pool.start()
    closers.append(pool.close)
    concurrency = Concurrency(settings.concurrency_limit, shared=shared)
    invoker = Invoker(
        pool, concurrency, settings.region, settings.account_id, colocation=colocation
    )
    if colocation is not None:
        closers.append(closing(colocation.close))
    invoke_api = InvokeApi(registry, invoker)
    aws = AwsRouter(
        {
            "lambda": ServiceBinding(
                "lambda", OperationTable("Lambda", {"Invoke": invoke_api.invoke})
            )
        },
        SigV4Verifier(lambda key: secret if key == creds.access_key_id else None),
        settings.account_id,
        settings.region,
    )
    closers.append(forwarder.close)
    peers = {k: Forwarder(str(worker_socket(data, k))) for k in range(1, shared.processes) if k != slot}
    for peer in peers.values():
        closers.append(peer.close)
    placement = Placement(
        creds.access_key_id, registry, pool, shared, {0: forwarder, **peers},
    )  # fmt: skip
    warmer = DeployWarmer(pool, settings.prewarm_on_deploy)
    closers.append(warmer.close)
    platform = WorkerPlatform(
        slot=slot,
        shared=shared,
        forwarder=forwarder,
        registry=registry,
        concurrency=concurrency,
        pool=pool,
        logs=logs,
        aws=aws,
        placement=placement,
        warmer=warmer,
        closers=closers,
    )
    platform.placement.fresh = platform.fresh
    await platform.fresh()
    follower = asyncio.get_running_loop().create_task(platform.follow())
    closers.append(_cancel(follower))
    return platform


def _cancel(task: asyncio.Task[None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


def listening_socket(host: str, port: int) -> socket.socket:
    """The API port, shared: every serving process binds it with SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def unix_socket(path: Path) -> socket.socket:
    """A Unix socket only lamina's user may connect to."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    return sock


def main() -> None:
    import uvicorn
    import uvloop

    from lamina.protocols.http_direct import direct_protocol

    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    settings = decode_settings(os.environ[SETTINGS_VAR])
    slot = int(os.environ[SLOT_VAR])
    app = WorkerApp(settings, slot, decode_cgroups(os.environ.get(CGROUPS_VAR, "")))
    config = uvicorn.Config(
        app, loop="uvloop", http=direct_protocol(app), lifespan="on", access_log=False,
        log_level="warning", proxy_headers=False, server_header=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    sockets = [
        listening_socket(settings.host, settings.port),
        unix_socket(worker_socket(settings.data_dir.resolve(), slot)),
    ]
    # The primary's death ends its workers (it started them; SIGTERM: a graceful stop).
    with contextlib.suppress(OSError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        sys.exit(0)  # the primary died before the line above took effect
    uvloop.run(server.serve(sockets=sockets))


if __name__ == "__main__":
    main()
