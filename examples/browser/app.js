// What the README's "What a front end does" says, in a browser: the JWTs stay in HttpOnly cookies this page cannot
// read; the CSRF values are readable cookies, sent back in the X-CSRF-TOKEN header on every POST.
"use strict";

const api = new URLSearchParams(location.search).get("api") || "http://localhost:5000";
document.getElementById("api").textContent = api;

// The value of a cookie this page can read (never the JWTs: they are HttpOnly).
function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
}

function log(call, status, body) {
  document.getElementById("log").textContent += JSON.stringify({ call, status, body }) + "\n";
}

// Every call carries the cookies (credentials: "include"); a POST carries the CSRF value its cookie names.
async function call(name, method, path, { csrf, body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf) {
    const value = cookie(csrf);
    if (value) headers["X-CSRF-TOKEN"] = value;
  }
  try {
    const response = await fetch(api + path, {
      method,
      headers,
      credentials: "include",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed;
    try { parsed = JSON.parse(text); } catch { parsed = text; }
    log(name, response.status, parsed);
  } catch (error) {
    log(name, 0, String(error));
  }
}

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const username = document.getElementById("username").value;
  const password = document.getElementById("password").value;
  call("login", "POST", "/login", { body: { username, password } });
});
document.getElementById("protected").addEventListener("click", () => call("protected", "GET", "/protected"));
document.getElementById("refresh").addEventListener("click", () =>
  call("refresh", "POST", "/refresh", { csrf: "csrf_refresh_token" }));
document.getElementById("logout").addEventListener("click", () =>
  call("logout", "POST", "/logout", { csrf: "csrf_access_token" }));
