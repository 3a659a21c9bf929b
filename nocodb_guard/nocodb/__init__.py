"""NocoDB: the only code that knows NocoDB's URLs and JSON.

Everything else in nocodb-guard sees typed values (:class:`~nocodb_guard.models.Row`,
:class:`~nocodb_guard.models.Attachment`, :class:`~nocodb_guard.nocodb.schema.TableSchema`)
and the errors of :mod:`nocodb_guard.errors`, never a URL path or a response body.

- :mod:`~nocodb_guard.nocodb.transport`: the session, token auth, retries, ``Retry-After``;
  every request to NocoDB and every download goes through its
  :class:`~nocodb_guard.nocodb.transport.Transport` (where pacing belongs).
- :mod:`~nocodb_guard.nocodb.responses`: HTTP status and NocoDB's error JSON -> our errors.
- :mod:`~nocodb_guard.nocodb.records`: a record's JSON and its attachment cell as a ``Row``.
- :mod:`~nocodb_guard.nocodb.schema`: the table's columns and select options, and whether
  they fit the settings.
- :mod:`~nocodb_guard.nocodb.client`: :class:`~nocodb_guard.nocodb.client.NocoDBClient`, the
  v2 data and meta API operations (the only module with v2 URL paths and query syntax; a v3
  client would be a sibling of it).

Names are imported from their module; this package re-exports nothing.
"""
