// The probe (the voxel values under the mouse), a histogram per layer and auto-contrast:
// requests on the state channel (docs/protocol.md), coalesced so that at most one of each
// kind is in flight (tools.js). app.js hands their replies over with answer().
import {Coalescer, probeText} from './tools.js';
import {layerPatch} from './protocol.js';

export class Inspector {
  // deps: vx (window.voxcast), canvas, probeBox (the element showing the probe),
  // request(msg) (sends, returns the id), queue(patch), notice(text), axes() (the world
  // axes of the dataset shown), setHistogram(layer, entry) (the layer panel).
  constructor(deps) {
    this.d = deps;
    this.cursor = null;  // the mouse over the view, client (CSS) coordinates (null: elsewhere)
    this.histSeq = -1;   // the state seq the histograms were last asked for
    const {vx} = deps;
    this.probes = new Coalescer('probe', (m) => deps.request(m), (reply, req) => {
      vx.probe = Object.assign({}, reply, {pixel: req.pixel});
      this.showProbe();
    });
    this.histograms = new Coalescer('histogram', (m) => deps.request(m), (reply) => {
      vx.histograms = reply.layers;
      for (const e of reply.layers || []) deps.setHistogram(e.layer, e);
    });
    this.autoC = new Coalescer('histogram', (m) => deps.request(m), (reply, req) => {
      const e = (reply.layers || [])[0];
      const i = req.layers[0];
      const n = vx.view && vx.view.layers ? vx.view.layers.length : 0;
      if (!e || !e.percentiles || i >= n) {
        deps.notice(`auto-contrast: ${e && e.status === 'loading' ? 'the data on screen is still loading' : 'no data on screen'}`);
        return;
      }
      let [lo, hi] = e.percentiles;
      if (!(hi > lo)) hi = lo + (Number.isInteger(lo) ? 1 : Math.max(1e-6, Math.abs(lo) * 1e-6));
      vx.autoContrastResult = {layer: i, limits: [lo, hi]};
      deps.queue(layerPatch(n, i, {contrast_limits: [lo, hi]}));
    }, 'auto');
    deps.canvas.addEventListener('pointermove', (e) => {
      this.cursor = {clientX: e.clientX, clientY: e.clientY};
      this.askProbe();
    });
    deps.canvas.addEventListener('pointerleave', () => {
      this.cursor = null;
      this.showProbe();
    });
  }

  coalescers() {
    return {probes: this.probes, histograms: this.histograms, autoC: this.autoC};
  }

  // A new session: nothing asked is answered any more.
  reset() {
    this.probes.reset();
    this.histograms.reset();
    this.autoC.reset();
    this.histSeq = -1;
  }

  // A probe or histogram reply, or an error answering one: whether it was one of ours.
  answer(msg) {
    switch (msg.type) {
      case 'probe':
        return this.probes.answer(msg);
      case 'histogram':
        return this.histograms.answer(msg) || this.autoC.answer(msg);
      default:
        return this.probes.answer(msg) || this.histograms.answer(msg) || this.autoC.answer(msg);
    }
  }

  // The picture changed: what is under the cursor may have too (or finished loading), and a
  // final frame of a new state gets new histograms.
  frameDrawn(h) {
    if (this.cursor) this.askProbe();
    if (!h.refining && !h.interactive && h.stateSeq !== this.histSeq) {
      this.histSeq = h.stateSeq;
      this.histograms.ask({bins: 64});
    }
  }

  autoContrast(i) {
    this.autoC.ask({layers: [i], bins: 64, percentiles: [0.5, 99.5]});
  }

  // Asks for the voxel under the mouse, mapped to frame pixels through the current scene (its
  // canvas may have changed size since the mouse last moved).
  askProbe() {
    const px = this.cursor && this.framePixel(this.cursor);
    if (px) this.probes.ask({pixel: [px.x, px.y]});
    else this.showProbe();
  }

  showProbe() {
    const {vx, probeBox: p} = this.d;
    p.hidden = !this.cursor || !vx.probe || !this.framePixel(this.cursor);
    if (!p.hidden) p.textContent = probeText(vx.probe, this.d.axes());
  }

  // The frame pixel under a pointer event (the canvas is letterboxed: object-fit contain).
  framePixel(e) {
    const s = this.d.vx.scene && this.d.vx.scene.canvas;
    if (!s) return null;
    const r = this.d.canvas.getBoundingClientRect();
    const k = Math.min(r.width / s.width, r.height / s.height) || 1;
    const x = (e.clientX - (r.left + r.width / 2)) / k + s.width / 2;
    const y = (e.clientY - (r.top + r.height / 2)) / k + s.height / 2;
    return x >= 0 && y >= 0 && x < s.width && y < s.height ? {x, y} : null;
  }
}
