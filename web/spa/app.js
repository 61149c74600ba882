// The demo SPA. It holds no token: only the CSRF value that /login/end
// returns, kept in memory and sent as x-<prefix>-csrf on data-changing calls.

const config = await fetch('/config.json', { cache: 'no-store' }).then((r) => r.json());
const agentURL = config.gatehouseUrl + config.agentPath;
const apiURL = config.gatehouseUrl + config.apiPath;
const csrfHeader = 'x-' + config.cookiePrefix + '-csrf';

let csrf = null;

const $ = (id) => document.getElementById(id);

class CallError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

// call sends a request to Gatehouse with the browser's cookies.
async function call(method, url, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (csrf && method !== 'GET' && method !== 'HEAD') headers[csrfHeader] = csrf;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: 'include',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new CallError(0, 'network_error', 'Gatehouse could not be reached: ' + e.message);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new CallError(response.status, data?.code || 'http_' + response.status, data?.message || text);
  }
  return data;
}

function show(view) {
  $('loading').hidden = true;
  $('signed-out').hidden = view !== 'signed-out';
  $('signed-in').hidden = view !== 'signed-in';
}

function showError(e) {
  const el = $('error');
  if (!e) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.hidden = false;
  el.textContent = e.code ? `${e.code} (HTTP ${e.status}): ${e.message}` : String(e);
}

function status(text) {
  $('status').textContent = text;
}

function signedOut() {
  csrf = null;
  show('signed-out');
}

async function showSignedIn() {
  show('signed-in');
  const claims = await call('GET', agentURL + '/claims');
  $('user-name').textContent = claims.name || claims.preferred_username || claims.sub;
  $('claims').textContent = JSON.stringify(claims, null, 2);
}

// refresh renews the tokens; a 401 means the session is over.
async function refresh() {
  try {
    await call('POST', agentURL + '/refresh');
  } catch (e) {
    if (e.status === 401) {
      signedOut();
      throw new CallError(401, 'session_expired', 'Your session has ended. Please sign in again.');
    }
    throw e;
  }
}

// callAPI calls the example API through Gatehouse. An expired access token
// gives 401: refresh once and retry.
async function callAPI(method, body) {
  try {
    return await call(method, apiURL + '/data', body);
  } catch (e) {
    if (e.status !== 401) throw e;
  }
  await refresh();
  return await call(method, apiURL + '/data', body);
}

async function action(button, fn) {
  showError(null);
  status('');
  button.disabled = true;
  try {
    await fn();
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
}

$('sign-in').addEventListener('click', (ev) =>
  action(ev.currentTarget, async () => {
    const { authorizationRequestUrl } = await call('POST', agentURL + '/login/start', {});
    location.assign(authorizationRequestUrl);
  }),
);

$('get-data').addEventListener('click', (ev) =>
  action(ev.currentTarget, async () => {
    const data = await callAPI('GET');
    $('api-result').textContent = JSON.stringify(data, null, 2);
    status('GET succeeded');
  }),
);

$('post-data').addEventListener('click', (ev) =>
  action(ev.currentTarget, async () => {
    const data = await callAPI('POST', { message: 'Hello from the SPA', sentAt: new Date().toISOString() });
    $('api-result').textContent = JSON.stringify(data, null, 2);
    status('POST succeeded');
  }),
);

$('refresh').addEventListener('click', (ev) =>
  action(ev.currentTarget, async () => {
    await refresh();
    await showSignedIn();
    status('Tokens refreshed');
  }),
);

$('sign-out').addEventListener('click', (ev) =>
  action(ev.currentTarget, async () => {
    const { url } = await call('POST', agentURL + '/logout');
    csrf = null;
    location.assign(url || '/');
  }),
);

// Every page load asks the agent for the login state; on the callback page
// it completes the login. Then code and state leave the address bar.
async function pageLoad() {
  const result = await call('POST', agentURL + '/login/end', { pageUrl: location.href });
  if (result.handled || location.search.includes('state=')) {
    history.replaceState(null, '', location.pathname);
  }
  if (result.isLoggedIn) {
    csrf = result.csrf;
    await showSignedIn();
  } else {
    signedOut();
  }
}

pageLoad().catch((e) => {
  if (location.search.includes('state=')) history.replaceState(null, '', location.pathname);
  show('signed-out');
  showError(e);
});
