"""Concept sets: the words a neuron can be labelled with.

Default `20k`: the 20,000 most frequent English words in `wordfreq` (after dropping tokens that are
not words: digits, single letters, contraction pieces, abbreviations), then the ImageNet class names
and the Places365 category names, de-duplicated case-insensitively in that order. Stop words are kept
(see README: CLIP-dissect's own 20k list keeps them, and the PMI term already discounts concepts that
fit every image). Or one concept per line from a user's file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from explainers.engine.models import imagenet_categories, places365_categories
from explainers.errors import XaiLensError

WORDS_20K = "20k"
WORD_COUNT = 20_000
_WORD = re.compile(r"^[^\W\d_]{2,}$")  # letters only, two or more
MAX_CONCEPT_CHARS = 100


@dataclass(frozen=True)
class ConceptSet:
    name: str
    concepts: tuple[str, ...]
    fingerprint: str
    source: str

    def __len__(self) -> int:
        return len(self.concepts)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "concepts": len(self), "fingerprint": self.fingerprint, "source": self.source}


def readable_class_name(name: str) -> str:
    """'arena/hockey' or 'airplane_cabin' -> 'arena hockey', 'airplane cabin' (what CLIP should read)."""
    return re.sub(r"\s+", " ", re.sub(r"[_/]+", " ", name)).strip()


def clean_concepts(words: Iterable[str]) -> list[str]:
    """Strip, drop empties and case-insensitive duplicates (first spelling wins); '|' is reserved by tables."""
    seen: set[str] = set()
    kept: list[str] = []
    for word in words:
        concept = re.sub(r"\s+", " ", word.replace("|", "/")).strip()
        if not concept or concept.lower() in seen:
            continue
        if len(concept) > MAX_CONCEPT_CHARS:
            raise XaiLensError(f"Concept '{concept[:40]}...' is longer than {MAX_CONCEPT_CHARS} characters.")
        seen.add(concept.lower())
        kept.append(concept)
    return kept


def frequent_english_words(count: int = WORD_COUNT) -> list[str]:
    """The `count` most frequent real words in wordfreq's English list (offline: wordfreq ships it)."""
    from wordfreq import top_n_list

    words = [w for w in top_n_list("en", count * 2) if _WORD.match(w)]
    if len(words) < count:
        raise XaiLensError(f"wordfreq offers only {len(words)} English words; ask for fewer.")
    return words[:count]


def _make(name: str, concepts: Sequence[str], source: str) -> ConceptSet:
    if not concepts:
        raise XaiLensError(f"Concept set '{name}' is empty; give at least one concept (one per line).")
    fingerprint = hashlib.sha256("\n".join(concepts).encode()).hexdigest()[:20]
    return ConceptSet(name, tuple(concepts), fingerprint, source)


def default_concept_set(count: int = WORD_COUNT) -> ConceptSet:
    words = frequent_english_words(count)
    classes = [readable_class_name(c) for c in (*imagenet_categories(), *places365_categories())]
    return _make(
        WORDS_20K if count == WORD_COUNT else f"{count // 1000}k",
        clean_concepts([*words, *classes]),
        f"wordfreq top {count} English words + ImageNet-1k class names + Places365 category names",
    )


def file_concept_set(path: Path) -> ConceptSet:
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise XaiLensError(
            f"Could not read concept file '{path}' ({type(exc).__name__}); give a UTF-8 text file."
        ) from None
    return _make(path.stem, clean_concepts(text.splitlines()), str(path))


def class_name_concepts(categories: Sequence[str]) -> list[str]:
    """A model's class names as concepts, one per output neuron, duplicates kept (for the fc self-check)."""
    return [readable_class_name(c) for c in categories]


def resolve_concept_set(concepts: str, concepts_file: Path | None) -> ConceptSet:
    if concepts_file is not None:
        return file_concept_set(concepts_file)
    if concepts == WORDS_20K:
        return default_concept_set()
    raise XaiLensError(f"Unknown concept set '{concepts}'; use --concepts {WORDS_20K} or --concepts-file FILE.")
