from __future__ import annotations

from collections.abc import Callable

import botocore.session
import pytest
from botocore.model import ServiceModel


@pytest.fixture(scope="session")
def service_model() -> Callable[[str], ServiceModel]:
    """Loads botocore service models once per test session (loading is the slow part)."""
    session = botocore.session.get_session()
    cache: dict[str, ServiceModel] = {}

    def load(name: str) -> ServiceModel:
        if name not in cache:
            cache[name] = session.get_service_model(name)
        return cache[name]

    return load
