"""Errors that end a job, each with a stable ``error_code`` stored on the job row."""

from __future__ import annotations


class FaceditError(Exception):
    """Base class: ``code`` is stable and machine-readable, the message is for humans."""

    code = "internal_error"
    transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(FaceditError):
    code = "invalid_image"


class InputNotFound(FaceditError):
    code = "input_not_found"


class ImageTooSmall(FaceditError):
    code = "image_too_small"


class ImageTooLarge(FaceditError):
    code = "image_too_large"


class NoFaceFound(FaceditError):
    code = "no_face_found"


class InvalidStorageKey(FaceditError, ValueError):
    code = "invalid_storage_key"


class StorageUnavailable(FaceditError):
    code = "storage_unavailable"
    transient = True


class DatabaseUnavailable(FaceditError):
    """The job database cannot be reached (down, restarting, connection dropped)."""

    code = "database_unavailable"
    transient = True

    def __init__(self, message: str, *, disconnected: bool = False) -> None:
        super().__init__(message)
        self.disconnected = disconnected  # the connection died: a retry on a new one may work


class BrokerUnavailable(FaceditError):
    """The message broker (Redis) cannot be reached."""

    code = "broker_unavailable"
    transient = True


class ModelUnavailable(FaceditError):
    code = "model_unavailable"


class InvalidEditRequest(FaceditError, ValueError):
    code = "invalid_edit_request"


class JobCancelled(FaceditError):
    code = "cancelled"


class StorageError(FaceditError):
    """A storage failure that retrying will not fix (access denied, missing bucket, ...)."""

    code = "storage_error"


class IdempotencyConflict(FaceditError, ValueError):
    """An idempotency key was reused by the same owner for a different request."""

    code = "idempotency_conflict"
