"""A small IMDSv2 client: a session token first, then every read with it.

Workers are launched with `http_tokens = required`, so IMDSv1 reads fail there by design. Only
the few paths the consumer needs are exposed; the spot notice is `None` until AWS schedules an
interruption (the path answers 404 before that).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

TOKEN_TTL_S = 21600
_TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 - a header name, not a secret


class IMDSError(RuntimeError):
    """The metadata service could not be reached or refused the request."""


@dataclass(frozen=True)
class SpotNotice:
    action: str
    time: str


class IMDSClient:
    def __init__(self, base_url: str = "http://169.254.169.254", timeout_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._token = ""
        self._token_expires = 0.0
        self._lock = threading.Lock()

    def _opener(self) -> urllib.request.OpenerDirector:
        # The metadata service is link-local: never go through a proxy to reach it.
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def token(self) -> str:
        with self._lock:
            if self._token and time.monotonic() < self._token_expires:
                return self._token
            # base_url is checked to be http(s) by the configuration.
            req = urllib.request.Request(  # noqa: S310
                f"{self.base_url}/latest/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)},
            )
            try:
                with self._opener().open(req, timeout=self.timeout_s) as resp:
                    self._token = resp.read().decode()
            except (urllib.error.URLError, OSError) as exc:
                raise IMDSError(f"IMDSv2 token request to {self.base_url} failed: {exc}") from exc
            # Renew well before the service would reject it.
            self._token_expires = time.monotonic() + TOKEN_TTL_S - 60
            return self._token

    def get(self, path: str, root: str = "meta-data") -> str | None:
        """The text at `latest/<root>/<path>`, or None when the service answers 404."""
        for attempt in (1, 2):
            req = urllib.request.Request(  # noqa: S310
                f"{self.base_url}/latest/{root}/{path.lstrip('/')}",
                headers={_TOKEN_HEADER: self.token()},
            )
            try:
                with self._opener().open(req, timeout=self.timeout_s) as resp:
                    body: bytes = resp.read()
                    return body.decode()
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401 and attempt == 1:  # token expired or revoked: fetch a new one
                    with self._lock:
                        self._token = ""
                    continue
                raise IMDSError(f"IMDS {path}: HTTP {exc.code}") from exc
            except (urllib.error.URLError, OSError) as exc:
                raise IMDSError(f"IMDS {path}: {exc}") from exc
        raise IMDSError(f"IMDS {path}: token rejected twice")  # pragma: no cover

    def instance_id(self) -> str | None:
        return self.get("instance-id")

    def instance_type(self) -> str | None:
        return self.get("instance-type")

    def ami_id(self) -> str | None:
        return self.get("ami-id")

    def availability_zone(self) -> str | None:
        return self.get("placement/availability-zone")

    def purchase_option(self) -> str | None:
        """`spot` or `on-demand` (IMDS `instance-life-cycle`; `scheduled` for the retired kind)."""
        return self.get("instance-life-cycle")

    def identity_document(self) -> dict[str, Any]:
        """The instance identity document; its `pendingTime` is when the instance was launched
        (or last started), the one launch time an instance can read without an API call."""
        text = self.get("instance-identity/document", root="dynamic")
        if text is None:
            return {}
        try:
            data: Any = json.loads(text)
        except ValueError as exc:
            raise IMDSError(f"IMDS instance-identity/document: not JSON ({exc})") from exc
        return data if isinstance(data, dict) else {}

    def spot_notice(self) -> SpotNotice | None:
        text = self.get("spot/instance-action")
        if text is None:
            return None
        try:
            data: Any = json.loads(text)
            return SpotNotice(action=str(data.get("action", "")), time=str(data.get("time", "")))
        except (ValueError, AttributeError):
            return SpotNotice(action="unknown", time="")

    def identity(self) -> dict[str, str]:
        """instance id, type and image id for `run.json`, then its zone, region, purchase option
        (`spot`/`on-demand`) and launch time where IMDS answers them; empty when not on EC2 (or
        IMDS is off)."""
        out: dict[str, str] = {}
        for name, fetch in (
            ("instance_id", self.instance_id),
            ("instance_type", self.instance_type),
            ("image_id", self.ami_id),
        ):
            try:
                value = fetch()
            except IMDSError:
                return out
            if value:
                out[name] = value
        try:
            zone = self.availability_zone()
            purchase = self.purchase_option()
            document = self.identity_document()
        except IMDSError:
            return out
        extra = {
            "availability_zone": zone,
            "region": document.get("region"),
            "purchase_option": purchase,
            "launch_time": document.get("pendingTime"),
        }
        out.update({k: str(v) for k, v in extra.items() if v})
        return out
