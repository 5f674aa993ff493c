"""Where an S3 repository is and who may open it: the URL, and credentials in the AWS order.

Credentials: explicit options, else ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_SESSION_TOKEN``, else the profile (``AWS_PROFILE`` or ``default``) in the shared files
``~/.aws/credentials`` and ``~/.aws/config`` (obstore does not read those files itself), else what
obstore finds on its own (web identity, ECS/EKS container credentials, EC2 instance metadata).
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import UsageError


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
