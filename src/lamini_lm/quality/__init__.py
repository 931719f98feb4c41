"""Quality: dedup, filters, decontamination against the eval sets, statistics and plots, the dataset card."""

__all__: list[str] = []
