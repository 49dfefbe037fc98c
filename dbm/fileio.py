"""Safe file writing for the DBM commands: nothing half-written, nothing overwritten by accident.

Every file a DBM command writes (blur maps, weight files, checkpoints) goes through
:func:`atomic_write`: the bytes go to a hidden temporary file in the target's folder, which then
takes the target's name in one step. A reader never sees a half-written file, a failed write leaves
the old file (if any) as it was and no temporary file behind, and an existing file is replaced only
when the caller says so (``overwrite=True``); otherwise :class:`FileExistsError` is raised, even
when another process creates the file while this one writes.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "atomic_write_bytes", "describe_os_error", "rename_no_replace", "temp_path", "write_temp"]

#: errno values of ``os.link`` on filesystems without hard links (then the no-clobber rename is
#: emulated by a check just before ``os.replace``).
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, getattr(errno, "ENOTSUP", -1), getattr(errno, "EOPNOTSUPP", -1),
             errno.ENOSYS, errno.EINVAL}


def describe_os_error(exc: OSError) -> str:
    """A short, one-line description of an ``OSError`` (``Permission denied``, ``No space left``, ...)."""
    text = exc.strerror or str(exc) or exc.__class__.__name__
    return " ".join(str(text).split())


def rename_no_replace(tmp: str | Path, target: str | Path) -> None:
    """Give the finished file ``tmp`` the name ``target`` in one step, never replacing a file.

    ``os.link`` creates ``target`` only if no file (or link) has that name, even one created a
    moment ago by another process; ``tmp`` is then removed. On file systems without hard links
    (:data:`_NO_LINKS`) a check just before ``os.replace`` stands in for it.

    Parameters
    ----------
    tmp : path
        The complete temporary file, in ``target``'s folder.
    target : path
        Its final name.

    Raises
    ------
    FileExistsError
        ``target`` exists; ``tmp`` is left as it was (the caller removes it).
    OSError
        Any other failure of the file system.
    """
    try:
        os.link(tmp, target)  # fails with FileExistsError if the target appeared meanwhile
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def atomic_write(target: str | Path, write: Callable[[BinaryIO], None], *, overwrite: bool = False,
                 fsync: bool = False) -> Path:
    """Write a file in one step through a temporary file in the same folder.

    Parameters
    ----------
    target : path
        The file to create. Its folder must exist.
    write : callable
        Called with a binary file object open for writing; writes the whole content.
    overwrite : bool
        Replace ``target`` when it exists. Without it an existing ``target`` is left untouched
        and :class:`FileExistsError` is raised.
    fsync : bool
        Flush the content to the disk before the rename (results files that must survive a crash).

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    FileExistsError
        ``target`` exists and ``overwrite`` is false.
    OSError
        The folder is missing or not writable, the disk is full, ... (nothing is left behind).
    """
    target = Path(target)
    if not overwrite and os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "File exists", str(target))
    tmp = write_temp(target, write, fsync=fsync)
    try:
        if overwrite:
            os.replace(tmp, target)
        else:
            rename_no_replace(tmp, target)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - nothing more can be done
            pass
    return target


def temp_path(target: Path) -> Path:
    """A fresh, hidden, unpredictable name beside ``target`` for writing it (``.NAME.PID.RANDOM.tmp``)."""
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def write_temp(target: str | Path, write: Callable[[BinaryIO], None], *, fsync: bool = False) -> Path:
    """Write a new temporary file beside ``target`` (to be renamed onto it) and return its path.

    The name is hidden and unpredictable (``.NAME.PID.RANDOM.tmp``) and the file is created
    exclusively (``open(..., "xb")``: ``O_CREAT | O_EXCL``, which also refuses a planted link at that
    name), with the umask's permissions; it is removed again if ``write`` fails.

    Parameters
    ----------
    target : path
        The file the temporary file will become. Its folder must exist.
    write : callable
        Called with a binary file object open for writing; writes the whole content.
    fsync : bool
        Flush the content to the disk before returning.

    Returns
    -------
    Path
        The temporary file.
    """
    tmp = temp_path(Path(target))
    f = open(tmp, "xb")  # an existing file or link at the name: FileExistsError, and it is left alone
    try:
        with f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return tmp


def atomic_write_bytes(target: str | Path, data: bytes, *, overwrite: bool = False, fsync: bool = False) -> Path:
    """:func:`atomic_write` of a ``bytes`` object."""
    return atomic_write(target, lambda f: f.write(data), overwrite=overwrite, fsync=fsync)
