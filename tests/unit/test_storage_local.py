"""Local storage: removes exactly the upload and its thumbnails, refuses anything that escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nocodb_guard.storage.base import StorageRefused, StorageUnavailable, StoredFile
from nocodb_guard.storage.local import LocalStorage, relative_parts

FOLDER = "2026/12/01/60e65c63f9091a580cbaec91b037645612f9eb7e"
THUMBS = ("tiny.jpg", "small.jpg", "card_cover.jpg")


def lay_out(data: Path, name: str, folder: str = FOLDER) -> StoredFile:
    """A file as NocoDB stores a form upload: the upload plus three thumbnails."""
    upload = data / "nc" / "uploads" / folder / name
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_bytes(b"picture")
    thumbs = data / "nc" / "thumbnails" / folder / name
    thumbs.mkdir(parents=True, exist_ok=True)
    for thumb in THUMBS:
        (thumbs / thumb).write_bytes(b"thumb")
    return StoredFile(path=f"download/{folder}/{name}")


def test_removes_the_upload_and_its_thumbnail_folder_only(tmp_path: Path) -> None:
    target = lay_out(tmp_path, "face_ab12C.jpg")
    lay_out(tmp_path, "other_zz99Z.jpg")
    storage = LocalStorage(tmp_path)

    assert storage.exists(target)
    assert storage.remove(target) == 4
    assert not storage.exists(target)
    assert not (tmp_path / "nc/thumbnails" / FOLDER / "face_ab12C.jpg").exists()
    assert (tmp_path / "nc/uploads" / FOLDER / "other_zz99Z.jpg").is_file()
    assert len(list((tmp_path / "nc/thumbnails" / FOLDER / "other_zz99Z.jpg").iterdir())) == 3


def test_a_file_already_gone_counts_as_removed(tmp_path: Path) -> None:
    target = lay_out(tmp_path, "face.jpg")
    storage = LocalStorage(tmp_path)
    storage.remove(target)
    assert storage.remove(target) == 0


@pytest.mark.parametrize(
    "path",
    [
        "download/../../etc/passwd",
        "download/2026/../../../secret.jpg",
        "download//etc/passwd",
        "/etc/passwd",
        "download/./face.jpg",
        "download/face.jpg",
        "download/2026/x\\..\\y.jpg",
        "download/2026/\x00.jpg",
        "nc/uploads/2026/face.jpg",
        "https://evil.example/face.jpg",
    ],
)
def test_paths_that_could_escape_the_folder_are_refused(tmp_path: Path, path: str) -> None:
    lay_out(tmp_path, "face.jpg")
    with pytest.raises(StorageRefused):
        LocalStorage(tmp_path).remove(StoredFile(path=path))


def test_a_symlinked_folder_below_the_data_folder_is_not_followed(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    lay_out(data, "face.jpg")
    (outside / "hash").mkdir(parents=True)
    victim = outside / "hash" / "victim.jpg"
    victim.write_bytes(b"keep me")
    os.symlink(outside, data / "nc/uploads/2026/link")

    with pytest.raises(StorageRefused):
        LocalStorage(data).remove(StoredFile(path="download/2026/link/hash/victim.jpg"))
    assert victim.read_bytes() == b"keep me"


def test_a_symlink_in_place_of_the_file_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    lay_out(tmp_path, "face.jpg")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "nc/uploads" / FOLDER / "link.jpg"
    os.symlink(victim, link)

    with pytest.raises(StorageRefused):
        LocalStorage(tmp_path).remove(StoredFile(path=f"download/{FOLDER}/link.jpg"))
    assert victim.read_text() == "keep me"


def test_a_symlink_inside_the_thumbnail_folder_is_refused(tmp_path: Path) -> None:
    target = lay_out(tmp_path, "face.jpg")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "nc/thumbnails" / FOLDER / "face.jpg" / "evil.jpg")

    with pytest.raises(StorageRefused):
        LocalStorage(tmp_path).remove(target)
    assert victim.read_text() == "keep me"


def test_a_folder_without_nc_uploads_is_not_nocodbs_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(StorageUnavailable, match="nc/uploads"):
        storage.remove(StoredFile(path=f"download/{FOLDER}/face.jpg"))
    with pytest.raises(StorageUnavailable):
        storage.probe()


def test_a_missing_data_folder_is_unavailable_not_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "not-mounted")
    with pytest.raises(StorageUnavailable, match="not-mounted"):
        storage.remove(StoredFile(path=f"download/{FOLDER}/face.jpg"))


def test_probe_names_the_upload_folder(tmp_path: Path) -> None:
    lay_out(tmp_path, "face.jpg")
    assert "nc/uploads" in LocalStorage(tmp_path).probe()


def test_s3_attachments_are_not_touched_by_local_storage(tmp_path: Path) -> None:
    with pytest.raises(StorageRefused, match="S3"):
        LocalStorage(tmp_path).remove(StoredFile(url="https://bucket.example/face.jpg"))


def test_relative_parts_of_a_form_upload() -> None:
    assert relative_parts(f"download/{FOLDER}/face_ab12C.jpg") == (
        *FOLDER.split("/"),
        "face_ab12C.jpg",
    )
