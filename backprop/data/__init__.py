"""Data, host side: input checks (`checks`), datasets, preprocessing, the intents corpus, the
generated waveforms and the host RNG (`_host`). NumPy only; imports nothing else of backprop.

The checks' public names are re-exported here (``from backprop.data import one_hot``)."""

from .checks import (
    DataError,
    as_column,
    check_training_data,
    class_labels,
    host_array,
    one_hot,
    output_size,
    prepare_targets,
    prepare_xy,
)
from .weights import compute_sample_weight, validation_split

__all__ = [
    "DataError",
    "as_column",
    "check_training_data",
    "class_labels",
    "compute_sample_weight",
    "host_array",
    "one_hot",
    "output_size",
    "prepare_targets",
    "prepare_xy",
    "validation_split",
]
