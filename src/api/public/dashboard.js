/* rewrap dashboard: polls the JSON API every second and redraws. Plain DOM (textContent only:
 * campaign names are user input), uPlot for the burn-down chart.
 * Reads need a token (REWRAP_API_READ_TOKEN): the operator opens /#token=<token> once, or types it
 * into the prompt shown on a 401. It is kept in sessionStorage (this tab only, gone when it
 * closes) and removed from the address bar at once, so it is not left in history or a screenshot. */
(() => {
  'use strict';
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const fmt = (n) => Number(n).toLocaleString('en-US');
  const TOKEN_KEY = 'rewrap.readToken';
  const hashToken = /^#token=(.+)$/.exec(location.hash);
  if (hashToken) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(hashToken[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  let selected = hashToken ? null : decodeURIComponent(location.hash.slice(1)) || null;
  let chart = null;
  let chartFor = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  class NeedsToken extends Error {}

  async function getJson(path) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const res = await fetch(path, { cache: 'no-store', headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (res.status === 401 || res.status === 403) throw new NeedsToken(`${path}: HTTP ${res.status}`);
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  function askForToken(hadOne) {
    const form = $('token-form');
    if (!form.hidden) return;
    $('token-why').textContent = hadOne ? 'The API refused this token.' : 'The API needs its read token.';
    form.hidden = false;
    $('token-input').focus();
  }
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token-input').value.trim();
    if (!v) return;
    sessionStorage.setItem(TOKEN_KEY, v);
    $('token-input').value = '';
    $('token-form').hidden = true;
    refresh();
  });

  function duration(s) {
    if (s === null || s === undefined) return '–';
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    const h = Math.floor(s / 3600);
    return h < 48 ? `${h} h ${Math.round((s % 3600) / 60)} min` : `${Math.round(h / 24)} days`;
  }

  function setBar(bar, p) {
    const total = Math.max(p.planned, 1);
    for (const k of ['rewrapped', 'skipped', 'failed']) bar.querySelector(`.seg.${k}`).style.width = `${(100 * p[k]) / total}%`;
  }

  function progressBar(p) {
    const bar = el('div', { class: 'progress' }, el('span', { class: 'seg rewrapped' }), el('span', { class: 'seg skipped' }), el('span', { class: 'seg failed' }));
    setBar(bar, p);
    return bar;
  }

  function renderList(campaigns) {
    const list = $('campaign-list');
    $('no-campaigns').hidden = campaigns.length > 0;
    list.replaceChildren(
      ...campaigns.map((c) => {
        const p = c.progress;
        const done = p.planned ? Math.floor((100 * (p.planned - p.remaining)) / p.planned) : 0;
        const li = el(
          'li',
          { class: c.id === selected ? 'selected' : '', 'data-campaign': c.id },
          el('div', { class: 'row' }, el('span', { class: 'name', title: c.name }, c.name), el('span', { class: `badge ${shownState(p)}` }, shownState(p))),
          progressBar(p),
          el('div', { class: 'counts', 'data-remaining': String(p.remaining) }, `${done}% · ${fmt(p.remaining)} of ${fmt(p.planned)} remaining`),
        );
        li.addEventListener('click', () => {
          selected = c.id;
          location.hash = c.id;
          refresh();
        });
        return li;
      }),
    );
  }

  /** A running campaign whose batches are being retried shows as degraded (CampaignHealth). */
  function shownState(p) {
    return p.health?.status === 'degraded' ? 'degraded' : p.state;
  }

  function stat(name, text, value) {
    const e = document.querySelector(`[data-stat="${name}"]`);
    e.textContent = text;
    e.setAttribute('data-value', String(value));
  }

  function renderDetail(d) {
    const p = d.progress;
    $('detail').hidden = false;
    $('d-name').textContent = d.name;
    $('d-id').textContent = d.id;
    $('d-kind').textContent = d.kind;
    $('d-from').textContent = d.from;
    $('d-to').textContent = d.to;
    const state = $('d-state');
    state.textContent = shownState(p);
    state.className = `badge ${shownState(p)}`;
    const degraded = p.health?.status === 'degraded';
    $('d-pause').hidden = !p.pauseReason && !degraded;
    $('d-pause').textContent = p.pauseReason
      ? `paused: ${p.pauseReason}`
      : degraded
        ? `degraded: ${p.health.retryingBatches} batches retrying (${p.health.reason}); resumes by itself`
        : '';
    setBar($('d-bar'), p);
    stat('remaining', fmt(p.remaining), p.remaining);
    stat('rewrapped', fmt(p.rewrapped), p.rewrapped);
    stat('skipped', fmt(p.skipped), p.skipped);
    stat('failed', fmt(p.failed), p.failed);
    stat('rate', p.doneRatePerSec >= 10 ? fmt(Math.round(p.doneRatePerSec)) : p.doneRatePerSec.toFixed(1), p.doneRatePerSec);
    stat('eta', p.state === 'completed' ? 'done' : duration(p.etaSeconds), p.etaSeconds ?? '');
    $('d-planned').textContent = `of ${fmt(p.planned)} planned${p.planDone ? '' : ' so far'}`;
    $('d-deadline').textContent = d.deadline ? `deadline ${new Date(d.deadline).toLocaleString()}` : '';
    $('d-batches').textContent = `batches: ${fmt(p.batches.done)} done, ${fmt(p.batches.enqueued)} queued, ${fmt(p.batches.pending)} pending`;

    const reasons = $('reasons').tBodies[0];
    reasons.replaceChildren(
      ...d.failuresByReason.map((r) =>
        el('tr', { 'data-reason': r.reason }, el('td', {}, el('code', {}, r.reason), r.description ? el('span', { class: 'desc' }, r.description) : null), el('td', { class: 'num' }, fmt(r.items))),
      ),
    );
    $('no-failures').hidden = d.failuresByReason.length > 0;
    $('reasons').hidden = d.failuresByReason.length === 0;

    const keks = $('keks').tBodies[0];
    const name = (r) => (r.kekVersion ? `${r.kekId}@${r.kekVersion}` : r.kekId);
    keks.replaceChildren(
      ...d.kekVersions.map((r) =>
        el('tr', { class: name(r) === d.from ? 'from' : name(r) === d.to ? 'to' : '', 'data-kek': name(r) }, el('td', {}, el('code', {}, r.storeId)), el('td', {}, name(r)), el('td', { class: 'num' }, fmt(r.items))),
      ),
    );
    $('no-keks').hidden = d.kekVersions.length > 0;
    $('keks').hidden = d.kekVersions.length === 0;
  }

  function renderChart(id, points) {
    const data = [points.map((x) => x.t), points.map((x) => x.remaining)];
    const box = $('chart');
    const width = Math.max(300, box.clientWidth);
    if (!chart || chartFor !== id) {
      chart?.destroy();
      chartFor = id;
      chart = new uPlot(
        {
          width,
          height: 260,
          legend: { show: false },
          cursor: { drag: { x: false, y: false } },
          scales: {
            // At least a minute wide, so a fresh campaign's axis reads in seconds, not milliseconds.
            x: { time: true, range: (_u, min, max) => [Math.min(min, max - 60), max] },
            y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.05] },
          },
          axes: [{ stroke: '#6b7385', grid: { stroke: '#eef0f4' } }, { stroke: '#6b7385', grid: { stroke: '#eef0f4' }, size: 70, values: (_u, vals) => vals.map((v) => fmt(v)) }],
          series: [{}, { label: 'remaining', stroke: '#2f6fde', width: 2, fill: 'rgba(47,111,222,0.12)' }],
        },
        data,
        box,
      );
    } else {
      if (chart.width !== width) chart.setSize({ width, height: 260 });
      chart.setData(data);
    }
    box.setAttribute('data-points', String(points.length));
  }

  function live(state, text) {
    $('live').setAttribute('data-state', state);
    $('live-text').textContent = text;
  }

  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    try {
      const { campaigns } = await getJson('/api/campaigns');
      if (!campaigns.some((c) => c.id === selected)) {
        selected = (campaigns.find((c) => c.progress.state === 'running') ?? campaigns[campaigns.length - 1])?.id ?? null;
      }
      renderList(campaigns);
      if (selected) {
        const id = encodeURIComponent(selected);
        const [detail, history] = await Promise.all([getJson(`/api/campaigns/${id}`), getJson(`/api/campaigns/${id}/history`)]);
        renderDetail(detail);
        renderChart(selected, history.points);
      } else $('detail').hidden = true;
      live('ok', `live · updated ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      if (err instanceof NeedsToken) {
        askForToken(sessionStorage.getItem(TOKEN_KEY) !== null);
        live('error', 'waiting for the read token');
        return;
      }
      live('error', `cannot reach the API (${err.message}); retrying`);
    }
    timer = setTimeout(refresh, POLL_MS);
  }
  window.addEventListener('resize', () => chart && chart.setSize({ width: Math.max(300, $('chart').clientWidth), height: 260 }));
  refresh();
})();
