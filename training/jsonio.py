"""JSON records: atomic writes, strict JSON (non-finite numbers become null)."""
import json
import math
import os
import tempfile

import numpy as np


def json_safe(obj):
    """A copy of ``obj`` with numpy scalars/arrays as Python values and NaN/inf as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _umask():
    mask = os.umask(0o022)      # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


#: mkstemp makes 0600 files; records get the mode any file of the user's gets.
FILE_MODE = 0o666 & ~_umask()


def write_json_atomic(path, record):
    """Write ``record`` to ``path`` through a temporary file and a rename.

    A reader (or a rerun after a kill) sees the old file or the whole new
    one, never a partial write.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            json.dump(json_safe(record), f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
