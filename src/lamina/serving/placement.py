"""Which serving process runs an Invoke: a worker's claim, and the way to a warm environment.

Workers hold no IAM state, so the Invokes a worker may serve are the ones it can decide
exactly as the primary would (`claim`): RequestResponse, signed with the root
credentials, of an Active function without reserved concurrency, provisioned
concurrency on the qualifier or SnapStart.

Environments are per process, and the kernel spreads connections, not calls: a client
that opens a new connection for each call (many do) would find a cold process half the
time with two, and a burst spread over two processes can outnumber one's idle
environments while the other's wait. So a process about to start an environment for a
call asks the others first (`elsewhere`): if one has an idle environment of the revision,
the call goes there instead — a forward costs far less than a start. Not for a steady
stream: a forward costs both processes CPU (~200 µs here) and the caller ~0.15 ms, so
past FORWARDS_PER_S forwards of a revision in a second a process starts its own
environment (and the calls after stay), which is how each grows its own under load. A
forwarded call carries `x-lamina-hop`, and is never forwarded again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qs, unquote

from lamina.environments.pool import EnvironmentPool
from lamina.errors import LaminaError
from lamina.functions.model import LATEST, FunctionConfig, State, UpdateStatus
from lamina.functions.registry import FunctionRegistry
from lamina.functions.validation import parse_function_ref
from lamina.protocols.wire import HttpResponse
from lamina.serving.forward import Forwarder
from lamina.serving.shared import SharedCounters, idle_bucket

INVOKE_PATH = re.compile(r"/2015-03-31/functions/([^/]+)/invocations")
HOP = "x-lamina-hop"
FORWARDS_PER_S = 16
KNOWN_MAX = 1024

Headers = list[tuple[str, str]]


class Placement:
    def __init__(
        self,
        root_access_key_id: str,
        registry: FunctionRegistry,
        pool: EnvironmentPool,
        shared: SharedCounters,
        peers: Mapping[int, Forwarder],
        fresh: Callable[[], Awaitable[int]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = f"AWS4-HMAC-SHA256 Credential={root_access_key_id}/"
        self._registry = registry
        self._pool = pool
        self._shared = shared
        self._peers = peers  # slot -> the way to that process's socket
        # Makes the functions here current and says of which generation they are: in a
        # worker, reads them again if they changed; in the primary, always current.
        self.fresh = fresh
        pool.idle_hint = self._hint
        # (path, query) -> what `_servable` said, while the functions stay as they are (the
        # same few URLs are called again and again; resolving one is ~10 µs).
        self._known: dict[tuple[str, str], FunctionConfig | None] = {}
        self._known_at: int | None = None
        # Per revision: when the current second of forwards began, and how many so far.
        self._forwards: dict[str, tuple[float, int]] = {}
        self._clock = clock

    def _hint(self, code_key: str, change: int) -> None:
        self._shared.add_idle(idle_bucket(code_key), change)

    async def claim(self, method: str, path: str, query: str, headers: Headers) -> FunctionConfig | None:
        """The configuration a worker may run this request on, or None: the primary's.

        For an alias that splits traffic the configuration is its primary version's (the
        split is drawn when the call runs); every version it names was checked."""
        if method != "POST":
            return None
        match = INVOKE_PATH.fullmatch(path)
        if match is None:
            return None
        signed_by_root = False
        for name, value in headers:
            lower = name.lower()
            if lower == "authorization":
                signed_by_root = value.startswith(self._root)
            elif lower == "x-amz-invocation-type":
                if value != "RequestResponse":
                    return None
            elif lower == "x-amz-security-token":
                return None
        if not signed_by_root:
            return None
        # The generation the functions here are of (None: unknown, decide afresh).
        generation = await self.fresh() if self.fresh is not None else None
        if generation != self._known_at:
            self._known.clear()
            self._known_at = generation
        key = (path, query)
        if generation is not None and key in self._known:
            return self._known[key]
        qualifier = parse_qs(query).get("Qualifier", [None])[0] if query else None
        try:
            ref = parse_function_ref(unquote(match[1]), qualifier)
        except LaminaError:
            return None  # the primary refuses it, in its words
        found = self._servable(ref.name, ref.qualifier)
        if len(self._known) >= KNOWN_MAX:  # URLs with per-call parts: do not grow
            self._known.clear()
        self._known[key] = found
        return found

    def _servable(self, name: str, qualifier: str | None) -> FunctionConfig | None:
        try:
            fn = self._registry.get(name)
        except LaminaError:
            return None  # unknown here: the primary answers (404, or it is new)
        if fn.reserved_concurrency is not None:
            return None
        if qualifier is not None and qualifier in fn.provisioned:
            return None
        alias = fn.aliases.get(qualifier) if qualifier is not None else None
        versions = [alias.version, *alias.weights] if alias else [qualifier or LATEST]
        configs = []
        for version in versions:
            try:
                configs.append(self._registry.config(name, version))
            except LaminaError:
                return None
        return configs[0] if all(_ready(c) for c in configs) else None

    def elsewhere(self, config: FunctionConfig, headers: Headers) -> Forwarder | None:
        """Another process to run this call on: one with an idle environment of the
        revision, when this one has none idle (the call would start one here), the call
        was not sent here, and this revision has not had its FORWARDS_PER_S this second."""
        if self._pool.has_idle(config):
            return None
        slot = self._shared.idle_elsewhere(idle_bucket(config.code_key))
        if slot is None or slot not in self._peers:
            return None
        if any(name.lower() == HOP for name, _ in headers):
            return None
        key, now = config.code_key, self._clock()
        began, count = self._forwards.get(key, (now, 0))
        if now - began >= 1.0:
            began, count = now, 0
        if count >= FORWARDS_PER_S:
            return None  # a steady stream: worth an environment here
        if len(self._forwards) >= KNOWN_MAX:
            self._forwards.clear()
        self._forwards[key] = (began, count + 1)
        return self._peers[slot]

    async def send(
        self, peer: Forwarder, method: str, path: str, query: str, headers: Headers, body: bytes,
        source_ip: str,
    ) -> HttpResponse:
        return await peer.whole(method, path, query, [*headers, (HOP, "1")], body, source_ip)


def _ready(config: FunctionConfig) -> bool:
    return (
        config.state is State.ACTIVE
        and config.last_update_status is not UpdateStatus.IN_PROGRESS
        and not config.snapshotted
    )
