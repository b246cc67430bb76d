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
  // The key of /ui/keys/{id}/resources and /ui/keys/{id}/events, from the location: the pages carry no data.
  const keyID = (() => {
    const match = /^\/ui\/keys\/([^/]+)\/(?:resources|events)$/.exec(window.location.pathname);
    if (!match) return null;
    try { return decodeURIComponent(match[1]); } catch (e) { return null; }
  })();
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
  // An error in words, from the answer's data fields (reason message, code, status): the console never parses
  // errorMsg or a message. The caller, which knows what it was doing, puts its own words in front.
  function describeError(status, data) {
    const resource = data && data.resources && data.resources[0];
    if (resource && resource.reasons && resource.reasons[0]) {
      const reason = resource.reasons[0];
      return `${reason.message} (${reason.code}, HTTP ${status})`;
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
  const pagePath = (id, what) => '/ui/keys/' + encodeURIComponent(id) + '/' + what;

  // ---------------------------------------------------------------- paging (every table: keys, registrations, events)
  // A view has `offset`, `limit` and `load()`; the page's Previous/Next buttons and its "1–25 of 40" line are the
  // same on every page.
  const paging = {
    bind(view) {
      $('prev-page').addEventListener('click', () => { view.offset = Math.max(0, view.offset - view.limit); view.load(); });
      $('next-page').addEventListener('click', () => { view.offset += view.limit; view.load(); });
    },
    // Shows `shown` rows of `total`; returns false when the offset is past the end (rows were removed meanwhile):
    // the view then moves to the last page and loads again.
    show(view, shown, total, noun) {
      if (shown === 0 && view.offset > 0 && total > 0) {
        view.offset = Math.max(0, Math.floor((total - 1) / view.limit) * view.limit);
        return false;
      }
      const first = total === 0 ? 0 : view.offset + 1;
      const last = view.offset + shown;
      $('page-info').textContent = `${first}–${last} of ${total} ${noun}${total === 1 ? '' : 's'}`;
      $('prev-page').disabled = view.offset === 0;
      $('next-page').disabled = last >= total;
      return true;
    },
  };

  // ---------------------------------------------------------------- what a key accepts (from the API, never decided here)
  const ACTION_LABELS = {
    rotate: 'Rotate', disable: 'Disable', enable: 'Enable', delete: 'Delete', restore: 'Restore',
    sync: 'Synchronize associated resources',
  };
  // The key's entry for `action` ({action, allowedFrom?}), or null when the key does not accept it.
  function availability(key, action) { return (key.actions || []).find((a) => a.action === action) || null; }

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
    items: [],
    openMenu: null,
    get limit() { return parseInt($('page-size').value, 10) || 25; },
    get states() { return $('state-filter').value; },

    init() {
      const params = new URLSearchParams(window.location.search);
      // Links from before the "deleted with drift" filter still open the default view.
      if (params.get('state') === '0,1,2,3') params.delete('state');
      if (params.get('state')) $('state-filter').value = params.get('state');
      if (params.get('limit')) $('page-size').value = params.get('limit');
      this.offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
      $('state-filter').addEventListener('change', () => { this.offset = 0; this.load(); });
      $('page-size').addEventListener('change', () => { this.offset = 0; this.load(); });
      $('refresh').addEventListener('click', () => { clearMessages(); this.load(); });
      paging.bind(this);
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

    // One call: the page of keys with their registrations, drift, deliveries and allowed actions. "Not deleted"
    // keeps the deleted keys whose resources have not acknowledged the delete: their drift must stay in view.
    async load(quiet) {
      this.remember();
      const states = this.states === 'default' ? '0,1,2,3' : this.states;
      const withDrift = this.states === 'default' ? '&destroyedWithDrift=true' : '';
      let answer;
      try {
        answer = await api('GET', `/api/v2/_keyrelay/keys/overview?state=${encodeURIComponent(states)}${withDrift}` +
          `&limit=${this.limit}&offset=${this.offset}`);
      } catch (e) {
        this.items = [];
        this.render(0);
        complain(e.message);
        return;
      }
      const items = answer.data.resources;
      const total = answer.data.metadata.totalCount;
      const signature = JSON.stringify([items, total, this.offset]);
      if (quiet && signature === this.signature) return;
      this.signature = signature;
      this.items = items;
      this.render(total);
    },

    render(total) {
      if (!paging.show(this, this.items.length, total, 'key')) { this.load(); return; }
      const rows = this.items.map((item) => this.row(item.key, item));
      $('keys-body').replaceChildren(...rows);
      show($('keys-empty'), rows.length === 0);
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
      const resourcesLink = el('a', { href: pagePath(key.id, 'resources') },
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
      const items = [];
      for (const action of ['rotate', 'disable', 'enable', 'delete', 'restore']) {
        const allowed = availability(key, action);
        if (allowed) items.push({ action, label: ACTION_LABELS[action], from: allowed.allowedFrom, danger: action === 'delete' });
      }
      items.push({ action: 'sep' });
      const sync = availability(key, 'sync');
      if (sync) items.push({ action: 'sync', label: ACTION_LABELS.sync, from: sync.allowedFrom });
      items.push({ action: 'resources', label: 'View associated resources' });
      items.push({ action: 'events', label: 'View events and deliveries' });
      const wrap = el('div', { class: 'actions' });
      const menuID = 'menu-' + key.id;
      const button = el('button', {
        type: 'button', class: 'secondary actions-button', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
        'aria-controls': menuID, 'aria-label': `Actions for key ${key.name}`, text: 'Actions ▾',
      });
      const menu = el('div', { class: 'menu', role: 'menu', id: menuID, hidden: true, 'aria-label': `Actions for ${key.name}` },
        items.map((item) => item.action === 'sep' ? el('hr', { role: 'separator' }) : el('button', {
          type: 'button', role: 'menuitem', tabindex: '-1', 'data-action': item.action,
          // An action accepted only later stays in the menu, unavailable, with the time it will be accepted.
          'aria-disabled': item.from ? 'true' : null, 'data-allowed-from': item.from || null,
          class: item.danger ? 'danger-item' : null,
          text: item.from ? `${item.label} (from ${formatDate(item.from)})` : item.label,
          onclick: (e) => {
            e.stopPropagation();
            this.closeMenu(true);
            if (item.from) complain(`${item.label} is not accepted before ${formatDate(item.from)}.`);
            else this.perform(item.action, key, info);
          },
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
            window.location.assign(pagePath(key.id, 'resources'));
            return;
          case 'events':
            window.location.assign(pagePath(key.id, 'events'));
            return;
        }
      } catch (e) {
        complain(`Key ${name} could not be ${{ rotate: 'rotated', disable: 'disabled', enable: 'enabled', restore: 'restored' }[action] || 'changed'}: ${e.message}`);
      }
      this.load();
    },

    confirmDelete(key, info) {
      const dialog = $('delete-dialog');
      const count = info ? info.protectingRegistrations : 0;
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
          complain(`Key could not be deleted: ${e.message}`);
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
        complain(syncRefusal(e, await syncAllowedFrom(key.id)));
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
        complain(`Key “${name}” could not be created: ${e.message}`);
      }
      this.load();
    },
  };

  // When the API says a sync of the key is accepted from (null: now, or unknown).
  async function syncAllowedFrom(id) {
    try {
      const answer = await api('GET', `${extPath(id, 'associations')}?limit=1`);
      return answer.data.key.syncAllowedFrom || null;
    } catch (e) {
      return null;
    }
  }
  // The 409 of sync, in words, with the earliest time a sync is allowed (as the API answers it).
  function syncRefusal(error, allowedFrom) {
    if (error.status === 409 && error.code === 'REQ_TOO_EARLY_ERR') {
      return `Synchronize is not allowed yet: the key had a lifecycle action or a sync less than an hour ago. ` +
        (allowedFrom ? `Earliest time a sync is allowed: ${formatDate(allowedFrom)}. ` : '') +
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
    syncAllowedFrom: null,  // server time from which the API accepts a sync (null: now); from every load
    counting: false,        // a countdown is on screen, so its end is announced
    syncing: false,         // a sync request is in flight
    loaded: false,          // the first answer has come: until then Synchronize stays disabled
    countdownTimer: null,

    init() {
      $('sync-button').addEventListener('click', () => this.sync());
      $('events-link').href = pagePath(keyID, 'events');
      paging.bind(this);
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
      this.loaded = true;
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
      if (!paging.show(this, rows.length, total, 'registration')) { this.load(); return; }
      $('resources-body').replaceChildren(...rows);
      show($('resources-empty'), rows.length === 0);
    },

    // The outcome is told with the time the API gives for the next sync, read after the answer: after an accepted
    // sync that is an hour away, and the countdown says so from the start.
    async sync() {
      const result = $('sync-result');
      this.syncing = true;
      this.updateCountdown();
      let refusal = null;
      let acceptedAt = null;
      try {
        await api('POST', keyPath(keyID) + '/actions/sync');
        acceptedAt = this.serverNow();
      } catch (e) {
        refusal = e;
      }
      await this.load();
      this.syncing = false;
      const next = this.syncAllowedFrom ? formatDate(new Date(this.syncAllowedFrom).toISOString()) : null;
      if (refusal) {
        result.className = 'sync-result error';
        result.textContent = syncRefusal(refusal, next && new Date(this.syncAllowedFrom).toISOString());
      } else {
        result.className = 'sync-result success';
        result.textContent = `Synchronize accepted at ${formatDate(new Date(acceptedAt).toISOString())}: ` +
          "the key's current state is being re-sent to every associated resource. Drift clears as each acknowledges." +
          (next ? ` The next sync is accepted from ${next}.` : '');
      }
      this.updateCountdown();
    },

    // Synchronize is enabled only when the API accepts a sync now; while it does not, the countdown shows when it
    // will, from the page's arrival on.
    updateCountdown() {
      const button = $('sync-button');
      const countdown = $('sync-countdown');
      const waiting = this.syncAllowedFrom !== null && this.serverNow() < this.syncAllowedFrom;
      button.disabled = !this.loaded || this.syncing || waiting;
      if (waiting) {
        this.counting = true;
        countdown.hidden = false;
        countdown.textContent = `Synchronize is available again at ${formatDate(new Date(this.syncAllowedFrom).toISOString())} ` +
          `(in ${formatDuration(this.syncAllowedFrom - this.serverNow())}).`;
      } else if (this.counting && !this.syncing) {
        this.counting = false;
        countdown.hidden = false;
        countdown.textContent = 'Synchronize is available again.';
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
      $('resources-link').href = pagePath(keyID, 'resources');
      paging.bind(this);
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
      if (!paging.show(this, rows.length, data.metadata.totalCount, 'event')) { this.load(); return; }
      $('events-body').replaceChildren(...rows);
      show($('events-empty'), rows.length === 0);
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
