// leanspec-peer web UI. No framework, no build step. Every string that comes from a
// document (titles, labels, tags, names) is put in the page as text (`h` below never
// parses HTML); the one exception is a spec body, which the server renders to sanitised
// HTML (raw HTML escaped, unsafe links dropped) and the CSP forbids inline script anyway.
'use strict';

const STATUSES = ['draft', 'planned', 'in-progress', 'complete', 'archived'];
const PRIORITIES = ['low', 'medium', 'high', 'critical'];
const $ = (sel, root = document) => root.querySelector(sel);

// ---- DOM -------------------------------------------------------------------------

/** An element with attributes (`on*` functions become listeners) and children (strings are text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(text, kind = 'info') {
  const t = $('#toast');
  t.replaceChildren(h('div', { class: `toast ${kind}` }, text));
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.replaceChildren(), kind === 'error' ? 12000 : 5000);
}

const fmtTime = (unixMs) => (unixMs ? new Date(unixMs).toLocaleString() : 'never');
const fmtSecs = (s) => (s % 86400 === 0 ? `${s / 86400} d` : s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`);

function ago(unixSecs) {
  if (!unixSecs) return 'never';
  const s = Math.max(0, Math.round(Date.now() / 1000 - unixSecs));
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// ---- API -------------------------------------------------------------------------

const state = {
  csrf: '',
  me: '',
  role: 'viewer', // what the API lets this session do: viewer, editor, admin
  account: null, // null: this machine's own user (one-time login)
  machines: [], // MachineReport[]
  byId: new Map(),
  selected: 'all',
  view: null, // { onEvent(ev) }
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.kind = body && body.error && body.error.kind;
  }
}

async function api(path, params) {
  const q = params ? '?' + new URLSearchParams(clean(params)) : '';
  const r = await fetch(`/api/v1/${path}${q}`, { credentials: 'same-origin' });
  return reply(r);
}

async function post(path, body) {
  const r = await fetch(`/api/v1/${path}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-csrf-token': state.csrf },
    body: JSON.stringify(body),
  });
  return reply(r);
}

async function reply(r) {
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: { message: text } }; }
  if (r.status === 401) { location.reload(); }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

function clean(params) {
  const out = {};
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) out[k] = v;
  return out;
}

// The server enforces roles on every call; the page only hides what would be refused.
const canEdit = () => state.role === 'editor' || state.role === 'admin';
const isAdmin = () => state.role === 'admin';

// ---- machines and the switcher ---------------------------------------------------

async function loadMachines() {
  state.machines = await api('machines');
  state.byId = new Map(state.machines.map((m) => [m.id, m]));
  renderSwitcher();
}

const label = (id) => (state.byId.get(id) ? state.byId.get(id).label : id.slice(0, 8));
const isOnline = (id) => {
  const m = state.byId.get(id);
  return Boolean(m && !m.revoked && (m.self || m.online));
};

function renderSwitcher() {
  const sel = $('#machine-switcher');
  const opts = [h('option', { value: 'all' }, 'All machines')];
  for (const m of state.machines) {
    if (m.revoked) continue;
    const dot = m.self ? '◆' : m.online ? '●' : '○';
    const suffix = m.self ? ' (this machine)' : m.online ? '' : ' (offline)';
    opts.push(h('option', { value: m.id }, `${dot} ${m.label}${suffix}`));
  }
  sel.replaceChildren(...opts);
  if (state.selected !== 'all' && !state.byId.has(state.selected)) state.selected = 'all';
  sel.value = state.selected;
}

function selectMachine(id) {
  state.selected = id;
  localStorage.setItem('lsp.machine', id);
  const u = new URL(location.href);
  // A spec page belongs to one machine: switching machines goes to that machine's board.
  if (u.pathname === '/spec' || u.pathname === '/deps') { u.pathname = '/board'; u.search = ''; }
  if (id === 'all') u.searchParams.delete('m'); else u.searchParams.set('m', id);
  history.replaceState(null, '', u);
  route();
}

/** A link to a view, carrying the selected machine. */
function link(path, params, ...children) {
  const p = new URLSearchParams(clean(params || {}));
  if (state.selected !== 'all' && !p.has('m')) p.set('m', state.selected);
  const href = path + (p.toString() ? `?${p}` : '');
  return h('a', { href, onclick: (e) => { if (e.button === 0 && !e.ctrlKey && !e.metaKey) { e.preventDefault(); go(href); } } }, ...children);
}

function go(href) {
  history.pushState(null, '', href);
  route();
}

// ---- live events -----------------------------------------------------------------

let reloadTimer = null;
/** Re-renders the current view soon (several events in a burst: once). */
function reloadSoon(ms = 150) {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => route({ keepScroll: true }), ms);
}

let machinesTimer = null;
function machinesSoon() {
  clearTimeout(machinesTimer);
  machinesTimer = setTimeout(async () => {
    try { await loadMachines(); } catch (_) { return; }
    if (state.view && state.view.onMachines) state.view.onMachines();
  }, 100);
}

function connectEvents() {
  const es = new EventSource('/api/v1/events');
  const live = $('#live');
  es.onopen = () => { live.textContent = 'live'; live.className = 'live on'; };
  es.onerror = () => { live.textContent = 'reconnecting'; live.className = 'live off'; };
  const pass = (kind) => es.addEventListener(kind, (e) => {
    let ev;
    try { ev = JSON.parse(e.data); } catch (_) { return; }
    if (['machine_online', 'machine_offline', 'sync_state', 'mesh_changed', 'machine_added',
      'machine_renamed', 'machine_revoked', 'machine_removed'].includes(kind)) machinesSoon();
    if (state.view && state.view.onEvent) state.view.onEvent(kind, ev);
  });
  for (const k of ['spec_changed', 'spec_removed', 'machine_online', 'machine_offline', 'sync_state',
    'mesh_changed', 'machine_added', 'machine_renamed', 'machine_revoked', 'machine_removed', 'edit_received',
    'exec_request', 'refused']) pass(k);
  es.addEventListener('lagged', () => { machinesSoon(); reloadSoon(); });
}

// ---- shared pieces ---------------------------------------------------------------

const specKey = (machine, project, spec) => `${machine}|${project}|${spec}`;
const rowKey = (r) => specKey(r.machine, r.project_id, r.spec);

function dot(id) {
  const on = isOnline(id);
  return h('span', { class: `dot ${on ? 'online' : 'offline'}`, title: on ? 'online' : 'offline' });
}

function badge(kind, value) {
  return value ? h('span', { class: `badge ${kind} ${kind}-${value}` }, value) : null;
}

/** Applies a `spec_changed` event's values to a row (as the document now has them). */
function patchRow(row, values) {
  for (const [k, v] of Object.entries(values || {})) {
    if (k in row && k !== "spec" && k !== "machine") row[k] = v;
  }
}

/** The machine filter of the current selection as a query term. */
const machineTerm = () => (state.selected === 'all' ? '' : `machine:${state.selected}`);

/** Query terms from the filter fields (values quoted: they come from the user). */
function queryOf(f) {
  const quote = (v) => (/^[\w.-]+$/.test(v) ? v : `"${v.replace(/"/g, '')}"`);
  const terms = [machineTerm()];
  if (f.status) terms.push(`status:${quote(f.status)}`);
  if (f.priority) terms.push(`priority:${quote(f.priority)}`);
  if (f.tag) terms.push(`tag:${quote(f.tag)}`);
  if (f.assignee) terms.push(`assignee:${quote(f.assignee)}`);
  if (f.project) terms.push(`project:${quote(f.project)}`);
  if (f.q) terms.push(`(${f.q})`);
  return terms.filter(Boolean).join(' ');
}

const FILTERS = ['status', 'priority', 'tag', 'assignee', 'project', 'q', 'sort', 'group'];

function filtersFromUrl() {
  const p = new URLSearchParams(location.search);
  const f = {};
  for (const k of FILTERS) f[k] = p.get(k) || '';
  return f;
}

function filterBar(f, opts) {
  const field = (name, text, control) => h('label', { class: 'filter' }, text, control);
  const select = (name, values, empty) => h('select', { name },
    h('option', { value: '' }, empty), values.map((v) => h('option', { value: v, selected: f[name] === v }, v)));
  const form = h('form', { class: 'filters', id: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams(location.search);
    for (const [k, v] of new FormData(form).entries()) { if (v) p.set(k, v); else p.delete(k); }
    go(`${location.pathname}?${p}`);
  } },
  opts.status ? field('status', 'Status', select('status', STATUSES, 'any')) : null,
  field('priority', 'Priority', select('priority', PRIORITIES, 'any')),
  field('tag', 'Tag', h('input', { name: 'tag', value: f.tag, size: 10 })),
  field('assignee', 'Assignee', h('input', { name: 'assignee', value: f.assignee, size: 10 })),
  field('q', 'Search', h('input', { name: 'q', value: f.q, size: 24, placeholder: 'words, tag:x, status:planned…', type: 'search' })),
  opts.sort ? field('sort', 'Sort', h('select', { name: 'sort' },
    [['', 'number'], ['title', 'title'], ['priority', 'priority'], ['status', 'status'], ['updated', 'recently updated'], ['machine', 'machine']]
      .map(([v, t]) => h('option', { value: v, selected: f.sort === v }, t)))) : null,
  opts.sort ? field('group', 'Group', h('select', { name: 'group' },
    h('option', { value: '' }, 'none'), h('option', { value: 'parent', selected: f.group === 'parent' }, 'by parent'))) : null,
  h('button', { type: 'submit' }, 'Apply'),
  link(location.pathname, {}, 'Clear'));
  return form;
}

/** Rows whose spec (same fleet project, same name) differs between machines. */
function differing(rows) {
  const seen = new Map();
  for (const r of rows) {
    const k = `${r.fleet}|${r.spec}`;
    if (!seen.has(k)) seen.set(k, new Set());
    seen.get(k).add(r.file_hash);
  }
  return (r) => (seen.get(`${r.fleet}|${r.spec}`) || new Set()).size > 1;
}

// ---- views -----------------------------------------------------------------------

const views = {
  '/': dashboardView,
  '/machines': machinesView,
  '/projects': projectsView,
  '/specs': specsView,
  '/board': boardView,
  '/spec': specView,
  '/activity': activityView,
  '/deps': depsView,
};

async function route(opts = {}) {
  const view = views[location.pathname] || dashboardView;
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.view === location.pathname);
    const href = a.dataset.view + (state.selected !== 'all' ? `?m=${state.selected}` : '');
    a.setAttribute('href', href);
  }
  const main = $('#view');
  const y = window.scrollY;
  state.view = null;
  try {
    const ctl = (await view(main)) || {};
    state.view = ctl;
    if (opts.keepScroll) window.scrollTo(0, y);
  } catch (e) {
    main.replaceChildren(h('div', { class: 'error-box' }, h('h2', {}, 'Could not load this view'), h('p', {}, e.message)));
  }
}

async function dashboardView(main) {
  const [stats, rows] = await Promise.all([api('stats'), api('specs', state.selected === 'all' ? {} : { machine: state.selected })]);
  const machines = stats.machines.filter((m) => state.selected === 'all' || m.machine === state.selected);
  const counts = (map, keys) => keys.map((k) => h('td', { class: 'num' }, String(map[k] || 0)));
  const recent = rows.filter((r) => r.updated_at || r.created_at)
    .sort((a, b) => (b.updated_at || b.created_at).localeCompare(a.updated_at || a.created_at))
    .slice(0, 12);
  main.replaceChildren(
    h('h1', {}, 'Dashboard'),
    h('section', { class: 'cards' },
      h('div', { class: 'stat' }, h('b', {}, String(stats.fleet.specs)), ' specs in the fleet'),
      h('div', { class: 'stat' }, h('b', {}, String(state.machines.filter((m) => !m.revoked).length)), ' machines'),
      h('div', { class: 'stat' }, h('b', {}, `${Math.round(stats.fleet.completion_rate * 100)}%`), ' complete')),
    h('h2', {}, 'By status'),
    h('table', { class: 'grid', id: 'status-counts' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Machine'), STATUSES.map((s) => h('th', {}, s)), h('th', {}, 'total'))),
      h('tbody', {}, machines.map((m) => h('tr', {}, h('td', {}, dot(m.machine), ' ', m.machine_label),
        counts(m.counts.by_status, STATUSES), h('td', { class: 'num' }, String(m.counts.specs)))))),
    h('h2', {}, 'By priority'),
    h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Machine'), PRIORITIES.map((s) => h('th', {}, s)), h('th', {}, 'none'))),
      h('tbody', {}, machines.map((m) => h('tr', {}, h('td', {}, m.machine_label),
        counts(m.counts.by_priority, [...PRIORITIES, 'none']))))),
    h('h2', {}, 'Recently changed'),
    h('ul', { class: 'recent' }, recent.map((r) => h('li', {},
      specLink(r, r.title), ' ', h('span', { class: 'muted' }, `${r.machine_label} · ${r.project} · ${r.updated_at || r.created_at}`)))),
  );
  return { onEvent: (kind) => { if (kind === 'spec_changed' || kind === 'spec_removed') reloadSoon(500); } };
}

function specLink(r, ...children) {
  return link('/spec', { m: r.machine, project: r.project_id, spec: r.spec }, ...children);
}

async function machinesView(main) {
  const invites = isAdmin() ? await api('invites').catch(() => []) : [];
  const render = () => {
    const rows = state.machines.map((m) => {
      const id = m.id;
      const name = h('span', { class: 'label' }, m.label);
      const actions = h('td', { class: 'actions' });
      if (!m.revoked && isAdmin()) {
        actions.append(h('button', { class: 'rename', type: 'button', onclick: () => {
          const input = h('input', { class: 'rename-input', value: m.label, 'aria-label': 'New label' });
          const form = h('form', { class: 'inline', onsubmit: async (e) => {
            e.preventDefault();
            try {
              await post('rename', { machine: id, label: input.value.trim() });
              toast(`Renamed to ${input.value.trim()}`, 'ok');
              await loadMachines(); render();
            } catch (err) { toast(`Rename failed: ${err.message}`, 'error'); }
          } }, input, h('button', { type: 'submit' }, 'Save'));
          name.replaceWith(form); input.focus();
        } }, 'Rename'));
        if (!m.self) {
          actions.append(h('button', { class: 'revoke danger', type: 'button', onclick: () => confirmRevoke(m, render) }, 'Revoke'));
          actions.append(link('/board', { m: id }, 'Board'));
        }
      }
      return h('tr', { class: `machine${m.revoked ? ' revoked' : ''}`, dataset: { id } },
        h('td', {}, dot(id)),
        h('td', {}, name, m.self ? h('span', { class: 'muted' }, ' (this machine)') : null),
        h('td', { class: 'mono' }, id.slice(0, 8)),
        h('td', { class: 'presence' }, m.revoked ? 'revoked' : m.self || m.online ? 'online' : 'offline'),
        h('td', {}, m.self ? 'now' : ago(m.last_seen)),
        h('td', {}, m.version || '?', h('span', { class: 'muted' }, m.os ? ` ${m.os}` : '')),
        h('td', { class: 'num' }, String(m.projects)),
        h('td', { class: 'num' }, String(m.specs)),
        h('td', {}, m.self ? '—' : m.in_sync ? 'in sync' : `${m.pending} pending`),
        h('td', {}, m.path || '—'),
        actions);
    });
    // Only the table is redrawn on machine events: an invitation just made (and its
    // QR code) stays on the page.
    table.replaceChildren(
      h('thead', {}, h('tr', {}, ['', 'Label', 'Id', 'State', 'Last seen', 'Version', 'Projects', 'Specs', 'Sync', 'Path', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows));
  };
  const table = h('table', { class: 'grid', id: 'machines' });
  main.replaceChildren(h('h1', {}, 'Machines'), table, isAdmin() ? inviteSection(invites) : null);
  render();
  return { onMachines: render };
}

async function confirmRevoke(m, after) {
  const yes = await confirmDialog(`Revoke ${m.label}?`,
    'Every member will disconnect it and refuse it from now on. Its last-known specs stay visible, marked revoked. This cannot be undone: it would have to be invited again.',
    'Revoke', 'confirm-revoke');
  if (!yes) return;
  try { await post('revoke', { machine: m.id }); toast(`${m.label} revoked`, 'ok'); await loadMachines(); after(); } catch (e) { toast(`Revoke failed: ${e.message}`, 'error'); }
}

/** A yes/no question in the page's dialog; resolves true for yes. */
function confirmDialog(title, text, yes, yesId = 'confirm-yes') {
  const d = $('#dialog');
  d.className = 'confirm';
  return new Promise((resolve) => {
    const answer = (v) => { d.close(); resolve(v); };
    d.replaceChildren(h('h2', {}, title), h('p', {}, text), h('div', { class: 'buttons' },
      h('button', { id: yesId, class: 'danger', type: 'button', onclick: () => answer(true) }, yes),
      h('button', { id: 'confirm-no', type: 'button', onclick: () => answer(false) }, 'Cancel')));
    d.addEventListener('cancel', () => resolve(false), { once: true });
    d.showModal();
  });
}

function inviteSection(invites) {
  const out = h('div', { id: 'invite-result' });
  const ttl = h('select', { name: 'ttl' }, [['600', '10 minutes'], ['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days']]
    .map(([v, t]) => h('option', { value: v, selected: v === '3600' }, t)));
  const reusable = h('input', { type: 'checkbox', name: 'reusable' });
  const ephemeral = h('select', { name: 'ephemeral', title: 'Machines that join with it leave the mesh by themselves after being away this long (CI runners, throwaway VMs)' },
    [['', 'stay'], ['600', 'leave after 10 min away'], ['3600', 'leave after 1 hour away'], ['86400', 'leave after 1 day away']]
      .map(([v, t]) => h('option', { value: v }, t)));
  const form = h('form', { class: 'inline', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const body = { ttl_secs: Number(ttl.value), reusable: reusable.checked };
      if (ephemeral.value) body.ephemeral_after_secs = Number(ephemeral.value);
      const t = await post('invite', body);
      const img = t.qr_svg ? h('img', { class: 'qr', alt: 'QR code of the ticket', src: `data:image/svg+xml;utf8,${encodeURIComponent(t.qr_svg)}` }) : null;
      out.replaceChildren(
        h('p', {}, `${t.reusable ? 'Reusable auth key' : 'One-time ticket'}, valid until ${fmtTime(t.expires_at * 1000)}. On the new machine: `, h('code', {}, 'leanspec-peer join TICKET')),
        h('textarea', { readonly: true, rows: 3, class: 'ticket' }, t.ticket), img);
    } catch (err) { toast(`Invite failed: ${err.message}`, 'error'); }
  } }, h('label', {}, 'Valid for ', ttl), h('label', {}, reusable, ' reusable (auth key)'), h('label', {}, 'Machines ', ephemeral), h('button', { type: 'submit' }, 'Create invitation'));
  const list = h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, ['Id', 'Kind', 'Created', 'Expires', 'State', 'Used by', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, invites.map((i) => h('tr', {},
      h('td', { class: 'mono' }, i.id), h('td', {}, (i.reusable ? 'auth key' : 'one-time') + (i.ephemeral_after ? `, ephemeral (${fmtSecs(i.ephemeral_after)})` : '')),
      h('td', {}, fmtTime(i.created_at * 1000)), h('td', {}, fmtTime(i.expires_at * 1000)),
      h('td', {}, typeof i.state === 'string' ? i.state : JSON.stringify(i.state)),
      h('td', {}, i.used_by.map((u) => u.label || u.id.slice(0, 8)).join(', ')),
      h('td', {}, i.state === 'active' ? h('button', { type: 'button', onclick: async () => {
        try { await post('invites/revoke', { id: i.id }); toast('Invitation revoked', 'ok'); route(); } catch (e) { toast(e.message, 'error'); }
      } }, 'Revoke') : null)))));
  return h('section', {}, h('h2', {}, 'Invite a machine'), form, out, h('h2', {}, 'Invitations and auth keys'), list);
}

async function projectsView(main) {
  const rows = await api('specs', state.selected === 'all' ? {} : { machine: state.selected });
  const groups = new Map();
  for (const r of rows) {
    const k = `${r.machine}|${r.project_id}`;
    if (!groups.has(k)) groups.set(k, { r, counts: {}, total: 0 });
    const g = groups.get(k);
    const s = r.status || 'none';
    g.counts[s] = (g.counts[s] || 0) + 1; g.total++;
  }
  const list = [...groups.values()].sort((a, b) => a.r.project.localeCompare(b.r.project) || a.r.machine_label.localeCompare(b.r.machine_label));
  main.replaceChildren(h('h1', {}, 'Projects'),
    list.length === 0 ? h('p', { class: 'muted' }, 'No projects with specs on this selection.') : null,
    h('table', { class: 'grid', id: 'projects' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Project'), h('th', {}, 'Machine'), STATUSES.map((s) => h('th', {}, s)), h('th', {}, 'total'))),
      h('tbody', {}, list.map((g) => h('tr', {},
        h('td', {}, link('/board', { m: g.r.machine, project: g.r.project_id }, g.r.project), h('div', { class: 'muted small' }, g.r.fleet)),
        h('td', {}, dot(g.r.machine), ' ', g.r.machine_label),
        STATUSES.map((s) => h('td', { class: 'num' }, String(g.counts[s] || 0))),
        h('td', { class: 'num' }, String(g.total)))))));
  return { onEvent: (kind) => { if (kind === 'spec_changed' || kind === 'spec_removed') reloadSoon(500); } };
}

const PRIO_RANK = { critical: 0, high: 1, medium: 2, low: 3 };
const STATUS_RANK = Object.fromEntries(STATUSES.map((s, i) => [s, i]));

function sortRows(rows, sort) {
  const by = {
    title: (a, b) => a.title.localeCompare(b.title),
    priority: (a, b) => (PRIO_RANK[a.priority] ?? 9) - (PRIO_RANK[b.priority] ?? 9),
    status: (a, b) => (STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9),
    updated: (a, b) => (b.updated_at || '').localeCompare(a.updated_at || ''),
    machine: (a, b) => a.machine_label.localeCompare(b.machine_label),
  }[sort];
  return by ? rows.slice().sort(by) : rows;
}

/** A table body that draws LIST_PAGE rows and the rest on request (10,000 rows would
 * take seconds to lay out). */
const LIST_PAGE = 200;
function lazyBody(rows, rowEl, cols) {
  const tbody = h('tbody', {});
  const button = h('button', { type: 'button', class: 'more' });
  const more = h('tr', { class: 'more-row' }, h('td', { colspan: cols }, button));
  let next = 0;
  const draw = () => {
    const frag = document.createDocumentFragment();
    for (const r of rows.slice(next, next + LIST_PAGE)) frag.append(rowEl(r));
    next = Math.min(rows.length, next + LIST_PAGE);
    more.remove();
    tbody.append(frag);
    if (next < rows.length) {
      button.textContent = `Show ${Math.min(LIST_PAGE, rows.length - next)} more of ${rows.length - next}`;
      tbody.append(more);
    }
  };
  button.addEventListener('click', draw);
  draw();
  return tbody;
}

async function specsView(main) {
  const f = filtersFromUrl();
  const q = queryOf(f);
  const board = await api('board', { q, group_by: f.group === 'parent' ? 'parent' : 'status' });
  const all = board.columns.flatMap((c) => c.specs);
  const differs = differing(all);
  const showMachine = state.selected === 'all';
  const rowEl = (r) => h('tr', { class: 'spec', dataset: { key: rowKey(r) } },
    h('td', { class: 'mono' }, r.spec.split('-')[0]),
    h('td', {}, specLink(r, r.title), differs(r) ? h('span', { class: 'differs', title: 'This spec differs between machines' }, ' ≠ differs') : null),
    h('td', {}, badge('status', r.status)), h('td', {}, badge('priority', r.priority)),
    h('td', {}, r.tags.map((t) => h('span', { class: 'tag' }, t))),
    h('td', {}, r.assignee || ''),
    showMachine ? h('td', {}, dot(r.machine), ' ', r.machine_label) : null,
    h('td', { class: 'muted' }, r.project));
  const head = h('thead', {}, h('tr', {}, ['#', 'Title', 'Status', 'Priority', 'Tags', 'Assignee', showMachine ? 'Machine' : null, 'Project'].filter(Boolean).map((t) => h('th', {}, t))));
  let body;
  if (f.group === 'parent') {
    body = board.columns.map((c) => {
      const tbody = lazyBody(sortRows(c.specs, f.sort), rowEl, 8);
      tbody.prepend(h('tr', { class: 'group' }, h('th', { colspan: 8 }, c.key === 'none' ? 'No parent' : `Parent: ${c.key}`)));
      return tbody;
    });
  } else {
    body = [lazyBody(sortRows(all, f.sort), rowEl, 8)];
  }
  main.replaceChildren(h('h1', {}, 'Specs ', h('span', { class: 'muted' }, `${all.length}`)), filterBar(f, { status: true, sort: true }),
    h('table', { class: 'grid specs', id: 'spec-list' }, head, body));
  return { onEvent: (kind) => { if (kind === 'spec_changed' || kind === 'spec_removed') reloadSoon(300); } };
}

// The board: cards keyed by machine|project|spec; a change event moves or refreshes the
// one card it names (no refetch), so a file saved anywhere shows within one event.
async function boardView(main) {
  const f = filtersFromUrl();
  const q = queryOf(f);
  const board = await api('board', { q, group_by: 'status' });
  const rows = new Map(); // key -> row, every spec of the board
  const els = new Map(); // key -> card element, the ones in the DOM
  const all = board.columns.flatMap((c) => c.specs);
  const differs = differing(all);
  const showMachine = state.selected === 'all';
  const cols = new Map(); // column key -> { list, more, pending: rows not drawn yet }
  const card = (r) => {
    const editable = isOnline(r.machine) && canEdit();
    return h('article', {
      class: `card${editable ? '' : ' locked'}`, draggable: editable ? 'true' : 'false',
      dataset: { key: rowKey(r), status: r.status || 'none' },
    },
    h('div', { class: 'card-head' }, h('span', { class: 'mono muted' }, r.spec.split('-')[0]), badge('priority', r.priority),
      differs(r) ? h('span', { class: 'differs', title: 'This spec differs between machines' }, '≠') : null,
      editable ? null : h('span', { class: 'muted small', title: 'Machine unavailable: its specs cannot be edited now' }, 'offline')),
    h('div', { class: 'title' }, specLink(r, r.title)),
    h('div', { class: 'tags' }, r.tags.slice(0, 4).map((t) => h('span', { class: 'tag' }, t))),
    showMachine ? h('div', { class: 'machine muted small' }, dot(r.machine), ' ', r.machine_label, ' · ', r.project) : null);
  };
  // A column draws its first PAGE cards; the rest on request (10,000 cards would take
  // seconds to lay out and nobody reads them at once).
  const PAGE = 100;
  const drawMore = (col) => {
    const frag = document.createDocumentFragment();
    for (const r of col.pending.splice(0, PAGE)) {
      if (els.has(rowKey(r)) || rows.get(rowKey(r)) !== r) continue;
      const el = card(r);
      els.set(rowKey(r), el);
      frag.append(el);
    }
    col.list.append(frag);
    col.more.hidden = col.pending.length === 0;
    col.more.textContent = `Show ${Math.min(PAGE, col.pending.length)} more of ${col.pending.length}`;
  };
  const updateCounts = () => {
    const n = new Map();
    for (const r of rows.values()) n.set(r.status || 'none', (n.get(r.status || 'none') || 0) + 1);
    for (const [k, c] of cols) c.count.textContent = String(n.get(k) || 0);
  };
  const place = (r) => {
    const key = rowKey(r);
    const old = els.get(key);
    const col = cols.get(r.status || 'none') || cols.get('none');
    els.delete(key);
    if (!col) { if (old) old.remove(); updateCounts(); return; }
    const el = card(r);
    els.set(key, el);
    // Same column: in place; another: on top, where a moved card is looked for.
    if (old && old.parentElement === col.list) old.replaceWith(el);
    else { if (old) old.remove(); col.list.prepend(el); }
    updateCounts();
  };
  const columns = board.columns.map((c) => {
    const col = {
      list: h('div', { class: 'cards-list' }),
      more: h('button', { type: 'button', class: 'more' }),
      count: h('span', { class: 'count muted' }, String(c.specs.length)),
      pending: c.specs.slice(),
    };
    col.more.addEventListener('click', () => drawMore(col));
    for (const r of c.specs) rows.set(rowKey(r), r);
    cols.set(c.key, col);
    drawMore(col);
    return h('section', {
      class: 'column', dataset: { status: c.key },
      ondragover: (e) => { e.preventDefault(); e.currentTarget.classList.add('over'); },
      ondragleave: (e) => e.currentTarget.classList.remove('over'),
      ondrop: async (e) => {
        e.preventDefault();
        e.currentTarget.classList.remove('over');
        const key = e.dataTransfer.getData('text/plain');
        const r = rows.get(key);
        if (!r || c.key === 'none' || r.status === c.key) return;
        await submitEdit(r, { status: c.key }, (fresh) => { rows.set(rowKey(fresh), fresh); place(fresh); });
      },
    }, h('h2', {}, c.key, ' ', col.count), col.list, col.more);
  });
  const boardEl = h('div', { class: 'board', id: 'board', title: 'Drag a card to another column to change its status' }, columns);
  // One listener for every card.
  boardEl.addEventListener('dragstart', (e) => {
    const el = e.target.closest && e.target.closest('.card');
    if (!el) return;
    e.dataTransfer.setData('text/plain', el.dataset.key);
    e.dataTransfer.effectAllowed = 'move';
  });
  main.replaceChildren(
    h('h1', {}, 'Board ', h('span', { class: 'muted' }, `${all.length} specs`, showMachine ? ' on every machine' : ` on ${label(state.selected)}`)),
    filterBar(f, { status: false, sort: false }),
    boardEl);
  const filtered = Boolean(f.priority || f.tag || f.assignee || f.q || f.project);
  return {
    onEvent(kind, ev) {
      if (kind === 'spec_removed') {
        const key = specKey(ev.machine, ev.project, ev.spec);
        rows.delete(key);
        const old = els.get(key);
        if (old) { old.remove(); els.delete(key); }
        updateCounts();
        return;
      }
      if (kind !== 'spec_changed') return;
      if (state.selected !== 'all' && ev.machine !== state.selected) return;
      const r = rows.get(specKey(ev.machine, ev.project, ev.spec));
      // A new spec, or a filter the change may affect: ask the server again.
      if (!r || filtered) { reloadSoon(); return; }
      patchRow(r, ev.values);
      place(r);
    },
    onMachines() {
      for (const [key, el] of els) {
        const r = rows.get(key);
        if (r && isOnline(r.machine) === el.classList.contains('locked')) el.replaceWith(els.set(key, card(r)).get(key));
      }
    },
  };
}

// ---- edits -----------------------------------------------------------------------

/** Sends a signed edit with the file hash the page showed, and shows how it ended.
 * `done(row)` gets the spec as it is after an applied edit. */
async function submitEdit(row, change, done, base = row.file_hash) {
  if (!isOnline(row.machine)) {
    toast(`Machine unavailable: ${row.machine_label} is offline, nothing was sent`, 'error');
    return;
  }
  let verdict;
  try {
    verdict = await post('edit', { machine: row.machine, project: row.project_id, spec: row.spec, base_file_hash: base, change });
  } catch (e) {
    toast(`Edit failed: ${e.message}`, 'error');
    return;
  }
  if (verdict.result === 'applied') {
    toast(`Applied on ${row.machine_label}: ${describe(change)}`, 'ok');
    const fresh = await freshRow(row, verdict.file_hash);
    done(fresh);
  } else if (verdict.result === 'rejected' && verdict.reason === 'stale') {
    await conflict(row, change, verdict, done);
  } else if (verdict.result === 'unavailable') {
    toast(`Machine unavailable: ${verdict.message}. Nothing was queued.`, 'error');
  } else {
    toast(`Rejected by ${row.machine_label} (${verdict.reason || verdict.result}): ${verdict.message}`, 'error');
  }
}

function describe(change) {
  return Object.entries(change).map(([k, v]) => `${k.replace(/_/g, ' ')} ${Array.isArray(v) ? v.join(', ') : v}`).join('; ');
}

/** The spec as the document has it, waiting (bounded) until it shows `hash`. */
async function freshRow(row, hash) {
  let fresh = row;
  for (let i = 0; i < 20; i++) {
    try { fresh = await api('spec', { machine: row.machine, project: row.project_id, spec: row.spec }); } catch (_) { return fresh; }
    if (!hash || fresh.file_hash === hash) return fresh;
    await new Promise((r) => setTimeout(r, 100));
  }
  return fresh;
}

const FIELDS = [['status', 'Status'], ['priority', 'Priority'], ['tags', 'Tags'], ['depends_on', 'Depends on'], ['parent', 'Parent'], ['assignee', 'Assignee']];

function fieldText(spec, k) {
  const v = spec[k];
  return Array.isArray(v) ? v.join(', ') : v || '—';
}

/** The conflict dialog: the file changed since the page showed it. */
async function conflict(row, change, verdict, done) {
  const now = await freshRow(row, verdict.current_file_hash);
  const d = $('#dialog');
  d.className = 'conflict';
  const touched = FIELDS.filter(([k]) => k in change || (k === 'tags' && ('set_tags' in change || 'add_tags' in change || 'remove_tags' in change)) || (k === 'depends_on' && ('add_depends_on' in change || 'remove_depends_on' in change)));
  d.replaceChildren(
    h('h2', {}, 'This spec changed on ', row.machine_label, ' since you opened it'),
    h('p', {}, 'Nothing was written. Here is what the file says now; apply your change to this version or discard it.'),
    h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'You saw'), h('th', {}, 'Now'), h('th', {}, 'Your change'))),
      h('tbody', {}, (touched.length ? touched : FIELDS).map(([k, t]) => h('tr', { dataset: { field: k } },
        h('th', {}, t), h('td', {}, fieldText(row, k)), h('td', { class: 'now' }, fieldText(now, k)),
        h('td', {}, changeText(change, k)))))),
    h('div', { class: 'buttons' },
      h('button', { id: 'apply-current', type: 'button', onclick: async () => {
        d.close();
        await submitEdit(now, change, done, verdict.current_file_hash || now.file_hash);
      } }, 'Apply to the current version'),
      h('button', { id: 'discard', type: 'button', onclick: () => { d.close(); toast('Your change was discarded; showing the current version', 'info'); done(now); } }, 'Discard')));
  d.showModal();
}

function changeText(change, k) {
  if (k === 'tags') {
    if (change.set_tags) return change.set_tags.join(', ');
    return [...(change.add_tags || []).map((t) => `+${t}`), ...(change.remove_tags || []).map((t) => `−${t}`)].join(' ');
  }
  if (k === 'depends_on') return [...(change.add_depends_on || []).map((t) => `+${t}`), ...(change.remove_depends_on || []).map((t) => `−${t}`)].join(' ');
  return k in change ? (change[k] === '' ? '(removed)' : change[k]) : '';
}

const splitList = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

/** The change the edit form asks for, relative to the spec it was opened on. */
function changeFrom(form, spec) {
  const v = Object.fromEntries(new FormData(form).entries());
  const c = {};
  if (v.status && v.status !== (spec.status || '')) c.status = v.status;
  if (v.priority && v.priority !== (spec.priority || '')) c.priority = v.priority;
  const tags = splitList(v.tags || '');
  if (tags.join('\n') !== spec.tags.join('\n')) c.set_tags = tags;
  const deps = splitList(v.depends_on || '');
  const add = deps.filter((d) => !spec.depends_on.includes(d));
  const remove = spec.depends_on.filter((d) => !deps.includes(d));
  if (add.length) c.add_depends_on = add;
  if (remove.length) c.remove_depends_on = remove;
  if ((v.parent || '') !== (spec.parent || '')) c.parent = v.parent || '';
  if ((v.assignee || '') !== (spec.assignee || '')) c.assignee = v.assignee || '';
  return c;
}

async function specView(main) {
  const p = new URLSearchParams(location.search);
  const args = { machine: p.get('m') || '', project: p.get('project') || '', spec: p.get('spec') || '' };
  let row = await api('spec', args);
  const bodyBox = h('section', { class: 'body', id: 'spec-body' }, h('p', { class: 'muted' }, 'Loading the spec from its machine…'));
  const history = h('ol', { class: 'history', id: 'history' });
  const meta = h('div', { id: 'meta' });
  const notice = h('div', { id: 'notice' });
  let dirty = false;
  let unchecked = 0; // open checklist items in the body shown
  const loadBody = async () => {
    try {
      const b = await api('body', args);
      const note = b.source === 'cached'
        ? h('p', { class: 'warn', id: 'cached-note' }, `Cached copy from ${fmtTime(b.fetched_at)}: ${row.machine_label} is unreachable (${b.note || 'offline'})`)
        : null;
      const stale = b.file_hash !== row.file_hash ? h('p', { class: 'warn' }, 'This text is of another version of the file than the metadata above.') : null;
      const content = h('div', { class: 'markdown' });
      content.innerHTML = b.html; // sanitised by the server; no script may run (CSP)
      unchecked = content.querySelectorAll('input[type=checkbox]:not([checked])').length;
      bodyBox.replaceChildren(note, stale, content);
      history.replaceChildren(...(b.transitions || []).map((t) => h('li', {}, badge('status', t.status || '?'), ' ', t.at || '')));
      if (!b.transitions || !b.transitions.length) history.replaceChildren(h('li', { class: 'muted' }, 'no transitions recorded'));
    } catch (e) {
      bodyBox.replaceChildren(h('p', { class: 'warn', id: 'body-unavailable' }, e.kind === 'unreachable' ? `Unavailable: ${row.machine_label} is offline and no copy is kept here.` : `Cannot show the body: ${e.message}`));
    }
  };
  const renderMeta = () => {
    const s = row;
    const online = isOnline(row.machine);
    const locked = !online || !canEdit();
    const select = (name, values) => h('select', { name, disabled: locked },
      s[name] ? null : h('option', { value: '' }, '—'), values.map((v) => h('option', { value: v, selected: s[name] === v }, v)));
    const text = (name, value) => h('input', { name, value, disabled: locked, size: 40 });
    const form = h('form', { id: 'edit-form', class: 'meta-form', oninput: () => { dirty = true; }, onchange: () => { dirty = true; }, onsubmit: async (e) => {
      e.preventDefault();
      const change = changeFrom(form, s);
      if (!Object.keys(change).length) { toast('Nothing changed', 'info'); return; }
      // LeanSpec's `update --status complete` refuses open checklist items without
      // --force: say so rather than silently differ.
      if (change.status === 'complete' && unchecked > 0 && !(await confirmDialog(
        `${unchecked} checklist item${unchecked === 1 ? ' is' : 's are'} not checked`,
        'LeanSpec\'s own `update --status complete` refuses this without --force. Mark it complete anyway?',
        'Complete anyway'))) return;
      const save = $('#save');
      save.disabled = true;
      await submitEdit(row, change, (fresh) => { row = fresh; dirty = false; renderMeta(); loadBody(); });
      save.disabled = false;
    } },
    h('table', { class: 'meta' }, h('tbody', {},
      h('tr', {}, h('th', {}, 'Status'), h('td', {}, select('status', STATUSES))),
      h('tr', {}, h('th', {}, 'Priority'), h('td', {}, select('priority', PRIORITIES))),
      h('tr', {}, h('th', {}, 'Tags'), h('td', {}, text('tags', s.tags.join(', ')))),
      h('tr', {}, h('th', {}, 'Depends on'), h('td', {}, text('depends_on', s.depends_on.join(', ')), s.depends_on.length ? [' ', link('/deps', { m: row.machine, project: row.project_id, spec: s.spec }, 'graph')] : null)),
      h('tr', {}, h('th', {}, 'Parent'), h('td', {}, text('parent', s.parent || ''))),
      h('tr', {}, h('th', {}, 'Assignee'), h('td', {}, text('assignee', s.assignee || ''))),
      h('tr', {}, h('th', {}, 'Created'), h('td', {}, s.created || s.created_at || '—')),
      h('tr', {}, h('th', {}, 'Updated'), h('td', {}, s.updated_at || '—')),
      h('tr', {}, h('th', {}, 'Completed'), h('td', {}, s.completed_at || '—')),
      h('tr', {}, h('th', {}, 'Sub-files'), h('td', {}, s.sub_files.length ? s.sub_files.join(', ') : '—')),
      h('tr', {}, h('th', {}, 'File hash'), h('td', { class: 'mono small', id: 'file-hash' }, s.file_hash)),
      h('tr', {}, h('th', {}, 'Content hash'), h('td', { class: 'mono small', title: 'LeanSpec\'s body hash (leanspec update --expected-hash)' }, s.content_hash)),
      s.parse_error ? h('tr', {}, h('th', {}, 'Problem'), h('td', { class: 'warn' }, s.parse_error)) : null)),
    !canEdit() ? h('p', { class: 'muted', id: 'read-only' }, `Read only: your account (${state.account}) is a viewer.`)
      : online ? h('button', { id: 'save', type: 'submit' }, 'Save on ', row.machine_label)
        : h('p', { class: 'warn', id: 'unavailable' }, `Machine unavailable: ${row.machine_label} is offline. Edits are disabled; nothing is queued.`));
    meta.replaceChildren(form);
  };
  main.replaceChildren(
    h('p', { class: 'crumbs' }, link('/board', { m: row.machine }, 'Board'), ' › ', dot(row.machine), ' ', row.machine_label, ' › ', row.project),
    h('h1', { id: 'spec-title' }, row.title),
    h('p', { class: 'mono muted' }, row.spec),
    notice,
    h('div', { class: 'detail' }, h('div', {}, h('h2', {}, 'Metadata'), meta, h('h2', {}, 'Status history'), history), bodyBox));
  renderMeta();
  loadBody();
  return {
    async onEvent(kind, ev) {
      if (kind !== 'spec_changed' || specKey(ev.machine, ev.project, ev.spec) !== rowKey(row)) return;
      if (dirty) {
        notice.replaceChildren(h('p', { class: 'warn' }, `This spec changed on ${row.machine_label} while you were editing; saving will show what changed.`));
        return;
      }
      try { row = await api('spec', args); } catch (_) { return; }
      renderMeta();
      $('#spec-title').textContent = row.title;
      loadBody();
    },
    onMachines: () => { if (!dirty) renderMeta(); },
  };
}

async function depsView(main) {
  const p = new URLSearchParams(location.search);
  const d = await api('deps', { spec: p.get('spec') || '', project: p.get('project') || '', depth: p.get('depth') || '' });
  const pre = h('pre', { class: 'deps' }, JSON.stringify(d, null, 2));
  main.replaceChildren(h('h1', {}, 'Dependencies of ', p.get('spec') || ''), pre);
}

async function activityView(main) {
  const p = new URLSearchParams(location.search);
  const f = { direction: p.get('direction') || '', kind: p.get('kind') || '', result: p.get('result') || '', q: p.get('q') || '' };
  const records = await api('audit', { limit: 1000 });
  const match = (r) => (!f.direction || r.direction === f.direction) && (!f.kind || r.kind === f.kind)
    && (!f.result || r.result === f.result)
    && (!f.q || JSON.stringify(r).toLowerCase().includes(f.q.toLowerCase()))
    && (state.selected === 'all' || r.target === state.selected || r.author === state.selected);
  const shown = records.filter(match);
  const sel = (name, values) => h('select', { name }, h('option', { value: '' }, 'any'), values.map((v) => h('option', { value: v, selected: f[name] === v }, v)));
  const form = h('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams(location.search);
    for (const [k, v] of new FormData(form).entries()) { if (v) q.set(k, v); else q.delete(k); }
    go(`/activity?${q}`);
  } }, h('label', {}, 'Direction ', sel('direction', ['sent', 'received'])), h('label', {}, 'Kind ', sel('kind', ['edit', 'exec_request', 'unknown'])),
  h('label', {}, 'Outcome ', sel('result', ['applied', 'delivered', 'rejected', 'unavailable'])),
  h('label', {}, 'Text ', h('input', { name: 'q', value: f.q, type: 'search' })), h('button', { type: 'submit' }, 'Apply'));
  main.replaceChildren(h('h1', {}, 'Activity'), form,
    h('table', { class: 'grid', id: 'audit' },
      h('thead', {}, h('tr', {}, ['When', 'Direction', 'Kind', 'Author', 'Target', 'Spec', 'Change', 'Outcome', 'Message'].map((t) => h('th', {}, t)))),
      h('tbody', {}, shown.map((r) => h('tr', { class: `audit ${r.result}` },
        h('td', {}, fmtTime(r.at_ms)), h('td', {}, r.direction), h('td', {}, r.kind),
        h('td', { class: 'author' }, label(r.author), r.account ? h('span', { class: 'muted' }, ` for ${r.account}`) : null), h('td', {}, r.target ? label(r.target) : ''),
        h('td', {}, r.spec || ''), h('td', { class: 'small' }, r.change ? describe(r.change) : (r.payload || '')),
        h('td', {}, badge('result', r.result), r.reason ? ` ${r.reason}` : ''), h('td', { class: 'small' }, r.message || ''))))),
    shown.length ? null : h('p', { class: 'muted' }, 'No records match.'));
  return { onEvent: (kind) => { if (kind === 'edit_received' || kind === 'exec_request') reloadSoon(300); } };
}

// ---- start -----------------------------------------------------------------------

function showAccount() {
  const who = state.account ? `${state.account} (${state.role})` : 'this machine\'s user';
  const out = h('button', { id: 'logout', type: 'button', onclick: async () => {
    try { await post('logout', {}); } catch (_) { /* logged out either way */ }
    location.assign('/login');
  } }, 'Log out');
  $('#account').replaceChildren(h('span', { id: 'account-name', class: 'muted' }, who), ' ', out);
}

async function start() {
  try {
    const s = await api('session');
    state.csrf = s.csrf;
    state.me = s.machine;
    state.role = s.role || 'viewer';
    state.account = s.account || null;
    showAccount();
  } catch (e) {
    $('#view').replaceChildren(h('p', { class: 'warn' }, e.message));
    return;
  }
  const fromUrl = new URLSearchParams(location.search).get('m');
  state.selected = fromUrl || localStorage.getItem('lsp.machine') || 'all';
  if (fromUrl) localStorage.setItem('lsp.machine', fromUrl);
  await loadMachines();
  $('#machine-switcher').addEventListener('change', (e) => selectMachine(e.target.value));
  window.addEventListener('popstate', () => route());
  connectEvents();
  await route();
  document.body.dataset.ready = 'true';
}

document.addEventListener('DOMContentLoaded', start);
