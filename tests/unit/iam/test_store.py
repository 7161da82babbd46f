"""IamStore: secret access keys sealed at rest when given a sealer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.unit.iam.conftest import ACCOUNT, ROOT, FakeClock

from lamina.iam import IamDirectory, IamStore
from lamina.iam.store import SealedSecretUnreadable, SecretSealer
from lamina.secrets import Envelope, MasterKey
from lamina.storage.database import open_database, sqlite_url

TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
        ],
    }
)


async def test_secrets_are_sealed_at_rest(tmp_path: Path, clock: FakeClock) -> None:
    engine = await open_database(sqlite_url(tmp_path / "iam.db"), IamStore.metadata)
    sealer: SecretSealer = Envelope(MasterKey.generate())
    try:

        async def open_directory(with_sealer: SecretSealer | None) -> IamDirectory:
            directory = IamDirectory(IamStore(engine, with_sealer), ROOT, ACCOUNT, clock=clock)
            await directory.start()
            return directory

        first = await open_directory(sealer)
        await first.create_user("bob")
        key = await first.create_access_key("bob")
        role = await first.create_role("r", TRUST)
        session = await first.issue_role_credentials(
            role.arn, "sess", 900, caller=first.root_principal
        )
        async with engine.connect() as conn:
            stored = [
                row[0]
                for table in ("iam_access_keys", "iam_role_sessions")
                for row in await conn.execute(text(f"SELECT secret FROM {table}"))
            ]
        assert len(stored) == 2 and all(s.startswith("sealed:") for s in stored)
        assert key.secret not in "".join(stored) and session.secret not in "".join(stored)

        second = await open_directory(sealer)
        assert second.lookup_secret(key.access_key_id) == key.secret
        assert second.lookup_secret(session.access_key_id) == session.secret
        with pytest.raises(SealedSecretUnreadable):
            await open_directory(None)
    finally:
        await engine.dispose()
