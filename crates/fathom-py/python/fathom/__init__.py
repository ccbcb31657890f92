"""fathom: similarity search and clustering of dense vectors, with Faiss's Python API.

``import fathom as faiss`` runs code written for Faiss: the index classes, ``index_factory``,
``read_index``/``write_index`` (Faiss's file format), ``Kmeans``, the free functions
(``knn``, ``kmin``, ``merge_knn_results``, ...) and the ``contrib`` helpers
(``fathom.contrib.exhaustive_search``, ``fathom.contrib.ondisk``).

The classes and functions live in the compiled module ``fathom._fathom``; this package
re-exports them and adds the pure-Python parts.
"""

from ._fathom import *  # noqa: F401,F403 - the package is the compiled module's names
from ._fathom import __version__  # noqa: F401
