"""A real S3-compatible server on 127.0.0.1 for the tests: moto's, in a thread of the test run.

moto's server speaks the S3 REST API (SigV4, path-style buckets, ListObjectsV2,
DeleteObject) over real HTTP, so NocoDB's S3 plugin (the AWS SDK for JavaScript) and the
guard's boto3 client talk to it exactly as they would to MinIO or AWS. Its objects live
in this process, so the server can be stopped (an outage: connections refused) and
started again on the same port with the bucket as it was. Tests skip with a clear
message when moto is not installed or the port cannot be bound.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.config import Config
from werkzeug.serving import BaseWSGIServer, make_server

werkzeug_app = pytest.importorskip(
    "moto.moto_server.werkzeug_app",
    reason="no S3-compatible server: moto[s3] (a dev extra) is not installed",
)

BUCKET = "nocodb-uploads"
REGION = "us-east-1"
ACCESS_KEY = "guard-access-key"
SECRET_KEY = "guard-secret-key-0123456789"


class S3Server:
    """moto's S3 API on ``127.0.0.1:port``, and the operator's view of the bucket."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        app = werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app)
        self._server = make_server(
            "127.0.0.1",
            self.port,
            app,
            threaded=True,
            request_handler=werkzeug_app.MotoRequestHandler,
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """An outage: the port refuses connections until :meth:`start` (objects are kept)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def listed(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``, sorted (listed through the API)."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def put(self, key: str, body: bytes = b"x") -> None:
        self.client().put_object(Bucket=BUCKET, Key=key, Body=body)


@contextmanager
def running_s3(port: int) -> Iterator[S3Server]:
    """The server with the bucket created; skip when it cannot listen."""
    server = S3Server(port)
    try:
        server.start()
    except OSError as exc:
        pytest.skip(f"no S3-compatible server: cannot listen on 127.0.0.1:{port} ({exc})")
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()
