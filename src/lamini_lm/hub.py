"""Publish a trained student to the Hub, weights, tokenizer and model card, in one commit.

The card comes from :mod:`lamini_lm.model_card`; this module checks the token, writes the card to
``MODEL_DIR/README.md`` and pushes the folder's published files with ``huggingface_hub.upload_folder``.

Example:
    >>> from lamini_lm.hub import publish
    >>> publish("runs/flan-t5-77m", "me/lamini-flan-t5-77m", eval_results="eval.json")  # doctest: +SKIP

From the shell: ``lamini-lm publish runs/flan-t5-77m --repo-id me/lamini-flan-t5-77m --eval-results eval.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import field
from pathlib import Path

from lamini_lm.model_card import PublishError, build_model_card, write_model_card

__all__ = ["PUBLISHED_FILES", "PublishConfig", "PublishError", "build_model_card", "main", "publish"]

logger = logging.getLogger(__name__)

# What a student repository holds; checkpoints, optimizer states and pickled training arguments stay local.
PUBLISHED_FILES = [
    "README.md",
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "tokenizer.model",
]
STALE_WEIGHTS = ["*.bin", "*.pt", "*.ckpt", "*.h5", "*.msgpack"]


def publish(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    **card_kwargs,
):
    """Write the model card to ``model_dir/README.md`` and push the student to ``repo_id`` in one commit.

    Pushes the weights (safetensors), config, generation config, tokenizer files and the card; nothing else in
    the folder (checkpoints, optimizer state, ``training_args.bin``). ``card_kwargs`` go to
    :func:`build_model_card`. Returns the ``huggingface_hub.CommitInfo``.

    Example:
        >>> publish("runs/flan-t5-77m", "me/lamini-flan-t5-77m", eval_results="eval/results.json")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    model_dir = Path(model_dir)
    token = token or get_token()
    if not token:
        raise PublishError(
            "no Hugging Face token found: set HF_TOKEN or run `hf auth login` with a token that can write to "
            f"{repo_id!r} (https://huggingface.co/settings/tokens)"
        )
    if "/" not in repo_id:
        raise PublishError(f"repo id {repo_id!r} must be NAMESPACE/NAME, e.g. your-user/lamini-flan-t5-77m")
    write_model_card(model_dir, repo_id, **card_kwargs)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=model_dir,
            repo_id=repo_id,
            allow_patterns=PUBLISHED_FILES,
            # Weights of an earlier push (other shards, a .bin) go in the same commit: no stale mix of versions.
            delete_patterns=[*STALE_WEIGHTS, *PUBLISHED_FILES],
            commit_message=commit_message or f"Upload {repo_id.split('/')[-1]} with lamini-lm",
        )
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise PublishError(
                f"the Hub refused the token for {repo_id!r} (HTTP {status}): check that it has write access"
            ) from None
        raise
    logger.info("published %s to %s", model_dir, info.commit_url)
    return info


@dataclasses.dataclass
class PublishConfig:
    repo_id: str = field(metadata={"help": "the Hub repository to create or update, NAMESPACE/NAME"})
    private: bool = field(default=False, metadata={"help": "create the repository as private"})
    eval_results: str | None = field(
        default=None, metadata={"help": "evaluation results JSON (lamini-lm evaluate or lm_eval) for the model-index"}
    )
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the base model, if not recorded"})
    datasets: list[str] | None = field(default=None, metadata={"help": "Hub ids of the training datasets"})
    license: str = field(
        default="cc-by-nc-4.0",
        metadata={"help": "the model's license; LaMini used cc-by-nc-4.0 as teacher outputs restrict commercial use"},
    )
    teacher: str | None = field(default=None, metadata={"help": "the teacher model, if not recorded"})
    commit_message: str | None = field(default=None, metadata={"help": "the commit message"})
    card_only: bool = field(
        default=False, metadata={"help": "only write MODEL_DIR/README.md; push nothing (no token needed)"}
    )


def main(argv: list[str] | None = None, prog: str = "lamini-lm publish") -> int:
    """Push a trained student (weights, config, tokenizer, model card) to the Hub in one commit.

    Usage: lamini-lm publish MODEL_DIR --repo-id USER/NAME [--private] [--eval-results results.json]
    """
    from transformers import HfArgumentParser

    parser = HfArgumentParser([PublishConfig], prog=prog, description=main.__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="a folder written by save_pretrained (the training output)")
    config, rest = parser.parse_args_into_dataclasses(args=argv)
    card_kwargs = {
        "eval_results": config.eval_results,
        "base_model": config.base_model,
        "datasets": config.datasets,
        "license": config.license,
        "teacher": config.teacher,
    }
    try:
        if config.card_only:
            print(write_model_card(rest.model_dir, config.repo_id, **card_kwargs))
            return 0
        info = publish(
            rest.model_dir, config.repo_id, private=config.private, commit_message=config.commit_message, **card_kwargs
        )
    except PublishError as e:
        print(f"{prog}: error: {e}")
        return 2
    print(info.commit_url)
    return 0
