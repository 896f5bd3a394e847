"""Generated inputs for the benchmarks: nothing is downloaded."""

import csv
import random
from pathlib import Path

FIRST = [
    "Ada",
    "Ben",
    "Chloé",
    "Dev",
    "Ema",
    "Farid",
    "Grace",
    "Hugo",
    "Inès",
    "Jon",
    "Kemi",
    "Lars",
]
ASCII = str.maketrans("éèíñç", "eeinc")
LAST = ["Adeyemi", "Brown", "Costa", "Dubois", "Evans", "Fischer", "García", "Hughes", "Ivanov"]
TIERS = ["bronze", "silver", "gold"]
CITIES = ["London", "Leeds", "Bristol", "Cardiff", "Glasgow", "Belfast"]
FIRST_NUMBER = 447400000000  # +44 74xx: mobile ranges libphonenumber accepts throughout


def write_contacts_csv(
    path: Path, rows: int, invalid_share: float = 0.02, duplicate_share: float = 0.01, seed: int = 7
) -> Path:
    """phone, first_name, last_name, email and two custom columns; some numbers bad or repeated."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["phone", "first_name", "last_name", "email", "loyalty_tier", "city"])
        for i in range(rows):
            draw = rng.random()
            if draw < invalid_share:
                phone = rng.choice(["n/a", "+44 7700 900123", "12345", ""])
            elif draw < invalid_share + duplicate_share and i > 0:
                phone = f"+{FIRST_NUMBER + rng.randrange(i)}"
            else:
                phone = f"+{FIRST_NUMBER + i}"
            first, last = rng.choice(FIRST), rng.choice(LAST)
            writer.writerow(
                [phone, first, last, f"{first}.{last}{i}@example.com".lower().translate(ASCII),
                 rng.choice(TIERS), rng.choice(CITIES)]
            )  # fmt: skip
    return path
