"""The faces stage: decode an upload, find its faces, encode one, compare with references."""
