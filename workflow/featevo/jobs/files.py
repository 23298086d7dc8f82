"""Files as the jobs write and check them: the process's umask, and what a file that
``torch.save`` wrote holds (its fingerprint, whether it is whole).  Standard library
only: the workflow's parse reads these for every checkpoint."""

from __future__ import annotations

import hashlib
import re
import os
import zipfile
import zlib
from pathlib import Path


def file_fingerprint(path: str | Path) -> str:
    """What a checkpoint file holds, not where it lies or what it is called: a copy
    (``cp -a`` or not) keeps it, a changed tensor does not, and it is cheap enough to
    compute for every file whenever the workflow is parsed.

    A file ``torch.save`` wrote (a zip): every member's name (past the archive's own
    folder, which torch names after the file), size and CRC-32, read from the zip's
    central directory at the file's end (milliseconds, whatever the file's size); any
    other file (torch's legacy format): the SHA-256 of all its bytes."""
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                h.update(f"{info.filename.split('/', 1)[-1]}\0{info.file_size}\0{info.CRC}\0".encode())
        return "zip:" + h.hexdigest()[:16]
    except zipfile.BadZipFile:
        pass
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]


def damaged(path: str | Path) -> str | None:
    """Whether a file ``torch.save`` wrote holds the bytes it was written with: every
    member's data read and checked against the CRC-32 stored beside it (``torch.load``
    checks none: 4 KiB zeroed in a checkpoint's middle loaded as zeroed weights).  None
    when whole (or not a zip: the legacy format has no checksums); else the sentence to
    show.  Reads the whole file: about 1 GB/s."""
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return None
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror}); check the file"
    try:
        with z:
            bad = z.testzip()
    except (OSError, RuntimeError, zipfile.BadZipFile, zlib.error) as exc:
        return f"{path} is damaged ({exc}); copy it again from where it was written, or delete it and rerun to rebuild it"
    if bad is None:
        return None
    return (f"{path} is damaged: its part {bad.split('/', 1)[-1]!r} no longer matches the checksum stored with it "
            f"(a bad copy or disk); copy it again from where it was written, or delete it and rerun to rebuild it")


def torch_file_problem(path: str | Path) -> str | None:
    """What is wrong with an existing file written by ``torch.save`` (a zip archive),
    found from its end alone (its central directory), or None when it is whole or
    absent.  A file cut short by a full disk or a copy, or overwritten, fails here
    in a millisecond, where loading it would take seconds (checksums are left to
    the job that loads it)."""
    path = Path(path)
    if not path.exists():
        return None
    if path.stat().st_size == 0:
        return "it is empty"
    try:
        with zipfile.ZipFile(path) as z:
            if not any(n.endswith("data.pkl") for n in z.namelist()):
                return "it is not a file written by torch.save"
    except (zipfile.BadZipFile, OSError) as exc:
        return f"it is cut short or not a torch file: {exc}"
    return None


def umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def torch_refusal(path: str | Path, exc: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` refused a file, in one plain sentence a
    person can act on (torch's own text carries colour codes and several paragraphs)."""
    text = _ANSI.sub("", str(exc))
    if "allowed global" in text or "Unsupported global" in text:
        return (f"{path} holds Python objects beside its tensors (a pickled model, class or other object), which "
                "featevo does not unpickle since that could run code; re-save it as a state dict: "
                "torch.save(model.state_dict(), path)")
    if isinstance(exc, (EOFError, zipfile.BadZipFile)) or any(
            s in text for s in ("PytorchStreamReader", "failed finding central directory", "unexpected EOF",
                                "Ran out of input", "invalid load key", "Unsupported operand")):
        return f"{path} is damaged, cut short, or not a file torch.save wrote; copy or save it again"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"{path} cannot be read by torch.load ({first[:200]}); save it again with torch.save(model.state_dict(), path)"
