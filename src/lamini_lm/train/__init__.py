"""Training: ``import lamini_lm.train`` for the Seq2Seq and causal recipe classes."""

__all__: list[str] = []
