"""One root exception; each error belongs to one of four reactions the code really has.

- **Retry later** (:class:`RetryLater`): transient (NocoDB down, 5xx, 429, timeouts, a
  half-downloaded file). The row in hand is deferred untouched, or the whole tick fails;
  the next pass tries again.
- **This row only** (:class:`RowGone`, :class:`UrlNotAllowed`): the row cannot be handled
  now, the others can. The sweep catches each by name (a vanished row is reported as gone,
  an unallowed URL defers the row); neither is ever a reason to delete.
- **A definitive fact about the upload** (:class:`BadPicture`, :class:`DownloadTooLarge`):
  the bytes themselves are the verdict; the row is rejected with the matching ``Reason``.
- **Stop** (:class:`Stop`): nothing will work until a person acts (bad settings, rejected
  token, broken face stack, another sweep running). The CLI maps each to an exit code.
  :class:`ReferenceSetError` stops start-up and the CLI, but a sweep downgrades it to the
  rows of that one politician (see its docstring).
"""

from __future__ import annotations

from nocodb_guard.models import PictureProblem


class GuardError(Exception):
    """Root of every error nocodb-guard raises on purpose."""


class RetryLater(GuardError):
    """A transient failure: try again on a later pass."""


class NocoDBUnavailable(RetryLater):
    """NocoDB did not answer usefully (refused, timeout, 5xx, 429) within the retry budget."""


class DownloadFailed(RetryLater):
    """An attachment could not be fully downloaded right now."""


class RowGone(GuardError):
    """The row no longer exists (deleted by an admin between listing and acting): this row only."""


class UrlNotAllowed(GuardError):
    """An attachment points outside the NocoDB origin and the allow-list: the row is deferred."""


class DownloadTooLarge(GuardError):
    """The attachment is larger than the byte cap: a definitive fact about the upload."""


class Stop(GuardError):
    """Nothing will work until a person acts. ``exit_code`` is what the CLI returns."""

    exit_code = 2


class ConfigError(Stop):
    """A setting is missing or invalid."""

    exit_code = 2


class ReferenceSetError(Stop):
    """A politician's reference photos are unusable (unreadable, not exactly one face).

    A Stop where a person is there to act: start-up, ``check``, ``explain``. While the
    service runs (an admin replaced a photo), the sweep catches it per row and defers only
    that politician's rows, so one bad folder never halts moderation of the others.
    """

    exit_code = 2


class FaceStackError(Stop):
    """face_recognition / dlib / their models cannot be imported."""

    exit_code = 2


class NocoDBAuthError(Stop):
    """NocoDB refused the token (401/403) or the table does not exist."""

    exit_code = 3


class SchemaError(Stop):
    """The table lacks a configured field, or a field has the wrong type."""

    exit_code = 2


class AlreadyRunning(Stop):
    """Another sweep holds the lock on this host."""

    exit_code = 4


class BadPicture(GuardError):
    """The bytes are not a picture we can judge: a definitive fact about the upload.

    ``reason`` travels as the :class:`~nocodb_guard.models.Reason` the row is rejected with
    (not an image, unreadable, too large, animated).
    """

    def __init__(self, reason: PictureProblem, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class AttachmentNotFound(DownloadFailed):
    """The attachment link answered 404/410 (or 401/403, as S3 does for an expired signature).

    Usually an expired ``signedPath``: the NocoDB client re-reads the row for a fresh link
    and tries once more. Still transient from the row's point of view.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AttachmentMissing(DownloadFailed):
    """Even a freshly signed link answers 404: the file is missing on NocoDB's side.

    Not the uploader's fault (so never a reason to delete), and not something the next
    pass is likely to fix either: the row is deferred, and an operator should look.
    """


class FileNotOnNocoDB(AttachmentMissing):
    """The row still names the file, and a freshly signed link to it answers 404.

    Deferred like any :class:`AttachmentMissing`; confirmed an hour later, while other
    files download fine, it is final (see :mod:`nocodb_guard.missing_files`).
    """


class AttachmentRefused(DownloadFailed):
    """Even a freshly signed link answers 401/403: access is refused, the file may well exist.

    A proxy's authentication or a storage policy in front of the files, not a missing file
    (and not the uploader's doing): the row is deferred and an operator should look.
    """


class NocoDBRequestError(Stop):
    """NocoDB refused a request as malformed (400/422, an unexpected 404 or redirect).

    Retrying the same request cannot help: a setting (a status value outside the select
    options, a field name) or this program is wrong.
    """

    exit_code = 2
