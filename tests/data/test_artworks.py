"""Indexing the Kaggle layout: the Unicode trap, duplicates, and every bad input's message."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from cnn_lab.data.artworks import ArtworksDataError, index_artworks, name_key, repair_mojibake
from tests.pipelines.artworks.fake_download import (
    ARTISTS,
    make_download,
    mis_encoded,
    write_artists_csv,
)


@pytest.mark.parametrize("codec", ["cp437", "cp1252"])
def test_mis_encoded_names_match_the_csv_spelling(codec: str) -> None:
    broken = unicodedata.normalize("NFD", "Albrecht_Dürer").encode("utf-8").decode(codec)
    assert broken != "Albrecht_Dürer"
    assert repair_mojibake(broken) == unicodedata.normalize("NFD", "Albrecht_Dürer")
    assert name_key(broken) == name_key("Albrecht Dürer") == "albrecht durer"
    assert name_key("Pierre-Auguste_Renoir") == name_key("Pierre-Auguste Renoir")
    assert name_key("Vincent van Gogh") != name_key("Albrecht Dürer")


def test_index_matches_the_mis_encoded_folder(tmp_path: Path) -> None:
    make_download(tmp_path, per_artist=4, corrupt=False)
    assert (tmp_path / "images/images" / "Albrecht_Du╠êrer").is_dir()
    index = index_artworks(tmp_path)
    assert index.class_names == list(ARTISTS)  # CSV order, CSV spelling
    durer = index.table[index.table["artist"] == "Albrecht Dürer"]
    assert len(durer) == 4 and set(durer["label"]) == {1}
    assert durer["path"].str.startswith("images/images/Albrecht_Du╠êrer/").all()
    assert index.folders_without_artist == [] and index.artists_without_images == []
    assert index.expected_counts["Albrecht Dürer"] == 4


def test_duplicate_folders_of_one_artist_are_merged_without_double_counting(
    tmp_path: Path,
) -> None:
    make_download(tmp_path, per_artist=4, corrupt=False, duplicate_durer=True)
    extra = tmp_path / "images/images/Albrecht_Dürer/Albrecht_Dürer_99.jpg"
    extra.write_bytes((tmp_path / "images/images/Frida_Kahlo/Frida_Kahlo_1.jpg").read_bytes())
    index = index_artworks(tmp_path)
    durer = index.table[index.table["artist"] == "Albrecht Dürer"]
    assert len(durer) == 5  # 4 shared pictures once, plus the one only the copy has
    assert sorted(index.merged_folders["Albrecht Dürer"]) == sorted(
        ["Albrecht_Dürer", mis_encoded("Albrecht_Dürer")]
    )
    assert len(index.duplicate_files) == 4
    assert len(index.table) == 3 * 4 + 1


def test_same_file_name_with_different_pictures_keeps_both(tmp_path: Path) -> None:
    make_download(tmp_path, per_artist=2, corrupt=False, duplicate_durer=True)
    copy = tmp_path / "images/images/Albrecht_Dürer/Albrecht_Dürer_1.jpg"
    copy.write_bytes((tmp_path / "images/images/Frida_Kahlo/Frida_Kahlo_2.jpg").read_bytes())
    index = index_artworks(tmp_path)
    assert (index.table["artist"] == "Albrecht Dürer").sum() == 3


def test_artist_without_images_and_folder_without_artist_warn_and_are_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_download(
        tmp_path, per_artist=2, extra_csv_artists=("Paul Klee",), orphan_folders=("Banksy",)
    )
    index = index_artworks(tmp_path)
    assert index.artists_without_images == ["Paul Klee"]
    assert index.folders_without_artist == ["Banksy"]
    assert "Paul Klee" not in index.class_names and "Banksy" not in set(index.table["artist"])
    assert "have no images and are dropped: Paul Klee" in caplog.text
    assert "match no artist in artists.csv and are ignored: Banksy" in caplog.text
    report = index.report()
    assert report["artists"] == 3 and report["images"] == 7  # one truncated file still listed


def test_excluded_artists_are_left_out_and_labels_stay_contiguous(tmp_path: Path) -> None:
    make_download(tmp_path, per_artist=2, corrupt=False)
    index = index_artworks(tmp_path, exclude=["Albrecht Dürer"])
    assert index.class_names == ["Vincent van Gogh", "Frida Kahlo"]
    assert sorted(set(index.table["label"])) == [0, 1]
    assert index.excluded_artists == ["Albrecht Dürer"]


def test_missing_csv_says_where_it_looked_and_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ArtworksDataError) as info:
        index_artworks(tmp_path / "artworks")
    message = str(info.value)
    assert f"artists.csv not found at {(tmp_path / 'artworks/artists.csv').resolve()}" in message
    assert "artworks.data.root" in message
    assert "kaggle datasets download -d ikarus777/best-artworks-of-all-time" in message


def test_missing_images_folder_says_where_it_looked(tmp_path: Path) -> None:
    write_artists_csv(tmp_path, list(ARTISTS), {})
    with pytest.raises(ArtworksDataError, match=r"image folder not found at .*images/images"):
        index_artworks(tmp_path)


def test_no_images_of_any_artist_is_an_error(tmp_path: Path) -> None:
    make_download(tmp_path, per_artist=1, corrupt=False)
    write_artists_csv(tmp_path, ["Paul Klee"], {})
    with pytest.raises(ArtworksDataError, match="no images of any artist in artists.csv"):
        index_artworks(tmp_path)


@pytest.mark.parametrize(
    ("names", "exclude", "message"),
    [
        (["Frida Kahlo", "Frida_Kahlo"], (), "lists the artist 'Frida_Kahlo' twice"),
        (list(ARTISTS), ("Klimt",), r"exclude_artists: \['Klimt'\] are not in artists.csv"),
    ],
)
def test_bad_csv_or_exclusions_are_named(tmp_path: Path, names, exclude, message) -> None:
    make_download(tmp_path, per_artist=1, corrupt=False)
    write_artists_csv(tmp_path, names, {})
    with pytest.raises(ValueError, match=message):
        index_artworks(tmp_path, exclude=exclude)


def test_csv_without_a_name_column_is_named(tmp_path: Path) -> None:
    make_download(tmp_path, per_artist=1, corrupt=False)
    (tmp_path / "artists.csv").write_text("id,artist\n0,Frida Kahlo\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected at least 'name'"):
        index_artworks(tmp_path)
