// The operator's live dashboard. Plain JavaScript, no build step, no third-party code:
// GraphQL over fetch, graphql-transport-ws over WebSocket, charts as inline SVG.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const TOKEN_KEY = "loyalty.dashboard.token";
  const LANG_KEY = "loyalty.dashboard.lang";
  const FEED_MAX = 30;

  const I18N = {
    en: {
      title: "Loyalty dashboard", signIn: "Sign in", tokenLabel: "Dashboard token", signInButton: "Open dashboard",
      kioskHint: "For a wall screen, open /dashboard#token=… and the page signs in by itself.",
      logout: "Sign out", live: "live", offline: "offline", connecting: "connecting…",
      issued: "Issued", redeemed: "Redeemed", expired: "Expired", liability: "Liability",
      redemptionRate: "Redemption rate", thisMonth: "This month", timezone: "Time zone",
      monthlyChart: "Issued, redeemed and expired — last 12 months", feed: "Live activity",
      feedEmpty: "Waiting for activity…", byTier: "Members by tier", topGifts: "Top gifts (12 months)",
      gift: "Gift", redemptions: "Redemptions", points: "Points", partners: "Partner totals (12 months)",
      partner: "Partner", accrued: "Accrued", burned: "Burned", netYuan: "Net ¥",
      vsLastMonth: "vs last month", noPrevious: "no previous month", pointsUnit: "points",
      MORE_REDEMPTION_CHANNELS: "Issuing outruns redeeming: add redemption channels",
      MORE_STOCK: "Redeeming outruns issuing: add gift stock", BALANCED: "Balanced",
      badToken: "This token is not valid (expired or mistyped).",
      notDashboard: "This token may not read the dashboard (needs the dashboard or admin role).",
      unreachable: "The gateway cannot be reached.",
      kinds: {
        PURCHASE: "Purchase", CHECK_IN: "Check-in", REFERRAL: "Referral", BEHAVIOUR: "Behaviour", GRANT: "Grant",
        ADJUSTMENT: "Adjustment", RELEASE: "Released", EXPIRE: "Expired", REFUND: "Refund", DEDUCTION: "Checkout deduction",
        DEDUCTION_RETURN: "Deduction returned", REDEMPTION: "Gift redeemed", REDEMPTION_CANCEL: "Redemption cancelled",
        PARTNER_ACCRUE: "Partner accrual", PARTNER_BURN: "Partner burn", PARTNER_REVERSE: "Partner reversal",
        PARTNER_CONVERT_IN: "Converted in", PARTNER_CONVERT_OUT: "Converted out", CAMPAIGN: "Campaign bonus",
      },
    },
    "zh-CN": {
      title: "会员积分看板", signIn: "登录", tokenLabel: "看板令牌", signInButton: "打开看板",
      kioskHint: "大屏使用：打开 /dashboard#token=… 即可自动登录。",
      logout: "退出", live: "实时", offline: "离线", connecting: "连接中…",
      issued: "发放积分", redeemed: "消耗积分", expired: "过期积分", liability: "积分负债",
      redemptionRate: "兑换率", thisMonth: "本月", timezone: "时区",
      monthlyChart: "近 12 个月发放、消耗与过期", feed: "实时动态",
      feedEmpty: "等待新的积分动态…", byTier: "各等级会员数", topGifts: "热门礼品（近 12 个月）",
      gift: "礼品", redemptions: "兑换次数", points: "积分", partners: "合作商户汇总（近 12 个月）",
      partner: "商户", accrued: "发放", burned: "消耗", netYuan: "净结算 ¥",
      vsLastMonth: "环比上月", noPrevious: "上月无数据", pointsUnit: "积分",
      MORE_REDEMPTION_CHANNELS: "发放多于消耗：建议增加兑换渠道",
      MORE_STOCK: "消耗多于发放：建议增加礼品库存", BALANCED: "健康",
      badToken: "令牌无效（已过期或输入有误）。",
      notDashboard: "此令牌无权查看看板（需要看板或管理员角色）。",
      unreachable: "无法连接网关。",
      kinds: {
        PURCHASE: "购物", CHECK_IN: "签到", REFERRAL: "推荐", BEHAVIOUR: "互动", GRANT: "赠送",
        ADJUSTMENT: "调整", RELEASE: "解冻", EXPIRE: "过期", REFUND: "退款扣回", DEDUCTION: "积分抵扣",
        DEDUCTION_RETURN: "抵扣退回", REDEMPTION: "兑换礼品", REDEMPTION_CANCEL: "取消兑换",
        PARTNER_ACCRUE: "商户发放", PARTNER_BURN: "商户消耗", PARTNER_REVERSE: "商户冲正",
        PARTNER_CONVERT_IN: "转入", PARTNER_CONVERT_OUT: "转出", CAMPAIGN: "活动奖励",
      },
    },
  };

  const DASHBOARD = `query Dashboard($from: Date!, $to: Date!) {
    pointsAnalytics(from: $from, to: $to) {
      months { month issued redeemed expired issuedGrowth redeemedGrowth expiredGrowth }
      liability { points amountFen }
      health { redemptionRate advice }
    }
    memberAnalytics(from: $to, to: $to) { byTier { tier { code name } members } }
    topGifts(from: $from, to: $to, first: 8) { gift { id name } redemptions points }
    partnerAnalytics(from: $from, to: $to) { partner { id name } accrued burned netFen }
  }`;
  const SETTINGS = "query { analyticsSettings { timezone today } }";
  const ACTIVITY = "subscription { pointsActivity { id kind points createdAt } }";
  const UPDATES = "subscription { analyticsUpdated { entries } }";

  const state = { token: null, lang: "en", data: null, settings: null, socket: null, retry: 0, loading: false, again: false };
  const $ = (id) => document.getElementById(id);
  const t = (key) => I18N[state.lang][key] ?? I18N.en[key] ?? key;

  // --- language ---------------------------------------------------------------------------
  function setLang(lang) {
    state.lang = I18N[lang] ? lang : "en";
    try { localStorage.setItem(LANG_KEY, state.lang); } catch (e) { /* private mode */ }
    document.documentElement.lang = state.lang;
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    $("lang-en").setAttribute("aria-pressed", String(state.lang === "en"));
    $("lang-zh").setAttribute("aria-pressed", String(state.lang === "zh-CN"));
    setStatus($("status").dataset.state);
    if (state.data) render();
  }

  const fmt = (n) => new Intl.NumberFormat(state.lang).format(n);
  const yuan = (fen) => new Intl.NumberFormat(state.lang, { style: "currency", currency: "CNY" }).format(fen / 100);
  const pct = (x) => (x === null || x === undefined ? "–" : new Intl.NumberFormat(state.lang, { style: "percent", maximumFractionDigits: 1 }).format(x));

  // --- GraphQL over HTTP --------------------------------------------------------------------
  class GraphQLError extends Error {
    constructor(code, message) { super(message); this.code = code; }
  }

  async function gql(query, variables) {
    let response;
    try {
      response = await fetch("/graphql", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: `Bearer ${state.token}` },
        body: JSON.stringify({ query, variables: variables || {} }),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (e) {
      throw new GraphQLError("UNREACHABLE", t("unreachable"));
    }
    const body = await response.json();
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      throw new GraphQLError((first.extensions && first.extensions.code) || "ERROR", first.message);
    }
    return body.data;
  }

  function explain(error) {
    if (error.code === "UNAUTHENTICATED") return t("badToken");
    if (error.code === "FORBIDDEN") return t("notDashboard");
    if (error.code === "UNREACHABLE") return t("unreachable");
    return error.message;
  }

  // --- sign in ------------------------------------------------------------------------------
  function tokenFromFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const token = params.get("token");
    if (token) history.replaceState(null, "", location.pathname + location.search); // keep it out of history
    return token;
  }

  async function signIn(token) {
    state.token = token;
    const error = $("login-error");
    error.hidden = true;
    try {
      state.settings = (await gql(SETTINGS)).analyticsSettings;
    } catch (e) {
      state.token = null;
      error.textContent = explain(e);
      error.hidden = false;
      showLogin();
      return false;
    }
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode */ }
    $("login-view").hidden = true;
    $("dashboard-view").hidden = false;
    $("logout").hidden = false;
    await refresh();
    connect();
    return true;
  }

  function showLogin() {
    $("login-view").hidden = false;
    $("dashboard-view").hidden = true;
    $("logout").hidden = true;
  }

  function signOut() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ }
    state.token = null;
    state.data = null;
    if (state.socket) { state.socket.onclose = null; state.socket.close(1000); state.socket = null; }
    setStatus("offline");
    $("feed").replaceChildren();
    showLogin();
  }

  // --- data ---------------------------------------------------------------------------------
  function range() {
    const [y, m] = state.settings.today.split("-").map(Number);
    const start = new Date(Date.UTC(y, m - 1 - 11, 1));
    const from = `${start.getUTCFullYear()}-${String(start.getUTCMonth() + 1).padStart(2, "0")}-01`;
    return { from, to: state.settings.today };
  }

  async function refresh() {
    if (state.loading) { state.again = true; return; }
    state.loading = true;
    try {
      state.settings = (await gql(SETTINGS)).analyticsSettings;
      state.data = await gql(DASHBOARD, range());
      $("load-error").hidden = true;
      render();
    } catch (e) {
      $("load-error").textContent = explain(e);
      $("load-error").hidden = false;
      if (e.code === "UNAUTHENTICATED") signOut();
    } finally {
      state.loading = false;
      if (state.again) { state.again = false; refresh(); }
    }
  }

  // --- rendering ----------------------------------------------------------------------------
  function growthText(el, rate) {
    el.classList.remove("up", "down");
    if (rate === null || rate === undefined) { el.textContent = t("noPrevious"); return; }
    el.classList.add(rate >= 0 ? "up" : "down");
    el.textContent = `${rate >= 0 ? "▲" : "▼"} ${pct(Math.abs(rate))} ${t("vsLastMonth")}`;
  }

  function kpi(name, text) {
    const el = document.querySelector(`[data-kpi="${name}"]`);
    el.textContent = text;
    return el;
  }

  function render() {
    const points = state.data.pointsAnalytics;
    const month = points.months[points.months.length - 1];
    $("month-label").textContent = month.month;
    $("tz-label").textContent = state.settings.timezone;
    for (const name of ["issued", "redeemed", "expired"]) {
      kpi(name, fmt(month[name]));
      growthText(document.querySelector(`[data-growth="${name}"]`), month[`${name}Growth`]);
    }
    kpi("liabilityPoints", `${fmt(points.liability.points)} ${t("pointsUnit")}`);
    kpi("liabilityYuan", yuan(points.liability.amountFen));
    kpi("redemptionRate", pct(points.health.redemptionRate));
    const advice = kpi("advice", t(points.health.advice));
    advice.className = `sub advice-${points.health.advice}`;
    drawChart(points.months);
    drawTiers(state.data.memberAnalytics.byTier);
    fillTable("gifts", state.data.topGifts.map((g) => [g.gift.name, fmt(g.redemptions), fmt(g.points)]));
    fillTable("partners", state.data.partnerAnalytics.map((p) => [p.partner.name, fmt(p.accrued), fmt(p.burned), yuan(p.netFen)]));
    for (const li of $("feed").children) {
      li.querySelector(".kind").textContent = I18N[state.lang].kinds[li.dataset.kind] || li.dataset.kind;
      li.querySelector("time").textContent = clock(li.querySelector("time").dateTime);
    }
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawChart(months) {
    const W = 760, H = 260, left = 56, bottom = 28, top = 10;
    const series = ["issued", "redeemed", "expired"];
    const max = Math.max(1, ...months.flatMap((m) => series.map((s) => Math.max(0, m[s]))));
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": t("monthlyChart") });
    const plotH = H - bottom - top;
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      svg.append(el("line", { x1: left, x2: W, y1: y, y2: y, class: "axis" }));
      svg.append(el("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmt(Math.round((max * i) / 4))));
    }
    const slot = (W - left) / months.length;
    const bar = Math.max(2, (slot - 8) / 3);
    months.forEach((m, i) => {
      series.forEach((s, j) => {
        const value = Math.max(0, m[s]);
        const h = (plotH * value) / max;
        const rect = el("rect", { x: left + i * slot + 4 + j * bar, y: top + plotH - h, width: bar - 1, height: h, class: `bar-${s}` });
        rect.append(el("title", {}, `${m.month} ${t(s)}: ${fmt(m[s])}`));
        svg.append(rect);
      });
      svg.append(el("text", { x: left + i * slot + slot / 2, y: H - 8, "text-anchor": "middle" }, m.month.slice(2)));
    });
    $("chart").replaceChildren(svg);
  }

  function drawTiers(tiers) {
    const W = 400, row = 30, label = 130;
    const max = Math.max(1, ...tiers.map((x) => x.members));
    const svg = el("svg", { viewBox: `0 0 ${W} ${tiers.length * row + 4}`, role: "img", "aria-label": t("byTier"), width: "100%" });
    tiers.forEach((x, i) => {
      const y = i * row + 4;
      svg.append(el("text", { x: 0, y: y + 16 }, x.tier.name));
      svg.append(el("rect", { x: label, y, width: Math.max(1, ((W - label - 60) * x.members) / max), height: row - 10, class: "bar-tier" }));
      svg.append(el("text", { x: W, y: y + 16, "text-anchor": "end", "data-tier": x.tier.code }, fmt(x.members)));
    });
    $("tiers").replaceChildren(svg);
  }

  function fillTable(id, rows) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const cell of cells) { const td = document.createElement("td"); td.textContent = cell; tr.append(td); }
      return tr;
    }));
  }

  const clock = (iso) => new Date(iso).toLocaleTimeString(state.lang, { timeZone: state.settings.timezone });

  function addFeed(event) {
    if (document.querySelector(`#feed li[data-id="${CSS.escape(event.id)}"]`)) return;
    const li = document.createElement("li");
    li.dataset.id = event.id;
    li.dataset.kind = event.kind;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = I18N[state.lang].kinds[event.kind] || event.kind;
    const pts = document.createElement("strong");
    pts.className = event.points >= 0 ? "plus" : "minus";
    pts.textContent = `${event.points >= 0 ? "+" : ""}${fmt(event.points)}`;
    const time = document.createElement("time");
    time.dateTime = event.createdAt;
    time.textContent = clock(event.createdAt);
    li.append(kind, pts, time);
    $("feed").prepend(li);
    while ($("feed").children.length > FEED_MAX) $("feed").lastElementChild.remove();
    $("feed-empty").hidden = true;
  }

  // --- live: graphql-transport-ws -------------------------------------------------------------
  function setStatus(s) {
    const el = $("status");
    el.dataset.state = s;
    el.textContent = t(s);
  }

  function connect() {
    if (!state.token) return;
    setStatus("connecting");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
    const socket = new WebSocket(url, "graphql-transport-ws");
    state.socket = socket;
    socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${state.token}` } }));
    socket.onmessage = (message) => {
      const msg = JSON.parse(message.data);
      if (msg.type === "connection_ack") {
        state.retry = 0;
        socket.send(JSON.stringify({ id: "activity", type: "subscribe", payload: { query: ACTIVITY } }));
        socket.send(JSON.stringify({ id: "updates", type: "subscribe", payload: { query: UPDATES } }));
        setStatus("live");
        refresh(); // whatever happened while disconnected
      } else if (msg.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (msg.type === "next" && msg.id === "activity" && msg.payload.data) {
        addFeed(msg.payload.data.pointsActivity);
      } else if (msg.type === "next" && msg.id === "updates") {
        refresh(); // the server sends at most one update a second
      } else if (msg.type === "error") {
        $("load-error").textContent = msg.payload.map((e) => e.message).join("; ");
        $("load-error").hidden = false;
      }
    };
    socket.onclose = (event) => {
      if (state.socket !== socket) return;
      state.socket = null;
      setStatus("offline");
      if (event.code === 4403 || event.code === 4401) { signOut(); return; }
      const delay = Math.min(30000, 500 * 2 ** state.retry++);
      setTimeout(connect, delay);
    };
  }

  // --- start --------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    let lang = "en";
    try { lang = localStorage.getItem(LANG_KEY) || (navigator.language.startsWith("zh") ? "zh-CN" : "en"); } catch (e) { /* private mode */ }
    setLang(lang);
    $("lang-en").addEventListener("click", () => setLang("en"));
    $("lang-zh").addEventListener("click", () => setLang("zh-CN"));
    $("logout").addEventListener("click", signOut);
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      $("token").value = "";
      if (token) signIn(token);
    });
    window.addEventListener("hashchange", () => { const token = tokenFromFragment(); if (token) signIn(token); });
    let stored = null;
    try { stored = sessionStorage.getItem(TOKEN_KEY); } catch (e) { /* private mode */ }
    const token = tokenFromFragment() || stored;
    if (token) signIn(token); else showLogin();
  });
})();
