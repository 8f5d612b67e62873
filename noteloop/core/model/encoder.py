"""The default backend: a shared encoder with span heads and a span-pair relation head.

**Architecture.** One encoder (all-MiniLM-L6-v2 unless configured otherwise) reads a note
in overlapping windows of ``window_tokens`` tokens. Two span heads read its output: the
tagger tags every token (``O``, ``B-X``, ``I-X``), and the enumeration head scores every
word-aligned token range of up to ``span_width`` tokens as "no span" or one of the types
(``heads.EnumerationHead``). The relation head scores pairs of spans from the first and
last token vectors of both, the mean of the tokens between them, their entity types and
their distance, and (``relation_features`` 'rich') each span's own tokens and their
product (``heads.RelationHead``). All heads are trained jointly: the loss is the
enumeration cross-entropy plus ``tagger_loss_weight`` times the tag cross-entropy plus
``relation_loss_weight`` times the relation cross-entropy. The relation candidates are
the gold spans' pairs (all gold relations plus sampled "no relation" pairs), so the
relation head learns from clean spans from the first step; with
``relation_on_predicted``, from the second epoch on they also include the pairs of the
spans the model itself predicted in the training notes after the epoch before, taught
"no relation" where a span is not gold: prediction pairs predicted spans, and a relation
on a wrong span counts as wrong (MACCROBAT2020, 50 notes: end-to-end relation F1 0.244
against 0.217).

**Which spans are suggested** (``config.span_head``, 'hybrid' by default: on MACCROBAT2020
after 150 notes 0.647 strict F1 and 0.735 lenient, against 0.622 and 0.738 for the tagger
of the same model and 0.648 and 0.722 for enumeration alone; bench/README.md): ``bio``
decodes the tagger alone
(constrained Viterbi): one span per token, so nested and overlapping spans cannot be
suggested (MACCROBAT2020: 435 of 18,642 training spans, 2.3%; a corpus with heavy nesting
loses a fifth). ``enumerate`` suggests the candidates the enumeration head calls spans
(``decode.choose_spans``: likeliest first, nesting kept, crossing readings dropped), and
a second type on the same range where its probability reaches ``second_type_threshold``
(the gold gives 0.6% of MACCROBAT2020's spans a range that another type shares: a
disorder that is also history; such a range is taught both types half and half).
``hybrid`` suggests the enumerated spans and adds the tagger's spans that overlap none of
them (``_gaps_filled``): where enumeration misses a span whole, the tagger often finds it
or part of it (at 20 notes strict F1 0.494 against 0.481 for enumeration alone). The
tagger is trained under every choice: its token entropy is the note's
uncertainty for active learning. Span widths are learnt from the gold
(``features.learnt_width``); discontinuous spans are suggested as their fragments.

**Held-out gold.** Once the gold has ``holdout_min_docs`` notes, a share of them
(``holdout.split_holdout``) is kept out of training and judges every epoch: training
stops ``patience`` epochs after the best one, whose weights are kept, and each relation
type gets the threshold that maximised its end-to-end F1 on those notes
(:mod:`noteloop.core.thresholds`). Smaller gold sets train on every note with the fixed
schedule of ``EncoderConfig.epochs_for``.

**LoRA.** peft's LoRA on every linear layer of the encoder (``config.target_modules``);
``full_finetune`` trains all encoder weights instead, for comparison. The heads are
separate modules, always fully trained, saved beside the adapter (see ``heads``).

**Precision.** Where the hardware computes bfloat16 natively (a CPU with AMX or
AVX512-BF16, most CUDA GPUs), the forward passes run under bfloat16 autocast
(``config.precision``, "auto" by default); weights, optimiser state, softmaxes and losses
stay float32. A run repeats exactly on the same machine either way.

**A round starts from the base model, or continues from an earlier version.** ``train``
builds a new adapter and new heads on the whole gold set it is given, for the epochs of
``EncoderConfig.epochs_for``. Given ``start``, an earlier saved model of the same
project, it continues from that model's adapter and heads for ``warm_epochs`` epochs
instead, where that is the same model (same base encoder, labels and learnt span width)
and fair: the gold has not doubled since the chain's last round from the base model
(``WARM_GROWTH``), and the earlier model trained on none of the notes this round holds
out. Otherwise it starts from the base model, and says why in the log. The worker
continues from the serving version: on MACCROBAT2020 a 50-note round continued from a
40-note version for 3 epochs scored what 10 epochs from the base model score, in a
quarter of the time. The summary's ``warm_from`` names the model a round continued from,
and ``noteloop.json`` lists the notes each version trained on and the size of its
chain's last round from the base model, so a chain of rounds can be replayed.

**Prediction.** Windows of many notes are batched together, longest first (little
padding). Each token takes its tag distribution from the window where it is most central,
and each candidate span its scores from the window where it is most central; a tagged
span is scored by the mean probability of its tokens' chosen tags, an enumerated one by
the probability of its type. Relations are scored over the predicted spans under the
schema's constraints (a pair the schema forbids is never a candidate); a pair is
suggested as its likeliest type when that type's probability reaches the type's
threshold, and scored by it. A note's **uncertainty** is the mean
normalised entropy of its tokens' tag distributions (``decode.normalised_entropy``); its
**embedding** is the mean of the encoder's output vectors over all its tokens.

**Saved layout** (``save`` writes only inside the folder it is given):
``adapter/`` (peft: adapter_config.json, adapter_model.safetensors) or ``encoder/`` (full
fine-tuning), ``heads.safetensors`` and ``noteloop.json`` (config, schema, label maps,
training summary, backend, format version).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from noteloop.core import thresholds
from noteloop.core.metrics import evaluate
from noteloop.core.model import batches as bt
from noteloop.core.model.base import (
    DocumentPrediction,
    Int8Check,
    MetricEvent,
    OnMetric,
    OnProgress,
    ShouldStop,
    TrainSummary,
)
from noteloop.core.model.config import EncoderConfig
from noteloop.core.model.decode import (
    choose_spans,
    normalised_entropy,
    runs_with_scores,
    viterbi_bio,
)
from noteloop.core.model.device import (
    apply_thread_budget,
    autocast,
    choose_device,
    choose_precision,
    quiet_model_loading,
    release_freed_memory,
    seed_everything,
)
from noteloop.core.model.features import (
    EncodedDoc,
    LabelMaps,
    PairSet,
    SpanCandidates,
    attach_spans,
    attach_tags,
    candidate_pairs,
    encode_document,
    gold_span_targets,
    gold_targets,
    label_pairs,
    learnt_width,
    span_candidates,
    word_edges,
)
from noteloop.core.model.heads import CandidateBatch, EnumerationHead, RelationHead, SpanHead
from noteloop.core.model.holdout import held_out_score, split_holdout
from noteloop.core.model.quantize import SCHEMES, int8_encoder, int8_supported, is_int8
from noteloop.core.model.saved import META_FILE, FormatError, read_meta
from noteloop.core.model.train import LoopOptions, LoopResult, fit, parameter_groups
from noteloop.core.schema import Document, LabelSchema, Relation, Span, Suggestion

quiet_model_loading()

log = logging.getLogger("noteloop.encoder")

BACKEND = "encoder"
FORMAT_VERSION = 1
HEADS_FILE = "heads.safetensors"
# A chain of continued rounds goes back to the base model once the gold has grown this
# many times over since the chain's last round from the base model. Each continued round
# drifts a little: on MACCROBAT2020 rounds continued from 10 notes all the way to 150
# scored 0.630 strict F1 against 0.647 from the base model, while a 50-note round
# continued from a 40-note one from the base model scored 0.569 against 0.567.
WARM_GROWTH = 2.0
# Windows kept in memory at once while predicting (their encoder outputs feed the
# relation head after the note's spans are decoded): ~50 MB for MiniLM at 256 tokens.
_WINDOWS_PER_CHUNK = 128
# Windows encoded together when predicting. 8, not 32: on 2 CPU threads the 50
# MACCROBAT2020 test notes went at 3,149 wordpieces/s in float32 against 2,658 with 32,
# 5,589 against 5,371 under bfloat16, in 864 MB against 951 (bench/README.md); and
# refreshing the training notes' predicted spans with 32 raised a 125-note round's
# peak from 1,417 MB to 1,593.
PREDICT_BATCH_SIZE = 8
_DECODE_GROUP = 16  # notes decoded together by the batched Viterbi
MIN_EPOCHS_JUDGED = 3  # see collapsed()


class _Joint(nn.Module):
    """The encoder and its heads, as one module (one ``train()``/``eval()`` switch).

    ``span_width`` > 0 adds the enumeration head, scoring candidates up to that many tokens.
    """

    def __init__(self, encoder: nn.Module, maps: LabelMaps, config: EncoderConfig,
                 span_width: int) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.span_head = SpanHead(hidden, len(maps.tags), config.head_dropout)
        self.relation_head = RelationHead(
            hidden, len(maps.entities), maps.n_relation_classes,
            config.relation_hidden, config.head_dropout, config.relation_features == "rich",
        )
        self.enumeration_head = EnumerationHead(
            hidden, len(maps.entities), config.span_hidden, span_width, config.head_dropout
        ) if span_width else None

    def heads(self) -> dict[str, nn.Module]:
        named = {"span_head": self.span_head, "relation_head": self.relation_head}
        if self.enumeration_head is not None:
            named["enumeration_head"] = self.enumeration_head
        return named

    def states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
               ) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state

    def heads_state(self) -> dict[str, torch.Tensor]:
        state = {f"{name}.{k}": v for name, head in self.heads().items()
                 for k, v in head.state_dict().items()}
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def load_heads(self, state: dict[str, torch.Tensor]) -> None:
        for name, head in self.heads().items():
            prefix = f"{name}."
            head.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                  if k.startswith(prefix)})


def _joint_loss(model: _Joint, config: EncoderConfig, batch: bt.Batch
                ) -> dict[str, torch.Tensor]:
    """The weighted sum of the heads' cross-entropies; ``span_loss`` is the tagger's."""
    states = model.states(batch.input_ids, batch.attention_mask)
    logits = model.span_head(states)
    assert batch.tags is not None
    span_loss = F.cross_entropy(logits.flatten(0, 1), batch.tags.flatten(), ignore_index=-100)
    zero = torch.zeros((), device=states.device)
    relation_loss, enumeration_loss = zero, zero
    if batch.pairs is not None:
        scores = model.relation_head(states, batch.pairs)
        relation_loss = F.cross_entropy(scores, batch.pairs.target)
    if model.enumeration_head is None:
        loss = span_loss + config.relation_loss_weight * relation_loss
        return {"loss": loss, "span_loss": span_loss, "relation_loss": relation_loss}
    if batch.candidates is not None:
        # Summed over candidates and divided by the tokens, as the tagger's loss is: a mean
        # over candidates would dilute each gold span among ~75 sure non-spans, and the
        # head learnt too little in a short schedule (MACCROBAT, 50 notes: strict F1 0.46
        # against the tagger's 0.52 from the same encoder).
        scores = model.enumeration_head(states, batch.candidates)
        tokens = (batch.tags != -100).sum().clamp(min=1)
        enumeration_loss = _enumeration_nll(scores, batch.candidates).sum() / tokens
    loss = (config.tagger_loss_weight * span_loss + enumeration_loss
            + config.relation_loss_weight * relation_loss)
    return {"loss": loss, "span_loss": span_loss, "relation_loss": relation_loss,
            "enumeration_loss": enumeration_loss}


def _enumeration_nll(scores: torch.Tensor, cands: CandidateBatch) -> torch.Tensor:
    """Each candidate's cross-entropy against its gold classes: the one class, or half
    and half the two of a range with a second type. Half and half, not two sigmoids:
    the 0.6% of MACCROBAT's spans that share a range keep the softmax that serves the
    others, and a range's two types each reach about 0.5, which the decoder reads as
    two suggestions (``second_type_threshold``)."""
    assert cands.target is not None and cands.second is not None
    logp = F.log_softmax(scores.float(), dim=-1)
    first = -logp.gather(1, cands.target[:, None]).squeeze(1)
    second = -logp.gather(1, cands.second[:, None]).squeeze(1)
    return torch.where(cands.second > 0, (first + second) / 2, first)


def _lora_targets(model: nn.Module) -> tuple[list[str], list[str] | None]:
    """Every linear layer's name suffix, with the pooler's layers excluded by full name.

    The pooler turns [CLS] into a sentence vector that neither head reads: an adapter
    there would be saved but never trained.
    """
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    leaves = sorted({n.rsplit(".", 1)[-1] for n in linear if "pooler" not in n})
    exclude = [n for n in linear if "pooler" in n and n.rsplit(".", 1)[-1] in leaves]
    return leaves, exclude or None


class EncoderExtractor:
    """Span and relation extraction with a LoRA-tuned encoder (see the module docstring)."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()
        self.device = choose_device(self.config.device)
        self.precision = choose_precision(self.config.precision, self.device)
        self.tokenizer = self._load_tokenizer()
        self.specials = self._specials()
        self.maps: LabelMaps | None = None
        self.schema: LabelSchema | None = None
        self.model: _Joint | None = None
        self.summary: TrainSummary | None = None
        self.span_width = 0  # candidates' widest, under span enumeration (0: the tagger's spans)
        # the least probability of a suggested relation, per type (chosen on held-out gold)
        self.relation_thresholds: dict[str, float] = {}
        self._merged: nn.Module | None = None  # the inference copy of the encoder
        # int8 inference's F1 against float, measured when published (None: not checked)
        self.int8_check: Int8Check | None = None
        self._int8_trial = ""  # the int8 scheme check_int8 is trying, whatever the config
        self.trained_on: list[str] = []  # the ids of the notes the model trained on
        # the notes of the last round from the base model in this model's chain of rounds
        self.base_round_docs = 0

    # ------------------------------------------------------------------ building

    def _load_tokenizer(self) -> Any:
        path = self.config.resolved_base_model()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"{path}: the tokenizer must be a fast one (character offsets)")
        # Notes are windowed here, never truncated: the "longer than the maximum" warning
        # the tokenizer would print for every long note does not apply.
        tokenizer.model_max_length = 1 << 30
        return tokenizer

    def _specials(self) -> bt.Specials:
        tok = self.tokenizer
        first = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        last = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        if first is None or last is None:
            raise ValueError("the tokenizer has no [CLS]/<s> and [SEP]/</s> tokens to wrap windows")
        return bt.Specials(first, last, pad)

    def _encoder(self, saved: Path | None) -> nn.Module:
        """The base encoder with a fresh adapter, or the saved adapter/weights in ``saved``."""
        cfg = self.config
        source = saved / "encoder" if saved is not None and cfg.full_finetune else None
        base = self._base_model(source or cfg.resolved_base_model())
        if cfg.full_finetune:
            return base
        if saved is not None:
            return PeftModel.from_pretrained(base, saved / "adapter", is_trainable=False)
        targets, exclude = (list(cfg.target_modules), None) if cfg.target_modules else (
            _lora_targets(base)
        )
        lora = LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=targets, exclude_modules=exclude, bias="none",
        )
        return get_peft_model(base, lora)

    def _base_model(self, source: Path) -> nn.Module:
        """The encoder's weights from ``source``, with the configured attention dropout."""
        config = AutoConfig.from_pretrained(source, local_files_only=True)
        for name in ("attention_probs_dropout_prob", "attention_dropout"):  # BERT, DistilBERT
            if hasattr(config, name):
                setattr(config, name, self.config.attention_dropout)
        return AutoModel.from_pretrained(source, config=config, local_files_only=True)

    def _build(self, maps: LabelMaps, saved: Path | None = None) -> _Joint:
        model = _Joint(self._encoder(saved), maps, self.config, self.span_width)
        limit = getattr(model.encoder.config, "max_position_embeddings", None)
        if limit is not None and self.config.window_tokens + 2 > limit:
            raise ValueError(
                f"`window_tokens` + 2 special tokens must fit the encoder's {limit} positions, "
                f"got {self.config.window_tokens}"
            )
        return model.to(self.device)

    # ------------------------------------------------------------------ encoding

    def _encode(self, docs: Sequence[Document]) -> list[EncodedDoc]:
        if not docs:
            return []
        out = self.tokenizer(
            [d.text for d in docs], add_special_tokens=False, return_offsets_mapping=True,
            return_attention_mask=False, return_token_type_ids=False,
        )
        cfg = self.config
        return [
            encode_document(doc, ids, offs, cfg.window_tokens, cfg.window_overlap)
            for doc, ids, offs in zip(docs, out["input_ids"], out["offset_mapping"], strict=True)
        ]

    def _with_pairs(self, enc: EncodedDoc, maps: LabelMaps) -> PairSet:
        cfg = self.config
        return candidate_pairs(enc, maps, cfg.max_relation_distance, cfg.max_relation_candidates)

    def _training_docs(
        self, docs: Sequence[Document], maps: LabelMaps
    ) -> tuple[list[EncodedDoc], int]:
        """The notes encoded with their tags and gold pairs, and how many gold spans the
        tags cannot express (overlapping another, or discontinuous)."""
        encoded = self._encode(docs)
        dropped = 0
        for enc in encoded:
            dropped += attach_tags(enc, maps)
            self._label_pairs(enc, maps, [])
        return encoded, dropped

    def _label_pairs(self, enc: EncodedDoc, maps: LabelMaps, extra: Sequence[Span]) -> None:
        """The note's training pairs over its gold spans and ``extra`` (predicted) ones: a
        pair with an extra span is a 'no relation' example, as such a pair is when
        predicting, where the strict metric counts a relation on a wrong span as wrong."""
        enc.spans, enc.ranges = [], []
        attach_spans(enc, [*enc.doc.spans, *extra])
        targets, _ = gold_targets(enc, maps)
        enc.pairs = label_pairs(self._with_pairs(enc, maps), targets)

    def _add_predicted_pairs(self, model: _Joint, maps: LabelMaps,
                             encoded: list[EncodedDoc]) -> None:
        """Adds the spans ``model`` now predicts in the training notes, beside the gold,
        to their training pairs (``relation_on_predicted``)."""
        with self._serving(model, maps), torch.inference_mode():
            found = self._spans_only([e.doc for e in encoded])
        for enc, spans in zip(encoded, found, strict=True):
            gold = {(s.label, s.start, s.end) for s in enc.doc.spans}
            extra = [Span(f"~predicted{i}", s.label, s.start, s.end) for i, s in enumerate(spans)
                     if (s.label, s.start, s.end) not in gold]
            self._label_pairs(enc, maps, extra)

    def _spans_only(self, docs: Sequence[Document]) -> list[list[Span]]:
        """The spans the current model finds in ``docs`` (no relations, no embedding)."""
        out: list[list[Span]] = []
        for chunk in self._chunks(docs):
            encoded = self._encode(chunk)
            states, logps = self._states_and_logps(encoded, PREDICT_BATCH_SIZE)
            out += [[s.item for s in found]  # type: ignore[misc]
                    for found in self._found_spans(encoded, states, logps)]
        return out

    @contextmanager
    def _serving(self, model: _Joint, maps: LabelMaps) -> Iterator[None]:
        """Lets the prediction methods use ``model`` while it trains (in eval mode), then
        puts the extractor and the model's mode back as they were.

        Its encoder predicts unmerged: a merged copy (``_inference_encoder``) would add the
        encoder's size to the round's peak memory at every epoch's refresh of the
        predicted spans, where the peak was (1,496 MB in a 125-note round).
        """
        before, training = (self.model, self.maps, self._merged), model.training
        self.model, self.maps, self._merged = model.eval(), maps, model.encoder
        try:
            yield
        finally:
            self.model, self.maps, self._merged = before
            model.train(training)

    def _attach_candidates(self, encoded: list[EncodedDoc], maps: LabelMaps) -> int:
        """Sets ``span_width`` (configured or learnt) and every note's labelled candidates;
        returns how many gold spans no candidate can express."""
        cfg = self.config
        if cfg.span_head == "bio":
            self.span_width = 0
            return 0
        self.span_width = cfg.max_span_tokens or learnt_width(encoded)
        lost = 0
        for enc in encoded:
            enc.candidates = span_candidates(enc, self.span_width, every_window=True)
            lost += gold_span_targets(enc, enc.candidates, maps)
        return lost

    # ------------------------------------------------------------------ training

    def train(
        self,
        docs: Sequence[Document],
        schema: LabelSchema,
        *,
        on_metric: OnMetric | None = None,
        should_stop: ShouldStop | None = None,
        start: Path | None = None,
    ) -> TrainSummary:
        """Trains an adapter and heads on ``docs``: new ones from the base model, or the
        ones saved in ``start`` continued, where ``_warm_state`` allows.

        Raises:
            ValueError: no documents, or none with any token.
            TrainingCancelled: ``should_stop()`` returned True; this extractor is unchanged.
        """
        cfg = self.config
        apply_thread_budget(cfg.threads)
        maps = LabelMaps.from_schema(schema)
        docs, held = split_holdout(docs, cfg.holdout_share, cfg.holdout_min_docs)
        encoded, untagged = self._training_docs(docs, maps)
        lost = self._attach_candidates(encoded, maps)
        if lost:
            log.info("%d gold spans are no candidate of width <= %d (discontinuous, cut inside "
                     "a word or wider)", lost, self.span_width)
        # what the suggesting head cannot learn, reported with the round
        unexpressed = untagged if cfg.span_head == "bio" else lost
        refs = [(d, w) for d, enc in enumerate(encoded) for w in range(len(enc.windows))]
        if not refs:
            raise ValueError("nothing to train on: no document has any text")
        warm = self._warm_state(start, maps, docs, held) if start is not None else None
        epochs = cfg.warm_epochs if warm is not None else cfg.epochs_for(len(docs))
        guessing = tag_prior_loss(encoded)
        self.relation_thresholds = {}
        for restart in range(cfg.restarts + 1):
            watch = _EarlyStop(self, maps, schema, held, cfg.patience) if held else None
            model, result, tag_loss = self._fit(encoded, refs, maps, epochs, cfg.seed + restart,
                                                on_metric, should_stop, watch,
                                                None if warm is None else warm.weights)
            if not collapsed(tag_loss, guessing, epochs) or restart == cfg.restarts:
                break
            log.warning("the tagger collapsed (tag loss %.3f, guessing %.3f): retraining "
                        "with seed %d", tag_loss, guessing, cfg.seed + restart + 1)
            if on_metric is not None:
                on_metric(MetricEvent(epochs, result.steps, "restart", restart + 1, result.seconds))
        self.model, self.maps, self.schema, self._merged = model.eval(), maps, schema, None
        self.int8_check = None  # a new model: int8 serves it once checked again
        trained = epochs if watch is None else watch.best_epoch
        if watch is not None and maps.relations:
            self.relation_thresholds = self._calibrated_thresholds(held)
        n_tokens = sum(e.n_tokens for e in encoded)
        self.trained_on = [d.id for d in docs]
        self.base_round_docs = warm.base_round_docs if warm is not None else len(docs)
        del encoded, refs  # the notes' tensors and candidates, before memory is handed back
        release_freed_memory()
        self.summary = TrainSummary(
            trained, result.steps, result.seconds, result.final_loss, len(docs), n_tokens,
            self.device, self.precision, restart, len(held),
            None if watch is None else watch.best_score, unexpressed,
            str(start) if warm is not None else "",
        )
        return self.summary

    def _warm_state(self, start: Path, maps: LabelMaps, docs: Sequence[Document],
                    held: Sequence[Document]) -> _WarmStart | None:
        """The trainable weights (adapter and heads) saved in ``start``, or None where the
        round must start from the base model (the reason is logged)."""
        reason = self._cannot_continue(Path(start), maps, docs, held)
        if not reason:
            try:
                meta = read_meta(Path(start), BACKEND, FORMAT_VERSION)
                return _WarmStart(self._saved_trainables(Path(start), maps),
                                  _base_round_docs(meta))
            except (OSError, RuntimeError, ValueError, SafetensorError) as err:  # a bad file
                reason = f"its weights do not load ({err})"
        log.info("the round starts from the base model, not from %s: %s", start, reason)
        return None

    def _cannot_continue(self, start: Path, maps: LabelMaps, docs: Sequence[Document],
                         held: Sequence[Document]) -> str:
        """Why the round cannot continue from the model saved in ``start``; "" if it can."""
        cfg = self.config
        if cfg.warm_epochs == 0 or cfg.full_finetune:
            return "warm_epochs is 0" if cfg.warm_epochs == 0 else "full fine-tuning"
        try:
            meta = read_meta(start, BACKEND, FORMAT_VERSION)
        except (FormatError, OSError, ValueError) as err:
            return str(err)
        saved = meta.get("config", {})
        if saved.get("full_finetune") or saved.get("base_model", "") != cfg.base_model:
            return "it was trained from another base model"
        if meta.get("labels") != maps.to_dict():
            return "the schema's labels changed"
        if int(meta.get("span_width", 0)) != self.span_width:
            return f"the learnt span width changed ({meta.get('span_width')} -> {self.span_width})"
        return _unfair_start(meta, docs, held)

    def _saved_trainables(self, start: Path, maps: LabelMaps) -> dict[str, torch.Tensor]:
        # Loaded into a freshly built model, which checks every name and shape.
        model = self._build(maps)
        adapter = load_file(str(start / "adapter" / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model.encoder, adapter)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"adapter weights this model lacks: {result.unexpected_keys[:3]}")
        model.load_heads(load_file(str(start / HEADS_FILE)))
        return {name: p.detach().clone() for name, p in model.named_parameters()
                if p.requires_grad}

    def _fit(
        self, encoded: list[EncodedDoc], refs: list[bt.WindowRef], maps: LabelMaps, epochs: int,
        seed: int, on_metric: OnMetric | None, should_stop: ShouldStop | None,
        watch: _EarlyStop | None = None, warm: dict[str, torch.Tensor] | None = None,
    ) -> tuple[_Joint, LoopResult, float]:
        """One training run from the base model, or from the trainable weights ``warm``;
        returns the model, the loop's result and the mean tag loss of the last epoch. With
        ``watch``, training stops once the held-out score stopped improving, and the best
        epoch's weights are returned."""
        cfg = self.config
        seed_everything(seed)
        model = self._build(maps).train()
        if warm is not None:
            model.load_state_dict(warm, strict=False)
        if cfg.relation_on_predicted and maps.relations:
            for enc in encoded:  # a restart starts again from the gold pairs alone
                self._label_pairs(enc, maps, [])
        tag_loss = _LastEpochMean("span_loss", on_metric)
        refresh = refresh_epochs(epochs, cfg.relation_refreshes)

        def after_epoch(epoch: int) -> bool:
            stop = watch is not None and watch(model, epoch)
            if not stop and epoch in refresh and cfg.relation_on_predicted and maps.relations:
                self._add_predicted_pairs(model, maps, encoded)
            return stop

        result = fit(
            self._param_groups(model),
            lambda epoch: self._epoch_batches(encoded, refs, maps, epoch, seed),
            lambda batch: self._loss(model, batch),
            LoopOptions(epochs, -(-len(refs) // cfg.batch_size), cfg.warmup_ratio,
                        cfg.max_grad_norm),
            on_metric=tag_loss, should_stop=should_stop, after_epoch=after_epoch,
        )
        if watch is not None:
            watch.restore_best(model)
        return model, result, tag_loss.mean()

    def _loss(self, model: _Joint, batch: bt.Batch) -> dict[str, torch.Tensor]:
        # Autocast covers the forward pass only; the loop's backward runs outside it.
        with autocast(self.device, self.precision):
            return _joint_loss(model, self.config, batch)

    def _param_groups(self, model: _Joint) -> list[dict[str, Any]]:
        cfg = self.config
        encoder_lr = cfg.lr_full_finetune if cfg.full_finetune else cfg.lr_adapter
        heads = [p for head in model.heads().values() for p in head.named_parameters()]
        return [
            *parameter_groups(model.encoder.named_parameters(), encoder_lr, cfg.weight_decay),
            *parameter_groups(heads, cfg.lr_heads, cfg.weight_decay),
        ]

    def _epoch_batches(
        self, encoded: list[EncodedDoc], refs: list[bt.WindowRef], maps: LabelMaps, epoch: int,
        seed: int,
    ) -> Iterator[bt.Batch]:
        """The epoch's windows in seeded random batches, with freshly sampled negative pairs."""
        cfg = self.config
        rng = random.Random(seed * 1_000_003 + epoch)
        lengths = [len(encoded[d].windows[w]) for d, w in refs]
        pairs = [bt.by_window(e.pairs or PairSet.empty(1), len(e.windows)) for e in encoded]
        cands = [e.candidates.by_window(len(e.windows)) if e.candidates is not None else None
                 for e in encoded]
        for batch in bt.shuffled_batches(refs, lengths, cfg.batch_size, rng):
            sampled = [bt.sample_pairs(pairs[d][w], cfg.relation_negative_ratio, rng)
                       for d, w in batch]
            yield self._batch(encoded, batch, maps, sampled, cands).to(self.device)

    def _batch(
        self, encoded: list[EncodedDoc], refs: Sequence[bt.WindowRef], maps: LabelMaps,
        pairs: Sequence[PairSet], cands: Sequence[list[SpanCandidates] | None],
    ) -> bt.Batch:
        rows = [bt.window_ids(encoded[d], w, self.specials) for d, w in refs]
        ids, mask = bt.token_batch(rows, self.specials.pad, self._window_limit())
        tags = bt.tag_batch(encoded, refs, ids.shape[1])
        windows = [cands[d][w] for d, w in refs if cands[d] is not None]  # type: ignore[index]
        candidates = (bt.candidate_batch(encoded, refs, windows, with_target=True)
                      if len(windows) == len(refs) else None)
        return bt.Batch(ids, mask, tags, bt.pair_batch(encoded, refs, pairs, maps), candidates)

    # ------------------------------------------------------------------ prediction

    def _require_model(self) -> tuple[_Joint, LabelMaps]:
        if self.model is None or self.maps is None:
            raise RuntimeError("the extractor has no model yet: train() or load() it first")
        return self.model, self.maps

    def predict(
        self,
        docs: Sequence[Document],
        *,
        batch_size: int = PREDICT_BATCH_SIZE,
        on_progress: OnProgress | None = None,
        given_spans: bool = False,
    ) -> list[DocumentPrediction]:
        """Span and relation suggestions, uncertainty and embedding for each document.

        With ``given_spans`` the documents' own spans are kept (score 1.0, their own ids)
        and only relations are predicted between them.
        """
        self._require_model()
        apply_thread_budget(self.config.threads)
        out: list[DocumentPrediction] = []
        with torch.inference_mode():
            for chunk in self._chunks(docs):
                out.extend(self._predict_chunk(chunk, batch_size, given_spans))
                if on_progress is not None:
                    on_progress(len(out), len(docs))
        return out

    def _chunks(self, docs: Sequence[Document]) -> Iterator[list[Document]]:
        """Consecutive documents with about ``_WINDOWS_PER_CHUNK`` windows in all."""
        size = self.config.window_tokens - self.config.window_overlap
        chunk: list[Document] = []
        windows = 0
        for doc in docs:
            chunk.append(doc)
            windows += 1 + len(doc.text) // (4 * size)  # ~4 characters per token
            if windows >= _WINDOWS_PER_CHUNK:
                yield chunk
                chunk, windows = [], 0
        if chunk:
            yield chunk

    def _predict_chunk(
        self, docs: list[Document], batch_size: int, given_spans: bool
    ) -> list[DocumentPrediction]:
        encoded = self._encode(docs)
        states, logps = self._states_and_logps(encoded, batch_size)
        found: list[list[Suggestion] | None] = [None] * len(encoded)
        if not given_spans:
            found = list(self._found_spans(encoded, states, logps))
        return [self._predict_doc(enc, states[i], logps[i], found[i])
                for i, enc in enumerate(encoded)]

    def _states_and_logps(
        self, encoded: list[EncodedDoc], batch_size: int
    ) -> tuple[list[list[torch.Tensor]], list[np.ndarray]]:
        """Each window's encoder output, and each note's tag log-probabilities."""
        _, maps = self._require_model()
        states, window_logps = self._run_windows(encoded, batch_size)
        n_tags = len(maps.tags)
        return states, [_merge(e, lp, n_tags) for e, lp in zip(encoded, window_logps, strict=True)]

    def _inference_encoder(self) -> nn.Module:
        """The encoder prediction runs: with LoRA, a copy with the adapter merged into the
        base weights, built once per trained or loaded model.

        One matmul per linear layer instead of three: about 1.5x the throughput on CPU
        (measured with bench/bench_encoder.py). The trainable original stays untouched, so
        saving writes the adapter, and a loaded model builds the same merged copy. Where
        ``_int8_scheme`` says so, the copy's linear layers are then made int8.
        """
        model, _ = self._require_model()
        if self._merged is None:
            encoder, scheme = model.encoder, self._int8_scheme()
            if isinstance(encoder, PeftModel) or scheme:  # both rewrite what they hold
                encoder = _inference_copy(encoder)
            self._merged = int8_encoder(encoder, scheme) if scheme else encoder.eval()
        return self._merged

    def _int8_scheme(self) -> str:
        """The int8 scheme prediction runs the encoder with (config ``inference``); ''
        for float weights."""
        if not int8_supported(self.device):
            return ""
        check = self.int8_check
        if self._int8_trial or self.config.inference == "int8":
            return self._int8_trial or (check.scheme if check is not None else SCHEMES[0])
        # 'auto' leaves a CPU that computes bfloat16 natively to it: as fast as int8 there
        # (5,625 against 5,647 tokens/s, bench/README.md) and closer to float's F1
        if self.config.inference == "auto" and self.precision == "fp32" and check is not None:
            return check.scheme if check.passed else ""
        return ""

    def _inference_precision(self, encoder: nn.Module) -> str:
        """int8 layers take float32 inputs: no bfloat16 autocast around them."""
        return "fp32" if is_int8(encoder) else self.precision

    def check_int8(self, gold: Sequence[Document], float_f1: float) -> Int8Check | None:
        """Strict entity F1 of int8 inference on ``gold`` (predicted from the text alone)
        beside the float model's ``float_f1`` on the same notes; kept as ``int8_check``
        and saved with the model. None on a GPU, where int8 does not run."""
        if not int8_supported(self.device) or not gold:
            return None
        check = None
        for scheme in SCHEMES:  # fastest first: the first that keeps the F1 serves
            check = Int8Check(len(gold), float_f1, self._int8_f1(gold, scheme), scheme)
            if check.passed:
                break
        self.int8_check = check
        return check

    def _int8_f1(self, gold: Sequence[Document], scheme: str) -> float:
        """Strict entity F1 on ``gold`` of prediction with the int8 ``scheme``."""
        self._int8_trial, self._merged = scheme, None
        try:
            predictions = self.predict([d.without_annotations() for d in gold])
        finally:
            self._int8_trial, self._merged = "", None
        found = [p.as_document(d.text) for p, d in zip(predictions, gold, strict=True)]
        return evaluate(list(gold), found, n_bootstrap=0).entity_strict.f1

    def _run_windows(
        self, encoded: list[EncodedDoc], batch_size: int
    ) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """Encoder outputs and tag log-probabilities of every window, longest first."""
        model, _ = self._require_model()
        encoder = self._inference_encoder()
        precision = self._inference_precision(encoder)
        refs = [(d, w) for d, enc in enumerate(encoded) for w in range(len(enc.windows))]
        refs.sort(key=lambda r: -len(encoded[r[0]].windows[r[1]]))
        states: list[list[Any]] = [[None] * len(e.windows) for e in encoded]
        logps: list[list[Any]] = [[None] * len(e.windows) for e in encoded]
        for i in range(0, len(refs), batch_size):
            chunk = refs[i : i + batch_size]
            rows = [bt.window_ids(encoded[d], w, self.specials) for d, w in chunk]
            ids, mask = bt.token_batch(rows, self.specials.pad, self._window_limit())
            mask = None if mask is None else mask.to(self.device)
            with autocast(self.device, precision):
                out = encoder(input_ids=ids.to(self.device), attention_mask=mask)
                out = out.last_hidden_state
                logp = F.log_softmax(model.span_head(out).float(), dim=-1)
            for b, (d, w) in enumerate(chunk):
                n = len(rows[b])
                states[d][w], logps[d][w] = out[b, :n], logp[b, 1 : n - 1].float().cpu()
        return states, logps

    def _predict_doc(
        self, enc: EncodedDoc, states: list[torch.Tensor], logp: np.ndarray,
        spans: list[Suggestion] | None,
    ) -> DocumentPrediction:
        """The note's prediction from its found ``spans`` (None: its own, given spans)."""
        if spans is None:
            spans = [Suggestion(s, 1.0) for s in enc.doc.spans]
        attach_spans(enc, [s.item for s in spans])  # type: ignore[misc]
        return DocumentPrediction(
            doc_id=enc.doc.id,
            spans=tuple(spans),
            relations=tuple(self._predict_relations(enc, states)),
            uncertainty=normalised_entropy(logp),
            embedding=_embedding(enc, states, self._hidden_size()),
        )

    def _window_limit(self) -> int:
        """The widest window with its two special tokens."""
        return self.config.window_tokens + 2

    def _padded_states(self, states: list[torch.Tensor]) -> torch.Tensor:
        """A note's window states as one zero-padded (windows, width, hidden) tensor, of a
        width ``token_batch`` would pad to (fewer shapes for oneDNN to compile)."""
        width = bt.padded_width(max(len(s) for s in states), self._window_limit())
        padded = nn.utils.rnn.pad_sequence(states, batch_first=True)
        return F.pad(padded, (0, 0, 0, width - padded.shape[1]))

    def _hidden_size(self) -> int:
        model, _ = self._require_model()
        return int(model.encoder.config.hidden_size)

    def _found_spans(
        self, encoded: list[EncodedDoc], states: list[list[torch.Tensor]],
        logps: list[np.ndarray],
    ) -> Iterator[list[Suggestion]]:
        """Each note's suggested spans, by the configured ``span_head``."""
        _, maps = self._require_model()
        mode = self.config.span_head if self.span_width else "bio"
        paths = _decode_all(logps, maps.tags) if mode != "enumerate" else None
        for i, enc in enumerate(encoded):
            tagged = [] if paths is None else [
                (run.lo, run.hi, run.label, score)
                for run, score in runs_with_scores(logps[i], paths[i], maps.tags)]
            if mode != "bio":
                found = self._enumerated(enc, states[i])
                edges = word_edges(enc.doc.text, enc.offsets)
                tagged = found + _gaps_filled(found, tagged, self.config.span_threshold, *edges)
            yield _suggested_spans(enc, tagged)

    def _enumerated(
        self, enc: EncodedDoc, states: list[torch.Tensor]
    ) -> list[tuple[int, int, str, float]]:
        """The note's spans chosen among its scored candidates (``decode.choose_spans``),
        as (lo, hi, entity type, score)."""
        model, maps = self._require_model()
        assert model.enumeration_head is not None
        cands = span_candidates(enc, self.span_width, every_window=False)
        refs = [(0, w) for w in range(len(enc.windows))]
        batch = bt.candidate_batch([enc], refs, cands.by_window(len(enc.windows)),
                                   with_target=False)
        if batch is None:
            return []
        padded = self._padded_states(states)
        with autocast(self.device, self.precision):
            logits = model.enumeration_head(padded, batch.to(self.device))
        probs = F.softmax(logits.float(), dim=-1).cpu().numpy()
        # candidate_batch keeps the rows in window order, as by_window split them
        order = np.concatenate([np.nonzero(cands.window == w)[0] for w in range(len(enc.windows))])
        cfg = self.config
        chosen = choose_spans(cands.lo[order], cands.hi[order], probs, nested=cfg.nested_spans,
                              threshold=cfg.span_threshold,
                              second=cfg.second_type_threshold)
        return [(a, b, maps.entities[label - 1], score) for a, b, label, score in chosen]

    def _predict_relations(self, enc: EncodedDoc, states: list[torch.Tensor]) -> list[Suggestion]:
        model, maps = self._require_model()
        pairs = self._with_pairs(enc, maps)
        if not len(pairs):
            return []
        refs = [(0, w) for w in range(len(enc.windows))]
        windows = bt.by_window(pairs, len(enc.windows))
        batch = bt.pair_batch([enc], refs, windows, maps)
        assert batch is not None
        padded = self._padded_states(states)
        with autocast(self.device, self.precision):
            logits = model.relation_head(padded, batch.to(self.device))
        probs = F.softmax(logits.float(), dim=-1)
        # candidate_pairs orders pairs by window: the batch rows are ``pairs`` in order
        return _relation_suggestions(enc, maps, pairs, probs[:, 1:].cpu().numpy(), self._floors())

    def _floors(self) -> np.ndarray:
        """The least probability a suggested relation needs, per relation type."""
        _, maps = self._require_model()
        default = self.config.relation_threshold
        return np.array([self.relation_thresholds.get(r, default) for r in maps.relations])

    def _calibrated_thresholds(self, held: list[Document]) -> dict[str, float]:
        """Per relation type, the threshold that maximised its end-to-end F1 on ``held``."""
        _, maps = self._require_model()
        self.relation_thresholds = dict.fromkeys(maps.relations, min(thresholds.GRID))
        preds = self.predict(held)
        outcomes = []
        for doc, pred in zip(held, preds, strict=True):
            outcomes += thresholds.relation_outcomes(
                doc, pred.as_document(doc.text), [r.score for r in pred.relations],
                symmetric=maps.symmetric)
        counts = thresholds.gold_relation_counts(held)
        return thresholds.best_thresholds(outcomes, {r: counts[r] for r in maps.relations},
                                          self.config.relation_threshold)

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path) -> None:
        """Writes the adapter (or encoder), the heads and ``noteloop.json`` into ``path``."""
        model, maps = self._require_model()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        folder = "encoder" if self.config.full_finetune else "adapter"
        model.encoder.save_pretrained(path / folder)
        save_file(model.heads_state(), str(path / HEADS_FILE))
        meta = {
            "backend": BACKEND,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "schema": self.schema.to_dict() if self.schema else None,
            "labels": maps.to_dict(),
            "span_width": self.span_width,
            "relation_thresholds": self.relation_thresholds,
            "int8_check": self.int8_check.to_dict() if self.int8_check else None,
            "trained_on": self.trained_on,
            "base_round_docs": self.base_round_docs,
            "summary": self.summary.to_dict() if self.summary else None,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> EncoderExtractor:
        """An extractor from a folder written by ``save``.

        ``overrides`` replace config fields that do not change the weights' meaning
        (``threads``, ``device``...).
        """
        path = Path(path)
        meta = read_meta(path, BACKEND, FORMAT_VERSION)
        # a model saved before these fields existed has the basic relation head and was
        # taught one type per range: a second type over 0.35 is its confusion, not a reading
        config = EncoderConfig.from_dict(
            {"relation_features": "basic", "second_type_threshold": 0.5, **meta["config"],
             **overrides})
        extractor = cls(config)
        extractor.span_width = int(meta.get("span_width", 0))  # 0: saved before enumeration
        extractor.relation_thresholds = dict(meta.get("relation_thresholds", {}))
        check = meta.get("int8_check")  # absent: saved before int8 inference existed
        extractor.int8_check = Int8Check.from_dict(check) if check else None
        extractor.trained_on = list(meta.get("trained_on", []))
        extractor.base_round_docs = _base_round_docs(meta)
        maps = LabelMaps.from_dict(meta["labels"])
        model = extractor._build(maps, saved=path)
        model.load_heads(load_file(str(path / HEADS_FILE)))
        model.eval()
        extractor.model, extractor.maps, extractor._merged = model, maps, None
        extractor.schema = LabelSchema.from_dict(meta["schema"]) if meta["schema"] else None
        summary = meta.get("summary")
        extractor.summary = TrainSummary.from_dict(summary) if summary else None
        return extractor


# ---------------------------------------------------------------------- helpers


class _EarlyStop:
    """Scores the model on the held-out notes after every epoch, keeps the best epoch's
    trainable weights and asks the loop to stop after ``patience`` epochs without a
    better score (``holdout.held_out_score``)."""

    def __init__(self, extractor: EncoderExtractor, maps: LabelMaps, schema: LabelSchema,
                 held: list[Document], patience: int) -> None:
        self.extractor, self.maps, self.held, self.patience = extractor, maps, held, patience
        self.symmetric = {r.name for r in schema.relation_types if r.symmetric}
        self.best_epoch, self.best_score = 0, -1.0
        self.best_state: dict[str, torch.Tensor] = {}

    def __call__(self, model: _Joint, epoch: int) -> bool:
        score = self._score(model)
        log.info("epoch %d: held-out score %.4f", epoch, score)
        if score > self.best_score:
            self.best_epoch, self.best_score = epoch, score
            self.best_state = {k: v.detach().clone() for k, v in model.named_parameters()
                               if v.requires_grad}
        return epoch - self.best_epoch >= self.patience

    def _score(self, model: _Joint) -> float:
        with self.extractor._serving(model, self.maps):
            preds = self.extractor.predict(self.held)
        docs = [p.as_document(d.text) for p, d in zip(preds, self.held, strict=True)]
        result = evaluate(self.held, docs, symmetric=self.symmetric, n_bootstrap=0)
        return held_out_score(result, bool(self.maps.relations))

    def restore_best(self, model: _Joint) -> None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in self.best_state:
                    param.copy_(self.best_state[name])


class _LastEpochMean:
    """Passes training events on, keeping the values of one of them in the latest epoch."""

    def __init__(self, name: str, on_metric: OnMetric | None) -> None:
        self.name, self.on_metric = name, on_metric
        self.epoch = -1
        self.values: list[float] = []

    def __call__(self, event: MetricEvent) -> None:
        if event.name == self.name:
            if event.epoch != self.epoch:
                self.epoch, self.values = event.epoch, []
            self.values.append(event.value)
        if self.on_metric is not None:
            self.on_metric(event)

    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan


@dataclass(frozen=True)
class _WarmStart:
    """What a round continues from: the saved trainable weights, and the notes of the
    last round from the base model in their chain."""

    weights: dict[str, torch.Tensor]
    base_round_docs: int


def _base_round_docs(meta: dict[str, Any]) -> int:
    """The notes of the last round from the base model in the saved model's chain (a
    model saved before chains were recorded started its own)."""
    return int(meta.get("base_round_docs") or (meta.get("summary") or {}).get("n_docs", 0))


def _unfair_start(meta: dict[str, Any], docs: Sequence[Document],
                  held: Sequence[Document]) -> str:
    """Why continuing from the saved model of ``meta`` would be unfair to this round; ""
    if it is not: it saw too few of the notes, or trained on a note this round holds
    out (that note's held-out score would flatter it)."""
    root = _base_round_docs(meta)
    if len(docs) >= WARM_GROWTH * root:
        return (f"the gold grew from the {root} notes of the last round from the base model "
                f"to {len(docs)}")
    if held:
        trained = set(meta.get("trained_on", []))
        if not trained or trained & {d.id for d in held}:
            return "this round holds out notes it may have trained on"
    return ""


def tag_prior_loss(encoded: Sequence[EncodedDoc]) -> float:
    """The tag loss of guessing every token's tag from the tags' frequencies alone: the
    entropy of the gold tag distribution (nats, like the cross-entropy the loop reports)."""
    tags = np.concatenate([np.asarray(e.tags, dtype=np.int64) for e in encoded])
    if not len(tags):
        return 0.0
    p = np.bincount(tags) / len(tags)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def refresh_epochs(epochs: int, refreshes: int) -> frozenset[int]:
    """The epochs after which the training notes' predicted spans are predicted again: every
    one but the last when ``refreshes`` is 0, else ``refreshes`` of them spread evenly up to
    the last but one, so the last epoch always learns from spans of the model as it is
    (each refresh is a pass over the training notes, as long as predicting them)."""
    if refreshes == 0 or refreshes >= epochs - 1:
        return frozenset(range(1, epochs))
    return frozenset(round(i * (epochs - 1) / refreshes) for i in range(1, refreshes + 1))


def collapsed(tag_loss: float, guessing: float, epochs: int) -> bool:
    """Whether a trained tagger learnt nothing beyond the tag frequencies.

    It happens now and then with a few dozen notes and a short schedule: the head settles
    on the frequencies (nearly all ``O``) before the adapter has moved, and the model
    predicts no span at all (seen on MACCROBAT with 40 notes and 3 epochs: last-epoch tag
    loss 2.57 against 2.56 for guessing, where a run that learns ends near 1.2). Another
    seed escapes it; a tagger within 10% of guessing is not worth serving either way.
    Only a run of 3 epochs or more (the shortest automatic schedule) is judged: after one
    or two, a loss near guessing means undertrained, which another seed would repeat.
    """
    return epochs >= MIN_EPOCHS_JUDGED and guessing > 0 and not tag_loss < 0.9 * guessing


def _decode_all(logps: list[np.ndarray], tags: tuple[str, ...]) -> list[list[int]]:
    """Viterbi paths of all notes, decoded in groups of similar length (little padding)."""
    order = sorted(range(len(logps)), key=lambda i: len(logps[i]))
    paths: list[list[int]] = [[] for _ in logps]
    for g in range(0, len(order), _DECODE_GROUP):
        group = order[g : g + _DECODE_GROUP]
        for i, path in zip(group, viterbi_bio([logps[i] for i in group], tags), strict=True):
            paths[i] = path
    return paths


def _inference_copy(encoder: nn.Module) -> nn.Module:
    """A copy of ``encoder`` to predict with, its adapter merged, that shares with the
    trainable original every weight merging leaves as it is.

    Only the adapted layers' base weights are copied (merging adds the adapter into them);
    the word embeddings, norms, biases and the adapter itself stay shared (frozen under
    LoRA, and rebuilt after training anyway). MiniLM's word embeddings alone are 47 MB,
    and the process predicting the pool has a memory target (bench/README.md). int8
    replaces the copy's linear modules rather than writing into their weights, so a fully
    fine-tuned encoder's copy shares everything.
    """
    written = {id(m.get_base_layer().weight) for m in encoder.modules()
               if isinstance(m, LoraLayer)}
    memo: dict[int, Any] = {id(p): p for p in encoder.parameters() if id(p) not in written}
    copied = copy.deepcopy(encoder, memo)
    return copied.merge_and_unload() if isinstance(copied, PeftModel) else copied


def _merge(enc: EncodedDoc, logps: list[torch.Tensor], n_tags: int) -> np.ndarray:
    """(tokens, tags) log-probabilities, each token's row from the window that owns it."""
    merged = np.zeros((enc.n_tokens, n_tags), dtype=np.float32)
    owners = np.asarray(enc.owners, dtype=np.int64)
    for w, window in enumerate(enc.windows):
        idx = np.nonzero(owners[window.start : window.end] == w)[0]
        merged[window.start + idx] = logps[w].numpy()[idx]
    return merged


def _embedding(enc: EncodedDoc, states: list[torch.Tensor], dim: int) -> tuple[float, ...]:
    """Mean encoder output over the note's tokens, each counted once (its owner window);
    zeros for a note without tokens."""
    total = torch.zeros(dim)
    if not states:
        return tuple(total.tolist())
    total = total.to(states[0].device)
    owners = torch.as_tensor(enc.owners, device=states[0].device)
    for w, window in enumerate(enc.windows):
        own = owners[window.start : window.end] == w
        total += states[w][1 : 1 + len(window)][own].float().sum(dim=0)
    return tuple((total / max(1, enc.n_tokens)).cpu().tolist())


def _gaps_filled(
    found: list[tuple[int, int, str, float]], tagged: list[tuple[int, int, str, float]],
    threshold: float, starts: np.ndarray, ends: np.ndarray,
) -> list[tuple[int, int, str, float]]:
    """The tagger's spans (``hybrid``) that overlap none of the enumerated ``found`` and
    whose mean tag probability reaches ``threshold``: where enumeration misses a span
    whole, the tagger often finds it or part of it (MACCROBAT2020, 150 notes: lenient F1
    0.722 to 0.735 at the same strict F1, bench/README.md).

    The tagger labels tokens, so its spans may cut a word ("HER" of "HER2"): each is
    widened to the word edges (``starts``/``ends``, from ``features.word_edges``), as an
    annotator would mark it, and taken likeliest first where it overlaps nothing taken."""
    taken = [(lo, hi) for lo, hi, _, _ in found]
    out = []
    for lo, hi, label, score in sorted(tagged, key=lambda t: -t[3]):
        while lo > 0 and not starts[lo]:
            lo -= 1
        while hi < len(ends) and not ends[hi - 1]:
            hi += 1
        if score >= threshold and not any(lo < b and a < hi for a, b in taken):
            taken.append((lo, hi))
            out.append((lo, hi, label, score))
    return sorted(out)


def _suggested_spans(enc: EncodedDoc, found: list[tuple[int, int, str, float]]
                     ) -> list[Suggestion]:
    """Token ranges (lo, hi, type, score) as span suggestions in text order, ids S1, S2..."""
    out = []
    for lo, hi, label, score in sorted(found, key=lambda f: (f[0], -f[1])):
        start, end = enc.offsets[lo][0], enc.offsets[hi - 1][1]
        if start < end:
            span = Span(f"S{len(out) + 1}", label, start, end)
            out.append(Suggestion(span, min(1.0, max(0.0, score))))
    return out


def _relation_suggestions(
    enc: EncodedDoc, maps: LabelMaps, pairs: PairSet, probs: np.ndarray, floors: np.ndarray,
) -> list[Suggestion]:
    """The candidate pairs suggested as relations: each as its likeliest type, when that
    type's probability reaches the type's floor (classes the schema forbids have 0)."""
    label = probs.argmax(axis=1)
    score = probs[np.arange(len(label)), label]
    out = []
    heads, tails = pairs.head.tolist(), pairs.tail.tolist()
    for row in np.nonzero(score >= floors[label])[0].tolist():
        rel = Relation(f"R{len(out) + 1}", maps.relations[label[row]], enc.spans[heads[row]].id,
                       enc.spans[tails[row]].id)
        out.append(Suggestion(rel, min(1.0, max(0.0, float(score[row])))))
    return out
