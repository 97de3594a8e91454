// The status line under the view: connection state, codec and renderer (with the reason
// for a fallback), the last frame's flags, size and server times, frames per second,
// bit rate and latency, and transient notices (server errors, decoder trouble).
//
//   const status = mountStatus(vx, $);
//   status.connection(state, text); status.codec(); status.frame(header);
//   status.count(now, payloadBytes);  // each frame drawn, for fps and bit rate
//   status.notice(text, ms);

export function mountStatus(vx, $) {
  const window1s = [];  // [time, payload bytes] of frames drawn in the last second
  let noticeTimer = null;

  function trim(now) {
    while (window1s.length && window1s[0][0] < now - 1000) window1s.shift();
  }

  const status = {
    notice(text, ms = 6000) {
      const n = $('#st-msg');
      n.textContent = text;
      n.title = text;
      clearTimeout(noticeTimer);
      noticeTimer = setTimeout(() => { n.textContent = ''; n.title = ''; }, ms);
    },
    connection(state, text) {
      const s = $('#st-conn');
      s.textContent = text;
      s.dataset.state = state;
      $('#overlay').hidden = state === 'open' && vx.framesDecoded > 0;
      $('#overlay').textContent = state === 'open' ? 'waiting for the first frame…' : text;
      status.codec();
    },
    codec() {
      const enc = vx.encoder;
      let t = vx.codec || '–';
      let fallback = vx.welcome && vx.welcome.fallback;
      if (enc && typeof enc === 'object') {
        t += ` (${enc.name || enc.encoder || enc.backend || '?'})`;
        fallback = fallback || enc.fallback;
      } else if (enc) {
        t += ` (${enc})`;
      }
      if (fallback) t += ' *';
      $('#st-codec').textContent = t;
      // Which renderer draws the frames, and why not a better one (welcome.renderer*).
      const w = vx.welcome || {};
      const r = $('#st-renderer');
      if (r) {
        r.textContent = w.renderer ? `render ${w.renderer}${w.renderer_fallback ? ' *' : ''}` : '';
        r.title = w.renderer_fallback ? `renderer fallback: ${w.renderer_fallback}` : '';
      }
      $('#st-codec').title = (vx.h264Available ? 'this browser decodes H.264 (WebCodecs)' :
          'no WebCodecs H.264 here (needs a secure context: https or localhost)') +
          (fallback ? `\nencoder fallback: ${fallback}` : '');
    },
    frame(h) {
      $('#overlay').hidden = true;
      const flags = [h.keyframe ? 'key' : '', h.refining ? 'refining' : '', h.interactive ? 'interactive' : '']
          .filter(Boolean).join(' ');
      $('#st-flags').textContent = flags;
      $('#st-size').textContent = `${h.width}×${h.height}`;
      $('#st-server').textContent =
          `render ${(h.renderUs / 1000).toFixed(1)} ms, encode ${(h.encodeUs / 1000).toFixed(1)} ms`;
    },
    count(now, bytes) {
      window1s.push([now, bytes]);
      trim(now);
    },
  };

  setInterval(() => {
    trim(performance.now());
    vx.fps = window1s.length;
    vx.kbps = window1s.reduce((s, f) => s + f[1], 0) * 8 / 1000;
    $('#st-fps').textContent = `${vx.fps} fps`;
    $('#st-latency').textContent = vx.latencyMs === null ? 'latency –' : `latency ${Math.round(vx.latencyMs)} ms`;
    $('#st-rate').textContent = vx.kbps >= 1000 ? `${(vx.kbps / 1000).toFixed(2)} Mbit/s` : `${Math.round(vx.kbps)} kbit/s`;
  }, 250);

  return status;
}
