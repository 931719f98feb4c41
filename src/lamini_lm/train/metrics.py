"""Training-time metrics: ROUGE-L of a seq2seq student's generations against the teacher's held-out responses.

Example:
    >>> from lamini_lm.train.metrics import load_rouge
    >>> round(load_rouge().compute(predictions=["the cat"], references=["the cat sat"])["rougeL"], 2)
    0.8
"""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["load_rouge", "rouge_compute_metrics"]

logger = logging.getLogger(__name__)

_LOCAL_ROUGE = Path(__file__).with_name("rouge_metric.py")


def load_rouge():
    """The ROUGE metric through ``evaluate``, from the module shipped in this package (no Hub access)."""
    try:
        import evaluate
    except ImportError as e:
        raise ImportError("ROUGE during training needs `evaluate`: pip install 'lamini-lm[train]'") from e
    try:
        return evaluate.load(str(_LOCAL_ROUGE))
    except Exception as e:  # a broken install must say so, not hang on the Hub
        raise RuntimeError(f"could not load the local ROUGE module {_LOCAL_ROUGE}: {e}") from e


def rouge_compute_metrics(tokenizer):
    """A ``compute_metrics`` for ``Seq2SeqTrainer(predict_with_generate=True)``: ROUGE-L and generation length."""
    import numpy as np

    rouge = load_rouge()
    pad = tokenizer.pad_token_id

    def compute(eval_pred):
        preds, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(preds, tuple):
            preds = preds[0]
        preds = np.where(preds < 0, pad, preds)
        labels = np.where(labels < 0, pad, labels)
        texts = [t.strip() for t in tokenizer.batch_decode(preds, skip_special_tokens=True)]
        refs = [t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        scores = rouge.compute(predictions=texts, references=refs)
        lengths = [int((p != pad).sum()) for p in preds]
        return {"rougeL": scores["rougeL"], "gen_len": float(np.mean(lengths)) if lengths else 0.0}

    return compute
