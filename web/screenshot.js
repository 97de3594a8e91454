// The png button: POST /api/v1/screenshot renders the view on screen (the server's scene)
// at final quality, at 1x, 2x or 4x the canvas (each side at most 8192), and the page saves
// the PNG. vx.lastScreenshot: {request, width, height, bytes, url, filename} or
// {request, error}.

import {clone, withToken} from './protocol.js';

const MAX_SHOT_SIDE = 8192;

export async function screenshot(vx, {token, notice}, scale = 1) {
  const scene = vx.scene;
  if (!scene || !scene.canvas) return null;
  const c = scene.canvas;
  const k = Math.max(1, Math.min(scale, MAX_SHOT_SIDE / c.width, MAX_SHOT_SIDE / c.height));
  const body = {dataset: vx.dataset, scene: clone(scene), width: Math.round(c.width * k),
                height: Math.round(c.height * k)};
  notice(`rendering a ${body.width}×${body.height} screenshot…`, 60000);
  // The server renders 2 screenshots at once and answers more with 429: wait and ask again
  // (Retry-After, else 1 s) for up to a minute.
  let r;
  for (const until = Date.now() + 60000; ;) {
    try {
      r = await fetch(withToken('/api/v1/screenshot', token), {
        method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
    } catch (e) {
      r = {ok: false, status: 0, json: async () => ({error: {message: e.message}})};
    }
    const wait = 1000 * (+(r.headers && r.headers.get('Retry-After')) || 1);
    if (r.status !== 429 || Date.now() + wait > until) break;
    notice(`the server is busy; asking again in ${wait / 1000} s…`, wait + 1000);
    await new Promise((done) => setTimeout(done, wait));
  }
  if (!r.ok) {
    const e = await r.json().catch(() => null);
    const why = (e && e.error && e.error.message) || `HTTP ${r.status}`;
    notice(`screenshot failed: ${why}`, 10000);
    vx.lastScreenshot = {request: body, error: why};
    return vx.lastScreenshot;
  }
  const blob = await r.blob();
  const url = URL.createObjectURL(blob);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const filename = `${(vx.datasetName || 'voxcast').replace(/[^\w.-]+/g, '_')}-${stamp}.png`;
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  if (vx.lastScreenshot && vx.lastScreenshot.url) URL.revokeObjectURL(vx.lastScreenshot.url);
  vx.lastScreenshot = {request: body, width: body.width, height: body.height, bytes: blob.size,
                       url, filename};
  notice(`saved ${filename} (${body.width}×${body.height})`, 4000);
  return vx.lastScreenshot;
}
