// The page's one door to the API (same origin) and who the shopper is.
// The storefront key is whatever the shopper pasted: it lives in sessionStorage (or localStorage when
// asked to remember it), never in the files this server ships (docs/adr/0008-storefront-page-key.md).

const KEY = "emporium.storefront-key";
const SESSION = "emporium.session-id";
const USER = "emporium.user-id";
const ZONE = "emporium.deliver-to";

export function randomId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  const bytes = new Uint8Array(16); // crypto.randomUUID needs a secure context; getRandomValues does not
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function read(name) {
  try {
    return sessionStorage.getItem(name) || localStorage.getItem(name) || "";
  } catch {
    return ""; // storage disabled: the page still searches
  }
}

export const shopper = {
  get key() {
    return read(KEY);
  },
  setKey(key, remember) {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    if (key) (remember ? localStorage : sessionStorage).setItem(KEY, key);
  },
  get remembered() {
    return Boolean(localStorage.getItem(KEY));
  },
  /** A guest's id, made once per browser: their cart is kept under it (sent as X-Session-Id). */
  get sessionId() {
    let id = localStorage.getItem(SESSION);
    if (!id) {
      id = `guest-${randomId().slice(0, 16)}`;
      localStorage.setItem(SESSION, id);
    }
    return id;
  },
  get userId() {
    return localStorage.getItem(USER) || "";
  },
  setUserId(id) {
    if (id) localStorage.setItem(USER, id);
    else localStorage.removeItem(USER);
  },
  /** Whose cart and orders: the signed-in shopper, else the guest. */
  get customerId() {
    return this.userId || this.sessionId;
  },
  get zone() {
    return localStorage.getItem(ZONE) || "";
  },
  setZone(zone) {
    if (zone) localStorage.setItem(ZONE, zone);
    else localStorage.removeItem(ZONE);
  },
};

export class ApiError extends Error {
  constructor(status, detail, extra = {}, retryAfter = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.extra = extra || {};
    this.retryAfter = retryAfter;
  }

  /** A route this server does not serve yet answers 404 with the framework's plain "Not Found". */
  get routeMissing() {
    return this.status === 404 && (this.detail === "Not Found" || this.detail.startsWith("no file"));
  }
}

export class NoKey extends ApiError {
  constructor() {
    super(401, "Paste a storefront key to use the cart (Storefront key, top right).");
  }
}

/**
 * Call the API. `auth` sends the storefront key (customer-facing writes need it); every call names the
 * shopper (X-User-Id, or X-Session-Id for a guest) so searches and views become their activity.
 * Answers the decoded JSON (null for an empty body); throws ApiError with the server's detail.
 */
export async function api(path, { method = "GET", body, auth = false, headers = {}, signal } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (shopper.userId) sent["X-User-Id"] = shopper.userId;
  else sent["X-Session-Id"] = shopper.sessionId;
  if (auth) {
    if (!shopper.key) throw new NoKey();
    sent["X-Api-Key"] = shopper.key;
  }
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: "omit",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "The server cannot be reached; check your connection and retry.");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = (data && data.detail) || response.statusText || `HTTP ${response.status}`;
    throw new ApiError(response.status, String(detail), data && data.extra, response.headers.get("Retry-After"));
  }
  return data;
}

/** A query string from an object: arrays repeat the name, empty values are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== "") search.append(name, String(one));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** The human sentence for an error, with what to do next. */
export function explain(error) {
  if (error instanceof NoKey) return error.detail;
  if (error.status === 401) return "The storefront key was refused: paste a valid one (Storefront key).";
  if (error.status === 403) return "That key is not a storefront's key: paste a storefront key.";
  if (error.status === 429) {
    return `Too many requests; retry in ${error.retryAfter || "a few"} seconds.`;
  }
  if (error.status === 503) return "The service is busy or a part of it is down; retry shortly.";
  return error.detail || "Something went wrong.";
}
