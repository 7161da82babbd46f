"""Property: paging through a stream or a group, in either direction and with any
page size, yields every event exactly once, in (timestamp, arrival) order."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamina.storage.database import open_database, sqlite_url
from lamina.telemetry.logstore import LogStore

events_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 20)), min_size=1, max_size=40
)


async def _check(events: list[tuple[str, int]], page: int, forward: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = await open_database(sqlite_url(Path(folder) / "l.db"), LogStore.metadata)
        store = LogStore(engine, lambda: 1.0)
        for i, (stream, ts) in enumerate(events):
            store.append("g", stream, [(ts, f"{stream}{i}")])
        await store.flush()
        expected = [f"{s}{i}" for i, (s, ts) in sorted(enumerate(events), key=lambda e: e[1][1])]

        seen: list[str] = []
        token: str | None = None
        while True:
            found, token = await store.filter_events(
                "g", limit=page, token=token, start_from_head=forward
            )
            seen.extend(e.message for e in found)
            if token is None:
                break
        assert seen == (expected if forward else expected[::-1])

        for stream in {s for s, _ in events}:
            in_stream = [m for m in expected if m.startswith(stream)]
            got: list[str] = []
            page_events, fwd, bwd = await store.get_events(
                "g", stream, start_from_head=forward, limit=page
            )
            while page_events:
                got = (
                    [*got, *(e.message for e in page_events)]
                    if forward
                    else [*(e.message for e in page_events), *got]
                )
                page_events, fwd, bwd = await store.get_events(
                    "g", stream, limit=page, token=fwd if forward else bwd
                )
            assert got == in_stream
        await engine.dispose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events_strategy, page=st.integers(1, 7), forward=st.booleans())
def test_paging_yields_every_event_once_in_order(
    events: list[tuple[str, int]], page: int, forward: bool
) -> None:
    asyncio.run(_check(events, page, forward))
