"""Builders for the cloud cost and price sources, named in ``costs/__init__.py``.

Each one turns a model config's ``cost_source_options`` / ``price_source_options`` into a
source. Client libraries are imported here, inside the builder, so ``import costaware`` stays
light and a laptop without boto3 or the Google libraries can still use the ledger source.
Unknown options fail loudly: a typo in a budget-relevant option must not be ignored.

Credentials never come from the model config. It names an Airflow connection (``aws_conn_id``,
default ``aws_default``; ``gcp_conn_id``, default ``google_cloud_default``) and the clients are
built from that connection: keys, role, region and endpoint. Client settings that describe a
deployment rather than a model (``endpoint_url``, ``profile``, ``api_endpoint``) are refused
in the YAML with the connection extra to use instead, so one YAML serves every environment.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from costaware.costs.aws_prices import ClientFactory
from costaware.costs.base import CostSource, PriceSource
from costaware.errors import ConfigError
from costaware.store.ledger import Ledger

AWS_DEFAULT_CONN = "aws_default"
GCP_DEFAULT_CONN = "google_cloud_default"
_CONN_OPTIONS = {"aws_conn_id": AWS_DEFAULT_CONN, "gcp_conn_id": GCP_DEFAULT_CONN}
# Per connection option: the YAML options it replaces, and where they go on the connection.
MOVED_TO_CONNECTION = {
    "aws_conn_id": {
        "endpoint_url": 'the extra {"endpoint_url": ...} (or, for one service only, '
        '{"service_config": {"<service>": {"endpoint_url": ...}}})',
        "profile": 'the extra {"profile_name": ...}',
    },
    "gcp_conn_id": {"api_endpoint": 'the extra {"api_endpoint": ...}'},
}


def _check(
    kind: str, options: dict[str, Any], allowed: set[str], conn_option: str | None = None
) -> dict[str, Any]:
    if conn_option:
        moved = MOVED_TO_CONNECTION[conn_option]
        for key in sorted(set(options) & set(moved))[:1]:
            conn_id = options.get(conn_option, _CONN_OPTIONS[conn_option])
            raise ConfigError(
                f"{kind} option {key!r} is not read from the model config any more: set "
                f"{moved[key]} on the Airflow connection {conn_id!r} (the one {conn_option} "
                "names) and remove the option from the YAML"
            )
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown {kind} option(s) {unknown}; allowed: {sorted(allowed)}")
    return dict(options)


# -- connections ------------------------------------------------------------------------
def _airflow_installed() -> bool:
    """With Airflow installed, connections are the only source of credentials; without it
    (the library alone), the client libraries' own default chains are."""
    try:
        import airflow.sdk  # noqa: F401
    except ImportError:
        return False
    return True


def _connection(conn_id: str, option: str) -> Any:
    """The Airflow connection ``conn_id``. A missing one is a config error, never a silent
    switch to other credentials: a typo in a connection id must not bill another account."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConfigError(
            f"no Airflow connection {conn_id!r} (named by {option}): add it in the UI (Admin "
            f"> Connections), with `airflow connections add {conn_id} ...`, or as the "
            f"environment variable AIRFLOW_CONN_{conn_id.upper()}"
        ) from None


def aws_client_factory(conn_id: str = AWS_DEFAULT_CONN) -> ClientFactory:
    """``(service, region) -> boto3 client``, built by the Amazon provider's ``AwsBaseHook``
    from the Airflow connection ``conn_id``: its login/password keys (or role, profile_name),
    region and ``endpoint_url`` / ``service_config`` extras. ``aws_default`` may be absent:
    then, as in the provider's own hooks, boto3's default chain answers (an instance role,
    IRSA). Any other connection id must exist.

    Without Airflow installed, boto3's default chain answers: the ``AWS_*`` environment
    variables (``AWS_ENDPOINT_URL`` included), ``~/.aws``, an instance role.

    botocore's own retries are off: the sources retry throttling themselves, so every billed
    request is counted against the per-run cap."""
    from botocore.config import Config

    no_retries = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    if not _airflow_installed():
        import boto3

        session = boto3.Session()
        return lambda service, region: session.client(
            service, region_name=region, config=no_retries
        )
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    if conn_id != AWS_DEFAULT_CONN:
        _connection(conn_id, "aws_conn_id")
    hooks: dict[str, Any] = {}

    def make(service: str, region: str) -> Any:
        hook = hooks.get(service)
        if hook is None:
            hook = hooks[service] = AwsBaseHook(aws_conn_id=conn_id, client_type=service)
        # The connection's botocore config (extra config_kwargs) is kept; only retries change.
        return hook.get_client_type(region_name=region, config=hook.config.merge(no_retries))

    return make


@dataclass(frozen=True)
class GoogleAccess:
    """What the Google clients need: credentials (None: Application Default Credentials),
    the project to bill queries to, and an API endpoint override (None: Google's)."""

    credentials: Any
    project: str | None
    api_endpoint: str | None


GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Ways to authenticate that only the Google provider implements (it is not installed here).
NEEDS_GOOGLE_PROVIDER = (
    "credential_config_file",
    "key_secret_name",
    "impersonation_chain",
    "idp_issuer_url",
)


def _google_field(extras: dict[str, Any], name: str) -> Any:
    """An extra as the Google provider reads it: ``name`` or its older prefixed form."""
    for key in (name, f"extra__google_cloud_platform__{name}"):
        if extras.get(key) not in (None, ""):
            return extras[key]
    return None


def google_credentials(conn_id: str = GCP_DEFAULT_CONN) -> GoogleAccess:
    """Google credentials from the Airflow connection ``conn_id``, read as the Google
    provider's hooks read a ``google_cloud_platform`` connection (that provider does not
    install beside the pinned set; this is the subset of its documented extras costaware
    needs): ``is_anonymous``; ``key_path`` (a service-account JSON key file) or
    ``keyfile_dict`` (its content); else Application Default Credentials; ``scope``
    (comma-separated, default cloud-platform); ``project`` (or ``project_id``; else the key's
    project). ``api_endpoint``, costaware's own extra, points the clients elsewhere (a local
    stand-in). As for the provider, the connection must exist.

    Without Airflow installed, Application Default Credentials answer."""
    if not _airflow_installed():
        return GoogleAccess(None, None, None)
    extras = _connection(conn_id, "gcp_conn_id").extra_dejson
    unsupported = [k for k in NEEDS_GOOGLE_PROVIDER if _google_field(extras, k)]
    if unsupported:
        raise ConfigError(
            f"the Google Cloud connection {conn_id!r} sets {unsupported}, which needs the "
            "Google provider (apache-airflow-providers-google, not installed); use key_path, "
            "keyfile_dict, is_anonymous or Application Default Credentials"
        )
    credentials, key_project = _google_auth(conn_id, extras)
    project = _google_field(extras, "project") or _google_field(extras, "project_id")
    return GoogleAccess(credentials, project or key_project, _google_field(extras, "api_endpoint"))


def _google_auth(conn_id: str, extras: dict[str, Any]) -> tuple[Any, str | None]:
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.oauth2 import service_account

    anonymous = _google_field(extras, "is_anonymous")
    if anonymous is True or str(anonymous).lower() == "true":
        return AnonymousCredentials(), None
    scope = str(_google_field(extras, "scope") or GOOGLE_SCOPE)
    scopes = [s.strip() for s in scope.split(",") if s.strip()]
    key_path, keyfile = _google_field(extras, "key_path"), _google_field(extras, "keyfile_dict")
    if key_path and keyfile:
        raise ConfigError(
            f"the Google Cloud connection {conn_id!r} sets both key_path and keyfile_dict: "
            "they are exclusive, keep one"
        )
    if not (key_path or keyfile):
        return google.auth.default(scopes=scopes)
    try:
        if key_path:
            creds = service_account.Credentials.from_service_account_file(key_path, scopes=scopes)
        else:
            info = keyfile if isinstance(keyfile, dict) else json.loads(keyfile)
            creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        which = f"key_path {key_path!r}" if key_path else "keyfile_dict"
        raise ConfigError(
            f"the Google Cloud connection {conn_id!r}: its {which} is not a service-account "
            f"JSON key: {type(exc).__name__}: {exc}"
        ) from None
    return creds, creds.project_id


# -- builders ---------------------------------------------------------------------------
AWS_COST_OPTIONS = {
    "aws_conn_id",
    "metric",
    "tag_keys",
    "max_requests",
    "lag_hours",
    "max_retries",
    "base_delay_s",
    "max_delay_s",
    "cache",
    "cache_ttl_hours",
}


def aws_cost_source(ledger: Ledger, options: dict[str, Any]) -> CostSource:
    from costaware.costs.aws import AwsCostExplorerSource
    from costaware.costs.cache import ResponseCache

    opts = _check("aws cost source", options, AWS_COST_OPTIONS, "aws_conn_id")
    client = aws_client_factory(opts.pop("aws_conn_id", AWS_DEFAULT_CONN))("ce", "us-east-1")
    ttl = dt.timedelta(hours=float(opts.pop("cache_ttl_hours", 12)))
    cache = ResponseCache(ledger, ttl=ttl) if opts.pop("cache", True) else None
    return AwsCostExplorerSource(client, cache, **opts)


def aws_price_source(ledger: Ledger, options: dict[str, Any]) -> PriceSource:
    from costaware.costs.aws_prices import AwsPriceSource

    allowed = {"aws_conn_id", "product_description", "spot_lookback_hours"}
    opts = _check("aws price source", options, allowed, "aws_conn_id")
    factory = aws_client_factory(opts.pop("aws_conn_id", AWS_DEFAULT_CONN))
    return AwsPriceSource(factory, **opts)


def focus_cost_source(ledger: Ledger, options: dict[str, Any]) -> CostSource:
    from costaware.costs.focus import FocusCostSource

    allowed = {"path", "cost_column", "tag_keys", "tag_aliases", "strict", "lag_hours", "conn_id"}
    allowed |= {"bigquery_view", "gcp_conn_id", "project", "location"}
    opts = _check("focus cost source", options, allowed, "gcp_conn_id")
    if "bigquery_view" in opts:  # GCP's FOCUS view, through the same client as gcp's source
        from google.cloud import bigquery

        if "path" in opts:
            raise ConfigError("the focus cost source takes path or bigquery_view, not both")
        access = google_credentials(opts.pop("gcp_conn_id", GCP_DEFAULT_CONN))
        opts["bigquery"] = bigquery.Client(
            project=opts.pop("project", None) or access.project,
            credentials=access.credentials,
            client_options=_endpoint(access.api_endpoint),
        )
        return FocusCostSource(**opts)
    if "path" not in opts:
        raise ConfigError(
            "the focus cost source needs cost_source_options.path (a file, a folder, or an "
            "s3:// prefix) or bigquery_view (project.dataset.view)"
        )
    return FocusCostSource(**opts)


GCP_COST_OPTIONS = {"gcp_conn_id", "project", "table", "tag_keys", "lag_hours", "location"}


def _endpoint(url: str | None) -> dict[str, str] | None:
    return {"api_endpoint": url} if url else None


def gcp_cost_source(ledger: Ledger, options: dict[str, Any]) -> CostSource:
    from google.cloud import bigquery

    from costaware.costs.gcp import GcpBillingExportSource

    opts = _check("gcp cost source", options, GCP_COST_OPTIONS, "gcp_conn_id")
    if "table" not in opts:
        raise ConfigError(
            "the gcp cost source needs cost_source_options.table, the billing export table "
            "as project.dataset.gcp_billing_export_v1_XXXXXX"
        )
    access = google_credentials(opts.pop("gcp_conn_id", GCP_DEFAULT_CONN))
    # ``project`` (not a secret) is the project the query runs in and is billed to; without
    # it, the connection's project, then its key's.
    client = bigquery.Client(
        project=opts.pop("project", None) or access.project,
        credentials=access.credentials,
        client_options=_endpoint(access.api_endpoint),
    )
    return GcpBillingExportSource(client, **opts)


def gcp_price_source(ledger: Ledger, options: dict[str, Any]) -> PriceSource:
    from google.cloud import billing_v1

    from costaware.costs.gcp import GcpCatalogPriceSource

    opts = _check("gcp price source", options, {"gcp_conn_id", "machine_shapes"}, "gcp_conn_id")
    access = google_credentials(opts.pop("gcp_conn_id", GCP_DEFAULT_CONN))
    client = billing_v1.CloudCatalogClient(
        credentials=access.credentials,
        transport="rest",
        client_options=_endpoint(access.api_endpoint),
    )
    return GcpCatalogPriceSource(client, **opts)
