"""Purchase histories drawn from a known BG/NBD process, for checking the fit recovers it."""

import numpy as np


def bgnbd_histories(
    *, customers: int, r: float, alpha: float, a: float, b: float, max_age_days: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) per customer in whole days, as the shop's summary query would report them.

    Each customer buys at a Poisson rate lambda ~ Gamma(r, 1/alpha) from day 0 and, after each repeat
    purchase, drops out with probability p ~ Beta(a, b); purchases on one day count once.
    """
    rng = np.random.default_rng(seed)
    rates = rng.gamma(r, 1.0 / alpha, size=customers)
    dropouts = rng.beta(a, b, size=customers)
    ages = rng.integers(30, max_age_days, size=customers)
    xs, recencies = np.zeros(customers, dtype=np.int64), np.zeros(customers, dtype=np.int64)
    for i in range(customers):
        t, days = 0.0, {0}
        while True:
            t += rng.exponential(1.0 / rates[i])
            if t >= ages[i]:
                break
            days.add(int(t))
            if rng.random() < dropouts[i]:
                break
        xs[i] = len(days) - 1
        recencies[i] = max(days)
    return xs, recencies, ages
