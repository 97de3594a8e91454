// What is drawn over the picture, on its own canvas (#hud), never into the frame: the scale
// bar (2D and 3D), and in 3D the axes marker and the volume's bounding box. Drawn here from
// the scene the frame on screen reflects, so the server's frames stay exactly what
// `voxcast render` makes of the same scene (the browser tests compare them), a screenshot
// holds only the data, and the overlay costs no render.

import {cameraBasis} from './rotation.js';

// Metres per unit of the OME-NGFF length units (the ones a scale bar can convert between).
const LENGTH_M = {
  angstrom: 1e-10, picometer: 1e-12, nanometer: 1e-9, micrometer: 1e-6, millimeter: 1e-3,
  centimeter: 1e-2, decimeter: 1e-1, meter: 1, kilometer: 1e3,
};
const PREFIXES = [[1e3, 'km'], [1, 'm'], [1e-3, 'mm'], [1e-6, 'µm'], [1e-9, 'nm'], [1e-12, 'pm']];
const SYMBOL = {angstrom: 'Å', picometer: 'pm', nanometer: 'nm', micrometer: 'µm', millimeter: 'mm',
                centimeter: 'cm', decimeter: 'dm', meter: 'm', kilometer: 'km', inch: 'in',
                foot: 'ft', yard: 'yd', mile: 'mi', parsec: 'pc'};

// The largest 1, 2 or 5 x 10^k that is at most `max` (> 0).
export function niceLength(max) {
  if (!(max > 0) || !Number.isFinite(max)) return 0;
  const p = Math.pow(10, Math.floor(Math.log10(max)));
  for (const m of [5, 2, 1]) if (m * p <= max * (1 + 1e-9)) return m * p;
  return p;
}

function trim(x) {
  return String(Number(x.toPrecision(6)));
}

// The label of a length in `unit`: SI lengths switch prefix so that the number is in
// [1, 1000) (1000 µm is "1 mm"); other units keep theirs; no unit, just the number.
export function lengthLabel(length, unit) {
  const m = LENGTH_M[unit];
  if (m) {
    const metres = length * m;
    for (const [f, sym] of PREFIXES)
      if (metres >= f * (1 - 1e-9)) return `${trim(metres / f)} ${sym}`;
    return `${trim(metres / 1e-12)} pm`;
  }
  return unit ? `${trim(length)} ${SYMBOL[unit] || unit}` : trim(length);
}

// The scale bar for `zoom` frame pixels per world unit: a nice length at most `maxPx` long.
export function scaleBar(zoom, unit, maxPx = 160) {
  const length = niceLength(maxPx / zoom);
  return {length, px: length * zoom, label: lengthLabel(length, unit)};
}

// Screen position of world point p (displayed axes, (z, y, x) camera order), as
// render/camera.hpp projects it.
function projector(camera, W, H) {
  const b = cameraBasis(camera.angles);
  const c = camera.center;
  const zoom = camera.zoom;
  const persp = camera.perspective > 0;
  const dist = persp ? H / 2 / zoom / Math.tan(camera.perspective * Math.PI / 360) : 0;
  const from = persp ? c.map((v, k) => v - dist * b.view[k]) : c;
  const dot = (u, v) => u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
  return (p) => {
    const d = p.map((v, k) => v - from[k]);
    const depth = dot(d, b.view);
    const s = persp ? dist / depth : 1;
    return {x: W / 2 + zoom * s * dot(d, b.right), y: H / 2 - zoom * s * dot(d, b.up), depth};
  };
}

const AXIS_COLOURS = ['#5aa0ff', '#5fd35f', '#ff6060'];  // z, y, x of the camera's order

// Draws the overlay for `scene` (the one the frame on screen reflects) onto `hud`, whose
// backing store matches its CSS size times dpr; the frame is letterboxed in it. `axes`:
// worldAxes() of the dataset (names, units, extents) or null. Returns what it drew (tests).
export function drawHud(hud, scene, axes, dpr = 1) {
  const ctx = hud.getContext('2d');
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, hud.width, hud.height);
  const out = {scaleBar: null, axes: null, box: null};
  if (!scene || !scene.canvas || !scene.camera || !scene.dims || !axes) return out;
  const W = scene.canvas.width, H = scene.canvas.height;
  const k = Math.min(hud.width / W, hud.height / H);
  if (!(k > 0)) return out;
  // Frame pixels -> hud pixels.
  const ox = (hud.width - W * k) / 2, oy = (hud.height - H * k) / 2;
  ctx.setTransform(k, 0, 0, k, ox, oy);
  const font = (px) => `${px / k}px system-ui, sans-serif`;
  const order = scene.dims.order || [];
  const nd = scene.dims.ndisplay === 3 ? 3 : 2;
  const shown = order.slice(order.length - nd).map((a) => axes[a]).filter(Boolean);
  if (shown.length !== nd) return out;

  // Scale bar, bottom right: the displayed axes' unit when they share one.
  const units = new Set(shown.map((a) => a.unit || ''));
  const unit = units.size === 1 ? [...units][0] : '';
  const bar = scaleBar(scene.camera.zoom, unit, Math.min(200, W / 4) / 1);
  if (bar.length > 0) {
    const x1 = W - 16 / k * dpr, y = H - 16 / k * dpr, x0 = x1 - bar.px;
    ctx.fillStyle = 'rgba(0, 0, 0, 0.45)';
    ctx.fillRect(x0 - 6 / k, y - 22 / k * dpr, bar.px + 12 / k, 28 / k * dpr);
    ctx.fillStyle = '#fff';
    ctx.fillRect(x0, y - 3 / k * dpr, bar.px, 3 / k * dpr);
    ctx.font = font(11 * dpr);
    ctx.textAlign = 'center';
    ctx.fillText(bar.label + (units.size > 1 ? ' (mixed units)' : ''), (x0 + x1) / 2, y - 8 / k * dpr);
    out.scaleBar = {length: bar.length, px: bar.px, label: bar.label};
  }
  if (nd !== 3) return out;

  // 3D: the bounding box of the volume (voxel edges) and the axes marker.
  const project = projector(scene.camera, W, H);
  const lo = shown.map((a) => a.lo - a.step / 2), hi = shown.map((a) => a.hi + a.step / 2);
  const corners = [];
  for (let i = 0; i < 8; ++i)
    corners.push(project([i & 4 ? hi[0] : lo[0], i & 2 ? hi[1] : lo[1], i & 1 ? hi[2] : lo[2]]));
  if (corners.every((p) => p.depth > 0 || !(scene.camera.perspective > 0))) {
    ctx.strokeStyle = 'rgba(255, 255, 255, 0.55)';
    ctx.lineWidth = 1 / k * dpr;
    ctx.beginPath();
    for (let i = 0; i < 8; ++i)
      for (const bit of [1, 2, 4]) {
        if (i & bit) continue;
        ctx.moveTo(corners[i].x, corners[i].y);
        ctx.lineTo(corners[i | bit].x, corners[i | bit].y);
      }
    ctx.stroke();
    out.box = corners.map((p) => [p.x, p.y]);
  }
  const b = cameraBasis(scene.camera.angles);
  const len = 28 / k * dpr, cx = 44 / k * dpr, cy = H - 44 / k * dpr;
  ctx.lineWidth = 2 / k * dpr;
  ctx.font = font(11 * dpr);
  ctx.textAlign = 'center';
  out.axes = [];
  // Farthest first, so the nearest axis is drawn on top.
  const idx = [0, 1, 2].sort((i, j) => b.view[j] - b.view[i]);
  for (const i of idx) {
    const ex = b.right[i] * len, ey = -b.up[i] * len;
    ctx.strokeStyle = ctx.fillStyle = AXIS_COLOURS[i];
    ctx.beginPath();
    ctx.moveTo(cx, cy);
    ctx.lineTo(cx + ex, cy + ey);
    ctx.stroke();
    ctx.fillText(shown[i].name, cx + ex * 1.35, cy + ey * 1.35 + 4 / k);
    out.axes.push({name: shown[i].name, dx: ex * k, dy: ey * k});
  }
  return out;
}
