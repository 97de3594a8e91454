// Which of the server's datasets the page shows: `?dataset=N` or `?dataset=NAME` (old links
// without it: the first), resolved against GET /api/v1/datasets before connecting; an
// unknown one is reported (status line, console) and the first is shown. The picker, the
// page title and the status line name it. Another dataset is another session and another
// scene: picking one opens a fresh page on ?dataset=N (token and codec kept, the view in
// the hash dropped).

import {withToken} from './protocol.js';

export const datasetName = (d) => d.name || d.location || `dataset ${d.id}`;

// Sets vx.dataset, vx.datasetName, vx.datasets (and vx.warnings on trouble); fills the
// picker, the title and #st-dataset. opts: {token, want (the ?dataset= value or null), notice}.
export async function resolveDataset(vx, {token, want, notice}) {
  const $ = (sel) => document.querySelector(sel);
  let list = null;
  try {
    const r = await fetch(withToken('/api/v1/datasets', token), {cache: 'no-store'});
    if (r.ok) {
      vx.datasets = await r.json();
      list = vx.datasets.datasets;
    }
  } catch (e) { /* the connection reports an unreachable server */ }
  if (!Array.isArray(list) || !list.length) {
    vx.dataset = want !== null && /^\d+$/.test(want) ? +want : 0;
    return;
  }
  let found = null;
  if (want !== null && want !== '') {
    found = /^\d+$/.test(want) ? list.find((d) => d.id === +want)
                               : list.find((d) => d.name === want || d.location === want);
    if (!found) {
      const names = list.map((d) => `${d.id} ${datasetName(d)}`).join(', ');
      const msg = `?dataset=${want}: no such dataset (${names}); showing ${datasetName(list[0])}`;
      console.warn(`voxcast: ${msg}`);
      vx.warnings.push(msg);
      setTimeout(() => notice(msg, 15000), 0);
    }
  }
  const d = found || list[0];
  vx.dataset = d.id;
  vx.datasetName = datasetName(d);
  document.title = `${vx.datasetName} — voxcast`;
  $('#st-dataset').textContent = vx.datasetName;
  $('#st-dataset').title = d.location || '';
  const picker = $('#dataset-picker');
  picker.replaceChildren(...list.map((x) => {
    const o = document.createElement('option');
    o.value = String(x.id);
    o.textContent = datasetName(x);
    o.title = x.location || '';
    return o;
  }));
  picker.value = String(d.id);
  $('#dataset-row').hidden = list.length < 2;
}

export function mountPicker(picker) {
  picker.addEventListener('change', () => {
    const q = new URLSearchParams(location.search);
    q.set('dataset', picker.value);
    location.assign(`${location.pathname}?${q.toString()}`);
  });
}
