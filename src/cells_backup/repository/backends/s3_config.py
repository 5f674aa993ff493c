"""Where an S3 repository is and who may open it: the URL, and credentials in the AWS order.

Credentials: explicit options, else ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_SESSION_TOKEN``, else the profile (``AWS_PROFILE`` or ``default``) in the shared files
``~/.aws/credentials`` and ``~/.aws/config`` (obstore does not read those files itself), else what
obstore finds on its own (web identity, ECS/EKS container credentials, EC2 instance metadata).

`resolve_settings` turns the options a caller gave (`S3Options`) plus the environment into one
`S3Settings`: everything the S3 backend needs to build its client, resolved and checked once, so
that a bad URL, endpoint or tuning knob is a one-line usage error before anything is sent.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ...errors import BackendError, UsageError
from .retry import DEFAULT_POLICY, RetryPolicy

# Tuning knobs read from the environment when the matching option is not given, so that a CLI
# run under test (or on a flaky link) can be made to give up sooner or later.
ENV_ATTEMPTS = "CELLS_BACKUP_S3_ATTEMPTS"
ENV_DEADLINE = "CELLS_BACKUP_S3_DEADLINE"  # seconds, all retries of one call
ENV_TIMEOUT = "CELLS_BACKUP_S3_TIMEOUT"  # seconds, one whole request including the body
ENV_CONNECT_TIMEOUT = "CELLS_BACKUP_S3_CONNECT_TIMEOUT"

DEFAULT_REGION = "us-east-1"
DEFAULT_TIMEOUT = 300.0  # a 64 MiB pack over a slow uplink needs minutes, not obstore's 30 s
DEFAULT_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    source: str  # where they came from, for messages ("environment", "profile default in ...")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> (``bucket``, ``some/prefix``)."""
    if not url.startswith("s3://"):
        raise UsageError(f"not an S3 repository URL: {url!r} (expected s3://bucket/prefix)")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise UsageError(f"S3 repository URL without a bucket: {url!r} (expected s3://bucket/prefix)")
    prefix = "/".join(part for part in prefix.split("/") if part)
    return bucket, prefix


def _read_ini(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error, UnicodeDecodeError):
        pass  # an unreadable shared file is treated like an absent one, as the AWS CLI does
    return parser


def shared_profile(env: Mapping[str, str], profile: str | None = None) -> dict[str, str]:
    """The settings of one AWS profile from the shared config and credentials files.

    Credentials-file values win over config-file values, as in the AWS SDKs.
    """
    name = profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    home = os.path.expanduser("~")
    config_path = env.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    creds_path = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")
    values: dict[str, str] = {}
    config = _read_ini(config_path)
    section = "default" if name == "default" else f"profile {name}"
    for candidate in (section, name):
        if config.has_section(candidate):
            values.update(config.items(candidate))
            break
    creds = _read_ini(creds_path)
    if creds.has_section(name):
        values.update(creds.items(name))
        values["__source__"] = f"profile {name} in {creds_path}"
    elif values:
        values["__source__"] = f"profile {name} in {config_path}"
    return values


def resolve_credentials(
    env: Mapping[str, str],
    profile_values: Mapping[str, str],
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> Credentials | None:
    """Static credentials in the usual AWS order, or None to let obstore look further."""
    if access_key_id and secret_access_key:
        return Credentials(access_key_id, secret_access_key, session_token, "options")
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
        return Credentials(key, secret, token, "environment")
    key, secret = profile_values.get("aws_access_key_id"), profile_values.get("aws_secret_access_key")
    if key and secret:
        token = profile_values.get("aws_session_token") or None
        return Credentials(key, secret, token, profile_values.get("__source__", "shared files"))
    return None


def has_ambient_credentials(env: Mapping[str, str]) -> bool:
    """Whether obstore may find credentials without static keys (web identity, containers)."""
    return any(
        env.get(var)
        for var in (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        )
    ) or env.get("AWS_SKIP_SIGNATURE", "").lower() in ("1", "true")


@dataclass(frozen=True)
class S3Options:
    """What a caller may say about an S3 repository; None means "from the environment or default".

    ``endpoint`` (else ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``/the profile's
    ``endpoint_url``) selects a non-AWS server; plain ``http://`` endpoints are allowed
    automatically. ``path_style`` None or True sends path-style requests (what self-hosted
    servers expect); False asks for virtual-hosted ``bucket.host`` requests. ``conditional_writes``
    None tries If-None-Match and falls back when the server cannot do it.
    """

    endpoint: str | None = None
    region: str | None = None
    path_style: bool | None = None
    allow_http: bool | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    retry: RetryPolicy | None = None
    attempts: int | None = None
    deadline: float | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    conditional_writes: bool | None = None


@dataclass(frozen=True)
class S3Settings:
    """One S3 repository's client settings, fully resolved (see `resolve_settings`)."""

    bucket: str
    prefix: str
    region: str
    endpoint: str | None  # None: AWS itself
    label: str  # the endpoint as messages name it
    path_style: bool | None
    allow_http: bool
    credentials: Credentials | None  # None: obstore looks for ambient credentials
    attempts: int
    deadline: float
    timeout: float
    connect_timeout: float
    policy: RetryPolicy  # backoff delays
    conditional_writes: bool | None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a message."""
        creds = self.credentials
        return (creds.secret_access_key, creds.session_token or "") if creds else ()

    def store_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of obstore's ``S3Store`` besides the bucket."""
        config: dict[str, Any] = {"region": self.region}
        if self.endpoint is not None:
            endpoint = self.endpoint
            if self.path_style is False:
                scheme, _, host = endpoint.partition("://")
                if not host.startswith(f"{self.bucket}."):
                    endpoint = f"{scheme}://{self.bucket}.{host}"
            config["endpoint"] = endpoint
        if self.path_style is not None:
            config["virtual_hosted_style_request"] = not self.path_style
        if self.credentials is not None:
            config["access_key_id"] = self.credentials.access_key_id
            config["secret_access_key"] = self.credentials.secret_access_key
            if self.credentials.session_token:
                config["session_token"] = self.credentials.session_token
        client_options = {
            "allow_http": self.allow_http,
            "connect_timeout": timedelta(seconds=self.connect_timeout),
            "timeout": timedelta(seconds=self.timeout),
        }
        retry_config = {
            "max_retries": max(0, self.attempts - 1),
            "retry_timeout": timedelta(seconds=self.deadline),
            "backoff": {
                "init_backoff": timedelta(seconds=self.policy.base_delay),
                "max_backoff": timedelta(seconds=self.policy.max_delay),
                "base": 2,
            },
        }
        return {"prefix": self.prefix or None, "config": config,
                "client_options": client_options, "retry_config": retry_config}


def resolve_settings(url: str, options: S3Options, env: Mapping[str, str]) -> S3Settings:
    """Settings for ``s3://bucket/prefix``, taking what ``options`` leaves open from ``env``."""
    bucket, prefix = parse_s3_url(url)
    profile_values = shared_profile(env, options.profile)
    creds = resolve_credentials(env, profile_values, options.access_key_id, options.secret_access_key,
                                options.session_token)
    endpoint = _endpoint(options.endpoint, env, profile_values)
    region = (
        options.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        or profile_values.get("region") or DEFAULT_REGION
    )
    allow_http = options.allow_http
    if allow_http is None:
        allow_http = endpoint is not None and endpoint.startswith("http://")
    label = endpoint or f"AWS S3 ({region})"
    if creds is None and endpoint is not None and not has_ambient_credentials(env):
        raise BackendError(
            f"no S3 credentials for bucket {bucket} at {label}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (AWS_PROFILE)"
        )
    # Precedence: explicit option > explicit policy > environment knob > default.
    retry = options.retry
    policy = retry or DEFAULT_POLICY
    attempts = options.attempts or (retry and retry.attempts) \
        or _int_or_none(_float_env(env, ENV_ATTEMPTS)) or policy.attempts
    deadline = options.deadline or (retry and retry.deadline) or _float_env(env, ENV_DEADLINE) \
        or policy.deadline
    timeout = options.timeout or _float_env(env, ENV_TIMEOUT) or DEFAULT_TIMEOUT
    connect_timeout = options.connect_timeout or _float_env(env, ENV_CONNECT_TIMEOUT) \
        or DEFAULT_CONNECT_TIMEOUT
    return S3Settings(
        bucket=bucket, prefix=prefix, region=region, endpoint=endpoint, label=label,
        path_style=options.path_style, allow_http=allow_http, credentials=creds,
        attempts=attempts, deadline=deadline, timeout=timeout, connect_timeout=connect_timeout,
        policy=policy, conditional_writes=options.conditional_writes,
    )


def _endpoint(given: str | None, env: Mapping[str, str], profile_values: Mapping[str, str]) -> str | None:
    """The option, else the AWS environment, else the profile; None means AWS itself."""
    endpoint = (
        given
        or env.get("AWS_ENDPOINT_URL_S3")
        or env.get("AWS_ENDPOINT_URL")
        or profile_values.get("endpoint_url")
        or None
    )
    if endpoint is not None:
        endpoint = endpoint.rstrip("/")
        if not re.match(r"^https?://[^/]+", endpoint):
            raise UsageError(f"S3 endpoint must look like http(s)://host[:port], got {endpoint!r}")
    return endpoint


def _float_env(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number") from None


def _int_or_none(value: float | None) -> int | None:
    return int(value) if value is not None else None
