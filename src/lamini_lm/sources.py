"""Where a model or a dataset comes from, a local path or a Hub id, checked in seconds before any long work.

A value that reads as a path (it has a data-file suffix, starts with ``.``, ``/`` or ``~``, or has more than one
``/``) and does not exist is reported as missing, never looked up on the Hub. A Hub id is asked about once with a
short timeout: a repository that does not exist, or a Hub that cannot be reached, is one line naming the local
alternative. With ``HF_HUB_OFFLINE=1`` nothing is asked; the cache answers later.

Example:
    >>> from lamini_lm.sources import check_source
    >>> check_source("nope.jsonl", "dataset", "--dataset_name")
    Traceback (most recent call last):
    ...
    lamini_lm.errors.UsageError: --dataset_name nope.jsonl: not found (no such file or folder)
"""

from __future__ import annotations

import os
from pathlib import Path

from lamini_lm.artifacts import is_hub_id
from lamini_lm.errors import OfflineError, UsageError

__all__ = ["check_source", "is_offline", "looks_like_path"]

_DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".tsv", ".arrow", ".txt", ".yaml", ".yml")
_LOCAL_HINT = {
    "dataset": "a local .jsonl/.parquet/.csv file or a dataset folder",
    "model": "a local model folder (written by save_pretrained)",
}


def looks_like_path(value: str) -> bool:
    """Whether ``value`` is meant as a local path rather than a Hub id (whether or not it exists)."""
    return (
        value.startswith((".", "/", "~"))
        or value.endswith(_DATA_SUFFIXES)
        or value.count("/") > 1
        or os.sep in value.replace("/", "")
        or not is_hub_id(value)
    )


def check_source(value: str, kind: str, flag: str, timeout: float = 5.0) -> str:
    """``"path"`` or ``"hub"`` for a model or dataset (``kind``) given as ``flag``; a one-line error otherwise."""
    if Path(value).expanduser().exists():
        return "path"
    if looks_like_path(value):
        raise UsageError(f"{flag} {value}: not found (no such file or folder)")
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    if is_offline():
        if kind == "model":
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(value, "config.json"), str):
                raise UsageError(
                    f"{flag} {value}: no such local folder, and not in the Hub cache (HF_HUB_OFFLINE is set); "
                    f"give {_LOCAL_HINT['model']} or download it first"
                )
        return "hub"  # the cache decides; the loader's own error says what is missing
    local = _LOCAL_HINT.get(kind, "a local path")
    try:
        info = HfApi().dataset_info if kind == "dataset" else HfApi().model_info
        info(value, timeout=timeout)
    except RepositoryNotFoundError:
        raise UsageError(
            f"{flag} {value}: no such {kind} on the Hub ({constants.ENDPOINT}) and no such local path; "
            f"give a Hub id or {local}"
        ) from None
    except OfflineModeIsEnabled:
        return "hub"
    except HfHubHTTPError:
        return "hub"  # gated, rate-limited...: the loader reports it with the Hub's own message
    except (ConnectionError, TimeoutError, OSError) as e:
        raise OfflineError(_offline_message(value, kind, flag, e)) from None
    except Exception as e:  # httpx's ConnectError/TimeoutException are not OSErrors
        if type(e).__module__.startswith(("httpx", "httpcore", "requests", "urllib3")):
            raise OfflineError(_offline_message(value, kind, flag, e)) from None
        raise
    return "hub"


def is_offline() -> bool:
    """huggingface_hub's offline mode, or ``HF_HUB_OFFLINE`` set after it was imported (the user's intent)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.is_offline_mode() or env.strip().lower() in ("1", "true", "yes", "on")


def _offline_message(value: str, kind: str, flag: str, error: Exception) -> str:
    from huggingface_hub import constants

    return (
        f"{flag} {value}: the Hub ({constants.ENDPOINT}) cannot be reached ({type(error).__name__}); "
        f"give {_LOCAL_HINT.get(kind, 'a local path')}, or set HF_HUB_OFFLINE=1 to use the cached copy"
    )
