"""The facedit HTTP API (FastAPI); imports no torch. Entry point: ``api.app:create_app``."""
