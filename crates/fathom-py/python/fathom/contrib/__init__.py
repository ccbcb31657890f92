"""Helpers written in Python over fathom's classes, under the names Faiss's ``faiss.contrib``
uses, so ``from faiss.contrib.exhaustive_search import knn_ground_truth`` keeps working as
``from fathom.contrib.exhaustive_search import knn_ground_truth``.

- ``exhaustive_search``: exact k-NN and range ground truth over a database given block by
  block, and range search that tightens its radius to bound the number of results.
- ``ondisk``: ``merge_ondisk``, the shards of an IVF index merged into one on-disk index.
- ``ivf_tools``: ``add_preassigned`` and ``search_preassigned``, the coarse step supplied
  by the caller.
"""
