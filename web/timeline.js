// The "movie" section of the side panel: a timeline strip of keyframes (docs/movies.md).
// "+ keyframe" takes the current view; each keyframe has the seconds it takes to reach it
// from the one before and an easing, moves up or down, goes to its view when clicked, and
// can be deleted. "preview" plays the timeline in the live view at its real speed: the
// server steps the scene (interactive-quality frames while it plays, a final one where it
// stops; the button pauses it); "render movie" submits a `movie` job through the jobs panel,
// which shows its progress and then a <video>. sceneAt() interpolates as the server does.
import {clone} from './protocol.js';
import {anglesFromMatrix, matrixFromAngles} from './rotation.js';
import {alertBox, el} from './panel.js';

const SIZES = ['640x360', '1280x720', '1920x1080'];

// ---- interpolation, as the server's (src/render/timeline.cpp, docs/movies.md) -----------

export function ease(easing, u) {
  u = Math.max(0, Math.min(1, u));
  return easing === 'ease-in-out' ? u * u * (3 - 2 * u) : u;
}

function quatFromMatrix(m) {  // unit quaternion (w, x, y, z) of a rotation matrix
  const t = m[0][0] + m[1][1] + m[2][2];
  let q;
  if (t > 0) {
    const s = Math.sqrt(t + 1) * 2;
    q = [s / 4, (m[2][1] - m[1][2]) / s, (m[0][2] - m[2][0]) / s, (m[1][0] - m[0][1]) / s];
  } else if (m[0][0] > m[1][1] && m[0][0] > m[2][2]) {
    const s = Math.sqrt(1 + m[0][0] - m[1][1] - m[2][2]) * 2;
    q = [(m[2][1] - m[1][2]) / s, s / 4, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s];
  } else if (m[1][1] > m[2][2]) {
    const s = Math.sqrt(1 + m[1][1] - m[0][0] - m[2][2]) * 2;
    q = [(m[0][2] - m[2][0]) / s, (m[0][1] + m[1][0]) / s, s / 4, (m[1][2] + m[2][1]) / s];
  } else {
    const s = Math.sqrt(1 + m[2][2] - m[0][0] - m[1][1]) * 2;
    q = [(m[1][0] - m[0][1]) / s, (m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, s / 4];
  }
  return q;
}

function matrixFromQuat([w, x, y, z]) {
  return [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
          [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
          [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]];
}

// Slerp along the shorter arc.
export function slerp(a, b, u) {
  let d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
  if (d < 0) { b = b.map((v) => -v); d = -d; }
  let out;
  if (d > 1 - 1e-9) {
    out = a.map((v, i) => v + (b[i] - v) * u);
  } else {
    const th = Math.acos(Math.min(1, d)), s = Math.sin(th);
    const wa = Math.sin((1 - u) * th) / s, wb = Math.sin(u * th) / s;
    out = a.map((v, i) => wa * v + wb * b[i]);
  }
  const n = Math.hypot(...out);
  return out.map((v) => v / n);
}

const lerp = (a, b, u) => a + (b - a) * u;
const lerpArr = (a, b, u) =>
  (Array.isArray(a) && Array.isArray(b) && a.length === b.length ? a.map((v, i) => lerp(v, b[i], u)) : null);

// The scene between a and b at eased fraction u: numbers lerp (zoom geometrically), the
// camera turns by slerp, everything else switches at the midpoint.
export function interpolate(a, b, u) {
  if (u <= 0) return clone(a);
  if (u >= 1) return clone(b);
  const s = clone(u >= 0.5 ? b : a);
  const ca = a.camera || {}, cb = b.camera || {};
  if (s.camera) {
    const center = lerpArr(ca.center, cb.center, u);
    if (center) s.camera.center = center;
    if (ca.zoom > 0 && cb.zoom > 0) s.camera.zoom = Math.exp(lerp(Math.log(ca.zoom), Math.log(cb.zoom), u));
    if (Array.isArray(ca.angles) && Array.isArray(cb.angles))
      s.camera.angles = anglesFromMatrix(matrixFromQuat(slerp(
          quatFromMatrix(matrixFromAngles(ca.angles)), quatFromMatrix(matrixFromAngles(cb.angles)), u)));
  }
  const pa = a.dims && a.dims.point, pb = b.dims && b.dims.point;
  if (s.dims && lerpArr(pa, pb, u)) s.dims.point = lerpArr(pa, pb, u);
  const la = a.layers || [], lb = b.layers || [];
  for (let i = 0; i < Math.min(la.length, lb.length, (s.layers || []).length); ++i) {
    for (const k of ['opacity', 'gamma', 'iso_threshold', 'attenuation'])
      if (typeof la[i][k] === 'number' && typeof lb[i][k] === 'number') s.layers[i][k] = lerp(la[i][k], lb[i][k], u);
    const cl = lerpArr(la[i].contrast_limits, lb[i].contrast_limits, u);
    if (cl) s.layers[i].contrast_limits = cl;
  }
  return s;
}

// The scene of a timeline document at time t (clamped to its ends).
export function sceneAt(tl, t) {
  const k = tl.keyframes;
  if (t <= k[0].time) return clone(k[0].scene);
  for (let i = 1; i < k.length; ++i)
    if (t < k[i].time) {
      const u = (t - k[i - 1].time) / (k[i].time - k[i - 1].time);
      return interpolate(k[i - 1].scene, k[i].scene, ease(k[i].easing, u));
    }
  return clone(k[k.length - 1].scene);
}

// The part of a scene a keyframe keeps: everything but the canvas (the movie's size decides).
export function keyframeScene(scene) {
  const s = clone(scene || {});
  delete s.canvas;
  return s;
}

// The timeline document of a strip: times are the running sum of the durations (the first
// keyframe is at 0).
export function toTimeline(frames) {
  let t = 0;
  return {
    version: 1,
    keyframes: frames.map((k, i) => {
      if (i > 0) t += Math.max(0.05, +k.duration || 0);
      return {time: +t.toFixed(3), scene: clone(k.scene), easing: k.easing || 'linear'};
    }),
  };
}

// A timeline document from a link (the URL hash's "timeline") as keyframes of the strip:
// {frames} or {error} saying what is wrong with it.
export function framesFromTimeline(doc) {
  const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);
  if (!isObj(doc) || !Array.isArray(doc.keyframes)) return {error: 'expected {"keyframes": [...]}'};
  if (doc.keyframes.length > 1000) return {error: `${doc.keyframes.length} keyframes: at most 1000`};
  const frames = [];
  let prev = null;
  for (const [i, k] of doc.keyframes.entries()) {
    if (!isObj(k)) return {error: `keyframes[${i}]: not an object`};
    if (typeof k.time !== 'number' || !Number.isFinite(k.time) || k.time < 0 || k.time > 3600)
      return {error: `keyframes[${i}].time: a number of seconds, 0 to 3600`};
    if (prev !== null && !(k.time > prev))
      return {error: `keyframes[${i}].time: ${k.time} is not after ${prev} (keyframes out of order)`};
    if (!isObj(k.scene)) return {error: `keyframes[${i}].scene: not a scene object`};
    if (k.easing !== undefined && k.easing !== 'linear' && k.easing !== 'ease-in-out')
      return {error: `keyframes[${i}].easing: '${k.easing}' is not linear or ease-in-out`};
    frames.push({scene: keyframeScene(k.scene), duration: prev === null ? 0 : +(k.time - prev).toFixed(3),
                 easing: k.easing || 'linear'});
    prev = k.time;
  }
  return {frames};
}

// mountTimeline(root, {scene: () => the current scene, apply(scene), dataset: () => index,
//                      jobs: the jobs panel (submitJob), changed: () => after every edit})
export function mountTimeline(root, opts = {}) {
  const frames = [];  // {scene, duration, easing}

  const addBtn = el('button', {class: 'add-keyframe', text: '+ keyframe',
                               title: 'add the current view as a keyframe',
                               onclick: () => add()});
  const strip = el('ol', {class: 'timeline-strip'});
  const fps = el('input', {type: 'number', class: 'num', name: 'fps', value: 30, min: 1, max: 120,
                           step: 1, title: 'frames per second'});
  const size = el('select', {name: 'movie-size', title: 'frame size'},
                  ...SIZES.map((s) => el('option', {value: s, text: s})));
  size.value = '1280x720';
  const format = el('select', {name: 'movie-format', title: 'MP4 (H.264) plays everywhere; ' +
                               'WebM (VP9) is smaller and slower to encode'},
                    el('option', {value: 'mp4', text: 'MP4'}),
                    el('option', {value: 'webm', text: 'WebM'}));
  const previewBtn = el('button', {class: 'preview', text: 'preview',
                                   title: 'play the timeline in the view at its real speed',
                                   onclick: () => preview()});
  const renderBtn = el('button', {class: 'render-movie', text: 'render movie',
                                  onclick: () => render()});
  const errBox = alertBox('timeline-error');
  root.replaceChildren(
      el('div', {class: 'actions'}, addBtn), strip,
      el('div', {class: 'row'}, el('label', {text: 'fps'}), fps, size, format),
      el('div', {class: 'actions'}, previewBtn, renderBtn), errBox);

  const showError = (msg) => errBox.show(msg);

  function add() {
    const s = opts.scene ? opts.scene() : null;
    if (!s) return showError('no view yet');
    showError(null);
    frames.push({scene: keyframeScene(s), duration: frames.length ? 2 : 0, easing: 'linear'});
    draw();
  }

  function move(i, d) {
    const j = i + d;
    if (j < 0 || j >= frames.length) return;
    [frames[i], frames[j]] = [frames[j], frames[i]];
    draw();
  }

  function remove(i) {
    frames.splice(i, 1);
    draw();
  }

  function draw() {
    if (opts.changed) opts.changed();
    const items = frames.map((k, i) => {
      const dur = el('input', {type: 'number', class: 'num duration', value: k.duration, min: 0.05,
                               max: 600, step: 0.5, title: 'seconds from the previous keyframe'});
      dur.disabled = i === 0;
      dur.addEventListener('change', () => {
        k.duration = +dur.value;
        if (opts.changed) opts.changed();
      });
      const ease = el('select', {class: 'easing', title: 'how the view moves into this keyframe'},
                      el('option', {value: 'linear', text: 'linear'}),
                      el('option', {value: 'ease-in-out', text: 'ease-in-out'}));
      ease.value = k.easing;
      ease.addEventListener('change', () => {
        k.easing = ease.value;
        if (opts.changed) opts.changed();
      });
      return el('li', {class: 'keyframe', 'data-index': i},
                el('button', {class: 'go', text: `#${i + 1}`, title: 'go to this view',
                              onclick: () => opts.apply && opts.apply(clone(k.scene))}),
                dur, ease,
                el('button', {class: 'up', text: '↑', title: 'earlier', onclick: () => move(i, -1)}),
                el('button', {class: 'down', text: '↓', title: 'later', onclick: () => move(i, 1)}),
                el('button', {class: 'delete', text: '✕', title: 'delete', onclick: () => remove(i)}));
    });
    if (!items.length) items.push(el('li', {class: 'empty', text: 'no keyframes'}));
    strip.replaceChildren(...items);
    renderBtn.disabled = frames.length === 0;
    previewBtn.disabled = frames.length === 0;
  }

  // Plays the timeline through the live view at its real speed. With a server (opts.play),
  // the server steps the scene (docs/protocol.md `timeline.play`): interactive frames while
  // it plays, a final one where it stops; the button pauses it. Without one, this page
  // steps it through opts.apply.
  let playing = null;  // an animation frame id, or true while the server plays
  function preview() {
    if (playing === true) {
      if (opts.pause) opts.pause();
      return;
    }
    if (playing) cancelAnimationFrame(playing);
    const tl = toTimeline(frames);
    if (opts.play && opts.play(tl)) {
      setPlaying(true);
      return;
    }
    const end = tl.keyframes[tl.keyframes.length - 1].time;
    const t0 = performance.now();
    const step = () => {
      const t = (performance.now() - t0) / 1000;
      const done = t >= end;
      if (opts.apply) opts.apply(sceneAt(tl, Math.min(t, end)), !done);
      playing = done ? null : requestAnimationFrame(step);
    };
    step();
  }

  function setPlaying(on) {
    playing = on ? true : null;
    previewBtn.textContent = on ? 'pause' : 'preview';
    previewBtn.classList.toggle('playing', !!on);
  }

  // The server's word on its preview (timeline.state, timeline.event, an ack's `timeline`).
  function serverState(msg) {
    if (msg.reason === 'error' && msg.message) showError(`preview: ${msg.message}`);
    setPlaying(!!msg.playing);
  }

  async function render() {
    if (!frames.length) return null;
    const [w, h] = size.value.split('x').map(Number);
    const params = {timeline: toTimeline(frames), fps: +fps.value, width: w, height: h};
    if (format.value !== 'mp4') params.format = format.value;
    if (opts.dataset && opts.dataset() > 0) params.dataset = opts.dataset();
    showError(null);
    if (!opts.jobs) return null;
    const job = await opts.jobs.submitJob('movie', params);
    if (!job && opts.jobs.error) showError(opts.jobs.error);
    return job;
  }

  // Replaces the strip with a timeline document's keyframes (a link's); an error message
  // when it is not a timeline (the strip is then left as it was).
  function load(doc) {
    const got = framesFromTimeline(doc);
    if (got.error) return got.error;
    frames.splice(0, frames.length, ...got.frames);
    draw();
    return null;
  }

  draw();
  return {
    load,
    get keyframes() { return frames; },
    get timeline() { return toTimeline(frames); },
    get playing() { return playing !== null; },
    add, move, remove, preview, render, serverState,
  };
}
