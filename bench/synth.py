"""Synthetic tables with the demo's (UCI Adult) schema, for the scale benchmark.

    .venv/bin/python bench/synth.py --rows 1000000 --out /tmp/synth        # writes train.csv.gz, test.csv.gz

What is written, and why it passes the demo's data contract unchanged:

- the same 15 columns in the same order, header-less, comma-separated, ``?`` for missing values, gzip
  (the format of data/adult/adult.data.gz, read by the same ``pipelines.io.read_table``); the test file
  starts with Adult's ``|1x3 Cross validator`` comment line and writes income as ``>50K.``, like adult.test;
- categories drawn from the reference profile's frequencies (contracts/adult.profile.json), with its
  missing-value rates for workclass, occupation and native-country, so no category is unseen;
- numbers in plausible ranges: age 17..90 (skewed like Adult), fnlwgt log-normal (so rows are distinct
  and the duplicate rule holds), education-num from education (Adult's fixed mapping), sparse capital gains
  and losses, hours around 40;
- labels correlated with the features: marital status and relationship depend on age and sex; income is a
  logistic function of age, education, hours, marriage, sex and capital gains (about 21% positive; Adult
  has 24%), so the tasks are learnable and related, as in the demo.

``rows`` is the training file's size; the test file has ``rows // 4`` (``--test-fraction``). Rows are
generated and written in chunks of 500,000, so 10M rows need a few hundred MB of memory, not gigabytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income"]
EDUCATION_NUM = {"Preschool": 1, "1st-4th": 2, "5th-6th": 3, "7th-8th": 4, "9th": 5, "10th": 6, "11th": 7,
                 "12th": 8, "HS-grad": 9, "Some-college": 10, "Assoc-voc": 11, "Assoc-acdm": 12, "Bachelors": 13,
                 "Masters": 14, "Prof-school": 15, "Doctorate": 16}
CHUNK = 500_000


def _draw(rng: np.random.Generator, profile: dict, column: str, n: int, *, with_nulls: bool = True) -> np.ndarray:
    entry = profile["columns"][column]
    names = np.array(list(entry["frequencies"]), dtype=object)
    p = np.array(list(entry["frequencies"].values()), dtype=float)
    out = names[rng.choice(len(names), size=n, p=p / p.sum())]
    if with_nulls and entry["null_fraction"] > 0:
        out[rng.random(n) < entry["null_fraction"]] = "?"
    return out


def chunk(rng: np.random.Generator, profile: dict, n: int) -> pd.DataFrame:
    """``n`` rows of the Adult schema (labels without the test file's trailing dot)."""
    male = rng.random(n) < 0.67
    age = np.clip(17 + rng.gamma(2.3, 9.5, n), 17, 90).astype(np.int64)
    education = _draw(rng, profile, "education", n, with_nulls=False)
    edu_num = pd.Series(education).map(EDUCATION_NUM).to_numpy(np.int64)
    hours = np.clip(np.rint(rng.normal(40 + 4 * male, 11, n)), 1, 99).astype(np.int64)
    fnlwgt = np.clip(rng.lognormal(12.1, 0.55, n), 12_285, 1_490_400).astype(np.int64)
    gain = np.where(rng.random(n) < 0.08, np.clip(rng.lognormal(8.5, 1.1, n), 114, 99_999), 0).astype(np.int64)
    loss = np.where(rng.random(n) < 0.045, np.clip(rng.normal(1_900, 350, n), 155, 4_356), 0).astype(np.int64)

    # Marital status: young people mostly never married; the rest as in the profile (without never-married).
    never = rng.random(n) < 1 / (1 + np.exp((age - 27) / 4.5))
    married_freq = {k: v for k, v in profile["columns"]["marital-status"]["frequencies"].items() if k != "Never-married"}
    others = np.array(list(married_freq), dtype=object)
    p = np.array(list(married_freq.values()))
    marital = np.where(never, "Never-married", others[rng.choice(len(others), n, p=p / p.sum())])
    spouse = np.isin(marital, ["Married-civ-spouse", "Married-AF-spouse"])

    # Relationship follows marital status, sex and age (Adult's structure, with some noise).
    u = rng.random(n)
    relationship = np.where(
        spouse, np.where(u < 0.97, np.where(male, "Husband", "Wife"), "Other-relative"),
        np.where(never & (age < 25) & (u < 0.75), "Own-child",
                 np.where(u < 0.12, "Other-relative", np.where(~male & (u < 0.55), "Unmarried", "Not-in-family"))))

    logit = (-10.2 + 0.045 * np.minimum(age, 60) + 0.38 * edu_num + 0.03 * hours + 1.9 * spouse + 0.35 * male
             + 2.5 * (gain > 5_000) + 0.8 * (loss > 1_500) + rng.normal(0, 0.6, n))
    income = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), ">50K", "<=50K")
    return pd.DataFrame({
        "age": age, "workclass": _draw(rng, profile, "workclass", n), "fnlwgt": fnlwgt, "education": education,
        "education-num": edu_num, "marital-status": marital, "occupation": _draw(rng, profile, "occupation", n),
        "relationship": relationship, "race": _draw(rng, profile, "race", n),
        "sex": np.where(male, "Male", "Female"), "capital-gain": gain, "capital-loss": loss,
        "hours-per-week": hours, "native-country": _draw(rng, profile, "native-country", n), "income": income,
    }, columns=COLUMNS)


def write_table(path: Path, rows: int, *, seed: int, test_file: bool = False,
                profile_path: Path = ROOT / "contracts" / "adult.profile.json") -> Path:
    """Write ``rows`` synthetic rows to ``path`` (gzip CSV in Adult's format); returns the path."""
    profile = json.loads(profile_path.read_text())
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Level 1: compression costs the generator, not the benchmark; reading it back costs the same either way.
    with gzip.open(path, "wt", compresslevel=1, newline="") as f:
        if test_file:
            f.write("|1x3 Cross validator\n")
        for start in range(0, rows, CHUNK):
            frame = chunk(rng, profile, min(CHUNK, rows - start))
            if test_file:
                frame["income"] = frame["income"] + "."
            frame.to_csv(f, header=False, index=False)
    return path


def write_dataset(out: Path, rows: int, *, seed: int = 0, test_fraction: float = 0.25) -> tuple[Path, Path]:
    """train.csv.gz (``rows`` rows) and test.csv.gz (``rows * test_fraction``) under ``out``."""
    train = write_table(out / "train.csv.gz", rows, seed=seed)
    test = write_table(out / "test.csv.gz", max(1, int(rows * test_fraction)), seed=seed + 1, test_file=True)
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="training-file rows")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    train, test = write_dataset(args.out, args.rows, seed=args.seed, test_fraction=args.test_fraction)
    print(f"| file | MB |\n|---|---:|\n| {train} | {train.stat().st_size / 1e6:.1f} |\n"
          f"| {test} | {test.stat().st_size / 1e6:.1f} |\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
