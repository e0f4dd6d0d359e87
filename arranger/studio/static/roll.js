// The piano roll: four lanes (chords with their names, melody, bass, drums) on the song's 16th
// grid, bar numbers on a ruler, the selection, and the play position on a canvas of its own.

const DRAG_PX = 4;  // a press that moves less than this is a click: the whole layer
const MIN_BAR_PX = 64;  // narrower, chord names no longer fit; the roll scrolls instead

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export class Roll {
  constructor(canvas, cursor, scroller, { onSelect, onSeek }) {
    this.canvas = canvas;
    this.cursor = cursor;
    this.scroller = scroller;
    this.onSelect = onSelect;
    this.onSeek = onSeek;
    this.score = null;
    this.selection = null;  // {layer, bars: [first, last] (1-based) or null}
    this.drag = null;
    canvas.addEventListener("mousedown", (e) => this.press(e));
    canvas.addEventListener("mousemove", (e) => this.hover(e));
    window.addEventListener("mousemove", (e) => this.move(e));
    window.addEventListener("mouseup", (e) => this.release(e));
    window.addEventListener("resize", () => this.draw());
  }

  lanes() {
    let y = parseFloat(cssVar("--ruler"));
    return this.score.layers.map((layer) => {
      const h = parseFloat(cssVar(`--lane-${layer}`));
      const lane = { layer, y, h };
      y += h;
      return lane;
    });
  }

  geometry() {
    const s = this.score;
    // Fit the song to the width, but not narrower than chord names can be read at.
    const barPx = Math.max(MIN_BAR_PX, Math.floor((this.scroller.clientWidth - 2) / s.bars));
    return { barPx, stepPx: barPx / s.steps_per_bar, width: barPx * s.bars };
  }

  set(score, selection) {
    this.score = score;
    this.selection = selection;
    this.draw();
  }

  draw() {
    if (!this.score) return;
    const g = this.geometry();
    const lanes = this.lanes();
    const height = lanes.at(-1).y + lanes.at(-1).h;
    const ctx = this.prepare(this.canvas, g.width, height);
    this.prepare(this.cursor, g.width, height);
    this.grid(ctx, g, lanes, height);
    for (const lane of lanes) this[`draw_${lane.layer}`](ctx, g, lane);
    this.drawSelection(ctx, g, lanes);
  }

  prepare(canvas, width, height) {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return ctx;
  }

  grid(ctx, g, lanes, height) {
    const s = this.score;
    const every = g.barPx < 34 ? 2 : 1;  // bar numbers that fit
    ctx.font = "11px system-ui, 'DejaVu Sans', sans-serif";
    ctx.textBaseline = "middle";
    for (let bar = 0; bar < s.bars; bar++) {
      const x = bar * g.barPx;
      ctx.fillStyle = bar % 2 ? "#1b1920" : "#17151b";
      ctx.fillRect(x, 0, g.barPx, height);
      ctx.fillStyle = "#3d3846";
      ctx.fillRect(x, 0, 1, height);
      for (let beat = 1; beat < 4; beat++) {
        ctx.fillStyle = "#24212a";
        ctx.fillRect(x + (beat * g.barPx) / 4, lanes[0].y, 1, height);
      }
      if (bar % every === 0) {
        ctx.fillStyle = cssVar("--muted");
        ctx.fillText(String(bar + 1), x + 4, lanes[0].y / 2);
      }
    }
    ctx.fillStyle = "#3d3846";
    for (const lane of lanes) ctx.fillRect(0, lane.y, g.width, 1);
  }

  draw_chords(ctx, g, lane) {
    const color = cssVar("--chords");
    const chords = this.score.chords;
    ctx.font = "600 11px system-ui, 'DejaVu Sans', sans-serif";
    chords.forEach(([start, end, name, pitches], i) => {
      const x = start * g.stepPx + 1, w = (end - start) * g.stepPx - 2;
      ctx.fillStyle = `${color}33`;
      ctx.fillRect(x, lane.y + 3, w, lane.h - 6);
      ctx.fillStyle = color;
      for (const p of pitches) {  // the voicing, as short strokes in the lower half
        const y = lane.y + lane.h - 6 - ((p - 48) / 36) * (lane.h / 2);
        ctx.fillRect(x + 2, y, w - 4, 2);
      }
      // Names alternate between two rows, so each may run on over the next chord; one that
      // still does not fit is left out rather than cut ("E" for "Eb" would be wrong): the
      // pointer over the chord shows it (hover()).
      const room = ((chords[i + 2]?.[0] ?? this.score.bars * this.score.steps_per_bar) - start)
        * g.stepPx;
      if (ctx.measureText(name).width + 8 <= room) {
        ctx.fillText(name, x + 3, lane.y + (i % 2 ? 26 : 12));
      }
    });
  }

  // The chord under the pointer as the canvas's tooltip.
  hover(e) {
    if (!this.score || this.drag) return;
    const p = this.at(e);
    const step = p.x / this.geometry().stepPx;
    const chord = p.lane?.layer === "chords"
      && this.score.chords.find(([start, end]) => step >= start && step < end);
    this.canvas.title = chord ? chord[2] : "";
  }

  drawLine(ctx, g, lane, notes, color) {
    if (!notes.length) return;
    const pitches = notes.map((n) => n[2]);
    const lo = Math.min(...pitches) - 1, hi = Math.max(...pitches) + 1;
    const row = (lane.h - 6) / (hi - lo + 1);
    ctx.fillStyle = color;
    for (const [start, end, pitch] of notes) {
      const y = lane.y + 3 + (hi - pitch) * row;
      ctx.fillRect(start * g.stepPx + 0.5, y, Math.max(2, (end - start) * g.stepPx - 1), Math.max(2, row - 1));
    }
  }

  draw_melody(ctx, g, lane) { this.drawLine(ctx, g, lane, this.score.melody, cssVar("--melody")); }

  draw_bass(ctx, g, lane) { this.drawLine(ctx, g, lane, this.score.bass, cssVar("--bass")); }

  draw_drums(ctx, g, lane) {
    const n = this.score.drum_classes.length;
    const row = (lane.h - 6) / n;
    ctx.fillStyle = cssVar("--drums");
    for (const [step, cls] of this.score.drums) {
      const size = Math.max(2, Math.min(row - 1, g.stepPx - 1));
      ctx.fillRect(step * g.stepPx + 0.5, lane.y + 3 + (n - 1 - cls) * row, size, size);
    }
  }

  drawSelection(ctx, g, lanes) {
    const sel = this.drag ? this.dragSelection() : this.selection;
    const lane = sel && lanes.find((l) => l.layer === sel.layer);
    if (!lane) return;
    const [a, b] = sel.bars || [1, this.score.bars];
    const x = (a - 1) * g.barPx, w = (b - a + 1) * g.barPx;
    ctx.fillStyle = sel.bars ? "rgba(240, 184, 110, 0.18)" : "rgba(240, 184, 110, 0.07)";
    ctx.fillRect(x, lane.y, w, lane.h);
    ctx.strokeStyle = cssVar("--accent");
    ctx.lineWidth = 2;
    ctx.strokeRect(x + 1, lane.y + 1, w - 2, lane.h - 2);
  }

  // The play position; ``follow``: scroll it into view (while playing, not while paused,
  // when the user may be scrolling about).
  drawCursor(seconds, follow) {
    if (!this.score) return;
    const g = this.geometry();
    const ctx = this.cursor.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, this.cursor.width, this.cursor.height);
    const x = (seconds / this.score.seconds_per_step) * g.stepPx;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(Math.min(x, g.width - 2), 0, 2, this.cursor.height);
    const left = this.scroller.scrollLeft, view = this.scroller.clientWidth;
    if (follow && (x > left + view - 40 || x < left)) this.scroller.scrollLeft = Math.max(0, x - 40);
  }

  at(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    const g = this.geometry();
    const bar = Math.min(this.score.bars, Math.max(1, Math.floor(x / g.barPx) + 1));
    const lane = this.lanes().find((l) => y >= l.y && y < l.y + l.h);
    return { x, y, bar, lane, seconds: (x / g.stepPx) * this.score.seconds_per_step };
  }

  press(e) {
    if (!this.score || e.button !== 0) return;
    const p = this.at(e);
    if (!p.lane) {  // the ruler: jump there
      this.onSeek(p.seconds);
      return;
    }
    this.drag = { layer: p.lane.layer, x0: p.x, from: p.bar, to: p.bar };
    e.preventDefault();
  }

  move(e) {
    if (!this.drag) return;
    const p = this.at(e);
    this.drag.to = p.bar;
    this.drag.moved = this.drag.moved || Math.abs(p.x - this.drag.x0) >= DRAG_PX;
    this.draw();
  }

  release(e) {
    if (!this.drag) return;
    this.move(e);
    const sel = this.dragSelection();
    this.drag = null;
    this.selection = sel;
    this.draw();
    this.onSelect(sel);
  }

  dragSelection() {
    const d = this.drag;
    if (!d.moved) return { layer: d.layer, bars: null };
    return { layer: d.layer, bars: [Math.min(d.from, d.to), Math.max(d.from, d.to)] };
  }
}
