"""What counts as "the same upload" when a row is read again before acting on it.

Acting on a row that an admin changed since it was judged would apply an old verdict to a
new upload, so the re-read compares the politician and the files, and nothing else: fresh
signed links on every read must not look like a change.
"""

from __future__ import annotations

from dataclasses import replace

from nocodb_guard.models import Attachment, Row

PHOTO = Attachment(
    title="me.jpg", size=1000, path="download/a/me.jpg",
    signed_path="dltemp/first/me.jpg", id="att1",
)
JUDGED = Row(id=7, politician="Grace Hopper", attachments=(PHOTO,))


def test_the_same_row_with_freshly_signed_links_is_the_same_upload() -> None:
    reread = replace(JUDGED, attachments=(replace(PHOTO, signed_path="dltemp/second/me.jpg"),))
    assert reread.same_upload_as(JUDGED)


def test_an_admin_changing_only_the_politician_makes_it_another_upload() -> None:
    """The picture was judged against Grace Hopper's references, not against anyone else's."""
    reread = replace(JUDGED, politician="Eileen Collins")
    assert not reread.same_upload_as(JUDGED)


def test_a_replaced_photo_with_the_same_title_is_another_upload() -> None:
    reread = replace(JUDGED, attachments=(replace(PHOTO, path="download/b/me.jpg"),))
    assert not reread.same_upload_as(JUDGED)


def test_an_added_photo_is_another_upload() -> None:
    other = replace(PHOTO, title="two.jpg", path="download/c/two.jpg")
    assert not replace(JUDGED, attachments=(PHOTO, other)).same_upload_as(JUDGED)
