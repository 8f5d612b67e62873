"""The generative backend: a causal LM with LoRA, prompted for concepts and relations.

**Architecture.** Prompt-based extraction as in Peng et al. 2025: a decoder LLM reads an
instruction (the schema's entity types with their definitions, or its relation types
with their arguments), a chunk of the note, and answers in JSON; LoRA on the attention
projections (``GenerativeConfig.target_modules``) is trained on the answers alone (the
prompt's tokens carry no loss). Prompts and answers are exactly those of the
instruction-tuning export (:mod:`noteloop.core.model.prompts`), so a model tuned on an
exported corpus, or on another project's gold, reads this project's prompts unchanged.

**Notes of any length.** A note is cut into chunks of at most ``chunk_tokens`` tokens
after sentences (:func:`noteloop.core.align.sentence_chunks`); every chunk gets its own
prompts, and what is found in it is shifted back to the whole note's offsets. Relations
are asked for within each chunk, over the chunk's entities (predicted ones, or the
note's own with ``given_spans``).

**Multi-task.** :meth:`GenerativeExtractor.train_multitask` trains one adapter on the
examples of both tasks from several datasets at once, each with its own schema (the
instruction names each dataset's own types, so nothing has to be mapped between
schemas). Saved, that adapter is a starting point: ``init_adapter`` makes every later
``train`` continue from it instead of a fresh LoRA, and ``train([], schema)`` (no gold
yet) gives a zero-shot model for a new project's schema.

**Prediction.** Greedy decoding, prompts batched by length (left-padded), at most
``max_new_tokens`` per answer, bfloat16 on a GPU, float32 on a CPU (training there runs
under bfloat16 autocast where the CPU has AMX or AVX512-BF16). Decoding is **constrained**
by default (``GenerativeConfig.constrained``; :mod:`noteloop.core.model.constrained`, with
the rules in :mod:`noteloop.core.answer_grammar`): at every step only the tokens that keep
the answer a valid prefix of the export's JSON list are allowed, so an answer always
parses: every type is one of the schema's, every mention is a stretch of the chunk copied
character for character (on word boundaries, in text order, an occurrence claimed once
per type), every relation joins two listed entities with a type whose head and tail
types hold, in the export's order, and the list is closed, when the model would stop or
before ``max_new_tokens`` runs out. ``invented``, ``wrong_type``, ``broken_json``,
``repeated``, ``not_a_list``, ``unknown_entity``, ``relation_not_allowed`` and ``cut_off``
cannot occur. Free decoding (``constrained=False``) is kept for comparison; there an answer
that repeats one object three times in a row is ended (a small model's greedy loop).
Answers are parsed tolerantly either way (:mod:`noteloop.core.model.answers`): whatever
cannot be used is counted in :attr:`GenerativeExtractor.parse_report`, never raised. A
suggestion's score is the geometric mean probability of its answer tokens under the
model's own (unconstrained) distribution; a note's uncertainty is one minus the mean
probability of all tokens generated for its concepts; its embedding is the mean of the
model's input embeddings over the note's tokens (cheap, and enough for diversity
sampling).

**Each ``train`` starts from the starting point** (the base model, or ``init_adapter``)
on the whole gold set it is given, as the encoder backend does: a round depends only on
(gold, schema, config, seed).

**Saved layout:** ``adapter/`` (peft) and ``noteloop.json`` (backend, format version,
config, schema, training summary).
"""

from __future__ import annotations

import json
import logging
import math
import random
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from noteloop.core.align import sentence_chunks
from noteloop.core.answer_grammar import AnswerGrammar, ConceptGrammar, RelationGrammar
from noteloop.core.model import answers
from noteloop.core.model.base import (
    DocumentPrediction,
    OnMetric,
    OnProgress,
    ShouldStop,
    TrainSummary,
)
from noteloop.core.model.batches import shuffled_batches
from noteloop.core.model.causal import (
    base_model_folder,
    load_causal_lm,
    load_tokenizer,
    torch_dtype,
)
from noteloop.core.model.config import GenerativeConfig
from noteloop.core.model.constrained import AnswerConstraint, token_trie
from noteloop.core.model.device import (
    apply_thread_budget,
    autocast,
    choose_device,
    cpu_has_native_bf16,
    quiet_model_loading,
    seed_everything,
)
from noteloop.core.model.prompts import (
    SYSTEM,
    Chunk,
    Example,
    concept_prompt,
    relation_prompt,
    training_examples,
)
from noteloop.core.model.saved import META_FILE, FormatError, read_meta
from noteloop.core.model.train import LoopOptions, fit, parameter_groups
from noteloop.core.schema import Document, LabelSchema, Relation, Span, Suggestion

quiet_model_loading()

BACKEND = "generative"
FORMAT_VERSION = 1
ADAPTER_DIR = "adapter"
IGNORE = -100
ANSWER_OPENING = "["  # every answer is a JSON list; the prompt opens it
_DOCS_PER_GROUP = 4  # notes per progress report (their chunks share generation batches)

log = logging.getLogger("noteloop.generative")
Dataset = tuple[Sequence[Document], LabelSchema]


@dataclass(frozen=True, slots=True)
class Generation:
    """One answer: its text and the trace of its tokens (for scores)."""

    text: str
    trace: answers.TokenTrace

    def mean_probability(self) -> float:
        probs = [min(1.0, math.exp(lp)) for lp in self.trace.logprobs]
        return sum(probs) / len(probs) if probs else 1.0


class GenerativeExtractor:
    """Concept and relation extraction by prompting a LoRA-tuned causal LM."""

    backend = BACKEND

    def __init__(self, config: GenerativeConfig | None = None) -> None:
        self.config = config or GenerativeConfig()
        self.device = choose_device(self.config.device)
        # float32 weights on a CPU, but bfloat16 matrix products where the CPU computes
        # them natively (AMX): the weights of a GPU run are bfloat16 already.
        cpu_bf16 = self.device == "cpu" and self.config.dtype == "auto" and cpu_has_native_bf16()
        self.precision = "bf16" if cpu_bf16 else "fp32"
        self.folder = base_model_folder(self.config)
        self.tokenizer = load_tokenizer(self.folder)
        self.model: Any = None
        self.schema: LabelSchema | None = None
        self.summary: TrainSummary | None = None
        self.parse_report: Counter[str] = Counter()  # problem kind -> count, last predict

    # ------------------------------------------------------------------ building

    def _dtype(self) -> torch.dtype:
        return torch_dtype(self.config, self.device)

    def _starting_model(self, trainable: bool) -> Any:
        """The base model with the starting adapter: ``init_adapter``'s, or a fresh LoRA."""
        cfg = self.config
        base = load_causal_lm(self.folder, self._dtype(), self.device)
        if cfg.init_adapter:
            saved = Path(cfg.init_adapter)
            _check_starting_point(saved, cfg)
            return PeftModel.from_pretrained(base, saved / ADAPTER_DIR, is_trainable=trainable)
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            return get_peft_model(base, lora)

    # ------------------------------------------------------------------ prompts

    def _prompt_text(self, example: Example) -> str:
        """The prompt, ending with the answer's opening bracket: every answer is a JSON
        list, and starting it for the model keeps even an untrained small model from
        answering in some other shape (the bracket is the prompt's, not a learned token)."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            head = str(
                tok.apply_chat_template(
                    example.messages(), tokenize=False, add_generation_prompt=True
                )
            )
        else:  # a base model without a chat template gets a plain instruction layout
            head = f"{SYSTEM}\n\n### Instruction:\n{example.user}\n\n### Response:\n"
        return head + ANSWER_OPENING

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chunks(self, doc: Document, spans: Sequence[Span] = ()) -> list[Chunk]:
        """The note's chunks (``doc`` index 0), never cutting through ``spans``."""
        offsets = self.tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        ranges = sentence_chunks(doc.text, offsets, self.config.chunk_tokens, spans)
        return [Chunk(0, a, b) for a, b in ranges]

    def examples(self, datasets: Sequence[Dataset]) -> list[Example]:
        """Every training example of both tasks of every dataset, in dataset order."""
        out = []
        for docs, schema in datasets:
            for doc in docs:
                chunks = self.chunks(doc, doc.spans)
                out.extend(training_examples(doc, chunks, schema, self.config.relations))
        return out

    def _encode_example(self, example: Example) -> tuple[list[int], list[int]]:
        """(input ids, labels): the prompt's tokens labelled IGNORE, the answer's and the
        end-of-sequence token labelled with themselves (so the model learns to stop)."""
        prompt = self._ids(self._prompt_text(example))
        rest = example.answer.removeprefix(ANSWER_OPENING)
        answer = [*self._ids(rest), self.tokenizer.eos_token_id]
        return prompt + answer, [IGNORE] * len(prompt) + answer

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
        """Trains from the starting point on ``docs``; with no documents, no step is
        taken and the starting point itself answers under ``schema`` (zero-shot).
        ``start`` is not used: every round of this backend starts from its base model
        (its summary's ``warm_from`` stays empty).

        Raises:
            TrainingCancelled: ``should_stop()`` returned True; this extractor is unchanged.
        """
        summary = self.train_multitask(
            [(docs, schema)], on_metric=on_metric, should_stop=should_stop
        )
        self.schema = schema
        return summary

    def train_multitask(
        self,
        datasets: Sequence[Dataset],
        *,
        on_metric: OnMetric | None = None,
        should_stop: ShouldStop | None = None,
    ) -> TrainSummary:
        """One adapter on the examples of both tasks of every dataset (each with its own
        schema), shuffled together. The extractor keeps no schema: load it as a starting
        point (``init_adapter``) and train or zero-shot it on a project's schema."""
        cfg = self.config
        apply_thread_budget(cfg.threads)
        seed_everything(cfg.seed)
        encoded = [self._encode_example(e) for e in self.examples(datasets)]
        model = self._starting_model(trainable=True)
        epochs = cfg.epochs_for(len(encoded)) if encoded else 0
        steps_per_epoch = -(-len(encoded) // cfg.batch_size)
        model.train()
        result = fit(
            parameter_groups(model.named_parameters(), cfg.lr, cfg.weight_decay),
            lambda epoch: self._epoch_batches(encoded, epoch),  # type: ignore[arg-type, return-value]
            lambda batch: {"loss": self._loss(model, batch)},
            LoopOptions(epochs, steps_per_epoch, cfg.warmup_ratio, cfg.max_grad_norm),
            on_metric=on_metric,
            should_stop=should_stop,
        )
        n_docs = sum(len(docs) for docs, _ in datasets)
        self.model, self.schema = model.eval(), None
        self.summary = TrainSummary(
            epochs,
            result.steps,
            result.seconds,
            result.final_loss if result.steps else float("nan"),
            n_docs,
            sum(len(ids) for ids, _ in encoded),
            self.device,
            "bf16" if self._dtype() == torch.bfloat16 else self.precision,
        )
        return self.summary

    def _epoch_batches(
        self, encoded: list[tuple[list[int], list[int]]], epoch: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The epoch's examples in seeded random batches of similar length."""
        rng = random.Random(self.config.seed * 1_000_003 + epoch)
        lengths = [len(ids) for ids, _ in encoded]
        refs = [(i, 0) for i in range(len(encoded))]  # one "window" per example
        for batch in shuffled_batches(refs, lengths, self.config.batch_size, rng):
            yield self._training_batch([encoded[i] for i, _ in batch])

    def _training_batch(
        self, rows: list[tuple[list[int], list[int]]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids, attention mask and labels (padding labelled IGNORE)."""
        width = max(len(ids) for ids, _ in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, lab) in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            labels[i, : len(lab)] = torch.tensor(lab)
            mask[i, : len(row)] = 1
        return ids.to(self.device), mask.to(self.device), labels.to(self.device)

    def _loss(
        self, model: Any, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Mean cross-entropy of the answer tokens. The vocabulary projection runs only
        on the positions that predict an answer token: on a 49k vocabulary it would
        otherwise cost as much as the rest of the model."""
        ids, mask, labels = batch
        causal = model.get_base_model()
        targets = labels[:, 1:]
        keep = targets != IGNORE
        with autocast(self.device, self.precision):
            hidden = causal.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = causal.get_output_embeddings()(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), targets[keep])

    # ------------------------------------------------------------------ generation

    def _require_model(self) -> Any:
        if self.model is None:
            raise RuntimeError("the extractor has no model yet: train() or load() it first")
        return self.model

    def generate(
        self, examples: Sequence[Example], grammars: Sequence[AnswerGrammar] | None = None
    ) -> list[Generation]:
        """Greedy answers to ``examples``, in order, batched by prompt length; with
        ``grammars`` (one per example), constrained to them (:mod:`.constrained`)."""
        model = self._require_model()
        prompts = [self._ids(self._prompt_text(e)) for e in examples]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Generation | None] = [None] * len(prompts)
        size = self.config.predict_batch_size
        with torch.inference_mode():
            for b in range(0, len(order), size):
                batch = order[b : b + size]
                rules = [grammars[i] for i in batch] if grammars is not None else None
                for i, gen in zip(
                    batch,
                    self._generate_batch(model, [prompts[i] for i in batch], rules),
                    strict=True,
                ):
                    out[i] = gen
        return [g for g in out if g is not None]

    def _generate_batch(
        self, model: Any, prompts: list[list[int]], grammars: list[AnswerGrammar] | None
    ) -> list[Generation]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device
        )
        # No autocast here: decoding runs one token at a time, and recasting the float32
        # weights at every step made CPU generation slower (bench/README.md).
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=self.config.max_new_tokens,
            do_sample=False,
            num_beams=1,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=pad,
            eos_token_id=self.tokenizer.eos_token_id,
            temperature=None,
            top_p=None,
            top_k=None,
            **self._rules(width, grammars),
        )
        # Scores come from the model's raw distribution, not the constrained one: under
        # the constraint a forced token (a JSON bracket, the only way to close a string)
        # has probability 1, so a hesitant answer squeezed into shape would score as sure.
        # The raw probability says how much the model itself meant each token, which is
        # what a suggestion's score and a note's uncertainty should rank by.
        logits = tuple(step.float() for step in out.logits)
        logprobs = model.compute_transition_scores(out.sequences, logits, normalize_logits=True)
        new = out.sequences[:, width:]
        return [
            self._generation(new[i].tolist(), logprobs[i].float().tolist())
            for i in range(len(prompts))
        ]

    def _rules(self, width: int, grammars: list[AnswerGrammar] | None) -> dict[str, Any]:
        """The constraint for ``generate`` or, unconstrained, the stop on looping answers."""
        if grammars is None:
            return {
                "stopping_criteria": StoppingCriteriaList([_StopRepeating(self.tokenizer, width)])
            }
        constraint = AnswerConstraint(
            token_trie(self.tokenizer),
            grammars,
            width,
            self.config.max_new_tokens,
            self.tokenizer.eos_token_id,
        )
        return {"logits_processor": LogitsProcessorList([constraint])}

    def _generation(self, tokens: list[int], logprobs: list[float]) -> Generation:
        """The answer up to its end-of-sequence token, with each token's end in the text."""
        eos = self.tokenizer.eos_token_id
        n = tokens.index(eos) if eos in tokens else len(tokens)
        tokens, logprobs = tokens[:n], logprobs[:n]

        # no clean-up of spaces: it would rewrite a JSON answer (" ," to ","), and a
        # constrained answer must stay the text its grammar read token by token
        def decode(ids: list[int]) -> str:
            return str(
                self.tokenizer.decode(
                    ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
                )
            )

        opening = len(ANSWER_OPENING)  # the answer text starts with the prompt's bracket
        ends = tuple(opening + len(decode(tokens[: k + 1])) for k in range(len(tokens)))
        text = ANSWER_OPENING + decode(tokens)
        return Generation(text, answers.TokenTrace(ends, tuple(logprobs)))

    # ------------------------------------------------------------------ prediction

    def _require_schema(self) -> LabelSchema:
        self._require_model()
        if self.schema is None:
            raise RuntimeError(
                "a multi-task starting point has no schema of its own: load it as "
                "`init_adapter` and train() it (with no documents for zero-shot)"
            )
        return self.schema

    def predict(
        self,
        docs: Sequence[Document],
        *,
        batch_size: int = 32,
        on_progress: OnProgress | None = None,
        given_spans: bool = False,
    ) -> list[DocumentPrediction]:
        """Span and relation suggestions for each document (see the module docstring).

        ``batch_size`` is the encoder's knob and is not used: generation batches
        ``predict_batch_size`` prompts.
        """
        self._require_schema()
        apply_thread_budget(self.config.threads)
        self.parse_report = Counter()
        out: list[DocumentPrediction] = []
        for g in range(0, len(docs), _DOCS_PER_GROUP):
            out.extend(self._predict_group(list(docs[g : g + _DOCS_PER_GROUP]), given_spans))
            if on_progress is not None:
                on_progress(len(out), len(docs))
        return out

    def _predict_group(self, docs: list[Document], given_spans: bool) -> list[DocumentPrediction]:
        chunks = [
            [Chunk(d, c.start, c.end) for c in self.chunks(doc, doc.spans if given_spans else ())]
            for d, doc in enumerate(docs)
        ]
        if given_spans:
            spans = [[Suggestion(s, 1.0) for s in doc.spans] for doc in docs]
            certainty = [1.0] * len(docs)
        else:
            spans, certainty = self._predict_spans(docs, chunks)
        relations = self._predict_relations(docs, chunks, spans)
        return [
            DocumentPrediction(
                doc.id,
                tuple(spans[d]),
                tuple(relations[d]),
                min(1.0, max(0.0, 1.0 - certainty[d])),
                self._embedding(doc),
            )
            for d, doc in enumerate(docs)
        ]

    def _predict_spans(
        self, docs: list[Document], chunks: list[list[Chunk]]
    ) -> tuple[list[list[Suggestion]], list[float]]:
        schema = self._require_schema()
        flat = [c for per_doc in chunks for c in per_doc]
        prompts = [concept_prompt(docs[c.doc], c, schema) for c in flat]
        texts = [docs[c.doc].text[c.start : c.end] for c in flat]
        # grammars only when constrained: free decoding must not need the token trie
        # (a tokenizer that cannot be constrained still decodes freely)
        grammars = (
            [self._concept_grammar(t, schema) for t in texts] if self.config.constrained else None
        )
        found: list[list[tuple[answers.FoundMention, int]]] = [[] for _ in docs]
        probs: list[list[float]] = [[] for _ in docs]
        for chunk, text, gen in zip(flat, texts, self.generate(prompts, grammars), strict=True):
            parsed = answers.parse_mentions(gen.text, text, schema.entity_names, gen.trace)
            self._report(parsed)
            found[chunk.doc].extend((m, chunk.start) for m in parsed.items)
            probs[chunk.doc].append(gen.mean_probability())
        spans = [_span_suggestions(f) for f in found]
        return spans, [sum(p) / len(p) if p else 1.0 for p in probs]

    def _predict_relations(
        self, docs: list[Document], chunks: list[list[Chunk]], spans: list[list[Suggestion]]
    ) -> list[list[Suggestion]]:
        schema = self._require_schema()
        out: list[list[Suggestion]] = [[] for _ in docs]
        if not (self.config.relations and schema.relation_types):
            return out
        prompts, numberings = [], []
        for per_doc in chunks:
            for chunk in per_doc:
                items = [s.item for s in spans[chunk.doc]]
                example, numbering = relation_prompt(docs[chunk.doc], chunk, schema, items)  # type: ignore[arg-type]
                if len(numbering) >= 2:
                    prompts.append(example)
                    numberings.append(numbering)
        labels = [{s.item.id: s.item.label for s in per_doc} for per_doc in spans]
        grammars = None
        if self.config.constrained:
            grammars = [
                self._relation_grammar(_numbered_labels(numbering, labels[e.chunk.doc]), schema)
                for e, numbering in zip(prompts, numberings, strict=True)
            ]
        for example, numbering, gen in zip(
            prompts, numberings, self.generate(prompts, grammars), strict=True
        ):
            d = example.chunk.doc
            parsed = answers.parse_relations(
                gen.text, numbering, labels[d], self._allows, gen.trace
            )
            self._report(parsed)
            out[d].extend(
                Suggestion(Relation(f"R{len(out[d]) + 1}", r.label, r.head, r.tail), r.score)
                for r in parsed.items
            )
        return out

    def _concept_grammar(self, text: str, schema: LabelSchema) -> ConceptGrammar:
        # characters no single token writes never enter a mention (answer_grammar)
        return ConceptGrammar(text, schema.entity_names, token_trie(self.tokenizer).single_chars)

    def _relation_grammar(self, labels: list[str], schema: LabelSchema) -> RelationGrammar:
        """Relations over entities T1... of ``labels``, the schema's head/tail rules kept."""
        return RelationGrammar(labels, schema.relation_names, self._allows)

    def _allows(self, label: str, head_label: str, tail_label: str) -> bool:
        schema = self._require_schema()
        if label not in schema.relation_names:
            return False
        return schema.relation(label).allows(head_label, tail_label)

    def _report(self, parsed: answers.Parsed) -> None:
        """Counts what the answers held that could not be used, by kind (for reports)."""
        for problem in parsed.problems:
            self.parse_report[_problem_kind(problem)] += 1
        self.parse_report["items"] += len(parsed.items)
        self.parse_report["answers"] += 1

    def _embedding(self, doc: Document) -> tuple[float, ...]:
        model = self._require_model()
        table = model.get_input_embeddings()
        ids = self._ids(doc.text)
        if not ids:
            return (0.0,) * table.weight.shape[1]
        with torch.inference_mode():
            vectors = table(torch.tensor(ids, device=self.device))
            return tuple(vectors.float().mean(dim=0).cpu().tolist())

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path) -> None:
        """Writes the adapter and ``noteloop.json`` into ``path``."""
        model = self._require_model()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(path / ADAPTER_DIR)
        meta = {
            "backend": BACKEND,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "schema": self.schema.to_dict() if self.schema else None,
            "summary": self.summary.to_dict() if self.summary else None,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, **overrides: Any) -> GenerativeExtractor:
        """An extractor from a folder written by ``save``; ``overrides`` replace config
        fields that do not change the weights' meaning (``threads``, ``device``...)."""
        path = Path(path)
        meta = read_meta(path, BACKEND, FORMAT_VERSION)
        extractor = cls(GenerativeConfig.from_dict({**meta["config"], **overrides}))
        base = load_causal_lm(extractor.folder, extractor._dtype(), extractor.device)
        extractor.model = PeftModel.from_pretrained(
            base, path / ADAPTER_DIR, is_trainable=False
        ).eval()
        extractor.schema = LabelSchema.from_dict(meta["schema"]) if meta["schema"] else None
        summary = meta.get("summary")
        extractor.summary = TrainSummary.from_dict(summary) if summary else None
        return extractor


# ---------------------------------------------------------------------- helpers


class _StopRepeating(StoppingCriteria):
    """Ends an answer that repeats one object three times in a row
    (:func:`answers.repeats_at_end`): greedy decoding would loop until the token limit,
    the slowest possible way to produce an answer that parsing then throws away."""

    def __init__(self, tokenizer: Any, prompt_width: int) -> None:
        self.tokenizer, self.width = tokenizer, prompt_width

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.width :], skip_special_tokens=True)
        done = [answers.repeats_at_end(ANSWER_OPENING + t) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _check_starting_point(saved: Path, config: GenerativeConfig) -> None:
    """An ``init_adapter`` must be a generative model trained on the same base model."""
    meta = read_meta(saved, BACKEND, FORMAT_VERSION)
    theirs = meta["config"].get("base_model", "")
    if theirs != config.base_model:
        raise FormatError(
            f"`init_adapter` {saved} was trained on base model {theirs or 'the packaged one'!r}, "
            f"not {config.base_model or 'the packaged one'!r}"
        )


def _span_suggestions(found: list[tuple[answers.FoundMention, int]]) -> list[Suggestion]:
    """Chunk mentions shifted to note offsets, in text order, numbered S1, S2..."""
    placed = sorted(((m.start + base, m.end + base, m.label, m.score) for m, base in found))
    return [
        Suggestion(Span(f"S{i}", label, start, end), score)
        for i, (start, end, label, score) in enumerate(placed, start=1)
    ]


def _numbered_labels(numbering: dict[str, str], labels: dict[str, str]) -> list[str]:
    """The entity types of prompt entities T1, T2... in order (``numbering``: T-number ->
    span id; ``labels``: span id -> type)."""
    return [labels[numbering[f"T{k}"]] for k in range(1, len(numbering) + 1)]


def _problem_kind(problem: str) -> str:
    for marker, kind in (
        ("cut off", "cut_off"),
        ("unknown entity type", "wrong_type"),
        ("not in the note", "invented"),
        ("more often", "repeated"),
        ("not allowed", "relation_not_allowed"),
        ("not listed", "unknown_entity"),
        ("listed twice", "repeated"),
        ("unreadable", "broken_json"),
        ("not a JSON list", "not_a_list"),
    ):
        if marker in problem:
            return kind
    return "other"
