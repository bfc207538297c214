"""Data, host side: input checks (`checks`), datasets, preprocessing, the intents corpus, the
generated waveforms, the host RNG (`_host`) and sources of data larger than memory
(`sources`). NumPy only; imports nothing else of backprop.

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
from .sources import (
    ArrayDataset,
    BatchStream,
    Dataset,
    NpyRows,
    Prefetcher,
    RowSource,
    Subset,
    as_dataset,
    is_batch_stream,
    open_npy,
)
from .weights import compute_sample_weight, validation_split

__all__ = [
    "ArrayDataset",
    "BatchStream",
    "DataError",
    "Dataset",
    "NpyRows",
    "Prefetcher",
    "RowSource",
    "Subset",
    "as_column",
    "as_dataset",
    "check_training_data",
    "class_labels",
    "compute_sample_weight",
    "host_array",
    "is_batch_stream",
    "one_hot",
    "open_npy",
    "output_size",
    "prepare_targets",
    "prepare_xy",
    "validation_split",
]
