"""A tiny IMDSv2 server on 127.0.0.1, for the consumer's spot-interruption, identity and provenance tests
(and, bound to podman's bridge gateway, for a build-instance container in the Packer test).

Like an instance launched with `http_tokens = required`, it answers a metadata read only with a
token obtained by `PUT /latest/api/token`; a token-less read gets 401. `spot_notice()` makes
`spot/instance-action` answer as AWS does two minutes before an interruption.

    with LocalIMDS() as imds:
        ... CAPILLARY_IMDS_URL=imds.url ...
        imds.spot_notice()
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalIMDS:
    def __init__(
        self,
        instance_id: str = "i-0123456789abcdef0",
        instance_type: str = "m6i.xlarge",
        ami_id: str = "ami-0123456789abcdef0",
        host: str = "127.0.0.1",
        availability_zone: str = "eu-west-1a",
        life_cycle: str = "on-demand",
        launch_time: str = "2026-11-21T00:00:00Z",
    ) -> None:
        self.metadata: dict[str, str] = {
            "instance-id": instance_id,
            "instance-type": instance_type,
            "ami-id": ami_id,
            "placement/availability-zone": availability_zone,
            "instance-life-cycle": life_cycle,
        }
        # `latest/dynamic/<path>`: the instance identity document, as AWS shapes it.
        self.dynamic: dict[str, str] = {
            "instance-identity/document": json.dumps(
                {
                    "instanceId": instance_id,
                    "instanceType": instance_type,
                    "imageId": ami_id,
                    "availabilityZone": availability_zone,
                    "region": availability_zone[:-1],
                    "pendingTime": launch_time,
                    "architecture": "x86_64",
                }
            )
        }
        self.tokens: set[str] = set()
        self.rejected = 0
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                with owner._lock:
                    owner.requests.append(("PUT", self.path))
                if self.path != "/latest/api/token" or not self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    self._send(400)
                    return
                token = secrets.token_urlsafe(24)
                with owner._lock:
                    owner.tokens.add(token)
                self._send(200, token)

            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests.append(("GET", self.path))
                    valid = self.headers.get("X-aws-ec2-metadata-token") in owner.tokens
                    if not valid:
                        owner.rejected += 1
                if not valid:
                    self._send(401)
                    return
                value = None
                with owner._lock:
                    for prefix, table in (
                        ("/latest/meta-data/", owner.metadata),
                        ("/latest/dynamic/", owner.dynamic),
                    ):
                        if self.path.startswith(prefix):
                            value = table.get(self.path[len(prefix) :])
                if value is None:
                    self._send(404)
                else:
                    self._send(200, value)

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalIMDS:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalIMDS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_metadata(self, path: str, value: str) -> None:
        """What `GET /latest/meta-data/<path>` answers from now on (e.g. a late-known instance-id)."""
        with self._lock:
            self.metadata[path] = value

    def spot_notice(self, action: str = "terminate", in_s: int = 120) -> None:
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=in_s)
        notice = json.dumps({"action": action, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
        with self._lock:
            self.metadata["spot/instance-action"] = notice
