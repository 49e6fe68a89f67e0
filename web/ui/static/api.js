// The smtpgate API as the UI uses it. Authentication is the HttpOnly
// session cookie set by POST /api/v1/session (or none, from an open
// network): page scripts never hold the key.

/** An answer of the API other than 2xx. */
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * Calls the API and returns the decoded JSON (null for 204).
 * @param {string} path
 * @param {{method?: string, body?: any, text?: boolean}} [opts]
 */
export async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, "the server cannot be reached");
  }
  if (res.status === 204) return null;
  if (!res.ok) {
    let message = res.statusText;
    try {
      const body = await res.json();
      if (body && body.message) message = body.message;
    } catch (e) {
      // not JSON: keep the status text
    }
    throw new APIError(res.status, message);
  }
  return opts.text ? res.text() : res.json();
}

/** Builds a query string from the non-empty values of params. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

export const session = () => api("/api/v1/session");
export const signIn = (key, remember) => api("/api/v1/session", { method: "POST", body: { key, remember } });
export const signOut = () => api("/api/v1/session", { method: "DELETE" });
export const inboxes = (login) => api("/api/v1/inboxes" + query({ login, limit: 200 }));
export const messages = (filters, cursor) => api("/api/v1/messages" + query({ ...filters, cursor, limit: 50 }));
export const message = (id) => api("/api/v1/messages/" + encodeURIComponent(id));
export const diff = (id) => api("/api/v1/messages/" + encodeURIComponent(id) + "/diff");
export const raw = (id) => api("/api/v1/messages/" + encodeURIComponent(id) + "/raw", { text: true });
export const text = (id) => api("/api/v1/messages/" + encodeURIComponent(id) + "/text", { text: true });
export const deleteMessage = (id) => api("/api/v1/messages/" + encodeURIComponent(id), { method: "DELETE" });
export const deleteInbox = (inbox) => api("/api/v1/inboxes/" + encodeURIComponent(inbox), { method: "DELETE" });
export const markRead = (id, read) => api("/api/v1/messages/" + encodeURIComponent(id) + "/read", { method: read ? "PUT" : "DELETE" });
export const deliveries = (id) => api("/api/v1/messages/" + encodeURIComponent(id) + "/deliveries");
export const retryDelivery = (id) => api("/api/v1/queue/" + encodeURIComponent(id) + "/retry", { method: "POST" });
export const cancelDelivery = (id) => api("/api/v1/queue/" + encodeURIComponent(id) + "/cancel", { method: "POST" });

/**
 * Follows the live stream of captured mail; onMessage gets each message,
 * onState true or false as the connection comes and goes. EventSource
 * reconnects by itself and sends Last-Event-ID, so nothing is missed.
 */
export function live(onMessage, onState) {
  const es = new EventSource("/api/v1/events/stream");
  es.addEventListener("open", () => onState(true));
  es.addEventListener("error", () => onState(false));
  es.addEventListener("message", (ev) => {
    try {
      onMessage(JSON.parse(ev.data));
    } catch (e) {
      console.error("smtpgate: bad live event", e);
    }
  });
  return es;
}
