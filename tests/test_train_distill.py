"""Token-level distillation: the loss is the formula, only the student learns, tokenizers must match, KD works."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch

from lamini_lm.config import ConfigError
from lamini_lm.errors import UsageError
from lamini_lm.train import load_recipe
from lamini_lm.train.distill import distillation_loss, divergence, heldout_divergence

ROWS = [
    {"instruction": "Name a fruit that is red.", "response": "An apple is red."},
    {"instruction": "What colour is the sky?", "response": "The sky is blue."},
    {"instruction": "Give a word for happy.", "response": "Glad."},
    {"instruction": "How many legs does a cat have?", "response": "A cat has four legs."},
    {"instruction": "Name three primary colours.", "response": "Red, yellow and blue."},
    {"instruction": "What is 2 + 2?", "response": "2 + 2 = 4."},
]
HELD_OUT = [
    {"instruction": "Name a fruit that is yellow.", "response": "A banana is yellow."},
    {"instruction": "What colour is grass?", "response": "Grass is green."},
]


# --- the loss by hand -------------------------------------------------------------------------------------------


def _softmax(xs, t=1.0):
    m = max(x / t for x in xs)
    e = [math.exp(x / t - m) for x in xs]
    return [v / sum(e) for v in e]


def _div(p, q, kind, beta):
    kl = lambda a, b: sum(x * math.log(x / y) for x, y in zip(a, b) if x > 0)  # noqa: E731
    if kind == "forward_kl":
        return kl(p, q)
    if kind == "reverse_kl":
        return kl(q, p)
    m = [beta * x + (1 - beta) * y for x, y in zip(p, q)]
    return beta * kl(p, m) + (1 - beta) * kl(q, m)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("shift", [False, True])
def test_loss_equals_hand_computation(kind, shift):
    torch.manual_seed(0)
    student = torch.randn(2, 4, 6)
    labels = torch.tensor([[-100, 3, 1, -100], [-100, -100, 5, 2]])
    # response positions (row-major): shifted, logit t predicts label t + 1
    positions = [(b, t - 1 if shift else t) for b in range(2) for t in range(4) if labels[b, t] != -100]
    targets = [int(labels[b, t]) for b in range(2) for t in range(4) if labels[b, t] != -100]
    if shift:  # position 0's label can never be predicted: give it none
        labels[:, 0] = -100
    teacher = torch.randn(len(positions), 6) * 2
    alpha, temp, beta = 0.3, 2.0, 0.3
    out = distillation_loss(
        student, labels, teacher_logits=teacher, alpha=alpha, temperature=temp, kind=kind, beta=beta, shift=shift
    )
    ce = sum(-math.log(_softmax(student[b, t].tolist())[y]) for (b, t), y in zip(positions, targets)) / len(targets)
    div = sum(
        _div(_softmax(teacher[i].tolist(), temp), _softmax(student[b, t].tolist(), temp), kind, beta)
        for i, (b, t) in enumerate(positions)
    ) / len(positions)
    assert out.tokens == len(targets) == 4
    assert float(out.ce) == pytest.approx(ce, rel=1e-5)
    assert float(out.divergence) == pytest.approx(div, rel=1e-5)
    assert float(out.loss) == pytest.approx(alpha * ce + (1 - alpha) * temp**2 * div, rel=1e-5)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
def test_sparse_top_k_loss_is_the_k_tokens_plus_a_remainder_bucket(kind):
    torch.manual_seed(1)
    student = torch.randn(1, 3, 7)
    labels = torch.tensor([[2, 4, -100]])
    full_teacher = torch.randn(2, 7) * 3
    temp, k = 1.5, 3
    t_logp = torch.log_softmax(full_teacher / temp, -1)
    lp, ids = t_logp.topk(k, -1)
    out = distillation_loss(
        student, labels, teacher_token_ids=ids, teacher_logprobs=lp, alpha=0.0, temperature=temp, kind=kind
    )
    want = 0.0
    for i in range(2):
        s = _softmax(student[0, i].tolist(), temp)
        p = [math.exp(x) for x in lp[i].tolist()]
        q = [s[j] for j in ids[i].tolist()]
        want += _div(p + [1 - sum(p)], q + [1 - sum(q)], kind, 0.5)
    assert float(out.loss) == pytest.approx(temp**2 * want / 2, rel=1e-4)


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "jsd"])
@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_chunked_loss_and_gradient_equal_the_whole_batch_at_once(kind, shift, sparse):
    # 3 rows x 9 positions, 16 response tokens: chunks of 5 tokens split rows and leave a short last chunk
    torch.manual_seed(2)
    labels = torch.randint(0, 11, (3, 9))
    labels[0, :3], labels[1, :5], labels[2, 7:] = -100, -100, -100
    labels[:, 0] = -100
    student = torch.randn(3, 9, 11) * 2
    picked, targets = (student[:, :-1], labels[:, 1:]) if shift else (student, labels)
    n = int((targets != -100).sum())
    assert n == 16
    teacher = torch.randn(n, 13) * 3  # padded wider than the student's 11: cut to 11
    t_logp = torch.log_softmax(teacher[:, :11] / 1.5, -1)
    lp, ids = t_logp.topk(4, -1)
    given = dict(teacher_token_ids=ids, teacher_logprobs=lp) if sparse else dict(teacher_logits=teacher)
    grads, values = [], []
    for chunk in (5, 1, None):  # None: the default chunk, larger than the batch
        x = student.clone().requires_grad_(True)
        out = distillation_loss(
            x, labels, alpha=0.3, temperature=1.5, kind=kind, beta=0.4, shift=shift, chunk_tokens=chunk, **given
        )
        (out.loss * 2).backward()  # a gradient other than 1 reaches the loss
        grads.append(x.grad)
        values.append(torch.stack([out.loss, out.ce, out.divergence]).detach())
        assert out.tokens == n
    # the reference: plain autograd through the whole batch at once
    x = student.clone().requires_grad_(True)
    logits, y = (x[:, :-1], labels[:, 1:]) if shift else (x, labels)
    logits = logits[y != -100]
    ce = torch.nn.functional.cross_entropy(logits, y[y != -100])
    s_logp = torch.log_softmax(logits / 1.5, -1)
    if sparse:
        s_logp = torch.log_softmax(logits / 1.5, -1).gather(-1, ids)
        s_rest = torch.log1p(-s_logp.exp().sum(-1, keepdim=True).clamp(max=1 - 1e-6))
        t_rest = torch.log1p(-lp.exp().sum(-1, keepdim=True).clamp(max=1 - 1e-6))
        s_logp, ref_t = torch.cat([s_logp, s_rest], -1), torch.cat([lp, t_rest], -1)
    else:
        ref_t = t_logp
    div = divergence(ref_t, s_logp, kind, 0.4).mean()
    loss = 0.3 * ce + 0.7 * 1.5**2 * div
    (loss * 2).backward()
    want = torch.stack([loss, ce, div]).detach()
    for g, v in zip(grads, values):
        torch.testing.assert_close(v, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g, x.grad, rtol=1e-5, atol=1e-7)
    assert x.grad.abs().sum() > 0


def test_settings_are_checked():
    base = dict(family="causal", model_name_or_path="gpt2", teacher_model_name_or_path="gpt2-xl")
    for bad, match in [
        ({"alpha": 1.5}, "--alpha: must be in"),
        ({"temperature": 0}, "--temperature: must be > 0"),
        ({"beta": 0.0}, r"--beta: must be in \(0, 1\)"),
        ({"divergence": "kl"}, "--divergence: must be one of forward_kl, reverse_kl, jsd"),
        ({"lmbda": 2}, "--lmbda"),
        ({"teacher_logits": "/no/such/logits"}, "--teacher_logits /no/such/logits: no such folder"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_recipe(**base, **bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="int8: needs bitsandbytes and a CUDA GPU"):
            load_recipe(**base, teacher_dtype="int8")
    cfg = load_recipe(**base).config
    assert type(cfg).__name__ == "CausalDistillConfig" and cfg.alpha == 0.5 and cfg.divergence == "forward_kl"
    plain = load_recipe(family="causal", model_name_or_path="gpt2").config
    assert type(plain).__name__ == "CausalRecipeConfig"


# --- toy teachers -----------------------------------------------------------------------------------------------


def _teacher(family, tokenizer, path, seed=1):
    """A slightly bigger tiny model of the same tokenizer, random but fixed and peaked (large init)."""
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    ids = dict(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if family == "causal":
        config = GPT2Config(
            vocab_size=len(tokenizer), n_positions=512, n_embd=64, n_layer=2, n_head=2, initializer_range=0.3, **ids
        )
        model = GPT2LMHeadModel(config)
    else:
        config = T5Config(
            vocab_size=len(tokenizer), d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=2,
            initializer_factor=4.0, relative_attention_num_buckets=8, decoder_start_token_id=tokenizer.pad_token_id,
            **ids,
        )  # fmt: skip
        model = T5ForConditionalGeneration(config)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture
def data(tmp_path):
    from datasets import Dataset, DatasetDict

    path = tmp_path / "data"
    DatasetDict({"train": Dataset.from_list(ROWS), "validation": Dataset.from_list(HELD_OUT)}).save_to_disk(str(path))
    return path


def kd_args(student, teacher, data, out, **kw):
    args = dict(
        model_name_or_path=str(student),
        teacher_model_name_or_path=str(teacher),
        dataset_name=str(data),
        output_dir=str(out),
        per_device_train_batch_size=6,
        per_device_eval_batch_size=6,
        max_steps=30,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        alpha=0.0,
        teacher_batch_size=2,
        use_cpu=True,
        seed=0,
        report_to="none",
        disable_tqdm=True,
    )
    args.update(kw)
    return args


FAMILIES = [("seq2seq", "tiny_t5"), ("causal", "tiny_gpt2")]


@pytest.mark.parametrize("family,fixture", FAMILIES)
def test_kd_run_makes_held_out_divergence_fall_and_only_the_student_learns(
    family, fixture, request, data, tiny_tokenizer, tmp_path
):
    from lamini_lm.train.data import tokenize_dataset

    student = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "student")
    teacher = _teacher(family, tiny_tokenizer, tmp_path / "teacher")
    extra = {"predict_with_generate": False} if family == "seq2seq" else {}
    recipe = load_recipe(family=family, **kd_args(student, teacher, data, tmp_path / "out"), **extra)
    trainer = recipe.build()
    from datasets import Dataset

    held = tokenize_dataset(Dataset.from_list(HELD_OUT + ROWS[:2]), tiny_tokenizer, family, recipe.config)
    t_model = trainer.teacher
    t_before = {k: v.detach().clone() for k, v in t_model.state_dict().items()}
    s_before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    before = heldout_divergence(trainer.model, t_model, held, family, tiny_tokenizer)
    recipe.train()
    after = heldout_divergence(trainer.model, t_model, held, family, tiny_tokenizer)
    assert after < 0.7 * before, (before, after)
    # gradients flow only to the student: the teacher has none and is unchanged, in eval mode
    assert not t_model.training
    assert all(not p.requires_grad and p.grad is None for p in t_model.parameters())
    assert all(torch.equal(v, t_model.state_dict()[k]) for k, v in t_before.items())
    assert any(not torch.equal(v, trainer.model.state_dict()[k]) for k, v in s_before.items())
    assert not any(p is q for p in t_model.parameters() for q in trainer.model.parameters())
    # the manifest names the distillation and the lineage holds the teacher
    manifest = json.loads((tmp_path / "out" / "lamini_lm.json").read_text())
    facts = manifest["extra"]["distillation"]
    assert facts == {
        "type": "token-level",
        "teacher": str(teacher),
        "alpha": 0.0,
        "temperature": 1.0,
        "divergence": "forward_kl",
    }
    roles = [i["role"] for i in manifest["inputs"]]
    assert roles == ["dataset", "base_model", "teacher"] and manifest["inputs"][2]["path"] == str(teacher.resolve())
    assert manifest["extra"]["run_identity"]["teacher"] == str(teacher)


def _refused_train(data, out, *flags) -> str:
    """``lamini-lm train`` with ``flags`` must exit 2 with one error line, no traceback and nothing in ``out``."""
    cmd = [sys.executable, "-m", "lamini_lm.cli", "train", *flags, "--dataset_name", str(data)]
    cmd += ["--output_dir", str(out), "--use_cpu", "true", "--max_steps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("lamini-lm train: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written
    return lines[0]


def test_mismatched_tokenizer_is_refused_in_one_line(tiny_gpt2, data, tmp_path):
    from lamini_lm.testing import build_tiny_gpt2, build_tiny_tokenizer

    other_tok = build_tiny_tokenizer(tmp_path / "other-tok", corpus=["zebra quokka"] * 10, vocab_size=400)
    other = build_tiny_gpt2(tmp_path / "other", tokenizer=other_tok)
    flags = ["--family", "causal", "--model_name_or_path", str(tiny_gpt2), "--teacher_model_name_or_path", str(other)]
    line = _refused_train(data, tmp_path / "out", *flags)
    assert "its tokenizer is not" in line and "same vocabulary" in line


@pytest.mark.parametrize(
    "family,student,teacher,says",
    [
        ("causal", "tiny_t5", None, "--model_name_or_path {student}: a t5 model (encoder-decoder), but the causal "
         "family takes decoder-only models; train it with --family seq2seq"),
        ("seq2seq", "tiny_t5", "tiny_gpt2", "--teacher_model_name_or_path {teacher}: a gpt2 model (decoder-only), "
         "but the seq2seq family takes encoder-decoder models; a token-level teacher is of the student's family"),
    ],
)  # fmt: skip
def test_a_model_of_the_other_family_is_refused_in_one_line(family, student, teacher, says, request, data, tmp_path):
    student = request.getfixturevalue(student)
    flags = ["--family", family, "--model_name_or_path", str(student)]
    if teacher:
        teacher = request.getfixturevalue(teacher)
        flags += ["--teacher_model_name_or_path", str(teacher)]
    assert says.format(student=student, teacher=teacher) in _refused_train(data, tmp_path / "out", *flags)


@pytest.mark.parametrize("family,fixture", FAMILIES)
def test_on_policy_batches_use_the_students_samples(family, fixture, request, data, tiny_tokenizer, tmp_path):
    student = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "student")
    teacher = _teacher(family, tiny_tokenizer, tmp_path / "teacher")
    extra = {"predict_with_generate": False} if family == "seq2seq" else {}
    args = kd_args(student, teacher, data, tmp_path / "out", max_steps=4, lmbda=0.5, on_policy_max_new_tokens=6)
    recipe = load_recipe(family=family, divergence="jsd", **args, **extra)
    recipe.train()
    flags = [e["on_policy"] for e in recipe.trainer.kd_log]
    assert True in flags and False in flags, flags
    assert all(math.isfinite(e["divergence"]) for e in recipe.trainer.kd_log)
    assert json.loads((tmp_path / "out" / "lamini_lm.json").read_text())["extra"]["distillation"]["lmbda"] == 0.5


@pytest.mark.parametrize("family,fixture", FAMILIES)
def test_offline_teacher_logits_train_without_the_teacher(family, fixture, request, data, tiny_tokenizer, tmp_path):
    from datasets import load_from_disk

    student = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "student")
    teacher = _teacher(family, tiny_tokenizer, tmp_path / "teacher")
    common = ["--family", family, "--model_name_or_path", str(student), "--use_cpu", "true", "--seed", "0"]
    cmd = [sys.executable, "-m", "lamini_lm.cli", "teacher-logits", *common, "--dataset_name", str(data)]
    cmd += ["--teacher_model_name_or_path", str(teacher), "--output", str(tmp_path / "logits"), "--top_k", "8"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "stored top-8 log-probs of" in proc.stdout and "bytes/token" in proc.stdout
    art = tmp_path / "logits"
    manifest = json.loads((art / "lamini_lm.json").read_text())
    assert manifest["stage"] == "teacher-logits" and [i["role"] for i in manifest["inputs"]] == ["dataset", "teacher"]
    assert manifest["extra"]["bytes_per_position"] >= 8 * 6  # int32 ids + float16 log-probs, k = 8
    stored = load_from_disk(str(art))
    assert sorted(stored) == ["train", "validation"] and len(stored["train"]) == len(ROWS)
    row = stored["train"][0]
    assert set(row) >= {"instruction", "response", "teacher_token_ids", "teacher_logprobs"}
    assert (
        len(row["teacher_token_ids"][0]) == 8
        and row["teacher_logprobs"][0] == sorted(row["teacher_logprobs"][0])[::-1]
    )
    # the teacher is gone: training reads only the stored log-probs
    shutil.rmtree(teacher)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lamini_lm.cli", "train", *common, "--teacher_logits", str(art)]
    cmd += ["--output_dir", str(out), "--max_steps", "3", "--per_device_train_batch_size", "3", "--alpha", "0.2"]
    cmd += ["--save_strategy", "no", "--eval_strategy", "steps", "--eval_steps", "3", "--report_to", "none"]
    if family == "seq2seq":
        cmd += ["--predict_with_generate", "true", "--generation_max_length", "8"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads((out / "lamini_lm.json").read_text())
    assert trained["extra"]["distillation"]["type"] == "token-level (offline top-k)"
    assert (
        trained["extra"]["distillation"]["teacher"] == str(teacher) and trained["extra"]["distillation"]["top_k"] == 8
    )
    assert [i["role"] for i in trained["inputs"]] == ["dataset", "base_model", "teacher"]
    assert trained["inputs"][0]["manifest_id"] == manifest["id"]
    # the card says what kind of distillation made the student
    from lamini_lm.publishing.model import build_model_card

    card = str(build_model_card(out, "me/student", find_results=False))
    assert "token-level (offline top-k)" in card and "forward_kl" in card and str(teacher) in card
    assert "alpha 0.2" in card and "plain supervised loss" not in card
    # another temperature than the stored one is refused
    with pytest.raises(UsageError, match="temperature 1.0; use that"):
        load_recipe(family=family, model_name_or_path=str(student), teacher_logits=str(art), temperature=2.0,
                    use_cpu=True, output_dir=str(tmp_path / "o2")).build()  # fmt: skip
