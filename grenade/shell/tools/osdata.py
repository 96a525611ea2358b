#!/usr/bin/env python3
"""osdata - move object and image data for shell scripts (stdlib only).

oshttp.py speaks JSON; swift objects and glance images are bytes. This tool uploads a
file and downloads a body to a file, streaming both, and prints what a check needs
as one JSON document: the status, the response headers (names lower-cased), and for a
download the body's size and md5::

    osdata.py put URL FILE [--header 'K: V']... [--expect CODES]
    osdata.py get URL [--output FILE] [--header 'K: V']... [--expect CODES]
    osdata.py head URL [--header 'K: V']... [--expect CODES]
    osdata.py digest FILE                 {"size": N, "md5": "..."} of a local file

The token comes from ``--token`` or ``OS_TOKEN`` (sent as X-Auth-Token). Exit codes:
0 success, 1 unexpected HTTP status, 2 usage, 3 connection error.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import urllib.parse
from typing import IO

CHUNK = 1 << 16
DEFAULT_TIMEOUT = 60.0


class Failure(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _headers(args: argparse.Namespace) -> dict[str, str]:
    headers = {}
    token = args.token or os.environ.get("OS_TOKEN")
    if token:
        headers["X-Auth-Token"] = token
    for item in args.header:
        key, sep, value = item.partition(":")
        if not sep:
            raise Failure(f"--header {item!r}: expected 'Name: value'", 2)
        headers[key.strip()] = value.strip()
    return headers


def _connect(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Failure(f"{url}: not an http(s) URL", 2)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return conn, path


def exchange(
    method: str,
    url: str,
    headers: dict[str, str],
    upload: IO[bytes] | None = None,
    size: int | None = None,
    sink: IO[bytes] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict:
    """One request; the body goes to ``sink`` (or is discarded) while it is hashed."""
    conn, path = _connect(url, timeout)
    if upload is not None:
        headers = {"Content-Type": "application/octet-stream", **headers}
        headers["Content-Length"] = str(size)
    try:
        conn.request(method, path, body=upload, headers=headers)
        resp = conn.getresponse()
        digest, length = hashlib.md5(usedforsecurity=False), 0
        while chunk := resp.read(CHUNK):
            digest.update(chunk)
            length += len(chunk)
            if sink is not None:
                sink.write(chunk)
    except OSError as exc:
        raise Failure(f"{method} {url}: cannot connect: {exc}", 3) from None
    finally:
        conn.close()
    result = {
        "status": resp.status,
        "headers": {k.lower(): v for k, v in resp.getheaders()},
        "size": length,
    }
    if method != "HEAD":
        result["md5"] = digest.hexdigest()
    return result


def _expected(spec: str | None, status: int) -> bool:
    if not spec:
        return 200 <= status < 300
    return status in {int(code) for code in spec.split(",") if code.strip()}


def _check(args: argparse.Namespace, result: dict) -> dict:
    if not _expected(args.expect, result["status"]):
        raise Failure(
            f"{args.command.upper()} {args.url}: HTTP {result['status']} "
            f"(expected {args.expect or '2xx'})"
        )
    return result


def cmd_put(args: argparse.Namespace) -> dict:
    size = os.path.getsize(args.file)
    with open(args.file, "rb") as data:
        return _check(
            args, exchange("PUT", args.url, _headers(args), data, size, None, args.timeout)
        )


def cmd_get(args: argparse.Namespace) -> dict:
    if not args.output:
        return _check(args, exchange("GET", args.url, _headers(args), timeout=args.timeout))
    tmp = f"{args.output}.part"
    with open(tmp, "wb") as sink:
        result = exchange("GET", args.url, _headers(args), sink=sink, timeout=args.timeout)
    if not _expected(args.expect, result["status"]):
        os.unlink(tmp)
    else:
        os.replace(tmp, args.output)
    return _check(args, result)


def cmd_head(args: argparse.Namespace) -> dict:
    return _check(args, exchange("HEAD", args.url, _headers(args), timeout=args.timeout))


def cmd_digest(args: argparse.Namespace) -> dict:
    digest, size = hashlib.md5(usedforsecurity=False), 0
    with open(args.file, "rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "md5": digest.hexdigest()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="osdata.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--token")
    sub = p.add_subparsers(dest="command", required=True)
    for name, func in (("put", cmd_put), ("get", cmd_get), ("head", cmd_head)):
        cmd = sub.add_parser(name)
        cmd.add_argument("url")
        if name == "put":
            cmd.add_argument("file")
        if name == "get":
            cmd.add_argument("--output", help="write the body here (else only hash it)")
        cmd.add_argument("--header", action="append", default=[])
        cmd.add_argument("--expect")
        cmd.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
        cmd.set_defaults(func=func)
    dig = sub.add_parser("digest")
    dig.add_argument("file")
    dig.set_defaults(func=cmd_digest)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = args.func(args)
    except Failure as exc:
        print(f"osdata: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(f"osdata: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
