"""Building an IVF index larger than memory (Faiss's ``contrib.ondisk``): train one index,
fill copies of it with blocks of the data in separate processes, write each, then merge
their inverted lists into one on-disk data file with ``merge_ondisk``.

``merge_ondisk(trained_index, shard_fnames, ivfdata_fname, shift_ids=False)`` is
``fathom.merge_ondisk``: the shards are read memory-mapped and their lists streamed into
``ivfdata_fname``; ``trained_index`` (empty) then searches them. Write it with
``write_index``; the index file refers to the data file by its path.
"""

from fathom import merge_ondisk

__all__ = ["merge_ondisk"]
