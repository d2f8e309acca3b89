"""Contracts every side shares, importable without torch, OpenCV or a database engine:
configuration, errors, edit requests, storage, webhooks and the facts in ``contracts``."""
