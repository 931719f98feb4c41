"""Training-time metrics: ROUGE-L of a seq2seq student's generations against the teacher's held-out responses.

ROUGE-L is the library's one implementation (:func:`lamini_lm.quality.text.rouge_l` on ``rouge_score``'s tokens,
equal to ``rouge_score``'s F-measure), the same one dedup uses; it needs no download and no ``evaluate`` module.

Example:
    >>> from lamini_lm.train.metrics import mean_rouge_l
    >>> round(mean_rouge_l(["the cat"], ["the cat sat"]), 2)
    0.8
"""

from __future__ import annotations

from collections.abc import Sequence

from lamini_lm.quality.text import rouge_l, rouge_tokens

__all__ = ["mean_rouge_l", "rouge_compute_metrics"]


def mean_rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The mean ROUGE-L F-measure of each prediction against its reference (0.0 for no pairs)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    scores = [rouge_l(rouge_tokens(p), rouge_tokens(r)) for p, r in zip(predictions, references)]
    return sum(scores) / len(scores) if scores else 0.0


def rouge_compute_metrics(tokenizer):
    """A ``compute_metrics`` for ``Seq2SeqTrainer(predict_with_generate=True)``: ROUGE-L and generation length."""
    import numpy as np

    pad = tokenizer.pad_token_id

    def compute(eval_pred):
        preds, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(preds, tuple):
            preds = preds[0]
        preds = np.where(preds < 0, pad, preds)
        labels = np.where(labels < 0, pad, labels)
        texts = [t.strip() for t in tokenizer.batch_decode(preds, skip_special_tokens=True)]
        refs = [t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        lengths = [int((p != pad).sum()) for p in preds]
        return {"rougeL": mean_rouge_l(texts, refs), "gen_len": float(np.mean(lengths)) if lengths else 0.0}

    return compute
