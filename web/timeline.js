// The "movie" section of the side panel: a timeline strip of keyframes (docs/movies.md).
// "+ keyframe" takes the current view; each keyframe has the seconds it takes to reach it
// from the one before and an easing, moves up or down, goes to its view when clicked, and
// can be deleted. "preview" steps the live view through the keyframes at their times (the
// server renders each; the movie interpolates between them); "render movie" submits a
// `movie` job through the jobs panel, which shows its progress and then a <video>.
import {clone} from './protocol.js';

const SIZES = ['640x360', '1280x720', '1920x1080'];

function el(tag, attrs = {}, ...children) {
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

// mountTimeline(root, {scene: () => the current scene, apply(scene), dataset: () => index,
//                      jobs: the jobs panel (submitJob)})
export function mountTimeline(root, opts = {}) {
  const frames = [];  // {scene, duration, easing}
  let previewTimers = [];

  const addBtn = el('button', {class: 'add-keyframe', text: '+ keyframe',
                               title: 'add the current view as a keyframe',
                               onclick: () => add()});
  const strip = el('ol', {class: 'timeline-strip'});
  const fps = el('input', {type: 'number', class: 'num', name: 'fps', value: 30, min: 1, max: 120,
                           step: 1, title: 'frames per second'});
  const size = el('select', {name: 'movie-size', title: 'frame size'},
                  ...SIZES.map((s) => el('option', {value: s, text: s})));
  size.value = '1280x720';
  const previewBtn = el('button', {class: 'preview', text: 'preview',
                                   title: 'step the view through the keyframes at their times',
                                   onclick: () => preview()});
  const renderBtn = el('button', {class: 'render-movie', text: 'render movie',
                                  onclick: () => render()});
  const errBox = el('div', {class: 'timeline-error', role: 'alert', hidden: ''});
  root.replaceChildren(
      el('div', {class: 'actions'}, addBtn), strip,
      el('div', {class: 'row'}, el('label', {text: 'fps'}), fps, size),
      el('div', {class: 'actions'}, previewBtn, renderBtn), errBox);

  function showError(msg) {
    errBox.textContent = msg || '';
    errBox.hidden = !msg;
  }

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
    const items = frames.map((k, i) => {
      const dur = el('input', {type: 'number', class: 'num duration', value: k.duration, min: 0.05,
                               max: 600, step: 0.5, title: 'seconds from the previous keyframe'});
      dur.disabled = i === 0;
      dur.addEventListener('change', () => { k.duration = +dur.value; });
      const ease = el('select', {class: 'easing', title: 'how the view moves into this keyframe'},
                      el('option', {value: 'linear', text: 'linear'}),
                      el('option', {value: 'ease-in-out', text: 'ease-in-out'}));
      ease.value = k.easing;
      ease.addEventListener('change', () => { k.easing = ease.value; });
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

  function preview() {
    for (const t of previewTimers) clearTimeout(t);
    const tl = toTimeline(frames);
    previewTimers = tl.keyframes.map((k) =>
      setTimeout(() => opts.apply && opts.apply(clone(k.scene)), k.time * 1000));
  }

  async function render() {
    if (!frames.length) return null;
    const [w, h] = size.value.split('x').map(Number);
    const params = {timeline: toTimeline(frames), fps: +fps.value, width: w, height: h};
    if (opts.dataset && opts.dataset() > 0) params.dataset = opts.dataset();
    showError(null);
    if (!opts.jobs) return null;
    const job = await opts.jobs.submitJob('movie', params);
    if (!job && opts.jobs.error) showError(opts.jobs.error);
    return job;
  }

  draw();
  return {
    get keyframes() { return frames; },
    get timeline() { return toTimeline(frames); },
    add, move, remove, preview, render,
  };
}
