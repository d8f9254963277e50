"""Where a visitor's file may come from: an upload to this server, or a small data: URL. Nothing else.

What Gradio 6.31 does by itself (gradio/blocks.py preprocess_data, gradio/processing_utils.py
async_move_files_to_cache): a file payload *with* `meta: {"_type": "gradio.FileData"}` is checked
against the upload folder (`_check_allowed(..., check_in_upload_folder=True)`), but one *without*
meta is passed to the component untouched, and gr.Image's data model does not demand meta. So
`{"path": "/any/server/file.jpg"}` reached gr.Image.preprocess, which opened it (and, for a mode
other than RGB, decoded all of it). A payload whose path is an http(s) URL is downloaded into the
cache with no size limit. And a `data:` URL is decoded in full, whatever its size.

UploadedImage closes these at the component: its preprocess accepts a path only inside Gradio's
upload folder (checked on the path's text first, then on the real path, before any file is
opened), a data: URL only within the upload byte limit, and then reads nothing but the header
(explainers.inputs.images.check_header) before handing the path on. Gradio's own decoding never runs.
`refuse_remote_files` stops every input component of the app from downloading URLs.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio import utils as gradio_utils
from gradio_client import utils as client_utils
from PIL import Image

from app.errors import user_error
from explainers.errors import XaiLensError
from explainers.inputs import images
from explainers.limits import MAX_DATA_URL_CHARS

# Process-wide, and safe here: every image this app opens is held to images.MAX_PIXELS anyway, so
# Pillow refusing above twice that (and warning above it) from the header only ever stops a file we
# would refuse; the images the app makes itself (figures, overlays) are a few megapixels. Any other
# code path in this process that opens an image (Gradio's, Matplotlib's) gets the same ceiling.
Image.MAX_IMAGE_PIXELS = images.MAX_PIXELS

UPLOAD_ONLY = (
    "The image must be uploaded first (POST /gradio_api/upload, then send the returned path) or sent as a "
    "data: URL; server paths and web addresses are not accepted."
)
REMOTE_REFUSED = "Files must be uploaded to this server first (POST /gradio_api/upload); web addresses are not fetched."


def _inside_upload_folder(path: Any) -> str | None:
    """The real path when `path` names a file inside Gradio's upload folder, else None. Nothing is opened."""
    if not isinstance(path, str) or not path or "\0" in path:
        return None
    root = os.path.realpath(gradio_utils.get_upload_folder())
    try:
        spelled = os.path.abspath(path)
        if os.path.commonpath([spelled, root]) != root:  # decided on the text alone: no file-system access
            return None
        real = os.path.realpath(spelled)  # then no link may lead out of the folder
        if os.path.commonpath([real, root]) != root or real == root:
            return None
    except ValueError:  # different drives, odd characters
        return None
    return real


def _data_url_bytes(url: str) -> tuple[bytes, str]:
    """(bytes, file suffix) of a base64 data: URL within the upload limit; the length is checked before decoding."""
    if len(url) > MAX_DATA_URL_CHARS:
        raise XaiLensError(
            f"The image sent as a data: URL is over the {images.MAX_FILE_BYTES / 2**20:g} MB limit; "
            "send a smaller image."
        )
    header, _, encoded = url.partition(",")
    if not header.endswith(";base64"):
        raise XaiLensError("A data: URL image must be base64-encoded (data:image/png;base64,...).")
    suffix = mimetypes.guess_extension(header.removeprefix("data:").removesuffix(";base64")) or ".img"
    try:
        return base64.b64decode(encoded, validate=True), suffix
    except (binascii.Error, ValueError):
        raise XaiLensError("The data: URL is not valid base64; send the image as an upload instead.") from None


class UploadedImage(gr.Image):
    """gr.Image(type="filepath") that takes only this visitor's upload (or a data: URL), checked from its header.

    A subclass rather than a guard set on one instance: when an event updates a component's
    properties, Gradio rebuilds it for the session with `block.__class__(**kwargs)`, and the class
    keeps the guard. (Gradio writes a .pyi stub beside every Component subclass; it is git-ignored.)
    """

    is_template = True  # the browser draws it as a plain Image
    # No __init__ of its own: Gradio reads a component's properties from its __init__ signature. Whatever
    # `type` or `image_mode` it is given, preprocess below returns a checked path and never decodes.

    def preprocess(self, payload: Any) -> str | None:
        if payload is None:
            return None
        try:
            if isinstance(payload.url, str) and payload.url.startswith("data:"):
                data, suffix = _data_url_bytes(payload.url)
                images.check_header(data)
                return processing_utils.save_bytes_to_cache(data, f"image{suffix}", self.GRADIO_CACHE)
            path = _inside_upload_folder(payload.path)
            if path is None:
                raise XaiLensError(UPLOAD_ONLY)
            images.check_header(path)
            return path
        except XaiLensError as exc:
            raise user_error(str(exc)) from None

    async def async_move_resource_to_block_cache(self, url_or_file_path: Any) -> str | None:
        _refuse_url(url_or_file_path)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    def move_resource_to_block_cache(self, url_or_file_path: Any) -> str | None:
        _refuse_url(url_or_file_path)
        return super().move_resource_to_block_cache(url_or_file_path)


def _refuse_url(url_or_file_path: Any) -> None:
    if isinstance(url_or_file_path, str) and client_utils.is_http_url_like(url_or_file_path):
        raise user_error(REMOTE_REFUSED)


def _refuse_remote(block: Any) -> None:
    """Gradio fetches a payload whose path is a URL into the cache (no size limit) before preprocess."""
    if isinstance(block, UploadedImage) or getattr(block, "_refuses_remote_files", False):
        return
    if not hasattr(block, "async_move_resource_to_block_cache"):
        return
    download_async, download = block.async_move_resource_to_block_cache, block.move_resource_to_block_cache

    async def guarded_async(url_or_file_path: Any) -> str | None:
        _refuse_url(url_or_file_path)
        return await download_async(url_or_file_path)

    def guarded(url_or_file_path: Any) -> str | None:
        _refuse_url(url_or_file_path)
        return download(url_or_file_path)

    block.async_move_resource_to_block_cache = guarded_async
    block.move_resource_to_block_cache = guarded
    block._refuses_remote_files = True


def refuse_remote_files(demo: gr.Blocks) -> None:
    """No input component of `demo` downloads a URL a visitor names (Gradio would, with no size limit).

    The app's own outputs are local files, so outputs lose nothing; gr.File inputs already demand
    `meta` and so an upload-folder path, and with this they cannot be pointed at the web either.
    """
    for block_id in {block._id for fn in demo.fns.values() for block in fn.inputs}:
        _refuse_remote(demo.blocks[block_id])
