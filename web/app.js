// voxcast browser client: connects to `voxcast serve`, shows the stream on a canvas and
// turns the user's gestures and the layer panel into scene patches (docs/protocol.md).
//
// Page URL: /?token=T (when the server has one) &codec=jpeg|h264 (force a codec)
//           &dataset=N|NAME (which of the served datasets; default the first)
//           #<scene>  (camera, dims, layers as URI-encoded JSON; kept up to date, so a
//                      copied link opens the same view)

import {applyPatch, canvasSize, clone, hashOf, layerPatch, layersPatch, mergePatches, parseFrame,
        parseHash, splitUnknown, tokenFrom, withToken, worldAxes} from './protocol.js';
import {Inspector} from './inspect.js';
import {drawHud} from './overlay.js';
import {FrameDrawer, h264Supported} from './decoder.js';
import {Connection} from './connection.js';
import {DimsBar, LayerPanel} from './panel.js';
import {attachInteraction} from './interaction.js';
import {mountJobs} from './jobs.js';
import {mountTimeline} from './timeline.js';
import {mountProcessing} from './processing.js';
import {mountPicker, resolveDataset} from './datasets.js';
import {screenshot} from './screenshot.js';
import {mountStatus} from './status.js';

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const token = tokenFrom(location.search);
const forcedCodec = params.get('codec');

const canvas = $('#view');
const stage = $('#stage');

// ---- what tests (and curious users) can look at: window.voxcast --------------------

const vx = {
  state: 'connecting',
  framesDecoded: 0,
  framesReceived: 0,
  flagCounts: {keyframe: 0, refining: 0, interactive: 0},  // frames drawn with each flag
  lastHeader: null,   // header of the last frame drawn (no payload)
  lastAck: null,
  scene: null,        // the server's scene (welcome, then every ack)
  view: null,         // the scene as the client has set it (scene + updates in flight)
  codec: null,        // 'h264' | 'jpeg' (welcome.codec)
  encoder: null,
  welcome: null,
  datasets: null,     // GET /api/v1/datasets
  dataset: 0,         // the index of the dataset on screen (?dataset=)
  datasetName: null,
  stats: null,
  errors: [],         // server error messages, newest last
  warnings: [],       // what the page noticed about its URL (unknown keys, datasets)
  latencyMs: null,
  fps: 0,
  kbps: 0,
  h264Available: null,
  busy: null,         // why the picture is behind (null: it shows the latest change)
  busyShown: 0,       // how many times the busy indicator appeared
  send: (patch, interactive = false) => sendNow(patch, interactive),
  requestKeyframe: () => conn.requestKeyframe(),
  probe: null,        // the last probe reply (with the `pixel` it asked for)
  histograms: null,   // the last histogram reply's layers
  autoContrast: (i) => inspector.autoContrast(i),
  layerOps: null,     // {duplicate(i), remove(i), move(i, delta), add(channel)}
  hud: null,          // what the overlay drew last: {scaleBar, axes, box}
};
window.voxcast = vx;

// ---- sending: at most one state.update per animation frame, latest wins --------------

// The status line under the view (status.js); notices are its transient messages.
const status = mountStatus(vx, $);
const notice = status.notice;

let pending = null;
let pendingInteractive = false;
let flushHandle = null;
let lastSentSeq = 0;
let lastAckedSeq = 0;  // the newest state.update the server applied
const sentAt = new Map();  // seq -> performance.now() when sent

function queue(patch, interactive = false) {
  if (!vx.view) return;
  pending = pending ? mergePatches(pending, patch) : clone(patch);
  pendingInteractive = interactive;
  vx.view = applyPatch(vx.view, patch);
  if (flushHandle === null) {
    // requestAnimationFrame pauses in hidden tabs; the timeout keeps updates going there.
    const flush = () => {
      if (flushHandle === null) return;
      cancelAnimationFrame(flushHandle.raf);
      clearTimeout(flushHandle.timer);
      flushHandle = null;
      if (pending) sendNow(pending, pendingInteractive);
      pending = null;
    };
    flushHandle = {raf: requestAnimationFrame(flush), timer: setTimeout(flush, 50)};
  }
  ui.refresh();
}

function sendNow(patch, interactive = false) {
  const seq = conn.update(patch, interactive);
  if (seq === null) return null;
  if (vx.view) vx.view = applyPatch(vx.view, patch);
  lastSentSeq = seq;
  sentAt.set(seq, performance.now());
  return seq;
}

// ---- the connection ------------------------------------------------------------------

let h264Broken = false;  // decoding failed over and over: ask for JPEG from now on

async function codecs() {
  if (vx.h264Available === null) vx.h264Available = await h264Supported();
  if (forcedCodec === 'jpeg' || h264Broken) return ['jpeg'];
  if (forcedCodec === 'h264') return ['h264', 'jpeg'];
  return vx.h264Available ? ['h264', 'jpeg'] : ['jpeg'];
}

const drawer = new FrameDrawer(canvas, {
  onDrawn: frameDrawn,
  onNeedKeyframe: (reason, errors) => {
    conn.requestKeyframe();
    if (errors >= 4 && vx.framesDecoded === 0 && vx.codec === 'h264') {
      h264Broken = true;
      notice(`H.264 decoding keeps failing (${reason}); switching to JPEG`);
      conn.restart('switching to JPEG');
    }
  },
  onError: (msg) => notice(msg),
});

const conn = new Connection({
  token,
  dataset: 0,  // set by chooseDataset() before start
  codecs,
  client: `voxcast-web (${navigator.userAgent.match(/Chrom\w*\/[\d.]+|Firefox\/[\d.]+|Safari\/[\d.]+/)?.[0] || 'browser'})`,
  onStatus: (state, text) => {
    vx.state = state;
    ui.connection(state, text);
  },
  onWelcome: welcome,
  onMessage: message,
  onFrame: frameReceived,
});

function welcome(msg) {
  vx.welcome = msg;
  vx.codec = msg.codec;
  vx.encoder = msg.encoder;
  vx.scene = clone(msg.scene);
  vx.view = clone(msg.scene);
  vx.defaults = clone(msg.scene);  // the dataset's defaults: what slider ranges derive from
  pending = null;
  lastSentSeq = 0;
  lastAckedSeq = 0;
  scenes.length = 0;
  sentAt.clear();
  drawer.reset();
  inspector.reset();
  fillAddLayer(msg.scene);
  // A copied link (or the view before a reconnect) first, then this window's canvas.
  const linked = linkedView(msg.scene);
  if (linked) {
    // A link this client wrote holds every layer whole: it is the list (layers removed from
    // the default scene stay removed). A hand-written one may patch only the first layers.
    const whole = Array.isArray(linked.layers) && linked.layers.every(
        (l) => l && typeof l === 'object' && 'name' in l && 'source' in l && 'channel' in l);
    if (whole) linked.layers = layersPatch(msg.scene.layers || [], linked.layers).layers;
    sendNow(linked);
  }
  // The dims sliders take room from the stage: lay them out before measuring it (the
  // datasets were read before connecting), so the first canvas size is the final one.
  if (currentInfo()) dimsBar.update(vx.view, worldAxes(currentInfo()));
  sendCanvasSize(true);
  loadDatasets(msg);
  ui.refresh();
}

// The view in the URL hash, its misspelt or unknown keys reported (status line, console)
// and left out, once per hash.
let reportedHash = null;
function linkedView(scene) {
  const parsed = parseHash(location.hash);
  if (!parsed) return null;
  const report = (text) => {
    if (reportedHash === location.hash) return;
    console.warn(`voxcast: ${text}`);
    vx.warnings.push(text);
    notice(text, 15000);
  };
  if (parsed.error) {
    report(`URL hash ignored: not a view (${parsed.error})`);
    reportedHash = location.hash;
    return null;
  }
  let value = parsed.value;
  if (value && typeof value === 'object' && !Array.isArray(value) && 'timeline' in value) {
    // The movie timeline travels with the view (timeline.js).
    value = {...value};
    const err = vx.timeline ? vx.timeline.load(value.timeline) : null;
    if (err) report(`URL hash: timeline ignored (${err})`);
    delete value.timeline;
  }
  const {view, unknown} = splitUnknown(value, scene);
  if (!view) report('URL hash ignored: not a JSON object');
  else if (unknown.length)
    report(`URL hash: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} ignored`);
  reportedHash = location.hash;
  return view && Object.keys(view).length ? view : null;
}

async function loadDatasets(msg) {
  try {
    const r = await fetch(withToken('/api/v1/datasets', token), {cache: 'no-store'});
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    vx.datasets = await r.json();
  } catch (e) {
    vx.datasets = null;
    notice(`could not read /api/v1/datasets (${e.message}); sliders step by 1`);
  }
  ui.refresh();
  drawOverlay();
}

function currentInfo() {
  const list = vx.datasets && vx.datasets.datasets;
  if (!Array.isArray(list) || !list.length) return null;
  return (list.find((d) => d.id === vx.dataset) || list[0]).info || null;
}

// ---- which dataset (datasets.js): resolved before connecting ---------------------------

const chooseDataset = () => resolveDataset(vx, {token, want: params.get('dataset'), notice});
mountPicker($('#dataset-picker'));

// A scene the server set on its own (a `scene` message, where a preview stopped).
function adoptScene(scene) {
  vx.scene = scene;
  if (!pending && lastSentSeq === (vx.lastAck ? vx.lastAck.seq : 0)) vx.view = clone(scene);
  scheduleHash();
  ui.refresh();
}

function message(msg) {
  switch (msg.type) {
    case 'ack':
      if (msg.timeline) vx.timeline.serverState(msg.timeline);  // it stopped a preview
      // The members of the scene that changed, each whole (older servers: the whole scene).
      if (!msg.changes && !msg.scene) break;  // the answer to a keyframe.request
      vx.scene = msg.changes ? Object.assign(clone(vx.scene || {}), clone(msg.changes)) : msg.scene;
      vx.lastAck = Object.assign({}, msg, {scene: vx.scene});
      if (Number.isInteger(msg.seq) && msg.seq > lastAckedSeq) lastAckedSeq = msg.seq;
      rememberScene(msg.seq, vx.scene);
      updateBusy();
      // Adopt the server's scene when nothing newer is on its way (else the view would
      // jump back while the user drags).
      if (msg.seq >= lastSentSeq && !pending) vx.view = clone(vx.scene);
      scheduleHash();
      ui.refresh();
      break;
    case 'probe':
    case 'histogram':
      inspector.answer(msg);
      break;
    case 'error':
      vx.errors.push(msg);
      if (vx.errors.length > 50) vx.errors.shift();
      // The answer to a probe or histogram (rate_limited too): no scene to restore.
      if (msg.id !== undefined && msg.id !== null && inspector.answer(msg)) {
        if (msg.code !== 'rate_limited') notice(`server: ${msg.code}: ${msg.message}`, 8000);
        break;
      }
      notice(`server: ${msg.code}: ${msg.message}`, 8000);
      vx.processing.error(msg);
      if ((msg.seq === null || msg.seq >= lastSentSeq) && !pending && vx.scene) {
        vx.view = clone(vx.scene);
        ui.refresh();
      }
      break;
    case 'stats':
      vx.stats = msg;
      break;
    case 'scene':
      if (msg.scene) adoptScene(msg.scene);
      break;
    case 'timeline.state':
    case 'timeline.event':
      // A preview the server plays: where it stopped is this client's scene.
      vx.timeline.serverState(msg);
      if (msg.scene) adoptScene(msg.scene);
      break;
    default:
      break;  // pong and anything newer than this client
  }
}

// ---- frames ------------------------------------------------------------------------

function frameReceived(buf) {
  let h;
  try {
    h = parseFrame(buf);
  } catch (e) {
    notice(e.message);
    return;
  }
  vx.framesReceived += 1;
  drawer.push(h);
}

function frameDrawn(h) {
  const now = performance.now();
  vx.framesDecoded += 1;
  for (const f of ['keyframe', 'refining', 'interactive']) if (h[f]) vx.flagCounts[f] += 1;
  const {payload, ...header} = h;
  vx.lastHeader = header;
  status.count(now, h.payloadLength);
  // Latency: from sending update N to drawing the first frame that reflects it.
  let newest = 0;
  for (const seq of sentAt.keys()) if (seq <= h.stateSeq && seq > newest) newest = seq;
  if (newest) {
    vx.latencyMs = now - sentAt.get(newest);
    for (const seq of [...sentAt.keys()]) if (seq <= h.stateSeq) sentAt.delete(seq);
  }
  ui.frame(h);
  updateBusy();
  drawOverlay();
  inspector.frameDrawn(h);
}

// ---- probe, histograms, auto-contrast (inspect.js) ----------------------------------------

const inspector = new Inspector({
  vx, canvas, probeBox: $('#probe'), request: (m) => conn.request(m), queue, notice,
  axes: () => worldAxes(currentInfo()),
  setHistogram: (layer, entry) => layerPanel.setHistogram(layer, entry),
});

// ---- the overlay: scale bar, 3D axes and bounding box (overlay.js) ----------------------

// The scenes of recent acks by seq, so the overlay follows the frame on screen, not the
// newest state (which may not be drawn yet).
const scenes = [];  // [seq, scene], oldest first
function rememberScene(seq, scene) {
  if (!Number.isInteger(seq)) return;
  scenes.push([seq, scene]);
  if (scenes.length > 64) scenes.shift();
}
function sceneOf(stateSeq) {
  for (let i = scenes.length - 1; i >= 0; --i) if (scenes[i][0] <= stateSeq) return scenes[i][1];
  return vx.welcome ? vx.welcome.scene : vx.scene;
}

function drawOverlay() {
  const hud = $('#hud');
  const dpr = window.devicePixelRatio || 1;
  const r = hud.getBoundingClientRect();
  const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
  if (hud.width !== w || hud.height !== h) {
    hud.width = w;
    hud.height = h;
  }
  const shown = vx.lastHeader ? sceneOf(vx.lastHeader.stateSeq) : null;
  // The frame's own size: the scene's canvas while a resize is on its way may differ.
  const scene = shown && vx.lastHeader ? Object.assign({}, shown, {canvas: {width: vx.lastHeader.width, height: vx.lastHeader.height}}) : null;
  vx.hud = drawHud(hud, scene, worldAxes(currentInfo()), dpr);
}
new ResizeObserver(() => drawOverlay()).observe($('#hud'));

// ---- the busy indicator ------------------------------------------------------------------

// The picture on screen does not show the latest change yet: the frame drawn reflects an
// older state than the server has acknowledged, or it is refining (drawn from coarser data
// while chunks load). Said on the canvas, not only in the latency number.
function busyReason() {
  const h = vx.lastHeader;
  if (!h || vx.state !== 'open') return null;
  if (h.stateSeq < lastAckedSeq) return 'updating…';
  if (h.refining) return 'loading data…';
  return null;
}

function updateBusy() {
  const why = busyReason();
  const b = $('#busy');
  if (why && b.hidden) vx.busyShown += 1;
  b.hidden = !why;
  if (why) b.querySelector('.busy-text').textContent = why;
  vx.busy = why;
}

// ---- canvas size ---------------------------------------------------------------------

let resizeTimer = null;

function sendCanvasSize(force = false) {
  if (!vx.view) return;
  const r = stage.getBoundingClientRect();
  const size = canvasSize(r.width, r.height, window.devicePixelRatio || 1);
  const cur = vx.view.canvas || {};
  if (!force && cur.width === size.width && cur.height === size.height) return;
  queue({canvas: size});
}

new ResizeObserver(() => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => sendCanvasSize(), 200);
}).observe(stage);

// ---- the URL hash ----------------------------------------------------------------------

let hashTimer = null;
let lastHashAt = 0;

// After acks, at most 4 times a second (browsers throttle history.replaceState calls).
function scheduleHash() {
  const wait = 250 - (performance.now() - lastHashAt);
  if (wait <= 0) writeHash();
  else if (hashTimer === null) hashTimer = setTimeout(writeHash, wait);
}

function writeHash() {
  clearTimeout(hashTimer);
  hashTimer = null;
  lastHashAt = performance.now();
  if (!vx.scene) return;
  const tl = vx.timeline && vx.timeline.keyframes.length ? vx.timeline.timeline : null;
  history.replaceState(history.state, '', location.pathname + location.search + hashOf(vx.scene, tl));
}

// ---- the page ---------------------------------------------------------------------------

// ---- layers: add, remove, reorder, duplicate ----------------------------------------------

// Sends a new list of layers at once (every layer whole, null for those past its end), after
// whatever is queued: later element-wise patches then refer to the new list.
function setLayers(next) {
  if (!vx.view || !Array.isArray(vx.view.layers)) return;
  if (pending) {
    const p = pending;
    pending = null;
    sendNow(p, pendingInteractive);
  }
  sendNow(layersPatch(vx.view.layers, next));
  ui.refresh();
}

const layerOps = {
  duplicate(i) {
    const layers = vx.view.layers.slice();
    if (!layers[i]) return;
    const copy = clone(layers[i]);
    copy.name = `${copy.name || 'layer ' + i} copy`;
    layers.splice(i + 1, 0, copy);
    setLayers(layers);
  },
  remove(i) {
    const layers = vx.view.layers.slice();
    if (!layers[i]) return;
    layers.splice(i, 1);
    setLayers(layers);
  },
  move(i, delta) {
    const layers = vx.view.layers.slice();
    const j = i + delta;
    if (!layers[i] || j < 0 || j >= layers.length) return;
    [layers[i], layers[j]] = [layers[j], layers[i]];
    setLayers(layers);
  },
  // A new layer showing `channel` of the dataset, as the default scene shows it.
  add(channel) {
    const defaults = (vx.welcome && vx.welcome.scene && vx.welcome.scene.layers) || [];
    const base = defaults.find((l) => l.channel === channel) || defaults[0];
    if (!base || !vx.view) return;
    const layer = clone(base);
    layer.visible = true;
    if (vx.view.layers.some((l) => l.name === layer.name)) layer.name = `${layer.name} ${vx.view.layers.length}`;
    setLayers(vx.view.layers.concat([layer]));
  },
};
vx.layerOps = layerOps;
vx.coalescers = inspector.coalescers();

function fillAddLayer(scene) {
  const sel = $('#add-layer-channel');
  sel.replaceChildren();
  for (const l of (scene && scene.layers) || []) {
    const o = document.createElement('option');
    o.value = l.channel;
    o.textContent = `${l.name || 'channel ' + l.channel}`;
    sel.append(o);
  }
}
$('#add-layer').addEventListener('click', () => layerOps.add(+$('#add-layer-channel').value || 0));

const layerPanel = new LayerPanel($('#layers'), (i, fields) => {
  const n = vx.view && vx.view.layers ? vx.view.layers.length : 0;
  if (i < n) queue(layerPatch(n, i, fields), false);
}, {auto: (i) => inspector.autoContrast(i), ...layerOps});
const dimsBar = new DimsBar($('#dims'), (axis, value) => {
  if (!vx.view) return;
  const point = vx.view.dims.point.slice();
  point[axis] = value;
  queue({dims: {point}}, false);
}, () => !pending && (!vx.lastHeader || vx.lastHeader.stateSeq >= lastAckedSeq) &&
         lastAckedSeq >= lastSentSeq);
vx.dims = dimsBar;

attachInteraction(canvas, {
  view: () => vx.view,
  axes: () => worldAxes(currentInfo()),
  queue,
});

$('#toggle-3d').addEventListener('click', () => {
  if (!vx.view) return;
  queue({dims: {ndisplay: vx.view.dims.ndisplay === 3 ? 2 : 3}});
});
$('#home').addEventListener('click', () => queue({camera: null}));
$('#copy-link').addEventListener('click', async () => {
  writeHash();
  try {
    await navigator.clipboard.writeText(location.href);
    notice('link copied', 2000);
  } catch (e) {
    notice('copy the address bar: it holds this view', 4000);
  }
});
// ---- screenshots (screenshot.js): the server renders the view at final quality ---------

vx.screenshot = (scale = 1) => screenshot(vx, {token, notice}, scale);
vx.lastScreenshot = null;
$('#screenshot').addEventListener('click', () => vx.screenshot(+$('#screenshot-scale').value || 1));

vx.jobs = mountJobs($('#jobs'), {token, scene: () => vx.view || vx.scene, dataset: () => vx.dataset,
                                 notice});
// The movie timeline: keyframes of the view, rendered as a `movie` job in the jobs panel.
vx.timeline = mountTimeline($('#timeline'), {
  scene: () => vx.view || vx.scene,
  apply: (scene, interactive = false) => queue(scene, interactive),
  play: (timeline) => conn.request({type: 'timeline.play', timeline}),
  pause: () => conn.request({type: 'timeline.pause'}),
  dataset: () => vx.dataset,
  jobs: vx.jobs,
  changed: () => scheduleHash(),
});

// The processing panel (processing.js): derived layers, controls from each pipeline's schema.
vx.processing = mountProcessing($('#processing'), {
  token,
  scene: () => vx.view,
  addLayer: (layer) => vx.view && setLayers(vx.view.layers.concat([layer])),
  patchLayer: (i, fields) => layerPanel.onPatch(i, fields),
});

$('#toggle-panel').addEventListener('click', () => document.body.classList.toggle('panel-hidden'));

const ui = {
  refreshQueued: false,
  connection: (state, text) => { status.connection(state, text); updateBusy(); },
  codec: () => status.codec(),
  frame: (h) => status.frame(h),
  // Panel and sliders follow the client's view; batched to one DOM pass per frame.
  refresh() {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    requestAnimationFrame(() => {
      this.refreshQueued = false;
      const v = vx.view;
      if (!v) return;
      const info = currentInfo();
      layerPanel.update(v, info, vx.defaults);
      dimsBar.update(v, worldAxes(info));
      vx.processing.refresh(v);
      $('#toggle-3d').textContent = v.dims && v.dims.ndisplay === 3 ? '3D' : '2D';
      $('#toggle-3d').title = 'switch to ' + (v.dims && v.dims.ndisplay === 3 ? '2D' : '3D');
      $('#toggle-3d').classList.toggle('on', v.dims && v.dims.ndisplay === 3);
      this.codec();
    });
  },
};

// Keep the state channel alive through idle periods (the server closes it after 10 min).
setInterval(() => conn.ping(Date.now()), 60000);

chooseDataset().then(() => {
  conn.opts.dataset = vx.dataset;
  conn.start();
});
