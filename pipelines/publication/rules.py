"""The disclosure rules' parameters, in one place (``docs/disclosure.md`` justifies each)."""

MIN_CELL = 11
"""No count of persons or events under 11 is released (INSEE/CASD; the US CMS suppresses 1 to 10)."""

MAX_NOISE = 3
"""The cell-key perturbation moves a released count by at most this much, either way."""

NOISE_VARIANCE = 2.0
"""Variance of the perturbation of a count well above the threshold (mean 0)."""

PROTECTION_WIDTH = 3
"""An attacker's interval for a hidden count of 1 to 10 must span at least this much (four candidate
values): no hidden count is pinned more tightly than the least protected released one (a released 11
may be 11 to 14)."""

MIN_AREA_PERSONS = 50
"""A département is shown on its own only with at least this many persons in the cohort; smaller ones
are shown within their région."""

MIN_PEERS = 3
MAX_PEER_SHARE = 0.85
"""A peer group needs at least 3 other agencies, none more than 85% of the group's episodes."""

MAGNITUDE_NOISE = 3.0
"""Person-years and hours move by at most this much (in their unit), like counts."""
