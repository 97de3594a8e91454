// The processing panel: derived layers, a pipeline applied to a source (docs/pipelines.md,
// "In a view"). It lists the server's pipelines (GET /api/v1/pipelines), adds a derived
// layer on the chosen input, builds each derived layer's controls from its pipeline's JSON
// Schema (a slider with a number box for a bounded number or integer, a menu for an enum, a
// checkbox for a boolean, a number or text box otherwise), sends each change as a patch of
// that layer's source ({source: {params: {NAME: value}}}, merged by the server), and shows
// each pipeline's status and memory (kept current from /ws/events) and the server's errors
// about the layer's parameters.

import {el, fmt, setSelect, sliderRow} from './panel.js';
import {withToken, wsUrl} from './protocol.js';

const SLIDER_SPAN = 20;  // an unbounded (or huge) range: the slider covers 0..max(20 x default)

function bytesText(n) {
  if (!n) return '0';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
  return `${fmt(n)} ${units[i]}`;
}

// A derived source's input as text: "dataset" (0), or the nested pipeline's name.
function inputText(input) {
  if (input && typeof input === 'object') return `${input.pipeline} of ${inputText(input.input)}`;
  return input === 0 || input === undefined ? 'dataset' : `source ${input}`;
}

export function isDerived(layer) {
  return !!(layer && layer.source && typeof layer.source === 'object' && layer.source.pipeline);
}

// The scalar part of a property (a per-axis one is {oneOf: [scalar, array]}).
function scalarOf(prop) {
  return prop.oneOf ? Object.assign({}, prop, prop.oneOf[0]) : prop;
}

// One control for schema property `name` showing `value`; onChange(value) when the user
// sets one. Returns a row with set(value) to sync it from the server.
export function controlFor(name, prop, value, onChange) {
  const s = scalarOf(prop);
  const label = s['x-unit'] ? `${name} (${s['x-unit']})` : name;
  const title = s.description || name;
  let row;
  if (s.enum) {
    const sel = el('select', {title, 'data-param': name, onchange: () => onChange(sel.value)},
                   ...s.enum.map((v) => el('option', {value: v, text: v})));
    row = el('div', {class: 'row'}, el('label', {text: label}), sel);
    row.set = (v) => setSelect(sel, String(v), s.enum);
  } else if (s.type === 'boolean') {
    const box = el('input', {type: 'checkbox', title, 'data-param': name,
                             onchange: () => onChange(box.checked)});
    row = el('div', {class: 'row'}, el('label', {text: label}), box);
    row.set = (v) => { if (document.activeElement !== box) box.checked = !!v; };
  } else if ((s.type === 'number' || s.type === 'integer') && !Array.isArray(value)) {
    const lo = Number.isFinite(s.minimum) ? s.minimum : 0;
    const def = Number.isFinite(prop.default) ? prop.default : 1;
    const hi = Math.min(Number.isFinite(s.maximum) ? s.maximum : Infinity,
                        lo + Math.max(SLIDER_SPAN, SLIDER_SPAN * Math.abs(def)));
    const step = s['x-step'] || (s.type === 'integer' ? 1 : (hi - lo) / 200);
    const integer = s.type === 'integer';
    // The number box takes any value: the server checks it against the schema and answers
    // an error naming the field (shown in the card) for one outside it.
    row = sliderRow(label, {min: lo, max: hi, step},
                    (v, final) => { if (final) onChange(integer ? Math.round(v) : v); });
    row.title = title;
    row.range.dataset.param = name;
    row.num.dataset.param = name;
    const set = row.set;
    row.set = (v) => set(v, lo, hi);
  } else {
    // Strings, and per-axis values given as arrays ("1, 2, 2" in the data's axis order).
    const text = el('input', {type: 'text', title, 'data-param': name});
    text.addEventListener('change', () => {
      if (Array.isArray(value) || (s.type === 'number' && text.value.includes(','))) {
        onChange(text.value.split(',').map((x) => parseFloat(x)));
      } else {
        onChange(text.value);
      }
    });
    row = el('div', {class: 'row'}, el('label', {text: label}), text);
    row.set = (v) => {
      if (document.activeElement !== text) text.value = Array.isArray(v) ? v.join(', ') : v;
    };
  }
  row.dataset.param = name;
  row.set(value);
  return row;
}

// opts: {token, scene() (the current view), addLayer(layer), patchLayer(i, fields)}.
export function mountProcessing(root, opts) {
  const state = {pipelines: [], byName: new Map(), cards: [], shape: '', errors: new Map(),
                 loadError: null, events: 0};
  const pick = el('select', {title: 'the pipeline a new processed layer applies', class: 'pipeline-pick'});
  const input = el('select', {title: 'the source it applies it to', class: 'pipeline-input'});
  const add = el('button', {text: '+ processed', title: 'add a layer showing the pipeline applied to the source',
                            class: 'pipeline-add', onclick: () => addLayer()});
  const list = el('div', {class: 'processing-layers'});
  const status = el('div', {class: 'processing-status'});
  root.replaceChildren(el('div', {class: 'row'}, pick, input, add), status, list);

  async function load() {
    try {
      const r = await fetch(withToken('/api/v1/pipelines', opts.token));
      if (!r.ok) throw new Error(`GET /api/v1/pipelines: ${r.status}`);
      const body = await r.json();
      state.pipelines = body.pipelines || [];
      state.byName = new Map(state.pipelines.map((p) => [p.name, p]));
      state.loadError = null;
      const current = pick.value;
      pick.replaceChildren(...state.pipelines.map(
        (p) => el('option', {value: p.name, text: p.name, title: p.description || p.name})));
      if (state.byName.has(current)) pick.value = current;
      status.textContent = state.pipelines.length ? '' : 'this server has no pipelines';
    } catch (e) {
      state.loadError = String(e.message || e);
      status.textContent = state.loadError;
    }
    refresh(opts.scene());
  }

  // Pipeline status changes pushed by the server (no reconnect loop: the list is fetched
  // again on each reconnect of the page, and on every refresh after an error).
  function listen() {
    let ws;
    try {
      ws = new WebSocket(wsUrl(location, '/ws/events', opts.token));
    } catch (e) {
      return;
    }
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type !== 'pipeline' || !m.pipeline) return;
      const p = state.byName.get(m.pipeline.name);
      if (!p) return;
      state.events++;
      p.status = m.pipeline.status;
      p.memory_bytes = m.pipeline.memory_bytes;
      if (m.pipeline.error) p.error = m.pipeline.error; else delete p.error;
      refresh(opts.scene());
    };
    ws.onclose = () => setTimeout(listen, 5000);
  }

  function addLayer() {
    const p = state.byName.get(pick.value);
    if (!p) return;
    const scene = opts.scene();
    const layers = (scene && scene.layers) || [];
    const i = +input.value;
    const base = layers[i] || layers[0] || {};
    const params = {};
    for (const [k, prop] of Object.entries((p.schema && p.schema.properties) || {}))
      params[k] = prop.default;
    opts.addLayer({
      name: `${p.name} ${layers.length}`,
      // On a derived layer: a chain (its source nested as the input); else the dataset.
      source: {pipeline: p.name, input: isDerived(base) ? base.source : 0, params},
      channel: base.channel ?? 0,
      colormap: base.colormap || 'gray',
      contrast_limits: base.contrast_limits,
      blending: 'translucent',
      visible: true,
    });
  }

  function fillInputs(layers) {
    const options = layers.map((l, i) => [String(i), isDerived(l)
      ? `${i}: ${l.source.pipeline} of ${inputText(l.source.input)}` : `${i}: ${l.name || 'dataset'}`]);
    const key = JSON.stringify(options);
    if (input.dataset.key === key) return;
    input.dataset.key = key;
    const current = input.value;
    input.replaceChildren(...options.map(([v, t]) => el('option', {value: v, text: t})));
    if (options.some(([v]) => v === current)) input.value = current;
  }

  function card(i, layer) {
    const src = layer.source;
    const p = state.byName.get(src.pipeline);
    const head = el('div', {class: 'card-title', text: `${i}: ${src.pipeline} of ${inputText(src.input)}`});
    const st = el('div', {class: 'pipeline-status'});
    const err = el('div', {class: 'pipeline-error', role: 'alert'});
    const controls = [];
    const props = (p && p.schema && p.schema.properties) || {};
    for (const [name, prop] of Object.entries(props)) {
      controls.push(controlFor(name, prop, (src.params || {})[name] ?? prop.default, (v) => {
        state.errors.delete(i);
        opts.patchLayer(i, {source: {params: {[name]: v}}});
      }));
    }
    const c = el('div', {class: 'layer-card processing-card', 'data-layer': i, 'data-pipeline': src.pipeline},
                 head, st, ...controls, err);
    c.sync = (l) => {
      const q = state.byName.get(l.source.pipeline) || {};
      const mem = q.memory_bytes ? `, ${bytesText(q.memory_bytes)}` : '';
      st.textContent = q.status ? `${q.status}${mem}${q.error ? ': ' + q.error : ''}` : 'unknown pipeline';
      st.dataset.status = q.status || 'unknown';
      for (const row of controls) row.set((l.source.params || {})[row.dataset.param] ?? props[row.dataset.param].default);
      err.textContent = state.errors.get(i) || '';
    };
    return c;
  }

  function refresh(scene) {
    const layers = (scene && scene.layers) || [];
    fillInputs(layers);
    const derived = layers.map((l, i) => [i, l]).filter(([, l]) => isDerived(l));
    const shape = JSON.stringify(derived.map(([i, l]) => [i, l.source.pipeline, Array.isArray(l.source.params)]))
                  + state.pipelines.length;
    if (shape !== state.shape) {
      state.shape = shape;
      state.cards = derived.map(([i, l]) => card(i, l));
      list.replaceChildren(...state.cards);
    }
    derived.forEach(([, l], k) => state.cards[k].sync(l));
  }

  // A server error: shown in the card of the layer it names (field 'layers[I].source...').
  function error(msg) {
    const m = /layers\[(\d+)\]\.source/.exec((msg && msg.message) || '');
    if (!m) return false;
    state.errors.set(+m[1], msg.message);
    refresh(opts.scene());
    return true;
  }

  load();
  listen();
  return {refresh, error, reload: load, state};
}
