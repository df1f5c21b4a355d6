"""Credentials only through Airflow connections (issue 8 §3).

AWS: the clients come from the Amazon provider's ``AwsBaseHook`` and reach moto's server over
HTTP with moto's IAM authentication on, so a request signed with any other key is refused:
the keys, region and endpoint can only have come from the connection (every ``AWS_*``
variable is unset). GCP: the connection's service-account key signs a real OAuth exchange
with the local stand-in, whose token then authorises the BigQuery query. A model config
that carries a credential is refused when it is loaded. The ledger's connection yields a
URL that connects to the PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import sqlalchemy as sa
import yaml
from costs_fakes import ACCESS_TOKEN, FakeCloudServer
from costs_helpers import ce_day, ce_result, queue_ce, use_aws_connection

from costaware.config import load_model_config
from costaware.costs import make_cost_source, make_price_source
from costaware.errors import ConfigError, CostSourceError
from costaware.store.connections import ledger_url_from_connection
from costaware.store.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
TAGS = {"model": "elec2", "team": "energy-forecasting", "env": "dev"}
JUNE = (dt.date(2026, 6, 1), dt.date(2026, 7, 1))  # one calendar month: one request
SPOT = ("retrain", "Spot Instances")


@pytest.fixture
def iam_key(moto: str) -> Iterator[dict[str, str]]:
    """An IAM user's access key in moto, then moto's IAM authentication switched on: from
    here every request must be signed by a key moto issued (restored afterwards, since the
    server is shared by the session)."""
    iam = boto3.client(
        "iam",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_user(UserName="costaware")
    allow_all = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    iam.put_user_policy(
        UserName="costaware", PolicyName="all", PolicyDocument=json.dumps(allow_all)
    )
    key = iam.create_access_key(UserName="costaware")["AccessKey"]
    requests.post(f"{moto}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield {"login": key["AccessKeyId"], "password": key["SecretAccessKey"]}
    finally:
        requests.post(f"{moto}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def _no_aws_env() -> None:
    assert not sorted(k for k in os.environ if k.startswith("AWS_"))


# -- AWS ---------------------------------------------------------------------------------
def test_cost_explorer_is_reached_with_the_connections_keys_and_endpoint(
    moto: str, iam_key: dict[str, str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_aws_connection(monkeypatch, **iam_key, endpoint_url=moto)
    _no_aws_env()
    queue_ce(moto, [ce_result([ce_day(dt.date(2026, 6, 10), {SPOT: 0.42})])])
    src = make_cost_source("aws", ledger, {"cache": False})
    [rec] = src.costs(TAGS, *JUNE)
    assert (rec.usage_date, rec.usd, rec.capacity) == (dt.date(2026, 6, 10), 0.42, "spot")


@pytest.mark.parametrize(
    "wrong, code",
    [("password", "SignatureDoesNotMatch"), ("login", "InvalidClientTokenId")],
)
def test_a_wrong_key_in_the_connection_is_refused(
    moto: str,
    iam_key: dict[str, str],
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    wrong: str,
    code: str,
) -> None:
    keys = {**iam_key, wrong: "AKIAWRONGWRONGWRONG0" if wrong == "login" else "not-the-secret"}
    use_aws_connection(monkeypatch, **keys, endpoint_url=moto)
    queue_ce(moto, [ce_result([ce_day(dt.date(2026, 6, 10), {SPOT: 0.42})])])
    src = make_cost_source("aws", ledger, {"cache": False})
    with pytest.raises(CostSourceError, match=code):
        src.costs(TAGS, *JUNE)


def test_aws_conn_id_picks_the_connection(
    moto: str, iam_key: dict[str, str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aws_default holds a wrong secret; the connection the option names holds the right one.
    use_aws_connection(monkeypatch, login=iam_key["login"], password="x", endpoint_url=moto)
    use_aws_connection(monkeypatch, "costaware_aws", **iam_key, endpoint_url=moto)
    queue_ce(moto, [ce_result([ce_day(dt.date(2026, 6, 3), {SPOT: 0.05})])])
    src = make_cost_source("aws", ledger, {"cache": False, "aws_conn_id": "costaware_aws"})
    assert [r.usd for r in src.costs(TAGS, *JUNE)] == [0.05]


def test_prices_use_the_connection_and_its_per_service_endpoint(
    moto: str,
    iam_key: dict[str, str],
    gcloud: FakeCloudServer,
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # moto has no Pricing API: the connection sends that one service to the local stand-in.
    use_aws_connection(
        monkeypatch,
        **iam_key,
        endpoint_url=moto,
        service_config={"pricing": {"endpoint_url": gcloud.url}},
    )
    gcloud.price_list = [_on_demand_product("0.1920000000")]
    prices = make_price_source("aws", ledger, {})
    spot = prices.price("m5.xlarge", "us-east-1", "spot")
    assert spot.usd_per_hour == pytest.approx(0.00001)  # moto's dummy spot price
    assert prices.price("m5.xlarge", "us-east-1", "on_demand").usd_per_hour == 0.192
    [pricing] = [r for r in gcloud.requests if r["target"]]
    # SigV4 names the signing key: the connection's, as moto accepted for EC2 above.
    assert f"Credential={iam_key['login']}/" in pricing["authorization"]


def test_a_named_connection_that_does_not_exist_is_a_config_error(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_AWS_TEAM_BILLING", raising=False)
    with pytest.raises(ConfigError) as err:
        make_cost_source("aws", ledger, {"aws_conn_id": "aws_team_billing"})
    assert "no Airflow connection 'aws_team_billing' (named by aws_conn_id)" in str(err.value)
    assert "AIRFLOW_CONN_AWS_TEAM_BILLING" in str(err.value)


@pytest.mark.parametrize(
    "kind, source, option, extra",
    [
        ("cost", "aws", "endpoint_url", '{"endpoint_url": ...}'),
        ("price", "aws", "profile", '{"profile_name": ...}'),
        ("cost", "gcp", "api_endpoint", '{"api_endpoint": ...}'),
    ],
)
def test_client_settings_in_the_yaml_point_to_the_connection(
    ledger: Ledger, kind: str, source: str, option: str, extra: str
) -> None:
    make = make_cost_source if kind == "cost" else make_price_source
    with pytest.raises(ConfigError) as err:
        make(source, ledger, {option: "http://127.0.0.1:9", "table": "p.d.t"})
    words = str(err.value)
    assert f"{source} {kind} source option {option!r} is not read from the model config" in words
    assert extra in words and "remove the option from the YAML" in words
    conn = "aws_default" if source == "aws" else "google_cloud_default"
    assert f"on the Airflow connection {conn!r}" in words


def test_without_aws_default_boto3s_default_chain_answers(
    moto: str, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the Amazon provider's hooks, a missing ``aws_default`` means boto3's own chain
    (an instance role, IRSA; here the AWS_* variables), not an error."""
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    queue_ce(moto, [ce_result([ce_day(dt.date(2026, 6, 10), {SPOT: 0.42})])])
    src = make_cost_source("aws", ledger, {"cache": False})
    assert [r.usd for r in src.costs(TAGS, *JUNE)] == [0.42]


def test_without_airflow_boto3s_default_chain_answers(moto: str, tmp_path: Path) -> None:
    """The library alone (Airflow not importable): boto3's own chain, here AWS_* variables."""
    queue_ce(moto, [ce_result([ce_day(dt.date(2026, 6, 10), {SPOT: 0.42})])])
    code = (
        "import sys, datetime as dt\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'airflow' or name.startswith('airflow.'):\n"
        "            raise ImportError('airflow is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from costaware.costs import make_cost_source\n"
        "from costaware.store.ledger import Ledger\n"
        f"ledger = Ledger('sqlite:///{tmp_path / 'ledger.db'}')\n"
        "src = make_cost_source('aws', ledger, {'cache': False})\n"
        f"print([r.usd for r in src.costs({TAGS!r}, dt.date(2026, 6, 1), dt.date(2026, 7, 1))])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": moto,
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[0.42]"


def _on_demand_product(usd: str) -> str:
    dim = {"unit": "Hrs", "pricePerUnit": {"USD": usd}}
    terms = {"OnDemand": {"T": {"priceDimensions": {"T.D": dim}}}}
    return json.dumps({"product": {"attributes": {}}, "terms": terms})


# -- GCP ---------------------------------------------------------------------------------
def _bq_answer(sql: str, params: dict[str, Any]) -> tuple[list[dict[str, str]], list[list[Any]]]:
    fields = [
        {"name": "usage_date", "type": "DATE"},
        {"name": "purpose", "type": "STRING"},
        {"name": "capacity", "type": "STRING"},
        {"name": "net_cost", "type": "FLOAT"},
    ]
    return fields, [["2026-06-02", "retrain", "spot", 0.6]]


TABLE = "acme-billing.billing.gcp_billing_export_v1_0A1B2C"


def _use_gcp_connection(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    for key in list(os.environ):
        if key.startswith("GOOGLE_"):
            monkeypatch.delenv(key)
    conn = {"conn_type": "google_cloud_platform", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(conn))


def _service_account_key(token_uri: str) -> tuple[dict[str, str], str]:
    """A fresh service-account JSON key (and its public key, to check signatures)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = {
        "type": "service_account",
        "project_id": "acme-from-key",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "costaware@acme-from-key.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    return key, public.decode()


def test_bigquery_is_authorised_by_the_connections_service_account_key(
    gcloud: FakeCloudServer, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.auth import jwt

    key, public = _service_account_key(f"{gcloud.url}/token")
    # keyfile_dict as the connection form stores it: the key file's JSON text.
    _use_gcp_connection(monkeypatch, keyfile_dict=json.dumps(key), api_endpoint=gcloud.url)
    gcloud.bq_answer = _bq_answer
    src = make_cost_source("gcp", ledger, {"table": TABLE})
    [rec] = src.costs(TAGS, *JUNE)
    assert (rec.usage_date, rec.usd, rec.capacity) == (dt.date(2026, 6, 2), 0.6, "spot")
    token_req = next(r for r in gcloud.requests if r["path"] == "/token")
    # The assertion exchanged for a token was signed by the connection's key.
    # (google-auth addresses every such assertion to Google's token endpoint, wherever it
    # is sent.)
    claims = jwt.decode(
        token_req["body"]["assertion"],
        certs=public,
        audience="https://oauth2.googleapis.com/token",
    )
    assert claims["iss"] == key["client_email"]
    assert "auth/cloud-platform" in claims["scope"]
    query = next(r for r in gcloud.requests if r["path"].endswith("/queries"))
    assert query["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert query["path"] == "/bigquery/v2/projects/acme-from-key/queries"  # the key's project


def test_anonymous_connection_and_the_yaml_project(
    gcloud: FakeCloudServer, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_gcp_connection(
        monkeypatch, is_anonymous=True, project="acme-conn", api_endpoint=gcloud.url
    )
    gcloud.bq_answer = _bq_answer
    src = make_cost_source("gcp", ledger, {"table": TABLE})
    assert [r.usd for r in src.costs(TAGS, *JUNE)] == [0.6]
    src = make_cost_source("gcp", ledger, {"table": TABLE, "project": "acme-yaml"})
    src.costs(TAGS, *JUNE)
    queries = [r for r in gcloud.requests if r["path"].endswith("/queries")]
    # The connection's project, then the YAML's (it wins); anonymous: no Authorization.
    assert [q["path"].split("/")[4] for q in queries] == ["acme-conn", "acme-yaml"]
    assert [q["authorization"] for q in queries] == [None, None]


def test_the_catalog_client_uses_the_connection(
    gcloud: FakeCloudServer, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_gcp_connection(monkeypatch, is_anonymous="true", api_endpoint=gcloud.url)
    prices = make_price_source("gcp", ledger, {})
    with pytest.raises(CostSourceError, match="has no Spot N2 .* SKU in us-central1"):
        prices.price("n2-standard-4", "us-central1", "spot")  # the stand-in has no SKUs
    [listed] = gcloud.requests
    assert listed["path"].startswith("/v1/services/") and listed["authorization"] is None


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"keyfile_dict": "{not json"}, "its keyfile_dict is not a service-account JSON key"),
        ({"key_path": "/nonexistent/key.json"}, "its key_path '/nonexistent/key.json' is not"),
        ({"key_path": "/a.json", "keyfile_dict": "{}"}, "sets both key_path and keyfile_dict"),
        ({"key_secret_name": "sa-key"}, "sets ['key_secret_name'], which needs the Google"),
    ],
)
def test_a_bad_google_connection_says_what_is_wrong(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], words: str
) -> None:
    _use_gcp_connection(monkeypatch, **extra)
    with pytest.raises(ConfigError) as err:
        make_cost_source("gcp", ledger, {"table": TABLE})
    assert "the Google Cloud connection 'google_cloud_default'" in str(err.value)
    assert words in str(err.value)


def test_the_google_connection_must_exist(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", raising=False)
    with pytest.raises(ConfigError, match="no Airflow connection 'google_cloud_default'"):
        make_price_source("gcp", ledger, {})


# -- model configs -----------------------------------------------------------------------
def _config_with(tmp_path: Path, **cost_policy: Any) -> Path:
    raw = yaml.safe_load((ROOT / "include" / "models" / "elec2.yaml").read_text())
    raw["cost_policy"].update(cost_policy)
    path = tmp_path / "elec2.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "policy, option, where",
    [
        (
            {"cost_source": "aws", "cost_source_options": {"aws_secret_access_key": SECRET}},
            "cost_source_options.aws_secret_access_key",
            "the Airflow connection 'aws_default' (named by cost_source_options.aws_conn_id)",
        ),
        (
            {
                "price_source": "aws",
                "price_source_options": {"aws_conn_id": "team_aws", "Session-Token": SECRET},
            },
            "price_source_options.Session-Token",
            "the Airflow connection 'team_aws'",
        ),
        (
            {
                "cost_source": "gcp",
                "cost_source_options": {"table": "a.b.c", "keyfile_dict": SECRET},
            },
            "cost_source_options.keyfile_dict",
            "the Airflow connection 'google_cloud_default'",
        ),
        (
            {
                "cost_source": "focus",
                "cost_source_options": {"path": "s3://x", "s3": {"password": SECRET}},
            },
            "cost_source_options.s3.password",
            "an Airflow connection",
        ),
    ],
)
def test_a_model_config_holding_a_credential_is_refused_on_load(
    tmp_path: Path, policy: dict[str, Any], option: str, where: str
) -> None:
    path = _config_with(tmp_path, **policy)
    with pytest.raises(ConfigError) as err:
        load_model_config(path)
    words = str(err.value)
    assert words.startswith(f"{path}: invalid model config")
    assert f"{option} holds a credential" in words and where in words
    assert SECRET not in words  # the refusal must not print the secret it refuses


def test_connection_ids_and_ordinary_options_load(tmp_path: Path) -> None:
    options = {"aws_conn_id": "team_aws", "tag_keys": {"model": "ml:model"}, "max_requests": 5}
    cfg = load_model_config(_config_with(tmp_path, cost_source="aws", cost_source_options=options))
    assert cfg.cost_policy.cost_source_options == options


# -- the ledger --------------------------------------------------------------------------
def _database(pg_url: str) -> str:
    return sa.engine.make_url(pg_url).database or ""


def test_the_ledger_connection_connects_to_postgresql(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trust auth ignores the password, but it must survive the URL's escaping intact.
    password = "p@ss:/w?rd#1%"
    conn = {
        "conn_type": "postgres",
        "host": "127.0.0.1",
        "port": 5432,
        "login": "postgres",
        "password": password,
        "schema": _database(pg_url),
        "extra": {"application_name": "costaware-ledger", "sslmode": "disable", "cursor": "x"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_COSTAWARE_LEDGER", json.dumps(conn))
    url = ledger_url_from_connection("costaware_ledger")
    parsed = sa.engine.make_url(url)
    assert parsed.drivername == "postgresql+psycopg2" and parsed.password == password
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            got = db.execute(
                sa.text("SELECT current_database(), current_setting('application_name')")
            ).one()
    finally:
        engine.dispose()
    assert tuple(got) == (_database(pg_url), "costaware-ledger")
    ledger = Ledger(url)  # the ledger itself takes the URL (and migrates the database)
    ledger.dispose()


def test_the_ledger_connection_as_a_uri(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"postgresql://postgres@127.0.0.1:5432/{_database(pg_url)}?connect_timeout=5"
    monkeypatch.setenv("AIRFLOW_CONN_COSTAWARE_LEDGER", uri)
    url = ledger_url_from_connection("costaware_ledger")
    assert url == f"postgresql+psycopg2://postgres@127.0.0.1:5432/{_database(pg_url)}" + (
        "?connect_timeout=5"
    )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            assert db.execute(sa.text("SELECT current_database()")).scalar() == _database(pg_url)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "conn, words",
    [
        (None, "no Airflow connection 'costaware_ledger' (COSTAWARE_LEDGER_CONN_ID)"),
        ({"conn_type": "mysql", "host": "h", "schema": "d"}, "conn_type 'mysql'; allowed"),
        ({"conn_type": "postgres", "host": "h"}, "has no schema; set the host and"),
        (
            {"conn_type": "postgres", "host": "h", "schema": "d", "extra": {"iam": True}},
            "extra(s) ['iam'] cannot be used by the ledger's driver",
        ),
    ],
)
def test_a_bad_ledger_connection_says_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any] | None, words: str
) -> None:
    if conn is None:
        monkeypatch.delenv("AIRFLOW_CONN_COSTAWARE_LEDGER", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_CONN_COSTAWARE_LEDGER", json.dumps(conn))
    with pytest.raises(ConfigError) as err:
        ledger_url_from_connection("costaware_ledger")
    assert words in str(err.value)
