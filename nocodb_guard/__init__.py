"""nocodb-guard: keeps a NocoDB upload table to pictures of exactly one face, the right one."""

__version__ = "0.1.0"
