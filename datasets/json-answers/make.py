"""Generates datasets/json-answers: short questions answered in one fixed JSON format,
{"answer": "<text>", "confidence": <number>}, as chat-format JSON Lines for `sovereign finetune`.

Deterministic (seeded `random.Random`); run from the repository root:
    python3 datasets/json-answers/make.py
writes train.jsonl (200 conversations) and eval.jsonl (50), no question in both.
"""

import json
import random
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "Canada": "Ottawa", "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo",
    "Sweden": "Stockholm", "Greece": "Athens", "Poland": "Warsaw", "Portugal": "Lisbon",
    "Austria": "Vienna", "Ireland": "Dublin", "Russia": "Moscow", "China": "Beijing",
    "India": "New Delhi", "Chile": "Santiago", "Cuba": "Havana", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Belgium": "Brussels", "Hungary": "Budapest", "Thailand": "Bangkok",
    "Argentina": "Buenos Aires", "Mexico": "Mexico City", "Turkey": "Ankara", "Iran": "Tehran",
}
COLOURS = {
    "the sky on a clear day": "blue", "fresh grass": "green", "snow": "white", "coal": "black",
    "a ripe banana": "yellow", "a ripe tomato": "red", "an orange": "orange", "milk": "white",
    "a lemon": "yellow", "a strawberry": "red", "a crow": "black", "chocolate": "brown",
    "a lime": "green", "blood": "red", "the sun in a child's drawing": "yellow",
}
OPPOSITES = {
    "hot": "cold", "big": "small", "up": "down", "fast": "slow", "light": "dark", "old": "new",
    "happy": "sad", "early": "late", "open": "closed", "full": "empty", "wet": "dry",
    "high": "low", "left": "right", "strong": "weak", "loud": "quiet", "hard": "soft",
    "rich": "poor", "thick": "thin", "inside": "outside", "first": "last",
}
WORDS = ["apple", "river", "cat", "mountain", "book", "garden", "piano", "window", "sun", "bridge",
         "orange", "tiger", "cloud", "pencil", "island", "rocket", "kitten", "forest", "lamp", "ocean"]


def questions(rng):
    qs = []
    for a in range(2, 20):
        for b in range(2, 12):
            qs.append((f"What is {a} plus {b}?", str(a + b), 0.99))
            qs.append((f"What is {a} times {b}?", str(a * b), 0.97))
    for country, city in CAPITALS.items():
        qs.append((f"What is the capital of {country}?", city, 0.95))
    for thing, colour in COLOURS.items():
        qs.append((f"What colour is {thing}?", colour, 0.9))
    for word, opp in OPPOSITES.items():
        qs.append((f"What is the opposite of {word}?", opp, 0.9))
    for w in WORDS:
        qs.append((f"How many letters are in the word {w}?", str(len(w)), 0.85))
        qs.append((f"What is the first letter of the word {w}?", w[0], 0.98))
    rng.shuffle(qs)
    return qs


def conversation(q, answer, confidence):
    reply = json.dumps({"answer": answer, "confidence": confidence})
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": reply}]}


def main():
    rng = random.Random(17)
    qs = questions(rng)
    # Keep the mix of kinds: arithmetic would otherwise dominate (360 of ~490).
    arithmetic = [q for q in qs if "plus" in q[0] or "times" in q[0]]
    other = [q for q in qs if q not in arithmetic]
    picked = other + arithmetic[: 250 - len(other)]
    rng.shuffle(picked)
    train, held_out = picked[:200], picked[200:250]
    assert not {q for q, _, _ in train} & {q for q, _, _ in held_out}
    here = Path(__file__).parent
    for name, rows in (("train.jsonl", train), ("eval.jsonl", held_out)):
        with open(here / name, "w") as f:
            for q, a, c in rows:
                f.write(json.dumps(conversation(q, a, c)) + "\n")
    print(f"{len(train)} train, {len(held_out)} eval")


if __name__ == "__main__":
    main()
