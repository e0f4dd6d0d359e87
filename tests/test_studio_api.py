"""`lofi studio`'s JSON API, through FastAPI's TestClient against the real app and worker."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from arranger.compose.generate import generate  # noqa: E402
from arranger.compose.song_folder import Output  # noqa: E402
from arranger.preset import DEFAULT_PRESET, load_preset, preset_names  # noqa: E402
from arranger.studio.app import create_app  # noqa: E402
from arranger.studio.server import bind, is_loopback  # noqa: E402
from tests.helpers import save_models, tiny_models  # noqa: E402

pytestmark = pytest.mark.slow
FAST = Output(pictures=False, progress=False)  # audio as usual; no pictures, to keep it quick


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_models(tiny_models(), tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return tmp_path_factory.mktemp("studio") / "library"


@pytest.fixture(scope="module")
def client(library, weights):
    app = create_app(library, weights=weights, output=FAST)
    with TestClient(app) as c:
        yield c


def wait(client, song_id: str, timeout: float = 180.0) -> dict:
    """Poll like the page does until the song's jobs are over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        song = client.get(f"/api/songs/{song_id}").json()
        if song["status"] in ("done", "error"):
            return song
        time.sleep(0.1)
    raise AssertionError(f"{song_id} still {song['status']} after {timeout} s")


def new_song(client, **body) -> str:
    r = client.post("/api/songs", json={"preset": "rainy-night", "seed": 3, "bars": 4} | body)
    assert r.status_code == 202, r.text
    song = wait(client, r.json()["id"])
    assert song["status"] == "done", song["error"]
    return song["id"]


@pytest.fixture(scope="module")
def song(client):
    return new_song(client)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_presets_lists_every_preset_with_its_description(client):
    got = client.get("/api/presets").json()
    assert [p["name"] for p in got] == preset_names()
    rainy = next(p for p in got if p["name"] == "rainy-night")
    assert rainy["description"] == load_preset("rainy-night").description
    assert rainy["bars"] == load_preset("rainy-night").song.bars
    assert [p["name"] for p in got if p["default"]] == [DEFAULT_PRESET]


def test_generate_writes_the_folder_lofi_generate_writes(client, song, library, weights,
                                                         tmp_path):
    detail = client.get(f"/api/songs/{song}").json()
    paths = {f["path"] for f in detail["files"]}
    assert {"score.mid", "manifest.json", "mix.wav", "mix.mp3"} <= paths
    assert {f"stems/{layer}.wav" for layer in ("chords", "melody", "bass", "drums")} <= paths
    assert detail["manifest"]["seed"] == 3 and detail["manifest"]["bars"] == 4
    # The CLI's engine with the same preset, seed and weights writes the same MIDI bytes.
    generate(load_preset("rainy-night"), tmp_path / "cli", seed=3, bars=4, weights=weights,
             output=Output(render=False, pictures=False, progress=False))
    assert (library / song / "score.mid").read_bytes() == (tmp_path / "cli/score.mid").read_bytes()
    listed = {s["id"]: s for s in client.get("/api/songs").json()}
    assert listed[song]["status"] == "done" and listed[song]["preset"] == "rainy-night"


def test_key_and_tempo_overrides_reach_the_score(client):
    song_id = new_song(client, key="A minor", tempo=90, seed=11)
    score = client.get(f"/api/songs/{song_id}/score").json()
    assert score["key"] == "A minor" and score["tempo_bpm"] == 90
    assert score["bars"] == 4 and len(score["chords"]) >= 1
    assert all(0 <= step < 64 for step, _ in score["drums"])


@pytest.mark.parametrize("body, status, words", [
    ({"preset": "no-such-preset"}, 400, "preset"),
    ({"preset": "../presets/rainy-night"}, 400, "preset"),
    ({"preset": "/etc/passwd"}, 400, "preset"),
    ({"preset": "rainy-night", "bars": 10000}, 400, "bars"),
    ({"preset": "rainy-night", "key": "H minor"}, 400, "key"),
    ({"preset": "rainy-night", "tempo": 500}, 400, "tempo"),
    ({"preset": "rainy-night", "seed": -1}, 422, "seed"),
    ({"preset": "rainy-night", "colour": "blue"}, 422, "colour"),
    ({"seed": 1}, 422, "preset"),
])
def test_bad_song_requests_get_one_line_and_write_nothing(client, library, body, status, words):
    before = sorted(p.name for p in library.iterdir())
    r = client.post("/api/songs", json=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert words in error and "\n" not in error
    assert sorted(p.name for p in library.iterdir()) == before


def test_malformed_json_is_one_line(client):
    r = client.post("/api/songs", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json() == {"error": "request body: not valid JSON"}


def test_files_route_serves_the_bytes(client, song, library):
    r = client.get(f"/api/songs/{song}/files/stems/melody.wav")
    assert r.status_code == 200
    assert r.content == (library / song / "stems/melody.wav").read_bytes()
    r = client.get(f"/api/songs/{song}/files/mix.mp3?download=true")
    assert "attachment" in r.headers["content-disposition"]
    assert r.headers["content-type"] == "audio/mpeg"
    assert client.get(f"/api/songs/{song}/files/nothing.wav").status_code == 404
    assert client.get("/api/songs/no-such-song/files/mix.wav").status_code == 404


@pytest.fixture
def planted(library, song):
    """A secret beside the library, and links inside the song's folder that point at it."""
    secret = library.parent / "secret.txt"
    secret.write_text("do not serve me")
    folder = library / song
    os.symlink(secret, folder / "link.txt")
    os.symlink(library.parent, folder / "up")
    yield secret
    (folder / "link.txt").unlink()
    (folder / "up").unlink()


@pytest.mark.parametrize("path", [
    "%2e%2e/%2e%2e/secret.txt",
    "%2E%2E/%2E%2E/secret.txt",
    "stems/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "..%5c..%5csecret.txt",
    "/{secret}",
    "%2f{secret}",
    "link.txt",
    "up/secret.txt",
    ".%2e/.%2e/secret.txt",
])
def test_traversal_is_refused(client, song, planted, path):
    r = client.get(f"/api/songs/{song}/files/{path.format(secret=planted)}")
    assert r.status_code == 400, r.text[:200]
    assert "do not serve me" not in r.text
    assert "\n" not in r.json()["error"]


@pytest.mark.parametrize("song_id", ["%2e%2e", "..", ".studio", "%2e%2e%2f%2e%2e"])
def test_song_ids_that_leave_the_library_are_refused(client, song_id):
    r = client.get(f"/api/songs/{song_id}/files/secret.txt")
    assert r.status_code in (400, 404)
    assert "do not serve me" not in r.text


def test_a_symlinked_song_folder_is_not_a_song(client, library, song):
    os.symlink(library / song, library / "linked-song")
    try:
        assert client.get("/api/songs/linked-song").status_code == 404
        assert client.get("/api/songs/linked-song/files/score.mid").status_code == 404
        assert "linked-song" not in {s["id"] for s in client.get("/api/songs").json()}
    finally:
        (library / "linked-song").unlink()


def test_stems_zip_holds_every_stem_and_the_midi(client, song, library):
    r = client.get(f"/api/songs/{song}/stems.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    folder = library / song
    stems = sorted(str(p.relative_to(folder)) for p in (folder / "stems").iterdir())
    assert {f"stems/{layer}.wav" for layer in ("chords", "melody", "bass", "drums")} <= set(stems)
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert sorted(z.namelist()) == sorted(f"{song}/{n}" for n in ["score.mid", *stems])
        for name in z.namelist():
            assert z.read(name) == (library / name).read_bytes()
    assert not list((library / ".studio").glob(".zip-*"))  # the temporary file is gone
    assert client.get("/api/songs/nope/stems.zip").status_code == 404


def test_regenerate_drums_keeps_the_other_layers_and_undo_gives_the_bytes_back(client,
                                                                               library):
    song_id = new_song(client, seed=21)
    folder = library / song_id
    before = digests(folder)
    r = client.post(f"/api/songs/{song_id}/regenerate", json={"layer": "drums", "seed": 5})
    assert r.status_code == 202
    after = wait(client, song_id)
    assert after["status"] == "done", after["error"]
    now = digests(folder)
    assert now["stems/drums.wav"] != before["stems/drums.wav"]
    for layer in ("chords", "melody", "bass"):
        assert now[f"stems/{layer}.wav"] == before[f"stems/{layer}.wav"]
    assert after["history"] == [{"layer": "drums", "bars": "1-4", "seed": 5}]
    assert client.post(f"/api/songs/{song_id}/undo").status_code == 202
    undone = wait(client, song_id)
    assert undone["status"] == "done" and undone["history"] == []
    assert digests(folder) == before
    r = client.post(f"/api/songs/{song_id}/undo")
    assert r.status_code == 409 and "nothing to undo" in r.json()["error"]


def test_concurrent_regenerate_requests_run_one_after_the_other(client, library):
    song_id = new_song(client, seed=31)
    folder = library / song_id
    before = digests(folder)
    bodies = [{"layer": "melody", "bars": "2-3", "seed": 1}, {"layer": "drums", "seed": 2},
              {"layer": "chords", "bars": "1-2", "seed": 3}]
    codes: list[int] = []
    go = threading.Barrier(len(bodies))

    def post(body):
        go.wait()
        codes.append(client.post(f"/api/songs/{song_id}/regenerate", json=body).status_code)

    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [202] * 3
    song = wait(client, song_id)
    assert song["status"] == "done", song["error"]
    # Every request landed: none was lost to another rewriting the folder at the same time.
    assert sorted(h["layer"] for h in song["history"]) == ["chords", "drums", "melody"]
    jobs = [j for j in song["jobs"] if j["kind"] == "regenerate"]
    assert [j["status"] for j in jobs] == ["done"] * 3
    for _ in bodies:
        assert client.post(f"/api/songs/{song_id}/undo").status_code == 202
        wait(client, song_id)
    assert digests(folder) == before


def test_undo_replays_the_manifest_where_no_version_was_kept(client, library):
    song_id = new_song(client, seed=41)
    folder = library / song_id
    before = digests(folder)
    client.post(f"/api/songs/{song_id}/regenerate", json={"layer": "melody", "seed": 9})
    assert wait(client, song_id)["status"] == "done"
    assert digests(folder)["score.mid"] != before["score.mid"]
    shutil.rmtree(library / ".studio/versions" / song_id)  # as if the CLI had regenerated
    client.post(f"/api/songs/{song_id}/undo")
    assert wait(client, song_id)["status"] == "done"
    assert digests(folder) == before  # replayed: the same MIDI, stems, mix and manifest


@pytest.mark.parametrize("body, status, words", [
    ({"layer": "vocals"}, 400, "layer"),
    ({"layer": "drums", "bars": "3-9"}, 400, "bars"),
    ({"layer": "drums", "bars": "nine"}, 400, "bars"),
    ({"layer": "drums", "seed": -2}, 422, "seed"),
    ({}, 422, "layer"),
])
def test_bad_regenerate_requests_get_one_line(client, song, body, status, words):
    r = client.post(f"/api/songs/{song}/regenerate", json=body)
    assert r.status_code == status
    assert words in r.json()["error"] and "\n" not in r.json()["error"]


def test_regenerating_a_missing_song_is_404(client):
    r = client.post("/api/songs/not-there/regenerate", json={"layer": "drums"})
    assert r.status_code == 404 and "not-there" in r.json()["error"]


def test_a_failing_job_reports_its_one_line_error_and_changes_nothing(client, song, library):
    broken = library / "broken-weights"
    shutil.copytree(library / song, broken, symlinks=True)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["weights"] = str(library.parent / "no-such-weights")
    (broken / "manifest.json").write_text(json.dumps(manifest))
    before = digests(broken)
    assert client.post("/api/songs/broken-weights/regenerate",
                       json={"layer": "melody"}).status_code == 202
    got = wait(client, "broken-weights")
    assert got["status"] == "error" and "no-such-weights" in got["error"]
    assert "\n" not in got["error"]
    assert digests(broken) == before
    assert not (library / ".studio/versions/broken-weights").exists() or not any(
        (library / ".studio/versions/broken-weights").iterdir())


def test_the_server_answers_while_a_job_runs(client):
    r = client.post("/api/songs", json={"preset": "worn-tape", "seed": 4, "bars": 8})
    song_id = r.json()["id"]
    seen = set()
    while (song := client.get(f"/api/songs/{song_id}").json())["status"] not in ("done",
                                                                                  "error"):
        seen.add(song["status"])
        if song["status"] == "running":
            # Other requests are served meanwhile, with the job's progress.
            assert client.get("/api/presets").status_code == 200
            assert song["progress"]["of"] > 0
        time.sleep(0.05)
    assert "running" in seen and song["status"] == "done"


def test_a_second_client_sees_the_same_songs(client, song):
    other = TestClient(client.app)  # a second tab: same server, no shared browser state
    assert other.get("/api/songs").json() == client.get("/api/songs").json()


def test_songs_written_by_the_cli_into_the_library_are_listed(client, library, weights):
    generate(load_preset("sunday-morning"), library / "from-the-cli", seed=2, bars=4,
             weights=weights, output=Output(render=False, pictures=False, progress=False))
    listed = {s["id"]: s for s in client.get("/api/songs").json()}
    assert listed["from-the-cli"]["status"] == "done"
    assert listed["from-the-cli"]["preset"] == "sunday-morning"


def test_the_page_and_its_scripts_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>lofi studio</title>" in page.text
    for name in ("studio.js", "player.js", "roll.js", "studio.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and len(r.content) > 500
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from the network


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_a_taken_port_is_one_clear_line():
    taken = bind("127.0.0.1", 0)
    try:
        with pytest.raises(ValueError, match="--port"):
            bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_lofi_studio_serves_the_page_and_warns_when_bound_wider(tmp_path):
    lofi = Path(sys.executable).with_name("lofi")
    proc = subprocess.Popen([str(lofi), "studio", "--host", "0.0.0.0", "--port", "0",
                             "--library", str(tmp_path / "lib")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("lofi studio: http://0.0.0.0:"), line
        assert "warning: listening on 0.0.0.0" in proc.stderr.readline()
        port = int(line.split(":")[3].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
            assert b"lofi studio" in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_kept_versions_leave_links_out(tmp_path):
    from arranger.studio import versions
    from arranger.studio.library import Library

    generate(load_preset("rainy-night"), tmp_path / "lib/song", seed=1, bars=4,
             weights=save_models(tiny_models(), tmp_path / "w"),
             output=Output(render=False, pictures=False, progress=False))
    os.symlink(tmp_path, tmp_path / "lib/song/loop")  # would recurse forever if followed
    k = versions.save(Library(tmp_path / "lib"), "song")
    kept = tmp_path / "lib/.studio/versions/song" / str(k)
    assert sorted(p.name for p in kept.iterdir()) == ["manifest.json", "score.mid"]
    assert os.stat(kept / "score.mid").st_ino == os.stat(tmp_path / "lib/song/score.mid").st_ino
