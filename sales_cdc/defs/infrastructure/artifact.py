"""The transform Lambda's deployment zip, built reproducibly from sales_cdc/transform/."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sales_cdc.stack import REPO_ROOT

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Artifact:
    """A built zip and its digests (hex for the S3 key, base64 as Lambda's CodeSha256)."""

    body: bytes
    sha256_hex: str
    code_sha256: str
    files: tuple[str, ...]


def build_transform_zip(source_dir: Path | str) -> Artifact:
    """Zip the .py files of `source_dir` at the zip root; same sources give the same bytes."""
    source = Path(source_dir)
    if not source.is_absolute():
        source = REPO_ROOT / source
    files = sorted(p for p in source.glob("*.py") if p.is_file())
    if not any(p.name == "handler.py" for p in files):
        raise FileNotFoundError(f"{source} has no handler.py: the transform Lambda cannot be built")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    body = buffer.getvalue()
    digest = hashlib.sha256(body)
    return Artifact(
        body=body,
        sha256_hex=digest.hexdigest(),
        code_sha256=base64.b64encode(digest.digest()).decode(),
        files=tuple(p.name for p in files),
    )
