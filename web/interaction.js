// Mouse, wheel and keyboard on the view, napari style. 2D: drag pans, wheel zooms about the
// cursor. 3D: drag orbits, shift-drag pans, wheel zooms. Up/Down and PageUp/PageDown step
// through the first sliced axis. Every gesture becomes a camera or dims patch handed to
// `api.queue(patch, interactive)`, which sends at most one update per animation frame.

import {cameraBasis, orbit} from './rotation.js';
import {DimsBar} from './panel.js';

const ORBIT_DEG_PER_PX = 0.5;
const MIN_ZOOM = 1e-6;
const MAX_ZOOM = 1e6;

// api: view() -> the scene as the client last set it; axes() -> world axes or null;
// queue(patch, interactive); frameCanvas: the canvas element.
export function attachInteraction(canvas, api) {
  let drag = null;

  // Frame pixels per CSS pixel, and the CSS position of the frame's centre (the canvas is
  // letterboxed with object-fit: contain).
  function geometry() {
    const r = canvas.getBoundingClientRect();
    const v = api.view();
    // The scene's canvas, in whose pixels the camera moves: the element may still hold an
    // older frame of another size for a moment (a resize in flight).
    const fw = v && v.canvas ? v.canvas.width : canvas.width > 16 ? canvas.width : r.width;
    const fh = v && v.canvas ? v.canvas.height : canvas.height > 16 ? canvas.height : r.height;
    const k = Math.min(r.width / fw, r.height / fh) || 1;
    return {s: 1 / k, cx: r.left + r.width / 2, cy: r.top + r.height / 2};
  }

  const is3d = (v) => v && v.dims && v.dims.ndisplay === 3;

  // Moves the camera centre by a screen displacement (frame pixels), content following.
  function panned(v, dxPx, dyPx) {
    const c = v.camera.center.slice();
    while (c.length < 3) c.unshift(0);
    const z = v.camera.zoom;
    if (!is3d(v)) {
      c[1] -= dyPx / z;
      c[2] -= dxPx / z;
    } else {
      const {up, right} = cameraBasis(v.camera.angles);
      for (let i = 0; i < 3; ++i) c[i] += (-right[i] * dxPx + up[i] * dyPx) / z;
    }
    return c;
  }

  canvas.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 && e.button !== 1) return;
    const v = api.view();
    if (!v || !v.camera) return;
    canvas.setPointerCapture(e.pointerId);
    canvas.focus({preventScroll: true});
    drag = {id: e.pointerId, x: e.clientX, y: e.clientY, pan: !is3d(v) || e.shiftKey || e.button === 1};
    canvas.classList.add('dragging');
    e.preventDefault();
  });

  canvas.addEventListener('pointermove', (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!dx && !dy) return;
    drag.x = e.clientX;
    drag.y = e.clientY;
    const v = api.view();
    if (drag.pan) {
      const {s} = geometry();
      api.queue({camera: {center: panned(v, dx * s, dy * s)}}, true);
    } else {
      api.queue({camera: {angles: orbit(v.camera.angles, dx * ORBIT_DEG_PER_PX, dy * ORBIT_DEG_PER_PX)}}, true);
    }
  });

  const end = (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    drag = null;
    canvas.classList.remove('dragging');
    // The server sends the final-quality frame by itself after the last interactive update.
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  canvas.addEventListener('lostpointercapture', end);

  canvas.addEventListener('wheel', (e) => {
    const v = api.view();
    if (!v || !v.camera) return;
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.0015;
    const f = Math.exp(-e.deltaY * unit);
    const z0 = v.camera.zoom;
    const z1 = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, z0 * f));
    const patch = {camera: {zoom: z1}};
    if (!is3d(v)) {
      // Keep the world point under the cursor where it is.
      const {s, cx, cy} = geometry();
      const px = (e.clientX - cx) * s, py = (e.clientY - cy) * s;
      const c = v.camera.center.slice();
      while (c.length < 3) c.unshift(0);
      c[1] += py * (1 / z0 - 1 / z1);
      c[2] += px * (1 / z0 - 1 / z1);
      patch.camera.center = c;
    }
    api.queue(patch, true);
  }, {passive: false});

  window.addEventListener('keydown', (e) => {
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) return;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const steps = {ArrowUp: 1, ArrowDown: -1, PageUp: 10, PageDown: -10}[e.key];
    if (!steps) return;
    const v = api.view();
    const sliced = DimsBar.sliced(v);
    if (!sliced.length) return;
    e.preventDefault();
    const a = sliced[0];
    const axes = api.axes();
    const ax = axes && axes[a];
    const point = v.dims.point.slice();
    let p = point[a] + steps;
    if (ax) {
      // Whole voxels: from the nearest voxel centre, `steps` voxels on, within the data.
      const last = Math.round((ax.hi - ax.lo) / ax.step);
      const i = Math.min(last, Math.max(0, Math.round((point[a] - ax.lo) / ax.step) + steps));
      p = ax.lo + i * ax.step;
    }
    if (p === point[a]) return;
    point[a] = p;
    api.queue({dims: {point}}, false);
  });
}
