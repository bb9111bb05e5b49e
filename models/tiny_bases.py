"""Tiny random checkpoints of real image-text-to-text families, laid out as a downloaded one is.

Owns `build_tiny_base(family, folder)`: a folder holding what a user gets from a model hub for
that family (config.json, model.safetensors, generation_config.json, the family's own processor and
image-processor configs, its tokenizer class and special tokens, and its chat template in the
family's real format), with every size cut down so that building it and a few LoRA steps over it
take seconds on a CPU. They stand in for a real pretrained `--base` (there is no hub here) in tests
and in `bench`-style measurements of the planner; models/planner.py never imports this module.

    family -> tokenizer (byte-level BPE trained offline on a fixed English corpus, in the family's
              tokenizer class, with its special tokens) -> processor (its image processor, its chat
              template) -> model config (tiny widths) -> random weights (seeded) -> folder

Families (transformers `model_type`, what a real checkpoint of it is):
- `idefics3`: Idefics3 / SmolVLM (v1), `Idefics3ForConditionalGeneration` + `Idefics3Processor`;
  chat `<|im_start|>User:<image>...<end_of_utterance>\\nAssistant:`; images split into tiles plus a
  global view, each as `<fake_token_around_image><row_i_col_j><image>...`.
- `gemma3`: Gemma 3, `Gemma3ForConditionalGeneration` + `Gemma3Processor`; chat
  `<bos><start_of_turn>user\\n<start_of_image>...<end_of_turn>\\n<start_of_turn>model\\n`; the image's
  soft tokens attend to each other both ways; sliding-window and global attention layers alternate.
Qwen2-VL and its successors are left out: their processor needs torchvision (its video
processor), which this project does not install.
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Callable

SEED = 0
MERGED_TOKENS = 320  # BPE tokens learned on top of the byte alphabet and the special tokens
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
TILE = 64  # pixels of one image tile (the vision tower's input size)
PATCH = 16  # (TILE / PATCH)^2 = 16 patches per tile

# A fixed generic corpus: a downloaded tokenizer knows English and some code, not this project's calls.
CORPUS = (
    "The quick brown fox jumps over the lazy dog. A robot arm picks up a red cube and places it on the table.",
    "Please put the blue block next to the green one, then move back home and stop when you are done.",
    "Describe the image in one sentence. What colour is the object on the left? Where should it go next?",
    "def pick(name): return place(name, target)  # call functions with arguments; None, True, False",
    "Memory: none; Past actions: open the gripper, close the gripper, remember the start pose.",
    "user assistant system model: you are a helpful assistant that answers questions about pictures.",
)

SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")

GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n")


def _byte_level_bpe(specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a byte-level BPE trained on CORPUS: lossless on any text; the special
    tokens take the first ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=len(specials) + 256 + MERGED_TOKENS, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([*CORPUS, string.printable], trainer)
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], [tuple(m) for m in model["merges"]]


def _byte_fallback_bpe(specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a SentencePiece-style BPE ("▁" for spaces, `<0xNN>` byte tokens for any
    character it has not learned) trained on CORPUS, as Gemma's tokenizer is; specials first."""
    from tokenizers import Tokenizer, models, normalizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    trainer = trainers.BpeTrainer(vocab_size=len(specials) + 100 + MERGED_TOKENS, special_tokens=specials,
                                  initial_alphabet=list(string.printable.replace(" ", "▁")), show_progress=False)
    tok.train_from_iterator(list(CORPUS), trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    return vocab, [tuple(m) for m in model["merges"]]


def _save(folder: Path, model, processor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


def _idefics3(folder: Path) -> Path:
    from transformers import (GPT2Tokenizer, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor,
                              LlamaConfig)
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    grid = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>",
                "<end_of_utterance>", "<global-img>", *grid]
    vocab, merges = _byte_level_bpe(specials)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", bos_token="<|im_start|>",
                              eos_token="<end_of_utterance>", pad_token="<|im_end|>", add_prefix_space=False)
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    scale = 2  # pixel shuffle: 2 x 2 patches make one image token
    image_processor = Idefics3ImageProcessorPil(
        do_resize=True, size={"longest_edge": 2 * TILE}, do_image_splitting=True,
        max_image_size={"longest_edge": TILE}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=(TILE // PATCH) ** 2 // scale ** 2, chat_template=SMOLVLM_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(image_size=TILE, patch_size=PATCH, **VISION).to_dict(),
        text_config=LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=2048,
                                num_key_value_heads=TEXT["num_attention_heads"], bos_token_id=ids("<|im_start|>"),
                                eos_token_id=ids("<end_of_utterance>"), pad_token_id=ids("<|im_end|>"),
                                **TEXT).to_dict(),
        scale_factor=scale, image_token_id=ids("<image>"), pad_token_id=ids("<|im_end|>"))
    return _save(folder, Idefics3ForConditionalGeneration(config), processor)


def _gemma3(folder: Path) -> Path:
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor, Gemma3TextConfig,
                              GemmaTokenizer, SiglipVisionConfig)
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    vocab, merges = _byte_fallback_bpe(specials)
    tokenizer = GemmaTokenizer(vocab=vocab, merges=merges, extra_special_tokens={
        "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"})
    tokenizer.add_special_tokens({"additional_special_tokens": specials[5:]})
    tokens_per_image = 4  # the vision tower's 4 x 4 patches average-pooled to 2 x 2 soft tokens
    image_processor = Gemma3ImageProcessorPil(size={"height": TILE, "width": TILE}, image_mean=[0.5] * 3,
                                              image_std=[0.5] * 3, do_pan_and_scan=False)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=GEMMA3_TEMPLATE,
                                image_seq_length=tokens_per_image)
    ids = tokenizer.convert_tokens_to_ids
    head_dim = TEXT["hidden_size"] // TEXT["num_attention_heads"]
    text = Gemma3TextConfig(vocab_size=len(tokenizer), num_key_value_heads=1, head_dim=head_dim,
                            query_pre_attn_scalar=head_dim, max_position_embeddings=2048,
                            sliding_window=24, layer_types=["sliding_attention", "full_attention"],
                            pad_token_id=ids("<pad>"), eos_token_id=[ids("<eos>"), ids("<end_of_turn>")],
                            bos_token_id=ids("<bos>"), **TEXT)
    config = Gemma3Config(text_config=text.to_dict(),
                          vision_config=SiglipVisionConfig(image_size=TILE, patch_size=PATCH, **VISION).to_dict(),
                          mm_tokens_per_image=tokens_per_image, boi_token_index=ids("<start_of_image>"),
                          eoi_token_index=ids("<end_of_image>"), image_token_index=ids("<image_soft_token>"))
    return _save(folder, Gemma3ForConditionalGeneration(config), processor)


_BUILDERS: dict[str, Callable[[Path], Path]] = {"idefics3": _idefics3, "gemma3": _gemma3}
FAMILIES = tuple(_BUILDERS)


def build_tiny_base(family: str, folder, seed: int = SEED) -> Path:
    """A tiny random checkpoint of `family` (one of FAMILIES) written to `folder`, returned."""
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Writing model shards" bars in a test's or a command's output
    if family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _BUILDERS[family](Path(folder))
