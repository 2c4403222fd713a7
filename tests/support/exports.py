"""An export as its app's download gives it: in a zip (the files themselves: bench/exports.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def zipped(document: Path, zip_path: Path, folder: str = "", beside: tuple[str, ...] = ("chat.html",)) -> Path:
    """``document`` in a zip as downloaded, in ``folder`` (a Telegram export's folder zipped whole),
    with empty files named ``beside`` (ChatGPT's zip has chat.html, user.json, images…)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(document, f"{folder}{document.name}")
        for name in beside:
            archive.writestr(f"{folder}{name}", "")
    return zip_path
