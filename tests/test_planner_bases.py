"""`--base` over real image-text-to-text families (models/tiny_bases.py: tiny random checkpoints laid
out as downloaded ones): the family's processor and chat template frame the query, every call is
scored exactly as decoding it alone would (one pass, or through the prompt's KV cache), LoRA training
runs through train_planner, and a saved planner loads back with the same scores."""
from __future__ import annotations

import json
import re
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.planner import Planner
from models.planner_config import PlannerConfig, PlannerTrainOptions
from models.planner_data import SceneNames, episode_steps
from models.planner_files import check_base
from models.tiny_bases import FAMILIES, build_tiny_base
from models.train_planner import train_planner
from tests.synthetic_episodes import write_narrated

# What a real checkpoint of each family writes around a user turn, and how its answers end.
TURN = {"idefics3": ("<|im_start|>User:", "<end_of_utterance>\nAssistant:"),
        "gemma3": ("<bos><start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n")}
END_OF_TURN = {"idefics3": "<end_of_utterance>", "gemma3": "<end_of_turn>"}
ANSWER_PREFIX = {"idefics3": " ", "gemma3": ""}
TOKENIZER = {"idefics3": "GPT2Tokenizer", "gemma3": "GemmaTokenizer"}
ONE_PASS = {"idefics3": True, "gemma3": False}  # Gemma 3's image tokens attend both ways: the cached path
MEMORY = ("red cube start",)  # a stored key, so that recall(...) calls are among the candidates


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bases")
    return {family: build_tiny_base(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    """Two stack takes with a front camera (48 x 64): pick, place, and done() in the second."""
    folder = tmp_path_factory.mktemp("base_episodes")
    write_narrated(folder / "take_0.h5", cameras=True)
    write_narrated(folder / "take_1.h5", cameras=True, instruction="put the red cube on the blue cube", success=True)
    return folder


def _planner(base: Path) -> Planner:
    torch.manual_seed(0)
    return Planner.from_base(base, PlannerConfig())


def _last_step(episodes: Path):
    steps, names = episode_steps(episodes / "take_1.h5")
    return steps[1], names  # a past call in the prompt


def test_families_cover_at_least_two_real_architectures():
    assert set(FAMILIES) == set(TURN) and len(FAMILIES) >= 2
    with pytest.raises(ValueError, match="unknown family 'llama'"):
        build_tiny_base("llama", "unused")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_tiny_base_is_laid_out_as_a_downloaded_checkpoint(family, bases):
    base = bases[family]
    names = {p.name for p in base.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
            "processor_config.json"} <= names and not any(n.endswith((".py", ".bin")) for n in names)
    assert check_base(base) == [base / "model.safetensors"]
    assert json.loads((base / "config.json").read_text())["model_type"] == family
    assert json.loads((base / "tokenizer_config.json").read_text())["tokenizer_class"] == TOKENIZER[family]
    assert build_tiny_base(family, base.parent / "again").joinpath("model.safetensors").read_bytes() == \
        (base / "model.safetensors").read_bytes()  # seeded: the same weights every time


@pytest.mark.parametrize("family", FAMILIES)
def test_the_query_is_the_familys_chat_turn_with_one_image(family, bases, episodes):
    planner = _planner(bases[family])
    step, _ = _last_step(episodes)
    text = planner.prompt(step.task, step.history, MEMORY)
    opening, closing = TURN[family]
    assert text.startswith(opening) and text.endswith(closing)
    assert step.task in text and 'Past actions:\npick("red cube")' in text and "Memory: red cube start" in text
    processor, tokenizer = planner.processor, planner.tokenizer
    assert text.count(processor.image_token) == 1  # the template's image mark, expanded by the processor

    ids = planner.encode_prompt(step.image, step.task, step.history, MEMORY)["input_ids"].tolist()
    alone = processor(images=[step.image], text=[processor.image_token], add_special_tokens=False,
                      return_tensors="pt")["input_ids"][0].tolist()  # the family's tokens for one image
    special = set(tokenizer.all_special_ids)
    marked = [i for i, t in enumerate(alone) if t in special]
    expansion = alone[marked[0]:marked[-1] + 1]
    starts = [i for i in range(len(ids)) if ids[i:i + len(expansion)] == expansion]
    image_id = tokenizer.convert_tokens_to_ids(getattr(tokenizer, "image_token", None) or processor.image_token)
    assert len(starts) == 1 and ids.count(image_id) == expansion.count(image_id) >= 4
    assert tokenizer.decode(ids, skip_special_tokens=False).startswith(opening)
    assert ids.count(tokenizer.bos_token_id) == 1  # the template's own: the tokenizer adds none

    answer = planner.answer_ids(step.target)
    assert answer[-1] == planner.end_token_id == tokenizer.convert_tokens_to_ids(END_OF_TURN[family])
    assert tokenizer.decode(answer[:-1]) == ANSWER_PREFIX[family] + step.target
    example = planner.example(step)
    assert example["input_ids"].tolist() == planner.encode_prompt(step.image, step.task, step.history,
                                                                  step.memory_keys)["input_ids"].tolist() + answer
    assert (example["labels"] >= 0).sum() == len(answer)


def _alone(planner: Planner, query: dict, answer: list[int]) -> float:
    """log p(answer | query) from a plain forward pass of the query followed by the answer."""
    a = torch.tensor(answer)
    inputs = {"input_ids": torch.cat([query["input_ids"], a])[None]}
    for name, value in query.items():
        if name in ("token_type_ids", "mm_token_type_ids"):
            inputs[name] = torch.cat([value, torch.zeros_like(a)])[None]  # the answer is text
        elif name != "input_ids":
            inputs[name] = value[None]
    with torch.no_grad():
        logits = planner.model(**inputs).logits[0, len(query["input_ids"]) - 1:-1]  # (A, V)
    return float(logits.float().log_softmax(-1)[torch.arange(len(a)), a].sum())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_call_scores_as_decoding_it_alone_would(family, bases, episodes):
    planner = _planner(bases[family])
    step, names = _last_step(episodes)
    names = SceneNames(names.objects, ("green zone",))
    assert planner.one_pass is ONE_PASS[family]
    planner.model.train()  # scoring must not depend on (or change) the mode it finds the model in
    codes, scores = planner.call_log_probabilities(step.image, step.task, step.history, MEMORY, names)
    assert planner.model.training
    assert sorted(codes) == sorted(planner.candidates(names, MEMORY)) and len(codes) > 20
    assert any("recall(" in c for c in codes)
    planner.model.eval()
    query = planner.encode_prompt(step.image, step.task, step.history, MEMORY)
    for code, score in zip(codes, scores):
        assert float(score) == pytest.approx(_alone(planner, query, planner.answer_ids(code)), abs=1e-4), code
    if not ONE_PASS[family]:  # the one pass is not valid for this family: it would get other scores
        planner.one_pass = True
        _, forced = planner.call_log_probabilities(step.image, step.task, step.history, MEMORY, names)
        assert float((forced - scores).abs().max()) > 1e-2


def _perturb_adapters(planner: Planner) -> None:
    """LoRA's B starts at zero (the adapted model is the base): give the adapters weights to save."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in planner.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_lora_planner_over_the_family_loads_with_the_same_scores(family, bases, episodes, tmp_path):
    step, names = _last_step(episodes)
    args = (step.image, step.task, step.history, MEMORY, names)
    untouched = _planner(bases[family]).call_log_probabilities(*args)[1]
    planner = _planner(bases[family])
    _perturb_adapters(planner)
    codes, scores = planner.call_log_probabilities(*args)
    assert float((scores - untouched).abs().max()) > 1e-2  # the adapters change what it says
    folder = planner.save(tmp_path / "planner")
    assert (folder / "adapter_model.safetensors").is_file() and not (folder / "model.safetensors").exists()
    again = Planner.load(folder)
    assert again.config.base == str(bases[family].resolve()) and again.chat == planner.chat
    assert again.prompt(step.task, step.history, MEMORY) == planner.prompt(step.task, step.history, MEMORY)
    codes_again, scores_again = again.call_log_probabilities(*args)
    assert codes_again == codes and torch.allclose(scores_again, scores, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_train_planner_fine_tunes_the_family_and_its_planner_proposes_valid_calls(family, bases, episodes, tmp_path):
    base = bases[family]
    weights = (base / "model.safetensors").read_bytes()
    out = tmp_path / "run"
    options = PlannerTrainOptions(data=(str(episodes),), out=str(out), base=str(base), steps=3, batch_size=2,
                                  device="cpu", checkpoint_every=0, log_every=1)
    result = train_planner(options)
    assert result.step == 3 and not result.stopped and result.final == out / "final"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["samples"] == 5 and 0 < lines[0]["trainable"] < lines[0]["parameters"]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]
    assert all(math.isfinite(x["loss"]) and x["loss"] > 0 for x in lines if "loss" in x)
    assert (base / "model.safetensors").read_bytes() == weights  # the base stays as downloaded
    planner = Planner.load(out)
    assert planner.config.base == str(base.resolve()) and planner.chat is not None
    steps, names = episode_steps(episodes / "take_1.h5")
    for step in steps:
        alternatives = planner.next_calls(step.image, step.task, step.history, step.memory_keys, names, k=3)
        assert len(alternatives) == 3
        assert all(a.code in planner.candidates(names, step.memory_keys) for a in alternatives)
        assert all(np.isfinite(a.log_probability) and a.log_probability < 0 for a in alternatives)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_of_images_of_other_sizes_reads_as_each_example_alone(family, bases, episodes):
    from dataclasses import replace

    planner = _planner(bases[family])
    planner.model.eval()
    step, _ = _last_step(episodes)
    rng = np.random.default_rng(0)
    examples = [planner.example(replace(step, image=rng.integers(0, 255, shape, dtype=np.uint8)))
                for shape in ((48, 64, 3), (64, 32, 3))]
    batch = planner.collate(examples)
    with torch.no_grad():
        together = planner.model(**batch).logits
        for i, example in enumerate(examples):
            alone = planner.model(**planner.collate([example])).logits[0]
            n = len(example["input_ids"])
            assert torch.allclose(together[i, :n], alone, atol=1e-4)
    assert float(planner.loss(batch)) > 0


@pytest.mark.parametrize("template, message", [
    ("{% for m in messages %}{{ m['role'] }}: {{ m['content'][-1]['text'] }}\n{% endfor %}", "one image mark"),
    ("{{ raise_exception('only text turns') }}", "cannot write an image turn: .*only text turns"),
])
def test_a_base_whose_chat_template_cannot_frame_an_image_turn_is_one_line(template, message, bases, tmp_path):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(bases["idefics3"], base)
    (base / "chat_template.jinja").write_text(template)
    with pytest.raises(ValueError, match=f"^--base {re.escape(str(base))}: the chat template .*{message}") as e:
        Planner.from_base(base, PlannerConfig())
    assert "\n" not in str(e.value)


def test_the_scratch_planner_keeps_its_plain_prompt_and_eos():
    from models.planner_config import TINY

    planner = Planner.scratch(PlannerConfig(**TINY), ['pick("red cube")', "done()"] * 4)
    assert planner.chat is None and planner.one_pass and planner.end_token_id == planner.tokenizer.eos_token_id
    assert planner.prompt("stack", [], []) == "<image>\nstack\nMemory: none\nPast actions:\nnone\nNext:\n"
    assert planner.answer_ids("done()")[-1] == planner.tokenizer.eos_token_id
