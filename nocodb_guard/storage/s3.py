"""NocoDB's S3-compatible storage (its S3 / MinIO plugins): objects in one bucket.

NocoDB 0.301 stores an upload as the object ``nc/uploads/<y>/<m>/<d>/<hash>/<name>`` and
its thumbnails as ``nc/thumbnails/<y>/<m>/<d>/<hash>/<name>/{tiny,small,card_cover}.jpg``;
the attachment then carries ``url``: ``https://<endpoint host>/<bucket>/<key>`` (path
style) or ``https://<bucket>.<endpoint host>/<key>``, the key unescaped (measured on
0.301.3). The url is stored in the row, and a row can be edited through the API: it is
input. So the key is derived only from a url on the configured endpoint and bucket, every
component is checked (no ``..``, ``.`` or empty part, no backslash or control character:
some S3-compatible servers normalise such paths), and only keys under ``nc/uploads/`` and
their ``nc/thumbnails/`` folder are ever touched; anything else is :class:`StorageRefused`,
never "fixed". Verification after a purge is a listing: neither the object nor a thumbnail
may be left.

Client: boto3 (the optional extra ``nocodb-guard[s3]``), not a hand-written signer.
SigV4 has enough corners (canonical query strings, payload hashes, clock skew, region
redirects, MinIO and AWS quirks) that a signer of our own would be new security-relevant
code tested only against a mock; boto3 is what the S3-compatible servers test against.
It is imported when an S3 storage is built, so installations without the extra work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from urllib3.util import parse_url

from nocodb_guard.errors import ConfigError
from nocodb_guard.storage.base import StorageRefused, StorageUnavailable, StoredFile
from nocodb_guard.storage.s3_settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

UPLOADS = "nc/uploads/"
THUMBNAILS = "nc/thumbnails/"


def object_key(url: str, settings: S3Settings) -> str:
    """The object key behind an attachment's ``url``; :class:`StorageRefused` unless it is
    plainly an upload of the configured bucket on the configured endpoint.

    NocoDB builds the url by concatenation (``https://`` + endpoint host + bucket + raw
    key: a space in a file name stays a space), so the key is what follows that exact
    prefix, compared as a string: no URL parser gets to disagree about where it starts.
    """
    if any(ch < " " or ch in "\\\x7f" for ch in url):
        raise StorageRefused("url has control characters or backslashes: not touched")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise StorageRefused("url is not an http(s) url: not touched")
    host = endpoint_host(settings.endpoint)
    lowered = rest.lower()
    for prefix in (f"{host}/{settings.bucket}/", f"{settings.bucket}.{host}/"):
        if lowered.startswith(prefix):
            return checked_upload_key(rest[len(prefix) :])
    raise StorageRefused(f"url is not an object of bucket {settings.bucket!r} on the endpoint")


def endpoint_host(endpoint: str) -> str:
    """``host[:port]`` as NocoDB writes it in urls (lower case, no default port)."""
    parsed = parse_url(endpoint)
    default = {"http": 80, "https": 443}.get(parsed.scheme or "")
    host = (parsed.host or "").lower()
    return host if parsed.port in (None, default) else f"{host}:{parsed.port}"


def anonymous_status(url: str, settings: S3Settings, timeout: float = 10.0) -> int | None:
    """The HTTP status anyone gets for the object behind ``url``, unsigned; None: no answer.

    200 means the bucket serves uploads publicly (a ``public-read`` ACL such as NocoDB's
    ``NC_S3_ACL``, or a bucket policy): whoever learns one url can guess its neighbours.
    Only the configured endpoint is asked, with no credentials.
    """
    key = quote(object_key(url, settings), safe="/")
    scheme, host = parse_url(settings.endpoint).scheme, endpoint_host(settings.endpoint)
    if settings.force_path_style:
        target = f"{scheme}://{host}/{settings.bucket}/{key}"
    else:
        target = f"{scheme}://{settings.bucket}.{host}/{key}"
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment sees the request
        try:
            with session.get(target, timeout=timeout, allow_redirects=False, stream=True) as got:
                return got.status_code
        except requests.RequestException:
            return None


def checked_upload_key(key: str) -> str:
    """``key`` when it names a file below ``nc/uploads/`` without tricks; else refused."""
    if not key.startswith(UPLOADS):
        raise StorageRefused(f"object key is not below {UPLOADS!r}: not touched")
    parts = key[len(UPLOADS) :].split("/")
    if len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
        raise StorageRefused("object key has an empty, '.' or '..' part: not touched")
    return key


def thumbnail_prefix(key: str) -> str:
    """Where NocoDB puts the thumbnails of the upload ``key`` (a folder named after it)."""
    return THUMBNAILS + key[len(UPLOADS) :] + "/"


class S3Storage:
    """:class:`~nocodb_guard.storage.base.StorageBackend` for one bucket of an S3 API."""

    name = "s3"

    def __init__(self, settings: S3Settings, client: S3Client) -> None:
        self.settings = settings
        self._client = client

    def remove(self, file: StoredFile) -> int:
        key = self._key_of(file)
        present = self._listed(key)
        targets = [k for k in present if k == key] + self._thumbnails(key)
        for target in targets:
            self._call(self._client.delete_object, Bucket=self.settings.bucket, Key=target)
        return len(targets)

    def exists(self, file: StoredFile) -> bool:
        key = self._key_of(file)
        return key in self._listed(key) or bool(self._thumbnails(key))

    def identity(self, file: StoredFile) -> str:
        return self._key_of(file)

    def probe(self) -> str:
        # Listing is what the purge itself needs (s3:ListBucket); HeadBucket would need it
        # without a prefix, which a least-privilege policy limited to nc/ does not grant.
        bucket, endpoint = self.settings.bucket, self.settings.endpoint
        self._call(self._client.list_objects_v2, Bucket=bucket, Prefix=UPLOADS, MaxKeys=1)
        return (
            f"bucket {bucket!r} on {endpoint} answers and may be listed "
            "(the delete permission shows at the first purge)"
        )

    def _key_of(self, file: StoredFile) -> str:
        if file.url is None:
            raise StorageRefused("attachment has no url (stored on local disk? set the data dir)")
        return object_key(file.url, self.settings)

    def _thumbnails(self, key: str) -> list[str]:
        prefix = thumbnail_prefix(key)
        listed = self._listed(prefix)
        return [k for k in listed if k.startswith(prefix) and "/" not in k[len(prefix) :]]

    def _listed(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (a thumbnail folder holds three; an upload one)."""
        answer = self._call(
            self._client.list_objects_v2, Bucket=self.settings.bucket, Prefix=prefix, MaxKeys=100
        )
        return [str(o.get("Key", "")) for o in answer.get("Contents", [])]

    def _call(self, method: Any, **params: Any) -> Any:
        """One S3 request; a refusal or an outage is :class:`StorageUnavailable` (retried)."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 (the extra)

        try:
            return method(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise StorageUnavailable(
                f"S3 {self.settings.endpoint} bucket {self.settings.bucket!r}: {code}"
            ) from None
        except BotoCoreError as exc:
            raise StorageUnavailable(
                f"S3 {self.settings.endpoint} unreachable: {exc.__class__.__name__}"
            ) from None


def s3_storage(settings: S3Settings, connect_timeout: float, read_timeout: float) -> S3Storage:
    """The storage with a boto3 client on the operator's keys; ConfigError when unusable."""
    try:  # the optional extra: imported only when an S3 storage is configured
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415
    except ImportError:
        raise ConfigError(
            "s3: boto3 is not installed; install the extra: pip install 'nocodb-guard[s3]'"
        ) from None
    access_key, secret_key = settings.keys()
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint,
        region_name=settings.region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path" if settings.force_path_style else "virtual"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )
    return S3Storage(settings, client)
