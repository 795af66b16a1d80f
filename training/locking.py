"""One driver per results directory: an exclusive lock on ``DIR/.lock`` for as long as a sweep runs.

The operating system drops the lock when its holder exits, even by SIGKILL,
so a killed driver never leaves a stale lock behind. POSIX (fcntl) only;
elsewhere no lock is taken.
"""
import os

try:
    import fcntl
except ImportError:     # not POSIX: run unlocked
    fcntl = None

LOCK_FILE = ".lock"


class ResultsLocked(ValueError):
    """Another driver holds the results directory."""


class DirectoryLock:
    """``with DirectoryLock(folder):`` holds ``folder``'s lock, or raises :class:`ResultsLocked`."""

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_FILE)
        self._fd = None

    def acquire(self):
        if fcntl is None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ResultsLocked(f"another sweep (pid {holder}) is running on {self.folder}: wait for it "
                                "to finish (rerun then to resume), or use another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)      # closing drops the lock; the file stays, harmless
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
