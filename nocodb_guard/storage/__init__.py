"""NocoDB's stored files: the only code that removes an upload from NocoDB's storage.

NocoDB deletes a row but keeps its file (on disk under ``nc/uploads`` or in an S3 bucket)
and keeps serving it. The guard promises "deleted", so after deleting a row it removes
the row's files itself, through a :class:`~nocodb_guard.storage.base.StorageBackend`.
"""
