// <voxcast-orbit src="site/brain/orbit.json" width="480" height="360">: an interactive,
// serverless view of an orbit written by `voxcast orbit DATA -o DIR` (docs/orbit.md).
// `manifest="ID"` reads orbit.json from the <script type="application/json" id="ID"> of the
// page instead of fetching `src` (the sheets are still found beside `src`): so a page opened
// from disk (file://), where fetch() is refused, works too.
// Columns of the grid are yaw angles (left to right), rows are pitch angles (top to bottom).
// The pointer position over the element (mouse hover, or a finger drag) picks the tile, eased
// toward per animation frame; arrow keys step it; on phones the tilt of the device can drive
// it too (gamma -> column, beta -> row; on iOS after a tap grants permission; the `no-gyro`
// attribute turns that off). No dependencies: load it with
// <script type="module" src="voxcast-orbit.js"></script>.
//
// For scripts and tests: `ready` (all sheets decoded), `column` / `row` (the tile on
// screen), `yaw` / `pitch` (its angles in degrees), `columns` / `rows`, `error` (the message, or null), `show(column, row)`; events
// `voxcast-orbit-ready` and `voxcast-orbit-error` (bubbling, composed, detail = {src, ...}).

const EASE_MS = 70;         // time constant of the easing toward the pointer's tile
const GYRO_RANGE_DEG = 25;  // device tilt from the starting pose that sweeps half the grid

const STYLE = `
:host { display: inline-block; position: relative; outline: none; touch-action: none;
        user-select: none; -webkit-user-select: none; line-height: 0; vertical-align: top; }
:host(:focus-visible) { outline: 2px solid #4a90d9; outline-offset: 2px; }
:host([hidden]) { display: none; }
canvas { display: block; }
.overlay { position: absolute; inset: 0; display: flex; align-items: center;
           justify-content: center; line-height: normal; pointer-events: none; }
.overlay[hidden] { display: none; }
.spinner { width: 32px; height: 32px; border-radius: 50%; box-sizing: border-box;
           border: 3px solid rgba(128, 128, 128, 0.3); border-top-color: #4a90d9;
           animation: voxcast-orbit-spin 0.9s linear infinite; }
@keyframes voxcast-orbit-spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .spinner { animation-duration: 3s; } }
.error { box-sizing: border-box; max-width: 100%; padding: 8px 12px; color: #b00020;
         background: rgba(255, 255, 255, 0.9); font: 13px/1.4 system-ui, sans-serif;
         text-align: center; overflow-wrap: anywhere; }
`;

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const posInt = (v) => Number.isInteger(v) && v > 0;

// Parses orbit.json into {columns, rows, tw, th, yaw, pitch, dataset, sheets}; throws an
// Error naming the offending field.
function parseManifest(m) {
  if (!m || typeof m !== 'object') throw new Error('orbit.json is not a JSON object');
  if (m.version !== 1) throw new Error(`unsupported orbit.json version ${JSON.stringify(m.version)}`);
  const g = m.grid || {}, t = m.tile || {};
  if (!posInt(g.columns) || !posInt(g.rows)) throw new Error('orbit.json: grid.columns/rows must be positive integers');
  if (!posInt(t.width) || !posInt(t.height)) throw new Error('orbit.json: tile.width/height must be positive integers');
  if (!Array.isArray(m.sheets) || !m.sheets.length) throw new Error('orbit.json: sheets must be a non-empty array');
  m.sheets.forEach((s, i) => {
    const ok = s && typeof s.file === 'string' && s.file && Number.isInteger(s.column) &&
               Number.isInteger(s.row) && s.column >= 0 && s.row >= 0 && posInt(s.columns) && posInt(s.rows);
    if (!ok) throw new Error(`orbit.json: sheets[${i}] needs file, column, row, columns, rows`);
  });
  const num = (a, n) => (Array.isArray(a) && a.length === n ? a.map(Number) : null);
  return {columns: g.columns, rows: g.rows, tw: t.width, th: t.height, sheets: m.sheets,
          yaw: num(m.yaw, g.columns), pitch: num(m.pitch, g.rows),
          dataset: typeof m.dataset === 'string' ? m.dataset : ''};
}

// Fetches and decodes one sheet image.
async function loadSheet(url) {
  const img = new Image();
  img.decoding = 'async';
  img.src = url;
  try {
    await img.decode();
  } catch (e) {
    throw new Error(`could not load sheet ${url}`);
  }
  return img;
}

export class VoxcastOrbit extends HTMLElement {
  static get observedAttributes() { return ['src', 'manifest', 'width', 'height']; }

  constructor() {
    super();
    const root = this.attachShadow({mode: 'open'});
    root.innerHTML = `<style>${STYLE}</style><canvas part="canvas"></canvas>` +
      `<div class="overlay" part="spinner"><div class="spinner" role="progressbar" aria-label="Loading"></div></div>` +
      `<div class="overlay" part="error" hidden><div class="error" role="alert"></div></div>`;
    this._canvas = root.querySelector('canvas');
    this._spinner = root.querySelector('[part=spinner]');
    this._errorBox = root.querySelector('[part=error]');
    this._m = null;          // the parsed manifest of the loaded orbit
    this._tiles = null;      // per tile (row-major): {img, sx, sy}
    this._ready = false;
    this._error = null;
    this._gen = 0;           // load generation; a newer load discards an older one's result
    this._loadedSrc = null;
    this._cur = {c: 0, r: 0};     // eased position (fractional tile indices)
    this._target = {c: 0, r: 0};  // where the pointer / keys / tilt want to be
    this._shown = {c: -1, r: -1}; // the tile on screen
    this._raf = 0;
    this._last = 0;
    this._drag = null;       // pointerId of an active touch/pen drag
    this._gyro = {on: false, asked: false, base: null};
    this._onOrientation = this._onOrientation.bind(this);
    this._tick = this._tick.bind(this);
    this.addEventListener('pointermove', (e) => this._onPointer(e));
    this.addEventListener('pointerdown', (e) => this._onPointerDown(e));
    this.addEventListener('pointerup', (e) => this._onPointerUp(e));
    this.addEventListener('pointercancel', (e) => this._onPointerUp(e));
    this.addEventListener('keydown', (e) => this._onKey(e));
  }

  get ready() { return this._ready; }
  get error() { return this._error; }
  get column() { return this._ready ? this._shown.c : null; }
  get row() { return this._ready ? this._shown.r : null; }
  get yaw() { return this._ready && this._m.yaw ? this._m.yaw[this._shown.c] : null; }
  get pitch() { return this._ready && this._m.pitch ? this._m.pitch[this._shown.r] : null; }
  get columns() { return this._m ? this._m.columns : null; }
  get rows() { return this._m ? this._m.rows : null; }
  get src() { return this.getAttribute('src'); }
  set src(v) { this.setAttribute('src', v); }

  // Jumps to a tile (clamped) without easing.
  show(column, row) {
    if (!this._m) return;
    const c = clamp(Math.round(column), 0, this._m.columns - 1);
    const r = clamp(Math.round(row), 0, this._m.rows - 1);
    this._target = {c, r};
    this._cur = {c, r};
    this._render();
  }

  connectedCallback() {
    if (!this.hasAttribute('tabindex')) this.tabIndex = 0;
    if (!this.hasAttribute('role')) this.setAttribute('role', 'img');
    if (!this.hasAttribute('aria-roledescription')) this.setAttribute('aria-roledescription', 'interactive 3D view');
    this._ownLabel = !this.hasAttribute('aria-label') || this._ownLabel;
    if (this._ownLabel) this._setLabel('Loading 3D view');
    this._resize();
    const src = this.getAttribute('src');
    if (src && src !== this._loadedSrc) this._load();
    else if (this._ready) { this._startGyro(); this._render(); }
  }

  disconnectedCallback() {
    cancelAnimationFrame(this._raf);
    this._raf = 0;
    this._stopGyro();
  }

  attributeChangedCallback(name, oldV, newV) {
    if (oldV === newV) return;
    if (name === 'src' || name === 'manifest') { if (this.isConnected) this._load(); }
    else { this._resize(); this._render(); }
  }

  // The element named by the `manifest` attribute (the id of a <script type="application/json">
  // holding orbit.json, as index.html has it), or null.
  _inlineManifest() {
    const id = this.getAttribute('manifest');
    return id ? this.ownerDocument.getElementById(id) : null;
  }

  _setLabel(text) { if (this._ownLabel) this.setAttribute('aria-label', text); }

  // CSS size from the attributes (one given: the other keeps the tile's aspect ratio;
  // none: the tile size); backing store in device pixels.
  _resize() {
    const tw = this._m ? this._m.tw : 256, th = this._m ? this._m.th : 256;
    const a = (n) => { const v = parseFloat(this.getAttribute(n)); return v > 0 ? v : 0; };
    let w = a('width'), h = a('height');
    if (!w && !h) { w = tw; h = th; }
    else if (!w) w = h * tw / th;
    else if (!h) h = w * th / tw;
    const dpr = window.devicePixelRatio || 1;
    this._dpr = dpr;
    this._canvas.style.width = `${w}px`;
    this._canvas.style.height = `${h}px`;
    const bw = Math.max(1, Math.round(w * dpr)), bh = Math.max(1, Math.round(h * dpr));
    if (this._canvas.width !== bw || this._canvas.height !== bh) {
      this._canvas.width = bw;
      this._canvas.height = bh;
      this._shown = {c: -1, r: -1};  // resizing clears the canvas: draw again
    }
  }

  _setState(ready, error) {
    this._ready = ready;
    this._error = error;
    this._spinner.hidden = ready || !!error;
    this._errorBox.hidden = !error;
    this._errorBox.firstChild.textContent = error ? `Could not load the orbit: ${error}` : '';
  }

  async _load() {
    const gen = ++this._gen;
    const src = this.getAttribute('src');
    this._loadedSrc = src;
    cancelAnimationFrame(this._raf);
    this._raf = 0;
    this._stopGyro();
    this._m = null;
    this._tiles = null;
    this._shown = {c: -1, r: -1};
    this._setState(false, null);
    this._canvas.getContext('2d').clearRect(0, 0, this._canvas.width, this._canvas.height);
    try {
      if (!src) throw new Error('no src attribute');
      const url = new URL(src, document.baseURI);
      // A voxcast server with a token wants it on every request: carry it from the src URL
      // or the page's own URL to orbit.json and the sheets (harmless on static servers).
      const token = url.searchParams.get('token') ||
          new URL(document.baseURI).searchParams.get('token');
      const web = (u) => u.protocol === 'http:' || u.protocol === 'https:';  // not blob:
      if (token && web(url)) url.searchParams.set('token', token);
      const withToken = (href) => {
        const u = new URL(href);
        if (token && web(u)) u.searchParams.set('token', token);
        return u.href;
      };
      let json, base = url;
      const inline = this._inlineManifest();
      if (inline) {
        try {
          json = JSON.parse(inline.textContent);
        } catch (e) {
          throw new Error(`the manifest in #${inline.id} is not valid JSON`);
        }
      } else {
        let res;
        try {
          res = await fetch(url);
        } catch (e) {
          // Browsers refuse fetch() to pages opened from disk; say so, and what works.
          if (location.protocol === 'file:' || url.protocol === 'file:') {
            throw new Error(`${url.href}: a page opened from disk (file://) may not read ` +
                            'orbit.json. Open the index.html that voxcast orbit wrote (it ' +
                            'carries orbit.json inside), or serve the folder over HTTP ' +
                            '(python3 -m http.server)');
          }
          throw new Error(`${url.href}: ${e.message || 'network error'}`);
        }
        if (!res.ok) throw new Error(`${url.href}: HTTP ${res.status} ${res.statusText}`.trim());
        try {
          json = await res.json();
        } catch (e) {
          throw new Error(`${url.href} is not valid JSON`);
        }
        if (res.url) base = new URL(res.url);
      }
      const m = parseManifest(json);
      const imgs = await Promise.all(m.sheets.map((s) => loadSheet(withToken(new URL(s.file, base).href))));
      if (gen !== this._gen) return;
      this._tiles = this._tileTable(m, imgs);
      this._m = m;
    } catch (e) {
      if (gen !== this._gen) return;
      const message = (e && e.message) || String(e);
      this._setState(false, message);
      this._setLabel(`3D view failed to load: ${message}`);
      this.dispatchEvent(new CustomEvent('voxcast-orbit-error', {bubbles: true, composed: true, detail: {src, message}}));
      return;
    }
    const m = this._m;
    const mid = {c: Math.floor(m.columns / 2), r: Math.floor(m.rows / 2)};
    this._cur = {...mid};
    this._target = {...mid};
    this._resize();
    this._setState(true, null);
    this._render();
    const what = m.dataset ? `3D view of ${m.dataset}` : '3D view';
    this._setLabel(`${what}. Move the pointer over it, drag, or use the arrow keys to turn it.`);
    this._startGyro();
    this.dispatchEvent(new CustomEvent('voxcast-orbit-ready', {bubbles: true, composed: true,
      detail: {src, columns: m.columns, rows: m.rows}}));
  }

  // Where every tile lies: the sheet that covers it and the offset inside that sheet.
  _tileTable(m, imgs) {
    const tiles = new Array(m.columns * m.rows).fill(null);
    m.sheets.forEach((s, i) => {
      const img = imgs[i];
      if (img.naturalWidth < s.columns * m.tw || img.naturalHeight < s.rows * m.th) {
        throw new Error(`sheet ${s.file} is ${img.naturalWidth}x${img.naturalHeight}, ` +
                        `smaller than ${s.columns}x${s.rows} tiles of ${m.tw}x${m.th}`);
      }
      for (let r = s.row; r < Math.min(m.rows, s.row + s.rows); ++r) {
        for (let c = s.column; c < Math.min(m.columns, s.column + s.columns); ++c) {
          tiles[r * m.columns + c] = {img, sx: (c - s.column) * m.tw, sy: (r - s.row) * m.th};
        }
      }
    });
    const gap = tiles.indexOf(null);
    if (gap >= 0) throw new Error(`tile (column ${gap % m.columns}, row ${Math.floor(gap / m.columns)}) is in no sheet`);
    return tiles;
  }

  // Draws the tile nearest the eased position, if it is not already on screen.
  _render() {
    if (!this._ready || !this._m) return;
    if ((window.devicePixelRatio || 1) !== this._dpr) this._resize();
    const m = this._m;
    const c = clamp(Math.round(this._cur.c), 0, m.columns - 1);
    const r = clamp(Math.round(this._cur.r), 0, m.rows - 1);
    if (c === this._shown.c && r === this._shown.r) return;
    const t = this._tiles[r * m.columns + c];
    const cv = this._canvas, ctx = cv.getContext('2d');
    const k = Math.min(cv.width / m.tw, cv.height / m.th);
    const dw = m.tw * k, dh = m.th * k;
    ctx.clearRect(0, 0, cv.width, cv.height);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(t.img, t.sx, t.sy, m.tw, m.th, (cv.width - dw) / 2, (cv.height - dh) / 2, dw, dh);
    this._shown = {c, r};
  }

  // Sets the target (fractional tile indices) and eases toward it.
  _aim(c, r) {
    if (!this._m) return;
    this._target = {c: clamp(c, 0, this._m.columns - 1), r: clamp(r, 0, this._m.rows - 1)};
    if (!this._raf) {
      this._last = performance.now();
      this._raf = requestAnimationFrame(this._tick);
    }
  }

  _tick(now) {
    this._raf = 0;
    if (!this._m) return;
    const a = 1 - Math.exp(-Math.max(0, now - this._last) / EASE_MS);
    this._last = now;
    const cur = this._cur, tg = this._target;
    cur.c += (tg.c - cur.c) * a;
    cur.r += (tg.r - cur.r) * a;
    const done = Math.abs(tg.c - cur.c) < 0.5 && Math.abs(tg.r - cur.r) < 0.5;
    if (done) this._cur = {...tg};
    this._render();
    if (!done) this._raf = requestAnimationFrame(this._tick);
  }

  // Fraction of the element's box -> fractional tile indices (tile centres at (i+0.5)/n).
  _aimAt(fx, fy) {
    this._aim(fx * this._m.columns - 0.5, fy * this._m.rows - 0.5);
  }

  _onPointer(e) {
    if (!this._ready) return;
    if (e.pointerType !== 'mouse' && this._drag !== e.pointerId) return;  // touch: drags only
    const b = this._canvas.getBoundingClientRect();
    if (!b.width || !b.height) return;
    this._aimAt(clamp((e.clientX - b.left) / b.width, 0, 1), clamp((e.clientY - b.top) / b.height, 0, 1));
  }

  _onPointerDown(e) {
    if (!this._ready || e.pointerType === 'mouse') return;
    this._drag = e.pointerId;
    try { this.setPointerCapture(e.pointerId); } catch (_) { /* pointer already gone */ }
    this._onPointer(e);
  }

  _onPointerUp(e) {
    if (this._drag !== e.pointerId) return;
    this._drag = null;
    this._gyro.base = null;  // the tilt continues from the view the drag left
    if (e.type === 'pointerup') this._askGyro();
  }

  _onKey(e) {
    if (!this._ready || e.altKey || e.ctrlKey || e.metaKey) return;
    const step = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]}[e.key];
    if (step) this.show(this._shown.c + step[0], this._shown.r + step[1]);
    else if (e.key === 'Home') this.show(Math.floor(this._m.columns / 2), Math.floor(this._m.rows / 2));
    else return;
    this._gyro.base = null;
    e.preventDefault();
  }

  // Device orientation: only on touch-first devices, unless the page says no-gyro. iOS
  // asks permission, which needs a user gesture: the first tap asks.
  _gyroWanted() {
    return !this.hasAttribute('no-gyro') && typeof DeviceOrientationEvent !== 'undefined' &&
           window.matchMedia && window.matchMedia('(pointer: coarse)').matches;
  }

  _startGyro() {
    if (this._gyro.on || !this.isConnected || !this._gyroWanted()) return;
    if (typeof DeviceOrientationEvent.requestPermission === 'function') return;  // iOS: after a tap
    this._gyro.on = true;
    window.addEventListener('deviceorientation', this._onOrientation);
  }

  _askGyro() {
    const g = this._gyro;
    if (g.on || g.asked || !this._gyroWanted() || typeof DeviceOrientationEvent.requestPermission !== 'function') return;
    g.asked = true;
    DeviceOrientationEvent.requestPermission().then((state) => {
      if (state === 'granted' && this.isConnected && this._ready && !g.on) {
        g.on = true;
        window.addEventListener('deviceorientation', this._onOrientation);
      }
    }, () => { /* refused or unavailable: pointer and keys still work */ });
  }

  _stopGyro() {
    if (!this._gyro.on) return;
    this._gyro.on = false;
    this._gyro.base = null;
    window.removeEventListener('deviceorientation', this._onOrientation);
  }

  _onOrientation(e) {
    if (!this._ready || this._drag !== null || e.beta == null || e.gamma == null) return;
    // Tilt in screen axes: x = tilt to the right, y = tilt toward the user (top edge down).
    const angle = (screen.orientation && screen.orientation.angle) || window.orientation || 0;
    let x = e.gamma, y = e.beta;
    if (angle === 90) { x = e.beta; y = -e.gamma; }
    else if (angle === -90 || angle === 270) { x = -e.beta; y = e.gamma; }
    const m = this._m, g = this._gyro, span = 2 * GYRO_RANGE_DEG;
    if (!g.base) {  // the current view stays put; tilting moves on from it
      g.base = {x: x - ((this._target.c + 0.5) / m.columns - 0.5) * span,
                y: y - ((this._target.r + 0.5) / m.rows - 0.5) * span};
    }
    this._aimAt(clamp(0.5 + (x - g.base.x) / span, 0, 1), clamp(0.5 + (y - g.base.y) / span, 0, 1));
  }
}

if (!customElements.get('voxcast-orbit')) customElements.define('voxcast-orbit', VoxcastOrbit);
