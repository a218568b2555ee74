// Shared by every console page: language (简体中文 by default, English on request),
// the signed-in user, and fetch with the CSRF header.
const I18N = {
  en: {"退出": "Sign out", "登录": "Sign in", "用户名": "User", "密码": "Password", "语言": "Language"},
};
let LANG = localStorage.getItem("ivr_lang") || "zh";
function t(zh) { return LANG === "zh" ? zh : ((I18N.en[zh]) || zh); }
function translatePage() {
  document.querySelectorAll("[data-zh]").forEach(el => {
    el.textContent = LANG === "zh" ? el.dataset.zh : (el.dataset.en || el.dataset.zh);
  });
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
}
function toggleLang() { LANG = LANG === "zh" ? "en" : "zh"; localStorage.setItem("ivr_lang", LANG); translatePage(); }
let ME = null;
async function api(method, path, body, isForm) {
  const opts = {method, headers: {}, credentials: "same-origin"};
  if (ME && ME.csrf && method !== "GET") opts.headers["X-CSRF-Token"] = ME.csrf;
  if (body !== undefined) {
    if (isForm) { opts.body = body; } else { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  }
  const r = await fetch(path, opts);
  const type = r.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (r.status === 401) { location.href = "/console/login"; }
  return {ok: r.ok, status: r.status, data};
}
async function whoami() {
  const r = await api("GET", "/api/me");
  if (!r.ok) return null;
  ME = r.data;
  if (ME.timezone) TZ = ME.timezone;       // the hotline's IVR_TIMEZONE, once /api/me says it
  const el = document.getElementById("who");
  if (el) el.textContent = `${ME.user} · ${ME.role_name}`;
  return ME;
}
async function signOut() { await api("POST", "/api/logout", {}); location.href = "/console/login"; }
// One time zone everywhere a time is shown: the hotline's (IVR_TIMEZONE), not the browser's.
let TZ = "Asia/Shanghai";
function fmtTime(v) {
  // epoch seconds or an ISO string -> "2026-12-01 08:30:05" in the hotline's time zone
  if (v == null || v === "") return "";
  const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
  if (isNaN(d)) return String(v);
  return new Intl.DateTimeFormat("sv-SE", {timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false}).format(d);
}
function esc(s) { return String(s ?? "").replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c])); }
function header(titleZh, titleEn) {
  return `<header><b data-zh="${titleZh}" data-en="${titleEn}">${titleZh}</b>
    <a href="/console/config" style="color:#fff" data-zh="配置文件" data-en="Configuration">配置文件</a>
    <span id="who"></span>
    <button onclick="toggleLang()" id="lang">中文 / English</button>
    <button onclick="signOut()" data-zh="退出" data-en="Sign out">退出</button></header>`;
}
