// voxcast browser client: connects to `voxcast serve`, shows the stream on a canvas and
// turns the user's gestures and the layer panel into scene patches (docs/protocol.md).
//
// Page URL: /?token=T (when the server has one) &codec=jpeg|h264 (force a codec)
//           &dataset=N|NAME (which of the served datasets; default the first)
//           #<scene>  (camera, dims, layers as URI-encoded JSON; kept up to date, so a
//                      copied link opens the same view)

import {applyPatch, canvasSize, clone, hashOf, layerPatch, mergePatches, parseFrame, parseHash,
        splitUnknown, tokenFrom, withToken, worldAxes} from './protocol.js';
import {FrameDrawer, h264Supported} from './decoder.js';
import {Connection} from './connection.js';
import {DimsBar, LayerPanel} from './panel.js';
import {attachInteraction} from './interaction.js';
import {mountJobs} from './jobs.js';
import {mountPicker, resolveDataset} from './datasets.js';
import {screenshot} from './screenshot.js';

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
  send: (patch, interactive = false) => sendNow(patch, interactive),
  requestKeyframe: () => conn.requestKeyframe(),
};
window.voxcast = vx;

// ---- sending: at most one state.update per animation frame, latest wins --------------

let pending = null;
let pendingInteractive = false;
let flushHandle = null;
let lastSentSeq = 0;
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
  sentAt.clear();
  drawer.reset();
  // A copied link (or the view before a reconnect) first, then this window's canvas.
  const linked = linkedView(msg.scene);
  if (linked) sendNow(linked);
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
  const {view, unknown} = splitUnknown(parsed.value, scene);
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
}

function currentInfo() {
  const list = vx.datasets && vx.datasets.datasets;
  if (!Array.isArray(list) || !list.length) return null;
  return (list.find((d) => d.id === vx.dataset) || list[0]).info || null;
}

// ---- which dataset (datasets.js): resolved before connecting ---------------------------

const chooseDataset = () => resolveDataset(vx, {token, want: params.get('dataset'), notice});
mountPicker($('#dataset-picker'));

function message(msg) {
  switch (msg.type) {
    case 'ack':
      // The members of the scene that changed, each whole (older servers: the whole scene).
      if (!msg.changes && !msg.scene) break;  // the answer to a keyframe.request
      vx.scene = msg.changes ? Object.assign(clone(vx.scene || {}), clone(msg.changes)) : msg.scene;
      vx.lastAck = Object.assign({}, msg, {scene: vx.scene});
      // Adopt the server's scene when nothing newer is on its way (else the view would
      // jump back while the user drags).
      if (msg.seq >= lastSentSeq && !pending) vx.view = clone(vx.scene);
      scheduleHash();
      ui.refresh();
      break;
    case 'error':
      vx.errors.push(msg);
      if (vx.errors.length > 50) vx.errors.shift();
      notice(`server: ${msg.code}: ${msg.message}`, 8000);
      if ((msg.seq === null || msg.seq >= lastSentSeq) && !pending && vx.scene) {
        vx.view = clone(vx.scene);
        ui.refresh();
      }
      break;
    case 'stats':
      vx.stats = msg;
      break;
    case 'scene':
      if (msg.scene) {
        vx.scene = msg.scene;
        if (!pending && lastSentSeq === (vx.lastAck ? vx.lastAck.seq : 0)) vx.view = clone(msg.scene);
        scheduleHash();
        ui.refresh();
      }
      break;
    default:
      break;  // pong and anything newer than this client
  }
}

// ---- frames ------------------------------------------------------------------------

const window1s = [];  // [time, payload bytes] of frames drawn in the last second

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
  window1s.push([now, h.payloadLength]);
  while (window1s.length && window1s[0][0] < now - 1000) window1s.shift();
  // Latency: from sending update N to drawing the first frame that reflects it.
  let newest = 0;
  for (const seq of sentAt.keys()) if (seq <= h.stateSeq && seq > newest) newest = seq;
  if (newest) {
    vx.latencyMs = now - sentAt.get(newest);
    for (const seq of [...sentAt.keys()]) if (seq <= h.stateSeq) sentAt.delete(seq);
  }
  ui.frame(h);
}

function rates() {
  const now = performance.now();
  while (window1s.length && window1s[0][0] < now - 1000) window1s.shift();
  vx.fps = window1s.length;
  vx.kbps = window1s.reduce((s, f) => s + f[1], 0) * 8 / 1000;
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
  history.replaceState(history.state, '', location.pathname + location.search + hashOf(vx.scene));
}

// ---- the page ---------------------------------------------------------------------------

const layerPanel = new LayerPanel($('#layers'), (i, fields) => {
  const n = vx.view && vx.view.layers ? vx.view.layers.length : 0;
  if (i < n) queue(layerPatch(n, i, fields), false);
});
const dimsBar = new DimsBar($('#dims'), (axis, value) => {
  if (!vx.view) return;
  const point = vx.view.dims.point.slice();
  point[axis] = value;
  queue({dims: {point}}, false);
});

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

$('#toggle-panel').addEventListener('click', () => document.body.classList.toggle('panel-hidden'));

// A message in the status line (server errors, decoder trouble) for a few seconds.
let noticeTimer = null;
function notice(text, ms = 6000) {
  const n = $('#st-msg');
  n.textContent = text;
  n.title = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.textContent = ''; n.title = ''; }, ms);
}

const ui = {
  refreshQueued: false,
  connection(state, text) {
    const s = $('#st-conn');
    s.textContent = text;
    s.dataset.state = state;
    $('#overlay').hidden = state === 'open' && vx.framesDecoded > 0;
    $('#overlay').textContent = state === 'open' ? 'waiting for the first frame…' : text;
    this.codec();
  },
  codec() {
    const enc = vx.encoder;
    let t = vx.codec || '–';
    let fallback = vx.welcome && vx.welcome.fallback;
    if (enc && typeof enc === 'object') {
      t += ` (${enc.name || enc.encoder || enc.backend || '?'})`;
      fallback = fallback || enc.fallback;
    } else if (enc) {
      t += ` (${enc})`;
    }
    if (fallback) t += ' *';
    $('#st-codec').textContent = t;
    $('#st-codec').title = (vx.h264Available ? 'this browser decodes H.264 (WebCodecs)' :
        'no WebCodecs H.264 here (needs a secure context: https or localhost)') +
        (fallback ? `\nencoder fallback: ${fallback}` : '');
  },
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
      $('#toggle-3d').textContent = v.dims && v.dims.ndisplay === 3 ? '3D' : '2D';
      $('#toggle-3d').title = 'switch to ' + (v.dims && v.dims.ndisplay === 3 ? '2D' : '3D');
      $('#toggle-3d').classList.toggle('on', v.dims && v.dims.ndisplay === 3);
      this.codec();
    });
  },
  frame(h) {
    $('#overlay').hidden = true;
    const flags = [h.keyframe ? 'key' : '', h.refining ? 'refining' : '', h.interactive ? 'interactive' : '']
        .filter(Boolean).join(' ');
    $('#st-flags').textContent = flags;
    $('#st-size').textContent = `${h.width}×${h.height}`;
    $('#st-server').textContent =
        `render ${(h.renderUs / 1000).toFixed(1)} ms, encode ${(h.encodeUs / 1000).toFixed(1)} ms`;
  },
};

setInterval(() => {
  rates();
  $('#st-fps').textContent = `${vx.fps} fps`;
  $('#st-latency').textContent = vx.latencyMs === null ? 'latency –' : `latency ${Math.round(vx.latencyMs)} ms`;
  $('#st-rate').textContent = vx.kbps >= 1000 ? `${(vx.kbps / 1000).toFixed(2)} Mbit/s` : `${Math.round(vx.kbps)} kbit/s`;
}, 250);

// Keep the state channel alive through idle periods (the server closes it after 10 min).
setInterval(() => conn.ping(Date.now()), 60000);

chooseDataset().then(() => {
  conn.opts.dataset = vx.dataset;
  conn.start();
});
