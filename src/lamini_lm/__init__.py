"""lamini-lm: distil a chat teacher into a herd of small instruction-following students, natively on Hugging Face.

Stages, each a module that reads the previous stage's dataset and writes its own:
``lamini_lm.generation`` -> ``lamini_lm.quality`` -> ``lamini_lm.builders`` -> ``lamini_lm.train`` ->
``lamini_lm.evaluation`` -> ``lamini_lm.publishing``. Heavy packages are imported inside the stage that needs them.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from lamini_lm.inference import generate  # noqa: E402  (light: imports torch/transformers only when called)

__all__ = ["__version__", "generate"]
