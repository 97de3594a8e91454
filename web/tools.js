// The probe (the voxel under the cursor, per visible layer) and the per-layer histograms:
// `probe` and `histogram` requests on the state channel (docs/protocol.md), answered by the
// server from the chunks in memory. At most one of each is in flight: a newer cursor
// position waits for the answer to the last one and replaces any position still waiting
// (so a moving mouse costs at most one request per round trip).

// A request/answer pair of one kind with at most one in flight, the latest waiting.
export class Coalescer {
  // send(request) -> bool (sent); onReply(reply, request); ids are `${prefix}-N`.
  constructor(kind, send, onReply, prefix = kind) {
    this.kind = kind;
    this.prefix = prefix;
    this.send = send;
    this.onReply = onReply;
    this.inFlight = null;  // {id, request}
    this.waiting = null;   // request
    this.n = 0;
    this.sent = 0;         // requests sent (tests)
  }

  ask(request) {
    if (this.inFlight) {
      this.waiting = request;
      return;
    }
    const id = `${this.prefix}-${++this.n}`;
    const msg = Object.assign({type: this.kind, id}, request);
    if (!this.send(msg)) return;
    this.sent += 1;
    this.inFlight = {id, request};
  }

  // A reply or an error carrying an id: true when it was ours.
  answer(msg) {
    if (!this.inFlight || msg.id !== this.inFlight.id) return false;
    const {request} = this.inFlight;
    this.inFlight = null;
    if (msg.type === this.kind) this.onReply(msg, request);
    const next = this.waiting;
    this.waiting = null;
    if (next) this.ask(next);
    return true;
  }

  reset() {
    this.inFlight = null;
    this.waiting = null;
  }
}

function fmtValue(v) {
  if (v === null || v === undefined) return '–';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return String(Math.round(v * 1000) / 1000);
}

const UNIT_SYMBOLS = {angstrom: 'Å', nanometer: 'nm', micrometer: 'µm', millimeter: 'mm',
                      centimeter: 'cm', meter: 'm', second: 's', millisecond: 'ms'};

// The probe's text: voxel indices and world position, then one line per visible layer.
export function probeText(reply, axes) {
  if (!reply) return '';
  const names = axes ? axes.map((a) => a.name) : [];
  const first = (reply.layers || []).find((l) => Array.isArray(l.voxel));
  const lines = [];
  if (reply.world) {
    const parts = reply.world.map((w, k) => {
      const unit = axes && axes[k] ? (UNIT_SYMBOLS[axes[k].unit] || axes[k].unit || '') : '';
      const idx = first ? first.voxel[k] : null;
      return `${names[k] || 'axis ' + k} ${idx === null ? '–' : idx} (${fmtValue(Math.round(w * 100) / 100)}${unit ? ' ' + unit : ''})`;
    });
    lines.push(parts.join('  '));
  }
  for (const l of reply.layers || []) {
    const v = l.status === 'ok' ? fmtValue(l.value) + (l.level > 0 ? ` (level ${l.level})` : '')
        : l.status === 'loading' ? 'loading…' : 'outside';
    lines.push(`${l.name || 'layer ' + l.layer}: ${v}`);
  }
  return lines.join('\n');
}

// Draws a histogram (log counts) with the contrast limits on it. The x axis spans the
// sampled values and the limits. Leaves the limits' x positions on the canvas's dataset
// (loX, hiX) for tests and tooltips.
export function drawHistogram(canvas, entry, limits, colour = '#9aa0a6') {
  const ctx = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = '#181a1e';
  ctx.fillRect(0, 0, W, H);
  const counts = entry && Array.isArray(entry.counts) ? entry.counts : [];
  const range = entry && Array.isArray(entry.range) ? entry.range : null;
  canvas.dataset.status = entry ? entry.status : 'none';
  canvas.dataset.samples = entry ? entry.samples : 0;
  let lo = range ? range[0] : limits[0], hi = range ? range[1] : limits[1];
  lo = Math.min(lo, limits[0]);
  hi = Math.max(hi, limits[1]);
  if (!(hi > lo)) hi = lo + 1;
  const xOf = (v) => (v - lo) / (hi - lo) * (W - 1);
  if (range && counts.length) {
    const max = Math.max(1, ...counts);
    const bw = (range[1] - range[0]) / counts.length;
    ctx.fillStyle = colour;
    for (let b = 0; b < counts.length; ++b) {
      if (!counts[b]) continue;
      const x0 = xOf(range[0] + b * bw);
      const x1 = range[1] > range[0] ? xOf(range[0] + (b + 1) * bw) : x0 + 2;
      const h = Math.log1p(counts[b]) / Math.log1p(max) * (H - 2);
      ctx.fillRect(x0, H - h, Math.max(1, x1 - x0), h);
    }
  } else {
    ctx.fillStyle = '#9aa0a6';
    ctx.font = '10px system-ui, sans-serif';
    ctx.fillText(entry && entry.status === 'loading' ? 'loading…' : 'no data in view', 4, H / 2 + 3);
  }
  // The contrast limits, and the ramp between them.
  const lx = xOf(limits[0]), hx = xOf(limits[1]);
  ctx.strokeStyle = 'rgba(122, 179, 240, 0.9)';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(lx, H);
  ctx.lineTo(hx, 0);
  ctx.stroke();
  ctx.fillStyle = '#7ab3f0';
  ctx.fillRect(Math.round(lx) - 1, 0, 2, H);
  ctx.fillRect(Math.round(hx) - 1, 0, 2, H);
  canvas.dataset.loX = Math.round(lx);
  canvas.dataset.hiX = Math.round(hx);
  canvas.title = range ? `values ${fmtValue(range[0])} … ${fmtValue(range[1])} on screen` +
      ` (level ${entry.level}, ${entry.samples} samples); limits ${fmtValue(limits[0])} … ${fmtValue(limits[1])}` : '';
}
