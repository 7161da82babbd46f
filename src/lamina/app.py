"""Composition root: builds the services and backends and returns the ASGI app.

The app is a small ASGI dispatcher rather than a Starlette router: the AWS API is
one catch-all endpoint (SigV4 names the service), and the Invoke hot path should not
walk a route table first. `/health`, signed code downloads and the AI gateway are
the only other prefixes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from lamina import __version__
from lamina.audit import AuditEndpoint, AuditLog, AuditRecorder
from lamina.engine import capacity_for, closing, colocation_for, spawner_for
from lamina.environments.deploy_warmer import DeployWarmer
from lamina.environments.interpreters import CUSTOM_RUNTIMES, discover
from lamina.environments.launcher import HostFacts
from lamina.environments.pool import EnvironmentPool
from lamina.environments.provisioned import ProvisionedFleets
from lamina.environments.runtime_lib import lend_runtime_libraries
from lamina.environments.sandbox import Sandbox, interpreter_prefixes, probe_sandbox
from lamina.environments.snapshots import Snapshots
from lamina.environments.spawn import ZygoteSpawner
from lamina.functions.aliases import FunctionSettings
from lamina.functions.model import Function, FunctionConfig
from lamina.functions.registry import FunctionRegistry
from lamina.gateway import Gateway
from lamina.gateway.function_keys import grant_from_environment
from lamina.identity import Identity, identity_metadata, start_identity
from lamina.invocation.concurrency import Concurrency
from lamina.invocation.dispatcher import Dispatcher
from lamina.invocation.event_queue import AsyncEvent, EventQueue
from lamina.invocation.event_queue import metadata as queue_metadata
from lamina.invocation.invoker import Invoker
from lamina.protocols.asgi import Receive, Send, lifespan, read_body, send_json
from lamina.protocols.http_direct import DirectHandler, via_unix_socket
from lamina.protocols.router import AwsRouter, ServiceBinding
from lamina.protocols.wire import HttpResponse
from lamina.services.lambda_.code_signing import CodeSigning
from lamina.services.lambda_.code_urls import CodeUrls
from lamina.services.lambda_.functions_api import FunctionsApi
from lamina.services.lambda_.invoke_api import InvokeApi
from lamina.services.lambda_.permissions import AuthorizedLambda, FunctionPolicies
from lamina.services.lambda_.shapes import Shapes
from lamina.services.logs import LogsService
from lamina.services.operations import OperationTable
from lamina.services.signer import SignerService, iam_access
from lamina.serving.forward import Forwarder
from lamina.serving.placement import Placement
from lamina.serving.shared import SharedCounters
from lamina.serving.supervisor import Workers
from lamina.serving.worker import INTERNAL, worker_socket
from lamina.settings import Settings
from lamina.signing.configs import ConfigStore
from lamina.signing.profiles import ProfileStore
from lamina.storage.blobs import LocalBlobStore
from lamina.storage.credentials import RootCredentials, load_or_create
from lamina.storage.database import open_database, sqlite_url
from lamina.storage.functions import FunctionRepository
from lamina.storage.functions import metadata as functions_metadata
from lamina.telemetry.logstore import LogStore

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("lamina")


@dataclass(slots=True)
class Platform:
    """Everything `lamina serve` runs, started in order and closed in reverse."""

    credentials: RootCredentials
    runtimes: dict[str, str]
    aws: AwsRouter
    pool: EnvironmentPool
    code_urls: CodeUrls
    blobs: LocalBlobStore
    gateway: ASGIApp | None = None
    sandbox: Sandbox | None = None
    audit: AuditEndpoint | None = None
    # What an environment of `name`:`version` is given (its role's credentials, ...),
    # asked for by workers, whose environments start without the primary's IAM.
    function_environment: Callable[[str, str], Awaitable[dict[str, str]]] | None = None
    workers: Workers | None = None
    placement: Placement | None = None  # with workers: which process runs an Invoke
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                await closer()


async def start_platform(settings: Settings) -> Platform:
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    creds = load_or_create(data, settings.access_key_id, settings.secret_access_key)
    engine = await open_database(
        sqlite_url(data / "lamina.db"), functions_metadata, queue_metadata, *identity_metadata(),
        ProfileStore.metadata,
    )  # fmt: skip
    # Logs have a database file of their own: their writes never queue behind the
    # durable enqueue of async events for SQLite's single write lock.
    logs_engine = await open_database(sqlite_url(data / "logs.db"), LogStore.metadata, durable=False)
    # The audit log too: appending to it never waits on the other two.
    audit_engine = await open_database(sqlite_url(data / "audit.db"), AuditLog.metadata)
    closers: list[Callable[[], Awaitable[None]]] = [
        engine.dispose, logs_engine.dispose, audit_engine.dispose,
    ]  # fmt: skip
    # With workers (serving/), the counts every serving process shares; the primary's slot is 0.
    shared = None
    if settings.workers > 1:
        shared = SharedCounters.create(data / "run" / "serving.shm", settings.workers)
        shared.claim(os.getpid())
        closers.insert(0, closing(shared.close))
    audit = AuditLog(audit_engine)
    await audit.start()
    closers.append(audit.close)  # closed late: calls answered during shutdown are kept
    identity = await start_identity(data, engine, creds, settings.account_id, settings.master_key)
    interpreters = await discover(settings.python_interpreters, settings.search_path)
    runtimes = {**interpreters, **{r: "bootstrap (from the package)" for r in CUSTOM_RUNTIMES}}

    logs = LogStore(logs_engine)
    await logs.start()
    closers.append(logs.close)

    shapes = Shapes(settings.region, settings.account_id)
    runtime_lib = lend_runtime_libraries(data / "runtime-lib")
    lent = [runtime_lib] if runtime_lib else []
    sandbox = await probe_sandbox(
        settings.sandbox, runtime_dirs=[*interpreter_prefixes(interpreters.values()), *lent]
    )
    closers.append(sandbox.close)  # runs after the pool's close: its processes are gone
    facts = HostFacts(
        region=settings.region,
        account_id=settings.account_id,
        endpoint=settings.endpoint,
        interpreters=interpreters,
        code_root=data / "code",
        run_root=data / "run",
        path=settings.function_path,
        runtime_lib=runtime_lib,
        sandbox=sandbox,
    )
    snapshots = None
    colocation = colocation_for(settings)
    spawner = spawner_for(
        settings, list(interpreters.values()), sandbox, colocation, facts.run_root
    )
    if isinstance(spawner, ZygoteSpawner):
        spawner.start()  # in the background: start-up does not wait for the zygotes
        closers.append(spawner.close)
        snapshots = Snapshots(spawner, facts, logs, stems=min(settings.stems, 1))
        closers.append(closing(snapshots.close))
    gateway_holder: list[Gateway] = []  # started last; environments start after it
    capacity = capacity_for(settings, shared)
    pool = EnvironmentPool(
        facts,
        logs,
        settings.idle_environment_s,
        spawner=spawner,
        snapshots=snapshots,
        capacity=capacity,
        credentials=lambda config: _function_environment(config, identity, gateway_holder, settings),
        runtime_channel=settings.runtime_channel,
    )
    pool.start()
    closers.append(pool.close)
    fleets = ProvisionedFleets(pool)
    closers.append(fleets.close)

    repo = FunctionRepository(engine, sealer=identity.env_cipher)
    if shared is not None:
        repo.on_commit = shared.bump  # workers read the functions again
    blobs = LocalBlobStore(data / "blobs")
    registry = FunctionRegistry(repo, blobs, data / "code", shapes.arn)
    await registry.load()
    policies = FunctionPolicies(registry, repo.save_policy, shapes)
    policies.load(await repo.load_policies())
    closers.append(registry.close)
    concurrency = Concurrency(settings.concurrency_limit, shared=shared)
    fn_settings = FunctionSettings(registry, repo, concurrency, shapes.arn, provisioned=fleets)
    fn_settings.load()

    warmer = DeployWarmer(pool, settings.prewarm_on_deploy)
    closers.append(warmer.close)
    registry.on_active.append(warmer.activated)

    def retire_stale(fn: Function) -> None:
        warmer.note_change(fn)  # before the old revision's environments go
        wanted = {fn.latest.code_key} | {v.code_key for v in fn.versions.values()}
        pool.retire(fn.name, keep=lambda c: c.code_key in wanted)
        if fn.name not in registry.names():
            warmer.forget(fn.name)
            fleets.remove(fn.name)
            policies.forget(fn.name)

    registry.on_change.append(retire_stale)
    if snapshots is not None:
        registry.on_change.append(
            lambda fn: snapshots.drop(fn.name, keep=lambda c: c.version in fn.versions)
        )

        async def take_snapshot(config: FunctionConfig) -> None:
            await snapshots.ensure(config)

        registry.prepare_version = take_snapshot

    invoker = Invoker(
        pool, concurrency, settings.region, settings.account_id, colocation=colocation
    )
    if colocation is not None:
        closers.append(closing(colocation.close))
    queue = EventQueue(engine)
    queue.start()
    closers.append(queue.close)
    holder: list[Dispatcher] = []
    invoke_api = InvokeApi(registry, invoker, queue, lambda: holder[0])

    def policy(event: AsyncEvent) -> Any:
        try:
            return fn_settings.effective_invoke_config(event.function, event.qualifier)
        except Exception:
            from lamina.functions.model import EventInvokeConfig

            return EventInvokeConfig()

    dispatcher = Dispatcher(
        queue, invoke_api.run_event, policy, settings.async_workers, settings.async_retry_base_s
    )
    holder.append(dispatcher)
    await dispatcher.start()
    closers.append(dispatcher.close)

    code_urls = CodeUrls(settings.endpoint, hashlib.sha256(creds.secret_access_key.encode()).digest())
    profiles = ProfileStore(engine, identity.master, settings.region, settings.account_id)
    await profiles.load()
    signing_configs = ConfigStore(engine, settings.region, settings.account_id)
    await signing_configs.load()
    code_signing = CodeSigning(signing_configs, profiles, registry, shapes, logs.append)
    functions_api = FunctionsApi(
        registry, fn_settings, shapes, lambda: runtimes, lambda c: code_urls.url(c.code_sha256),
        fleets.state, identity.check_execution_role, code_gate=code_signing,
        may_decrypt=identity.may_decrypt,
    )  # fmt: skip
    operations = OperationTable(
        "Lambda",
        {
            **functions_api.operations(),
            **code_signing.operations(),
            "Invoke": invoke_api.invoke,
            "AddPermission": policies.add,
            "RemovePermission": policies.remove,
            "GetPolicy": policies.get,
        },
    )
    lambda_service = AuthorizedLambda(
        operations, identity.authorizer, identity.principal_of, identity.conditions,
        policies, shapes, identity.is_root,
    )  # fmt: skip

    def lookup_secret(access_key_id: str) -> str | None:
        return creds.secret_access_key if access_key_id == creds.access_key_id else None

    signer = SignerService(
        profiles,
        iam_access(
            identity.principal_of, identity.is_root, identity.authorizer, identity.conditions
        ),
        lambda ctx: str(identity.principal_of(ctx).arn),
    )
    router = AwsRouter(
        {
            "lambda": ServiceBinding("lambda", lambda_service),
            "logs": ServiceBinding("logs", LogsService(logs)),
            "signer": ServiceBinding("signer", signer),
            **identity.bindings,
        },
        identity.verifier,
        settings.account_id,
        settings.region,
        observer=AuditRecorder(audit, lambda ctx: str(identity.principal_of(ctx).arn)),
    )
    platform = Platform(
        creds, runtimes, router, pool, code_urls, blobs, closers=closers, sandbox=sandbox,
        audit=AuditEndpoint(audit, creds.secret_access_key),
    )  # fmt: skip
    gateway, platform.gateway = await _start_gateway(settings, engine, creds, lookup_secret, closers)
    gateway_holder.append(gateway)

    async def function_environment(name: str, version: str) -> dict[str, str]:
        config = registry.config(name, version)
        return await _function_environment(config, identity, gateway_holder, settings)

    platform.function_environment = function_environment
    if shared is not None:
        workers = Workers(settings, shared, sandbox.protections.cgroups, creds.secret_access_key)
        logs.flush_others = workers.flush_logs
        platform.workers = workers
        closers.append(workers.close)  # stopped first: their calls may need the rest
        peers = {k: Forwarder(str(worker_socket(data, k))) for k in range(1, settings.workers)}
        closers += [peer.close for peer in peers.values()]
        generation = shared.generation

        async def current() -> int:
            return generation()  # the primary's functions are always current

        platform.placement = Placement(
            creds.access_key_id, registry, pool, shared, peers, fresh=current,
        )  # fmt: skip
    return platform


async def _start_gateway(
    settings: Settings,
    engine: Any,
    creds: RootCredentials,
    lookup_secret: Callable[[str], str | None],
    closers: list[Callable[[], Awaitable[None]]],
) -> tuple[Gateway, ASGIApp]:
    gateway = await Gateway.start(
        settings.config.get("gateway") or {},
        engine,
        lookup_secret,
        settings.config_file,
        env=settings.config_env,
        root_access_key_id=creds.access_key_id,
    )
    closers.append(gateway.close)
    return gateway, gateway.app()


async def _function_environment(
    config: FunctionConfig, identity: Identity, gateway: list[Gateway], settings: Settings
) -> dict[str, str]:
    """What lamina adds to an environment: its role's credentials and, when the function
    opts in, OPENAI_*/ANTHROPIC_* pointing at the gateway with a key of its own."""
    env = await identity.role_environment(config)
    grant = grant_from_environment(config.name, config.environment)
    if grant is not None and gateway:
        env.update(gateway[0].function_environment(grant, settings.endpoint))
    return env


def _announce(settings: Settings, platform: Platform) -> None:
    creds = platform.credentials
    lines = [
        f"lamina {__version__} ready at {settings.endpoint}",
        f"  data dir:              {settings.data_dir.resolve()}",
        f"  AWS_ENDPOINT_URL={settings.endpoint}",
        f"  AWS_ACCESS_KEY_ID={creds.access_key_id}",
    ]
    if creds.generated:
        lines.append(f"  AWS_SECRET_ACCESS_KEY={creds.secret_access_key}")
        lines.append("  (generated now and stored in credentials.json in the data dir; shown once)")
    elif settings.secret_access_key:
        lines.append("  AWS_SECRET_ACCESS_KEY=<from LAMINA_SECRET_ACCESS_KEY>")
    else:
        lines.append("  AWS_SECRET_ACCESS_KEY=<in credentials.json in the data dir>")
    lines.append(f"  AWS_DEFAULT_REGION={settings.region}")
    if settings.workers > 1:
        lines.append(f"  serving processes:     {settings.workers} (LAMINA_WORKERS; docs/workers.md)")
    for runtime, where in platform.runtimes.items():
        lines.append(f"  runtime {runtime:16} {where}")
    if platform.sandbox is not None:
        lines.extend(_sandbox_lines(platform.sandbox.describe()))
    print("\n".join(lines), flush=True)


def _sandbox_lines(described: dict[str, Any]) -> list[str]:
    """Which protections are on and which are off, plainly."""
    on = described.get("on") or {}
    if not described.get("enabled"):
        return ["  sandbox: OFF (LAMINA_SANDBOX=off): functions run unconfined"]
    namespaces = ",".join(on.get("namespaces", [])) or "none"
    lines = [
        f"  sandbox: namespaces {namespaces}; memory {on.get('memory_limit')};"
        f" pids {on.get('pids_limit')}; cpu {on.get('cpu_share')}"
    ]
    lines += [f"  sandbox OFF: {reason}" for reason in described.get("off", [])]
    lines += [f"  sandbox error: {error}" for error in described.get("errors", [])]
    return lines


class LaminaApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.platform: Platform | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http" or self.platform is None:
            return
        path: str = scope["path"]
        # Only on the primary's Unix socket: workers ask there.
        if path.startswith(INTERNAL) and via_unix_socket(scope):
            await self._internal(scope, receive, send, path[len(INTERNAL) :])
        elif path == "/health":
            await send_json(send, 200, self._health())
        elif path.startswith("/_lamina/code/"):
            await self._code(scope, send, path.rsplit("/", 1)[-1])
        elif path == "/_lamina/environments":
            await self._environments(scope, send)
        elif path == "/_lamina/audit" and self.platform.audit is not None:
            await self.platform.audit(scope, send)
        elif self.platform.gateway is not None and path.startswith(("/v1/", "/gateway/")):
            await self.platform.gateway(scope, receive, send)
        else:
            await self.platform.aws(scope, receive, send)

    def direct(self, method: str, path: str) -> tuple[DirectHandler, int] | None:
        """The AWS API's requests, served without ASGI (protocols/http_direct.py); the
        same paths `__call__` gives it, so either way a request lands in one place."""
        platform = self.platform
        if platform is None or path == "/health" or path.startswith("/_lamina/"):
            return None
        if platform.gateway is not None and path.startswith(("/v1/", "/gateway/")):
            return None
        if platform.placement is not None:
            return self._placed, platform.aws.max_body_bytes
        return platform.aws.direct, platform.aws.max_body_bytes

    async def _placed(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
        source_ip: str,
    ) -> HttpResponse:
        """With workers: an Invoke of a revision with no environment here, but an idle one
        in a worker, runs there (serving/placement.py)."""
        platform = self.platform
        assert platform is not None and platform.placement is not None
        placement = platform.placement
        config = await placement.claim(method, path, query, headers)
        if config is not None:
            peer = placement.elsewhere(config, headers)
            if peer is not None:
                return await placement.send(peer, method, path, query, headers, body, source_ip)
        return await platform.aws.direct(method, path, query, headers, body, source_ip)

    def _health(self) -> dict[str, Any]:
        assert self.platform is not None
        return {
            "status": "ok",
            "version": __version__,
            "account_id": self.settings.account_id,
            "region": self.settings.region,
            "runtimes": self.platform.runtimes,
            "sandbox": self.platform.sandbox.describe() if self.platform.sandbox else None,
            **({"workers": self.platform.workers.describe()} if self.platform.workers else {}),
        }

    async def _environments(self, scope: Scope, send: Send) -> None:
        """Live environments with their memory; for the root credentials only."""
        assert self.platform is not None
        if not await self._root_asked(scope, send):
            return
        rows = self.platform.pool.describe()
        if self.platform.workers is not None:
            rows += await self.platform.workers.environments()
        total = {k: sum(int(str(r[k])) for r in rows) for k in ("rss_kb", "pss_kb", "uss_kb")}
        await send_json(send, 200, {"environments": rows, "count": len(rows), "total": total})

    async def _root_asked(self, scope: Scope, send: Send) -> bool:
        """Did the request send the root secret as a bearer token? If not, answer 403."""
        assert self.platform is not None
        secret = self.platform.credentials.secret_access_key
        given = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        if hmac.compare_digest(given, f"Bearer {secret}"):
            return True
        await send_json(send, 403, {"message": "Send the root secret as 'Authorization: Bearer <secret>'."})
        return False

    async def _internal(self, scope: Scope, receive: Receive, send: Send, call: str) -> None:
        """What a worker asks of the primary (serving/worker.py)."""
        assert self.platform is not None
        if not await self._root_asked(scope, send):
            return
        body = await read_body(receive)
        if body is None:
            return
        if call != "function-environment" or self.platform.function_environment is None:
            await send_json(send, 404, {"message": f"No internal call {call!r}."})
            return
        try:
            asked = orjson.loads(body)
            env = await self.platform.function_environment(str(asked["name"]), str(asked["version"]))
        except Exception as exc:
            log.exception("a worker's function-environment call failed")
            await send_json(send, 500, {"message": str(exc)})
            return
        await send_json(send, 200, env)

    async def _code(self, scope: Scope, send: Send, digest: str) -> None:
        assert self.platform is not None
        from urllib.parse import parse_qs

        query = parse_qs(scope.get("query_string", b"").decode())
        ok = self.platform.code_urls.verify(
            digest, query.get("expires", [""])[0], query.get("signature", [""])[0]
        )
        path = self.platform.blobs.path(digest)
        if not ok or not path.exists():
            await send_json(send, 403, {"message": "The code URL is invalid or has expired."})
            return
        data = path.read_bytes()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/zip"), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await lifespan(receive, send, self._start, self._stop, "lamina")

    async def _start(self) -> None:
        self.platform = await start_platform(self.settings)
        _announce(self.settings, self.platform)
        if self.platform.workers is not None:
            # In the background: they start once the primary answers on its socket.
            self.platform.workers.start()

    async def _stop(self) -> None:
        if self.platform is not None:
            await self.platform.close()


def build_app(settings: Settings) -> LaminaApp:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return LaminaApp(settings)
