"""ROUGE as an ``evaluate`` metric module shipped inside the wheel, so training-time ROUGE-L works offline.

``evaluate.load("rouge")`` fetches its script from the Hub; this file is the same computation (Google's
``rouge-score``) loaded with ``evaluate.load(path_to_this_file)``, which reads no network.

Example:
    >>> from lamini_lm.train.metrics import load_rouge
    >>> load_rouge().compute(predictions=["a cat sat"], references=["a cat sat"])["rougeL"]
    1.0
"""

import datasets
import evaluate
from rouge_score import rouge_scorer, scoring

_DESCRIPTION = "ROUGE-1/2/L/Lsum F-measures (aggregated, bootstrap mid), computed with rouge-score."
_KWARGS = "predictions: list of str; references: list of str; use_stemmer: bool (default False)."


class RougeMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, use_stemmer=False):
        types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
        scorer = rouge_scorer.RougeScorer(rouge_types=types, use_stemmer=use_stemmer)
        aggregator = scoring.BootstrapAggregator(n_samples=100)
        for ref, pred in zip(references, predictions):
            aggregator.add_scores(scorer.score(ref, pred))
        result = aggregator.aggregate()
        return {k: float(result[k].mid.fmeasure) for k in types}
