"""Probe sets (folder, ImageNet-1000 download with a faked network) and concept sets."""

from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

from dissection_data import probes
from dissection_data.concepts import clean_concepts, default_concept_set, file_concept_set, readable_class_name
from explainers.engine.models import imagenet_categories
from explainers.errors import XaiLensError


def _fake_listing(count=1000):
    names = [f"n{10_000_000 + 7 * i:08d}_class_{i}.JPEG" for i in range(count)]
    shuffled = names[:]
    random.Random(0).shuffle(shuffled)
    return names, ["README.md", "gallery.md", *shuffled]


def test_sample_names_are_sorted_by_wordnet_id():
    names, listing = _fake_listing()
    assert probes.select_sample_names(listing) == names


def test_sample_listing_with_wrong_count_is_rejected():
    _, listing = _fake_listing(999)
    with pytest.raises(XaiLensError, match="not 1000"):
        probes.select_sample_names(listing)


def test_imagenet1000_downloads_once_and_keeps_class_order(tmp_path, monkeypatch):
    names, listing = _fake_listing()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="JPEG")
    fetched = []

    def fake_listing(url, **caps):
        fetched.append(url)
        assert url == probes.SAMPLE_LISTING_URL and caps["max_bytes"] > 0
        return json.dumps({"tree": [{"path": p} for p in listing]}).encode()

    def fake_download(url, target, **caps):  # the downloader itself is tested in test_download.py
        fetched.append(url)
        assert caps["max_bytes"] > 0
        target.write_bytes(buffer.getvalue())
        return target

    monkeypatch.setattr(probes, "fetch_bytes", fake_listing)
    monkeypatch.setattr(probes, "download_file", fake_download)
    probe_set = probes.imagenet1000_probe_set(tmp_path)
    assert len(probe_set) == 1000 and probe_set.ids[0] == names[0].removesuffix(".JPEG")
    assert len(fetched) == 1001
    assert probes.imagenet1000_probe_set(tmp_path).fingerprint == probe_set.fingerprint
    assert len(fetched) == 1001  # second time: all from the cache


def test_folder_probe_set_ids_are_unique_and_safe(tmp_path):
    for relative in ("a b/x.png", "a_b/x.png", "top.jpg"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / relative)
    (tmp_path / "notes.txt").write_text("not an image")
    probe_set = probes.folder_probe_set(tmp_path)
    assert probe_set.ids == ("a_b__x", "a_b__x-2", "top")


def test_empty_or_missing_probe_folder_is_a_clear_error(tmp_path):
    with pytest.raises(XaiLensError, match="holds no images"):
        probes.folder_probe_set(tmp_path)
    with pytest.raises(XaiLensError, match="does not exist"):
        probes.folder_probe_set(tmp_path / "nope")


def test_default_concept_set():
    concept_set = default_concept_set()
    concepts = concept_set.concepts
    assert concept_set.name == "20k"
    assert len(concepts) == len({c.lower() for c in concepts})
    assert {"the", "dog", "goldfish", "great white shark", "airplane cabin"} <= set(concepts)
    assert all(c.isalpha() for c in concepts[:20_000])  # wordfreq's digits and contraction pieces are dropped
    assert 20_000 < len(concepts) < 20_000 + 1000 + 365
    assert default_concept_set().fingerprint == concept_set.fingerprint


def test_concept_file_is_cleaned(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("dog\n  Dog \n\ncat|kitten\nstriped   pattern\n")
    assert file_concept_set(path).concepts == ("dog", "cat/kitten", "striped pattern")
    path.write_text("\n\n")
    with pytest.raises(XaiLensError, match="empty"):
        file_concept_set(path)


def test_class_names_become_readable_concepts():
    assert readable_class_name("arena/hockey") == "arena hockey"
    assert readable_class_name("airplane_cabin") == "airplane cabin"
    assert clean_concepts(imagenet_categories())[:2] == ["tench", "goldfish"]
