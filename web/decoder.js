// Frame decoding and drawing: H.264 through WebCodecs (VideoDecoder, Annex B, low-latency
// mode) and JPEG through createImageBitmap. Each frame is drawn onto the canvas as soon as
// it is decoded; the canvas's backing size follows the frame size.

import {avcCodecString, CODEC_H264} from './protocol.js';

// Whether this browser can decode the H.264 that voxcast sends (WebCodecs needs a secure
// context: https, or http on localhost).
export async function h264Supported() {
  if (typeof window === 'undefined' || !window.VideoDecoder || !VideoDecoder.isConfigSupported)
    return false;
  try {
    // Constrained Baseline and High, level 4.0 (1920x1080): the profiles the server uses.
    for (const codec of ['avc1.42E028', 'avc1.640028']) {
      const r = await VideoDecoder.isConfigSupported({codec, optimizeForLatency: true});
      if (!r.supported) return false;
    }
    return true;
  } catch (e) {
    return false;
  }
}

export class FrameDrawer {
  // callbacks: onDrawn(header) after a frame is on the canvas; onNeedKeyframe(reason) when
  // the H.264 decoder lost its state; onError(message) for anything worth showing.
  constructor(canvas, callbacks) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', {alpha: false});
    this.cb = callbacks;
    this.vd = null;          // VideoDecoder
    this.vdCodec = null;     // codec string it is configured with
    this.vdSize = null;      // and the frame size
    this.needKey = true;     // drop delta frames until a keyframe
    this.pending = new Map();  // chunk timestamp -> header, for frames inside the decoder
    this.lastDrawnSeq = 0;
    this.errors = 0;         // decoder errors since the last frame drawn
    this.closed = false;
  }

  // Feeds one parsed frame (protocol.parseFrame).
  push(h) {
    if (this.closed) return;
    if (h.codec === CODEC_H264) this._pushH264(h);
    else this._pushJpeg(h);
  }

  // Forgets decoder state (a new pixel channel starts with a keyframe).
  reset() {
    this._closeDecoder();
    this.needKey = true;
    this.lastDrawnSeq = 0;
  }

  close() {
    this.closed = true;
    this._closeDecoder();
  }

  _closeDecoder() {
    if (this.vd && this.vd.state !== 'closed') {
      try { this.vd.close(); } catch (e) { /* already closed */ }
    }
    this.vd = null;
    this.vdCodec = null;
    this.vdSize = null;
    this.pending.clear();
  }

  _draw(source, h) {
    // Frames can finish out of order (JPEG decodes are async): never draw an older one.
    if (h.frameSeq <= this.lastDrawnSeq && this.lastDrawnSeq !== 0) return false;
    const w = source.displayWidth || source.width, ht = source.displayHeight || source.height;
    if (this.canvas.width !== w || this.canvas.height !== ht) {
      this.canvas.width = w;
      this.canvas.height = ht;
    }
    this.ctx.drawImage(source, 0, 0, w, ht);
    this.lastDrawnSeq = h.frameSeq;
    this.errors = 0;
    this.cb.onDrawn(h);
    return true;
  }

  // ---- H.264 -------------------------------------------------------------------------

  _pushH264(h) {
    if (!window.VideoDecoder) {
      this.cb.onError('H.264 frame but this browser has no WebCodecs VideoDecoder');
      return;
    }
    if (h.keyframe) {
      const codec = avcCodecString(h.payload);
      if (!codec) {
        this.cb.onError(`H.264 keyframe ${h.frameSeq} without an SPS`);
        return this._lost('keyframe without SPS');
      }
      if (!this.vd || this.vd.state === 'closed') this._openDecoder();
      const size = `${h.width}x${h.height}`;
      if (codec !== this.vdCodec || size !== this.vdSize) {
        try {
          this.vd.configure({codec, optimizeForLatency: true,
                             codedWidth: h.width, codedHeight: h.height});
        } catch (e) {
          this.cb.onError(`VideoDecoder.configure(${codec}): ${e.message}`);
          return this._lost('configure failed');
        }
        this.vdCodec = codec;
        this.vdSize = size;
      }
      this.needKey = false;
    } else if (this.needKey || !this.vd || this.vd.state !== 'configured') {
      return;  // a delta frame without its reference: wait for the keyframe we asked for
    }
    // EncodedVideoChunk copies the payload out of the socket's buffer.
    const chunk = new EncodedVideoChunk({type: h.keyframe ? 'key' : 'delta',
                                         timestamp: h.frameSeq, data: h.payload});
    this.pending.set(h.frameSeq, h);
    try {
      this.vd.decode(chunk);
    } catch (e) {
      this.pending.delete(h.frameSeq);
      this.cb.onError(`VideoDecoder.decode: ${e.message}`);
      this._lost('decode threw');
    }
  }

  _openDecoder() {
    const vd = new VideoDecoder({
      output: (frame) => {
        const h = this.pending.get(frame.timestamp);
        this.pending.delete(frame.timestamp);
        try {
          if (vd === this.vd && h) this._draw(frame, h);
        } finally {
          frame.close();
        }
      },
      error: (e) => {
        if (vd !== this.vd) return;  // an old decoder we replaced
        this.cb.onError(`H.264 decoder error: ${e.message || e}`);
        this._lost('decoder error');
      },
    });
    this.vd = vd;
    this.vdCodec = null;
    this.vdSize = null;
  }

  // The decoder state is gone: start over at the next keyframe, and ask for one.
  _lost(reason) {
    this._closeDecoder();
    this.needKey = true;
    this.errors += 1;
    this.cb.onNeedKeyframe(reason, this.errors);
  }

  // ---- JPEG --------------------------------------------------------------------------

  _pushJpeg(h) {
    const blob = new Blob([h.payload], {type: 'image/jpeg'});
    createImageBitmap(blob).then(
        (bmp) => {
          if (!this.closed) this._draw(bmp, h);
          bmp.close();
        },
        (e) => this.cb.onError(`JPEG frame ${h.frameSeq}: ${e.message || e}`));
  }
}
