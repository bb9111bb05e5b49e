"""The high-level planner: a LLaVA-style vision-language model that writes the next robot-API call.

    front-camera image ─► CLIP-style ViT ─► projector ─┐
    prompt (models/planner_data.prompt_text) ─► tokens ─┴─► Llama-style decoder ─► next call's code
                                                             (valid calls only: models/planner_grammar)

The next call is chosen among the scene's valid calls (models/planner_grammar.candidate_calls) by
exact scoring: the prompt and every token node of the calls' trie go through the decoder in one
forward pass, each node attending to the prompt and its own ancestors (a tree attention mask, with
positions as if each call followed the prompt alone), so each call's log-probability (its tokens and
the end token) is read off that one pass. Families whose prompt is not plain causal attention over
1-D positions (Gemma 3's image tokens attend both ways; any family not known to allow it) score the
calls as a batch continuing from the prompt's KV cache instead (models/planner_chat.py); both give
what decoding each call alone would.
`next_calls(k)` gives the k best with their scores (the Run view's alternatives); `next_call` is the
first of them. A pick is proposed with one call of lookahead (`lookahead`, on by default): among the
likeliest picks, the one whose best place after it is likeliest, so a pick is judged with the place
it enables (held-out tower: the place was right where the pick was not).

Two ways to get one, both transformers image-text-to-text models driven through their processor:
- `Planner.scratch(config, corpus)`: a tiny `LlavaForConditionalGeneration` trained from scratch,
  with a byte-level BPE tokenizer trained on the corpus of prompts and calls (offline, CPU-sized).
- `Planner.from_base(LOCAL_DIR, config)`: any local pretrained image-text-to-text checkpoint with its
  processor, fine-tuned through LoRA adapters (peft); the base weights stay frozen. With a chat
  template (a downloaded checkpoint's), the query is the family's user turn (image + prompt text)
  and its generation prompt, and the answer ends with its end-of-turn token (models/planner_chat.py);
  training examples and scoring use the same text.

A checkpoint is a folder: `planner.json` (models/planner_config.py), the processor and tokenizer files,
and `model.safetensors` + `config.json` (scratch) or `adapter_model.safetensors` +
`adapter_config.json` (LoRA; the base folder is named in planner.json). Nothing is pickled, and no
folder's own code runs: models/planner_files.py loads and checks every folder.
"""
from __future__ import annotations

import json
import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from models.planner_chat import (ChatFormat, batch_of_one, cached_call_scores, is_token_input, one_example,
                                 scores_in_one_pass, stack_padded, with_answer)
from models.planner_data import IMAGE_MARK, PlannerStep, SceneNames, prompt_text
from models.planner_config import PlannerConfig
from models.planner_files import FORMAT, PLANNER_FILE, load_pretrained, load_saved
from models.planner_grammar import CallTrie, TrieLayout, candidate_calls, covered_after, fits_the_hand, held_after
from models.scene_facts import CameraView, facts_for
from recorders.robot_api_spec import Call

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", IMAGE_MARK)
IGNORE = -100
GRAMMAR_CACHE = 256  # scenes x memory states whose call grammar is kept
ALTERNATIVES = 3  # next calls offered by default: the one proposed and the two runners-up
LOOKAHEAD = 3  # picks judged with the place each enables (Planner.lookahead)


@dataclass(frozen=True)
class ScoredCall:
    """One alternative for the next call."""
    code: str
    log_probability: float  # sum over the call's tokens and its end token of log p(token | image, prompt, before)
    probability: float  # exp(log_probability) normalised over the alternatives given together


@dataclass(frozen=True)
class _CallTree:
    """A scene's valid calls as tensors for scoring them all in one pass (from a TrieLayout)."""
    codes: tuple[str, ...]  # (C,)
    tokens: torch.Tensor  # (N,) long: the trie's token nodes, parents before children
    depths: torch.Tensor  # (N,) long: a node's position after the prompt
    ancestors: torch.Tensor  # (N, N) bool: [i, j] when node j is node i or one of its ancestors
    parent_rows: torch.Tensor  # (N,) long: the row of the scores predicting each node (0: the prompt's last)
    paths: torch.Tensor  # (C, N) float: 1 on the nodes of each call
    end_rows: torch.Tensor  # (C,) long: the row of the scores predicting each call's end token
    answers: tuple[tuple[int, ...], ...]  # (C,) each call's tokens and the end token

    @staticmethod
    def of(layout: TrieLayout, end: int) -> "_CallTree":
        n = len(layout.tokens)
        ancestors = torch.zeros(n, n, dtype=torch.bool)
        for i, parent in enumerate(layout.parents):  # parents come first: their rows are complete
            if parent >= 0:
                ancestors[i] = ancestors[parent]
            ancestors[i, i] = True
        ends = torch.tensor(layout.ends, dtype=torch.long)
        tokens = torch.tensor(layout.tokens, dtype=torch.long)
        answers = tuple((*tokens[ancestors[e]].tolist(), end) for e in layout.ends)  # ancestors come first
        return _CallTree(layout.codes, tokens, torch.tensor(layout.depths, dtype=torch.long), ancestors,
                         torch.tensor(layout.parents, dtype=torch.long) + 1, ancestors[ends].float(), ends + 1,
                         answers)


def train_tokenizer(corpus: Sequence[str], vocab_size: int):
    """A byte-level BPE tokenizer (lossless on any text) trained on `corpus`, as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(corpus) + [string.printable], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", extra_special_tokens={"image_token": IMAGE_MARK})


def _scratch_model_and_processor(config: PlannerConfig, tokenizer):
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    n = config.image_size
    image_processor = CLIPImageProcessor(size={"shortest_edge": n}, crop_size={"height": n, "width": n})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=config.patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=config.vision_width, intermediate_size=2 * config.vision_width,
                              num_hidden_layers=config.vision_layers, num_attention_heads=config.heads,
                              image_size=n, patch_size=config.patch_size)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=config.text_width,
                       intermediate_size=2 * config.text_width, num_hidden_layers=config.text_layers,
                       num_attention_heads=config.heads, num_key_value_heads=config.heads,
                       max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    llava = LlavaConfig(vision_config=vision.to_dict(), text_config=text.to_dict(),
                        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_MARK),
                        vision_feature_select_strategy="default", vision_feature_layer=-1,
                        image_seq_length=(n // config.patch_size) ** 2, pad_token_id=tokenizer.pad_token_id)
    return LlavaForConditionalGeneration(llava), processor


def _lora(model, rank: int):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                            target_modules="all-linear"))


def _quiet_transformers() -> None:
    """No weight-loading progress bars or advisory warnings in the CLI's output."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class Planner:
    """A processor + image-text-to-text model + the call vocabulary, behind one small interface."""

    def __init__(self, config: PlannerConfig, model, processor):
        _quiet_transformers()
        self.config, self.model, self.processor = config, model, processor
        self.tokenizer = processor.tokenizer
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the planner's tokenizer has no end-of-sequence token")
        self.image_mark = getattr(processor, "image_token", None) or IMAGE_MARK
        self.chat = ChatFormat.of(processor)  # None: the scratch model's plain prompt
        self.end_token_id = self.chat.end_token_id if self.chat else self.tokenizer.eos_token_id
        self.one_pass = scores_in_one_pass(model)  # else: scoring through the prompt's KV cache
        self._input_names = set(processor.model_input_names)
        self._grammars: dict[tuple, tuple[list[str], _CallTree]] = {}  # (scene names, memory keys) -> grammar
        self.lookahead = True  # a proposed pick is chosen with the place it enables (next_calls)
        self.view = CameraView.from_dict(config.camera) if config.camera else None  # for the image's facts
        self._seen_memo: tuple | None = None  # (image, names, facts) of the last image read

    # ---- construction --------------------------------------------------------------------------
    @staticmethod
    def scratch(config: PlannerConfig, corpus: Sequence[str]) -> "Planner":
        _quiet_transformers()
        tokenizer = train_tokenizer(corpus, config.vocab_size)
        model, processor = _scratch_model_and_processor(config, tokenizer)
        return Planner(replace(config, base=None), model, processor)

    @staticmethod
    def from_base(base, config: PlannerConfig) -> "Planner":
        """LoRA adapters on a local pretrained image-text-to-text checkpoint (weights and processor);
        ValueError (one line) for a folder with custom code, only pickled weights, or broken files."""
        _quiet_transformers()
        base = Path(base)
        processor, model = load_pretrained(base)
        try:
            return Planner(replace(config, base=str(base.resolve())), _lora(model, config.lora_rank), processor)
        except ValueError as e:  # its chat template or tokenizer cannot frame the planner's turns
            raise ValueError(f"--base {base}: {e}") from None

    # ---- encoding ------------------------------------------------------------------------------
    def prompt(self, task: str, history: Sequence[str], memory_keys: Sequence[str], seen: str | None = None) -> str:
        """The query's text: prompt_text as it is (scratch), or the family's user turn holding the
        image and prompt_text's lines after the image mark, then its generation prompt (a chat template)."""
        if self.chat is None:
            return prompt_text(task, history, memory_keys, self.config.memory, self.image_mark, seen)
        text = prompt_text(task, history, memory_keys, self.config.memory, image_mark="", seen=seen).strip()
        return self.chat.query(self.processor, text)  # the template places the family's image tokens

    def seen(self, image: np.ndarray, names: SceneNames | None) -> str | None:
        """The facts line read from `image` for the scene's `names`; None unless the planner reads them.
        The last image's facts are kept: one proposal reads the same image for its call, the lookahead's
        passes and the Run log."""
        if not self.config.scene_facts or names is None or image is None:
            return None
        memo = self._seen_memo
        if memo is None or memo[0] is not image or memo[1] != names:
            self._seen_memo = memo = (image, names, facts_for(image, names, self.view))
        return memo[2]

    def encode_prompt(self, image: np.ndarray, task: str, history: Sequence[str],
                      memory_keys: Sequence[str], seen: str | None = None) -> dict[str, torch.Tensor]:
        """One query: input_ids (L,), the family's per-token inputs (Gemma 3's token_type_ids (L,))
        and its image inputs (pixel_values (3, H, W); Idefics3's tiles (N, 3, H, W) and pixel_attention_mask).
        `seen`: the image's facts line (`seen()`), when the planner reads them."""
        special = {} if self.chat is None else {"add_special_tokens": False}  # the template wrote them
        text = self.prompt(task, history, memory_keys, seen)
        enc = self.processor(images=[np.asarray(image, np.uint8)], text=[text], return_tensors="pt", **special)
        return one_example(enc, self._input_names)

    def answer_ids(self, code: str) -> list[int]:
        """The call's tokens (after the template's answer prefix, if any) and the end-of-turn token."""
        text = self.chat.answer_prefix + code if self.chat else code
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + [self.end_token_id]

    def example(self, step: PlannerStep, seen: str | None = None) -> dict[str, torch.Tensor]:
        """One training example: the query followed by the answer; the loss covers the answer only.
        `seen`: the step's facts line when already read (else read here, if the planner reads them)."""
        seen = seen if seen is not None else self.seen(step.image, step.names)
        q = self.encode_prompt(step.image, step.task, step.history, step.memory_keys, seen)
        a = torch.tensor(self.answer_ids(step.target), dtype=torch.long)
        return {**with_answer(q, a), "labels": torch.cat([torch.full_like(q["input_ids"], IGNORE), a])}

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        n = max(len(e["input_ids"]) for e in examples)
        fill = {"input_ids": self.tokenizer.pad_token_id, "labels": IGNORE}  # other per-token inputs: 0 (text)
        batch = {"attention_mask": torch.zeros((len(examples), n), dtype=torch.long)}
        for name in examples[0]:
            if is_token_input(examples[0], name):
                batch[name] = torch.full((len(examples), n), fill.get(name, 0), dtype=examples[0][name].dtype)
            else:
                batch[name] = stack_padded([e[name] for e in examples])
        for i, e in enumerate(examples):  # right padding: answers start where their prompt ends
            k = len(e["input_ids"])
            batch["attention_mask"][i, :k] = 1
            for name in batch:
                if name != "attention_mask" and is_token_input(e, name):
                    batch[name][i, :k] = e[name]
        return batch

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).loss

    # ---- planning ------------------------------------------------------------------------------
    def candidates(self, names: SceneNames, memory_keys: Sequence[str]) -> list[str]:
        return self._grammar(names, memory_keys)[0]

    def _grammar(self, names: SceneNames, memory_keys: Sequence[str]) -> tuple[list[str], _CallTree]:
        """The valid calls and their token tree; built once per scene and memory (about 10 ms), then
        reused for every call of an episode while the memory's keys stay the same."""
        key = (names, tuple(memory_keys))
        if key not in self._grammars:
            if len(self._grammars) >= GRAMMAR_CACHE:
                self._grammars.clear()
            codes = candidate_calls(names.objects, names.zones, memory_keys, self.config.calls)
            trie = CallTrie.build(codes, lambda c: self.answer_ids(c)[:-1], self.end_token_id)
            self._grammars[key] = (codes, _CallTree.of(trie.layout(), self.end_token_id))
        return self._grammars[key]

    @torch.no_grad()
    def call_log_probabilities(self, image: np.ndarray, task: str, history: Sequence[str],
                               memory_keys: Sequence[str], names: SceneNames) -> tuple[tuple[str, ...], torch.Tensor]:
        """Every valid call of the scene (C) and its log-probability (C,): from one forward pass where
        the family allows it, else from the prompt's KV cache."""
        tree = self._grammar(names, memory_keys)[1]
        q = self.encode_prompt(image, task, history, memory_keys, self.seen(image, names))
        was_training = self.model.training
        self.model.eval()
        try:
            if not self.one_pass:
                return tree.codes, cached_call_scores(self.model, q, [list(a) for a in tree.answers],
                                                      self.tokenizer.pad_token_id)
            return tree.codes, self._tree_pass(q, tree)
        finally:
            self.model.train(was_training)

    def _tree_pass(self, q: dict[str, torch.Tensor], tree: _CallTree) -> torch.Tensor:
        device = next(self.model.parameters()).device
        dtype = self.model.get_input_embeddings().weight.dtype
        m, n = len(q["input_ids"]), len(tree.tokens)
        seen = torch.ones(m + n, m + n, dtype=torch.bool).tril()  # (M + N, M + N): the prompt is causal ...
        seen[m:, m:] = tree.ancestors  # ... and each node sees the prompt and its own ancestors only
        mask = torch.zeros(m + n, m + n, dtype=dtype).masked_fill(~seen, torch.finfo(dtype).min)
        logits = self.model(
            **batch_of_one(with_answer(q, tree.tokens), device),  # input_ids (1, M + N), image inputs
            position_ids=torch.cat([torch.arange(m), m + tree.depths])[None].to(device),  # (1, M + N)
            attention_mask=mask[None, None].to(device),  # (1, 1, M + N, M + N)
            use_cache=False, logits_to_keep=n + 1,
        ).logits[0]  # (N + 1, V): row 0 predicts the first token, row i + 1 what follows node i
        scores = logits.float().log_softmax(-1)  # (N + 1, V)
        edges = scores[tree.parent_rows.to(device), tree.tokens.to(device)].cpu()  # (N,): log p(token | its prefix)
        ends = scores[tree.end_rows.to(device), self.end_token_id].cpu()  # (C,)
        return tree.paths @ edges + ends  # (C,)

    def next_calls(self, image: np.ndarray, task: str, history: Sequence[str], memory_keys: Sequence[str],
                   names: SceneNames, k: int = ALTERNATIVES) -> tuple[ScoredCall, ...]:
        """The k most probable valid calls that the hand and the stacks allow after `history`
        (models/planner_grammar.fits_the_hand; all of them when none does), best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        codes, log_probs = self.call_log_probabilities(image, task, history, memory_keys, names)
        held, covered = held_after(history), covered_after(history, names.objects)
        fits = torch.tensor([fits_the_hand(c, held, covered) for c in codes])
        order = torch.argsort(log_probs, descending=True).tolist()
        if fits.any():  # the skills' preconditions (nothing fits: say the likeliest, and let the skill refuse it)
            log_probs = log_probs.masked_fill(~fits, float("-inf"))
            order = [i for i in order if fits[i]]
        if self.lookahead and codes[order[0]].startswith("pick("):
            chosen = self._pick_for_its_place(image, task, history, memory_keys, names, codes, log_probs, order)
            order = [chosen, *(i for i in order if i != chosen)]
        best = torch.tensor(order[:k], dtype=torch.long)
        values = log_probs[best]
        shares = values.softmax(-1)
        return tuple(ScoredCall(codes[i], float(lp), float(p)) for i, lp, p in zip(best.tolist(), values, shares))

    def _pick_for_its_place(self, image, task, history, memory_keys, names, codes, log_probs, order) -> int:
        """Among the LOOKAHEAD likeliest picks, the one whose best place after it is likeliest: a pick is
        judged with the place it enables, log p(pick x) + max_t log p(place(x, t) | pick x) (one more pass
        per pick, the same image)."""
        picks = [i for i in order if codes[i].startswith("pick(")][:LOOKAHEAD]
        if len(picks) < 2:
            return picks[0]
        totals = {}
        for i in picks:
            held = Call.from_code(codes[i]).args[0]
            after, lp = self.call_log_probabilities(image, task, [*history, codes[i]], memory_keys, names)
            places = [j for j, c in enumerate(after) if c.startswith("place(") and Call.from_code(c).args[0] == held]
            totals[i] = float(log_probs[i]) + (float(lp[places].max()) if places else float("-inf"))
        return max(picks, key=lambda i: totals[i])

    def next_call(self, image: np.ndarray, task: str, history: Sequence[str], memory_keys: Sequence[str],
                  names: SceneNames) -> str:
        """The next call's canonical code: the most probable of the scene's valid calls."""
        return self.next_calls(image, task, history, memory_keys, names, k=1)[0].code

    def predict_step(self, step: PlannerStep, names: SceneNames) -> str:
        return self.next_call(step.image, step.task, step.history, step.memory_keys, names)

    # ---- files ---------------------------------------------------------------------------------
    def save(self, folder) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder, safe_serialization=True)
        self.processor.save_pretrained(folder)
        (folder / PLANNER_FILE).write_text(json.dumps({"format": FORMAT, "planner": self.config.to_dict()}, indent=1))
        return folder

    @staticmethod
    def load(folder, device: str = "cpu") -> "Planner":
        """A saved planner (or a run folder's newest); ValueError (one line) naming the problem when
        `folder` is not one or its files are broken (models/planner_files.py checks them)."""
        from models.run_folder import newest_saved

        _quiet_transformers()
        folder = newest_saved(folder, PLANNER_FILE) or Path(folder)  # a run folder: its newest planner
        config, model, processor = load_saved(folder)
        try:
            return Planner(config, model.to(device).eval(), processor)
        except ValueError as e:
            raise ValueError(f"{folder}: {e}") from None
