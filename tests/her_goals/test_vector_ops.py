"""The tick's one-call clip gives numpy's maximum-then-minimum, bit for bit."""

import numpy as np

from her_goals.vector_ops import clip


def test_clip_is_maximum_then_minimum_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300])
    for dtype in (np.float64, np.float32):
        for _ in range(2000):
            x = rng.normal(size=7) * 10.0 ** rng.integers(-3, 4)
            lo = rng.normal(size=7) - 1.0
            hi = lo + rng.uniform(0.0, 3.0, size=7)
            x[rng.random(7) < 0.2] = rng.choice(special)
            with np.errstate(over="ignore"):  # 1e300 becomes inf in float32, as the actor casts it
                x, lo, hi = x.astype(dtype), lo.astype(dtype), hi.astype(dtype)
            expected = np.minimum(np.maximum(x, lo), hi)
            assert clip(x, lo, hi).tobytes() == expected.tobytes()
            out = x.copy()
            clip(out, lo, hi, out=out)
            assert out.tobytes() == expected.tobytes()
