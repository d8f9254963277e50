"""The preset manifest, the checked local folder, and the download cache (offline)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from loopback import http_server

import explainers.inputs.presets as presets
from explainers.errors import XaiLensError
from explainers.inputs.presets import PRESETS, Preset, ensure_presets, examples_dir, find_preset, preset_path

SHARED = os.environ.get(presets.ENV_VAR)
WRONG_NAME = "n07747607_orange.JPEG"  # what the /wrong/ route serves instead of the file asked for


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED:
        pytest.skip(f"{presets.ENV_VAR} is unset (CI sets it to ../shared/imagenet-samples)")
    return Path(SHARED)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, shared_dir):
    """No env folder, an empty cache, and the presets' URLs pointing at a server on 127.0.0.1 that serves
    the shared files (the real downloader runs; `served` lists the paths asked for)."""
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    served: list[str] = []

    def respond(path: str) -> bytes:
        served.append(path)
        name = WRONG_NAME if path.startswith("/wrong/") else path.rsplit("/", 1)[1]
        return (shared_dir / name).read_bytes()

    with http_server(respond) as base:
        local = tuple(dataclasses.replace(p, url=f"{base}/{p.filename}") for p in PRESETS)
        monkeypatch.setattr(presets, "PRESETS", local)
        yield served


def _serve_wrong_bytes(monkeypatch) -> None:
    """Point every preset at the server's /wrong/ route, which answers with another preset's bytes."""
    wrong = tuple(dataclasses.replace(p, url=p.url.replace(p.filename, f"wrong/{p.filename}")) for p in presets.PRESETS)
    monkeypatch.setattr(presets, "PRESETS", wrong)


def test_the_manifest_holds_the_ten_keys_the_readme_promises():
    """The keys come from the manifest alone; the README's parameter-file contract lists them in order."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    promised = readme.split("exactly the ten keys", 1)[1].split("`")[1]
    assert tuple(" ".join(promised.split()).split(", ")) == presets.PRESET_KEYS


def test_manifest_entries_are_consistent():
    assert len(PRESETS) == 10 and len({p.filename for p in PRESETS}) == 10
    for preset in PRESETS:
        assert preset.filename.endswith(f"_{preset.key}.JPEG")
        assert preset.url.endswith("/" + preset.filename) and preset.url.startswith("https://")
        assert 0 <= preset.class_index < 1000 and len(preset.sha256) == 64


@pytest.mark.presets
def test_manifest_matches_the_shared_checksums(shared_dir):
    sums = dict(reversed(line.split()) for line in (shared_dir / "SHA256SUMS").read_text().splitlines() if line)
    assert {p.filename: p.sha256 for p in PRESETS} == sums
    for preset in PRESETS:
        assert presets.sha256_of(shared_dir / preset.filename) == preset.sha256


@pytest.mark.presets
def test_manifest_follows_the_readme_table(shared_dir):
    readme = (shared_dir / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ") and ".JPEG" in line]
    assert [row.split("|")[1].strip() for row in rows] == [p.key for p in PRESETS]
    assert [row.split("|")[2].strip() for row in rows] == [p.filename for p in PRESETS]


def test_find_preset_by_key_stem_or_label():
    terrier = find_preset("West_Highland_white_terrier")
    assert find_preset("west highland white terrier") is terrier
    assert find_preset("n02098286_West_Highland_white_terrier") is terrier
    assert find_preset("N02098286_West_Highland_White_Terrier.jpeg") is terrier
    assert find_preset(terrier) is terrier
    with pytest.raises(XaiLensError, match="No preset is called 'zebra'"):
        find_preset("zebra")


def test_examples_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    assert examples_dir() == tmp_path / "xdg" / "xai-lens" / "presets"
    monkeypatch.setenv(presets.ENV_VAR, str(tmp_path / "env"))
    assert examples_dir() == tmp_path / "env"
    assert examples_dir(tmp_path / "arg") == tmp_path / "arg"


@pytest.mark.presets
def test_local_folder_is_used_as_is_and_checked(shared_dir, monkeypatch):
    monkeypatch.setattr(presets, "download_or_refuse", lambda *a, **k: pytest.fail("a local folder must not download"))
    found = ensure_presets(shared_dir, progress=False)
    assert [(preset, path) for preset, path in found] == [(p, shared_dir / p.filename) for p in PRESETS]


@pytest.mark.presets
def test_tampered_copy_is_refused(shared_dir, tmp_path):
    kite = find_preset("kite")
    copy = tmp_path / kite.filename
    shutil.copyfile(shared_dir / kite.filename, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(XaiLensError, match="does not match its sha256") as caught:
        preset_path("kite", tmp_path)
    assert "\n" not in str(caught.value)
    with pytest.raises(XaiLensError, match="is not in"):
        preset_path("orange", tmp_path)


@pytest.mark.presets
def test_download_fills_the_cache_once_and_verifies(offline_cache):
    path = preset_path("goldfish")
    assert path.parent == examples_dir() and path.is_file()
    assert presets.sha256_of(path) == find_preset("goldfish").sha256
    assert preset_path("goldfish") == path and len(offline_cache) == 1  # second call uses the cache
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file beside it


@pytest.mark.presets
def test_damaged_cache_entry_is_fetched_again(offline_cache):
    path = preset_path("orange")
    path.write_bytes(b"damaged")
    assert presets.sha256_of(preset_path("orange")) == find_preset("orange").sha256
    assert len(offline_cache) == 2


@pytest.mark.presets
def test_wrong_download_is_refused_and_nothing_cached(offline_cache, monkeypatch):
    _serve_wrong_bytes(monkeypatch)
    with pytest.raises(XaiLensError, match="does not match its pinned sha256"):
        preset_path("kite")
    folder = examples_dir()
    assert not folder.exists() or not any(folder.iterdir())


def test_unreachable_url_gives_the_offline_error(tmp_path, monkeypatch):
    monkeypatch.delenv(presets.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    nowhere = tuple(dataclasses.replace(p, url=f"http://127.0.0.1:9/{p.filename}") for p in PRESETS)  # 9: discard
    monkeypatch.setattr(presets, "PRESETS", nowhere)
    with pytest.raises(XaiLensError) as caught:
        preset_path("vulture")
    message = str(caught.value)
    assert "could not be downloaded" in message and presets.ENV_VAR in message and "--examples-dir" in message
    assert "\n" not in message
    with pytest.raises(XaiLensError, match="not downloaded yet"):
        preset_path("vulture", download=False)


def test_real_fetch_of_an_unreachable_url_gives_the_offline_error(tmp_path):
    nowhere = Preset("kite", "kite.JPEG", 21, "http://127.0.0.1:9/kite.JPEG", "0" * 64, "kite")  # port 9: discard
    with pytest.raises(XaiLensError, match="could not be downloaded"):
        presets._download(nowhere, tmp_path / "kite.JPEG")
    assert not any(tmp_path.iterdir())


def test_preset_is_frozen():
    with pytest.raises(AttributeError):
        PRESETS[0].key = "other"  # type: ignore[misc]
    assert isinstance(PRESETS[0], Preset)
