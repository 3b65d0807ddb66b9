"""Which format a directory holds, and the format modules, loaded only when one is used.

pyarrow, h5py and Minari are the ``export`` extra (``pip install 'her-ros[export]'``): the
``her`` command and the bag tools work without them, and a command that needs one says so.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from types import ModuleType

from her_recorder.datasets.model import FORMATS, DatasetError


def check_format(name: str) -> str:
    """``name`` if it is a format we write; else the error, with the closest name."""
    if name in FORMATS:
        return name
    close = difflib.get_close_matches(name, FORMATS, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DatasetError(f"--format {name!r} is not a dataset format.{hint} Formats: {', '.join(FORMATS)}")


def format_module(name: str) -> ModuleType:
    """The module that writes and reads format ``name`` (``write``, ``read``)."""
    check_format(name)
    try:
        if name == "lerobot":
            # pyarrow (the export extra) loads only when a dataset is written or read.
            import her_recorder.datasets.lerobot_format as lerobot

            return lerobot
        else:
            # minari, h5py and Gymnasium's spaces (the export extra) load only when used.
            import her_recorder.datasets.minari_format as minari

            return minari
    except ImportError as exc:
        raise DatasetError(
            f"the {name} format needs the {exc.name or 'export'} package, which is not installed: "
            "pip install 'her-ros[export]'"
        ) from None


def detect_format(path: Path) -> str | None:
    """``lerobot`` or ``minari`` when ``path`` is a dataset directory of that format, else None."""
    path = Path(path)
    if (path / "meta" / "info.json").is_file():
        return "lerobot"
    if (path / "data" / "metadata.json").is_file() or (
        (path / "metadata.json").is_file() and (path / "main_data.hdf5").is_file()
    ):
        return "minari"
    return None
