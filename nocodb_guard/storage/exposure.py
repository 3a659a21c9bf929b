"""Is a stored file still served? An anonymous request to NocoDB, as any visitor could send.

Used after a purge (the file must no longer answer 200) and by ``check`` (an approved
file answering 200 on its unsigned ``/download/...`` path means anyone who learns one
path can guess the folder of the others: NocoDB should run with
``NC_SECURE_ATTACHMENTS=true``). Only the NocoDB origin is ever asked, with no token.
"""

from __future__ import annotations

from urllib.parse import quote

import requests

from nocodb_guard.storage.base import StorageRefused

#: The routes NocoDB serves stored files on: unsigned (``download/``) and signed links.
FILE_ROUTES = ("download/", "dltemp/")


class AnonymousProbe:
    """GETs ``{nocodb_url}/{path}`` without credentials; reads at most a few bytes."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy from the environment sees the request

    def status(self, path: str) -> int | None:
        """The HTTP status of an anonymous fetch of ``path``; None when NocoDB did not answer.

        ``path`` must be a relative file route (``download/...`` or a signed ``dltemp/...``
        link) without empty, ``.`` or ``..`` parts, so the request stays on the origin.
        """
        check_route(path)
        url = f"{self._base}/{quote(path, safe='/')}"
        try:
            with self._session.get(
                url, timeout=self._timeout, allow_redirects=False, stream=True
            ) as response:
                return response.status_code
        except requests.RequestException:
            return None

    def close(self) -> None:
        self._session.close()


def check_route(path: str) -> None:
    """Refuse anything but a plain relative path under one of NocoDB's file routes."""
    parts = path.split("/")
    if not path.startswith(FILE_ROUTES) or any(p in ("", ".", "..") for p in parts):
        raise StorageRefused("not a NocoDB file route on the NocoDB origin")
    if any(c in path for c in "\\?#%\x00") or "://" in path:
        raise StorageRefused("not a NocoDB file route on the NocoDB origin")
