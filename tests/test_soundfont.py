"""SoundFont lookup order and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from arranger.audio import soundfont
from arranger.audio.soundfont import ENV_VAR, bundled_soundfont, find_soundfont, is_soundfont

BUNDLED = bundled_soundfont()
pytestmark = pytest.mark.skipif(BUNDLED is None or not BUNDLED.exists(),
                                reason="pretty_midi's TimGM6mb.sf2 is missing")


def fake_font(folder: Path, name: str) -> Path:
    """A link to the real bundled SoundFont under another name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.symlink_to(BUNDLED)
    return path


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No env var, an empty project folder, no system SoundFonts, no bundled one."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(soundfont, "PROJECT_DIR", tmp_path / "project")
    monkeypatch.setattr(soundfont, "SYSTEM_SOUNDFONTS", ())
    monkeypatch.setattr(soundfont, "bundled_soundfont", lambda: None)
    return tmp_path


def test_explicit_path_wins_over_everything(isolated, monkeypatch):
    chosen = fake_font(isolated / "mine", "chosen.sf2")
    monkeypatch.setenv(ENV_VAR, str(fake_font(isolated / "env", "env.sf2")))
    fake_font(isolated / "project", "a.sf2")
    assert find_soundfont(str(chosen)) == chosen
    assert find_soundfont(chosen.parent) == chosen  # a folder holding one


def test_environment_variable_comes_second(isolated, monkeypatch):
    from_env = fake_font(isolated / "env", "env.sf2")
    fake_font(isolated / "project", "a.sf2")
    monkeypatch.setenv(ENV_VAR, str(from_env))
    assert find_soundfont() == from_env
    assert find_soundfont("") == from_env


def test_project_folder_then_system_then_bundled(isolated, monkeypatch):
    system = fake_font(isolated / "usr", "FluidR3_GM.sf2")
    monkeypatch.setattr(soundfont, "SYSTEM_SOUNDFONTS", (isolated / "missing.sf2", system))
    monkeypatch.setattr(soundfont, "bundled_soundfont", lambda: BUNDLED)
    second = fake_font(isolated / "project", "b.sf3")
    first = fake_font(isolated / "project", "a.sf2")
    assert find_soundfont() == first
    first.unlink()
    assert find_soundfont() == second
    second.unlink()
    assert find_soundfont() == system
    system.unlink()
    assert find_soundfont() == BUNDLED


def test_nothing_found_says_how_to_install_one(isolated):
    with pytest.raises(FileNotFoundError) as error:
        find_soundfont()
    message = str(error.value)
    assert "apt-get install --no-install-recommends fluid-soundfont-gm" in message
    assert ENV_VAR in message and "\n" not in message


@pytest.mark.parametrize("source", ["explicit", "env"])
def test_a_requested_soundfont_that_is_not_one_is_an_error(isolated, monkeypatch, source):
    bogus = isolated / "notes.sf2"
    bogus.write_text("not a soundfont")
    fake_font(isolated / "project", "fallback.sf2")
    for path in (bogus, isolated / "missing.sf2"):
        if source == "env":
            monkeypatch.setenv(ENV_VAR, str(path))
        with pytest.raises(FileNotFoundError, match=path.name):
            find_soundfont(str(path) if source == "explicit" else None)


def test_is_soundfont_checks_the_header(tmp_path):
    assert is_soundfont(BUNDLED)
    text = tmp_path / "x.sf2"
    text.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    assert not is_soundfont(text)
    assert not is_soundfont(tmp_path / "nothing.sf2")


def test_default_lookup_finds_something_on_this_machine(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert is_soundfont(find_soundfont())
