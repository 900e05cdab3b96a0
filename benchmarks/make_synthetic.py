"""Write the seeded synthetic crossed design (1,000,000 rows, 8 columns) as CSV.

    y ~ x1 + x2 + cond + (1|g1) + (1|g2)

g1 has 2,000 levels and g2 300, fully crossed at random. Two extra columns (z, k)
are not in the model: tools that convert the whole frame pay for them, as they
would with a real data set. Values are rounded to 6 decimals so that R's and
pandas' CSV parsers read exactly the same doubles. Idempotent: an existing file
is kept.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd

SEED = 20240611


def make(n: int = 1_000_000, n1: int = 2000, n2: int = 300, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, n1, n)
    g2 = rng.integers(0, n2, n)
    x1 = rng.standard_normal(n)
    x2 = rng.uniform(0.0, 1.0, n)
    cond = rng.integers(0, 3, n)
    u1 = rng.normal(0.0, 1.0, n1)
    u2 = rng.normal(0.0, 0.5, n2)
    eps = rng.normal(0.0, 2.0, n)
    y = 2.0 + 0.5 * x1 - 1.0 * x2 + np.array([0.0, 0.3, -0.2])[cond] + u1[g1] + u2[g2] + eps
    return pd.DataFrame({
        "y": np.round(y, 6),
        "x1": np.round(x1, 6),
        "x2": np.round(x2, 6),
        "cond": np.array(["A", "B", "C"])[cond],
        "g1": np.char.add("a", np.char.zfill(g1.astype(str), 4)),
        "g2": np.char.add("b", np.char.zfill(g2.astype(str), 3)),
        "z": np.round(rng.standard_normal(n), 6),
        "k": rng.integers(0, 100, n),
    })


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("path")
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    if os.path.exists(args.path):
        return 0
    df = make(args.rows)
    tmp = args.path + ".tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, args.path)
    print(f"wrote {args.path}: {len(df):,} rows x {df.shape[1]} columns", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
