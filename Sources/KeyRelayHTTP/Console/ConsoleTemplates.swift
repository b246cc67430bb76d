/// The console's Mustache templates, compiled into the binary. `{{value}}` is HTML-escaped (including quotes, so it
/// is safe inside attributes); `{{{body}}}` is used only for a page rendered by these same templates. The pages
/// carry no data: the script fills them from the API with the operator's token.
enum ConsoleTemplates {
    static let all: [(String, String)] = [("layout", layout), ("keys", keys), ("resources", resources), ("events", events)]

    static let layout = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>{{title}} · KeyRelay console</title>
        <link rel="stylesheet" href="/ui/assets/console.css">
        <script src="/ui/assets/console.js" defer></script>
        </head>
        <body data-page="{{page}}"{{#hasKey}} data-key-id="{{keyID}}"{{/hasKey}}>
        <a class="skip" href="#main">Skip to content</a>
        <header class="topbar">
          <a class="brand" href="/ui/keys">KeyRelay <span class="brand-sub">Key management console</span></a>
          <nav aria-label="Main" class="mainnav">
            <a href="/ui/keys"{{#keysActive}} aria-current="page"{{/keysActive}}>KMS keys</a>
          </nav>
          <form id="instance-form" class="instance-form" hidden>
            <label for="instance-input">Instance</label>
            <input id="instance-input" name="instance" autocomplete="off" spellcheck="false" list="instance-list" required>
            <datalist id="instance-list"></datalist>
            <button type="submit">Switch</button>
          </form>
          <button id="sign-out" class="secondary" type="button" hidden>Sign out</button>
        </header>
        <main id="main" tabindex="-1">
          <section id="signin" class="panel signin" aria-labelledby="signin-title" hidden>
            <h1 id="signin-title">Sign in to the KeyRelay console</h1>
            <p>Enter an API token and the instance to work on. The token is kept in this browser tab only
               (session storage) and sent in the <code>Authorization</code> header of each API call; closing the tab forgets it.</p>
            <form id="signin-form" class="stack-form" action="#" method="post">
              <div class="field">
                <label for="signin-token">API token</label>
                <input id="signin-token" type="password" autocomplete="off" spellcheck="false" required>
              </div>
              <div class="field">
                <label for="signin-instance">Instance ID</label>
                <input id="signin-instance" name="instance" autocomplete="off" spellcheck="false" required>
              </div>
              <button type="submit">Sign in</button>
              <p id="signin-error" class="error-text" role="alert"></p>
            </form>
          </section>
          <div id="app" hidden>
            <div class="messages">
              <div id="status" class="message success" role="status" aria-live="polite" hidden></div>
              <div id="alert" class="message error" role="alert" hidden></div>
            </div>
        {{{body}}}
          </div>
          <noscript><p class="panel">The KeyRelay console needs JavaScript: it calls the KeyRelay API from your browser.</p></noscript>
        </main>
        </body>
        </html>
        """

    static let keys = """
            <h1>KMS keys</h1>
            <section class="panel" aria-labelledby="create-title">
              <h2 id="create-title">Create a key</h2>
              <form id="create-form" class="inline-form">
                <div class="field">
                  <label for="create-name">Name</label>
                  <input id="create-name" name="name" required maxlength="90" autocomplete="off">
                </div>
                <div class="field">
                  <label for="create-type">Type</label>
                  <select id="create-type" name="type">
                    <option value="root">Root key</option>
                    <option value="standard">Standard key</option>
                  </select>
                </div>
                <div class="field grow">
                  <label for="create-description">Description (optional)</label>
                  <input id="create-description" name="description" maxlength="240" autocomplete="off">
                </div>
                <button type="submit">Create key</button>
              </form>
            </section>
            <section aria-labelledby="keys-title">
              <div class="section-head">
                <h2 id="keys-title">Keys</h2>
                <div class="toolbar">
                  <div class="field">
                    <label for="state-filter">State</label>
                    <select id="state-filter">
                      <option value="0,1,2,3">Not deleted</option>
                      <option value="0,1,2,3,5">All states</option>
                      <option value="1">Active</option>
                      <option value="2">Suspended (disabled)</option>
                      <option value="3">Deactivated</option>
                      <option value="5">Destroyed (deleted)</option>
                    </select>
                  </div>
                  <div class="field">
                    <label for="page-size">Rows per page</label>
                    <select id="page-size">
                      <option>10</option><option selected>25</option><option>50</option><option>100</option>
                    </select>
                  </div>
                  <button id="refresh" type="button" class="secondary">Refresh</button>
                </div>
              </div>
              <div class="table-wrap">
                <table id="keys-table">
                  <caption class="sr-only">Keys of the instance, with their associated resources and drift</caption>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">ID</th>
                      <th scope="col">Type</th>
                      <th scope="col">State</th>
                      <th scope="col">Key version</th>
                      <th scope="col">Associated resources</th>
                      <th scope="col">Drift</th>
                      <th scope="col"><span class="sr-only">Actions</span></th>
                    </tr>
                  </thead>
                  <tbody id="keys-body"></tbody>
                </table>
              </div>
              <p id="keys-empty" class="empty" hidden>No keys match this filter.</p>
              <nav class="pager" aria-label="Pages of keys">
                <button id="prev-page" type="button" class="secondary">Previous</button>
                <span id="page-info" aria-live="polite"></span>
                <button id="next-page" type="button" class="secondary">Next</button>
              </nav>
            </section>
            <dialog id="delete-dialog" aria-labelledby="delete-title" aria-describedby="delete-text">
              <h2 id="delete-title">Delete key</h2>
              <p id="delete-text"></p>
              <p id="delete-force-row" class="check">
                <input type="checkbox" id="delete-force">
                <label for="delete-force">Force deletion: the key protects associated resources, which will lose access to their data</label>
              </p>
              <div class="dialog-actions">
                <button id="delete-cancel" type="button" class="secondary">Cancel</button>
                <button id="delete-confirm" type="button" class="danger">Delete key</button>
              </div>
            </dialog>
        """

    static let resources = """
            <p class="crumbs"><a href="/ui/keys">KMS keys</a> <span aria-hidden="true">›</span> <span id="crumb-key">Key</span></p>
            <h1>Associated resources</h1>
            <section class="panel summary" aria-labelledby="key-title">
              <h2 id="key-title">Key <span id="key-name"></span></h2>
              <dl id="key-facts" class="facts"></dl>
              <div class="sync-box">
                <button id="sync-button" type="button" aria-describedby="sync-help">Synchronize</button>
                <p id="sync-help" class="help">Re-sends the key's current state to every associated resource. Key Protect allows it
                   once an hour after the key's last lifecycle action or accepted sync.</p>
                <p id="sync-result" class="sync-result" role="status" aria-live="polite"></p>
                <p id="sync-countdown" class="countdown" hidden></p>
              </div>
              <p class="links"><a href="/ui/keys/{{keyID}}/events">View events and deliveries</a></p>
            </section>
            <section aria-labelledby="regs-title">
              <div class="section-head">
                <h2 id="regs-title">Registrations</h2>
                <p id="live" class="live" aria-live="off"></p>
              </div>
              <p id="drift-summary" class="drift-summary" aria-live="polite"></p>
              <div class="table-wrap">
                <table id="resources-table">
                  <caption class="sr-only">Resources registered with this key, their last acknowledged state and drift</caption>
                  <thead>
                    <tr>
                      <th scope="col">Resource CRN</th>
                      <th scope="col">Service</th>
                      <th scope="col">Prevent key deletion</th>
                      <th scope="col">Key version registered</th>
                      <th scope="col">Last acknowledged</th>
                      <th scope="col">Drift</th>
                    </tr>
                  </thead>
                  <tbody id="resources-body"></tbody>
                </table>
              </div>
              <p id="resources-empty" class="empty" hidden>No resource is registered with this key.</p>
              <nav class="pager" aria-label="Pages of registrations">
                <button id="prev-page" type="button" class="secondary">Previous</button>
                <span id="page-info" aria-live="polite"></span>
                <button id="next-page" type="button" class="secondary">Next</button>
              </nav>
            </section>
        """

    static let events = """
            <p class="crumbs"><a href="/ui/keys">KMS keys</a> <span aria-hidden="true">›</span> <span id="crumb-key">Key</span></p>
            <h1>Key events</h1>
            <section class="panel summary" aria-labelledby="key-title">
              <h2 id="key-title">Key <span id="key-name"></span></h2>
              <dl id="key-facts" class="facts"></dl>
              <p class="links"><a href="/ui/keys/{{keyID}}/resources">View associated resources</a></p>
            </section>
            <section aria-labelledby="events-title">
              <div class="section-head">
                <h2 id="events-title">Lifecycle events, newest first</h2>
                <p id="live" class="live" aria-live="off"></p>
              </div>
              <div class="table-wrap">
                <table id="events-table">
                  <caption class="sr-only">Lifecycle events of this key and the delivery of each to the associated resources</caption>
                  <thead>
                    <tr>
                      <th scope="col">Time</th>
                      <th scope="col">Event</th>
                      <th scope="col">Key state</th>
                      <th scope="col">Key version</th>
                      <th scope="col">By</th>
                      <th scope="col">Deliveries</th>
                    </tr>
                  </thead>
                  <tbody id="events-body"></tbody>
                </table>
              </div>
              <p id="events-empty" class="empty" hidden>No events.</p>
              <nav class="pager" aria-label="Pages of events">
                <button id="prev-page" type="button" class="secondary">Newer</button>
                <span id="page-info" aria-live="polite"></span>
                <button id="next-page" type="button" class="secondary">Older</button>
              </nav>
            </section>
        """
}
