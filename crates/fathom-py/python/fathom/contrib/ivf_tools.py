"""IVF helpers with the coarse step supplied by the caller (Faiss's ``contrib.ivf_tools``).

- ``add_preassigned(index_ivf, x, a, ids=None)``: adds the rows of ``x`` to the lists
  ``a`` names (``IndexIVF.add_preassigned``).
- ``search_preassigned(index_ivf, xq, k, list_nos, coarse_dis=None)``: searches the lists
  ``list_nos`` names, also through an ``IndexPreTransform`` of one transform in front of
  the IVF index.
"""

import numpy as np

import fathom


def add_preassigned(index_ivf, x, a, ids=None):
    """Adds the rows of ``x`` to the inverted lists ``a`` (one list number per row), with
    ids ``ids`` or sequential ones."""
    x = np.asarray(x)
    a = np.asarray(a)
    if a.shape != (len(x),):
        raise ValueError(f"add_preassigned: a must have shape ({len(x)},), got {a.shape}")
    index_ivf.add_preassigned(x, a, ids)


def search_preassigned(index_ivf, xq, k, list_nos, coarse_dis=None):
    """Searches the lists ``list_nos`` (shape ``(n, nprobe)``) for each query; returns
    ``(D, I)``. ``coarse_dis`` (the queries' distances to those lists' centroids) matters
    for IVF-PQ with residuals; zeros are used when it is not given."""
    if isinstance(index_ivf, fathom.IndexPreTransform):
        chain = index_ivf.chain
        if chain.size() != 1:
            raise ValueError("search_preassigned: the pre-transform must have one transform")
        xq = chain.at(0).apply(xq)
        index_ivf = index_ivf.index
    return index_ivf.search_preassigned(xq, k, list_nos, coarse_dis)
