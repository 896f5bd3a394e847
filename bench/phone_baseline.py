"""The contact import's yardstick: one process that reads a contact CSV and validates each
number with libphonenumber, and does nothing else.

    python bench/phone_baseline.py PATH [--region GB]

Python's csv module reads the file; each number goes through phonenumbers.parse in the
default region, is_valid_number and, when valid, format_number to E.164 - the library as
it ships, without Herald's settings or code. Prints rows=N valid=N seconds=S (from the
first row read to the last number validated); bench/run.py times the whole process, as
it times the import's.
"""

import argparse
import csv
import time

import phonenumbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--region", default="GB")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = valid = 0
    with open(args.path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        phone_at = next(reader).index("phone")
        for cells in reader:
            rows += 1
            try:
                number = phonenumbers.parse(cells[phone_at], args.region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                valid += 1
    print(f"rows={rows} valid={valid} seconds={time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
