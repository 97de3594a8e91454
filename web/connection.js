// The two channels of a voxcast session (docs/protocol.md): the JSON state channel
// /ws/state and the binary pixel channel /ws/pixels?session=ID, with reconnection.
// When either socket closes or fails, both are closed and the connection retries after
// 0.5 s, doubling up to 5 s; a new welcome resets the delay.

import {withToken, wsUrl} from './protocol.js';

const BACKOFF_MIN_S = 0.5;
const BACKOFF_MAX_S = 5;

export class Connection {
  // opts: token, codecs() -> Promise<list>, client (string), and callbacks:
  //   onStatus(state, text)  state: 'connecting' | 'open' | 'closed'
  //   onWelcome(msg)         a new session (after every (re)connect)
  //   onMessage(msg)         every other state-channel message
  //   onFrame(arrayBuffer)   a pixel-channel message
  //   onSent(seq, msg)       a state.update went out
  constructor(opts) {
    this.opts = opts;
    this.state = 'connecting';
    this.stateWs = null;
    this.pixelWs = null;
    this.session = null;
    this.seq = 0;
    this.backoff = BACKOFF_MIN_S;
    this.timer = null;
    this.generation = 0;  // bumps on every connect; stale socket events are ignored
  }

  start() {
    this._connect();
  }

  get isOpen() {
    return this.state === 'open' && this.stateWs && this.stateWs.readyState === WebSocket.OPEN;
  }

  // Sends a state.update; returns its seq, or null when not connected.
  update(patch, interactive = false) {
    if (!this.session || !this.stateWs || this.stateWs.readyState !== WebSocket.OPEN) return null;
    const seq = ++this.seq;
    const msg = {type: 'state.update', seq, patch};
    if (interactive) msg.interactive = true;
    this.stateWs.send(JSON.stringify(msg));
    if (this.opts.onSent) this.opts.onSent(seq, msg);
    return seq;
  }

  // Drops the session and connects again at once (e.g. to ask for another codec).
  restart(reason) {
    this.backoff = 0;
    this._lost(this.generation, reason).then(() => { this.backoff = BACKOFF_MIN_S; });
  }

  // Sends any other client message (probe, histogram); false when not connected.
  request(obj) {
    return this._send(obj);
  }

  requestKeyframe() {
    return this._send({type: 'keyframe.request'});
  }

  ping(t) {
    return this._send({type: 'ping', t});
  }

  _send(obj) {
    if (!this.session || !this.stateWs || this.stateWs.readyState !== WebSocket.OPEN) return false;
    this.stateWs.send(JSON.stringify(obj));
    return true;
  }

  _status(state, text) {
    this.state = state;
    this.opts.onStatus(state, text);
  }

  async _connect() {
    const gen = ++this.generation;
    this.session = null;
    this.seq = 0;
    this._status('connecting', 'connecting…');
    let codecs;
    try {
      codecs = await this.opts.codecs();
    } catch (e) {
      codecs = ['jpeg'];
    }
    if (gen !== this.generation) return;
    const ws = new WebSocket(wsUrl(location, '/ws/state', this.opts.token));
    this.stateWs = ws;
    ws.onopen = () => {
      if (gen !== this.generation) return;
      ws.send(JSON.stringify({type: 'hello', dataset: this.opts.dataset || 0, codecs,
                              client: this.opts.client || 'voxcast-web'}));
    };
    ws.onmessage = (ev) => {
      if (gen !== this.generation) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        this.opts.onMessage({type: 'error', seq: null, code: 'client',
                             message: `the server sent non-JSON text: ${String(ev.data).slice(0, 80)}`});
        return;
      }
      if (msg.type === 'welcome' && !this.session) this._welcome(gen, msg);
      else this.opts.onMessage(msg);
    };
    ws.onerror = () => this._lost(gen, 'state channel error');
    ws.onclose = (ev) => this._lost(gen, `state channel closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`);
  }

  _welcome(gen, msg) {
    this.session = msg.session;
    const px = new WebSocket(wsUrl(location, `/ws/pixels?session=${encodeURIComponent(msg.session)}`,
                                   this.opts.token));
    px.binaryType = 'arraybuffer';
    this.pixelWs = px;
    px.onopen = () => {
      if (gen !== this.generation) return;
      this.backoff = BACKOFF_MIN_S;
      this._status('open', 'connected');
    };
    px.onmessage = (ev) => {
      if (gen === this.generation && ev.data instanceof ArrayBuffer) this.opts.onFrame(ev.data);
    };
    px.onerror = () => this._lost(gen, 'pixel channel error');
    px.onclose = (ev) => this._lost(gen, `pixel channel closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`);
    this.opts.onWelcome(msg);
  }

  async _lost(gen, why) {
    if (gen !== this.generation) return;
    const hadSession = this.session !== null;
    ++this.generation;  // ignore whatever the old sockets still say
    for (const ws of [this.stateWs, this.pixelWs]) {
      if (!ws) continue;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(); } catch (e) { /* closing anyway */ }
    }
    this.stateWs = this.pixelWs = null;
    this.session = null;
    let reason = why;
    if (!hadSession) {
      // Refused before the upgrade? The health route says whether it is the token.
      try {
        const r = await fetch(withToken('/api/v1/health', this.opts.token), {cache: 'no-store'});
        if (r.status === 401) reason = 'unauthorized: the link needs the server\'s ?token=';
        else if (r.status === 503) reason = 'server busy (too many clients)';
      } catch (e) {
        reason = 'server unreachable';
      }
    }
    this._retry(reason);
  }

  _retry(reason) {
    clearTimeout(this.timer);
    const delay = this.backoff;
    this.backoff = Math.min(BACKOFF_MAX_S, this.backoff * 2);
    const until = performance.now() + delay * 1000;
    const gen = this.generation;
    const tick = () => {
      if (gen !== this.generation) return;
      const left = (until - performance.now()) / 1000;
      if (left <= 0) return this._connect();
      this._status('closed', `disconnected, reconnecting in ${Math.ceil(left * 2) / 2}s (${reason})`);
      this.timer = setTimeout(tick, Math.min(500, left * 1000));
    };
    tick();
  }
}
