"""Why, in concepts: which layer4 units carried a decision, what they stand for, and where they fired.

attribution.py splits the target logit into per-unit contributions and joins them to a neuron table;
published.py fetches CLIP-dissect's own published tables; render.py draws the result.
"""

from explainers.concepts.attribution import (
    DEFAULT_MIN_SIMILARITY,
    UNLABELLED,
    ConceptAttribution,
    UnitEvidence,
    attribute_concepts,
    unit_contributions,
)

__all__ = [
    "DEFAULT_MIN_SIMILARITY",
    "UNLABELLED",
    "ConceptAttribution",
    "UnitEvidence",
    "attribute_concepts",
    "unit_contributions",
]
