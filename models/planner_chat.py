"""What differs between image-text-to-text families under the planner: the chat turn a query is
written in, the inputs a model takes besides token ids, and how every candidate call is scored.

    processor.chat_template -> ChatFormat: the user turn (image + prompt text) with the generation
        prompt; the answer = the text the template puts before an assistant's words + the call's code
        + the template's end-of-turn token (<|im_end|>, <end_of_utterance>, <end_of_turn>; else eos)
    processor output -> one example: input_ids (L,), per-token inputs such as Gemma 3's token_type_ids
        (L,), the image's inputs without the batch axis (pixel_values, Idefics3's pixel_attention_mask)
    model.config.model_type -> scoring: the planner's one-pass tree attention (models/planner.py) for
        the families known to take explicit positions and a 4D additive mask over a causal prompt;
        every other family through `cached_call_scores`: the prompt once with the model's own masks
        and positions, then the candidates as a batch continuing from copies of its KV cache (the
        path `generate` takes), so it is exact for any family that can generate.

The scratch model has no chat template: its query is models/planner_data.prompt_text as it is.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from models.planner_files import first_line

# Families whose decoder attends causally over the whole prompt (image tokens included) with
# 1-D positions, and takes a custom 4D mask and position_ids as they are (checked against plain
# decoding in tests/test_planner.py and tests/test_planner_bases.py). Not Gemma 3 (the image's soft
# tokens attend both ways; sliding-window layers) nor Qwen2-VL and its successors (3-D M-RoPE
# positions from the image grid): those, and any family not named, take the cached path.
ONE_PASS_FAMILIES = frozenset({"llava", "idefics3"})
CANDIDATES_PER_BATCH = 64  # candidates continuing from one copy of the prompt's KV cache at a time
_SENTINEL = "\u2063CALL\u2063"  # an answer the template wraps, to read its format off the rendered text


@dataclass(frozen=True)
class ChatFormat:
    """How a family's chat template frames one query and its answer."""
    answer_prefix: str  # what the template writes between the generation prompt and an answer (" " for Idefics3)
    end_token_id: int  # the token closing an assistant turn

    @staticmethod
    def of(processor) -> "ChatFormat | None":
        """The processor's chat format; None when it has no chat template (the scratch model)."""
        if not getattr(processor, "chat_template", None):
            return None
        tokenizer = processor.tokenizer
        turns = _user_turn("x") + [{"role": "assistant", "content": [{"type": "text", "text": _SENTINEL}]}]
        try:  # transformers renders templates in a sandboxed Jinja environment: no code of the folder runs
            prompt = processor.apply_chat_template(turns[:1], add_generation_prompt=True, tokenize=False)
            full = processor.apply_chat_template(turns, tokenize=False)
        except Exception as e:  # a template is a program: it can fail anywhere
            raise ValueError(f"the chat template cannot write an image turn: {first_line(e)}") from None
        mark = getattr(processor, "image_token", None)
        if not isinstance(prompt, str) or not mark or prompt.count(mark) != 1:
            raise ValueError(f"the chat template does not place one image mark ({mark!r}) in a user turn")
        if not full.startswith(prompt) or _SENTINEL not in full[len(prompt):]:
            return ChatFormat("", tokenizer.eos_token_id)  # a template that rewrites past turns: no prefix, eos
        prefix, after = full[len(prompt):].split(_SENTINEL, 1)
        ids = tokenizer(after, add_special_tokens=False)["input_ids"]
        special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
        return ChatFormat(prefix, ids[0] if ids and ids[0] in special else tokenizer.eos_token_id)

    def query(self, processor, text: str) -> str:
        """The user turn holding the image and `text`, then the generation prompt, as the template writes them."""
        return processor.apply_chat_template(_user_turn(text), add_generation_prompt=True, tokenize=False)


def _user_turn(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def scores_in_one_pass(model) -> bool:
    """Whether the tree pass is exact for `model`: a family named above whose decoder has no
    sliding-window layers (one 4D mask cannot serve a window and the full prompt at once)."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    windowed = getattr(text, "sliding_window", None) is not None or \
        "sliding_attention" in (getattr(text, "layer_types", None) or ())
    return getattr(config, "model_type", None) in ONE_PASS_FAMILIES and not windowed


# ---- model inputs ----------------------------------------------------------------------------------
def one_example(encoding, input_names) -> dict[str, torch.Tensor]:
    """The processor's output for one query as one example: each input the model takes (but the
    attention mask, which batches rebuild) without its batch axis. Per-token inputs keep the
    shape (L,) of input_ids; image inputs their own (pixel_values (3, H, W), or (N, 3, H, W) for
    Idefics3's tiles)."""
    example = {}
    for name, value in encoding.items():
        if name == "attention_mask" or name not in input_names or not isinstance(value, torch.Tensor):
            continue
        if value.shape[0] != 1:  # e.g. Qwen2-VL's patches of all images of a batch in one tensor
            raise ValueError(f"the planner cannot batch this processor's {name} (shape {tuple(value.shape)})")
        example[name] = value[0]
    return example


def is_token_input(example: dict[str, torch.Tensor], name: str) -> bool:
    """Whether `name` is a per-token input of `example` (input_ids, labels, token type ids)."""
    if name == "input_ids":
        return True
    value = example[name]
    return value.dim() == 1 and value.shape == example["input_ids"].shape


def stack_padded(values: list[torch.Tensor]) -> torch.Tensor:
    """(B, ...) of one image input per example, zero-padded to the largest where their shapes differ,
    as the families' processors batch them (Idefics3 drops all-zero tiles and reads
    pixel_attention_mask: images of other sizes split into other numbers of tiles)."""
    shape = [max(sizes) for sizes in zip(*(v.shape for v in values))]
    out = values[0].new_zeros((len(values), *shape))
    for i, v in enumerate(values):
        out[(i, *(slice(0, n) for n in v.shape))] = v
    return out


def with_answer(query: dict[str, torch.Tensor], answer: torch.Tensor) -> dict[str, torch.Tensor]:
    """The query followed by `answer` (A,): token ids appended, per-token inputs extended as text (0)."""
    out = {}
    for name, value in query.items():
        if name == "input_ids":
            out[name] = torch.cat([value, answer])
        elif is_token_input(query, name):
            out[name] = torch.cat([value, value.new_zeros(len(answer))])
        else:
            out[name] = value
    return out


def batch_of_one(query: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {name: value[None].to(device) for name, value in query.items()}


# ---- scoring through the KV cache ------------------------------------------------------------------
def _cache_of(output) -> tuple[str, object]:
    """The output's KV cache and the keyword that hands it back (`cache`; `past_key_values` in older
    transformers releases)."""
    for name in ("cache", "past_key_values"):
        if output.get(name) is not None:
            return name, output[name]
    raise ValueError("the base model returned no KV cache; it cannot score calls")


@torch.no_grad()
def cached_call_scores(model, query: dict[str, torch.Tensor], answers: list[list[int]], pad_id: int) -> torch.Tensor:
    """log p(answer | query) (C,) of each candidate's answer tokens (its end token included): the
    query once through the model with its own masks and positions, then the candidates in batches,
    each row continuing from a copy of the query's KV cache. Rows are right-padded: a real token
    never sees the padding after it."""
    device = next(model.parameters()).device
    out = model(**batch_of_one(query, device), use_cache=True, logits_to_keep=1)
    first = out.logits[0, -1].float().log_softmax(-1)  # (V,): predicts each answer's first token
    keyword, cache = _cache_of(out)
    scores = []
    for start in range(0, len(answers), CANDIDATES_PER_BATCH):
        chunk = answers[start:start + CANDIDATES_PER_BATCH]
        k, width = len(chunk), max(map(len, chunk))
        ids = torch.full((k, width), pad_id, dtype=torch.long)  # (K, A)
        for i, a in enumerate(chunk):
            ids[i, :len(a)] = torch.tensor(a)
        lengths = torch.tensor([len(a) for a in chunk])  # (K,)
        ids = ids.to(device)
        score = first[ids[:, 0]]  # (K,)
        if width > 1:
            rows = copy.deepcopy(cache)
            rows.batch_repeat_interleave(k)
            logits = model(input_ids=ids[:, :-1], use_cache=True, **{keyword: rows}).logits  # (K, A - 1, V)
            steps = logits.float().log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]  # (K, A - 1)
            real = torch.arange(1, width, device=device)[None] < lengths.to(device)[:, None]  # (K, A - 1)
            score = score + torch.where(real, steps, 0.0).sum(-1)
        scores.append(score.cpu())
    return torch.cat(scores)
