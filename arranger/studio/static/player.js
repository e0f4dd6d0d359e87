// The player: every stem on one Web Audio clock, so they stay in sync sample for sample;
// mute/solo are gain nodes per stem. "Mix" plays the mastered mix instead of the stems.

const MIX = "mix";

export class Player {
  constructor() {
    this.ctx = null;
    this.gains = {};         // stem name -> GainNode, made when first needed
    this.buffers = {};       // stem name ("chords", ..., "fx") or "mix" -> AudioBuffer
    this.cache = new Map();  // url (with version) -> Promise<AudioBuffer>
    this.sources = [];
    this.playing = false;
    this.offset = 0;         // seconds into the song when paused
    this.startedAt = 0;      // ctx time at which the song's 0 s played
    this.mode = "stems";
    this.muted = new Set();
    this.soloed = new Set();
    this.duration = 0;
    this.loadToken = 0;
  }

  context() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ latencyHint: "playback" });
      this.master = this.ctx.createGain();
      this.master.connect(this.ctx.destination);
    }
    return this.ctx;
  }

  gain(name) {
    if (!this.gains[name]) {
      this.gains[name] = this.ctx.createGain();
      this.gains[name].connect(this.master);
    }
    return this.gains[name];
  }

  get stems() { return Object.keys(this.buffers).filter((n) => n !== MIX); }

  // urls: {chords: url, ..., fx: url, mix: url}; a url already decoded is not fetched again.
  async load(urls) {
    const token = ++this.loadToken;
    const ctx = this.context();
    const names = Object.keys(urls);
    const decoded = await Promise.all(names.map((name) => this.decode(ctx, urls[name])));
    if (token !== this.loadToken) return false;  // a newer song or version came meanwhile
    const wasPlaying = this.playing;
    const at = this.position();
    this.stopSources();
    this.buffers = Object.fromEntries(names.map((n, i) => [n, decoded[i]]));
    this.duration = Math.max(...decoded.map((b) => b.duration));
    this.offset = Math.min(at, this.duration);
    for (const url of this.cache.keys()) {
      if (!Object.values(urls).includes(url)) this.cache.delete(url);
    }
    if (wasPlaying) this.play();
    return true;
  }

  decode(ctx, url) {
    if (!this.cache.has(url)) {
      const p = fetch(url).then((r) => {
        if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
        return r.arrayBuffer();
      }).then((data) => ctx.decodeAudioData(data));
      p.catch(() => this.cache.delete(url));
      this.cache.set(url, p);
    }
    return this.cache.get(url);
  }

  clear() {
    this.loadToken++;
    this.stop();
    this.buffers = {};
    this.duration = 0;
  }

  get ready() { return this.duration > 0; }

  play() {
    if (!this.ready) return;
    const ctx = this.context();
    ctx.resume();
    if (this.offset >= this.duration) this.offset = 0;
    const start = ctx.currentTime + 0.05;  // a little ahead, so all sources start together
    const names = this.mode === MIX && this.buffers[MIX] ? [MIX] : this.stems;
    for (const name of names) {
      const buffer = this.buffers[name];
      const src = ctx.createBufferSource();
      src.buffer = buffer;
      src.connect(name === MIX ? this.master : this.gain(name));
      src.start(start, Math.min(this.offset, buffer.duration));
      this.sources.push(src);
    }
    this.startedAt = start - this.offset;
    this.playing = true;
    this.applyGains();
  }

  pause() {
    if (!this.playing) return;
    this.offset = this.position();
    this.stopSources();
  }

  stop() {
    this.stopSources();
    this.offset = 0;
  }

  stopSources() {
    for (const src of this.sources) {
      try { src.stop(); } catch { /* never started */ }
      src.disconnect();
    }
    this.sources = [];
    this.playing = false;
  }

  // Seconds into the song; at the end it stops and rewinds.
  position() {
    if (!this.playing) return this.offset;
    const t = this.ctx.currentTime - this.startedAt;
    if (t >= this.duration) {
      this.stop();
      return 0;
    }
    return Math.max(0, t);
  }

  seek(seconds) {
    const wasPlaying = this.playing;
    this.stopSources();
    this.offset = Math.max(0, Math.min(seconds, this.duration));
    if (wasPlaying) this.play();
  }

  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.seek(this.position());
  }

  toggle(set, name) {
    if (set.has(name)) set.delete(name); else set.add(name);
    this.applyGains();
  }

  audible(name) {
    return this.soloed.size ? this.soloed.has(name) : !this.muted.has(name);
  }

  applyGains() {
    if (!this.ctx) return;
    for (const name of this.stems) {
      this.gain(name).gain.setTargetAtTime(this.audible(name) ? 1 : 0, this.ctx.currentTime, 0.01);
    }
  }
}
