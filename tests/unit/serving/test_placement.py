"""Placement: which Invokes a worker may claim, and when a call goes to another process.

The functions live in a real FunctionRegistry over SQLite. The primary's registry
writes them; Placement reads them through a second registry over the same database,
loaded with `settle=False` as a worker loads it (it must never activate anything).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.unit.functions.support import FixedClock, MemoryBlobs, arn, handler_zip, new_config

from lamina.environments.launcher import HostFacts
from lamina.environments.pool import EnvironmentPool
from lamina.functions.aliases import FunctionSettings
from lamina.functions.model import LATEST, FunctionConfig, State, UpdateStatus
from lamina.functions.package import inspect
from lamina.functions.registry import FunctionRegistry
from lamina.invocation.concurrency import Concurrency
from lamina.protocols.wire import HttpResponse
from lamina.serving.forward import Forwarder
from lamina.serving.placement import FORWARDS_PER_S, HOP, Placement
from lamina.serving.shared import IDLE_BUCKETS, SharedCounters, idle_bucket
from lamina.storage.database import open_database, sqlite_url
from lamina.storage.functions import FunctionRepository, metadata

ROOT_KEY = "AKIDROOTEXAMPLE"
INVOKE = "/2015-03-31/functions/{}/invocations"
FN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"

Headers = list[tuple[str, str]]


def signed(key: str = ROOT_KEY, *extra: tuple[str, str]) -> Headers:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={key}/20240101/us-east-1/lambda/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    return [("Host", "localhost"), ("Authorization", authorization), *extra]


@dataclass
class Site:
    """The primary's registry and settings, and the worker's read-only view of them."""

    primary: FunctionRegistry
    settings: FunctionSettings
    repo: FunctionRepository
    worker: FunctionRegistry

    async def reload(self) -> None:
        await self.worker.load(settle=False)

    async def create(self, name: str = "fn", versions: int = 1, **changes: Any) -> None:
        """`name` with $LATEST and versions 1..`versions` (new code each), all Active."""
        await self.primary.create(new_config(name, **changes), inspect(handler_zip("v1")), True)
        for n in range(2, versions + 1):
            await self.primary.update_code(name, inspect(handler_zip(f"v{n}")), True, None)
        fn = self.primary.get(name)
        for config in (fn.latest, *fn.versions.values()):
            await self.primary.wait_active(config)
        await self.reload()

    async def store(self, config: FunctionConfig) -> None:
        """Write a configuration as it stands (any state) and let the worker read it."""
        fn = self.primary.get(config.name)
        if config.version == LATEST:
            fn.latest = config
            await self.repo.save_function(fn)
        else:
            fn.versions[config.version] = config
            await self.repo.save_version(config)
        await self.reload()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    engines: list[AsyncEngine] = []
    registries: list[FunctionRegistry] = []

    async def registry(settle: bool) -> tuple[FunctionRegistry, FunctionRepository]:
        engine = await open_database(sqlite_url(tmp_path / "lamina.db"), metadata)
        repo = FunctionRepository(engine)
        # Blobs of its own: only the primary's registry ever reads code (to unpack it).
        opened = FunctionRegistry(repo, MemoryBlobs(), tmp_path / "code", arn, FixedClock())
        await opened.load(settle=settle)
        engines.append(engine)
        registries.append(opened)
        return opened, repo

    primary, repo = await registry(settle=True)
    settings = FunctionSettings(primary, repo, Concurrency(1000), arn, FixedClock())
    worker, _ = await registry(settle=False)
    yield Site(primary, settings, repo, worker)
    for opened in registries:
        await opened.close()
    for engine in engines:
        await engine.dispose()


class NullSink:
    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        pass


class FakePool:
    """The pool as Placement sees it: which revisions have an idle environment here."""

    def __init__(self) -> None:
        self.here: set[str] = set()
        self.idle_hint: Any = None

    def has_idle(self, config: FunctionConfig) -> bool:
        return config.code_key in self.here


def placement(site: Site, pool: Any = None, shared: Any = None, peers: Any = None) -> Placement:
    return Placement(
        ROOT_KEY, site.worker, cast(EnvironmentPool, pool or FakePool()), shared, peers or {}
    )


async def claim(
    place: Placement,
    name: str = "fn",
    query: str = "",
    headers: Headers | None = None,
    method: str = "POST",
) -> FunctionConfig | None:
    return await place.claim(
        method, INVOKE.format(name), query, signed() if headers is None else headers
    )


# --------------------------------------------------------------------- claim: the request


async def test_a_root_signed_request_response_invoke_is_claimed(site: Site) -> None:
    await site.create()
    place = placement(site)
    assert await claim(place) == site.worker.get("fn").latest
    explicit = signed(ROOT_KEY, ("X-Amz-Invocation-Type", "RequestResponse"))
    assert await claim(place, headers=explicit) == site.worker.get("fn").latest
    lower = [(name.lower(), value) for name, value in signed()]
    assert await claim(place, headers=lower) is not None  # header names in any case


@pytest.mark.parametrize("invocation_type", ["Event", "DryRun"])
async def test_other_invocation_types_are_the_primarys(site: Site, invocation_type: str) -> None:
    await site.create()
    headers = signed(ROOT_KEY, ("x-amz-invocation-type", invocation_type))
    assert await claim(placement(site), headers=headers) is None


async def test_only_the_root_credentials_without_a_session_token(site: Site) -> None:
    await site.create()
    place = placement(site)
    assert await claim(place, headers=signed("AKIDSOMEONEELSE")) is None
    assert await claim(place, headers=signed(ROOT_KEY + "X")) is None  # the key, not a prefix
    assert await claim(place, headers=[("Host", "localhost")]) is None  # unsigned
    root_value = signed()[1][1]
    assert (
        await claim(place, headers=[("Authorization", root_value.replace("AWS4", "AWS3"))]) is None
    )
    token = ("X-Amz-Security-Token", "FwoGZXIvYXdzE...")
    assert await claim(place, headers=signed(ROOT_KEY, token)) is None
    assert await claim(place, headers=[token, *signed()]) is None  # before or after
    presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + ROOT_KEY
    assert await claim(place, query=presigned, headers=[]) is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/2015-03-31/functions/fn/invocations"),
        ("PUT", "/2015-03-31/functions/fn/invocations"),
        ("POST", "/2015-03-31/functions/fn"),
        ("POST", "/2015-03-31/functions/fn/invocations/"),
        ("POST", "/2015-03-31/functions/fn/invoke-async"),
        ("POST", "/2014-11-13/functions/fn/invoke-async/"),
        ("POST", "/2021-11-15/functions/fn/response-streaming-invocations"),
        ("POST", "/x/2015-03-31/functions/fn/invocations"),
        ("POST", "/2015-03-31/functions/a/b/invocations"),
    ],
)
async def test_only_a_post_to_the_invoke_path(site: Site, method: str, path: str) -> None:
    await site.create()
    assert await placement(site).claim(method, path, "", signed()) is None


# ------------------------------------------------------------ claim: the function named


async def test_names_arns_percent_encoding_and_the_qualifier(site: Site) -> None:
    await site.create(versions=2)
    place = placement(site)
    fn = site.worker.get("fn")
    latest, one, two = fn.latest, fn.versions["1"], fn.versions["2"]
    assert await claim(place, FN_ARN) == latest
    assert await claim(place, FN_ARN.replace(":", "%3A")) == latest
    assert await claim(place, "123456789012:function:fn") == latest
    assert await claim(place, "fn:1") == one
    assert await claim(place, "fn%3A2") == two
    assert await claim(place, FN_ARN + "%3A1") == one
    assert await claim(place, "fn", "Qualifier=2") == two
    assert await claim(place, "fn", "Qualifier=%24LATEST") == latest
    assert await claim(place, "fn:$LATEST") == latest
    assert await claim(place, "fn", "Other=x&Qualifier=1") == one
    assert await claim(place, "fn:1", "Qualifier=1") == one  # the same twice is fine


async def test_what_the_primary_must_refuse_is_its_own(site: Site) -> None:
    await site.create()
    place = placement(site)
    assert await claim(place, "fn:1", "Qualifier=2") is None  # two different qualifiers
    assert await claim(place, "no-such-function") is None
    assert await claim(place, "fn", "Qualifier=9") is None  # no such version
    assert await claim(place, "fn", "Qualifier=nope") is None  # no such alias
    assert await claim(place, "bad%20name") is None
    assert await claim(place, "fn", "Qualifier=bad%20q") is None
    assert await claim(place, "a" * 200) is None  # too long a name


async def test_an_alias_claims_its_version(site: Site) -> None:
    await site.create(versions=2)
    await site.settings.create_alias("fn", "live", "1", "", {})
    await site.reload()
    place = placement(site)
    assert await claim(place, "fn:live") == site.worker.config("fn", "1")
    assert await claim(place, "fn", "Qualifier=live") == site.worker.config("fn", "1")


async def test_a_weighted_alias_needs_every_version_it_names_ready(site: Site) -> None:
    await site.create(versions=2)
    await site.settings.create_alias("fn", "live", "1", "", {"2": 0.25})
    await site.reload()
    place = placement(site)
    assert await claim(place, "fn:live") == site.worker.config("fn", "1")  # the primary version
    two = site.primary.get("fn").versions["2"]
    await site.store(dataclasses.replace(two, state=State.PENDING))
    assert await claim(place, "fn:live") is None  # the extra version is not ready
    assert await claim(place, "fn:1") is not None  # version 1 itself still is
    await site.store(dataclasses.replace(two, state=State.ACTIVE))
    one = site.primary.get("fn").versions["1"]
    await site.store(dataclasses.replace(one, state=State.FAILED))
    assert await claim(place, "fn:live") is None  # nor when the primary version is not


async def test_reserved_concurrency_is_the_primarys(site: Site) -> None:
    await site.create()
    await site.create("other")
    await site.settings.put_concurrency("fn", 10)
    await site.reload()
    place = placement(site)
    assert await claim(place) is None
    assert await claim(place, "fn:1") is None  # any qualifier: the function's limit
    assert await claim(place, "other") is not None
    await site.settings.delete_concurrency("fn")
    await site.reload()
    assert await claim(place) is not None


async def test_provisioned_concurrency_on_the_invoked_qualifier_is_the_primarys(
    site: Site,
) -> None:
    await site.create(versions=2)
    await site.settings.create_alias("fn", "live", "1", "", {})
    await site.settings.put_provisioned("fn", "live", 1)
    await site.settings.put_provisioned("fn", "2", 1)
    await site.reload()
    place = placement(site)
    assert await claim(place, "fn:live") is None
    assert await claim(place, "fn", "Qualifier=live") is None
    assert await claim(place, "fn:2") is None
    assert await claim(place, "fn:1") == site.worker.config("fn", "1")  # none on "1" itself
    assert await claim(place) == site.worker.get("fn").latest


@pytest.mark.parametrize(
    "changes",
    [
        {"state": State.PENDING},
        {"state": State.FAILED, "last_update_status": UpdateStatus.FAILED},
        {"state": State.ACTIVE, "last_update_status": UpdateStatus.IN_PROGRESS},
    ],
    ids=["pending", "failed", "update-in-progress"],
)
async def test_a_latest_that_is_not_ready_is_the_primarys(
    site: Site, changes: dict[str, object]
) -> None:
    await site.create()
    latest = site.primary.get("fn").latest
    await site.store(dataclasses.replace(latest, **changes))  # type: ignore[arg-type]
    assert site.worker.get("fn").latest.state is changes["state"]  # not settled by the read
    place = placement(site)
    assert await claim(place) is None
    assert await claim(place, "fn:1") is not None  # the published version is ready
    assert await claim(place, "fn:$LATEST") is None


async def test_a_decision_is_kept_until_the_generation_moves(site: Site) -> None:
    await site.create()
    generation = 1

    async def fresh() -> int:
        return generation

    place = placement(site)
    place.fresh = fresh
    assert await claim(place) is not None
    latest = site.primary.get("fn").latest
    await site.store(dataclasses.replace(latest, state=State.PENDING))
    # Read again, but told nothing changed: the decision for this URL stands...
    assert await claim(place) is not None
    generation = 2
    # ...until the generation moves, as the primary makes it do with every change.
    assert await claim(place) is None


async def test_snapstart_versions_are_the_primarys(site: Site) -> None:
    await site.create(snap_start="PublishedVersions")
    assert site.worker.config("fn", "1").snapshotted
    place = placement(site)
    assert await claim(place, "fn:1") is None
    assert await claim(place) == site.worker.get("fn").latest  # $LATEST starts as usual


async def test_fresh_reads_the_functions_before_deciding(site: Site) -> None:
    reads = 0

    async def fresh() -> None:
        nonlocal reads
        reads += 1
        await site.reload()

    place = placement(site)
    place.fresh = fresh
    await site.primary.create(new_config("late"), inspect(handler_zip()), False)
    await site.primary.wait_active(site.primary.get("late").latest)
    assert await claim(place, "late") is not None  # created after the worker's last read
    assert reads == 1
    assert await claim(place, "late", headers=signed("AKIDSOMEONEELSE")) is None
    assert await claim(place, "late", method="GET") is None
    assert reads == 1  # not the worker's to decide by its headers: no read
    assert await claim(place, "bad%20name") is None
    assert reads == 2  # the name is judged against functions as they are


# ---------------------------------------------------------------- elsewhere: the hint


@pytest.fixture
def counters(tmp_path: Path) -> Iterator[list[SharedCounters]]:
    """Three serving processes' counters over one file (all here, each its own slot)."""
    path = tmp_path / "counters"
    opened = [SharedCounters.create(path, 3)]
    opened += [SharedCounters.attach(path, slot) for slot in (1, 2)]
    yield opened
    for one in opened:
        one.close()


def peers(tmp_path: Path, *slots: int) -> dict[int, Forwarder]:
    return {slot: Forwarder(str(tmp_path / f"worker-{slot}.sock")) for slot in slots}


async def test_elsewhere_is_another_process_with_an_idle_environment(
    site: Site, counters: list[SharedCounters], tmp_path: Path
) -> None:
    await site.create()
    config = site.worker.get("fn").latest
    primary, one, two = counters
    ways = peers(tmp_path, 1, 2)
    place = placement(site, FakePool(), primary, ways)
    assert place.elsewhere(config, signed()) is None  # idle nowhere: start one here
    two.add_idle(idle_bucket(config.code_key), 1)
    assert place.elsewhere(config, signed()) is ways[2]
    two.add_idle(idle_bucket(config.code_key), -1)
    assert place.elsewhere(config, signed()) is None  # taken meanwhile
    primary.add_idle(idle_bucket(config.code_key), 1)
    assert place.elsewhere(config, signed()) is None  # its own idle one is no reason to go
    one.add_idle(idle_bucket(config.code_key), 1)
    assert place.elsewhere(config, signed()) is ways[1]


async def test_a_steady_stream_starts_an_environment_here(
    site: Site, counters: list[SharedCounters], tmp_path: Path
) -> None:
    """Forwards of a revision are for the odd call: past FORWARDS_PER_S in a second, the
    next call starts an environment here (and a new second forwards again)."""
    await site.create()
    config = site.worker.get("fn").latest
    primary, one, _ = counters
    ways = peers(tmp_path, 1, 2)
    now = 100.0
    place = Placement(
        ROOT_KEY, site.worker, cast(EnvironmentPool, FakePool()), primary, ways,
        clock=lambda: now,
    )  # fmt: skip
    one.add_idle(idle_bucket(config.code_key), 1)
    for _ in range(FORWARDS_PER_S):
        assert place.elsewhere(config, signed()) is ways[1]
        now += 0.01
    assert place.elsewhere(config, signed()) is None
    now += 1.0
    assert place.elsewhere(config, signed()) is ways[1]


async def test_elsewhere_stays_here_when_this_process_runs_the_revision(
    site: Site, counters: list[SharedCounters], tmp_path: Path
) -> None:
    await site.create()
    config = site.worker.get("fn").latest
    pool = FakePool()
    pool.here.add(config.code_key)  # idle here: a call finds it warm without a forward
    _, one, _ = counters
    one.add_idle(idle_bucket(config.code_key), 3)
    place = placement(site, pool, counters[0], peers(tmp_path, 1, 2))
    assert place.elsewhere(config, signed()) is None
    other = dataclasses.replace(config, revision_id="another-revision")
    one.add_idle(idle_bucket(other.code_key), 1)
    assert place.elsewhere(other, signed()) is not None  # a revision not run here


async def test_a_forwarded_call_is_never_forwarded_again(
    site: Site, counters: list[SharedCounters], tmp_path: Path
) -> None:
    await site.create()
    config = site.worker.get("fn").latest
    counters[1].add_idle(idle_bucket(config.code_key), 1)
    place = placement(site, FakePool(), counters[0], peers(tmp_path, 1, 2))
    assert place.elsewhere(config, signed(ROOT_KEY, (HOP, "1"))) is None
    assert place.elsewhere(config, signed(ROOT_KEY, ("X-Lamina-Hop", "1"))) is None
    assert place.elsewhere(config, signed()) is not None


async def test_a_shared_bucket_costs_at_most_a_forward(
    site: Site, counters: list[SharedCounters], tmp_path: Path
) -> None:
    await site.create()
    config = site.worker.get("fn").latest
    bucket = idle_bucket(config.code_key)
    neighbour = next(
        key
        for key in (f"other:$LATEST:{n}" for n in range(IDLE_BUCKETS * 50))
        if idle_bucket(key) == bucket
    )
    counters[2].add_idle(idle_bucket(neighbour), 1)
    ways = peers(tmp_path, 1, 2)
    assert placement(site, FakePool(), counters[0], ways).elsewhere(config, signed()) is ways[2]


async def test_the_pool_publishes_its_idle_environments_through_placement(
    site: Site, counters: list[SharedCounters], tmp_path: Path
) -> None:
    await site.create()
    config = site.worker.get("fn").latest
    primary, worker, _ = counters
    ways = peers(tmp_path, 1, 2)
    pools = [cast(EnvironmentPool, FakePool()) for _ in range(2)]
    here = placement(site, pools[0], primary, ways)
    placement(site, pools[1], worker, {0: Forwarder(str(tmp_path / "primary.sock"))})
    assert pools[1].idle_hint is not None  # Placement wires the pool's hint to its slot
    pools[1].idle_hint(config.code_key, 1)
    assert here.elsewhere(config, signed()) is ways[1]
    pools[1].idle_hint(config.code_key, -1)
    assert here.elsewhere(config, signed()) is None


async def test_a_real_pool_hints_through_placement(
    site: Site, counters: list[SharedCounters], tmp_path: Path
) -> None:
    await site.create()
    config = site.worker.get("fn").latest
    facts = HostFacts("us-east-1", "123456789012", "", {}, tmp_path / "code", tmp_path / "run", "")
    pool = EnvironmentPool(facts, NullSink(), 60.0)
    placement(site, pool, counters[1], {})
    assert pool.idle_hint is not None
    assert not pool.has_idle(config)
    pool.idle_hint(config.code_key, 2)
    assert counters[0].idle_elsewhere(idle_bucket(config.code_key)) == 1
    await pool.close()


# ---------------------------------------------------------------------------- send


@dataclass
class RecordingPeer:
    calls: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    async def whole(self, *args: Any) -> HttpResponse:
        self.calls.append(args)
        return HttpResponse(200, {}, b"{}")


async def test_send_marks_the_call_as_forwarded(site: Site) -> None:
    peer = RecordingPeer()
    headers = signed()
    answer = await placement(site).send(
        cast(Forwarder, peer), "POST", INVOKE.format("fn"), "Qualifier=1", headers, b'{"a":1}',
        "10.0.0.7",
    )  # fmt: skip
    assert answer.status == 200
    assert peer.calls == [
        ("POST", INVOKE.format("fn"), "Qualifier=1", [*headers, (HOP, "1")], b'{"a":1}', "10.0.0.7")
    ]
    assert headers == signed()  # the caller's list is left as it was
