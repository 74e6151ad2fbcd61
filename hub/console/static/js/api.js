// The REST API as the console uses it: the session cookie authenticates, the CSRF token rides on every write.
import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let csrfToken = "";
let onSignedOut = () => {};

export function setCsrf(token) {
  csrfToken = token || "";
}

export function whenSignedOut(fn) {
  onSignedOut = fn;
}

// A 401 has already sent the agent to the sign-in page: the calls still in flight (a background refresh, a resync
// after the socket closed) fail with it, and their errors are nobody's to show, so they are not reported as uncaught.
window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof ApiError && event.reason.signedOut) event.preventDefault();
});

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, t("api.unreachable"), null);
  }
  let data = null;
  const type = resp.headers.get("Content-Type") || "";
  if (type.includes("application/json")) data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const message = (data && data.error && data.error.message) || `${resp.status} ${resp.statusText}`;
    const err = new ApiError(resp.status, message, data);
    if (resp.status === 401 && !path.startsWith("/console/session")) {
      err.signedOut = true;
      onSignedOut();
    }
    throw err;
  }
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body) => request("POST", path, body === undefined ? {} : body),
  put: (path, body) => request("PUT", path, body === undefined ? {} : body),
  patch: (path, body) => request("PATCH", path, body === undefined ? {} : body),
  del: (path) => request("DELETE", path),
};

// Routing endpoints may be missing on a hub without routing: the console shows those parts disabled.
export function missing(err) {
  return err instanceof ApiError && (err.status === 404 || err.status === 405) && !/conversation|customer/i.test(err.message);
}
