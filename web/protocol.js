// voxcast protocol helpers (docs/protocol.md): the 48-byte frame header, the WebCodecs
// codec string from an H.264 SPS, the token and URL plumbing, scene patches and the
// world extent of a dataset. No DOM here, so Node can import it too.

export const HEADER_BYTES = 48;
export const MAGIC = 'VXF1';
export const CODEC_H264 = 1;
export const CODEC_JPEG = 2;
export const FLAG_KEYFRAME = 1;
export const FLAG_REFINING = 2;
export const FLAG_INTERACTIVE = 4;

// Parses one pixel-channel message. Returns the header fields and `payload`, a view into
// the same buffer (no copy). Throws an Error that says what is wrong with the message.
export function parseFrame(buffer) {
  if (!(buffer instanceof ArrayBuffer)) throw new Error('frame: expected an ArrayBuffer');
  if (buffer.byteLength < HEADER_BYTES)
    throw new Error(`frame: ${buffer.byteLength} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  const v = new DataView(buffer);
  const magic = String.fromCharCode(v.getUint8(0), v.getUint8(1), v.getUint8(2), v.getUint8(3));
  if (magic !== MAGIC) throw new Error(`frame: bad magic ${JSON.stringify(magic)}`);
  const version = v.getUint16(4, true);
  if (version !== 1) throw new Error(`frame: header version ${version}, expected 1`);
  const codec = v.getUint8(6);
  if (codec !== CODEC_H264 && codec !== CODEC_JPEG) throw new Error(`frame: unknown codec ${codec}`);
  const flags = v.getUint8(7);
  const payloadLength = v.getUint32(32, true);
  if (HEADER_BYTES + payloadLength !== buffer.byteLength)
    throw new Error(`frame: payload length ${payloadLength} but the message has ` +
                    `${buffer.byteLength - HEADER_BYTES} bytes after the header`);
  return {
    version,
    codec,
    codecName: codec === CODEC_H264 ? 'h264' : 'jpeg',
    flags,
    keyframe: (flags & FLAG_KEYFRAME) !== 0,
    refining: (flags & FLAG_REFINING) !== 0,
    interactive: (flags & FLAG_INTERACTIVE) !== 0,
    frameSeq: v.getUint32(8, true),
    stateSeq: v.getUint32(12, true),
    width: v.getUint16(16, true),
    height: v.getUint16(18, true),
    renderUs: v.getUint32(20, true),
    encodeUs: v.getUint32(24, true),
    serverUs: v.getUint32(28, true),
    payloadLength,
    // u64 as a Number: exact up to 2^53 µs (year 2255).
    wallClockUs: Number(v.getBigUint64(36, true)),
    payload: new Uint8Array(buffer, HEADER_BYTES, payloadLength),
  };
}

// Builds a header (tests and tools): the inverse of parseFrame.
export function buildFrame(h, payload) {
  const buf = new ArrayBuffer(HEADER_BYTES + payload.byteLength);
  const v = new DataView(buf);
  for (let i = 0; i < 4; ++i) v.setUint8(i, MAGIC.charCodeAt(i));
  v.setUint16(4, 1, true);
  v.setUint8(6, h.codec);
  v.setUint8(7, h.flags || 0);
  v.setUint32(8, h.frameSeq || 0, true);
  v.setUint32(12, h.stateSeq || 0, true);
  v.setUint16(16, h.width || 0, true);
  v.setUint16(18, h.height || 0, true);
  v.setUint32(20, h.renderUs || 0, true);
  v.setUint32(24, h.encodeUs || 0, true);
  v.setUint32(28, h.serverUs || 0, true);
  v.setUint32(32, payload.byteLength, true);
  v.setBigUint64(36, BigInt(h.wallClockUs || 0), true);
  new Uint8Array(buf, HEADER_BYTES).set(payload);
  return buf;
}

const hex2 = (b) => b.toString(16).toUpperCase().padStart(2, '0');

// The WebCodecs codec string "avc1.PPCCLL" from the first SPS (NAL type 7) of an Annex B
// access unit, or null when there is none.
export function avcCodecString(bytes) {
  const n = bytes.length;
  for (let i = 0; i + 3 < n; ++i) {
    if (bytes[i] !== 0 || bytes[i + 1] !== 0) continue;
    let start;
    if (bytes[i + 2] === 1) start = i + 3;
    else if (bytes[i + 2] === 0 && bytes[i + 3] === 1) start = i + 4;
    else continue;
    if (start + 3 < n && (bytes[start] & 0x1f) === 7)
      return `avc1.${hex2(bytes[start + 1])}${hex2(bytes[start + 2])}${hex2(bytes[start + 3])}`;
    i = start - 1;
  }
  return null;
}

// ---- URLs and the token -------------------------------------------------------------

export function tokenFrom(search) {
  return new URLSearchParams(search).get('token');
}

// Adds `token` (when there is one) to a URL's query string.
export function withToken(url, token) {
  if (!token) return url;
  return url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
}

// ws:// or wss:// URL of a path on the page's host.
export function wsUrl(loc, path, token) {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return withToken(`${proto}//${loc.host}${path}`, token);
}

// ---- scenes ---------------------------------------------------------------------------

const isObject = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

// Merges two pending patches into one that has the effect of applying `a` then `b`
// (RFC 7396 plus the element-wise `layers` extension of docs/rendering.md).
export function mergePatches(a, b) {
  if (!isObject(a) || !isObject(b)) return clone(b);
  const out = clone(a);
  for (const [k, v] of Object.entries(b)) {
    if (k === 'layers' && Array.isArray(v) && Array.isArray(out[k])) {
      const n = Math.max(v.length, out[k].length);
      const layers = [];
      for (let i = 0; i < v.length && i < n; ++i)
        layers.push(i < out[k].length ? mergePatches(out[k][i], v[i]) : clone(v[i]));
      out[k] = layers;  // a shorter array drops the rest, as on the server
    } else if (isObject(v) && isObject(out[k])) {
      out[k] = mergePatches(out[k], v);
    } else {
      out[k] = clone(v);
    }
  }
  return out;
}

// Applies a patch to a scene the way the server does, for the client's optimistic view.
export function applyPatch(scene, patch) {
  if (!isObject(patch)) return clone(scene);
  const out = clone(scene);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (k === 'layers' && Array.isArray(v)) {
      // Element i merges into layer i, layers past the array stay, null removes a layer.
      const old = Array.isArray(out.layers) ? out.layers : [];
      const layers = [];
      for (let i = 0; i < Math.max(old.length, v.length); ++i) {
        if (i >= v.length) layers.push(old[i]);
        else if (v[i] !== null) layers.push(applyPatch(old[i] || {}, v[i]));
      }
      out.layers = layers;
    } else if (isObject(v) && isObject(out[k])) out[k] = applyPatch(out[k], v);
    else out[k] = clone(v);
  }
  return out;
}

export function clone(x) {
  return x === undefined ? undefined : JSON.parse(JSON.stringify(x));
}

// The patch that turns a scene's `layers` into `next` (added, removed, reordered or
// duplicated layers): every layer of `next` whole, and null for old layers past its end.
export function layersPatch(old, next) {
  const layers = next.map((l) => clone(l));
  for (let i = next.length; i < old.length; ++i) layers.push(null);
  return {layers};
}

// A patch that changes only layer `i` of `n` layers.
export function layerPatch(n, i, fields) {
  const layers = [];
  for (let k = 0; k < n; ++k) layers.push(k === i ? fields : {});
  return {layers};
}

// The part of a scene a link carries: everything but the canvas (each viewer has its own).
export function viewOf(scene) {
  if (!scene) return null;
  const v = {};
  for (const k of ['camera', 'dims', 'layers']) if (scene[k] !== undefined) v[k] = clone(scene[k]);
  return v;
}

// The URL hash of a view; with a movie timeline (docs/movies.md) when one is given, under
// the key "timeline" beside camera, dims and layers.
export function hashOf(scene, timeline = null) {
  const v = viewOf(scene);
  if (v && timeline) v.timeline = timeline;
  return '#' + encodeURIComponent(JSON.stringify(v));
}

// The view a URL hash holds, or null when it holds none (or garbage).
export function viewFromHash(hash) {
  if (!hash || hash.length < 2) return null;
  try {
    const v = JSON.parse(decodeURIComponent(hash.slice(1)));
    return isObject(v) ? viewOf(v) : null;
  } catch (e) {
    return null;
  }
}

// The parsed JSON of a URL hash: {value} (any JSON), {error} when it is not JSON, or null
// when there is no hash.
export function parseHash(hash) {
  if (!hash || hash.length < 2) return null;
  try {
    return {value: JSON.parse(decodeURIComponent(hash.slice(1)))};
  } catch (e) {
    return {error: e.message};
  }
}

// Splits a view from a link against a full scene (the server's welcome scene has every
// field): {view, unknown}, where `view` keeps the keys the scene has (camera, dims, layers;
// a canvas is each viewer's own and dropped) and `unknown` lists the dotted paths of the
// others ('camera.zoon', 'layers[0].colourmap'), so a misspelt key is reported instead of
// refusing the whole view or vanishing.
export function splitUnknown(value, scene) {
  const unknown = [];
  const walk = (v, ref, path) => {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      if (!(k in ref)) {
        unknown.push(path + k);
      } else if (k === 'layers' && Array.isArray(x) && Array.isArray(ref.layers)) {
        out.layers = x.map((l, i) => (isObject(l) && isObject(ref.layers[0])
          ? walk(l, ref.layers[0], `layers[${i}].`) : clone(l)));
      } else if (isObject(x) && isObject(ref[k])) {
        out[k] = walk(x, ref[k], `${path}${k}.`);
      } else {
        out[k] = clone(x);
      }
    }
    return out;
  };
  if (!isObject(value)) return {view: null, unknown: []};
  const view = walk(value, isObject(scene) ? scene : {camera: {}, dims: {}, layers: [], canvas: {}}, '');
  delete view.canvas;
  return {view, unknown};
}

// ---- data -----------------------------------------------------------------------------

// World axes of a dataset (`voxcast info --json`): the non-channel axes of level 0 with
// their name, first and last voxel centre and step (the level-0 scale).
export function worldAxes(info) {
  if (!info || !Array.isArray(info.levels) || !info.levels.length) return null;
  const lv = info.levels[0];
  const axes = Array.isArray(info.axes) ? info.axes : [];
  const out = [];
  for (let d = 0; d < lv.shape.length; ++d) {
    const ax = axes[d] || {};
    if (ax.type === 'channel') continue;
    const scale = lv.scale ? lv.scale[d] : 1;
    const t = lv.translation ? lv.translation[d] : 0;
    out.push({name: ax.name || `axis ${d}`, unit: ax.unit || '', lo: t,
              hi: t + scale * (lv.shape[d] - 1), step: scale || 1});
  }
  return out;
}

// The range a contrast-limit slider spans for a channel: the OMERO window's min/max, else
// the dtype's range.
export function channelRange(info, channel) {
  const ch = info && Array.isArray(info.channels) ? info.channels[channel] : null;
  if (ch && ch.window && ch.window.max > ch.window.min) return [ch.window.min, ch.window.max];
  const ranges = {uint8: [0, 255], int8: [-128, 127], uint16: [0, 65535], int16: [-32768, 32767],
                  uint32: [0, 4294967295], int32: [-2147483648, 2147483647]};
  return (info && ranges[info.dtype]) || [0, 1];
}

// The canvas to ask for: CSS size times devicePixelRatio, capped at 1920x1080 keeping the
// aspect, even numbers, at least 16.
export function canvasSize(cssWidth, cssHeight, dpr, maxW = 1920, maxH = 1080) {
  let w = Math.max(1, cssWidth * (dpr || 1));
  let h = Math.max(1, cssHeight * (dpr || 1));
  const s = Math.min(1, maxW / w, maxH / h);
  w *= s;
  h *= s;
  const even = (x) => Math.max(16, 2 * Math.floor(x / 2));
  return {width: even(w), height: even(h)};
}
