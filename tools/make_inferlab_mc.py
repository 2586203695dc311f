"""Writes inferlab_mc.jsonl: 120 four-way multiple-choice items written for this project.

Plain facts a small instruct model may know (opposites, plurals, capitals, arithmetic, calendar,
everyday science), in six groups of 20. The distractors are fixed here; the order of the
choices is shuffled with a fixed seed so the answer is not always first. Re-run to regenerate:
    python tools/make_inferlab_mc.py
"""

import json
import random
from pathlib import Path

OPPOSITES = [("hot", "cold"), ("up", "down"), ("big", "small"), ("fast", "slow"), ("happy", "sad"),
             ("day", "night"), ("open", "closed"), ("full", "empty"), ("early", "late"), ("heavy", "light"),
             ("wet", "dry"), ("young", "old"), ("strong", "weak"), ("rich", "poor"), ("loud", "quiet"),
             ("thick", "thin"), ("inside", "outside"), ("buy", "sell"), ("win", "lose"), ("first", "last")]
PLURALS = [("mouse", "mice", "mouses"), ("child", "children", "childs"), ("foot", "feet", "foots"),
           ("tooth", "teeth", "tooths"), ("woman", "women", "womans"), ("man", "men", "mans"),
           ("goose", "geese", "gooses"), ("person", "people", "persons'"), ("box", "boxes", "boxs"),
           ("city", "cities", "citys"), ("leaf", "leaves", "leafs"), ("knife", "knives", "knifes"),
           ("baby", "babies", "babys"), ("bus", "buses", "bus'"), ("wolf", "wolves", "wolfs"),
           ("half", "halves", "halfs"), ("cactus", "cacti", "cactuss"), ("ox", "oxen", "oxes"),
           ("potato", "potatoes", "potatos"), ("church", "churches", "churchs")]
CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
            ("Japan", "Tokyo"), ("the United Kingdom", "London"), ("Russia", "Moscow"), ("China", "Beijing"),
            ("Egypt", "Cairo"), ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Canada", "Ottawa"),
            ("Australia", "Canberra"), ("Ireland", "Dublin"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
            ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Kenya", "Nairobi"), ("Argentina", "Buenos Aires")]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
SCIENCE = [
    ("Water freezes at", "0 degrees Celsius", ["50 degrees Celsius", "100 degrees Celsius", "-40 degrees Celsius"]),
    ("Water boils at sea level at", "100 degrees Celsius", ["0 degrees Celsius", "37 degrees Celsius", "500 degrees Celsius"]),
    ("The planet closest to the Sun is", "Mercury", ["Jupiter", "Neptune", "Saturn"]),
    ("The largest planet in the solar system is", "Jupiter", ["Mercury", "Mars", "Venus"]),
    ("Plants take in carbon dioxide and give off", "oxygen", ["helium", "salt", "iron"]),
    ("The Earth goes around the", "Sun", ["Moon", "Mars", "comet"]),
    ("The organ that pumps blood through the body is the", "heart", ["lung", "liver", "stomach"]),
    ("People breathe with their", "lungs", ["ears", "knees", "hair"]),
    ("A spider has", "eight legs", ["two legs", "four legs", "ten legs"]),
    ("Ice is the solid form of", "water", ["air", "sand", "light"]),
    ("The Moon shines because it reflects light from the", "Sun", ["Earth's cities", "ocean", "stars behind it"]),
    ("Sound cannot travel through", "a vacuum", ["water", "air", "steel"]),
    ("A magnet attracts", "iron", ["wood", "glass", "plastic"]),
    ("Bees make", "honey", ["milk", "silk", "wool"]),
    ("The chemical symbol for water is", "H2O", ["CO2", "NaCl", "O3"]),
    ("A year has", "twelve months", ["ten months", "six months", "twenty months"]),
    ("An hour has", "sixty minutes", ["one hundred minutes", "thirty minutes", "ten minutes"]),
    ("Fish breathe with their", "gills", ["fins", "scales", "tails"]),
    ("Rain falls from", "clouds", ["mountains", "trees", "rivers"]),
    ("The colour of a clear daytime sky is", "blue", ["green", "purple", "black"]),
]


def items(rng: random.Random) -> list[dict]:
    out = []
    words = [w for pair in OPPOSITES for w in pair]
    for word, opposite in OPPOSITES:
        wrong = rng.sample([w for w in words if w not in (word, opposite)], 3)
        out.append(("opposites", f"The opposite of \"{word}\" is", opposite, wrong))
    for word, plural, wrong_form in PLURALS:
        other = rng.choice([p for _, p, _ in PLURALS if p != plural])
        made_up = next(w for w in (word + "s", word + "es", word + "en") if w not in (plural, wrong_form))
        out.append(("plurals", f"The plural of \"{word}\" is", plural, [wrong_form, made_up, other]))
    cities = [c for _, c in CAPITALS]
    for country, city in CAPITALS:
        out.append(("capitals", f"The capital of {country} is", city, rng.sample([c for c in cities if c != city], 3)))
    sums: set[tuple[int, str, int]] = set()
    while len(sums) < 20:
        sums.add((rng.randint(2, 19), rng.choice("+-x"), rng.randint(2, 19)))
    for a, op, b in sorted(sums):
        value = a + b if op == "+" else a - b if op == "-" else a * b
        wrong = set()
        while len(wrong) < 3:
            candidate = value + rng.choice([-10, -2, -1, 1, 2, 10])
            if candidate != value:
                wrong.add(candidate)
        out.append(("arithmetic", f"{a} {op} {b} =", str(value), [str(w) for w in sorted(wrong)]))
    calendar = [("day", DAYS, k, "after") for k in range(7)] + [("month", MONTHS, k, "after") for k in range(12)]
    for kind, names, k, relation in calendar + [("day", DAYS, 0, "before")]:
        answer = names[(k + (1 if relation == "after" else -1)) % len(names)]
        wrong = rng.sample([n for n in names if n not in (answer, names[k])], 3)
        out.append(("calendar", f"The {kind} {relation} {names[k]} is", answer, wrong))
    for question, answer, wrong in SCIENCE:
        out.append(("science", question, answer, wrong))
    docs = []
    for index, (group, question, answer, wrong) in enumerate(out):
        choices = [answer, *wrong]
        rng.shuffle(choices)
        docs.append({"id": index, "group": group, "question": question, "choices": choices,
                     "answer": choices.index(answer)})
    return docs


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "pytest_inferlab" / "data" / "tasks" / "inferlab_mc.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in items(random.Random(20261124))), encoding="utf-8")
    print(f"wrote {path}")
