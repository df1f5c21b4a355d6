"""Local stand-ins for the clouds: moto's server for AWS, a small HTTP server for Google's REST
APIs and the AWS Pricing API (which moto does not implement). Real clients, real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from costs_fakes import FakeCloudServer

from costaware.store.ledger import Ledger


@pytest.fixture
def moto(moto_url: str) -> str:
    """The moto server, reset: every test starts with no queued results or budgets."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    return moto_url


@pytest.fixture(scope="session")
def fake_cloud() -> Iterator[FakeCloudServer]:
    server = FakeCloudServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gcloud(fake_cloud: FakeCloudServer) -> FakeCloudServer:
    fake_cloud.reset()
    return fake_cloud


@pytest.fixture
def aws_client(moto: str, gcloud: FakeCloudServer) -> Callable[[str, str], Any]:
    """``(service, region) -> boto3 client`` over HTTP to moto (Pricing: to the fake server).
    botocore's retries are off, as in the real builders, so each request is counted."""

    def make(service: str, region: str = "us-east-1") -> Any:
        url = gcloud.url if service == "pricing" else moto
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    return make


@pytest.fixture
def ledger(tmp_path: Any) -> Iterator[Ledger]:
    lg = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield lg
    lg.dispose()
