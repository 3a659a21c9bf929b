"""S3 storage against a real S3-compatible server (moto's, on 127.0.0.1): what it removes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nocodb_guard.models import Attachment, Row
from nocodb_guard.settings import load_settings
from nocodb_guard.storage.base import PurgeStatus, StorageUnavailable, StoredFile
from nocodb_guard.storage.config import backend_from_settings
from nocodb_guard.storage.purge import Purger
from nocodb_guard.storage.queue import PurgeQueue
from nocodb_guard.storage.s3 import S3Storage, anonymous_status
from tests.integration.conftest import free_port
from tests.s3server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server, running_s3
from tests.unit.test_storage_purge import Table, delete

FOLDER = "2026/12/01/60e65c63f9091a580cbaec91b037645612f9eb7e"
THUMBS = ("card_cover.jpg", "small.jpg", "tiny.jpg")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3(free_port()) as server:
        yield server


@pytest.fixture
def storage(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    """Built from settings as an operator writes them: keys in two secret files."""
    (tmp_path / "access").write_text(ACCESS_KEY + "\n")
    (tmp_path / "secret").write_text(SECRET_KEY + "\n")
    monkeypatch.setenv(
        "NOCODB_GUARD_S3",
        f'{{"endpoint": "{s3.endpoint}", "bucket": "{BUCKET}", '
        f'"access_key_file": "{tmp_path / "access"}", "secret_key_file": "{tmp_path / "secret"}"}}',
    )
    backend = backend_from_settings(load_settings(state_dir=tmp_path / "state"))
    assert isinstance(backend, S3Storage)
    return backend


def upload(s3: S3Server, name: str) -> StoredFile:
    """An object as NocoDB's S3 plugin stores a form upload: the file plus three thumbnails."""
    key = f"nc/uploads/{FOLDER}/{name}"
    s3.put(key, b"picture")
    for thumb in THUMBS:
        s3.put(f"nc/thumbnails/{FOLDER}/{name}/{thumb}", b"thumb")
    return StoredFile(url=f"https://127.0.0.1:{s3.port}/{BUCKET}/{key}")


def keys_of(s3: S3Server, name: str) -> list[str]:
    return [k for k in s3.listed() if f"/{FOLDER}/{name}" in k]


def test_removes_the_upload_and_its_thumbnails_only(s3: S3Server, storage: S3Storage) -> None:
    target = upload(s3, "grace hopper_ZtNBy.jpg")
    upload(s3, "grace hopper_ZtNBy.jpg.bak")  # a longer key with the same beginning
    upload(s3, "other_ab12C.jpg")

    assert storage.exists(target)
    assert storage.remove(target) == 4
    assert not storage.exists(target)
    assert keys_of(s3, "grace hopper_ZtNBy.jpg/") == []
    assert f"nc/uploads/{FOLDER}/grace hopper_ZtNBy.jpg" not in s3.listed()
    assert len(keys_of(s3, "grace hopper_ZtNBy.jpg.bak")) == 4
    assert len(keys_of(s3, "other_ab12C.jpg")) == 4


def test_an_upload_already_gone_is_done_with_nothing_removed(
    s3: S3Server, storage: S3Storage
) -> None:
    gone = upload(s3, "gone_aaaaa.jpg")
    storage.remove(gone)
    assert storage.remove(gone) == 0
    assert not storage.exists(gone)


def test_probe_says_the_bucket_answers(storage: S3Storage) -> None:
    assert BUCKET in storage.probe()


def test_an_outage_is_unavailable_never_refused(s3: S3Server, storage: S3Storage) -> None:
    target = upload(s3, "outage_bbbbb.jpg")
    s3.stop()
    try:
        for action in (storage.probe, lambda: storage.remove(target)):
            with pytest.raises(StorageUnavailable, match="unreachable"):
                action()
    finally:
        s3.start()
    assert storage.exists(target)


def test_a_missing_bucket_is_named(s3: S3Server, storage: S3Storage) -> None:
    other = storage.settings.model_copy(update={"bucket": "no-such-bucket"})
    elsewhere = S3Storage(other, s3.client())
    with pytest.raises(StorageUnavailable, match="no-such-bucket"):
        elsewhere.probe()


def test_an_anonymous_fetch_tells_a_private_object_from_a_public_one(
    s3: S3Server, storage: S3Storage
) -> None:
    file = upload(s3, "exposed_ccccc.jpg")
    assert file.url is not None
    assert anonymous_status(file.url, storage.settings) == 403

    key = f"nc/uploads/{FOLDER}/exposed_ccccc.jpg"
    s3.client().put_object_acl(Bucket=BUCKET, Key=key, ACL="public-read")  # NC_S3_ACL's doing
    assert anonymous_status(file.url, storage.settings) == 200


def spellings(s3: S3Server, key: str) -> dict[str, str]:
    """Urls of one object that NocoDB's cells may hold (path style, virtual-hosted, casing)."""
    return {
        "path style": f"https://127.0.0.1:{s3.port}/{BUCKET}/{key}",
        "virtual-hosted": f"https://{BUCKET}.127.0.0.1:{s3.port}/{key}",
        "plain http": f"http://127.0.0.1:{s3.port}/{BUCKET}/{key}",
        "upper-case host": f"HTTPS://{BUCKET.upper()}.127.0.0.1:{s3.port}/{key}",
    }


@pytest.mark.parametrize(
    ("deleted", "used"),
    [
        ("path style", "virtual-hosted"),
        ("virtual-hosted", "path style"),
        ("path style", "plain http"),
        ("path style", "upper-case host"),
    ],
)
def test_an_object_another_row_spells_differently_is_kept(
    s3: S3Server, storage: S3Storage, tmp_path: Path, deleted: str, used: str
) -> None:
    name = f"shared by {deleted} and {used}.jpg"
    upload(s3, name)
    urls = spellings(s3, f"nc/uploads/{FOLDER}/{name}")
    purger = Purger(storage, PurgeQueue(tmp_path), Table(urls[used]))
    gone = Row(id=7, politician="Jane", attachments=(Attachment(title=name, url=urls[deleted]),))

    assert delete(purger, gone) == [PurgeStatus.KEPT_REFERENCED]
    assert len(keys_of(s3, name)) == 4
