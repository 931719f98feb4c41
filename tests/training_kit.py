"""The settings every tiny training test shares: a few steps on CPU at a high constant learning rate, no
checkpoints, no evaluation, so the loss visibly falls in seconds. Override any of them by keyword."""

from __future__ import annotations


def tiny_args(model, data, out, **overrides) -> dict:
    """``load_recipe`` keyword arguments for ``model`` trained on ``data`` into ``out``."""
    args = dict(
        model_name_or_path=str(model),
        dataset_name=str(data),
        output_dir=str(out),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        gradient_accumulation_steps=1,
        eval_split_size=0,
        max_steps=10,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        use_cpu=True,
        seed=0,
        report_to="none",
        disable_tqdm=True,
    )
    args.update(overrides)
    return args
