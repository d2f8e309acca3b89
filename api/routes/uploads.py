"""/v1/uploads: a presigned S3 POST form for one input image, under the owner's folder.

The form's policy fixes the key and bounds the size to 1..FACEDIT_MAX_IMAGE_BYTES
(``content-length-range``), so S3 itself refuses a larger file before storing anything. There
is no presigned PUT: S3 cannot bound the size of one (it can only sign an exact length).
"""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Body

from api.deps import Context, Owner
from api.errors import ApiError
from api.inputs import UPLOADS, owner_tag
from api.schemas import UploadIn, UploadOut

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

EXTENSIONS = {"png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"}
CONTENT_TYPES = {
    "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/bmp": "bmp",
    "image/tiff": "tif",
}  # fmt: skip


def _extension(body: UploadIn) -> str:
    if body.filename:
        suffix = PurePosixPath(body.filename).suffix.lower().removeprefix(".")
        if suffix not in EXTENSIONS:
            raise ApiError(
                422, "invalid_request",
                f"filename: {body.filename!r} is not an image file "
                f"({', '.join(sorted(EXTENSIONS))})",
            )  # fmt: skip
        return suffix
    if body.content_type:
        ext = CONTENT_TYPES.get(body.content_type.lower())
        if ext is None:
            raise ApiError(
                422, "invalid_request",
                f"content_type: {body.content_type!r} is not one of {', '.join(CONTENT_TYPES)}",
            )  # fmt: skip
        return ext
    return "img"


@router.post("", status_code=201, response_model=UploadOut)
def create_upload(
    body: Annotated[UploadIn, Body(default_factory=UploadIn)], owner: Owner, ctx: Context
) -> UploadOut:
    """A key for a new input and a presigned POST form to upload its bytes with (then submit
    the key as ``input_key``). S3 refuses a file larger than ``max_bytes``
    (FACEDIT_MAX_IMAGE_BYTES) or empty, and stores nothing then."""
    ext = _extension(body)
    key = f"{UPLOADS}/{owner_tag(owner)}/{uuid.uuid4().hex}.{ext}"
    expires = ctx.settings.url_expires_seconds
    max_bytes = ctx.settings.max_image_bytes
    content_type = {v: k for k, v in CONTENT_TYPES.items()}.get(
        {"jpeg": "jpg", "tiff": "tif"}.get(ext, ext)
    )
    form = ctx.presigner.public.presigned_post(key, max_bytes, expires, content_type)
    if form is None:
        raise ApiError(
            501, "uploads_unsupported",
            "this service stores files locally (file://), which has no upload URLs; "
            "configure S3 storage (FACEDIT_STORAGE_URL=s3://...)",
        )  # fmt: skip
    return UploadOut(key=key, uri=ctx.storage.uri(key), upload_url=form["url"],
                     fields=form["fields"], max_bytes=max_bytes, expires_in=expires)
