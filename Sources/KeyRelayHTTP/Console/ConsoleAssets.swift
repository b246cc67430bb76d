/// The console's script and stylesheet, compiled into the binary (served at `/ui/assets/`). Vanilla JavaScript and CSS:
/// no build step, nothing fetched from elsewhere.
enum ConsoleAssets {
    static let script = #"""
// KeyRelay console: vanilla JavaScript over the KeyRelay / Key Protect API (/api/v2). No dependencies.
// The bearer token lives in sessionStorage and travels only in the Authorization header; never in a URL or a log.
'use strict';
(function () {
  const TOKEN = 'keyrelay.console.token';
  const INSTANCE = 'keyrelay.console.instance';
  const RECENT = 'keyrelay.console.instances';
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const page = body.dataset.page;
  const keyID = body.dataset.keyId || null;
  const STATE_NAMES = { 0: 'Pre-activation', 1: 'Active', 2: 'Suspended', 3: 'Deactivated', 5: 'Destroyed' };

  // ---------------------------------------------------------------- storage
  const session = {
    get token() { return sessionStorage.getItem(TOKEN); },
    get instance() { return sessionStorage.getItem(INSTANCE); },
    signIn(token, instance) { sessionStorage.setItem(TOKEN, token); this.setInstance(instance); },
    setInstance(instance) {
      sessionStorage.setItem(INSTANCE, instance);
      const recent = this.recent().filter((i) => i !== instance);
      recent.unshift(instance);
      sessionStorage.setItem(RECENT, JSON.stringify(recent.slice(0, 10)));
    },
    recent() { try { return JSON.parse(sessionStorage.getItem(RECENT) || '[]'); } catch (e) { return []; } },
    signOut() { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(INSTANCE); },
  };

  // ---------------------------------------------------------------- DOM helpers (text only: never innerHTML)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function td(label, ...children) { return el('td', { 'data-label': label }, ...children); }
  function badge(text, kind) { return el('span', { class: 'badge ' + kind, text }); }
  function stateBadge(state) { return el('span', { class: 'badge state-' + state, text: STATE_NAMES[state] || String(state) }); }
  function shortID(id) { return id && id.length > 13 ? id.slice(0, 8) + '…' : id; }
  function pad(n) { return String(n).padStart(2, '0'); }
  function formatDate(value) {
    if (!value) return '—';
    const d = new Date(value);
    if (isNaN(d)) return String(value);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }
  function timeEl(value) { return value ? el('time', { datetime: value, text: formatDate(value) }) : '—'; }
  function formatDuration(ms) {
    let s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    return h > 0 ? `${h} h ${pad(m)} min ${pad(s)} s` : `${m} min ${pad(s)} s`;
  }
  function show(node, visible) { if (node) node.hidden = !visible; }

  function say(text) {
    const status = $('status'); const alert = $('alert');
    alert.hidden = true; alert.textContent = '';
    status.textContent = text; status.hidden = !text;
  }
  function complain(text) {
    const status = $('status'); const alert = $('alert');
    status.hidden = true; status.textContent = '';
    alert.textContent = text; alert.hidden = !text;
  }
  function clearMessages() { say(''); }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, data, retryAfter) {
      super(describeError(status, data));
      this.status = status; this.data = data; this.retryAfter = retryAfter;
      const reason = data && data.resources && data.resources[0] && data.resources[0].reasons && data.resources[0].reasons[0];
      this.code = reason ? reason.code : null;
      this.reason = reason ? reason.message : null;
    }
  }
  function describeError(status, data) {
    const resource = data && data.resources && data.resources[0];
    if (resource && resource.reasons && resource.reasons[0]) {
      const reason = resource.reasons[0];
      // errorMsg reads "<Status>: <operation>: Please see 'reasons'…": keep the operation, then the reason in words.
      const parts = String(resource.errorMsg || '').split(': ');
      const operation = parts.length >= 3 ? parts[1] : null;
      return `${operation ? operation + ': ' : ''}${reason.message} (${reason.code}, HTTP ${status})`;
    }
    if (status === 401) {
      return `Not authorized: the token is not valid, or it gives no access to instance “${session.instance}” ` +
        `(${(data && data.errorMsg) || 'Unauthorized'}, HTTP 401)`;
    }
    if (resource && resource.errorMsg) return `${resource.errorMsg} (HTTP ${status})`;
    if (data && data.errorMsg) return `${data.errorMsg} (HTTP ${status})`;
    return `The request failed (HTTP ${status})`;
  }
  async function api(method, path, options) {
    const opts = options || {};
    const headers = {
      'Authorization': 'Bearer ' + (opts.token || session.token || ''),
      'Bluemix-Instance': opts.instance || session.instance || '',
      'Accept': 'application/json',
    };
    if (opts.body !== undefined) headers['Content-Type'] = opts.contentType || 'application/json';
    let response;
    try {
      response = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error',
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    } catch (e) {
      throw new ApiError(0, { errorMsg: 'The KeyRelay server could not be reached' }, null);
    }
    const text = method === 'HEAD' ? '' : await response.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
    if (!response.ok) throw new ApiError(response.status, data, response.headers.get('Retry-After'));
    return { status: response.status, headers: response.headers, data };
  }
  const keyPath = (id) => '/api/v2/keys/' + encodeURIComponent(id);
  const extPath = (id, what) => '/api/v2/_keyrelay/keys/' + encodeURIComponent(id) + '/' + what;

  // ---------------------------------------------------------------- sign-in and instance
  function setupChrome() {
    const signedIn = !!(session.token && session.instance);
    show($('signin'), !signedIn);
    show($('app'), signedIn);
    show($('instance-form'), signedIn);
    show($('sign-out'), signedIn);
    if (!signedIn) {
      const instanceField = $('signin-instance');
      if (!instanceField.value && session.recent()[0]) instanceField.value = session.recent()[0];
      $('signin-token').focus();
      return false;
    }
    $('instance-input').value = session.instance;
    const list = $('instance-list');
    list.replaceChildren(...session.recent().map((i) => el('option', { value: i })));
    return true;
  }

  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = $('signin-token').value.trim();
    const instance = $('signin-instance').value.trim();
    const error = $('signin-error');
    error.textContent = '';
    if (!token || !instance) { error.textContent = 'Enter a token and an instance ID.'; return; }
    try {
      await api('HEAD', '/api/v2/keys', { token, instance });
    } catch (e) {
      error.textContent = e.status === 401
        ? `Sign-in refused: this token is not valid, or it gives no access to instance “${instance}” (HTTP 401 Unauthorized).`
        : e.message;
      return;
    }
    $('signin-token').value = '';
    session.signIn(token, instance);
    start();
  });
  $('sign-out').addEventListener('click', () => { session.signOut(); window.location.reload(); });
  $('instance-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const instance = $('instance-input').value.trim();
    if (!instance) return;
    session.setInstance(instance);
    if (page === 'keys') { clearMessages(); keysView.offset = 0; keysView.load(); }
    else window.location.assign('/ui/keys');
  });

  // ---------------------------------------------------------------- polling
  function poll(fn) {
    let busy = false;
    const tick = async () => {
      if (busy || document.hidden) return;
      busy = true;
      try { await fn(); } finally { busy = false; }
    };
    setInterval(tick, POLL_MS);
  }
  function liveStamp(serverNow) {
    const live = $('live');
    if (live) live.textContent = `Live: refreshed every ${POLL_MS / 1000} s · server time ${formatDate(serverNow)}`;
  }

  // ---------------------------------------------------------------- keys page
  const keysView = {
    offset: 0,
    keys: [],
    overview: {},
    openMenu: null,
    get limit() { return parseInt($('page-size').value, 10) || 25; },
    get states() { return $('state-filter').value; },

    init() {
      const params = new URLSearchParams(window.location.search);
      if (params.get('state')) $('state-filter').value = params.get('state');
      if (params.get('limit')) $('page-size').value = params.get('limit');
      this.offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
      $('state-filter').addEventListener('change', () => { this.offset = 0; this.load(); });
      $('page-size').addEventListener('change', () => { this.offset = 0; this.load(); });
      $('refresh').addEventListener('click', () => { clearMessages(); this.load(); });
      $('prev-page').addEventListener('click', () => { this.offset = Math.max(0, this.offset - this.limit); this.load(); });
      $('next-page').addEventListener('click', () => { this.offset += this.limit; this.load(); });
      $('create-form').addEventListener('submit', (e) => { e.preventDefault(); this.create(); });
      $('delete-cancel').addEventListener('click', () => $('delete-dialog').close());
      document.addEventListener('click', (e) => {
        if (this.openMenu && !this.openMenu.contains(e.target)) this.closeMenu(false);
      });
      this.load();
      poll(() => (this.openMenu || $('delete-dialog').open) ? null : this.load(true));
    },

    remember() {
      const params = new URLSearchParams({ state: this.states, limit: String(this.limit), offset: String(this.offset) });
      history.replaceState(null, '', '/ui/keys?' + params.toString());
    },

    async load(quiet) {
      this.remember();
      const query = `state=${encodeURIComponent(this.states)}`;
      let list, head;
      try {
        [list, head] = await Promise.all([
          api('GET', `/api/v2/keys?${query}&limit=${this.limit}&offset=${this.offset}`),
          api('HEAD', `/api/v2/keys?${query}`),
        ]);
      } catch (e) {
        this.keys = []; this.overview = {};
        this.render(0);
        complain(e.message);
        return;
      }
      const keys = (list.data && list.data.resources) || [];
      const total = parseInt(head.headers.get('Key-Total') || String(keys.length), 10);
      if (keys.length === 0 && this.offset > 0 && total > 0) {
        this.offset = Math.max(0, Math.floor((total - 1) / this.limit) * this.limit);
        return this.load(quiet);
      }
      let overview = {};
      if (keys.length) {
        try {
          const ids = keys.map((k) => encodeURIComponent(k.id)).join(',');
          const answer = await api('GET', `/api/v2/_keyrelay/keys/overview?ids=${ids}`);
          for (const item of answer.data.resources) overview[item.keyId] = item;
        } catch (e) {
          if (!quiet) complain(e.message);
        }
      }
      const signature = JSON.stringify([keys, overview, total, this.offset]);
      if (quiet && signature === this.signature) return;
      this.signature = signature;
      this.keys = keys; this.overview = overview;
      this.render(total);
    },

    render(total) {
      const rows = this.keys.map((key) => this.row(key, this.overview[key.id]));
      $('keys-body').replaceChildren(...rows);
      show($('keys-empty'), rows.length === 0);
      const first = total === 0 ? 0 : this.offset + 1;
      const last = this.offset + this.keys.length;
      $('page-info').textContent = `${first}–${last} of ${total} key${total === 1 ? '' : 's'}`;
      $('prev-page').disabled = this.offset === 0;
      $('next-page').disabled = last >= total;
    },

    row(key, info) {
      const isRoot = key.extractable === false;
      const version = key.keyVersion || {};
      const registrations = info ? info.registrations : null;
      let drift;
      if (!info) drift = '—';
      else if (info.drifted > 0) {
        drift = el('span', {},
          badge(`Drift: ${info.drifted} of ${info.registrations}`, 'drift'),
          el('span', { class: 'sub', text: `since ${formatDate(info.driftSince)}` }));
      } else if (info.registrations > 0) drift = badge('In sync', 'ok');
      else drift = el('span', { class: 'sub', text: 'No resources' });
      const resourcesLink = el('a', { href: `/ui/keys/${encodeURIComponent(key.id)}/resources` },
        registrations === null ? 'View' : `${registrations} resource${registrations === 1 ? '' : 's'}`);
      return el('tr', { 'data-key-id': key.id },
        td('Name', el('strong', { text: key.name }), key.description ? el('span', { class: 'sub', text: key.description }) : null),
        td('ID', el('code', { text: key.id })),
        td('Type', isRoot ? 'Root' : 'Standard'),
        td('State', stateBadge(key.state)),
        td('Key version', el('code', { title: version.id || '', text: shortID(version.id) || '—' }),
          el('span', { class: 'sub', text: key.lastRotateDate ? `rotated ${formatDate(key.lastRotateDate)}` : 'never rotated' })),
        td('Associated resources', resourcesLink),
        td('Drift', drift),
        td('Actions', this.actions(key, info)));
    },

    actions(key, info) {
      const isRoot = key.extractable === false;
      const items = [];
      const add = (action, label, extra) => items.push(Object.assign({ action, label }, extra || {}));
      if (isRoot && (key.state === 1 || key.state === 3)) add('rotate', 'Rotate');
      if (key.state === 1) add('disable', 'Disable');
      if (key.state === 2) add('enable', 'Enable');
      if ([0, 1, 2, 3].includes(key.state)) add('delete', 'Delete', { danger: true });
      if (key.state === 5) add('restore', 'Restore');
      add('sep');
      add('sync', 'Synchronize associated resources');
      add('resources', 'View associated resources');
      add('events', 'View events and deliveries');
      const wrap = el('div', { class: 'actions' });
      const menuID = 'menu-' + key.id;
      const button = el('button', {
        type: 'button', class: 'secondary actions-button', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
        'aria-controls': menuID, 'aria-label': `Actions for key ${key.name}`, text: 'Actions ▾',
      });
      const menu = el('div', { class: 'menu', role: 'menu', id: menuID, hidden: true, 'aria-label': `Actions for ${key.name}` },
        items.map((item) => item.action === 'sep' ? el('hr', { role: 'separator' }) : el('button', {
          type: 'button', role: 'menuitem', tabindex: '-1', 'data-action': item.action,
          class: item.danger ? 'danger-item' : null, text: item.label,
          onclick: (e) => { e.stopPropagation(); this.closeMenu(true); this.perform(item.action, key, info); },
        })));
      button.addEventListener('click', (e) => {
        e.stopPropagation();
        if (this.openMenu === wrap) this.closeMenu(true); else this.openMenuFor(wrap, 0);
      });
      button.addEventListener('keydown', (e) => {
        if (e.key === 'ArrowDown') { e.preventDefault(); this.openMenuFor(wrap, 0); }
        if (e.key === 'ArrowUp') { e.preventDefault(); this.openMenuFor(wrap, -1); }
      });
      menu.addEventListener('keydown', (e) => {
        const entries = [...menu.querySelectorAll('[role="menuitem"]')];
        const index = entries.indexOf(document.activeElement);
        if (e.key === 'ArrowDown') { e.preventDefault(); entries[(index + 1) % entries.length].focus(); }
        else if (e.key === 'ArrowUp') { e.preventDefault(); entries[(index - 1 + entries.length) % entries.length].focus(); }
        else if (e.key === 'Home') { e.preventDefault(); entries[0].focus(); }
        else if (e.key === 'End') { e.preventDefault(); entries[entries.length - 1].focus(); }
        else if (e.key === 'Escape') { e.preventDefault(); this.closeMenu(true); }
        else if (e.key === 'Tab') { this.closeMenu(false); }
      });
      wrap.append(button, menu);
      return wrap;
    },

    openMenuFor(wrap, index) {
      if (this.openMenu && this.openMenu !== wrap) this.closeMenu(false);
      const button = wrap.querySelector('.actions-button');
      const menu = wrap.querySelector('[role="menu"]');
      menu.hidden = false;
      button.setAttribute('aria-expanded', 'true');
      this.openMenu = wrap;
      const entries = [...menu.querySelectorAll('[role="menuitem"]')];
      const target = index < 0 ? entries[entries.length - 1] : entries[index];
      if (target) target.focus();
    },

    closeMenu(focusButton) {
      const wrap = this.openMenu;
      if (!wrap) return;
      this.openMenu = null;
      wrap.querySelector('[role="menu"]').hidden = true;
      const button = wrap.querySelector('.actions-button');
      button.setAttribute('aria-expanded', 'false');
      if (focusButton) button.focus();
    },

    async perform(action, key, info) {
      const name = `“${key.name}”`;
      try {
        switch (action) {
          case 'rotate':
            await api('POST', keyPath(key.id) + '/actions/rotate');
            say(`Key ${name} rotated: a new key version is active.`);
            break;
          case 'disable':
            await api('POST', keyPath(key.id) + '/actions/disable');
            say(`Key ${name} disabled (suspended). Associated resources are being told.`);
            break;
          case 'enable':
            await api('POST', keyPath(key.id) + '/actions/enable');
            say(`Key ${name} enabled. Associated resources are being told.`);
            break;
          case 'restore':
            await api('POST', keyPath(key.id) + '/restore', { body: {} });
            say(`Key ${name} restored.`);
            break;
          case 'delete':
            return this.confirmDelete(key, info);
          case 'sync':
            return this.sync(key);
          case 'resources':
            window.location.assign(`/ui/keys/${encodeURIComponent(key.id)}/resources`);
            return;
          case 'events':
            window.location.assign(`/ui/keys/${encodeURIComponent(key.id)}/events`);
            return;
        }
      } catch (e) {
        complain(e.message);
      }
      this.load();
    },

    confirmDelete(key, info) {
      const dialog = $('delete-dialog');
      const count = info ? info.registrations : 0;
      $('delete-text').textContent = count > 0
        ? `Key “${key.name}” protects ${count} associated resource${count === 1 ? '' : 's'}. Deleting it ` +
          'needs force; the resources are notified and lose access to their data. Resources with a retention ' +
          'policy (prevent key deletion) block deletion even with force.'
        : `Delete key “${key.name}”? It can be restored within 30 days.`;
      show($('delete-force-row'), count > 0);
      $('delete-force').checked = false;
      const confirm = $('delete-confirm');
      const fresh = confirm.cloneNode(true);
      confirm.replaceWith(fresh);
      fresh.addEventListener('click', async () => {
        const force = $('delete-force').checked;
        dialog.close();
        try {
          await api('DELETE', keyPath(key.id) + (force ? '?force=true' : ''), { });
          say(`Key “${key.name}” deleted${force ? ' with force' : ''}. Associated resources are being notified.`);
        } catch (e) {
          complain(e.message);
        }
        this.load();
      });
      dialog.showModal();
      $('delete-cancel').focus();
    },

    async sync(key) {
      try {
        await api('POST', keyPath(key.id) + '/actions/sync');
        say(`Synchronize requested for key “${key.name}”: its current state is being re-sent to every associated resource.`);
      } catch (e) {
        complain(syncRefusal(e));
      }
      this.load();
    },

    async create() {
      const name = $('create-name').value.trim();
      const type = $('create-type').value;
      const description = $('create-description').value.trim();
      const resource = { type: 'application/vnd.ibm.kms.key+json', name, extractable: type === 'standard' };
      if (description) resource.description = description;
      try {
        const answer = await api('POST', '/api/v2/keys', {
          contentType: 'application/vnd.ibm.kms.key+json',
          body: { metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 }, resources: [resource] },
        });
        const created = answer.data && answer.data.resources && answer.data.resources[0];
        say(`${type === 'root' ? 'Root' : 'Standard'} key “${name}” created${created ? ' with ID ' + created.id : ''}.`);
        $('create-form').reset();
      } catch (e) {
        complain(e.message);
      }
      this.load();
    },
  };

  // The 409 of sync, in words, with the earliest time a sync is allowed.
  function earliestFrom(error) {
    const match = /(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))/.exec(error.reason || '');
    if (match) return Date.parse(match[1]);
    return null;
  }
  function syncRefusal(error) {
    if (error.status === 409 && error.code === 'REQ_TOO_EARLY_ERR') {
      const earliest = earliestFrom(error);
      const when = earliest ? formatDate(new Date(earliest).toISOString()) : null;
      return `Synchronize is not allowed yet: the key had a lifecycle action or a sync less than an hour ago. ` +
        (when ? `Earliest time a sync is allowed: ${when}. ` : '') +
        `Server answer: ${error.message}`;
    }
    return error.message;
  }

  // ---------------------------------------------------------------- key summary (resources and events pages)
  function renderKeySummary(key, extra) {
    $('key-name').textContent = `“${key.name}”`;
    $('crumb-key').textContent = key.name;
    document.title = `${key.name} · ${document.title.split(' · ').slice(-2).join(' · ')}`;
    const facts = [
      ['ID', el('code', { text: key.id })],
      ['State', stateBadge(key.state)],
    ];
    if (key.keyVersion) facts.push(['Current key version', el('code', { text: key.keyVersion.id })]);
    for (const [label, value] of extra || []) facts.push([label, value]);
    $('key-facts').replaceChildren(...facts.flatMap(([dt, dd]) => [el('dt', { text: dt }), el('dd', {}, dd)]));
  }

  // ---------------------------------------------------------------- associated resources page
  const resourcesView = {
    offset: 0,
    limit: 50,
    serverOffset: 0,        // server clock minus browser clock (the server may run on a dev clock)
    blockedUntil: null,      // server time before which Synchronize stays disabled (after a 409)
    countdownTimer: null,

    init() {
      $('sync-button').addEventListener('click', () => this.sync());
      $('prev-page').addEventListener('click', () => { this.offset = Math.max(0, this.offset - this.limit); this.load(); });
      $('next-page').addEventListener('click', () => { this.offset += this.limit; this.load(); });
      this.load();
      poll(() => this.load(true));
      this.countdownTimer = setInterval(() => this.updateCountdown(), 1000);
    },

    serverNow() { return Date.now() + this.serverOffset; },

    async load(quiet) {
      let answer;
      try {
        answer = await api('GET', `${extPath(keyID, 'associations')}?limit=${this.limit}&offset=${this.offset}`);
      } catch (e) {
        $('resources-body').replaceChildren();
        show($('resources-empty'), false);
        $('drift-summary').textContent = '';
        if (!quiet || e.message !== this.lastError) complain(e.message);
        this.lastError = e.message;
        return;
      }
      if (this.lastError) { this.lastError = null; clearMessages(); }
      const data = answer.data;
      this.serverOffset = Date.parse(data.metadata.now) - Date.now();
      this.syncAllowedFrom = data.key.syncAllowedFrom ? Date.parse(data.key.syncAllowedFrom) : null;
      liveStamp(data.metadata.now);
      this.updateCountdown();
      const signature = JSON.stringify([data.key, data.resources, data.deliveries, data.metadata.totalCount, data.metadata.drifted]);
      if (quiet && signature === this.signature) return;
      this.signature = signature;
      this.render(data);
    },

    render(data) {
      const key = data.key;
      const d = data.deliveries;
      renderKeySummary(key, [
        ['Expected resource state', el('code', { text: key.expectedAdopterKeyState })],
        ['Last lifecycle action', timeEl(key.lastLifecycleActionDate)],
        ['Last accepted sync', timeEl(key.lastSyncDate)],
        ['Sync allowed', key.syncAllowedFrom ? el('span', {}, 'from ', timeEl(key.syncAllowedFrom)) : 'now'],
        ['Deliveries', deliveryBadges(d)],
      ]);
      const total = data.metadata.totalCount;
      const drifted = data.metadata.drifted;
      const summary = $('drift-summary');
      summary.replaceChildren(total === 0 ? '' : drifted > 0
        ? el('span', {}, badge(`Drift: ${drifted} of ${total}`, 'drift'),
          ` ${drifted} resource${drifted === 1 ? ' has' : 's have'} not acknowledged the key's current state.`)
        : el('span', {}, badge('In sync', 'ok'), ` All ${total} resource${total === 1 ? ' has' : 's have'} acknowledged the key's current state.`));
      const rows = data.resources.map((r) => {
        const ack = r.acknowledgement;
        return el('tr', { 'data-crn': r.resourceCrn },
          td('Resource CRN', el('code', { text: r.resourceCrn })),
          td('Service', r.service),
          td('Prevent key deletion', r.preventKeyDeletion ? badge('Yes', 'warn') : 'No'),
          td('Key version registered', el('code', { title: r.keyVersion.id, text: shortID(r.keyVersion.id) })),
          td('Last acknowledged', ack
            ? el('span', {}, el('code', { text: ack.adopterKeyState }),
              el('span', { class: 'sub' }, 'at ', timeEl(ack.processedAt)),
              ack.keyVersionId ? el('span', { class: 'sub', text: `version ${shortID(ack.keyVersionId)}` }) : null)
            : el('span', { class: 'sub', text: 'Never acknowledged' })),
          td('Drift', r.drifted
            ? el('span', {}, badge('Drift', 'drift'),
              el('span', { class: 'sub' }, 'since ', timeEl(r.driftSince)),
              el('span', { class: 'sub', text: `expects ${r.expectedAdopterKeyState}` }))
            : badge('In sync', 'ok')));
      });
      $('resources-body').replaceChildren(...rows);
      show($('resources-empty'), rows.length === 0);
      const first = total === 0 ? 0 : this.offset + 1;
      const last = this.offset + rows.length;
      $('page-info').textContent = `${first}–${last} of ${total} registration${total === 1 ? '' : 's'}`;
      $('prev-page').disabled = this.offset === 0;
      $('next-page').disabled = last >= total;
    },

    async sync() {
      const button = $('sync-button');
      const result = $('sync-result');
      button.disabled = true;
      try {
        await api('POST', keyPath(keyID) + '/actions/sync');
        this.blockedUntil = null;
        result.className = 'sync-result success';
        result.textContent = `Synchronize accepted at ${formatDate(new Date(this.serverNow()).toISOString())}: ` +
          "the key's current state is being re-sent to every associated resource. Drift clears as each acknowledges.";
      } catch (e) {
        result.className = 'sync-result error';
        result.textContent = syncRefusal(e);
        if (e.status === 409 && e.code === 'REQ_TOO_EARLY_ERR') {
          const earliest = earliestFrom(e);
          const retry = parseInt(e.retryAfter || '', 10);
          this.blockedUntil = earliest || (retry > 0 ? this.serverNow() + retry * 1000 : null);
        }
      }
      this.updateCountdown();
      await this.load();
    },

    updateCountdown() {
      const button = $('sync-button');
      const countdown = $('sync-countdown');
      if (this.blockedUntil && this.serverNow() < this.blockedUntil) {
        button.disabled = true;
        countdown.hidden = false;
        countdown.textContent = `Synchronize is available again at ${formatDate(new Date(this.blockedUntil).toISOString())} ` +
          `(in ${formatDuration(this.blockedUntil - this.serverNow())}).`;
      } else {
        if (this.blockedUntil) {
          this.blockedUntil = null;
          countdown.hidden = false;
          countdown.textContent = 'Synchronize is available again.';
        }
        button.disabled = false;
      }
    },
  };

  function deliveryBadges(d) {
    if (!d) return '—';
    const parts = [];
    if (d.pending) parts.push(badge(`${d.pending} pending`, 'warn'));
    if (d.sent) parts.push(badge(`${d.sent} awaiting acknowledgement`, 'warn'));
    if (d.acknowledged) parts.push(badge(`${d.acknowledged} acknowledged`, 'ok'));
    if (d.dead) parts.push(badge(`${d.dead} dead`, 'drift'));
    if (parts.length === 0) return el('span', { class: 'sub', text: 'none' });
    const span = el('span', {});
    parts.forEach((p, i) => { if (i) span.append(' '); span.append(p); });
    return span;
  }

  // ---------------------------------------------------------------- events page
  const eventsView = {
    offset: 0,
    limit: 25,
    open: new Set(),

    init() {
      $('prev-page').addEventListener('click', () => { this.offset = Math.max(0, this.offset - this.limit); this.load(); });
      $('next-page').addEventListener('click', () => { this.offset += this.limit; this.load(); });
      this.load();
      poll(() => this.load(true));
    },

    async load(quiet) {
      let answer;
      try {
        answer = await api('GET', `${extPath(keyID, 'events')}?limit=${this.limit}&offset=${this.offset}`);
      } catch (e) {
        $('events-body').replaceChildren();
        if (!quiet || e.message !== this.lastError) complain(e.message);
        this.lastError = e.message;
        return;
      }
      if (this.lastError) { this.lastError = null; clearMessages(); }
      const data = answer.data;
      liveStamp(data.metadata.now);
      const signature = JSON.stringify([data.key, data.resources, data.metadata.totalCount]);
      if (quiet && signature === this.signature) return;
      this.signature = signature;
      renderKeySummary(data.key, []);
      const rows = data.resources.map((event) => {
        const details = el('details', { 'data-event': event.id, open: this.open.has(event.id) },
          el('summary', {}, `${event.deliveries.length} deliver${event.deliveries.length === 1 ? 'y' : 'ies'}`),
          el('ul', { class: 'deliveries' }, event.deliveries.map((n) => el('li', {},
            el('code', { text: n.resourceCrn }), ' ',
            badge(n.status, n.status === 'acknowledged' ? 'ok' : n.status === 'dead' ? 'drift' : 'warn'),
            el('span', { class: 'sub', text: `${n.attempts} attempt${n.attempts === 1 ? '' : 's'}` +
              (n.acknowledgedDate ? ` · acknowledged ${formatDate(n.acknowledgedDate)}` : '') +
              (n.lastError ? ` · ${n.lastError}` : '') })))));
        details.addEventListener('toggle', () => { if (details.open) this.open.add(event.id); else this.open.delete(event.id); });
        return el('tr', { 'data-event': event.id, 'data-kind': event.kind },
          td('Time', timeEl(event.date)),
          td('Event', el('strong', { text: event.kind })),
          td('Key state', stateBadge(event.keyState)),
          td('Key version', el('code', { title: event.keyVersion.id, text: shortID(event.keyVersion.id) })),
          td('By', event.principal),
          td('Deliveries', event.deliveries.length ? el('div', {}, deliveryBadges(event.counts), details)
            : el('span', { class: 'sub', text: 'none' })));
      });
      $('events-body').replaceChildren(...rows);
      show($('events-empty'), rows.length === 0);
      const total = data.metadata.totalCount;
      const first = total === 0 ? 0 : this.offset + 1;
      const last = this.offset + rows.length;
      $('page-info').textContent = `${first}–${last} of ${total} event${total === 1 ? '' : 's'}`;
      $('prev-page').disabled = this.offset === 0;
      $('next-page').disabled = last >= total;
    },
  };

  // ---------------------------------------------------------------- start
  let started = false;
  function start() {
    if (!setupChrome() || started) return;
    started = true;
    if (page === 'keys') keysView.init();
    else if (page === 'resources') resourcesView.init();
    else if (page === 'events') eventsView.init();
  }
  start();
})();
"""#

    static let stylesheet = #"""
:root {
  --ink: #161616; --muted: #525252; --line: #c6c6c6; --bg: #f4f4f4; --panel: #ffffff;
  --accent: #0f62fe; --accent-dark: #0043ce; --focus: #0f62fe;
  --ok-bg: #defbe6; --ok-ink: #0e6027; --warn-bg: #fcf4d6; --warn-ink: #5c4500;
  --bad-bg: #a2191f; --bad-ink: #ffffff; --err-bg: #fff1f1; --err-ink: #a2191f; --gray-bg: #e0e0e0;
}
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--ink); background: var(--bg); line-height: 1.45; }
a { color: var(--accent-dark); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible, [tabindex]:focus-visible {
  outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: .5rem; }
[hidden] { display: none !important; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0,0,0,0); white-space: nowrap; border: 0; }
.topbar { display: flex; flex-wrap: wrap; align-items: center; gap: .75rem 1.5rem; padding: .6rem 1.5rem; background: #161616; color: #fff; }
.topbar a { color: #fff; }
.brand { font-weight: 700; text-decoration: none; font-size: 1.1rem; }
.brand-sub { font-weight: 400; color: #c6c6c6; font-size: .9rem; margin-left: .4rem; }
.mainnav a { text-decoration: none; padding: .3rem .2rem; }
.mainnav a[aria-current="page"] { border-bottom: 3px solid #78a9ff; }
.instance-form { display: flex; align-items: center; gap: .5rem; margin-left: auto; }
.instance-form label { color: #e0e0e0; }
.instance-form input { width: 16rem; max-width: 50vw; }
main { padding: 1.25rem 1.5rem 3rem; max-width: 1400px; margin: 0 auto; }
main:focus { outline: none; }
h1 { font-size: 1.6rem; font-weight: 600; margin: .4rem 0 1rem; }
h2 { font-size: 1.15rem; font-weight: 600; margin: 0 0 .75rem; }
.panel { background: var(--panel); border: 1px solid var(--line); padding: 1rem 1.25rem; margin-bottom: 1.25rem; }
.signin { max-width: 36rem; margin: 2rem auto; }
.field { display: flex; flex-direction: column; gap: .25rem; }
.field label { font-size: .85rem; color: var(--muted); font-weight: 600; }
.stack-form { display: flex; flex-direction: column; gap: .9rem; }
.inline-form { display: flex; flex-wrap: wrap; align-items: flex-end; gap: .75rem 1rem; }
.grow { flex: 1 1 14rem; }
input, select { font: inherit; color: var(--ink); padding: .45rem .55rem; border: 1px solid #8d8d8d; border-radius: 2px; background: #fff; min-height: 2.4rem; }
button { font: inherit; cursor: pointer; padding: .5rem 1rem; min-height: 2.4rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; border-radius: 2px; }
button:hover { background: var(--accent-dark); }
button.secondary { background: #fff; color: var(--accent-dark); }
button.secondary:hover { background: #edf5ff; }
button.danger { background: #da1e28; border-color: #da1e28; }
button.danger:hover { background: #a2191f; }
button:disabled, button:disabled:hover { background: var(--gray-bg); color: #525252; border-color: #a8a8a8; cursor: not-allowed; }
.section-head { display: flex; flex-wrap: wrap; align-items: flex-end; justify-content: space-between; gap: .5rem 1rem; margin-bottom: .75rem; }
.section-head h2 { margin: 0; }
.toolbar { display: flex; flex-wrap: wrap; align-items: flex-end; gap: .75rem; }
.table-wrap { overflow-x: auto; background: var(--panel); border: 1px solid var(--line); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .55rem .7rem; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
th { background: #e8e8e8; font-size: .85rem; font-weight: 600; white-space: nowrap; }
tbody tr:hover { background: #f8f8f8; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85rem; word-break: break-all; }
.sub { display: block; color: var(--muted); font-size: .82rem; }
.badge { display: inline-block; padding: .1rem .55rem; border-radius: 1rem; font-size: .82rem; font-weight: 600; white-space: nowrap; }
.badge.ok { background: var(--ok-bg); color: var(--ok-ink); }
.badge.warn { background: var(--warn-bg); color: var(--warn-ink); }
.badge.drift { background: var(--bad-bg); color: var(--bad-ink); }
.badge.gray { background: var(--gray-bg); color: var(--ink); }
.state-1 { background: var(--ok-bg); color: var(--ok-ink); }
.state-2 { background: var(--warn-bg); color: var(--warn-ink); }
.state-3 { background: var(--gray-bg); color: var(--ink); }
.state-5 { background: var(--err-bg); color: var(--err-ink); }
.state-0 { background: var(--gray-bg); color: var(--ink); }
.empty { padding: 1rem; color: var(--muted); }
.pager { display: flex; align-items: center; gap: 1rem; margin-top: .75rem; }
.messages { margin-bottom: 1rem; }
.message { padding: .75rem 1rem; border-left: 4px solid; margin-bottom: .5rem; }
.message.success { background: var(--ok-bg); border-color: #24a148; color: var(--ok-ink); }
.message.error { background: var(--err-bg); border-color: #da1e28; color: var(--err-ink); }
.error-text { color: var(--err-ink); margin: 0; }
.error-text:empty { display: none; }
.crumbs { margin: 0; font-size: .9rem; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1.25rem; margin: 0 0 1rem; }
.facts dt { color: var(--muted); font-weight: 600; }
.facts dd { margin: 0; }
.sync-box { border-top: 1px solid #e0e0e0; padding-top: .9rem; }
.help { color: var(--muted); font-size: .88rem; margin: .5rem 0; }
.sync-result { margin: .5rem 0; }
.sync-result.success { color: var(--ok-ink); font-weight: 600; }
.sync-result.error { color: var(--err-ink); font-weight: 600; }
.countdown { font-weight: 600; background: var(--warn-bg); color: var(--warn-ink); padding: .4rem .75rem; display: inline-block; margin: .25rem 0; }
.live { color: var(--muted); font-size: .85rem; margin: 0; }
.drift-summary { margin: 0 0 .75rem; font-weight: 600; }
.actions { position: relative; }
.actions-button { white-space: nowrap; }
.menu { position: absolute; right: 0; top: 100%; z-index: 5; background: #fff; border: 1px solid #8d8d8d; box-shadow: 0 4px 12px rgba(0,0,0,.18); min-width: 16rem; padding: .25rem 0; }
.menu [role="menuitem"] { display: block; width: 100%; text-align: left; background: #fff; color: var(--ink); border: 0; padding: .5rem 1rem; min-height: 0; }
.menu [role="menuitem"]:hover, .menu [role="menuitem"]:focus { background: #e5f0ff; outline: none; }
.menu [role="menuitem"].danger-item { color: #a2191f; }
.menu hr { border: 0; border-top: 1px solid #e0e0e0; margin: .25rem 0; }
dialog { border: 1px solid #8d8d8d; max-width: 32rem; width: calc(100% - 2rem); padding: 1.25rem; }
dialog::backdrop { background: rgba(22,22,22,.5); }
.check { display: flex; gap: .6rem; align-items: flex-start; }
.check input { min-height: 0; margin-top: .3rem; }
.dialog-actions { display: flex; justify-content: flex-end; gap: .75rem; margin-top: 1rem; }
details summary { cursor: pointer; color: var(--accent-dark); }
.deliveries { list-style: none; padding: 0; margin: .4rem 0 0; }
.deliveries li { padding: .25rem 0; border-top: 1px dashed #e0e0e0; }
.links { margin: .75rem 0 0; }
@media (max-width: 760px) {
  html { font-size: 14px; }
  main { padding: 1rem .75rem 2rem; }
  .topbar { padding: .6rem .75rem; }
  .instance-form { margin-left: 0; width: 100%; }
  .instance-form input { flex: 1; width: auto; max-width: none; }
  .brand-sub { display: none; }
  .facts { grid-template-columns: 1fr; }
  .facts dd { margin-bottom: .4rem; }
  /* Tables become stacked cards on a narrow window. */
  .table-wrap { overflow: visible; border: 0; background: transparent; }
  table, thead, tbody, tr, th, td { display: block; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0,0,0,0); }
  tbody tr { background: var(--panel); border: 1px solid var(--line); margin-bottom: .75rem; padding: .4rem 0; }
  td { border: 0; padding: .3rem .8rem; }
  td[data-label]::before { content: attr(data-label); display: block; font-size: .78rem; font-weight: 600; color: var(--muted); }
  .menu { left: 0; right: auto; }
}
"""#
}
