// The operators' console. Everything it shows comes from the management API, called with the
// function key typed once (kept for this browser tab only, sent in a header, never in a URL).
// Text from Microsoft 365 is untrusted: it is only ever set as textContent, never as HTML.
"use strict";

const KEY = "m365-webhooks-function-key";
const state = { selected: null, changes: [], shown: 0, moreSubscriptions: null, tenants: new Map() };

const $ = (selector) => document.querySelector(selector);

function text(tag, value, attributes = {}) {
  const element = document.createElement(tag);
  element.textContent = value == null ? "" : String(value);
  for (const [name, attribute] of Object.entries(attributes)) element.setAttribute(name, attribute);
  return element;
}

function button(label, onClick, description) {
  const element = text("button", label, { type: "button" });
  if (description) element.setAttribute("aria-label", description);
  element.addEventListener("click", onClick);
  return element;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell == null ? "" : String(cell);
    tr.append(td);
  }
  return tr;
}

function say(message, kind = "info") {
  const status = $("#status");
  status.textContent = message;
  status.dataset.kind = kind;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { "x-functions-key": sessionStorage.getItem(KEY) || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return null;
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = payload.error || {};
    if (response.status === 401) throw new ApiError(401, "The function key was refused (401). Check it and connect again.");
    if (response.status === 503) throw new ApiError(503, `Storage or the source is unavailable (503): ${error.message || "retry in a moment"}.`);
    const upstream = error.upstreamStatus ? ` (Microsoft 365 answered ${error.upstreamStatus}${error.upstreamCode ? " " + error.upstreamCode : ""})` : "";
    throw new ApiError(response.status, `${error.message || "The request failed"}${upstream} [HTTP ${response.status}]`);
  }
  return payload;
}

async function attempt(action) {
  try {
    await action();
  } catch (error) {
    say(error.message, "error");
    if (error.status === 401) $("#app").hidden = true;
  }
}

function when(value) {
  return value ? value.replace("T", " ").replace("Z", " UTC") : "—";
}

function sameOrigin(link) {
  return link ? new URL(link).pathname + new URL(link).search : null;
}

async function loadTenants() {
  // Serving several tenants, the list shows one at a time, or all, and new subscriptions are made
  // in the one chosen; serving one, the choice stays hidden.
  const { value } = await api("GET", "/api/tenants");
  state.tenants = new Map(value.map((tenant) => [tenant.id, tenant]));
  const filter = $("#tenant-filter");
  const chosen = filter.value;
  filter.replaceChildren(
    text("option", "All tenants", { value: "" }),
    ...value.filter((tenant) => tenant.state !== "removed").map((tenant) =>
      text("option", `${tenant.displayName} (${tenant.home ? "home" : tenant.state})`, { value: tenant.id })),
  );
  filter.value = [...filter.options].some((option) => option.value === chosen) ? chosen : "";
  $("#tenant-choice").hidden = value.length < 2;
  $("#subscriptions").classList.toggle("one-tenant", value.length < 2);
}

function chosenTenant() {
  // The tenant new subscriptions are made in: the one shown, else the home tenant.
  const chosen = $("#tenant-filter").value;
  return chosen && !state.tenants.get(chosen)?.home ? { tenantId: chosen } : {};
}

function tenantName(id) {
  const tenant = state.tenants.get(id);
  return tenant ? (tenant.home ? "home" : tenant.displayName) : id || "";
}

async function loadSubscriptions(next = null) {
  // A page at a time (the API pages by key, however many subscriptions there are).
  const tenant = $("#tenant-filter").value;
  const first = `/api/subscriptions?top=1000${tenant ? `&tenantId=${encodeURIComponent(tenant)}` : ""}`;
  const { value, nextLink } = await api("GET", next || first);
  state.moreSubscriptions = sameOrigin(nextLink);
  $("#more-subscriptions").hidden = !state.moreSubscriptions;
  const body = $("#subscriptions tbody");
  if (!next) body.replaceChildren();
  for (const subscription of value) {
    const watching = subscription.source === "sharepoint"
      ? `${subscription.title || `list ${subscription.listId}`} · ${subscription.siteUrl}`
      : [subscription.title, subscription.resource].filter(Boolean).join(" · ");
    const actions = document.createElement("span");
    actions.append(
      button("Open", () => attempt(() => openSubscription(subscription.id)), `Open subscription ${subscription.id}`),
      button("Renew", () => attempt(async () => {
        await api("POST", `/api/subscriptions/${subscription.id}/renew`);
        await loadSubscriptions();
        say("Renewed.");
      }), `Renew subscription ${subscription.id}`),
      button("Delete", () => attempt(async () => {
        if (!window.confirm(`Delete subscription ${subscription.id}? Microsoft 365 stops sending its notifications.`)) return;
        await api("DELETE", `/api/subscriptions/${subscription.id}`);
        if (state.selected === subscription.id) $("#detail").hidden = true;
        await loadSubscriptions();
        say("Deleted.");
      }), `Delete subscription ${subscription.id}`),
    );
    const tr = row([subscription.source, tenantName(subscription.tenantId), watching, healthOf(subscription.healthSummary),
      when(subscription.expirationDateTime), when(subscription.nextRenewalDateTime), subscription.status, actions]);
    tr.dataset.subscriptionId = subscription.id;
    if (subscription.listId) tr.dataset.listId = subscription.listId;
    body.append(tr);
  }
  if (!next && !value.length) body.append(row(["No subscriptions yet.", "", "", "", "", "", "", ""]));
}

function healthOf(summary) {
  // The state the record keeps (no read per row); failing reads matter more than a late feed.
  if (!summary) return "—";
  if (summary.readsFailingSinceDateTime) return `reads failing since ${when(summary.readsFailingSinceDateTime)}`;
  if (summary.state === "healthy") return "healthy";
  return `${summary.state} (gap ${when(summary.lastGapDateTime)})`;
}

async function openSubscription(id) {
  state.selected = id;
  const subscription = await api("GET", `/api/subscriptions/${id}`);
  $("#detail").hidden = false;
  $("#detail-title").textContent = `Subscription ${subscription.id}`;
  const health = $("#health");
  health.replaceChildren();
  const gaps = subscription.health.notificationGaps;
  const facts = [
    ["State", subscription.health.state || "—"],
    ["Watching", subscription.resource],
    ["Expires", when(subscription.expirationDateTime)],
    ["Next renewal", when(subscription.nextRenewalDateTime)],
    ["Last notification", when(subscription.health.lastNotificationDateTime)],
    ["Last sync", when(subscription.health.lastSyncedDateTime)],
    ["Failed reads in a row", subscription.health.consecutiveFailures ?? 0],
    ["Connectors", subscription.health.sinks],
  ];
  if (gaps && gaps.count) {
    const longest = Math.round(gaps.longestSeconds / 60);
    facts.push(["Notification gaps", `${gaps.count}, the last ${when(gaps.lastDateTime)}, the longest ${longest} min`]);
  }
  if (subscription.fields) facts.push(["Fields followed", subscription.fields.join(", ")]);
  if (subscription.ignoreChangesBy) facts.push(["Changes left out (by)", subscription.ignoreChangesBy.join(", ")]);
  const failure = subscription.health.lastFailure;
  if (failure) facts.push(["Last failure", `${when(failure.dateTime)}: ${failure.reason}`]);
  for (const [term, value] of facts) health.append(text("dt", term), text("dd", value));
  await loadAlerts();
  await loadChanges();
  await loadSinks();
  $("#detail-title").focus();
}

async function loadAlerts() {
  const { value } = await api("GET", `/api/subscriptions/${state.selected}/alerts`);
  const body = $("#alerts tbody");
  body.replaceChildren();
  for (const alert of value) {
    const sent = alert.lastSentDateTime ? when(alert.lastSentDateTime) + (alert.undelivered ? " (not delivered yet)" : "") : "—";
    body.append(row([alert.condition, alert.raised ? "raised" : "recovered", sent]));
  }
  if (!value.length) body.append(row(["No alert about this subscription.", "", ""]));
}

const CHANGES_PER_PAGE = 50;
const MAX_CHANGE_PAGES = 20; // of 1,000: the console reads at most the first 20,000 changes

async function loadChanges() {
  // The API pages oldest first (table keys only sort ascending); the console reads the pages,
  // then shows the newest first, CHANGES_PER_PAGE at a time.
  let url = `/api/changes?subscriptionId=${encodeURIComponent(state.selected)}&top=1000`;
  const changes = [];
  for (let pages = 0; url && pages < MAX_CHANGE_PAGES; pages++) {
    const page = await api("GET", url);
    changes.push(...page.value);
    url = sameOrigin(page.nextLink);
  }
  state.changes = changes.reverse();
  state.shown = 0;
  drawStrip(state.changes, Date.now());
  $("#changes tbody").replaceChildren();
  showMoreChanges();
}

const SVG = "http://www.w3.org/2000/svg";
const HOURS = 48;

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

// A bar per hour of the last 48, built with DOM calls (the CSP allows no inline markup or style).
function drawStrip(changes, now) {
  const counts = new Array(HOURS).fill(0);
  for (const change of changes) {
    const hoursAgo = Math.floor((now - Date.parse(change.time)) / 3600000);
    if (hoursAgo >= 0 && hoursAgo < HOURS) counts[HOURS - 1 - hoursAgo] += 1;
  }
  const most = Math.max(1, ...counts);
  const width = 6, height = 40;
  const chart = svg("svg", { width: HOURS * width, height, role: "img", viewBox: `0 0 ${HOURS * width} ${height}` });
  const total = counts.reduce((a, b) => a + b, 0);
  chart.append(svg("title", {}));
  chart.firstChild.textContent = `${total} change(s) in the last ${HOURS} hours`;
  counts.forEach((count, hour) => {
    const barHeight = count ? Math.max(2, Math.round((count / most) * height)) : 0;
    const bar = svg("rect", { x: hour * width, y: height - barHeight, width: width - 1, height: barHeight, fill: "#0b5cad" });
    bar.dataset.count = count;
    const tip = svg("title", {});
    tip.textContent = `${count} change(s), ${HOURS - hour} hour(s) ago`;
    bar.append(tip);
    chart.append(bar);
  });
  $("#strip").replaceChildren(chart);
  const peak = Math.max(...counts);
  $("#strip-caption").textContent = `Changes per hour, the last ${HOURS} hours: ${total} in all, at most ${peak} in an hour`;
}

function showMoreChanges() {
  const body = $("#changes tbody");
  const next = state.changes.slice(state.shown, state.shown + CHANGES_PER_PAGE);
  for (const change of next) {
    const title = change.fields && typeof change.fields.Title === "string" ? change.fields.Title : "";
    const numbered = change.itemId != null ? `item ${change.itemId}` : "";
    const item = change.fileName || change.subject || (title ? `${title} (${numbered})` : numbered);
    const note = change.changeType === "resync" ? change.reason : (change.resync ? "rebuilt by a resync" : "");
    const tr = row([when(change.time), change.changeType, item, fieldsMoved(change), author(change), note]);
    if (change.changeType === "resync") tr.className = "resync";
    body.append(tr);
  }
  state.shown += next.length;
  if (!state.changes.length) body.append(row(["No changes yet.", "", "", "", "", ""]));
  $("#more-changes").hidden = state.shown >= state.changes.length;
}

// SharePoint names an app-only caller by its claim, `i:0i.t|ms.sp.ext|{app id}@{tenant}`, in the
// change log, and any app as SharePoint App on the item (changedBySource "item": its last editor).
function author(change) {
  const by = change.changedBy || "";
  const app = /^i:0i\.t\|ms\.sp\.ext\|([^@]+)@/.exec(by);
  const name = app ? `app ${app[1]}` : (by.endsWith("|app@sharepoint") ? "SharePoint App" : by);
  return change.changedBySource === "item" && name ? `${name} (last editor)` : name;
}

function shown(value) {
  if (value == null || value === "") return "(empty)";
  return typeof value === "string" ? value : JSON.stringify(value);
}

// "Status: Draft → Approved", one per followed field that moved; the values alone when the
// earlier ones are not known.
function fieldsMoved(change) {
  if (change.changedFields) {
    return Object.entries(change.changedFields)
      .map(([name, moved]) => `${name}: ${shown(moved.before)} → ${shown(moved.after)}`).join("; ");
  }
  if (change.fields && change.fieldsBeforeUnknown) {
    return Object.entries(change.fields).map(([name, value]) => `${name}: ${shown(value)}`).join("; ");
  }
  return "";
}

async function loadSinks() {
  const { value } = await api("GET", `/api/subscriptions/${state.selected}/sinks`);
  const body = $("#sinks tbody");
  body.replaceChildren();
  for (const sink of value) {
    const actions = document.createElement("span");
    const base = `/api/subscriptions/${state.selected}/sinks/${sink.id}`;
    actions.append(
      button("Send a test", () => attempt(async () => {
        const result = await api("POST", `${base}/test`);
        say(`${result.delivered ? "Delivered" : "Not delivered"}: ${result.detail} in ${result.elapsedMs} ms.`,
          result.delivered ? "info" : "error");
      }), `Send a test message to connector ${sink.id}`),
      sink.state === "disabled"
        ? button("Enable", () => attempt(async () => {
          await api("POST", `${base}/enable`);
          await loadSinks();
          say("Connector enabled: it resumes where it stopped.");
        }), `Enable connector ${sink.id}`)
        : button("Disable", () => attempt(async () => {
          await api("POST", `${base}/disable`);
          await loadSinks();
          say("Connector disabled: its changes are kept until it is enabled.");
        }), `Disable connector ${sink.id}`),
      button("Replay last day", () => attempt(async () => {
        const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
        const result = await api("POST", `${base}/replay`, { since });
        say(`Replaying ${result.rows} change(s) of the last day to this connector.`);
      }), `Send connector ${sink.id} the last day's changes again`),
      button("Remove", () => attempt(async () => {
        await api("DELETE", base);
        await loadSinks();
        say("Connector removed.");
      }), `Remove connector ${sink.id}`),
    );
    const delivery = sink.delivery || {};
    const notes = [sink.state];
    if (sink.disabledReason) notes.push(sink.disabledReason);
    if (delivery.lastDelivery) notes.push(`last: ${delivery.lastDelivery.status} (${delivery.lastDelivery.detail})`);
    if (delivery.owedRows) {
      notes.push(`behind by ${delivery.owedRows}${delivery.owedRowsAtLeast ? "+" : ""} change(s), since ${when(delivery.oldestOwedDateTime)}`);
    } else if (delivery.owedRows === 0) {
      notes.push("up to date");
    }
    if (delivery.failingSince) notes.push(`failing since ${when(delivery.failingSince)}`);
    if (sink.warning) notes.push(sink.warning);
    const ignored = sink.ignoreChangesBy && sink.ignoreChangesBy.length ? `; not by ${sink.ignoreChangesBy.join(", ")}` : "";
    body.append(row([sink.type, sink.url, (sink.changeTypes.join(", ") || "all") + ignored, notes.join(" · "), actions]));
  }
  if (!value.length) body.append(row(["No connectors.", "", "", "", ""]));
}

async function loadPoison() {
  const { value, approximateCount } = await api("GET", "/api/poison");
  const body = $("#poison tbody");
  body.replaceChildren();
  for (const message of value) {
    const first = message.firstFailure ? `${message.firstFailure.reason}` : "no reason recorded";
    const age = message.ageSeconds != null ? `${Math.round(message.ageSeconds / 60)} min` : "—";
    body.append(row([message.subscriptions.join(", "), message.attempts ?? "—", first, age]));
  }
  if (!value.length) body.append(row(["Nothing poisoned.", "", "", ""]));
  $("#replay").disabled = !approximateCount;
}

async function refresh() {
  await loadTenants();
  await loadSubscriptions();
  await loadPoison();
  $("#app").hidden = false;
  say("Connected.");
}

// "a, b,,c " -> ["a", "b", "c"]
function listed(value) {
  return value.split(",").map((name) => name.trim()).filter(Boolean);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#detail-title").setAttribute("tabindex", "-1");
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("#key").value);
    $("#key").value = "";
    attempt(refresh);
  });
  $("#forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    $("#app").hidden = true;
    say("Key forgotten.");
  });
  $("#load-lists").addEventListener("click", () => attempt(async () => {
    const site = $("#site-url").value.trim();
    const tenant = chosenTenant().tenantId;
    const inTenant = tenant ? `&tenantId=${encodeURIComponent(tenant)}` : "";
    const { value } = await api("GET", `/api/sites/lists?siteUrl=${encodeURIComponent(site)}${inTenant}`);
    const pick = $("#list-pick");
    pick.replaceChildren(...value.map((list) => text("option", `${list.title} (${list.kind})`, { value: list.id })));
    pick.disabled = !value.length;
    say(value.length ? `${value.length} list(s) on ${site}.` : `No lists on ${site}.`);
    if (value.length) pick.focus();
  }));
  $("#sharepoint-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const created = await api("POST", "/api/subscriptions", {
        siteUrl: $("#site-url").value.trim(), listId: $("#list-pick").value, ...chosenTenant(),
      });
      await loadSubscriptions();
      say(`Subscribed: ${created.id}.`);
    });
  });
  for (const source of ["graph", "teams"]) {
    $(`#${source}-form`).addEventListener("submit", (event) => {
      event.preventDefault();
      attempt(async () => {
        const created = await api("POST", "/api/subscriptions", {
          source, resource: $(`#${source}-resource`).value.trim(), changeType: $(`#${source}-change`).value.trim(),
          ...chosenTenant(),
        });
        await loadSubscriptions();
        say(`Subscribed: ${created.id}.`);
      });
    });
  }
  $("#sink-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const created = await api("POST", `/api/subscriptions/${state.selected}/sinks`, {
        type: $("#sink-type").value, url: $("#sink-url").value.trim(), changeTypes: listed($("#sink-filter").value),
        ignoreChangesBy: listed($("#sink-ignore").value),
      });
      const secret = $("#secret");
      secret.hidden = !created.secret;
      secret.textContent = created.secret ? `Signing secret (shown once, store it now): ${created.secret}` : "";
      $("#sink-url").value = "";
      await loadSinks();
      say("Connector added.");
    });
  });
  $("#tenant-filter").addEventListener("change", () => attempt(() => loadSubscriptions()));
  $("#more-changes").addEventListener("click", showMoreChanges);
  $("#more-subscriptions").addEventListener("click", () => attempt(() => loadSubscriptions(state.moreSubscriptions)));
  $("#replay").addEventListener("click", () => attempt(async () => {
    const { replayed } = await api("POST", "/api/poison/replay");
    await loadPoison();
    say(`Replayed ${replayed} message(s).`);
  }));
  if (sessionStorage.getItem(KEY)) attempt(refresh);
});
