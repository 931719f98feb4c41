"""Publishing: model cards, dataset cards and release folders, and pushes to the Hub, all rendered from manifests.

- ``lamini_lm.publishing.model`` (model cards, ``publish``): a trained student to a Hub model repo.
- ``lamini_lm.publishing.dataset`` (dataset cards, the release folder, ``push_dataset``): a dataset to a Hub
  dataset repo, in the one release format (parquet shards + README.md with ``configs:``).
"""
