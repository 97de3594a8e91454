// The layer panel (one card per layer: visibility, colormap, contrast limits, gamma,
// opacity, blending, 3D rendering mode) and the dims sliders (one per axis that is not
// displayed). Both are rebuilt only when the structure changes; otherwise values are
// synced from the server's scene, except in the control the user is editing.

import {channelRange} from './protocol.js';
import {drawHistogram} from './tools.js';

export const COLORMAPS = ['gray', 'viridis', 'magma', 'inferno', 'plasma', 'turbo',
                          'red', 'green', 'blue', 'cyan', 'magenta', 'yellow'];
export const RENDERINGS = ['mip', 'minip', 'attenuated_mip', 'average', 'translucent', 'iso'];
export const BLENDINGS = ['translucent', 'additive', 'opaque', 'minimum'];

const SWATCH = {gray: '#ccc', red: '#f33', green: '#3f3', blue: '#46f', cyan: '#0ff',
                magenta: '#f0f', yellow: '#ff0', viridis: 'linear-gradient(90deg,#440154,#21918c,#fde725)',
                magma: 'linear-gradient(90deg,#000004,#b73779,#fcfdbf)',
                inferno: 'linear-gradient(90deg,#000004,#bc3754,#fcffa4)',
                plasma: 'linear-gradient(90deg,#0d0887,#cc4778,#f0f921)',
                turbo: 'linear-gradient(90deg,#30123b,#1ae4b6,#fb8022,#7a0403)'};

// An element with attributes ('class', 'text', 'onEVENT' listeners, the rest as is) and
// children; the side panel's sections (jobs.js, timeline.js, processing.js) build theirs
// with it too.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

// An alert box of class `cls`, hidden while empty: box.show(message or null).
export function alertBox(cls) {
  const box = el('div', {class: cls, role: 'alert', hidden: ''});
  box.show = (msg) => {
    box.textContent = msg || '';
    box.hidden = !msg;
  };
  return box;
}

export function fmt(x) {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1000 || Number.isInteger(x)) return String(Math.round(x * 100) / 100);
  return String(Math.round(x * 1000) / 1000);
}

export function setSelect(sel, value, names) {
  if (!names.includes(value) && ![...sel.options].some((o) => o.value === value))
    sel.append(el('option', {value, text: value}));
  if (sel.value !== value && document.activeElement !== sel) sel.value = value;
}

// A labelled slider with a number box beside it, kept in sync. onInput(value, final).
export function sliderRow(label, {min, max, step}, onInput) {
  const range = el('input', {type: 'range', min, max, step});
  const num = el('input', {type: 'number', step: 'any', class: 'num'});
  range.addEventListener('input', () => {
    num.value = fmt(+range.value);
    onInput(+range.value, false);
  });
  range.addEventListener('change', () => onInput(+range.value, true));
  num.addEventListener('change', () => {
    const v = parseFloat(num.value);
    if (Number.isFinite(v)) onInput(v, true);
  });
  const row = el('div', {class: 'row'}, el('label', {text: label}), range, num);
  row.set = (v, lo, hi) => {
    if (lo !== undefined) {
      range.min = Math.min(lo, v);
      range.max = Math.max(hi, v);
    }
    if (document.activeElement !== range) range.value = v;
    if (document.activeElement !== num) num.value = fmt(v);
  };
  row.range = range;
  row.num = num;
  return row;
}

export class LayerPanel {
  // onPatch(layerIndex, fields, final): the user changed one layer. actions: auto(i) (auto-
  // contrast), duplicate(i), remove(i), move(i, delta) (reorder), each optional.
  constructor(root, onPatch, actions = {}) {
    this.root = root;
    this.onPatch = onPatch;
    this.actions = actions;
    this.cards = [];
    this.key = '';
    this.histograms = [];  // per layer index: the last `histogram` entry
  }

  // A histogram entry of the server's `histogram` reply for layer i.
  setHistogram(i, entry) {
    this.histograms[i] = entry;
    const c = this.cards[i];
    if (c && c.current) this._drawHistogram(c, c.current);
  }

  _drawHistogram(c, l) {
    drawHistogram(c.hist, this.histograms[c.index] || null, l.contrast_limits,
                  SWATCH[l.colormap] && !SWATCH[l.colormap].startsWith('linear') ? SWATCH[l.colormap] : '#9aa0a6');
  }

  // `defaults`: the dataset's default scene (the welcome's), whose contrast limits set the
  // sliders' ranges, so a reload with other limits in the link shows the same ranges.
  update(scene, info, defaults = null) {
    const layers = (scene && scene.layers) || [];
    const key = layers.map((l) => `${l.name}/${l.source}/${l.channel}`).join('|') + (info ? '+' : '') +
                (defaults ? 'd' : '');
    if (key !== this.key) {
      // Another set of layers (added, removed, reordered): histograms follow their layer.
      if (this.key) this.histograms = [];
      this.key = key;
      this.root.replaceChildren();
      this.cards = layers.map((l, i) => this._card(l, i, info, defaults));
      this.cards.forEach((c) => this.root.append(c.root));
      if (!layers.length) this.root.append(el('div', {class: 'empty', text: 'no layers'}));
    }
    layers.forEach((l, i) => this._sync(this.cards[i], l, scene));
  }

  _card(layer, i, info, defaults) {
    const patch = (fields, final = true) => this.onPatch(i, fields, final);
    const c = {};
    c.visible = el('input', {type: 'checkbox', title: 'visible', class: 'visible',
                             onchange: () => patch({visible: c.visible.checked})});
    c.swatch = el('span', {class: 'swatch'});
    c.name = el('span', {class: 'name'});
    // Layer operations: move up/down (the list is drawn bottom to top as in the scene),
    // duplicate, remove. Clicks must not toggle the <details>.
    const op = (name, title, text, fn) => el('button', {class: `op ${name}`, title, text,
      onclick: (e) => { e.preventDefault(); e.stopPropagation(); fn(); }});
    const a = this.actions;
    c.ops = el('span', {class: 'ops'},
               a.move ? op('up', 'move up (drawn earlier)', '↑', () => a.move(i, -1)) : null,
               a.move ? op('down', 'move down (drawn later, on top)', '↓', () => a.move(i, 1)) : null,
               a.duplicate ? op('duplicate', 'duplicate this layer (another view of the same channel)', 'copy', () => a.duplicate(i)) : null,
               a.remove ? op('remove', 'remove this layer', '✕', () => a.remove(i)) : null);
    const head = el('summary', {}, c.visible, c.swatch, c.name, c.ops);
    c.head = head;
    c.index = i;
    c.hist = el('canvas', {class: 'histogram', width: 200, height: 40});
    c.auto = el('button', {class: 'auto', text: 'auto', title: 'contrast limits from what is on screen (0.5 and 99.5 percentiles)',
                           onclick: () => a.auto && a.auto(i)});

    c.colormap = el('select', {class: 'colormap', onchange: () => patch({colormap: c.colormap.value})});
    COLORMAPS.forEach((n) => c.colormap.append(el('option', {value: n, text: n})));

    // The slider spans the data range, or twice the dataset's default window when that is
    // much narrower (a uint16 channel windowed at 100..3500 would use 5% of a 0..65535
    // slider): from the data, never from the current limits, so it stays put across reloads.
    // The number boxes take any value and the slider grows to include it.
    const [lo, full] = channelRange(info, layer.channel);
    const dl = defaults && Array.isArray(defaults.layers)
      ? defaults.layers.find((d) => d.channel === layer.channel && d.source === layer.source) : null;
    const hi = dl && Array.isArray(dl.contrast_limits)
      ? Math.min(full, Math.max(lo + 1e-6, lo + 2 * (dl.contrast_limits[1] - lo)))
      : full;
    const cstep = hi - lo > 100 ? 1 : (hi - lo) / 1000;
    c.range = [lo, hi];
    c.clim = [0, 1].map((k) => sliderRow(k ? 'max' : 'min', {min: lo, max: hi, step: cstep}, (v, final) => {
      const cl = c.current.contrast_limits.slice();
      cl[k] = v;
      // Keep low < high: push the other limit along rather than send an invalid pair.
      const gap = cstep || 1e-6;
      if (cl[0] >= cl[1]) {
        if (k === 0) cl[1] = cl[0] + gap;
        else cl[0] = cl[1] - gap;
      }
      c.current.contrast_limits = cl;
      patch({contrast_limits: cl}, final);
    }));
    c.gamma = sliderRow('gamma', {min: 0.2, max: 2, step: 0.01}, (v, final) => {
      if (v > 0 && v <= 100) patch({gamma: v}, final);
    });
    c.opacity = sliderRow('opacity', {min: 0, max: 1, step: 0.01}, (v, final) => {
      patch({opacity: Math.min(1, Math.max(0, v))}, final);
    });
    c.blending = el('select', {class: 'blending', onchange: () => patch({blending: c.blending.value})});
    BLENDINGS.forEach((n) => c.blending.append(el('option', {value: n, text: n})));
    c.rendering = el('select', {class: 'rendering', onchange: () => patch({rendering: c.rendering.value})});
    RENDERINGS.forEach((n) => c.rendering.append(el('option', {value: n, text: n.replace('_', ' ')})));
    c.iso = sliderRow('iso', {min: lo, max: hi, step: cstep}, (v, final) => patch({iso_threshold: v}, final));
    c.atten = sliderRow('atten.', {min: 0, max: 0.5, step: 0.001}, (v, final) => {
      if (v >= 0) patch({attenuation: v}, final);
    });

    const row = (label, ctl) => el('div', {class: 'row'}, el('label', {text: label}), ctl);
    c.renderingRow = row('rendering', c.rendering);
    c.root = el('details', {class: 'layer', open: ''}, head,
                el('div', {class: 'controls'},
                   row('colormap', c.colormap), el('div', {class: 'hist-row'}, c.hist, c.auto),
                   c.clim[0], c.clim[1], c.gamma, c.opacity,
                   row('blending', c.blending), c.renderingRow, c.iso, c.atten));
    c.root.dataset.index = i;
    return c;
  }

  _sync(c, l, scene) {
    c.current = JSON.parse(JSON.stringify(l));
    c.name.textContent = l.name || `layer ${l.channel}`;
    if (document.activeElement !== c.visible) c.visible.checked = !!l.visible;
    c.root.classList.toggle('hidden-layer', !l.visible);
    setSelect(c.colormap, l.colormap, COLORMAPS);
    c.swatch.style.background = SWATCH[l.colormap] || (/^#[0-9a-f]{6}$/i.test(l.colormap) ? l.colormap : '#888');
    const [lo, hi] = c.range;
    c.clim[0].set(l.contrast_limits[0], lo, hi);
    c.clim[1].set(l.contrast_limits[1], lo, hi);
    c.gamma.set(l.gamma, 0.2, 2);
    c.opacity.set(l.opacity);
    setSelect(c.blending, l.blending, BLENDINGS);
    setSelect(c.rendering, l.rendering, RENDERINGS);
    c.iso.set(l.iso_threshold, lo, hi);
    c.atten.set(l.attenuation, 0, 0.5);
    this._drawHistogram(c, l);
    const is3d = scene.dims && scene.dims.ndisplay === 3;
    c.renderingRow.classList.toggle('inactive', !is3d);
    c.renderingRow.title = is3d ? '' : 'used in 3D views';
    c.iso.hidden = !(is3d && l.rendering === 'iso');
    c.atten.hidden = !(is3d && l.rendering === 'attenuated_mip');
  }
}

// Sliders for the axes that are not displayed (napari's dims sliders), each with a play
// button and a frame rate: playing steps the axis by one voxel at that rate, wrapping at the
// end, and waits for the last step to reach the screen (`canStep()`) before the next, so a
// slow server is never asked for more than it shows. One axis plays at a time.
export class DimsBar {
  // onPoint(axis, value, final); canStep() -> whether the last step has been drawn.
  constructor(root, onPoint, canStep = () => true) {
    this.root = root;
    this.onPoint = onPoint;
    this.canStep = canStep;
    this.key = '';
    this.rows = new Map();
    this.playing = null;  // {axis, fps, timer}
    this.scene = null;
  }

  // The axes to slice, first first: the non-displayed entries of dims.order.
  static sliced(scene) {
    const d = scene && scene.dims;
    if (!d || !Array.isArray(d.order)) return [];
    return d.order.slice(0, Math.max(0, d.order.length - d.ndisplay));
  }

  play(axis, fps) {
    this.stop();
    const r = this.rows.get(axis);
    if (!r) return;
    fps = Math.min(60, Math.max(0.1, +fps || 10));
    const tick = () => {
      if (!this.canStep() || !this.scene) return;
      const ax = r.ax || {lo: 0, hi: 0, step: 1};
      const p = this.scene.dims.point[axis];
      // The next voxel on the axis's grid (the default point may sit between two).
      let next = ax.lo + (Math.floor((p - ax.lo) / ax.step + 1e-9) + 1) * ax.step;
      if (next > ax.hi + ax.step / 2) next = ax.lo;  // wrap around
      this.onPoint(axis, next, true);
    };
    this.playing = {axis, fps, timer: setInterval(tick, 1000 / fps)};
    this._buttons();
  }

  stop() {
    if (this.playing) clearInterval(this.playing.timer);
    this.playing = null;
    this._buttons();
  }

  _buttons() {
    for (const [a, r] of this.rows) {
      const on = !!this.playing && this.playing.axis === a;
      r.play.textContent = on ? '⏸' : '▶';
      r.play.title = on ? 'pause' : `play ${r.name} at the frame rate beside`;
      r.play.classList.toggle('on', on);
    }
  }

  update(scene, axes) {
    this.scene = scene;
    const sliced = DimsBar.sliced(scene);
    const key = sliced.join(',') + (axes ? '+' : '');
    if (key !== this.key) {
      this.key = key;
      if (this.playing && !sliced.includes(this.playing.axis)) this.stop();
      this.root.replaceChildren();
      this.rows.clear();
      for (const a of sliced) {
        const ax = axes && axes[a];
        const name = ax ? ax.name : `axis ${a}`;
        const range = el('input', {type: 'range', 'data-axis': a});
        const val = el('span', {class: 'value'});
        const play = el('button', {class: 'play', 'data-axis': a});
        const fps = el('input', {type: 'number', class: 'fps', min: 0.1, max: 60, step: 'any', value: 10,
                                 title: 'frames per second', 'data-axis': a});
        play.addEventListener('click', () => {
          if (this.playing && this.playing.axis === a) this.stop();
          else this.play(a, fps.value);
        });
        fps.addEventListener('change', () => {
          if (this.playing && this.playing.axis === a) this.play(a, fps.value);
        });
        range.addEventListener('input', () => this.onPoint(a, +range.value, false));
        range.addEventListener('change', () => this.onPoint(a, +range.value, true));
        this.root.append(el('div', {class: 'dim'}, el('label', {text: name}), play, range, val,
                            el('span', {class: 'fps-box'}, fps, el('span', {class: 'unit', text: 'fps'}))));
        this.rows.set(a, {range, val, ax, play, fps, name});
      }
      this._buttons();
    }
    for (const [a, r] of this.rows) {
      const p = scene.dims.point[a];
      const ax = r.ax || {lo: 0, hi: Math.max(1, 2 * p), step: 1};
      r.range.min = ax.lo;
      r.range.max = ax.hi;
      r.range.step = ax.step;
      if (document.activeElement !== r.range) r.range.value = p;
      const n = Math.round((ax.hi - ax.lo) / ax.step) + 1;
      const i = Math.round((p - ax.lo) / ax.step);
      r.val.textContent = `${i} / ${n - 1}`;
      r.val.title = `${fmt(p)} ${ax.unit || ''}`;
    }
    this.root.hidden = this.rows.size === 0;
  }
}
