"""Weights you can trust: pre-specified trimming and truncation of ATT weights, reported with the result.

The ATT weights a comparison episode by the odds of its propensity score, p / (1 - p): a
comparison episode that looks like a treated one with p = 0.99 weighs 99 times one with p = 0.5,
and a handful of such episodes can carry a whole estimate (an interval of 7 to 1,188 admissions
per 1,000 person-years, issue 12). Two rules, both fixed in the study file before any outcome is
seen, and both reported (how many episodes, which threshold):

* **trimming** (Crump, Hotz, Imbens and Mitnik, 2009, adapted to the ATT): episodes of either arm
  whose propensity score exceeds ``max_propensity`` are excluded. Treated episodes with no
  comparable comparison episode cannot be given a credible counterfactual; the estimand becomes
  the ATT among treated episodes with a score up to the threshold, and the verdict says how many
  were left out;
* **truncation**: comparison weights above the ``truncate_quantile`` quantile of the comparison
  weights are set to that quantile (Cole and Hernán, 2008). It keeps every episode at the price of
  a little bias.

The gate then requires an effective sample size (Kish) of at least ``min_effective_sample_size``
in each arm (``gate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WeightRule:
    max_propensity: float | None = None
    truncate_quantile: float | None = None

    def describe(self) -> str:
        parts = []
        if self.max_propensity is not None:
            parts.append(f"episodes with a propensity score above {self.max_propensity} excluded")
        if self.truncate_quantile is not None:
            parts.append(f"comparison weights truncated at their {self.truncate_quantile:.0%} quantile")
        return "; ".join(parts) or "no trimming or truncation"


@dataclass
class Weighting:
    weights: np.ndarray
    """Treated rows 1, comparison rows their (truncated) odds, trimmed rows 0."""
    rule: WeightRule
    treated_trimmed: int
    comparison_trimmed: int
    truncated: int
    truncation_threshold: float | None

    def report(self) -> dict[str, object]:
        return {
            "weight_rule": self.rule.describe(),
            "max_propensity": self.rule.max_propensity,
            "treated_trimmed": self.treated_trimmed,
            "comparison_trimmed": self.comparison_trimmed,
            "truncate_quantile": self.rule.truncate_quantile,
            "weights_truncated": self.truncated,
            "truncation_threshold": self.truncation_threshold,
        }


def att_weights(t: np.ndarray, ps: np.ndarray, rule: WeightRule) -> Weighting:
    """ATT weights under ``rule``: 1 for the treated, p / (1 - p) for comparison episodes, 0 when trimmed."""
    ps = np.clip(ps, 1e-6, 1 - 1e-6)
    keep = np.ones(t.shape[0], dtype=bool) if rule.max_propensity is None else ps <= rule.max_propensity
    w = np.where(t == 1, 1.0, ps / (1 - ps)) * keep
    truncated, threshold = 0, None
    comparison = (t == 0) & keep
    if rule.truncate_quantile is not None and comparison.any():
        threshold = float(np.quantile(w[comparison], rule.truncate_quantile))
        over = comparison & (w > threshold)
        truncated = int(over.sum())
        w = np.where(over, threshold, w)
    return Weighting(
        weights=w,
        rule=rule,
        treated_trimmed=int(((t == 1) & ~keep).sum()),
        comparison_trimmed=int(((t == 0) & ~keep).sum()),
        truncated=truncated,
        truncation_threshold=threshold,
    )


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size: (sum w)^2 / sum w^2 (0 for no weight)."""
    total = float(w.sum())
    return total**2 / float(np.sum(w**2)) if total > 0 else 0.0
