"""CLIP-dissect's published tables: parsed into neuron rows, fetched from a local server, checked by sha256,
refused for the wrong model; every failure is one line. The real files are never fetched or committed here."""

from __future__ import annotations

import hashlib
import socket

import pytest
from loopback import http_server

from explainers.concepts import published
from explainers.concepts.published import PublishedTable, load_published_table, published_csv, read_published_csv
from explainers.concepts.tables import default_table, open_table
from explainers.errors import XaiLensError

LAYERS = {"conv1": 4, "layer4": 6}
CSV_TEXT = "layer,unit,description,similarity\n" + "".join(
    f"{layer},{unit},{layer}-concept-{unit},{0.1 + unit / 100:.8g}\n"
    for layer, count in LAYERS.items()
    for unit in range(count)
)
PAYLOAD = CSV_TEXT.encode()
hits: list[str] = []  # paths the server was asked for


@pytest.fixture
def server():
    hits.clear()
    with http_server(lambda path: hits.append(path) or PAYLOAD) as url:
        yield url


def _spec(url: str, sha256: str = hashlib.sha256(PAYLOAD).hexdigest()) -> PublishedTable:
    return PublishedTable(
        model="resnet50-v1", file="resnet50_imagenet_broden.csv", sha256=sha256, url=url, dataset="ImageNet"
    )


def _one_line(caught: pytest.ExceptionInfo) -> str:
    message = str(caught.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def test_a_csv_in_the_published_layout_becomes_neuron_rows(tmp_path):
    path = tmp_path / "resnet50_imagenet_broden.csv"
    path.write_text(CSV_TEXT)
    table = read_published_csv(path, _spec("unused"))
    assert (table.model, table.key, table.layers) == ("resnet50-v1", "published/resnet50-v1", list(LAYERS))
    assert len(table.rows) == sum(LAYERS.values())
    row = table.row("layer4", 5)
    assert (row.concept, row.similarity, row.model) == ("layer4-concept-5", pytest.approx(0.15), "resnet50-v1")
    assert row.top_concepts == (("layer4-concept-5", pytest.approx(0.15)),) and row.top_images == ()
    assert table.meta["source"] == "published by CLIP-dissect's authors"
    assert table.meta["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()


def test_the_download_is_verified_cached_and_read(server, tmp_path, monkeypatch):
    monkeypatch.setitem(published.PUBLISHED_TABLES, "resnet50-v1", _spec(f"{server}/table.csv"))
    table = load_published_table("resnet50-v1", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["resnet50_imagenet_broden.csv"]
    assert len(table.rows) == sum(LAYERS.values()) and len(hits) == 1
    load_published_table("resnet50-v1", tmp_path)
    assert len(hits) == 1  # served from the cache
    (tmp_path / "resnet50_imagenet_broden.csv").write_text("damaged")
    load_published_table("resnet50-v1", tmp_path)
    assert len(hits) == 2 and (tmp_path / "resnet50_imagenet_broden.csv").read_bytes() == PAYLOAD


def test_a_checksum_mismatch_is_one_line_and_leaves_nothing(server, tmp_path):
    with pytest.raises(XaiLensError) as caught:
        published_csv(_spec(f"{server}/table.csv", sha256="0" * 64), tmp_path)
    assert "does not match its pinned sha256" in _one_line(caught)
    assert list(tmp_path.iterdir()) == []


def test_offline_is_one_line_and_leaves_nothing(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(XaiLensError) as caught:
        published_csv(_spec(f"http://127.0.0.1:{port}/table.csv"), tmp_path)
    message = _one_line(caught)
    assert "could not be downloaded" in message and "resnet50_imagenet_broden.csv" in message
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(XaiLensError) as caught:
        published_csv(_spec("unused"), tmp_path, download=False)
    assert "not downloaded yet" in _one_line(caught)


def test_a_table_for_the_wrong_model_is_refused_naming_the_right_one(tmp_path):
    with pytest.raises(XaiLensError) as caught:
        load_published_table("resnet50", tmp_path)
    assert "--model resnet50-v1" in _one_line(caught)
    with pytest.raises(XaiLensError) as caught:
        load_published_table("resnet18", tmp_path)
    assert "resnet50-v1, resnet18-places365" in _one_line(caught)
    path = tmp_path / "resnet50_imagenet_broden.csv"
    path.write_text(CSV_TEXT)
    assert open_table(path, "resnet50-v1").model == "resnet50-v1"
    with pytest.raises(XaiLensError) as caught:
        open_table(path, "resnet50")
    assert "--model resnet50-v1" in _one_line(caught)


def test_a_csv_of_another_layout_or_name_is_one_line(tmp_path):
    wrong = tmp_path / "resnet50_imagenet_broden.csv"
    wrong.write_text("layer,unit,label\nlayer4,0,fur\n")
    with pytest.raises(XaiLensError) as caught:
        open_table(wrong, "resnet50-v1")
    assert "not a CLIP-dissect results table" in _one_line(caught)
    unnamed = tmp_path / "labels.csv"
    unnamed.write_text(CSV_TEXT)
    with pytest.raises(XaiLensError) as caught:
        open_table(unnamed, "resnet50-v1")
    assert "resnet50_imagenet_broden.csv" in _one_line(caught)


def test_the_default_table_uses_a_cached_published_table_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setitem(published.PUBLISHED_TABLES, "resnet50-v1", _spec("http://127.0.0.1:9/never-fetched"))
    assert default_table("resnet50-v1", tmp_path / "tables", tmp_path / "cache") is None
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "resnet50_imagenet_broden.csv").write_bytes(PAYLOAD)
    table = default_table("resnet50-v1", tmp_path / "tables", tmp_path / "cache")
    assert table is not None and table.meta["source"] == published.SOURCE
