// smtpgate capture UI: inboxes, search, live updates and the message
// reader. Plain ES modules, no build step, nothing loaded from elsewhere.
import * as API from "./api.js";
import { h, fill, icon, size, shortTime, longTime, addresses, firstName } from "./dom.js";

const $ = (id) => document.getElementById(id);

/** Everything the page shows. */
const state = {
  session: null,
  view: { inbox: "", q: "" }, // the list shown: one inbox and/or a search
  filters: {}, // the API filters of the view
  items: [], // messages of the list, newest first
  cursor: "", // next_cursor of the list
  loaded: false, // the list has been loaded once
  sel: -1, // selected index in items
  open: null, // the message open in the reader (full detail)
  tab: "html",
  images: false, // remote images loaded in the HTML view
  phone: false, // HTML view at phone width
  fresh: 0, // live messages the list does not show (search views)
  unseen: 0, // live messages since the window last had focus
  es: null,
};

// ---------------------------------------------------------------- search

const KEYS = { from: "from", to: "to", subject: "subject", tag: "tag", login: "login", in: "inbox", inbox: "inbox", after: "since", since: "since", before: "until", until: "until" };

/** Parses the search box: from:x subject:"a b" has:attachment words... */
export function parseQuery(s) {
  const f = {};
  const words = [];
  const re = /(\w+):"([^"]*)"|(\w+):(\S+)|"([^"]*)"|(\S+)/g;
  let m;
  while ((m = re.exec(s)) !== null) {
    const key = (m[1] || m[3] || "").toLowerCase();
    const val = m[1] ? m[2] : m[4];
    if (key === "has" && val === "attachment") f.has_attachment = "true";
    else if (key === "no" && val === "attachment") f.has_attachment = "false";
    else if (KEYS[key]) f[KEYS[key]] = val;
    else words.push(m[5] !== undefined ? m[5] : m[0]);
  }
  if (words.length) f.text = words.join(" ");
  return f;
}

/** Writes filters back in the search box's syntax. */
function formatQuery(f) {
  const parts = [];
  const q = (v) => (/\s/.test(v) ? `"${v}"` : v);
  for (const [key, name] of [["from", "from"], ["to", "to"], ["subject", "subject"], ["tag", "tag"], ["login", "login"], ["since", "after"], ["until", "before"]]) {
    if (f[key]) parts.push(`${name}:${q(f[key])}`);
  }
  if (f.has_attachment === "true") parts.push("has:attachment");
  if (f.has_attachment === "false") parts.push("no:attachment");
  if (f.text) parts.push(f.text);
  return parts.join(" ");
}

// ---------------------------------------------------------------- routing

/** Reads the location hash: #inbox=a@b.c&q=...&m=<id>, or #all. */
function route() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ""));
  return { inbox: (p.get("inbox") || "").toLowerCase(), q: p.get("q") || "", m: p.get("m") || "" };
}

function go(r) {
  const p = new URLSearchParams();
  if (r.inbox) p.set("inbox", r.inbox);
  if (r.q) p.set("q", r.q);
  if (r.m) p.set("m", r.m);
  const hash = "#" + (p.toString() || "all");
  if (location.hash !== hash) location.hash = hash;
  else onRoute();
}

async function onRoute() {
  const r = route();
  if (r.inbox !== state.view.inbox || r.q !== state.view.q || !state.loaded) {
    state.view = { inbox: r.inbox, q: r.q };
    state.loaded = true;
    await loadList(false);
  }
  if (r.m && (!state.open || state.open.id !== r.m)) {
    const i = state.items.findIndex((m) => m.id === r.m);
    if (i >= 0) select(i);
    else {
      // Not in the list (a relayed message, or an older one): select nothing.
      state.sel = -1;
      highlight();
    }
    await openMessage(r.m);
  } else if (!r.m && state.open) {
    closeMessage();
  }
}

// ---------------------------------------------------------------- list

async function loadList(more) {
  const f = parseQuery(state.view.q);
  if (state.view.inbox) f.inbox = state.view.inbox;
  state.filters = f;
  if (!more) {
    state.fresh = 0;
    $("new-mail").hidden = true;
  }
  let res;
  try {
    res = await API.messages(f, more ? state.cursor : undefined);
  } catch (e) {
    return failed(e);
  }
  if (more) state.items.push(...res.messages);
  else {
    state.items = res.messages;
    state.sel = state.items.length ? 0 : -1;
  }
  state.cursor = res.next_cursor || "";
  renderListHead();
  renderList();
  renderSidebarCurrent();
}

function renderListHead() {
  const { inbox, q } = state.view;
  $("list-title").textContent = inbox || (q ? "Search" : "All mail");
  const parts = [];
  if (q) parts.push(q);
  parts.push(state.items.length + (state.cursor ? "+" : "") + " message" + (state.items.length === 1 ? "" : "s"));
  $("list-sub").textContent = parts.join(" · ");
  $("delete-all").hidden = !inbox || !!q;
  $("search-input").value = q;
  $("check-input").value = inbox;
}

function renderList() {
  const ul = $("messages");
  fill(ul, state.items.map((m, i) => listItem(m, i)));
  $("list-empty").hidden = state.items.length > 0;
  $("more").hidden = !state.cursor;
  highlight();
}

function listItem(m, i) {
  const stats = m.stats || {};
  const markers = [];
  const files = (m.attachments || []).filter((a) => !a.inline).length;
  if (files) markers.push(h("span.pill", { title: files + " attachment" + (files > 1 ? "s" : "") }, icon("clip", true), files));
  if (stats.links_tracked) markers.push(h("span.pill.track", { title: stats.links_tracked + " links tracked" }, icon("link", true), stats.links_tracked));
  if (stats.pixels_added) markers.push(h("span.pill.track", { title: "open-tracking pixel added" }, icon("eye", true)));
  for (const t of (m.tags || []).slice(0, 2)) markers.push(h("span.pill.tag", { title: "tag" }, icon("tag", true), t));
  const li = h("li", {
    role: "option", id: "msg-" + m.id, "aria-selected": "false", dataset: { id: m.id, index: i },
    onclick: () => { select(i); openSelected(); },
  },
    h("div.row", null, h("span.from", null, firstName(m.from, m.mail_from || "(no sender)")), h("time", { datetime: m.received, title: longTime(m.received) }, shortTime(m.received))),
    h("div.row", null, h("span.subject", null, m.subject || "(no subject)")),
    h("div.row", null, h("span.to", null, "to " + (addresses(m.to) || m.recipients.join(", "))), h("span.markers", null, markers, h("span.size", null, size(m.size)))),
  );
  if (m.read === false) li.classList.add("unread");
  if (m._fresh) li.classList.add("fresh");
  return li;
}

function highlight() {
  for (const li of $("messages").children) {
    const on = Number(li.dataset.index) === state.sel;
    li.classList.toggle("selected", on);
    li.setAttribute("aria-selected", on ? "true" : "false");
  }
  const cur = $("messages").children[state.sel];
  if (cur) {
    cur.scrollIntoView({ block: "nearest" });
    $("messages").setAttribute("aria-activedescendant", cur.id);
  }
}

function select(i) {
  if (!state.items.length) return;
  state.sel = Math.max(0, Math.min(state.items.length - 1, i));
  highlight();
}

function openSelected() {
  const m = state.items[state.sel];
  if (m) go({ ...state.view, m: m.id });
}

// ---------------------------------------------------------------- sidebar

async function loadSidebar() {
  const s = state.session;
  const groups = s.all_logins ? [{ title: "Inboxes", login: "" }] : s.logins.map((l) => ({ title: "Login " + l, login: l }));
  const blocks = await Promise.all(groups.map(async (g) => {
    let list = [];
    try {
      list = (await API.inboxes(g.login)).inboxes;
    } catch (e) {
      failed(e);
    }
    return [h("h3", null, g.title), list.length ? list.map(inboxLink) : h("div.none", null, "no mail yet")];
  }));
  fill($("inbox-groups"), blocks);
  renderSidebarCurrent();
}

function inboxLink(ib) {
  const count = ib.unread ? h("span.count.unread", { title: ib.unread + " unread of " + ib.messages }, ib.unread) : h("span.count", { title: ib.messages + " messages" }, ib.messages);
  return h("a", { href: "#" + new URLSearchParams({ inbox: ib.inbox }), dataset: { inbox: ib.inbox } }, h("span.addr", { title: ib.inbox }, ib.inbox), count);
}

function renderSidebarCurrent() {
  for (const a of $("sidebar").querySelectorAll("a")) {
    const cur = a.dataset.inbox ? a.dataset.inbox === state.view.inbox && !state.view.q : !state.view.inbox && !state.view.q;
    a.classList.toggle("current", cur);
  }
}

// The inbox list is refreshed at most every few seconds while mail streams
// in: listing inboxes is one of the dearer queries of a large store.
let sidebarTimer = 0;
let sidebarLast = 0;
function refreshSidebarSoon() {
  if (sidebarTimer) return;
  const wait = Math.max(400, sidebarLast + 3000 - Date.now());
  sidebarTimer = setTimeout(() => {
    sidebarTimer = 0;
    sidebarLast = Date.now();
    loadSidebar();
  }, wait);
}

// ---------------------------------------------------------------- reader

const TABS = [
  { id: "html", label: "HTML" },
  { id: "text", label: "Text" },
  { id: "headers", label: "Headers", n: (d) => d.headers.length },
  { id: "raw", label: "Raw" },
  { id: "attachments", label: "Attachments", n: (d) => d.attachments.length },
  { id: "links", label: "Links", n: (d) => d.links.length },
  { id: "changes", label: "Changes", n: (d) => (d.has_original ? "✓" : "") },
  { id: "events", label: "Events", n: (d) => d.events.length },
  { id: "delivery", label: "Delivery", relayed: true },
];

/** The views of message d: Delivery only for relayed mail. */
function tabsOf(d) {
  return TABS.filter((t) => !t.relayed || relayed(d));
}

/** Whether message d was relayed rather than captured. */
function relayed(d) {
  return d.route && d.route !== "capture";
}

async function openMessage(id) {
  let d;
  try {
    d = await API.message(id);
  } catch (e) {
    if (e.status === 404) toast("That message is gone.");
    else failed(e);
    return;
  }
  state.open = d;
  state.images = false;
  state.tab = d.html ? "html" : "text";
  document.body.classList.add("reading");
  $("reader-empty").hidden = true;
  $("message").hidden = false;
  renderHead(d);
  renderTabs();
  renderTab();
  const item = state.items.find((m) => m.id === id);
  if (item && item.read === false) {
    item.read = true;
    renderList();
    API.markRead(id, true).then(refreshSidebarSoon, () => {});
  }
}

function closeMessage() {
  state.open = null;
  document.body.classList.remove("reading");
  $("message").hidden = true;
  $("reader-empty").hidden = false;
  fill($("tab-panel"));
  $("messages").focus();
}

function renderHead(d) {
  $("m-subject").textContent = d.subject || "(no subject)";
  const rows = [
    ["From", addresses(d.from) || d.mail_from],
    ["To", addresses(d.to)],
    ["Cc", addresses(d.cc)],
    ["Envelope", `${d.mail_from || "<>"} → ${d.recipients.join(", ")}`],
    ["Received", `${longTime(d.received)} · ${size(d.size)} · login ${d.login}${d.tls ? " · TLS" : ""}`],
    ["Relayed", relayed(d) ? `through ${d.route}: see Delivery` : ""],
  ];
  fill($("m-meta"), rows.filter((r) => r[1]).map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
  const badges = [];
  const st = d.stats || {};
  for (const [k, v] of Object.entries(st)) badges.push(h("span.pill.track", { title: "what the features did" }, k.replace(/_/g, " ") + ": " + v));
  for (const t of d.tags) badges.push(h("span.pill.tag", null, icon("tag", true), t));
  fill($("m-badges"), badges);
  // Only a code that a word like "code" or "PIN" announces: a bare number
  // is as likely an order number.
  const announced = d.codes.find((c) => c.keyword);
  const chip = $("m-code");
  if (announced) {
    const code = announced.code;
    fill(chip, h("span", null, "One-time code"), h("strong", { id: "m-code-value" }, code),
      h("button.ghost", { type: "button", onclick: () => copy(code) }, icon("copy", true), "Copy"));
    chip.title = announced.context;
    chip.hidden = false;
  } else chip.hidden = true;
  $("m-download").href = d.urls.raw + "?download=1";
  // A relayed message is in no inbox: nothing to mark or delete there.
  $("m-unread").hidden = relayed(d);
  $("m-delete").hidden = relayed(d);
}

function renderTabs() {
  const d = state.open;
  fill($("tabs"), tabsOf(d).map((t, i) => {
    const n = t.n ? t.n(d) : "";
    return h("button", {
      type: "button", role: "tab", id: "tab-" + t.id, "aria-selected": state.tab === t.id ? "true" : "false",
      title: `${t.label} (${i + 1})`, onclick: () => showTab(t.id),
    }, t.label, n !== "" && n !== 0 ? h("span.n", null, n) : null);
  }));
}

function showTab(id) {
  if (!state.open) return;
  state.tab = id;
  renderTabs();
  renderTab();
}

async function renderTab() {
  const d = state.open;
  const panel = $("tab-panel");
  panel.classList.toggle("frame", state.tab === "html");
  panel.dataset.tab = state.tab;
  const render = {
    html: () => htmlView(d),
    text: () => h("pre.body", { id: "text-body" }, d.text || "(no text)"),
    headers: () => h("table.grid", { id: "headers-table" }, h("tbody", null, d.headers.map((f) => h("tr", null, h("td.k", null, f.name), h("td", null, f.value))))),
    raw: () => rawView(d),
    attachments: () => attachmentsView(d),
    links: () => linksView(d),
    changes: () => changesView(d),
    events: () => eventsView(d),
    delivery: () => deliveryView(d),
  }[state.tab];
  fill(panel, h("div.empty", null, "Loading…"));
  const id = d.id;
  const tab = state.tab;
  const content = await render();
  if (state.open && state.open.id === id && state.tab === tab) fill(panel, content);
}

function htmlView(d) {
  const src = d.urls.html + (state.images ? "?images=1" : "");
  const bar = h("div.toolbar", null,
    state.images ? h("span.muted", null, "Remote images are shown: loading them fires open tracking.") : h("span.muted", null, "Remote images are blocked."),
    state.images ? null : h("button", { id: "load-images", type: "button", onclick: () => { state.images = true; renderTab(); } }, "Load images"),
    h("span.spacer"),
    h("span.viewport-toggle", null,
      h("button.ghost.btn-small", { type: "button", "aria-pressed": String(!state.phone), onclick: () => { state.phone = false; renderTab(); } }, "Desktop"),
      h("button.ghost.btn-small", { type: "button", "aria-pressed": String(state.phone), onclick: () => { state.phone = true; renderTab(); } }, "Phone")),
  );
  // No allow-scripts, no allow-same-origin: the body cannot run code or
  // reach the page; links open in new tabs outside the sandbox.
  const frame = h("iframe", { id: "html-frame", title: "Message body", src, sandbox: "allow-popups allow-popups-to-escape-sandbox", referrerpolicy: "no-referrer" });
  frame.addEventListener("load", () => { frame.dataset.loaded = "true"; });
  return [bar, h(state.phone ? "div.frame-wrap.phone" : "div.frame-wrap", null, frame)];
}

async function rawView(d) {
  let raw;
  try {
    raw = await API.raw(d.id);
  } catch (e) {
    failed(e);
    return h("div.empty", null, "Cannot load the raw message.");
  }
  const limit = 2e6;
  return [
    h("div.message-actions", null, h("a.button.ghost", { href: d.urls.raw + "?download=1", download: "" }, icon("download", true), "Download"),
      d.has_original ? h("a.button.ghost", { href: d.urls.original + "?download=1", download: "" }, icon("download", true), "Download as submitted") : null),
    h("pre.raw", { id: "raw-body" }, raw.length > limit ? raw.slice(0, limit) + "\n… (truncated: download the message to see it all)" : raw),
  ];
}

function attachmentsView(d) {
  if (!d.attachments.length) return h("div.empty", null, "No attachments.");
  return h("ul.attachments", null, d.attachments.map((a) => h("li", null,
    icon("clip"),
    h("div", null, h("div.name", null, a.filename || "(unnamed)"), h("div.muted", null, `${a.content_type} · ${size(a.size)}${a.inline ? " · inline" : ""}`)),
    h("span.spacer"),
    h("a.button", { href: a.url, download: a.filename || "", class: "button attachment-download" }, icon("download", true), "Download"),
  )));
}

function linksView(d) {
  const out = [];
  if (d.codes.length) {
    out.push(h("h3.section-title", null, "One-time codes"));
    out.push(h("table.grid", null, h("thead", null, h("tr", null, h("th", null, "Code"), h("th", null, "Found in"), h("th", null, "Context"))),
      h("tbody", null, d.codes.map((c) => h("tr", null, h("td", null, h("strong", null, c.code)), h("td", null, c.source + (c.keyword ? ` (near “${c.keyword}”)` : "")), h("td", null, c.context))))));
  }
  out.push(h("h3.section-title", null, "Links"));
  if (!d.links.length) out.push(h("div.empty", null, "No links."));
  else {
    out.push(h("table.grid", { id: "links-table" }, h("thead", null, h("tr", null, h("th", null, "Text"), h("th", null, "URL"), h("th", null, "Part"))),
      h("tbody", null, d.links.map((l) => h("tr", null, h("td", null, l.text || "—"),
        h("td", null, h("a", { href: l.url, target: "_blank", rel: "noopener noreferrer nofollow" }, l.url),
          l.original_url && l.original_url !== l.url ? h("div.muted.original-url", { title: "the link as submitted" }, "→ " + l.original_url) : null),
        h("td", null, l.source))))));
  }
  return out;
}

async function changesView(d) {
  let diff;
  try {
    diff = await API.diff(d.id);
  } catch (e) {
    failed(e);
    return h("div.empty", null, "Cannot load the changes.");
  }
  const out = [];
  out.push(h("p", null, diff.changed
    ? "The message was changed on its way through smtpgate. Below: what the features did, the directives read from its headers, and a line diff of the message as submitted (−) and as delivered (+)."
    : "The features left the message as it was submitted."));
  const feats = Object.entries(diff.features);
  if (feats.length) {
    out.push(h("h3.section-title", null, "Features"));
    out.push(h("div.chips", null, feats.sort().map(([k, on]) => h(on ? "span.pill.chip-on" : "span.pill.chip-off", { title: on ? "on" : "off" }, k.replace(/_/g, " ")))));
  }
  const stats = Object.entries(diff.stats);
  if (stats.length) {
    out.push(h("h3.section-title", null, "What they did"));
    out.push(h("table.grid", null, h("tbody", null, stats.map(([k, v]) => h("tr", null, h("td.k", null, k), h("td", null, v))))));
  }
  out.push(h("h3.section-title", null, "Directives"));
  if (!diff.directives.length) out.push(h("p.muted", null, "No directive headers: the credential's feature set applied as it is."));
  else {
    out.push(h("table.grid", { id: "directives-table" }, h("thead", null, h("tr", null, ["Header", "Value", "Directive", "Outcome", "Reason"].map((t) => h("th", null, t)))),
      h("tbody", null, diff.directives.map((r) => h("tr", null, h("td.k", null, r.header), h("td", null, r.value), h("td", null, r.directive || "—"),
        h("td", { class: "outcome-" + r.outcome }, r.outcome), h("td", null, r.reason || ""))))));
  }
  if (diff.notes.length) {
    out.push(h("h3.section-title", null, "Notes"));
    out.push(h("ul", null, diff.notes.map((n) => h("li", null, n))));
  }
  for (const [key, title] of [["headers", "Header fields"], ["html", "HTML body"], ["text", "Text body"]]) {
    if (!diff[key].length) continue;
    out.push(h("h3.section-title", null, title));
    out.push(h("div.diff", { id: "diff-" + key }, diff[key].map((l) => h({ " ": "div.same", "+": "div.add", "-": "div.del", "~": "div.skip" }[l.op] || "div", null, l.text))));
  }
  return out;
}

function eventsView(d) {
  if (!d.events.length) return h("div.empty", null, "No events yet.");
  return h("table.grid", { id: "events-table" }, h("thead", null, h("tr", null, ["Time", "Event", "Recipient", "Details"].map((t) => h("th", null, t)))),
    h("tbody", null, d.events.map((e) => h("tr", null, h("td", null, longTime(e.time)), h("td", null, h("strong", null, e.type)), h("td", null, e.recipient || ""),
      h("td", null, [e.detail, e.url, e.reply, e.ip && "from " + e.ip, e.user_agent].filter(Boolean).join(" · "))))));
}

async function deliveryView(d) {
  let res;
  try {
    res = await API.deliveries(d.id);
  } catch (e) {
    failed(e);
    return h("div.empty", null, "Cannot load the deliveries.");
  }
  if (!res.deliveries.length) return h("div.empty", null, "No deliveries.");
  return h("div.deliveries", { id: "deliveries" }, res.deliveries.map(deliveryCard));
}

const STATE_CLASS = { queued: "st-wait", deferred: "st-wait", sent: "st-ok", bounced: "st-bad", failed: "st-bad", cancelled: "st-off" };

/** One delivery: its state, recipients, attempts, and the actions it allows. */
function deliveryCard(dl) {
  const facts = [`via ${dl.route}`, `${dl.attempts} attempt${dl.attempts === 1 ? "" : "s"}`];
  if (dl.next_attempt) facts.push("next attempt " + longTime(dl.next_attempt));
  if (dl.can_retry) facts.push("expires " + longTime(dl.expires));
  const actions = [];
  if (dl.can_retry) {
    actions.push(h("button.ghost.btn-small.retry", { type: "button", onclick: (e) => changeDelivery(e.currentTarget, dl, "retry") }, icon("refresh", true), "Retry now"));
  }
  if (dl.can_cancel) {
    // Two clicks: the first arms the button for a few seconds.
    actions.push(h("button.ghost.btn-small.danger.cancel", { type: "button", onclick: (e) => armCancel(e.currentTarget, dl) }, "Cancel"));
  }
  const attempts = dl.attempt_log || [];
  return h("section.delivery", { id: "delivery-" + dl.id, dataset: { state: dl.state } },
    h("div.delivery-head", null,
      h("strong", null, dl.domain || "every recipient"),
      h("span", { class: "pill state " + (STATE_CLASS[dl.state] || "") }, dl.state),
      h("span.muted", null, facts.join(" · ")),
      h("span.spacer"),
      actions),
    dl.last_reply ? h("p.last-reply", null, h("span.muted", null, "Last reply "), h("code", null, dl.last_reply)) : null,
    h("table.grid.recipients", null, h("thead", null, h("tr", null, ["Recipient", "State", "Reply"].map((t) => h("th", null, t)))),
      h("tbody", null, dl.recipients.map((r) => h("tr", null, h("td", null, r.address), h("td", { class: STATE_CLASS[r.state] || "" }, r.state), h("td", null, r.reply || ""))))),
    attempts.length
      ? h("table.grid.attempts", null, h("thead", null, h("tr", null, ["Attempt", "Host", "Reply", "Took"].map((t) => h("th", null, t)))),
        h("tbody", null, attempts.map((a) => h("tr", null, h("td.nowrap", null, longTime(a.time)), h("td.nowrap", null, a.host || "—"), h("td", null, a.reply),
          h("td.nowrap", null, a.duration_ms < 1000 ? Math.round(a.duration_ms) + " ms" : (a.duration_ms / 1000).toFixed(1) + " s")))))
      : h("p.muted", null, "No attempt yet."),
  );
}

function armCancel(btn, dl) {
  if (btn.dataset.armed === "true") {
    changeDelivery(btn, dl, "cancel");
    return;
  }
  btn.dataset.armed = "true";
  btn.textContent = "Really cancel?";
  setTimeout(() => {
    if (btn.isConnected && btn.dataset.armed === "true") {
      btn.dataset.armed = "false";
      btn.textContent = "Cancel";
    }
  }, 4000);
}

/** Retries or cancels a delivery and shows it as the server then has it. */
async function changeDelivery(btn, dl, action) {
  btn.disabled = true;
  let now;
  try {
    now = await (action === "retry" ? API.retryDelivery(dl.id) : API.cancelDelivery(dl.id));
  } catch (e) {
    failed(e);
    if (e.status === 409 || e.status === 404) renderTab(); // the state moved on: show it
    else btn.disabled = false;
    return;
  }
  const card = $("delivery-" + dl.id);
  if (card) card.replaceWith(deliveryCard(now));
  toast(action === "retry" ? `Delivery to ${dl.domain || "every recipient"} is due now` : `Delivery to ${dl.domain || "every recipient"} cancelled`);
}

// ---------------------------------------------------------------- actions

/** Deletes the selected message (the open one when the list is empty). */
function deleteSelected() {
  const m = state.items[state.sel] || state.open;
  if (m) deleteMessage(m.id);
}

async function deleteMessage(id) {
  try {
    await API.deleteMessage(id);
  } catch (e) {
    return failed(e);
  }
  const i = state.items.findIndex((x) => x.id === id);
  if (i >= 0) {
    state.items.splice(i, 1);
    if (state.sel >= state.items.length) state.sel = state.items.length - 1;
  }
  renderList();
  renderListHead();
  refreshSidebarSoon();
  toast("Message deleted");
  if (state.open && state.open.id === id) go({ ...state.view });
}

async function deleteAll() {
  const inbox = state.view.inbox;
  if (!inbox || !confirm(`Delete every message of ${inbox}?`)) return;
  try {
    const res = await API.deleteInbox(inbox);
    toast(`${res.deleted} message${res.deleted === 1 ? "" : "s"} deleted`);
  } catch (e) {
    return failed(e);
  }
  go({ ...state.view });
  await loadList(false);
  loadSidebar();
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied " + text);
  } catch (e) {
    toast("Copy failed: select the code instead");
  }
}

let toastTimer = 0;
function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 2600);
}

function failed(e) {
  if (e && e.status === 401) {
    showSignIn(e.message);
    return;
  }
  console.error(e);
  toast(e && e.message ? "Error: " + e.message : "Something went wrong");
}

// ---------------------------------------------------------------- live

function onLive(m) {
  refreshSidebarSoon();
  if (state.items.some((x) => x.id === m.id)) return;
  const { inbox, q } = state.view;
  const shown = !q && (!inbox || m.inboxes.includes(inbox));
  if (shown) {
    const item = { ...m, _fresh: true };
    if (inbox) {
      item.inbox = inbox;
      item.read = false;
    }
    state.items.unshift(item);
    if (state.sel >= 0 && state.items.length > 1) state.sel++;
    else state.sel = 0;
    renderList();
    renderListHead();
  } else if (q) {
    state.fresh++;
    const b = $("new-mail");
    b.textContent = `${state.fresh} new message${state.fresh === 1 ? "" : "s"} arrived: refresh the search`;
    b.hidden = false;
  }
  if (!document.hasFocus()) {
    state.unseen++;
    document.title = `(${state.unseen}) smtpgate`;
  }
}

function startLive() {
  if (state.es) state.es.close();
  state.es = API.live(onLive, (on) => {
    const el = $("live");
    el.classList.toggle("on", on);
    el.textContent = on ? "live" : "reconnecting";
  });
}

// ---------------------------------------------------------------- keyboard

function typing(el) {
  return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable);
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (!$("help").hidden) {
    if (e.key === "Escape" || e.key === "?") { $("help").hidden = true; e.preventDefault(); }
    return;
  }
  if (typing(e.target)) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  const k = e.key;
  const act = {
    j: () => select(state.sel + 1), ArrowDown: () => select(state.sel + 1),
    k: () => select(state.sel - 1), ArrowUp: () => select(state.sel - 1),
    Enter: openSelected, o: openSelected,
    Delete: deleteSelected, "#": deleteSelected,
    "/": () => {}, // focused on keyup, so that the key's own character is not typed into the box
    c: () => {},
    "?": () => { $("help").hidden = false; $("help-close").focus(); },
    r: () => { loadList(false); loadSidebar(); },
    u: () => state.open && go({ ...state.view }),
    Escape: () => { document.body.classList.remove("drawer"); if (state.open) go({ ...state.view }); },
  }[k];
  if (act) {
    e.preventDefault();
    act();
    return;
  }
  const n = Number(k);
  const tabs = state.open ? tabsOf(state.open) : [];
  if (n >= 1 && n <= tabs.length) {
    e.preventDefault();
    showTab(tabs[n - 1].id);
  }
}

// focusKeys move the focus into a text box when they are released.
const focusKeys = { "/": "search-input", c: "check-input" };

function onKeyUp(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || !$("help").hidden) return;
  const id = focusKeys[e.key];
  if (id) {
    $(id).focus();
    $(id).select();
  }
}

// ---------------------------------------------------------------- start

function wire() {
  $("menu").append(icon("menu"));
  $("advanced-toggle").append(icon("sliders"));
  $("help-btn").append(icon("help"));
  $("refresh").append(icon("refresh"));
  $("menu").addEventListener("click", () => document.body.classList.toggle("drawer"));
  $("sidebar").addEventListener("click", (e) => { if (e.target.closest("a")) document.body.classList.remove("drawer"); });
  $("check").addEventListener("submit", (e) => {
    e.preventDefault();
    const addr = $("check-input").value.trim().toLowerCase();
    if (addr) go({ inbox: addr, q: "" });
  });
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    $("search-input").blur();
    go({ inbox: state.view.inbox, q: $("search-input").value.trim() });
  });
  $("advanced-toggle").addEventListener("click", () => {
    const adv = $("advanced");
    adv.hidden = !adv.hidden;
    $("advanced-toggle").setAttribute("aria-expanded", String(!adv.hidden));
    if (!adv.hidden) {
      const f = parseQuery(state.view.q);
      for (const el of adv.elements) if (el.name) el.value = f[el.name] || "";
      adv.elements[0].focus();
    }
  });
  $("advanced").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = {};
    for (const el of e.target.elements) if (el.name && el.value.trim()) f[el.name] = el.value.trim();
    e.target.hidden = true;
    $("advanced-toggle").setAttribute("aria-expanded", "false");
    go({ inbox: state.view.inbox, q: formatQuery(f) });
  });
  $("refresh").addEventListener("click", () => { loadList(false); loadSidebar(); });
  $("more").addEventListener("click", () => loadList(true));
  $("new-mail").addEventListener("click", () => loadList(false));
  $("delete-all").addEventListener("click", deleteAll);
  $("back").addEventListener("click", () => go({ ...state.view }));
  $("m-delete").addEventListener("click", () => deleteMessage(state.open.id));
  $("m-unread").addEventListener("click", async () => {
    const id = state.open.id;
    try {
      await API.markRead(id, false);
    } catch (e) {
      return failed(e);
    }
    const item = state.items.find((m) => m.id === id);
    if (item && state.view.inbox) item.read = false;
    renderList();
    refreshSidebarSoon();
    toast("Marked unread");
  });
  $("help-btn").addEventListener("click", () => { $("help").hidden = false; $("help-close").focus(); });
  $("help-close").addEventListener("click", () => { $("help").hidden = true; });
  $("help").addEventListener("click", (e) => { if (e.target === $("help")) $("help").hidden = true; });
  $("signout").addEventListener("click", async () => {
    try {
      await API.signOut();
    } finally {
      location.hash = "";
      location.reload();
    }
  });
  window.addEventListener("hashchange", onRoute);
  window.addEventListener("focus", () => { state.unseen = 0; document.title = "smtpgate"; });
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", onKeyUp);
}

function showSignIn(message) {
  if (state.es) state.es.close();
  $("app").hidden = true;
  $("signin").hidden = false;
  const err = $("signin-error");
  err.hidden = !message || message.startsWith("missing API key");
  err.textContent = message || "";
  $("signin-key").focus();
}

async function start() {
  try {
    state.session = await API.session();
  } catch (e) {
    if (e.status === 401) return showSignIn(e.message);
    fill(document.body, h("p.empty", null, "smtpgate cannot be reached: " + e.message));
    return;
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = state.session.via === "open";
  document.body.dataset.ready = "true";
  loadSidebar();
  startLive();
  await onRoute();
  $("messages").focus();
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await API.signIn($("signin-key").value.trim(), $("signin-remember").checked);
  } catch (err) {
    $("signin-error").textContent = err.status === 401 ? "That key is not known." : err.message;
    $("signin-error").hidden = false;
    return;
  }
  $("signin-key").value = "";
  start();
});

wire();
start();
