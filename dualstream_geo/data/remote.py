"""Rasters where users keep them: URLs and GDAL virtual file systems, read efficiently.

Every source takes, besides local files and folders, GDAL virtual paths (``/vsicurl/``,
``/vsis3/``, ``/vsigs/``, ``/vsiaz/``, ...) and URLs (``http(s)://`` as ``/vsicurl/``,
``s3://``, ``gs://``, ``az://``). Credentials come from the environment variables GDAL
reads (``AWS_*``, ``GS_*``/``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_*``); paths are
redacted (no query string, no user info) wherever they are shown or stored.

:data:`GDAL_DEFAULTS` is the one place that sets how remote files are read; a variable the
user has set in the environment wins over it. They are applied when a source first opens
data (:func:`configure_gdal`), never by importing the package.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
import warnings
from typing import Any

from ..errors import DualStreamError

#: What GDAL may open over HTTP: without this list it probes sidecar files (.aux.xml,
#: .msk, .ovr) of every file it opens, a wasted request each.
REMOTE_EXTENSIONS = (
    *(".tif", ".tiff", ".TIF", ".TIFF", ".vrt", ".json"),
    *(".nc", ".nc4", ".h5", ".he5", ".hdf5", ".grib", ".grb", ".grib2", ".grb2"),
    *(".zarr", ".zarray", ".zgroup", ".zattrs", ".zmetadata"),
)
#: GDAL configuration for reading COGs over a network (see GDAL's "Configuration options").
GDAL_DEFAULTS = {
    # Opening a file must not list its folder (an HTTP "folder" listing is a wasted request).
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # Rasters, STAC JSON, and the multidimensional and GRIB files aux sources read over HTTP
    # (a Zarr store is opened by its metadata files, its chunks have no extension).
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ",".join(REMOTE_EXTENSIONS),
    # Header and block caching: the first 64 KB of a COG hold its IFDs.
    "GDAL_INGESTED_BYTES_AT_OPEN": "65536",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(64 * 2**20),
    "CPL_VSIL_CURL_CACHE_SIZE": str(256 * 2**20),
    "GDAL_CACHEMAX": "512",
    # Fewer, larger requests: adjacent ranges merged, HTTP/2 streams multiplexed.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    # Bounded retries with backoff (the delay doubles each time) for transient errors.
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_TIMEOUT": "60",
}

_SCHEMES = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "az": "/vsiaz/",
}
_URL = re.compile(r"^(?P<scheme>[a-z0-9]+)://", re.IGNORECASE)


_configured = False


def configure_gdal() -> None:
    """Apply :data:`GDAL_DEFAULTS` where the user has not set the variable.

    Once per process: the sources call it before they first open data.
    """
    global _configured
    if _configured:
        return
    for name, value in GDAL_DEFAULTS.items():
        os.environ.setdefault(name, value)
    _configured = True


def is_remote(path: str | os.PathLike[str]) -> bool:
    """A GDAL virtual path or a URL, as opposed to a local file or folder."""
    text = str(path)
    return text.startswith("/vsi") or bool(_URL.match(text))


def gdal_path(path: str | os.PathLike[str]) -> str:
    """What GDAL opens for ``path``: URLs become virtual paths, the rest is unchanged."""
    configure_gdal()
    text = str(path)
    match = _URL.match(text)
    if not match:
        return text
    scheme = match["scheme"].lower()
    if scheme not in _SCHEMES:
        raise DualStreamError(f"{redact(text)}: unsupported URL scheme {scheme!r}")
    if _SCHEMES[scheme] == "/vsicurl/":
        return f"/vsicurl/{text}"
    return _SCHEMES[scheme] + text[match.end() :]


def redact(path: str) -> str:
    """``path`` without credentials: no user info and no query string in URLs."""
    prefix = "/vsicurl/" if path.startswith("/vsicurl/") else ""
    url = path[len(prefix) :]
    if not _URL.match(url):
        return path
    parts = urllib.parse.urlsplit(url)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return prefix + urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_text(text: str) -> str:
    """``text`` (e.g. a command line) with every URL in it redacted."""
    return re.sub(r"[a-z0-9]+://[^\s'\"]+", lambda m: redact(m[0]), text, flags=re.IGNORECASE)


def describe_error(path: str, error: Exception) -> str:
    """One line for a remote file GDAL could not read."""
    text = str(error)
    where = redact(path)
    for pattern, meaning in (
        (r"HTTP response code: 404|404", "not found (HTTP 404)"),
        (r"HTTP response code: 40[13]", "access denied (HTTP 401/403): check the credentials"),
        (r"[Cc]ouldn't connect|[Cc]onnection refused|Failed to connect", "connection refused"),
        (r"[Tt]imed? ?out", "timed out"),
        (r"transfer closed|[Pp]artial file|outstanding read data", "truncated response"),
        (r"HTTP response code: 5\d\d", "server error (HTTP 5xx, after retries)"),
    ):
        if re.search(pattern, text):
            return f"{where}: {meaning}"
    if not is_remote(path):
        reason = " ".join(str(getattr(error, "__cause__", None) or text).split())
        return f"{where}: corrupt or unreadable raster ({reason})"
    return f"{where}: not a readable raster ({' '.join(redact(text).split())})"


_warned: set[str] = set()


def warn_if_not_cloud_optimised(path: str, src: Any) -> None:
    """Warn once per remote file whose layout makes network reads slow.

    No internal tiles: every window reads whole strips of the image.
    """
    if not is_remote(path) or path in _warned:
        return
    block_height, block_width = src.block_shapes[0]
    if block_width >= src.width and src.width > 512:
        _warned.add(path)
        warnings.warn(
            f"{redact(path)} is not a cloud-optimised GeoTIFF (it is stored in strips, not "
            "tiles): it is read, but slowly over a network; convert it with "
            "`gdal_translate -of COG`",
            stacklevel=3,
        )


def source_paths(paths: Any) -> list[Any]:
    """A source's paths with URLs turned into GDAL paths.

    A remote folder is refused, since HTTP cannot list it.
    """
    configure_gdal()
    listed = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out = []
    for path in listed:
        if not is_remote(path):
            out.append(path)
            continue
        converted = gdal_path(path)
        if converted.endswith("/") or "." not in converted.rsplit("/", 1)[-1].split("?")[0]:
            raise DualStreamError(
                f"{redact(str(path))}: a remote folder cannot be listed (HTTP has no directory "
                "listing); give its files, or a STAC item (--image ITEM.json --assets ...)"
            )
        out.append(converted)
    return out


def remote_version(path: str) -> list[Any]:
    """What identifies a remote file's content without reading it.

    For HTTP(S), the server's length, ETag and Last-Modified (a HEAD request); otherwise
    nothing.
    """
    url = path[len("/vsicurl/") :] if path.startswith("/vsicurl/") else path
    if not url.lower().startswith(("http://", "https://")):
        return []
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = response.headers
            return [headers.get(k) for k in ("Content-Length", "ETag", "Last-Modified")]
    except (OSError, ValueError):
        return []
