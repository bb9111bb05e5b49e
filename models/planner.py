"""The high-level planner: a LLaVA-style vision-language model that writes the next robot-API call.

    front-camera image ─► CLIP-style ViT ─► projector ─┐
    prompt (models/planner_data.prompt_text) ─► tokens ─┴─► Llama-style decoder ─► next call's code
                                                             (decoding constrained: models/planner_grammar)

Two ways to get one, both transformers image-text-to-text models driven through their processor:
- `Planner.scratch(config, corpus)`: a tiny `LlavaForConditionalGeneration` trained from scratch,
  with a byte-level BPE tokenizer trained on the corpus of prompts and calls (offline, CPU-sized).
- `Planner.from_base(LOCAL_DIR, config)`: any local pretrained image-text-to-text checkpoint with its
  processor, fine-tuned through LoRA adapters (peft); the base weights stay frozen.

A checkpoint is a folder: `planner.json` (models/planner_config.py), the processor and tokenizer files,
and `model.safetensors` + `config.json` (scratch) or `adapter_model.safetensors` +
`adapter_config.json` (LoRA; the base folder is named in planner.json). Nothing is pickled, and no
folder's own code runs: models/planner_files.py loads and checks every folder.
"""
from __future__ import annotations

import json
import string
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from models.planner_data import IMAGE_MARK, PlannerStep, SceneNames, prompt_text
from models.planner_config import PlannerConfig
from models.planner_files import FORMAT, PLANNER_FILE, load_pretrained, load_saved
from models.planner_grammar import CallTrie, candidate_calls

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", IMAGE_MARK)
IGNORE = -100
GRAMMAR_CACHE = 256  # scenes x memory states whose call grammar is kept


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
        self._grammars: dict[tuple, tuple[list[str], CallTrie]] = {}  # (scene names, memory keys) -> grammar

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
        return Planner(replace(config, base=str(base.resolve())), _lora(model, config.lora_rank), processor)

    # ---- encoding ------------------------------------------------------------------------------
    def prompt(self, task: str, history: Sequence[str], memory_keys: Sequence[str]) -> str:
        return prompt_text(task, history, memory_keys, self.config.memory, self.image_mark)

    def encode_prompt(self, image: np.ndarray, task: str, history: Sequence[str],
                      memory_keys: Sequence[str]) -> dict[str, torch.Tensor]:
        """input_ids (L,) and pixel_values (3, H, W) of one query."""
        enc = self.processor(images=[np.asarray(image, np.uint8)], text=[self.prompt(task, history, memory_keys)],
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"][0], "pixel_values": enc["pixel_values"][0]}

    def answer_ids(self, code: str) -> list[int]:
        return list(self.tokenizer(code, add_special_tokens=False)["input_ids"]) + [self.tokenizer.eos_token_id]

    def example(self, step: PlannerStep) -> dict[str, torch.Tensor]:
        """One training example: the query followed by the answer; the loss covers the answer only."""
        q = self.encode_prompt(step.image, step.task, step.history, step.memory_keys)
        a = torch.tensor(self.answer_ids(step.target), dtype=torch.long)
        return {"input_ids": torch.cat([q["input_ids"], a]),
                "labels": torch.cat([torch.full_like(q["input_ids"], IGNORE), a]),
                "pixel_values": q["pixel_values"]}

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        n = max(len(e["input_ids"]) for e in examples)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(examples), n), pad, dtype=torch.long)
        labels = torch.full((len(examples), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), n), dtype=torch.long)
        for i, e in enumerate(examples):  # right padding: answers start where their prompt ends
            k = len(e["input_ids"])
            ids[i, :k], labels[i, :k], mask[i, :k] = e["input_ids"], e["labels"], 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask,
                "pixel_values": torch.stack([e["pixel_values"] for e in examples])}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).loss

    # ---- planning ------------------------------------------------------------------------------
    def candidates(self, names: SceneNames, memory_keys: Sequence[str]) -> list[str]:
        return self._grammar(names, memory_keys)[0]

    def _grammar(self, names: SceneNames, memory_keys: Sequence[str]) -> tuple[list[str], CallTrie]:
        """The valid calls and their token trie; built once per scene and memory (about 10 ms), then
        reused for every call of an episode while the memory's keys stay the same."""
        key = (names, tuple(memory_keys))
        if key not in self._grammars:
            if len(self._grammars) >= GRAMMAR_CACHE:
                self._grammars.clear()
            codes = candidate_calls(names.objects, names.zones, memory_keys, self.config.calls)
            trie = CallTrie.build(codes, lambda c: self.answer_ids(c)[:-1], self.tokenizer.eos_token_id)
            self._grammars[key] = (codes, trie)
        return self._grammars[key]

    @torch.no_grad()
    def next_call(self, image: np.ndarray, task: str, history: Sequence[str], memory_keys: Sequence[str],
                  names: SceneNames) -> str:
        """The next call's canonical code: greedy decoding restricted to the scene's valid calls."""
        trie = self._grammar(names, memory_keys)[1]
        q = self.encode_prompt(image, task, history, memory_keys)
        device = next(self.model.parameters()).device
        ids = q["input_ids"][None].to(device)
        start = ids.shape[1]
        longest = max(len(k) for k in trie.codes) + 1
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=q["pixel_values"][None].to(device),
                max_new_tokens=longest, do_sample=False, num_beams=1, pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                prefix_allowed_tokens_fn=lambda _b, seq: trie.allowed(seq[start:].tolist()))
        finally:
            self.model.train(was_training)
        code = trie.code_of(out[0, start:].tolist())
        if code is None:  # max_new_tokens covers the longest candidate, so this is a bug, not bad luck
            raise RuntimeError(f"constrained decoding ended off the grammar: {out[0, start:].tolist()}")
        return code

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
        return Planner(config, model.to(device).eval(), processor)
