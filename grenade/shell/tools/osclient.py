#!/usr/bin/env python3
"""osclient - HTTP and keystone auth for oshttp.py (stdlib only, any Python 3.9+).

One HTTP exchange that returns every status (only transport errors raise), and
keystone v3 password or token auth from the ``OS_*`` variables with the service
catalog lookup. oshttp.py imports it from its own directory: ship the two together.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

DEFAULT_TIMEOUT = 30.0


class ClientError(Exception):
    """A failure the command reports in one line and turns into an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _verbose() -> bool:
    return os.environ.get("OSHTTP_VERBOSE", "") not in ("", "0", "false", "False")


def _log(message: str) -> None:
    print(f"oshttp: {message}", file=sys.stderr)


def http(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange; every status is returned, only transport errors raise."""
    req = urllib.request.Request(url, data=body, method=method.upper())
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    if body is not None and not req.has_header("Content-type"):
        req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, resp_headers, data = resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        status, resp_headers, data = exc.code, dict(exc.headers.items()), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"{method.upper()} {url}: cannot connect: {reason}", 3) from None
    if _verbose():
        _log(f"{method.upper()} {url} -> {status} ({time.monotonic() - started:.2f}s)")
    return status, resp_headers, data


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


class Auth:
    """Keystone v3 password or token auth from OS_* variables and flags."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.auth_url = (args.os_auth_url or "").rstrip("/")
        self.username = args.os_username
        self.password = args.os_password
        self.project_name = args.os_project_name
        self.project_id = args.os_project_id
        self.user_domain = (args.os_user_domain_id, args.os_user_domain_name)
        self.project_domain = (args.os_project_domain_id, args.os_project_domain_name)
        self.interface = args.os_interface
        self.region = args.os_region_name
        self.token = args.token
        self.catalog: list[dict] | None = None

    @property
    def identity_base(self) -> str:
        """OS_AUTH_URL without a version suffix: paths name their own /v3."""
        if not self.auth_url:
            raise ClientError("no auth URL: set OS_AUTH_URL (source openrc)", 2)
        base = self.auth_url
        for suffix in ("/v3", "/v3.0"):
            if base.endswith(suffix):
                return base[: -len(suffix)]
        return base

    def _domain(self, pair: tuple[str | None, str | None]) -> dict[str, str]:
        domain_id, domain_name = pair
        if domain_id:
            return {"id": domain_id}
        if domain_name:
            return {"name": domain_name}
        return {"id": "default"}

    def password_body(self) -> dict:
        if not (self.username and self.password):
            raise ClientError("password auth needs OS_USERNAME and OS_PASSWORD", 2)
        body: dict = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.username,
                            "password": self.password,
                            "domain": self._domain(self.user_domain),
                        }
                    },
                }
            }
        }
        if self.project_id:
            body["auth"]["scope"] = {"project": {"id": self.project_id}}
        elif self.project_name:
            body["auth"]["scope"] = {
                "project": {"name": self.project_name, "domain": self._domain(self.project_domain)}
            }
        return body

    def issue(self) -> tuple[str, dict]:
        """A new password token: (token id, token body)."""
        url = f"{self.identity_base}/v3/auth/tokens"
        status, headers, data = http("POST", url, body=json.dumps(self.password_body()).encode())
        if status != 201:
            raise ClientError(
                f"authentication as {self.username!r} failed: HTTP {status}: "
                f"{data.decode(errors='replace')[:300]}"
            )
        token = _header(headers, "X-Subject-Token")
        if not token:
            raise ClientError("keystone answered 201 without X-Subject-Token")
        body = json.loads(data)
        self.catalog = body.get("token", {}).get("catalog")
        return token, body

    def get_token(self) -> str:
        if not self.token:
            self.token, _ = self.issue()
        return self.token

    def endpoint(self, service_type: str) -> str:
        """The URL of ``service_type`` in the token's catalog (interface, region)."""
        if service_type == "identity":
            return self.identity_base
        if self.catalog is None:
            url = f"{self.identity_base}/v3/auth/catalog"
            status, _, data = http("GET", url, headers={"X-Auth-Token": self.get_token()})
            if status != 200:
                raise ClientError(f"GET {url}: HTTP {status}")
            self.catalog = json.loads(data).get("catalog", [])
        for service in self.catalog:
            if service.get("type") != service_type:
                continue
            for endpoint in service.get("endpoints", []):
                if endpoint.get("interface") != self.interface:
                    continue
                if self.region and endpoint.get("region_id", self.region) != self.region:
                    continue
                return endpoint["url"].rstrip("/")
        raise ClientError(
            f"no {self.interface} endpoint for service type {service_type!r} in the catalog"
        )
