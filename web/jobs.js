// The "orbit" section of the side panel: renders an orbit of the current view as a server
// job (docs/protocol.md, "Jobs"; docs/orbit.md), follows its progress on /ws/events (polling
// GET /api/v1/jobs/{id} every second while that socket is down), then shows the result in a
// <voxcast-orbit> with a snippet to embed it, and lists the server's past jobs.
//
// For scripts and tests: mountJobs() returns {list, current, events, error, submit(params),
// cancel(id), show(id), refresh()}; app.js puts it at window.voxcast.jobs.

import {clone, withToken, wsUrl} from './protocol.js';
import './voxcast-orbit.js';
import {alertBox, el} from './panel.js';

const API = '/api/v1/jobs';
const ACTIVE = new Set(['queued', 'running']);
const DEFAULTS = {columns: 12, rows: 8, size: 256};
const BACKOFF_MIN_S = 1;
const BACKOFF_MAX_S = 10;
export const SNIPPET = '<script type="module" src="voxcast-orbit.js"></script>\n' +
                       '<voxcast-orbit src="orbit.json"></voxcast-orbit>';

export function duration(s) {
  if (!Number.isFinite(s) || s < 0) return '–';
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

// How the panel shows each kind of job (GET /api/v1/job-kinds lists them): what progress
// counts, a one-line summary of its params, and its main result file (of the job's params). A
// kind not in the table is shown by its name, with its files as links.
export const KINDS = {
  orbit: {unit: 'views', main: () => 'index.html',
          summary: (p) => `${p.columns || 30}×${p.rows || 30} @ ${p.size || 256} px`},
  movie: {unit: 'frames', main: (p) => `movie.${p.format || 'mp4'}`,
          summary: (p) => `${p.width || 1920}×${p.height || 1080} @ ${p.fps || 30} fps` +
                          (p.format === 'webm' ? ' WebM' : '')},
};
const kindOf = (j) => KINDS[j && j.kind] ||
  {unit: 'units', main: () => null, summary: () => (j && j.kind) || 'job'};
const mainFile = (j) => kindOf(j).main((j && j.params) || {});

// "running 37/96 · 4.2 views/s · ETA 15 s" and the like.
export function progressText(j) {
  if (!j) return '';
  const unit = kindOf(j).unit;
  const n = `${j.done || 0}/${j.total || '?'}`;
  switch (j.state) {
    case 'queued':
      return j.queue_position ? `queued (position ${j.queue_position})` : 'queued';
    case 'running': {
      // A job handed to a cluster scheduler may still wait there: say what it says.
      const sch = j.scheduler;
      if (sch && ['SUBMITTED', 'PENDING', 'CONFIGURING'].includes(sch.state)) {
        const why = sch.reason ? `: ${sch.reason}` : '';
        return `waiting in ${sch.name} (job ${sch.job}, ${sch.state.toLowerCase()}${why})`;
      }
      const rate = j.rate > 0 ? ` · ${j.rate.toFixed(j.rate < 10 ? 1 : 0)} ${unit}/s` : '';
      const eta = j.rate > 0 && j.done > 0 ? ` · ETA ${duration(j.eta_s)}` : '';
      const where = sch ? ` · ${sch.name} job ${sch.job}` : '';
      return `running ${n}${rate}${eta}${where}`;
    }
    case 'succeeded':
      return `done: ${n} ${unit} in ${duration((j.finished || 0) - (j.started || 0))}`;
    case 'failed':
      return `failed: ${j.error || 'unknown error'}`;
    case 'canceled':
      return `canceled at ${n}`;
    default:
      return `${j.state} ${n}`;
  }
}

function createdText(t) {
  if (!t) return '';
  const d = new Date(t * 1000);
  const today = d.toDateString() === new Date().toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

// The part of a scene an orbit takes: layers and dims always; the camera only from a 3D view
// (a 2D camera has no 3D center and angles; without one the server frames the whole volume),
// its zoom scaled so the tile shows what the canvas shows.
export function orbitView(scene, size) {
  if (!scene) return null;
  const v = {};
  if (scene.dims) v.dims = clone(scene.dims);
  if (scene.layers) v.layers = clone(scene.layers);
  if (scene.dims && scene.dims.ndisplay === 3 && scene.camera) {
    v.camera = clone(scene.camera);
    const c = scene.canvas;
    if (c && c.width > 0 && c.height > 0 && v.camera.zoom > 0)
      v.camera.zoom *= size / Math.min(c.width, c.height);
  }
  return v;
}

// The dataset a job is of, for the list: its name (older jobs: the index in its params).
export function datasetText(j) {
  if (j && j.dataset && j.dataset.name) return j.dataset.name;
  const p = (j && j.params) || {};
  return `dataset ${p.dataset || 0}`;
}

// mountJobs(root, {token, scene: () => the current scene, dataset: () => its index,
//                  notice(text)})
export function mountJobs(root, opts = {}) {
  const token = opts.token || null;
  const api = (path = '') => withToken(API + path, token);
  const fileUrl = (id, name) => api(`/${encodeURIComponent(id)}/files/${encodeURIComponent(name)}`);
  const jobs = new Map();   // id -> job, as the server last said
  let currentId = null;     // the job the progress and embed boxes show
  let error = null;         // the message in the error box
  let events = 'connecting';  // 'open' | 'connecting' | 'polling'
  let ws = null;
  let backoff = BACKOFF_MIN_S;
  let retryUntil = 0;       // after a 429: when the button works again (performance.now())
  let embedId = null;       // the job whose <voxcast-orbit> is shown
  let blobUrl = null;

  // ---- the DOM -------------------------------------------------------------------------
  const num = (name, value, min, max, title) =>
    el('input', {type: 'number', class: 'num', name, value, min, max, step: 1, title});
  const columns = num('columns', DEFAULTS.columns, 1, 100, 'columns: yaw angles');
  const rows = num('rows', DEFAULTS.rows, 1, 100, 'rows: pitch angles');
  const size = num('size', DEFAULTS.size, 16, 1024, 'tile size in pixels');
  const renderBtn = el('button', {class: 'render', text: 'Render orbit',
                                  title: 'render the current view from every angle of the grid',
                                  onclick: () => submit()});
  const errBox = alertBox('jobs-error');
  const state = el('div', {class: 'job-state'});
  const bar = el('progress', {max: 1, value: 0});
  const cancelBtn = el('button', {class: 'cancel', text: 'Cancel', onclick: () => cancel(currentId)});
  const progressBox = el('div', {class: 'job-progress', hidden: ''}, state,
                         el('div', {class: 'bar-row'}, bar, cancelBtn));
  const viewer = el('div', {class: 'orbit-viewer'});
  const snippet = el('textarea', {class: 'snippet', rows: 3, readonly: '', spellcheck: 'false'});
  snippet.value = SNIPPET;
  const copyBtn = el('button', {class: 'copy', text: 'Copy', onclick: () => copy()});
  const pageLink = el('a', {class: 'page-link', target: '_blank', rel: 'noopener', text: 'open page'});
  const jsonLink = el('a', {class: 'json-link', target: '_blank', rel: 'noopener', text: 'orbit.json'});
  const video = el('video', {class: 'movie', controls: '', playsinline: '', preload: 'metadata'});
  const videoLink = el('a', {class: 'download', text: 'download'});
  const videoSnippet = el('textarea', {class: 'snippet', rows: 2, readonly: '', spellcheck: 'false'});
  const videoBox = el('div', {class: 'movie-result', hidden: ''}, video,
                      el('div', {class: 'links'}, videoLink), videoSnippet);
  const embedBox = el('div', {class: 'orbit-embed', hidden: ''}, viewer,
                      el('div', {class: 'snippet-row'}, snippet, copyBtn),
                      el('div', {class: 'links'}, pageLink, jsonLink));
  const list = el('ul', {class: 'jobs-list'});
  root.replaceChildren(
      el('div', {class: 'row grid-row'}, el('label', {text: 'grid'}),
         el('span', {class: 'pair'}, columns, el('span', {text: '×'}), rows)),
      el('div', {class: 'row'}, el('label', {text: 'tile'}), size, el('span', {class: 'unit', text: 'px'})),
      el('div', {class: 'actions'}, renderBtn), errBox, progressBox, embedBox, videoBox,
      el('div', {class: 'section-title'}, 'past jobs'), list);

  // ---- the server ------------------------------------------------------------------------
  function showError(msg) {
    error = msg || null;
    errBox.show(error);
  }

  async function call(method, path, body) {
    const init = {method, cache: 'no-store'};
    if (body !== undefined) {
      init.headers = {'Content-Type': 'application/json'};
      init.body = JSON.stringify(body);
    }
    const r = await fetch(api(path), init);
    let data = null;
    try { data = await r.json(); } catch (e) { /* an empty or non-JSON body */ }
    return {status: r.status, ok: r.ok, data, retryAfter: r.headers.get('Retry-After')};
  }

  const why = (res) => (res.data && res.data.error && res.data.error.message) || `HTTP ${res.status}`;

  function upsert(job) {
    if (!job || !job.id) return;
    jobs.set(job.id, job);
    schedule();
  }

  async function submit(params = {}) {
    const p = {columns: +columns.value, rows: +rows.value, size: +size.value, ...params};
    // The dataset on screen (the page's ?dataset=), unless the caller names one.
    if (!('dataset' in p) && opts.dataset && opts.dataset() > 0) p.dataset = opts.dataset();
    if (!('view' in params)) {
      const view = orbitView(opts.scene ? opts.scene() : null, p.size || DEFAULTS.size);
      if (view) p.view = view;
    }
    return submitJob('orbit', p);
  }

  // Submits a job of any kind; its progress and result show here.
  async function submitJob(kind, p) {
    const wait = Math.ceil((retryUntil - performance.now()) / 1000);
    if (wait > 0) {
      showError(`the server is busy: try again in ${wait} s`);
      return null;
    }
    showError(null);
    renderBtn.disabled = true;
    try {
      const res = await call('POST', '', {kind, params: p});
      if (res.status === 429) {
        const s = parseInt(res.retryAfter, 10) || 5;
        retryUntil = performance.now() + s * 1000;
        showError(`the server is busy (${why(res)}): try again in ${s} s`);
        setTimeout(schedule, s * 1000 + 50);
        return null;
      }
      if (!res.ok || !res.data || !res.data.job) {
        showError(`could not start the ${kind}: ${why(res)}`);
        return null;
      }
      currentId = res.data.job.id;
      upsert(res.data.job);
      return res.data.job;
    } catch (e) {
      showError(`could not start the ${kind}: ${e.message}`);
      return null;
    } finally {
      renderBtn.disabled = performance.now() < retryUntil;
    }
  }

  async function cancel(id) {
    if (!id) return null;
    try {
      const res = await call('DELETE', `/${encodeURIComponent(id)}`);
      if (!res.ok) showError(`could not cancel: ${why(res)}`);
      else upsert(res.data && res.data.job);
      return res.data && res.data.job;
    } catch (e) {
      showError(`could not cancel: ${e.message}`);
      return null;
    }
  }

  async function refresh() {
    try {
      const res = await call('GET', '');
      if (!res.ok || !res.data || !Array.isArray(res.data.jobs)) throw new Error(why(res));
      setAll(res.data.jobs);
    } catch (e) {
      showError(`could not list the jobs: ${e.message}`);
    }
  }

  function setAll(arr) {
    jobs.clear();
    for (const j of arr) if (j && j.id) jobs.set(j.id, j);
    // After a reload: follow a job still under way.
    if (!currentId || !jobs.has(currentId)) {
      const active = sorted().find((j) => ACTIVE.has(j.state));
      currentId = active ? active.id : null;
    }
    schedule();
  }

  // /ws/events, reconnecting with backoff; polling covers the gaps.
  function connect() {
    events = 'connecting';
    let sock;
    try {
      sock = new WebSocket(wsUrl(location, '/ws/events', token));
    } catch (e) {
      return lost();
    }
    ws = sock;
    sock.onopen = () => { events = 'open'; backoff = BACKOFF_MIN_S; };
    sock.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === 'jobs' && Array.isArray(msg.jobs)) setAll(msg.jobs);
      else if (msg.type === 'job') upsert(msg.job);
    };
    sock.onerror = () => lost(sock);
    sock.onclose = () => lost(sock);
  }

  function lost(sock) {
    if (sock && sock !== ws) return;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(); } catch (e) { /* closing anyway */ }
    }
    ws = null;
    events = 'polling';
    setTimeout(connect, backoff * 1000);
    backoff = Math.min(BACKOFF_MAX_S, backoff * 2);
  }

  // The fallback: the current job once a second while the socket is not open.
  let pollBusy = false;
  setInterval(async () => {
    if (events === 'open' || pollBusy || !currentId) return;
    const j = jobs.get(currentId);
    if (j && !ACTIVE.has(j.state)) return;
    pollBusy = true;
    try {
      const res = await call('GET', `/${encodeURIComponent(currentId)}`);
      if (res.ok && res.data) upsert(res.data.job);
    } catch (e) { /* the server is away; the next tick tries again */ }
    pollBusy = false;
  }, 1000);

  // ---- showing it ------------------------------------------------------------------------
  function sorted() {
    return [...jobs.values()].sort((a, b) => (b.created || 0) - (a.created || 0));
  }

  let renderTimer = null;
  function schedule() {
    if (renderTimer === null) renderTimer = setTimeout(render, 30);
  }

  function render() {
    renderTimer = null;
    renderBtn.disabled = performance.now() < retryUntil;
    const j = currentId ? jobs.get(currentId) : null;
    progressBox.hidden = !j;
    if (j) {
      progressBox.dataset.state = j.state;
      progressBox.dataset.id = j.id;
      state.textContent = progressText(j);
      state.title = j.error || '';
      bar.max = Math.max(1, j.total || 1);
      bar.value = j.state === 'succeeded' ? bar.max : (j.done || 0);
      cancelBtn.hidden = !ACTIVE.has(j.state);
    }
    if (j && j.state === 'succeeded') embed(j);
    else if (embedId !== null) unembed();
    renderList();
  }

  function renderList() {
    const items = sorted().map((j) => {
      const p = j.params || {};
      const grid = `${j.kind || 'job'} ${kindOf(j).summary(p)}`;
      const li = el('li', {class: 'job', 'data-id': j.id, 'data-state': j.state},
                    el('span', {class: `badge ${j.state}`, text: j.state}),
                    el('span', {class: 'count', text: `${j.done || 0}/${j.total || '?'}`}),
                    el('span', {class: 'created', text: createdText(j.created)}),
                    el('span', {class: 'grid', text: grid}),
                    el('span', {class: 'dataset', text: datasetText(j),
                                title: j.dataset && j.dataset.location ? j.dataset.location : ''}));
      if (j.id === currentId) li.classList.add('current');
      if (j.error) li.title = j.error;
      const acts = el('span', {class: 'acts'});
      if (j.state === 'succeeded') {
        acts.append(el('button', {class: 'show', text: 'show', onclick: () => show(j.id)}));
        const main = mainFile(j);
        for (const f of main ? [main] : (j.files || []))
          acts.append(el('a', {href: fileUrl(j.id, f), target: '_blank', rel: 'noopener',
                               text: f === 'index.html' ? 'page' : f}));
      } else if (ACTIVE.has(j.state)) {
        acts.append(el('button', {class: 'cancel', text: 'cancel', onclick: () => cancel(j.id)}));
      }
      li.append(acts);
      return li;
    });
    if (!items.length) items.push(el('li', {class: 'empty', text: 'none yet'}));
    list.replaceChildren(...items);
  }

  function show(id) {
    if (!jobs.has(id)) return false;
    currentId = id;
    render();
    return true;
  }

  function unembed() {
    embedId = null;
    videoBox.hidden = true;
    video.removeAttribute('src');
    viewer.replaceChildren();
    embedBox.hidden = true;
    if (blobUrl) URL.revokeObjectURL(blobUrl);
    blobUrl = null;
  }

  // A finished job's result: a movie plays in a <video>; an orbit turns in <voxcast-orbit>.
  async function embed(j) {
    if (embedId === j.id) return;
    unembed();
    embedId = j.id;
    const main = mainFile(j);
    const movie = main && /\.(mp4|webm)$/.exec(main);
    if (movie) {
      const url = fileUrl(j.id, main);
      video.src = url;
      videoLink.href = url;
      videoLink.setAttribute('download', `${j.id}.${movie[1]}`);
      videoSnippet.value = `<video src="${main}" controls playsinline></video>`;
      videoBox.dataset.id = j.id;
      videoBox.hidden = false;
      return;
    }
    if (main !== 'index.html') return;
    embedBox.hidden = false;
    embedBox.dataset.id = j.id;
    pageLink.href = fileUrl(j.id, 'index.html');
    jsonLink.href = fileUrl(j.id, 'orbit.json');
    const tile = Math.min(256, (j.params && j.params.size) || 256);
    const orbit = el('voxcast-orbit', {width: tile, height: tile});
    let src = fileUrl(j.id, 'orbit.json');
    if (token) {
      // The component finds the sheets relative to orbit.json, which drops the token: give
      // it a copy of orbit.json whose sheets are absolute URLs with the token.
      try {
        const res = await fetch(src, {cache: 'no-store'});
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const m = await res.json();
        for (const s of m.sheets || []) s.file = location.origin + fileUrl(j.id, s.file);
        if (embedId !== j.id) return;
        blobUrl = URL.createObjectURL(new Blob([JSON.stringify(m)], {type: 'application/json'}));
        src = blobUrl;
      } catch (e) {
        showError(`could not read orbit.json: ${e.message}`);
      }
    }
    if (embedId !== j.id) return;
    orbit.setAttribute('src', src);
    viewer.replaceChildren(orbit);
  }

  async function copy() {
    try {
      await navigator.clipboard.writeText(snippet.value);
    } catch (e) {
      snippet.focus();
      snippet.select();
      try { document.execCommand('copy'); } catch (e2) { /* selected: the user can copy */ }
    }
    if (opts.notice) opts.notice('snippet copied', 2000);
  }

  render();
  refresh();
  connect();

  return {
    get list() { return sorted(); },
    get current() { return currentId ? jobs.get(currentId) || null : null; },
    get events() { return events; },
    get error() { return error; },
    submit,
    submitJob,
    cancel,
    show,
    refresh,
  };
}
