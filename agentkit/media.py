"""Media in a conversation: the image, audio and video parts, and the one reader of every form people write them in.

Apart from :mod:`agentkit.messages` because media have their own rules: a part may name a file, a URL or
base64 text, and reading it must stay bounded (a saved session can name a FIFO or ``/dev/zero``), while the
rest of the conversation is plain text and calls. :func:`media_part` is the one parser of the forms (bytes, a
path, a URL, base64, OpenAI's ``image_url``/``input_audio``); :func:`media_bytes` and :func:`media_type` give
every engine the bytes and their type; :func:`Image` / :func:`Audio` are what a tool returns.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from agentkit.errors import UserError

__all__ = [
    "MAX_MEDIA_FILE_BYTES",
    "MEDIA_KINDS",
    "MEDIA_PART_TYPES",
    "Audio",
    "AudioPart",
    "Image",
    "ImagePart",
    "MediaPart",
    "VideoPart",
    "distrusted",
    "is_remote",
    "media_bytes",
    "media_part",
    "media_type",
    "pinned",
    "read_media_file",
    "sniff_media",
]

#: Content-part types that carry media (OpenAI's names and the short ones), and the kind each names.
MEDIA_KINDS = {"image": "image", "image_url": "image", "audio": "audio", "input_audio": "audio", "video": "video"}
MEDIA_PART_TYPES = frozenset(MEDIA_KINDS)


def _media_repr(part: Any) -> str:
    """A media part without its bytes (a picture's repr would be megabytes in a log, a trace or a preview)."""
    fields = [f"data=<{len(part.data)} bytes>"] if part.data is not None else []
    fields += [f"{k}={getattr(part, k)!r}" for k in ("url", "path", "format") if getattr(part, k, None) is not None]
    return f"{type(part).__name__}({', '.join(fields)})"


@dataclass(frozen=True, slots=True, repr=False)
class ImagePart:
    """An image: ``data`` (bytes), ``url`` (an http(s) or data URL, or base64 text) or ``path`` (a file).

    With none of them the part takes the next entry of a request's ``media`` (the older way to pass media).
    ``sha256`` pins a file part to the bytes it had when someone named it: a session file records it, and a
    part read back from a file is sent only if the file still has those bytes (:func:`media_bytes`), so a
    session file someone else wrote cannot have agentkit read and send a file of theirs choosing.
    """

    data: bytes | None = None
    url: str | None = None
    path: str | None = None
    sha256: str | None = None
    type: Literal["image"] = "image"

    __repr__ = _media_repr


@dataclass(frozen=True, slots=True, repr=False)
class AudioPart:
    """Audio, given like an image; ``format`` (wav, mp3, flac, ogg) when the caller named it."""

    data: bytes | None = None
    url: str | None = None
    path: str | None = None
    format: str | None = None
    sha256: str | None = None
    type: Literal["audio"] = "audio"

    __repr__ = _media_repr


@dataclass(frozen=True, slots=True, repr=False)
class VideoPart:
    data: bytes | None = None
    url: str | None = None
    path: str | None = None
    sha256: str | None = None
    type: Literal["video"] = "video"

    __repr__ = _media_repr


MediaPart: TypeAlias = ImagePart | AudioPart | VideoPart


# -- media, in every form people write it: the one parser -----------------------------------------------

# Leading bytes of the formats agentkit sends (offset, signature, kind, what it is, MIME type): a file is sent
# as media only when it starts like one of them, so no other file (a key, a keyring, a database) ever is.
_FORMATS: tuple[tuple[int, bytes, str, str, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image", "a PNG image", "image/png"),
    (0, b"\xff\xd8\xff", "image", "a JPEG image", "image/jpeg"),
    (0, b"GIF87a", "image", "a GIF image", "image/gif"),
    (0, b"GIF89a", "image", "a GIF image", "image/gif"),
    (8, b"WEBP", "image", "a WebP image", "image/webp"),
    (0, b"BM", "image", "a BMP image", "image/bmp"),
    (0, b"II*\x00", "image", "a TIFF image", "image/tiff"),
    (0, b"MM\x00*", "image", "a TIFF image", "image/tiff"),
    (8, b"WAVE", "audio", "a WAV clip", "audio/wav"),
    (0, b"fLaC", "audio", "a FLAC clip", "audio/flac"),
    (0, b"OggS", "audio", "an Ogg clip", "audio/ogg"),
    (0, b"ID3", "audio", "an MP3 clip", "audio/mpeg"),
    (0, b"\xff\xfb", "audio", "an MP3 clip", "audio/mpeg"),
    (0, b"\xff\xf3", "audio", "an MP3 clip", "audio/mpeg"),
    (0, b"\xff\xf2", "audio", "an MP3 clip", "audio/mpeg"),
    (4, b"ftypM4A ", "audio", "an M4A clip", "audio/mp4"),
    (4, b"ftyp", "video", "an MP4/QuickTime file", "video/mp4"),
    (0, b"\x1aE\xdf\xa3", "video", "a WebM/Matroska file", "video/webm"),
    (8, b"AVI ", "video", "an AVI file", "video/x-msvideo"),
)
# What the messages name: the formats of each kind.
_KNOWN = "PNG, JPEG, GIF, WebP, BMP, TIFF; WAV, FLAC, Ogg, MP3, M4A; MP4, WebM, AVI"
_SIGNATURES = tuple((sig, mime) for offset, sig, _, _, mime in _FORMATS if offset == 0)


def sniff_media(data: bytes) -> tuple[str, str] | None:
    """The kind (image, audio, video) and a description of media bytes by their leading bytes, or None."""
    for offset, signature, kind, what, _ in _FORMATS:
        riff = offset != 8 or data[:4] == b"RIFF"  # WAV, WebP and AVI are RIFF files
        if riff and data[offset : offset + len(signature)] == signature:
            return kind, what
    return None


def media_part(part: Any, kind: str | None = None) -> ImagePart | AudioPart | VideoPart:
    """A typed media part from any form people write one in; the one parser of those forms.

    ``part`` is a content part (``{"type": "image", "image": b"..."}``, ``{"type": "image_url", "image_url":
    {"url": ...}}``, ``{"type": "input_audio", "input_audio": {"data": ..., "format": ...}}``, ``{"type":
    "audio", "path": ...}``), a mapping without a type (``{"data": ...}``, ``{"image": ...}``, ``{"path": ...}``:
    a request's ``media`` entry) or a bare value (bytes, a :class:`~pathlib.Path`, a URL or base64 text).
    ``kind`` (image, audio, video) is used where the part does not say. Nothing is read here: a path stays a
    path, a URL a URL (:func:`media_bytes` reads them).
    """
    if isinstance(part, ImagePart | AudioPart | VideoPart):
        return part
    fmt: str | None = None
    pin: str | None = None
    if isinstance(part, Mapping):
        named = part.get("type")
        if named in MEDIA_KINDS:
            kind = MEDIA_KINDS[named]
        elif kind is None:
            kind = next((k for k in ("image", "audio", "video") if part.get(k) is not None), None)
        nested = part.get(named) if isinstance(named, str) else None
        if isinstance(nested, Mapping):  # {"image_url": {"url": ...}}, {"input_audio": {"data": ..., "format": ...}}
            fmt = nested.get("format") if isinstance(nested.get("format"), str) else None
            nested = nested.get("url", nested.get("data"))
        keys = ("data", "url", "base64", "image", "audio", "video")
        value = next((v for v in (nested, *(part.get(k) for k in keys)) if v is not None), None)
        if value is None and part.get("path") is not None:
            value = Path(str(part["path"]))
            pin = part["sha256"] if isinstance(part.get("sha256"), str) else None
        fmt = fmt or (part.get("format") if isinstance(part.get("format"), str) else None)
    else:
        value = part
    if kind is None:
        raise UserError(f"cannot tell whether media entry {sorted(part)} is an image, audio or video; give its type")
    if isinstance(value, os.PathLike):
        value = Path(value)
    data = bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None
    path = str(value) if isinstance(value, Path) else None
    if value is not None and data is None and path is None and not isinstance(value, str):
        raise UserError(
            f"cannot send media of type {type(value).__name__} ({kind}); pass bytes, a pathlib.Path or a URL"
        )
    url = value if isinstance(value, str) else None
    if kind == "image":
        return ImagePart(data, url, path, pin)
    if kind == "audio":
        return AudioPart(data, url, path, fmt, pin)
    return VideoPart(data, url, path, pin)


def is_remote(part: ImagePart | AudioPart | VideoPart) -> bool:
    """Whether the part is only an http(s) URL: no engine is sent one (:func:`media_bytes` refuses it)."""
    return part.data is None and part.path is None and (part.url or "").startswith(("http://", "https://"))


def media_bytes(part: ImagePart | AudioPart | VideoPart) -> bytes:
    """The bytes of a media part: its data, its file, or its base64 text / data URL (never a file named by a string).

    A file part pinned by ``sha256`` (one read back from a session file) is sent only if the file still has
    the bytes it had when it was named.
    """
    if part.data is not None:
        return bytes(part.data)
    if part.path is not None:
        data = read_media_file(part.path) if part.sha256 != UNPINNED else b""
        if part.sha256 is not None and hashlib.sha256(data).hexdigest() != part.sha256:
            raise UserError(
                f"cannot send the {part.type} file {part.path}: "
                + (
                    "a saved file names it without the fingerprint agentkit records when you attach a file, so "
                    "it was not read (a session file can name any file); attach it again if you mean it"
                    if part.sha256 == UNPINNED
                    else "it changed since it was attached (its bytes differ); attach it again if you mean it"
                )
            )
        return data
    if part.url is None:
        raise UserError(
            f"a {part.type!r} part has no data and the request carries no more media; give the bytes in the part, "
            "e.g. {'type': 'image', 'image': b'...'}"
        )
    if is_remote(part):
        raise UserError(
            f"media by URL ({part.url[:80]!r}) is not sent: agentkit does not download media, nor has an engine's "
            "server download it (the URL may come from a saved session or a tool, and a server fetches from its "
            "own network); download it yourself and pass the bytes"
        )
    text = part.url
    if text.startswith("data:"):
        _, sep, text = text.partition(";base64,")
        if not sep:
            raise UserError("a media data URL must be base64-encoded (data:<type>;base64,...)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UserError(
            "media given as a string must be base64 or a data: URL (http(s) URLs are not downloaded); pass bytes or "
            "a pathlib.Path for files"
        ) from exc


#: ``sha256`` of a file part read back from a saved file that had none: such a file is never read.
UNPINNED = ""


def pinned(part: MediaPart) -> MediaPart:
    """``part`` with the fingerprint of its file, for a session file to record.

    Itself when there is nothing to pin, or when the file cannot be sent now (read back, it is then refused).
    """
    if part.path is None or part.sha256 is not None:
        return part
    try:
        info = os.stat(part.path)
    except OSError:
        return part
    key = (part.path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    digest = _PINS.get(key)
    if digest is None:
        try:
            digest = hashlib.sha256(read_media_file(part.path)).hexdigest()
        except UserError:
            return part
        if len(_PINS) > 1024:
            _PINS.clear()
        _PINS[key] = digest
    return dataclasses.replace(part, sha256=digest)


def distrusted(part: MediaPart) -> MediaPart:
    """``part`` as read back from a saved file: a file part without a fingerprint is marked never to be read."""
    if part.path is None or part.sha256 is not None:
        return part
    return dataclasses.replace(part, sha256=UNPINNED)


_PINS: dict[tuple[str, int, int, int, int], str] = {}  # a session is saved after every step: hash each file once


#: The largest media file read: far above any picture or clip a model takes, far below what fills memory.
MAX_MEDIA_FILE_BYTES = 256 << 20


def read_media_file(path: str | os.PathLike[str], what: str = "media") -> bytes:
    """A media file's bytes: regular files only, at most :data:`MAX_MEDIA_FILE_BYTES`, in a media format only.

    A part's path can come from a saved session file, so it may name a FIFO (reading blocks forever),
    ``/dev/zero`` or ``/dev/urandom`` (reading never ends) or a file that grows while it is read. It may also
    name ``~/.ssh/id_ed25519``, a ``.env`` or a keyring: whatever is read is sent to the backend's server as a
    picture, so only a file that starts like an image, audio or video format agentkit knows, and (with Pillow
    or soundfile installed) whose header parses as one, is sent.
    """
    data = _read_regular(path, what)
    if not data:
        raise UserError(f"cannot send {what} file {path}: it is empty")
    found = sniff_media(data)
    if found is None:
        kind = "text" if _is_text(data) else "in no media format agentkit sends"
        raise UserError(
            f"cannot send {what} file {path}: it is {kind} (only {_KNOWN} files are sent: a session file or a "
            "tool can name any file, so no other file is read for the model)"
        )
    problem = _undecodable(data, found[0])
    if problem:
        raise UserError(f"cannot send {what} file {path}: it starts like {found[1]} but is not one ({problem})")
    return data


def _undecodable(data: bytes, kind: str) -> str:
    """Why ``data`` does not decode as ``kind`` by the decoder installed for it (Pillow, soundfile); "" when it
    does, or when none is installed (the engine's server decodes it then)."""
    try:
        if kind == "image":
            from PIL import Image as PILImage

            with PILImage.open(io.BytesIO(data)):
                pass  # its header parsed as the format it claims (pixels are the engine's to decode)
        elif kind == "audio" and data[4:8] != b"ftyp":  # libsndfile reads no M4A
            import soundfile

            soundfile.info(io.BytesIO(data))
    except ImportError:
        return ""
    except Exception as exc:  # any decoder error is a reason not to send the file
        return str(exc)[:200] or type(exc).__name__
    return ""


def _is_text(data: bytes) -> bool:
    """Whether ``data`` reads as text and starts like no media format (binary formats have NULs or invalid
    UTF-8 within their first bytes; text has neither)."""
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut at the 4096-byte boundary: still text
    return True


def _read_regular(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"cannot read {what} file {path}: not a regular file (a pipe, device or folder)")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_MEDIA_FILE_BYTES:
                raise UserError(
                    f"cannot read {what} file {path}: more than {MAX_MEDIA_FILE_BYTES >> 20} MiB; send a smaller one"
                )
        return b"".join(chunks)
    except OSError as exc:
        raise UserError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def media_type(data: bytes, kind: str = "audio") -> str:
    """The MIME type of media bytes, by their leading bytes (``kind`` names the fallback's kind)."""
    if data[:4] == b"RIFF" and data[8:12] in (b"WAVE", b"WEBP"):
        return "audio/wav" if data[8:12] == b"WAVE" else "image/webp"
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    # Engines decode images and video by their content; the type only has to name the kind.
    return {"image": "image/png", "video": "video/mp4"}.get(kind, "application/octet-stream")


def Image(source: bytes | str | os.PathLike[str] | Any) -> ImagePart:
    """An image for a tool to return (or a user message to carry): bytes, a file path, a data: URL or a PIL image.

    A file is read now, so the conversation (and the session file) keeps the picture as it was. A string is
    a data: URL when it starts with ``data:``, else a file path; an http(s) URL is refused, since no engine is
    ever sent one (a server would fetch it from its own network). A tool returns it alone or in a list with
    text: ``return ["the chart", Image("chart.png")]``.
    """
    return ImagePart(*_source(source, "image"))


def Audio(source: bytes | str | os.PathLike[str], format: str | None = None) -> AudioPart:
    """A sound clip, given like :func:`Image`; ``format`` (wav, mp3, flac, ogg) is found from the bytes if left out."""
    data, url, _ = _source(source, "audio")
    if format is None and data is not None:
        format = {"audio/wav": "wav", "audio/mpeg": "mp3", "audio/flac": "flac", "audio/ogg": "ogg"}.get(
            media_type(data)
        )
    return AudioPart(data, url, None, format)


def _source(source: Any, kind: str) -> tuple[bytes | None, str | None, None]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), None, None
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        raise UserError(
            f"agentkit does not download media ({source[:80]!r}): fetch it yourself (e.g. httpx.get(url).content, "
            f"with the checks the source needs) and make the {kind} from the bytes"
        )
    if isinstance(source, str) and source.startswith("data:"):
        return None, source, None
    if isinstance(source, str | os.PathLike):
        return read_media_file(source, f"the {kind}"), None, None
    if callable(getattr(source, "save", None)):  # a PIL image
        buffer = io.BytesIO()
        source.save(buffer, format="PNG")
        return buffer.getvalue(), None, None
    raise UserError(f"an {kind} is made from bytes, a file path, a URL or a PIL image, not {type(source).__name__}")
