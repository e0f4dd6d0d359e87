// lofi studio: the page. It talks only to the JSON API under /api and polls it, so a reload
// or a second tab shows the same songs, jobs and progress.
import { Player } from "./player.js";
import { Roll } from "./roll.js";

const LAYERS = ["chords", "melody", "bass", "drums"];
const POLL_MS = 700;
const $ = (id) => document.getElementById(id);

const state = {
  presets: [],
  songs: [],
  current: null,       // id of the song on screen
  detail: null,        // its GET /api/songs/{id}
  shownVersion: "",    // the version whose score and audio are loaded
  selection: null,
  timings: {},         // song id -> {clicked, ready} (ms, performance.now), for measuring
  listShown: "",       // what the song list shows now
};
const player = new Player();
const roll = new Roll($("roll"), $("cursor"), $("roll-scroll"), {
  onSelect: (sel) => select(sel),
  onSeek: (seconds) => player.seek(seconds),
});
window.studio = { state, player };  // for the browser test and for curious people

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(`/api${path}`, init);
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

const enc = encodeURIComponent;
const fileUrl = (id, path, version) => `/api/songs/${enc(id)}/files/${path}?v=${enc(version)}`;

// --- new song form -------------------------------------------------------------------------

async function loadPresets() {
  state.presets = await api("GET", "/presets");
  $("preset").replaceChildren(...state.presets.map((p) => new Option(p.name, p.name, p.default, p.default)));
  $("preset").addEventListener("change", presetChanged);
  presetChanged();
}

function presetChanged() {
  const p = state.presets.find((x) => x.name === $("preset").value);
  if (!p) return;
  $("preset-description").textContent = p.description;
  $("key").value = p.key;
  $("tempo").value = p.tempo;
  $("bars").value = p.bars;
}

function number(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

async function generate(e) {
  e.preventDefault();
  const p = state.presets.find((x) => x.name === $("preset").value) || {};
  const body = { preset: $("preset").value, seed: number("seed") ?? 0, bars: number("bars") };
  if ($("key").value.trim() && $("key").value.trim() !== p.key) body.key = $("key").value.trim();
  if (number("tempo") !== null && number("tempo") !== p.tempo) body.tempo = number("tempo");
  $("form-error").textContent = "";
  $("generate").disabled = true;
  try {
    const { id } = await api("POST", "/songs", body);
    state.timings[id] = { clicked: performance.now() };
    await open(id);
  } catch (err) {
    $("form-error").textContent = err.message;
  } finally {
    $("generate").disabled = false;
  }
}

// --- song list and polling -----------------------------------------------------------------

async function poll() {
  try {
    state.songs = await api("GET", "/songs");
    renderList();
    const mine = state.songs.find((s) => s.id === state.current);
    if (mine) await refresh(mine);
  } catch (err) {
    $("status-text").textContent = `lost the studio server (${err.message})`;
  }
  setTimeout(poll, POLL_MS);
}

function renderList() {
  const shown = JSON.stringify([state.current, state.songs.map((s) => [s.id, s.status])]);
  if (shown === state.listShown) return;  // unchanged: keep the elements (and their clicks)
  state.listShown = shown;
  const items = state.songs.map((s) => {
    const li = document.createElement("li");
    li.dataset.id = s.id;
    li.className = s.id === state.current ? "current" : "";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = s.id;
    const badge = document.createElement("span");
    badge.className = `badge ${s.status}`;
    badge.textContent = s.status;
    li.append(name, badge);
    li.addEventListener("click", () => open(s.id));
    return li;
  });
  $("song-list").replaceChildren(...items);
}

async function open(id) {
  if (state.current !== id) {
    state.current = id;
    state.shownVersion = "";
    state.selection = null;
    player.clear();
    document.body.dataset.player = "empty";
    document.body.dataset.version = "";
    renderTransport();
    history.replaceState(null, "", `#song=${enc(id)}`);
  }
  const summary = await api("GET", `/songs/${enc(id)}`);
  await refresh(summary, true);
  renderList();
}

// Update the song view; fetch details, score and audio only when the song's files changed.
async function refresh(summary, force = false) {
  const prev = state.detail;
  if (force || !prev || prev.id !== summary.id || prev.version !== summary.version) {
    state.detail = summary.files ? summary : await api("GET", `/songs/${enc(summary.id)}`);
  } else {
    state.detail = { ...prev, ...summary };
  }
  if (state.detail.id !== state.current) return;
  renderSong(state.detail);
  if (state.detail.ready && state.detail.version !== state.shownVersion) {
    await showVersion(state.detail);
  }
}

async function showVersion(song) {
  const version = song.version;
  state.shownVersion = version;
  document.body.dataset.player = "loading";
  $("player-state").textContent = "loading audio...";
  const score = await api("GET", `/songs/${enc(song.id)}/score`);
  if (state.current !== song.id) return;
  roll.set(score, state.selection);
  const files = Object.fromEntries(song.files.map((f) => [f.path, f.version]));
  const urls = {};  // every stem the song has: the layers', and the master bus's noise
  for (const [path, v] of Object.entries(files)) {
    const stem = path.match(/^stems\/([^/]+)\.wav$/);
    if (stem) urls[stem[1]] = fileUrl(song.id, path, v);
  }
  const mix = files["mix.mp3"] ? "mix.mp3" : "mix.wav";
  if (files[mix]) urls.mix = fileUrl(song.id, mix, files[mix]);
  renderDownloads(song, files);
  try {
    if (!(await player.load(urls)) || state.shownVersion !== version) return;
  } catch (err) {
    $("player-state").textContent = `cannot play: ${err.message}`;
    document.body.dataset.player = "error";
    return;
  }
  const t = state.timings[song.id];
  if (t && !t.ready) t.ready = performance.now();
  document.body.dataset.player = "ready";
  document.body.dataset.version = version;
  renderExtraStems();
  $("player-state").textContent = Object.keys(urls).length ? "" : "no audio in this song";
  renderTransport();
}

// --- rendering -----------------------------------------------------------------------------

function renderSong(song) {
  $("empty").hidden = true;
  $("song-view").hidden = false;
  $("title").textContent = song.id;
  $("meta").textContent = song.ready
    ? `${song.preset} · ${song.key} · ${song.tempo} bpm · ${song.bars} bars · seed ${song.seed}`
    : "";
  const status = $("status");
  const busy = song.status === "queued" || song.status === "running";
  status.className = `status ${busy ? "busy" : song.status === "error" ? "error" : "idle"}`;
  const p = song.progress;
  $("progress").value = p && p.of ? p.done / p.of : 0;
  if (p && !p.of) $("progress").removeAttribute("value");
  let text = song.status === "error" ? `error: ${song.error}` : song.status;
  if (song.job) text = `${song.job.label}: ${p ? p.label : song.status}` +
    (song.job.seconds ? ` (${song.job.seconds.toFixed(0)} s)` : "");
  $("status-text").textContent = text;
  const n = song.history ? song.history.length : 0;
  $("history").textContent = n ? `${n} change${n > 1 ? "s" : ""}` : "";
  $("undo").disabled = busy || !n;
  $("regenerate").disabled = busy || !song.ready || !state.selection;
  renderLanes();
}

// The lane heads are made once and only restyled: a poll must never replace an element
// between a press and its release (the click would be lost).
function makeLanes() {
  const lanes = LAYERS.map((layer) => {
    const div = document.createElement("div");
    div.className = "lane";
    div.dataset.layer = layer;
    const name = document.createElement("span");
    name.className = "lane-name";
    name.textContent = layer;
    const buttons = document.createElement("span");
    for (const [action, label, set] of [["mute", "M", player.muted], ["solo", "S", player.soloed]]) {
      const b = document.createElement("button");
      b.dataset.action = action;
      b.textContent = label;
      b.title = `${action} ${layer}`;
      b.addEventListener("click", (e) => {
        e.stopPropagation();
        player.toggle(set, layer);
        renderLanes();
      });
      buttons.append(b);
    }
    div.append(name, buttons);
    div.addEventListener("click", () => select({ layer, bars: null }));
    return div;
  });
  $("lanes").replaceChildren(...lanes);
}

function renderLanes() {
  for (const div of $("lanes").children) {
    const layer = div.dataset.layer;
    div.classList.toggle("selected", state.selection?.layer === layer);
    for (const b of div.querySelectorAll("button")) {
      const set = b.dataset.action === "mute" ? player.muted : player.soloed;
      b.classList.toggle("on", set.has(layer));
    }
  }
}

// Stems that are no lane of the roll (the master bus's crackle and hiss): a mute button each.
function renderExtraStems() {
  const extra = player.stems.filter((name) => !LAYERS.includes(name));
  $("extra-stems").replaceChildren(...extra.map((name) => {
    const b = document.createElement("button");
    b.dataset.action = "mute";
    b.dataset.stem = name;
    b.textContent = `${name} ${player.muted.has(name) ? "off" : "on"}`;
    b.title = `the ${name} stem (the master bus's noise) in the stems player`;
    b.addEventListener("click", () => { player.toggle(player.muted, name); renderExtraStems(); });
    return b;
  }));
}

function select(sel) {
  state.selection = sel;
  const where = sel.bars ? `bars ${sel.bars[0]}-${sel.bars[1]}` : "the whole song";
  $("selection").innerHTML = `Regenerate <b>${sel.layer}</b>, ${where}; the other layers stay as they are.`;
  roll.selection = sel;
  roll.draw();
  if (state.detail) renderSong(state.detail);
}

function renderDownloads(song, files) {
  const links = [["mix.wav", "Mix WAV"], ["mix.mp3", "Mix MP3"], ["mix.flac", "Mix FLAC"],
    ...Object.keys(files).filter((p) => /^stems\/[^/]+\.wav$/.test(p))
      .map((p) => [p, `${p.slice(6, -4)} stem`]), ["score.mid", "MIDI"]];
  const anchors = links.filter(([path]) => files[path]).map(([path, label]) => {
    const a = document.createElement("a");
    a.href = `${fileUrl(song.id, path, files[path])}&download=true`;
    a.textContent = label;
    a.setAttribute("download", "");
    return a;
  });
  const zip = document.createElement("a");
  zip.href = `/api/songs/${enc(song.id)}/stems.zip`;
  zip.textContent = "Stems + MIDI (zip)";
  zip.className = "zip";
  zip.id = "zip";
  zip.setAttribute("download", "");
  $("download-links").replaceChildren(...anchors, zip);
}

function renderTransport() {
  $("play").disabled = $("stop").disabled = !player.ready;
  $("play").innerHTML = player.playing ? "&#10074;&#10074; Pause" : "&#9654; Play";
  const fmt = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
  $("time").textContent = `${fmt(player.position())} / ${fmt(player.duration)}`;
  document.body.dataset.playing = player.playing ? "yes" : "no";
}

function frame() {
  if (player.ready) {
    roll.drawCursor(player.position(), player.playing);
    renderTransport();
  }
  requestAnimationFrame(frame);
}

// --- editing -------------------------------------------------------------------------------

async function regenerate() {
  const sel = state.selection;
  if (!sel || !state.current) return;
  const body = { layer: sel.layer };
  if (sel.bars) body.bars = `${sel.bars[0]}-${sel.bars[1]}`;
  if (number("regen-seed") !== null) body.seed = number("regen-seed");
  await edit(`/songs/${enc(state.current)}/regenerate`, body);
}

async function edit(path, body) {
  $("edit-error").textContent = "";
  $("regenerate").disabled = $("undo").disabled = true;
  try {
    await api("POST", path, body);
    await open(state.current);
  } catch (err) {
    $("edit-error").textContent = err.message;
    if (state.detail) renderSong(state.detail);
  }
}

function wire() {
  $("new-song").addEventListener("submit", generate);
  $("dice").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 100000); });
  $("play").addEventListener("click", () => { player.playing ? player.pause() : player.play(); });
  $("stop").addEventListener("click", () => player.stop());
  for (const radio of document.querySelectorAll("input[name=source]")) {
    radio.addEventListener("change", () => player.setMode(radio.value));
  }
  $("regenerate").addEventListener("click", regenerate);
  $("undo").addEventListener("click", () => edit(`/songs/${enc(state.current)}/undo`));
  document.addEventListener("keydown", (e) => {
    if (e.code === "Space" && !["INPUT", "SELECT", "BUTTON"].includes(e.target.tagName)) {
      e.preventDefault();
      $("play").click();
    }
  });
}

async function main() {
  wire();
  makeLanes();
  await loadPresets();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("song");
  if (wanted) await open(wanted).catch(() => history.replaceState(null, "", "#"));
  poll();
  requestAnimationFrame(frame);
}

main();
