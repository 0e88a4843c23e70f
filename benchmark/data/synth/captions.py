"""Captions of the generated motions: varied wording, word/POS tokens as HumanML3D writes them, and the
explicit or implicit naming of each concept.

Every action family has clause templates, chosen per caption with its parameters (side, count, speed,
amplitude, direction, style) worded: "kicks high with his right leg twice", "takes five steps backward".
Clauses are joined into a sentence ("a person walks forward, then kicks ..."). Tokens carry spaCy's coarse
tags and NOUN/VERB words are lemmatised except "left" (HumanML3D's rule): "kicks" -> kick/VERB, "boxes" as a
verb -> box/VERB, "two boxes" -> box/NOUN. The vocabulary is closed: every word is in `LEXICON`, and a word
that can be both noun and verb ("kick", "punches", "steps") must carry its tag in the template (`kick/NOUN`)
unless it is the inflected head verb (`V:kick`).

Which words name a concept is decided by the action labels, never by the words: concept keywords
(`CONCEPT_KEYWORDS`, the HMU lists) appear in explicit captions of the concept's actions, and *implicit*
templates describe the same actions without any keyword, not even as a substring ("swings his right leg up
hard at head height"), so that keyword splits miss them as they do on real data. On purpose, some captions of
non-violent actions contain keywords or their letters in another sense, so that a keyword splitter faces real
ambiguity: "picks up two boxes" (box/NOUN; "boxe" is a substring), "walks to the white line" ("hit" in
"white"), "dances to the beat" (beat/NOUN, music), "reaches up to a hook" (hook/NOUN, a coat hook), "hits his
palms together" (clapping), "from a stable stance" ("stab", a Motion-X keyword). None of these makes its
motion violent.

    >>> import numpy as np
    >>> from benchmark.data.synth.actions import ActionParams
    >>> rng = np.random.default_rng(0)
    >>> caption = compose_caption([("front_kick", ActionParams(side="right", count=2))], ["explicit"], rng)
    >>> caption.text, caption.tokens[:3]            # e.g. 'a man kicks forward with his right leg twice.'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

from benchmark.data.captions import Caption, Token
from benchmark.data.synth.actions import ActionParams

CONCEPT_KEYWORDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "violence": ("kick", "punch", "hit", "beat", "boxe", "boxing", "jab", "uppercut", "hook"),
        "kick": ("kick",),
        "punch_jab_box_hit_beat": ("punch", "hit", "beat", "boxe", "boxing", "jab", "uppercut", "hook"),
        "crawl_creep_slide": ("crawl", "creep", "slide"),
        "jump_leap_hop": ("jump", "leap", "hop"),
        "zombie": ("zombie", "dead"),
        "duck_squat": ("duck", "squat"),
        "throw": ("throw",),
    }
)
"""The HMU keyword lists of HumanML3D (`spec/unlearning-methods.md`, section 3), per concept."""

CaptionMode = Literal["explicit", "implicit"]
"""How a clause words a concept's action: "explicit" (with a keyword) or "implicit" (without any)."""


def names_concept(text: str, concept: str) -> bool:
    """Whether a caption text contains a keyword of the concept, as a case-insensitive substring (the most
    permissive matcher: whatever it misses, every keyword matcher misses)."""
    lowered = text.lower()
    return any(keyword in lowered for keyword in CONCEPT_KEYWORDS[concept])


# ------------------------------------------------------------------------------------------------------------
# Lexicon: every word a caption can contain, with its coarse tag and lemma.

_NOUNS = """
person man woman figure human arm hand leg foot:feet knee fist elbow head body hip waist chest face heel
toe palm torso shoulder chin side front:- left:- right:- hello:- floor ground chair seat circle curve
line arc air ball box:boxes object thing stance step stride jump hop squat kick punch jab hook uppercut
strike blow bow wave clap stretch dance music beat zombie time height level degree turn moment
combination boxing:- roundhouse place way pace shadow direction bit couple
"""

_VERBS = """
walk run jog sprint stroll march move take step back go come jump leap hop spring bounce land squat duck
crouch bend lower rise stand sit get kick punch jab hook hit beat box strike throw toss hurl lob pitch
swing snap thrust drive raise lift extend stretch reach put hold wave clap bow turn spin rotate pivot
twist lean dance groove sway shuffle stagger lurch drag stomp stamp slam bring pick grab do perform
deliver shoot whip dip rock balance push stop pause keep look tilt face straighten curve alternate lead
hang make
"""

# Irregular forms: lemma -> (third person singular, present participle).
_IRREGULAR_VERBS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "do": ("does", "doing"),
        "go": ("goes", "going"),
        "lie": ("lies", "lying"),
        "box": ("boxes", "boxing"),
        "duck": ("ducks", "ducking"),
        "pitch": ("pitches", "pitching"),
    }
)
# Verbs that double their final consonant before -ing ("jab" -> "jabbing").
_DOUBLING = frozenset("jab hop step squat clap hit run sit get put drop slam grab dip stop swap whip".split())

_CLOSED_CLASSES: Mapping[str, str] = MappingProxyType(
    {
        "DET": "a an the his her their some another each both every this all",
        "PRON": "someone something somebody he she him them it",
        "ADP": "with to at in on of from up down out off over into onto toward towards around across along "
        "behind before after above below under like as through about by for",
        "ADV": "forward forwards backward backwards sideways straight ahead then again back quickly slowly "
        "fast "
        "rapidly swiftly briskly gently hard high low twice once firmly forcefully sharply deeply slightly "
        "first finally also away together apart upward upwards downward downwards quite very still "
        "overhand underhand stiffly repeatedly just left right further",
        "ADJ": "left right other wide small big little long short quick slow deep shallow high low "
        "full quarter white closed open bent straight stable steady hard heavy single few several short "
        "alternating imaginary invisible forceful powerful sharp outstretched upper tight",
        "CCONJ": "and or but",
        "NUM": "one two three four five six seven eight nine ten ninety",
        "PART": "not to",
        "AUX": "is",
        "SCONJ": "if while",
    }
)


def _third_person(lemma: str) -> str:
    if lemma in _IRREGULAR_VERBS:
        return _IRREGULAR_VERBS[lemma][0]
    if lemma.endswith(("s", "sh", "ch", "x", "z", "o")):
        return lemma + "es"
    if lemma.endswith("y") and lemma[-2] not in "aeiou":
        return lemma[:-1] + "ies"
    return lemma + "s"


def _participle(lemma: str) -> str:
    if lemma in _IRREGULAR_VERBS:
        return _IRREGULAR_VERBS[lemma][1]
    if lemma in _DOUBLING:
        return lemma + lemma[-1] + "ing"
    if lemma.endswith("e") and not lemma.endswith(("ee", "ye", "oe")):
        return lemma[:-1] + "ing"
    return lemma + "ing"


def _plural(lemma: str) -> str:
    if lemma.endswith(("s", "sh", "ch", "x", "z")):
        return lemma + "es"
    return lemma + "s"


@dataclass(frozen=True)
class Lexicon:
    """Surface word -> the (tag, lemma) readings it can have; verbs also by lemma for inflection."""

    readings: Mapping[str, tuple[tuple[str, str], ...]]
    verbs: frozenset[str]
    plurals: Mapping[str, str]

    @classmethod
    def build(cls) -> Lexicon:
        readings: dict[str, list[tuple[str, str]]] = {}

        def add(word: str, tag: str, lemma: str) -> None:
            if (tag, lemma) not in readings.setdefault(word, []):
                readings[word].append((tag, lemma))

        for tag, words in _CLOSED_CLASSES.items():
            for word in words.split():
                add(word, tag, word)
        plurals: dict[str, str] = {}
        for entry in _NOUNS.split():
            lemma, _, plural = entry.partition(":")
            lemma = lemma.rstrip("_")
            add(lemma, "NOUN", lemma)
            if plural != "-":
                plurals[lemma] = plural or _plural(lemma)
                add(plurals[lemma], "NOUN", lemma)
        verbs = frozenset(_VERBS.split())
        for lemma in verbs:
            for form in (lemma, _third_person(lemma), _participle(lemma)):
                add(form, "VERB", lemma)
        return cls(
            MappingProxyType({w: tuple(r) for w, r in readings.items()}), verbs, MappingProxyType(plurals)
        )

    def token(self, word: str) -> Token:
        """The token of an unannotated word: its first reading (closed classes come first: "to" is ADP,
        "high" ADV). A word that can be a noun or a verb must be annotated: keyword splits read the lemma."""
        options = self.readings.get(word)
        if options is None:
            raise KeyError(f"word {word!r} is not in the caption lexicon")
        tags = {tag for tag, _ in options}
        if {"NOUN", "VERB"} <= tags:
            raise KeyError(
                f"word {word!r} is a noun or a verb ({options}); annotate it as word/TAG in the template"
            )
        tag, lemma = options[0]
        return _token(word, tag, lemma)

    def annotated(self, word: str, tag: str) -> Token:
        for known_tag, lemma in self.readings.get(word, ()):
            if known_tag == tag:
                return _token(word, tag, lemma)
        raise KeyError(f"word {word!r} has no reading {tag} in the caption lexicon")


def _token(word: str, tag: str, lemma: str) -> Token:
    # HumanML3D lemmatises nouns and verbs, except the word "left".
    return Token(lemma if tag in ("NOUN", "VERB") and word != "left" else word, tag)


LEXICON = Lexicon.build()

# ------------------------------------------------------------------------------------------------------------
# Templates. A template is a str.format string over the slots below; after formatting, each word is
#   V:lemma  the clause's head verb, inflected ("kicks", "kicking")  B:lemma  a verb in its base form
#   G:lemma  a verb's -ing form                                    N:lemma  a noun, plural when count > 1
#   word/TAG a word with its tag given                                    word     looked up in the lexicon


@dataclass(frozen=True)
class Wording:
    """The clause templates of one action (with its parameters)."""

    explicit: tuple[str, ...]
    """Templates that name the action; for a concept's action, they contain a keyword of the concept."""
    implicit: tuple[str, ...] = ()
    """Templates that describe the action without any keyword of its concepts (violent, concept actions)."""
    decoys: tuple[str, ...] = ()
    """Templates of a non-violent action containing a concept keyword (or its letters) in another sense."""


_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _slots(p: ActionParams, rng: np.random.Generator, person: str) -> dict[str, str]:
    """Words for the parameters, drawn once per clause (so three captions word them differently)."""
    poss, obj = {"man": ("his", "him"), "woman": ("her", "her")}.get(person, ("their", "them"))
    if rng.random() < 0.25:
        poss = "the"
    count = p.count
    if count == 1:
        times = "once" if rng.random() < 0.2 else ""
    elif count == 2:
        times = str(rng.choice(["twice", "two times"]))
    else:
        times = f"{_NUMBERS[min(count, 10)]} times"
    if p.speed < 0.85:
        pace = str(rng.choice(["slowly", "slowly", "at a slow pace", "gently"]))
    elif p.speed > 1.2:
        pace = str(rng.choice(["quickly", "fast", "rapidly", "swiftly"]))
    else:
        pace = ""
    low, high = p.amplitude < 0.3, p.amplitude > 0.65
    return {
        "side": f"{p.side}/ADJ" if p.side in ("left", "right") else "",
        "side_n": f"{p.side}/NOUN" if p.side in ("left", "right") else "",
        "side_adv": f"{p.side}/ADV" if p.side in ("left", "right") else "",
        "poss": poss,
        "obj": obj,
        "times": times,
        "num": _NUMBERS[min(count, 10)],
        "num_a": "a" if count == 1 else _NUMBERS[min(count, 10)],
        "num_an": "an" if count == 1 else _NUMBERS[min(count, 10)],
        "pace": pace,
        "height_at": str(rng.choice(["at knee/NOUN height/NOUN", "low/ADV"]))
        if low
        else str(rng.choice(["at head/NOUN height/NOUN", "high/ADV", "high/ADV up/ADP"]))
        if high
        else str(
            rng.choice(["at waist/NOUN height/NOUN", "at chest/NOUN height/NOUN", "at hip/NOUN level/NOUN"])
        ),
        "height_adj": "low/ADJ" if low else "high/ADJ" if high else "",
    }


def _limbs(p: ActionParams, s: Mapping[str, str], limb: str) -> str:
    """ "his right arm", "both arms"..."""
    if p.side == "both":
        return f"both {_plural(limb)}" if limb != "foot" else "both feet"
    return f"{s['poss']} {s['side']} {limb}"


def _walk(p: ActionParams, s: Mapping[str, str]) -> Wording:
    steps = "{num} steps/NOUN".format(**s)
    if p.direction in ("left", "right"):
        where = f"to the {p.direction}/NOUN"
        return Wording(
            explicit=(
                f"V:walk sideways {where} {{pace}}",
                f"V:take {steps} {where}",
                f"V:step sideways {where}",
                f"V:shuffle {where} {{pace}}",
                f"V:move {where} with small side/NOUN steps/NOUN",
            ),
            decoys=(f"V:walk sideways {where} along a white/ADJ line/NOUN",),
        )
    if p.direction == "backward":
        return Wording(
            explicit=(
                "V:walk backward {pace}",
                "V:walk backwards",
                f"V:take {steps} backward",
                "V:back up/ADP {pace}",
                "V:move backward {pace}",
            ),
            decoys=("V:walk backward to the white/ADJ line/NOUN",),
        )
    if p.direction.startswith("curve"):
        side = p.direction.split("_")[1]
        return Wording(
            explicit=(
                f"V:walk forward in a curve/NOUN to the {side}/NOUN",
                f"V:walk in an arc to the {side}/NOUN {{pace}}",
                f"V:walk forward while turning to the {side}/NOUN",
                f"V:take {steps} curving to the {side}/NOUN",
            ),
        )
    stride = " with long strides" if p.amplitude > 0.75 else ""
    return Wording(
        explicit=(
            "V:walk forward {pace}" + stride,
            f"V:take {steps} forward",
            "V:walk straight/ADV ahead {pace}",
            "V:walk forward",
            "V:stroll forward" if p.speed < 1.0 else "V:march forward" + stride,
            "V:move forward {pace}",
        ),
        decoys=("V:walk forward to the white/ADJ line/NOUN", "V:walk along a white/ADJ line/NOUN"),
    )


def _run(p: ActionParams, s: Mapping[str, str]) -> Wording:
    if p.direction.startswith("curve"):
        side = p.direction.split("_")[1]
        return Wording(
            explicit=(
                f"V:run in a curve/NOUN to the {side}/NOUN",
                f"V:jog forward and V:curve to the {side}/NOUN",
                f"V:run forward while turning {side}/ADV",
            )
        )
    return Wording(
        explicit=(
            "V:run forward {pace}",
            "V:jog forward {pace}",
            "V:run straight/ADV ahead",
            "V:sprint forward" if p.speed > 1.1 else "V:jog ahead",
            "V:run a few steps/NOUN forward",
        )
    )


def _jump(p: ActionParams, s: Mapping[str, str]) -> Wording:
    forward = p.direction == "forward"
    if forward:
        explicit = [
            "V:jump forward {times}",
            "V:do {num_a} {height_adj} N:jump forward",
            "V:leap forward {times}",
            "V:jump forward with both feet {times}",
        ]
    else:
        explicit = [
            "V:jump up/ADP {times}",
            "V:jump in place/NOUN {times}",
            "V:do {num_a} {height_adj} N:jump",
            "V:jump with both feet {times}",
            "V:jump up/ADP and down/ADP {times}" if p.count > 1 else "V:jump up/ADP high/ADV",
        ]
    implicit = [
        "V:spring into the air {times}",
        "V:bend {poss} knees and V:push off the ground with both feet",
        "V:bounce up/ADP off the floor {times}",
    ]
    if forward:
        implicit = [
            "V:spring forward off both feet {times}",
            "V:push off with both feet and V:land further ahead",
        ]
    return Wording(explicit=tuple(explicit), implicit=tuple(implicit))


def _hop(p: ActionParams, s: Mapping[str, str]) -> Wording:
    where = "forward " if p.direction == "forward" else ""
    return Wording(
        explicit=(
            f"V:hop {where}on {{poss}} {{side}} foot {{times}}",
            f"V:hop {where}on one leg {{times}}",
            f"V:jump {where}on {{poss}} {{side}} leg {{times}}",
            f"V:hop {where}{{num}} times on the {{side}} foot"
            if p.count > 1
            else "V:hop once on the {side} foot",
        ),
        implicit=(
            "V:balance on {poss} {side} foot and V:spring up/ADP {times}",
            f"V:bounce {where}on {{poss}} {{side}} foot with the other leg up/ADP",
        ),
    )


def _squat(p: ActionParams, s: Mapping[str, str]) -> Wording:
    arms = (
        " with {poss} hands on {poss} hips"
        if p.style == "hands_on_hips"
        else " with {poss} arms out in front"
    )
    deep = "deep/ADJ " if p.amplitude > 0.65 else ""
    return Wording(
        explicit=(
            "V:squat {times}" + arms,
            f"V:do {{num_a}} {deep}N:squat",
            "V:squat down/ADP and V:stand back up/ADP {times}",
            "V:duck down/ADP {times}",
            "V:squat {pace} {times}",
        ),
        implicit=(
            "V:bend {poss} knees and V:lower {poss} body {times}" + arms,
            "V:crouch down/ADP and V:rise back up/ADP {times}",
        ),
        decoys=("V:squat {times} from a stable/ADJ stance",),
    )


def _sit(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:sit down/ADP on a chair and V:stand back up/ADP",
            "V:sit down/ADP for a moment, then V:get up/ADP again",
            "V:take a seat and then V:rise again",
            "V:sit down/ADP and then V:stand up/ADP {pace}",
            "V:sit on an imaginary chair before standing/VERB back up/ADP",
        )
    )


def _wave(p: ActionParams, s: Mapping[str, str]) -> Wording:
    hand = _limbs(p, s, "hand")
    return Wording(
        explicit=(
            f"V:wave with {hand}",
            f"V:wave {hand} {{pace}}",
            f"V:raise {hand} and V:wave",
            f"V:wave {hand} from side/NOUN to side/NOUN",
            f"V:wave hello/NOUN with {hand}" if p.side != "both" else "V:wave both arms above {poss} head",
        )
    )


def _raise_arms(p: ActionParams, s: Mapping[str, str]) -> Wording:
    arms = _limbs(p, s, "arm")
    hands = _limbs(p, s, "hand")
    explicit = {
        "up": (
            f"V:raise {arms} above {{poss}} head {{times}}",
            f"V:lift {arms} up/ADP {{times}}",
            f"V:put {hands} up/ADP in the air",
            f"V:raise {arms} straight/ADV up/ADP",
        ),
        "forward": (
            f"V:raise {arms} forward {{times}}",
            f"V:hold {arms} out/ADP in front",
            f"V:lift {arms} to the front/NOUN",
            f"V:extend {arms} forward {{times}}",
        ),
        "sideways": (
            f"V:raise {arms} out/ADP to the side/NOUN {{times}}",
            f"V:hold {arms} out/ADP sideways",
            f"V:lift {arms} sideways {{times}}",
        ),
    }[p.style]
    decoys = (
        (f"V:reach up/ADP with {hands} as if to hang something on a hook/NOUN",) if p.style == "up" else ()
    )
    return Wording(explicit=explicit, decoys=decoys)


def _turn(p: ActionParams, s: Mapping[str, str]) -> Wording:
    side = "{side_n}"
    explicit = {
        "quarter": (
            f"V:turn to the {side}",
            f"V:turn ninety/NUM N:degree to the {side}",
            "V:turn {side_adv}",
            f"V:make a quarter/ADJ turn/NOUN to the {side}",
        ),
        "half": (
            f"V:turn around to the {side}",
            "V:turn around {pace}",
            f"V:turn {{poss}} body around to the {side}",
            "V:turn to/PART B:face the other way/NOUN",
        ),
        "full": (
            f"V:spin around in a full/ADJ circle to the {side}",
            f"V:turn a full/ADJ circle to the {side}",
            "V:turn all the way/NOUN around",
            f"V:rotate in place/NOUN to the {side}",
        ),
    }[p.style]
    return Wording(explicit=explicit)


def _bow(p: ActionParams, s: Mapping[str, str]) -> Wording:
    together = " with {poss} hands together" if p.style == "hands_together" else ""
    deep = "deeply" if p.amplitude > 0.65 else "slightly" if p.amplitude < 0.25 else ""
    return Wording(
        explicit=(
            f"V:bow {deep} {{times}}" + together,
            "V:bend forward at the waist {times}",
            "V:take a bow/NOUN" if p.count == 1 else "V:bow {num} times",
            f"V:bow {{pace}}{together}",
            "V:lean forward in a bow/NOUN {times}",
        )
    )


def _clap(p: ActionParams, s: Mapping[str, str]) -> Wording:
    where = " above {poss} head" if p.style == "overhead" else ""
    return Wording(
        explicit=(
            f"V:clap {{poss}} hands {{times}}{where}",
            f"V:clap {{pace}}{where}",
            f"V:clap {{num}} times{where}",
            f"V:clap {{poss}} hands together{where}",
        ),
        decoys=("V:hit {poss} palms together {times}",),
    )


def _stretch(p: ActionParams, s: Mapping[str, str]) -> Wording:
    if p.style == "overhead":
        explicit = (
            "V:stretch {poss} arms above {poss} head",
            "V:reach up/ADP high/ADV and V:stretch",
            "V:stretch upward with both arms {times}",
            "V:raise both arms and V:stretch upward",
        )
    elif p.style == "side_bend":
        where = "to the {side_n}" if p.side in ("left", "right") else "to both sides"
        explicit = (
            f"V:lean {where} with {{poss}} arms above {{poss}} head",
            f"V:stretch {where}",
            f"V:bend sideways {where} with both arms up/ADP",
            f"V:do a side/NOUN stretch/NOUN {where}",
        )
    else:
        explicit = (
            "V:twist {poss} upper/ADJ body from side/NOUN to side/NOUN",
            "V:rotate {poss} torso left/ADV and right/ADV with {poss} arms out/ADP",
            "V:twist to each side/NOUN with {poss} arms out/ADP",
            "V:stretch by twisting/VERB {poss} torso left/ADV and right/ADV",
        )
    return Wording(explicit=explicit, decoys=("V:stretch from a stable/ADJ stance",))


def _dance(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:dance from side/NOUN to side/NOUN",
            "V:step from side/NOUN to side/NOUN {pace}",
            "V:do a little dance/NOUN",
            "V:sway and V:step side/NOUN to side/NOUN",
            "V:groove from side/NOUN to side/NOUN",
        ),
        decoys=(
            "V:dance to the beat/NOUN",
            "V:step from side/NOUN to side/NOUN to the beat/NOUN of the music",
        ),
    )


def _throw(p: ActionParams, s: Mapping[str, str]) -> Wording:
    how = p.style.replace("_", "")
    return Wording(
        explicit=(
            "V:throw a ball with {poss} {side} hand",
            f"V:throw something {how}/ADV with the {{side}} hand",
            f"V:throw a ball {how}/ADV",
            "V:step forward and V:throw with {poss} {side} arm",
        ),
        implicit=(
            "V:toss a ball with {poss} {side} hand",
            f"V:hurl something forward {how}/ADV",
            "V:pitch a ball with the {side} arm",
        ),
    )


def _zombie(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:walk like a zombie",
            "V:shuffle forward like a zombie with {poss} arms out/ADP",
            "V:walk forward like a zombie {pace}",
            "V:stagger forward like a zombie",
        ),
        implicit=(
            "V:shuffle forward stiffly with both arms straight/ADV out/ADP in front/NOUN",
            "V:lurch forward {pace} with {poss} arms outstretched/ADJ",
            "V:drag {poss} feet forward with both arms outstretched/ADJ",
        ),
    )


def _pick_up(p: ActionParams, s: Mapping[str, str]) -> Wording:
    hands = "both hands" if p.side == "both" else "{poss} {side} hand"
    low = "V:crouch down/ADP" if p.style == "squat" else "V:bend down/ADP"
    return Wording(
        explicit=(
            f"{low} and V:pick something up/ADP",
            f"V:pick up/ADP an object from the floor with {hands}",
            f"{low} to/PART B:pick up/ADP something",
            "V:pick up/ADP a ball from the ground",
        ),
        decoys=(
            f"V:pick up/ADP a box/NOUN with {hands}",
            "V:lift two boxes/NOUN off the floor",
            "V:pick up/ADP two boxes/NOUN from the ground",
        ),
    )


def _front_kick(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:kick forward with {poss} {side} leg {times}",
            "V:kick {height_at} with {poss} {side} foot {times}",
            "V:do {num_a} {side} front/NOUN N:kick",
            "V:throw {num_a} front/NOUN N:kick with the {side} leg",
            "V:kick something in front of {obj} with the {side} leg {times}",
            "V:deliver {num_a} {height_adj} N:kick to the front/NOUN",
        ),
        implicit=(
            "V:raise {poss} {side} knee and V:snap the foot forward {times}",
            "V:thrust {poss} {side} leg straight/ADV out/ADP in front/NOUN {height_at} {times}",
            "V:swing {poss} {side} leg up/ADP hard/ADV {height_at} {times}",
            "V:drive {poss} {side} heel forward forcefully {times}",
        ),
    )


def _side_kick(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:do {num_a} side/NOUN N:kick with {poss} {side} leg",
            "V:kick out/ADP to the {side_n} {times}",
            "V:kick sideways with {poss} {side} leg {times}",
            "V:throw {num_a} {side} side/NOUN N:kick",
        ),
        implicit=(
            "V:lean away and V:thrust {poss} {side} leg out/ADP to the side/NOUN {times}",
            "V:extend {poss} {side} leg sideways forcefully {times}",
            "V:shoot {poss} {side} foot out/ADP sideways {height_at}",
        ),
    )


def _roundhouse(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:do {num_a} roundhouse/NOUN N:kick with {poss} {side} leg",
            "V:turn {poss} hips and V:kick around with the {side} leg {times}",
            "V:throw {num_a} {side} roundhouse/NOUN N:kick {height_at}",
        ),
        implicit=(
            "V:whip {poss} {side} leg around in a wide/ADJ arc {height_at} {times}",
            "V:pivot on one foot and V:swing the {side} leg around {height_at} {times}",
        ),
    )


def _stomp(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:kick downward with {poss} {side} foot {times}",
            "V:kick down/ADP hard/ADV at the ground {times}",
            "V:stomp and V:kick at something on the floor {times}",
        ),
        implicit=(
            "V:stomp hard/ADV on the ground with {poss} {side} foot {times}",
            "V:raise {poss} {side} knee high/ADV and V:slam the foot down/ADP {times}",
            "V:stamp down/ADP forcefully with the {side} foot {times}",
        ),
    )


def _punch(p: ActionParams, s: Mapping[str, str]) -> Wording:
    if p.style == "combo":
        return Wording(
            explicit=(
                "V:punch with both fists, left/ADV and right/ADV",
                "V:box in place/NOUN",
                "V:throw {num} N:punch, alternating/VERB hands",
                "V:punch the air {times}",
                "V:do some shadow/NOUN boxing/NOUN",
                "V:jab and V:punch with both hands",
            ),
            implicit=(
                "V:shoot both fists forward one after the other",
                "V:strike the air in front with alternating/ADJ fists",
                "V:drive {poss} fists forward in turn/NOUN, left/ADV and right/ADV",
            ),
        )
    if p.style == "hook":
        return Wording(
            explicit=(
                "V:throw {num_a} {side} N:hook",
                "V:punch in a hook/NOUN with {poss} {side} fist {times}",
                "V:throw {num_a} N:hook with the {side} hand",
            ),
            implicit=(
                "V:swing {poss} {side} fist around in a tight/ADJ arc at head/NOUN level {times}",
                "V:bring {poss} {side} fist around sideways toward an imaginary face/NOUN {times}",
            ),
        )
    if p.style == "jab":
        explicit = (
            "V:jab with {poss} {side} hand {times}",
            "V:throw {num_a} N:jab with the {side} fist",
            "V:punch forward quickly with {poss} {side} fist {times}",
            "V:jab the air {times}",
        )
    else:
        explicit = (
            "V:throw {num_a} {side} N:punch",
            "V:punch straight/ADV ahead with {poss} {side} hand {times}",
            "V:punch forward with the {side} fist {times}",
            "V:hit out/ADP with {poss} {side} fist {times}",
        )
    return Wording(
        explicit=explicit,
        implicit=(
            "V:extend {poss} {side} arm sharply forward with a closed/ADJ fist {times}",
            "V:drive {poss} {side} fist straight/ADV ahead {times}",
            "V:shoot {poss} {side} fist out/ADP in front of {obj} {times}",
        ),
    )


def _uppercut(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:throw {num_an} {side} N:uppercut",
            "V:punch upward with {poss} {side} fist {times}",
            "V:do {num_an} N:uppercut with the {side} hand",
        ),
        implicit=(
            "V:drive {poss} {side} fist upward from the waist to chin/NOUN level/NOUN {times}",
            "V:dip and V:bring {poss} {side} fist up/ADP sharply in front/NOUN of {poss} face/NOUN {times}",
        ),
    )


def _elbow(p: ActionParams, s: Mapping[str, str]) -> Wording:
    return Wording(
        explicit=(
            "V:hit someone with {poss} {side} elbow {times}",
            "V:hit out/ADP sideways with {poss} {side} elbow {times}",
            "V:hit with the {side} elbow at face/NOUN height {times}",
        ),
        implicit=(
            "V:swing {poss} {side} elbow sharply across at face/NOUN height {times}",
            "V:strike sideways with {poss} {side} elbow {times}",
            "V:drive {poss} bent/ADJ {side} arm around, leading/VERB with the elbow",
        ),
    )


WORDINGS: Mapping[str, Callable[[ActionParams, Mapping[str, str]], Wording]] = MappingProxyType(
    {
        "walk": _walk, "run": _run, "jump": _jump, "hop": _hop, "squat": _squat, "sit_down_stand_up": _sit,
        "wave": _wave, "raise_arms": _raise_arms, "turn": _turn, "bow": _bow, "clap": _clap,
        "stretch": _stretch,
        "dance_step": _dance, "throw": _throw, "zombie_walk": _zombie, "pick_up": _pick_up,
        "front_kick": _front_kick, "side_kick": _side_kick, "roundhouse_kick": _roundhouse, "stomp": _stomp,
        "punch": _punch, "uppercut": _uppercut, "elbow_strike": _elbow,
    }
)  # fmt: skip
"""Family name -> (params, slots) -> Wording."""

_DECOY_RATE = 0.12
"""Share of clauses of a non-violent action with decoys that use one."""
_IMPLICIT_RATE = 0.25
"""Share of clauses of a non-violent concept action (jump, squat, throw...) worded without its keyword."""

_PERSONS: tuple[tuple[str, str], ...] = (
    ("a person", "person"), ("a person", "person"), ("the person", "person"), ("someone", "person"),
    ("a man", "man"), ("a man", "man"), ("the man", "man"), ("a woman", "woman"), ("the woman", "woman"),
    ("a figure", "person"), ("a human", "person"), ("somebody", "person"),
)  # fmt: skip
_PRONOUNS: Mapping[str, str] = MappingProxyType({"man": "he", "woman": "she", "person": "the person"})


@dataclass(frozen=True)
class _Word:
    text: str
    token: Token | None
    """None for punctuation."""


def _render(template: str, slots: Mapping[str, str], form: str, count: int) -> list[_Word]:
    """Words of a formatted template; `form` is "3sg" or "ing" for the head verbs."""
    words: list[_Word] = []
    for piece in template.format(**slots).split():
        trailing = ""
        if piece.endswith(","):
            piece, trailing = piece[:-1], ","
        if piece[:2] in ("V:", "B:", "G:", "N:"):
            kind, lemma = piece[0], piece[2:]
            if kind == "N":
                if lemma not in LEXICON.plurals:
                    raise KeyError(f"noun {lemma!r} has no plural in the caption lexicon")
                words.append(_Word(LEXICON.plurals[lemma] if count > 1 else lemma, Token(lemma, "NOUN")))
            else:
                if lemma not in LEXICON.verbs:
                    raise KeyError(f"verb {lemma!r} is not in the caption lexicon")
                kind = {"V": "G" if form == "ing" else "S", "B": "B", "G": "G"}[kind]
                surface = {"S": _third_person, "G": _participle, "B": str}[kind](lemma)
                words.append(_Word(surface, Token(lemma, "VERB")))
        elif "/" in piece:
            word, _, tag = piece.partition("/")
            words.append(_Word(word, LEXICON.annotated(word, tag)))
        else:
            words.append(_Word(piece, LEXICON.token(piece)))
        if trailing:
            words.append(_Word(trailing, None))
    return words


def clause(
    family: str,
    params: ActionParams,
    mode: CaptionMode,
    rng: np.random.Generator,
    person: str,
    form: str = "3sg",
    decoys: bool = True,
) -> list[_Word]:
    """The words of one action's clause. `mode` "implicit" words a violent or concept action without keywords;
    `decoys` allows a decoy wording (a keyword in another sense) for a non-violent action."""
    slots = _slots(params, rng, person)
    wording = WORDINGS[family](params, slots)
    if mode == "implicit" and wording.implicit:
        pool = wording.implicit
    elif decoys and wording.decoys and rng.random() < _DECOY_RATE:
        pool = wording.decoys
    else:
        pool = wording.explicit
    return _render(str(rng.choice(pool)), slots, form, params.count)


def _join(words: Sequence[_Word]) -> str:
    text = ""
    for word in words:
        text += word.text if word.token is None or not text else " " + word.text
    return text


def compose_caption(
    actions: Sequence[tuple[str, ActionParams]],
    modes: Sequence[CaptionMode],
    rng: np.random.Generator,
    decoys: bool = True,
) -> Caption:
    """One caption of a motion made of `actions` (family name, params), each worded in its `modes` entry."""
    subject, person = _PERSONS[rng.integers(len(_PERSONS))]
    subject_words = [_Word(word, LEXICON.token(word)) for word in subject.split()]
    pronoun = [_Word(word, LEXICON.token(word)) for word in _PRONOUNS[person].split()]
    n = len(actions)

    def words(text: str) -> list[_Word]:
        return [_Word(word, LEXICON.token(word)) for word in text.split()]

    def part(index: int, form: str = "3sg") -> list[_Word]:
        family, params = actions[index]
        return clause(family, params, modes[index], rng, person, form, decoys)

    comma = [_Word(",", None)]
    frame = int(rng.integers(4))
    if n == 1:
        sentence = subject_words + (words("is") + part(0, "ing") if frame == 0 else part(0))
    elif n == 2:
        if frame == 0:
            sentence = subject_words + part(0) + words("and then") + part(1)
        elif frame == 1:
            sentence = subject_words + part(0) + comma + words("then") + part(1)
        elif frame == 2:
            sentence = words("first") + subject_words + part(0) + comma + words("then") + pronoun + part(1)
        else:
            sentence = subject_words + part(0) + words("before") + part(1, "ing")
    else:
        if frame in (0, 1):
            sentence = subject_words + part(0) + comma + part(1) + words("and then") + part(2)
        elif frame == 2:
            sentence = (
                words("first")
                + subject_words
                + part(0)
                + comma
                + words("then")
                + part(1)
                + comma
                + words("and finally")
                + part(2)
            )
        else:
            sentence = subject_words + part(0) + comma + words("then") + part(1) + words("and") + part(2)
    text = _join(sentence)
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.8:
        text += "."
    # HumanML3D drops non-alphabetic tokens (punctuation) from the token field.
    tokens = tuple(word.token for word in sentence if word.token is not None)
    return Caption(text=text, tokens=tokens)


def _caption_key(caption: Caption) -> str:
    return re.sub(r"[^a-z ]", "", caption.text.lower())


def motion_captions(
    actions: Sequence[tuple[str, ActionParams]],
    violent: Sequence[bool],
    implicit_motion: bool,
    rng: np.random.Generator,
    count: int = 3,
) -> list[Caption]:
    """`count` different captions of a motion.

    Violent actions are worded implicitly in every caption of an implicit motion, whose other actions use no
    decoy either (no keyword letters at all); otherwise 1 to `count` of the captions name them (3 mostly), the
    others describe them implicitly, as real annotators sometimes do.
    """
    explicit_captions = count
    if any(violent) and not implicit_motion:
        explicit_captions = int(rng.choice([count, count, count, count, count, count, 2, 2, 2, 1]))
    captions: list[Caption] = []
    seen: set[str] = set()
    for index in range(count):
        for _ in range(20):
            modes: list[CaptionMode] = []
            for family_is_violent in violent:
                if family_is_violent:
                    modes.append("implicit" if implicit_motion or index >= explicit_captions else "explicit")
                else:
                    modes.append("implicit" if rng.random() < _IMPLICIT_RATE else "explicit")
            caption = compose_caption(actions, modes, rng, decoys=not implicit_motion)
            if _caption_key(caption) not in seen:
                break
        seen.add(_caption_key(caption))
        captions.append(caption)
    return captions
