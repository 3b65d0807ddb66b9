"""Our bags in the field's dataset formats, and back: ``her export`` and the training inputs.

* :mod:`~her_recorder.datasets.model`: :class:`Provenance`, the split grouping, the errors;
* :mod:`~her_recorder.datasets.lerobot_format`, :mod:`~her_recorder.datasets.minari_format`:
  each format's writer and reader (loaded by :mod:`~her_recorder.datasets.formats` only when
  used: pyarrow and Minari are the ``export`` extra);
* :mod:`~her_recorder.datasets.export`: :func:`export_bags` (``her export``; ``cli.py``);
* :mod:`~her_recorder.datasets.inputs`: :func:`read_training_input`, what ``her train --bags``
  and ``--demos`` read (bags and datasets alike).
"""

from her_recorder.datasets.export import ExportResult, export_bags
from her_recorder.datasets.formats import detect_format
from her_recorder.datasets.inputs import (
    TrainingInput,
    input_task,
    read_dataset,
    read_training_input,
    storage_files,
)
from her_recorder.datasets.model import FORMATS, HER_KEY, DatasetError, Provenance

__all__ = [
    "FORMATS",
    "HER_KEY",
    "DatasetError",
    "ExportResult",
    "Provenance",
    "TrainingInput",
    "detect_format",
    "export_bags",
    "input_task",
    "read_dataset",
    "read_training_input",
    "storage_files",
]
