"""Constrained decoding for the planner: every answer is a valid call of the robot API.

`candidate_calls` enumerates the calls that make sense in one scene from the registry
(recorders/robot_api_spec.API): each function with objects and zones of the scene, recall(key) of
keys already in memory, free_space(obj), directions from the registry and push distances and
remember-key patterns learned from the training data ("{obj} start"). `CallTrie` holds those calls
as token sequences: `allowed(prefix)` gives only tokens that continue some candidate, and the
end-of-sequence token once a candidate is complete. `CallTrie.layout()` lays its token nodes out as
one sequence (`TrieLayout`, parents before children) so that models/planner.py scores every
candidate in one forward pass, each node attending to the prompt and its own ancestors only: the
answer is always one of the candidates, and the alternatives are ranked exactly. `fits_the_hand`
adds the skills' own preconditions, read from the calls made so far: pick only with an empty hand,
place only the object held (recorders/skills.py refuses the others when they run), and neither pick
nor place onto an object that another was placed on since (`covered_after`: the bottom of a stack).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from recorders.robot_api_spec import API, Call, InvalidCallError

OBJECT_SLOT = "{obj}"


def key_pattern(key: str, obj: str) -> str | None:
    """The pattern of a remember key with its object replaced by {obj}, or None if it does not name it."""
    return key.replace(obj, OBJECT_SLOT, 1) if obj in key else None


@dataclass(frozen=True)
class CallVocabulary:
    """What the planner learned to say beyond the scene's names (stored in its config)."""
    key_patterns: tuple[str, ...] = (OBJECT_SLOT + " start",)
    push_distances: tuple[float, ...] = (0.1,)

    @staticmethod
    def from_programs(codes: Sequence[str]) -> "CallVocabulary":
        patterns, distances = {}, {}
        for code in codes:
            call = Call.from_code(code)
            if call.name == "remember":
                p = key_pattern(str(call.args[0]), str(call.args[1]))
                if p is not None:
                    patterns.setdefault(p, None)
            elif call.name == "push":
                distances.setdefault(float(call.args[2]), None)
        d = CallVocabulary()
        return CallVocabulary(tuple(patterns) or d.key_patterns, tuple(sorted(distances)) or d.push_distances)

    def to_dict(self) -> dict:
        return {"key_patterns": list(self.key_patterns), "push_distances": list(self.push_distances)}

    @staticmethod
    def from_dict(d: dict) -> "CallVocabulary":
        return CallVocabulary(tuple(d.get("key_patterns", ())), tuple(float(x) for x in d.get("push_distances", ())))


def candidate_calls(objects: Sequence[str], zones: Sequence[str], memory_keys: Sequence[str],
                    vocab: CallVocabulary = CallVocabulary()) -> list[str]:
    """Canonical codes of every call the planner may answer in this scene, each valid for the API."""
    objects, zones = list(dict.fromkeys(objects)), list(dict.fromkeys(zones))
    names = set(objects) | set(zones)
    pose_targets = [Call("recall", (k,)) for k in memory_keys] + [Call("free_space", (o,)) for o in objects]
    out: list[Call] = []
    for f in API.values():
        if f.name in ("recall", "free_space"):  # only as place targets
            continue
        if f.name == "pick":
            out += [Call("pick", (o,)) for o in objects]
        elif f.name == "place":
            out += [Call("place", (o, t)) for o in objects for t in [*objects, *zones, *pose_targets] if t != o]
        elif f.name == "push":
            d = f.params[1].choices or ()
            out += [Call("push", (o, di, dist)) for o in objects for di in d for dist in vocab.push_distances]
        elif f.name == "remember":
            out += [Call("remember", (p.replace(OBJECT_SLOT, o), o)) for o in objects for p in vocab.key_patterns]
        elif not f.params:
            out.append(Call(f.name, ()))
    codes = []
    for c in out:
        try:
            codes.append(c.validate(names).code)
        except InvalidCallError:
            continue
    return list(dict.fromkeys(codes))


def _parsed(history: Sequence[str]):
    """The calls of `history` (codes, oldest first) that parse, in order."""
    for code in history:
        try:
            yield Call.from_code(code)
        except InvalidCallError:
            continue


def held_after(history: Sequence[str]) -> str | None:
    """The object in the hand after `history` (codes, oldest first): the last pick's, unless placed since."""
    held = None
    for call in _parsed(history):
        if call.name == "pick":
            held = str(call.args[0])
        elif call.name == "place":
            held = None
    return held


def covered_after(history: Sequence[str], objects: Sequence[str]) -> frozenset[str]:
    """The objects with another object placed on them after `history` (codes, oldest first): a
    place(x, y) onto an object y covers y until x is picked again."""
    on: dict[str, str] = {}  # object placed -> the object it was placed on
    for call in _parsed(history):
        if call.name == "pick":
            on.pop(str(call.args[0]), None)
        elif call.name == "place" and len(call.args) > 1 and call.args[1] in objects:
            on[str(call.args[0])] = call.args[1]
    return frozenset(on.values())


def fits_the_hand(code: str, held: str | None, covered: frozenset[str] = frozenset()) -> bool:
    """Whether the skills would accept `code` with `held` in the hand and the `covered` objects under
    others (covered_after): pick needs an empty hand and an object with nothing on it, place the
    object held and, onto an object, one with nothing on it; other calls do not depend on them."""
    name = code.split("(", 1)[0]
    if name not in ("pick", "place"):
        return True
    what, *target = Call.from_code(code).args
    if name == "pick":
        return held is None and what not in covered
    return held is not None and what == held and not covered.intersection(target)


@dataclass(frozen=True)
class TrieLayout:
    """A trie's token nodes as one sequence, parents before children; node i's prefix is its ancestors'
    tokens then its own. The end-of-sequence token is no node: a candidate ends at its last token's node."""
    tokens: tuple[int, ...]  # (N,) each node's token
    parents: tuple[int, ...]  # (N,) each node's parent node; -1 for a first token (its context is the prompt)
    depths: tuple[int, ...]  # (N,) 0 for a first token
    codes: tuple[str, ...]  # (C,) the candidates
    ends: tuple[int, ...]  # (C,) each candidate's last token node


@dataclass
class CallTrie:
    """Token sequences of candidate calls; `allowed(prefix)` gives the tokens that may follow."""
    eos: int
    children: dict = field(default_factory=dict)
    codes: dict = field(default_factory=dict)  # full token tuple -> code

    @staticmethod
    def build(codes: Sequence[str], encode, eos: int) -> "CallTrie":
        trie = CallTrie(eos)
        for code in codes:
            ids = tuple(encode(code))
            if ids in trie.codes:  # two names spelled alike by the tokenizer: the first one wins
                continue
            trie.codes[ids] = code
            node = trie.children
            for t in ids:
                node = node.setdefault(t, {})
            node[eos] = {}
        return trie

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        node = self.children
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return [self.eos]  # off the trie (never for a prefix built through allowed()): stop
        return list(node) or [self.eos]

    def layout(self) -> TrieLayout:
        """Every node once, walked through `allowed` from the root, so parents come before their children."""
        tokens, parents, depths, codes, ends = [], [], [], [], []
        stack: list[tuple[tuple[int, ...], int]] = [((), -1)]  # (prefix, its node; -1 for the empty prefix)
        while stack:
            prefix, node = stack.pop()
            for t in self.allowed(prefix):
                if t == self.eos:
                    codes.append(self.code_of(prefix))
                    ends.append(node)
                else:
                    tokens.append(t)
                    parents.append(node)
                    depths.append(len(prefix))
                    stack.append((prefix + (t,), len(tokens) - 1))
        return TrieLayout(tuple(tokens), tuple(parents), tuple(depths), tuple(codes), tuple(ends))

    def code_of(self, ids: Sequence[int]) -> str | None:
        ids = [int(t) for t in ids]
        if ids and ids[-1] == self.eos:
            ids = ids[:-1]
        return self.codes.get(tuple(ids))
