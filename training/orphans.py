"""Worker processes that exit when their driver dies (a SIGKILL leaves no orphans behind).

A spawned pool worker blocks on its task queue forever if the driver is
killed; :func:`watch_parent`, run as the pool's initializer, starts a daemon
thread that ends the worker once its parent is gone. multiprocessing's
resource tracker then exits too, when the last holder of its pipe is gone.
"""
import os
import threading
import time

POLL_SECONDS = 0.5


def _watch(parent):
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent:      # reparented: the driver is gone
            os._exit(1)


def watch_parent(parent=None):
    """Pool initializer: exit this process when ``parent`` (default: the current parent) dies."""
    parent = os.getppid() if parent is None else parent
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="watch-parent").start()
