"""A variant's perplexity change against HF float32, with a paired bootstrap interval over windows.

Both models score the same windows, and most of the variance between windows (some text is
simply harder) is shared by the two: resampling window indices once for both keeps that pairing,
so the interval reflects only how consistently the variant differs from the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fixed so that the same scores always print the same interval.
SEED = 0
RESAMPLES = 2000


@dataclass(frozen=True)
class Difference:
    """Relative perplexity difference ``variant / reference - 1`` in %, and its 95 % interval."""

    delta_pct: float
    ci95_low_pct: float
    ci95_high_pct: float


def _relative_pct(variant_nll: np.ndarray, reference_nll: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``100 * (ppl_variant / ppl_reference - 1)`` over the last axis of ``[..., W]`` sums and counts.

    The perplexity ratio is ``exp((sum_variant - sum_reference) / tokens)``: the difference of the
    sums is taken before dividing, so a variant equal to the reference gives exactly 0.
    """
    return 100 * np.expm1((variant_nll - reference_nll).sum(axis=-1) / tokens.sum(axis=-1))


def paired_bootstrap(
    variant_nll: np.ndarray,
    reference_nll: np.ndarray,
    tokens: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Difference:
    """Perplexity difference of a variant to the reference and its paired bootstrap 95 % interval.

    ``variant_nll [W]`` and ``reference_nll [W]`` are the summed NLL of each window, ``tokens [W]``
    the number of scored tokens in each. Each of ``resamples`` resamples draws ``W`` window indices
    with replacement, the same for both models; the interval is the 2.5th and 97.5th percentile of
    the resampled differences.
    """
    variant_nll, reference_nll = np.asarray(variant_nll, np.float64), np.asarray(reference_nll, np.float64)
    tokens = np.asarray(tokens, np.float64)
    if not variant_nll.shape == reference_nll.shape == tokens.shape or variant_nll.ndim != 1:
        raise ValueError(f"Expected three [W] arrays, got {variant_nll.shape}, {reference_nll.shape}, {tokens.shape}.")
    picks = np.random.default_rng(seed).integers(0, len(tokens), size=(resamples, len(tokens)))  # [R, W]
    resampled = _relative_pct(variant_nll[picks], reference_nll[picks], tokens[picks])  # [R]
    low, high = np.percentile(resampled, [2.5, 97.5])
    return Difference(float(_relative_pct(variant_nll, reference_nll, tokens)), float(low), float(high))
