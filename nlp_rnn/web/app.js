// nlp-rnn playground: the page behind `nlp-rnn serve`. Plain JS, no dependencies, no build step.
// Untrusted text (model output, user input, server messages) only ever goes in through textContent.
"use strict";

(() => {
  const KEY_STORAGE = "nlp-rnn.api-key";
  const LANG_NAMES = { en: "English", es: "Spanish" };
  const WORD_TAIL = /[\p{L}\p{N}'’]*$/u; // the word being typed, as nlp_rnn.sampling.is_word_char sees it
  const WORD_CHARS = /^[\p{L}\p{N}'’]+$/u;
  const TABS = ["translate", "generate", "complete", "classify"];
  let initialTab = location.hash.slice(1); // classify can only be selected once the models are known

  const $ = (id) => document.getElementById(id);
  const langName = (code) => LANG_NAMES[code] || code;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    node.append(...children);
    return node;
  }

  // ------------------------------------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(message, status = 0, retryAfter = null) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  /** A value typed into a control is out of range; `input` gets the focus. */
  class InputError extends Error {
    constructor(message, input) {
      super(message);
      this.name = "InputError";
      this.input = input;
    }
  }

  function apiKey() {
    try { return sessionStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
  }

  function requestHeaders(hasBody, accept) {
    const h = { Accept: accept || "application/json" };
    if (hasBody) h["Content-Type"] = "application/json";
    const key = apiKey();
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  /** fetch() a path relative to the page; any non-2xx answer becomes an ApiError carrying the server's message. */
  async function request(path, body, { signal, accept } = {}) {
    let resp;
    try {
      resp = await fetch(path, {
        method: body === undefined ? "GET" : "POST",
        headers: requestHeaders(body !== undefined, accept),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError("cannot reach the server (" + err.message + ")");
    }
    if (!resp.ok) throw await errorFrom(resp);
    return resp;
  }

  async function getJSON(path, body, opts) {
    const resp = await request(path, body, opts);
    try { return await resp.json(); } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError("the server sent something that is not JSON", resp.status);
    }
  }

  async function errorFrom(resp) {
    const text = await resp.text().catch(() => "");
    let message = "";
    try {
      const data = JSON.parse(text);
      message = (data && data.error && data.error.message) || (data && (data.detail || data.message)) || "";
      if (typeof message !== "string") message = JSON.stringify(message);
    } catch {
      message = text.trim().slice(0, 300);
    }
    return new ApiError(message || resp.statusText || "request failed", resp.status,
                        parseRetryAfter(resp.headers.get("Retry-After")));
  }

  function parseRetryAfter(value) {
    if (!value) return null;
    const seconds = Number(value.trim());
    if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
    const when = Date.parse(value); // Retry-After may also be an HTTP date
    return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
  }

  /** Server-Sent Events from a fetch() body: yields {event, data} (EventSource cannot POST). */
  async function* sseEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = "", event = "", data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buf += decoder.decode(value || new Uint8Array(), { stream: !done });
        for (;;) {
          const m = /\r\n|\n|\r/.exec(buf);
          // a lone \r at the end may be the first half of \r\n: wait for the next chunk
          if (!m || (m[0] === "\r" && m.index === buf.length - 1 && !done)) break;
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          if (line === "") {
            if (data.length || event) yield { event: event || "message", data: data.join("\n") };
            event = "";
            data = [];
            continue;
          }
          if (line.startsWith(":")) continue; // comment / keep-alive
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "data") data.push(val);
          else if (field === "event") event = val;
        }
        if (done) {
          if (data.length) yield { event: event || "message", data: data.join("\n") };
          return;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function parseData(raw) {
    try { return JSON.parse(raw); } catch { return null; }
  }

  // ------------------------------------------------------------------------------------------------ messages

  let errorContext = null;

  function describe(err) {
    if (err instanceof InputError) return err.message;
    if (err instanceof ApiError) {
      if (err.status === 503 && err.retryAfter !== null) return `server busy, retry in ${err.retryAfter} s`;
      if (err.status === 401) return `${err.message} (HTTP 401). Enter an API key in the form at the top of the page.`;
      return err.status ? `${err.message} (HTTP ${err.status})` : err.message;
    }
    return "unexpected error: " + ((err && err.message) || String(err));
  }

  function showError(err, context) {
    if (err && err.name === "AbortError") return;
    if (err instanceof ApiError && err.status === 401) askForKey();
    if (err instanceof InputError && err.input) {
      err.input.setAttribute("aria-invalid", "true");
      err.input.focus();
    }
    errorContext = context;
    const box = $("error");
    box.textContent = "";
    box.append(el("strong", { text: context + ": " }), describe(err));
  }

  /** Clear the error box; with a context, only if the error shown came from that context. */
  function clearError(context) {
    if (context && errorContext !== context) return;
    $("error").textContent = "";
    errorContext = null;
  }

  function announce(text) {
    const s = $("status");
    s.textContent = "";
    s.textContent = text;
  }

  function fmtSeconds(s) {
    if (typeof s !== "number" || !Number.isFinite(s)) return "";
    return s < 1 ? `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms` : `${s.toFixed(2)} s`;
  }

  function pct(p) {
    if (typeof p !== "number" || !Number.isFinite(p)) return "";
    const v = p * 100;
    return v >= 10 || v === 0 ? `${Math.round(v)}%` : v >= 1 ? `${v.toFixed(1)}%` : "<1%";
  }

  /** A number from a control, checked against its min/max (and integer when step is 1). */
  function readNumber(input, name, { optional = false } = {}) {
    input.removeAttribute("aria-invalid");
    const raw = input.value.trim();
    if (raw === "" && optional) return null;
    const n = Number(raw);
    const min = input.min === "" ? -Infinity : Number(input.min);
    const max = input.max === "" ? Infinity : Number(input.max);
    const integer = input.step === "1";
    if (raw === "" || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      const range = max === Infinity ? `at least ${min}` : `between ${min} and ${max}`;
      throw new InputError(`${name} must be ${integer ? "a whole number " : "a number "}${range}.`, input);
    }
    return n;
  }

  function ctrlEnterSubmits(textarea, form) {
    textarea.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
  }

  // ------------------------------------------------------------------------------------------------ API key

  function askForKey() {
    const form = $("auth");
    $("auth-reason").textContent = apiKey()
      ? "The server refused the saved API key. Enter another one."
      : "This server asks for an API key.";
    form.hidden = false;
    $("auth-toggle").hidden = false;
    $("auth-toggle").setAttribute("aria-expanded", "true");
  }

  function setupAuth() {
    const form = $("auth"), toggle = $("auth-toggle");
    if (apiKey()) toggle.hidden = false;
    toggle.setAttribute("aria-expanded", "false");
    toggle.setAttribute("aria-controls", "auth");
    toggle.addEventListener("click", () => {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) $("auth-key").focus();
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("auth-key").value.trim();
      if (!key) {
        showError(new InputError("type the key first.", $("auth-key")), "API key");
        return;
      }
      try { sessionStorage.setItem(KEY_STORAGE, key); } catch {
        showError(new ApiError("this browser does not allow sessionStorage; the key cannot be kept"), "API key");
        return;
      }
      $("auth-key").value = "";
      form.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      clearError();
      announce("API key saved for this tab.");
      loadModels();
    });
    $("auth-forget").addEventListener("click", () => {
      try { sessionStorage.removeItem(KEY_STORAGE); } catch { /* nothing stored */ }
      $("auth-key").value = "";
      announce("API key forgotten.");
    });
  }

  // ------------------------------------------------------------------------------------------------ tabs

  function visibleTabs() {
    return TABS.map((t) => $("tab-" + t)).filter((b) => !b.hidden);
  }

  function selectTab(name, focus = false) {
    if (!TABS.includes(name) || $("tab-" + name).hidden) name = "translate";
    for (const t of TABS) {
      const on = t === name;
      const tab = $("tab-" + t);
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      $("panel-" + t).hidden = !on;
    }
    if (focus) $("tab-" + name).focus();
    if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  }

  function setupTabs() {
    for (const t of TABS) $("tab-" + t).addEventListener("click", () => { initialTab = null; selectTab(t); });
    document.querySelector('[role="tablist"]').addEventListener("keydown", (e) => {
      const tabs = visibleTabs();
      const i = tabs.indexOf(document.activeElement);
      if (i < 0) return;
      let j = null;
      if (e.key === "ArrowRight") j = (i + 1) % tabs.length;
      else if (e.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
      else if (e.key === "Home") j = 0;
      else if (e.key === "End") j = tabs.length - 1;
      if (j === null) return;
      e.preventDefault();
      initialTab = null;
      selectTab(tabs[j].id.slice(4), true);
    });
    selectTab(location.hash.slice(1));
  }

  // ------------------------------------------------------------------------------------------------ models

  const models = { mt: [], lm: [], clf: [] };

  function fillSelect(select, options, keep) {
    const previous = keep ? select.value : null;
    select.replaceChildren(...options.map(([value, label]) => el("option", { value, text: label })));
    if (previous !== null && options.some(([v]) => v === previous)) select.value = previous;
  }

  function applyModels(list) {
    models.mt = list.filter((m) => m.kind === "mt" && m.src && m.tgt);
    models.lm = list.filter((m) => m.kind === "lm" && m.lang);
    models.clf = list.filter((m) => m.kind === "clf");

    const pairs = models.mt.map((m) => [`${m.src}|${m.tgt}`, `${langName(m.src)} → ${langName(m.tgt)}`]);
    fillSelect($("translate-direction"),
               pairs.length ? [...pairs, ["auto", "Detect language"]] : [["", "No translation model"]], true);
    $("translate-button").disabled = !pairs.length;
    updateSwap();

    const langs = [...new Set(models.lm.map((m) => m.lang))];
    fillSelect($("generate-lang"), langs.length ? langs.map((l) => [l, langName(l)]) : [["", "No language model"]], true);
    $("generate-start").disabled = !langs.length;
    fillSelect($("complete-lang"), [["", "Detect"], ...langs.map((l) => [l, langName(l)])], true);

    $("tab-classify").hidden = !models.clf.length;
    if (!models.clf.length && $("tab-classify").getAttribute("aria-selected") === "true") selectTab("translate");
    else if (models.clf.length && initialTab === "classify") selectTab("classify");
    initialTab = null;

    $("model-summary").textContent = list.length
      ? `Models: ${list.map((m) => m.name).join(", ")}.`
      : "The server lists no models.";
  }

  async function loadModels() {
    $("server-status").textContent = "Connecting…";
    try {
      const data = await getJSON("v1/models");
      const list = Array.isArray(data && data.models) ? data.models : [];
      applyModels(list);
      $("server-status").textContent = `Ready · ${list.length} model${list.length === 1 ? "" : "s"}`;
      clearError("Loading models");
    } catch (err) {
      $("server-status").textContent = "Models unavailable";
      // keep the page usable with the shipped pairs; the server will say if they are missing
      if (!models.mt.length && !models.lm.length) {
        applyModels([
          { name: "mt-en-es", kind: "mt", src: "en", tgt: "es" }, { name: "mt-es-en", kind: "mt", src: "es", tgt: "en" },
          { name: "lm-en", kind: "lm", lang: "en" }, { name: "lm-es", kind: "lm", lang: "es" },
        ]);
        $("model-summary").textContent = "";
      }
      showError(err, "Loading models");
    }
  }

  // ------------------------------------------------------------------------------------------------ translate

  let lastDetected = null; // "src|tgt" the server guessed for the last "auto" translation

  function currentPair() {
    const v = $("translate-direction").value;
    return v === "auto" ? lastDetected : v || null;
  }

  function reversePair(pair) {
    if (!pair) return null;
    const [s, t] = pair.split("|");
    const rev = `${t}|${s}`;
    return models.mt.some((m) => `${m.src}|${m.tgt}` === rev) ? rev : null;
  }

  function updateSwap() {
    $("translate-swap").disabled = !reversePair(currentPair());
  }

  function swapDirection() {
    const rev = reversePair(currentPair());
    if (!rev) return;
    $("translate-direction").value = rev;
    const best = $("translate-output").textContent;
    if (best.trim()) $("translate-input").value = best; // translate back what came out
    updateSwap();
    announce(`Direction: ${$("translate-direction").selectedOptions[0].textContent}`);
  }

  function syncNbestMax() {
    const beam = Number($("translate-beam").value);
    const nbest = $("translate-nbest");
    if (Number.isInteger(beam) && beam >= 1 && beam <= 10) {
      nbest.max = String(beam);
      if (Number(nbest.value) > beam) nbest.value = String(beam);
    }
  }

  function tokenLabel(tok) {
    const s = String(tok).replace(/▁/g, " ").trim(); // SentencePiece's word-start mark
    return s || "␣";
  }

  /** The attention matrix as a table: one row per target token, one column per source token, shaded by weight. */
  function heatmap(att, pairText, index, total) {
    const src = Array.isArray(att.source_tokens) ? att.source_tokens : [];
    const tgt = Array.isArray(att.target_tokens) ? att.target_tokens : [];
    const weights = Array.isArray(att.weights) ? att.weights : [];
    const figure = el("figure", { class: "heatmap" });
    const cap = el("figcaption", { class: "pair" },
                   el("span", { class: "pair-src", text: pairText[0] }), " → ",
                   el("span", { class: "pair-tgt", text: pairText[1] }));
    const table = el("table");
    const legend = "Rows are target tokens, columns are source tokens; a darker cell means more attention.";
    const caption = table.createCaption();
    caption.className = "sr-only"; // the visible legend sits outside the scrolling box
    caption.textContent = `Attention${total > 1 ? ` for sentence ${index + 1}` : ""}. ${legend}`;
    const headRow = el("tr", {}, el("td", { class: "corner", "aria-hidden": "true" }));
    for (const s of src) {
      headRow.append(el("th", { scope: "col", title: String(s) }, el("span", { text: tokenLabel(s) })));
    }
    const body = el("tbody");
    tgt.forEach((t, r) => {
      const row = Array.isArray(weights[r]) ? weights[r] : [];
      const nums = src.map((_, c) => {
        const w = Number(row[c]);
        return Number.isFinite(w) ? Math.min(1, Math.max(0, w)) : 0;
      });
      const top = nums.length ? nums.indexOf(Math.max(...nums)) : -1;
      const tr = el("tr", {}, el("th", { scope: "row", title: String(t), text: tokenLabel(t) }));
      nums.forEach((w, c) => {
        const text = `${tokenLabel(t)} ← ${tokenLabel(src[c])}: ${w.toFixed(2)}`;
        const td = el("td", { title: text, class: c === top ? "max" : "" }, el("span", { class: "sr-only", text: w.toFixed(2) }));
        td.style.setProperty("--w", w.toFixed(3));
        tr.append(td);
      });
      body.append(tr);
    });
    table.append(el("thead", {}, headRow), body);
    const scroller = el("div", { class: "scroll", tabindex: "0", role: "region",
                                 "aria-label": `Attention map${total > 1 ? ` ${index + 1}` : ""} (scrolls sideways)` }, table);
    figure.append(cap, scroller, el("p", { class: "legend", "aria-hidden": "true", text: legend }));
    return figure;
  }

  function renderTranslation(data, pair) {
    const list = Array.isArray(data.translations) ? data.translations : null;
    if (!list) throw new ApiError("the answer has no translations");
    $("translate-output").textContent = list.map((t) => t.translation).join("\n");

    const nb = $("nbest-list");
    nb.replaceChildren();
    const itemsFor = (t) => (Array.isArray(t.n_best) && t.n_best.length ? t.n_best : [{ text: t.translation, score: t.score }])
      .map((h) => el("li", { class: "nbest-item" },
                     el("span", { class: "nbest-text", text: h.text }),
                     el("span", { class: "score", text: typeof h.score === "number" ? h.score.toFixed(2) : "" })));
    if (list.length === 1) nb.append(...itemsFor(list[0]));
    else list.forEach((t, i) => nb.append(el("li", { class: "nbest-group" },
                                                el("span", { class: "nbest-source", text: `${i + 1}. ${t.source}` }),
                                                el("ol", {}, ...itemsFor(t)))));

    const maps = $("attention-heatmap");
    maps.replaceChildren();
    list.forEach((t, i) => {
      if (t.attention && Array.isArray(t.attention.weights)) {
        maps.append(heatmap(t.attention, [t.source, t.translation], i, list.length));
      }
    });
    if (!maps.childElementCount && $("translate-attention").checked) {
      maps.append(el("p", { class: "meta", text: "No attention weights in the answer (a model without attention?)." }));
    }

    const detected = data.src && data.tgt ? `${data.src}|${data.tgt}` : null;
    if (pair === "auto") lastDetected = detected;
    const shown = pair === "auto" ? detected : pair;
    const dir = shown ? shown.split("|").map(langName).join(" → ") : "";
    $("translate-meta").textContent = [data.model, pair === "auto" && dir ? `detected ${dir}` : dir,
                                       fmtSeconds(data.seconds)].filter(Boolean).join(" · ");
    updateSwap();
  }

  function setupTranslate() {
    const form = $("translate-form"), button = $("translate-button");
    let busy = false;
    $("translate-beam").addEventListener("input", syncNbestMax);
    $("translate-direction").addEventListener("change", () => { lastDetected = null; updateSwap(); });
    $("translate-swap").addEventListener("click", swapDirection);
    ctrlEnterSubmits($("translate-input"), form);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (busy || button.disabled) return;
      clearError();
      let body, pair;
      try {
        const text = $("translate-input").value;
        if (!text.trim()) throw new InputError("type something to translate.", $("translate-input"));
        const beam = readNumber($("translate-beam"), "Beam");
        const nBest = readNumber($("translate-nbest"), "N-best");
        if (nBest > beam) throw new InputError("N-best cannot be larger than the beam.", $("translate-nbest"));
        pair = $("translate-direction").value;
        body = { text, beam, n_best: nBest, attention: $("translate-attention").checked };
        if (pair && pair !== "auto") [body.src, body.tgt] = pair.split("|");
      } catch (err) {
        showError(err, "Translate");
        return;
      }
      busy = true;
      button.textContent = "Translating…";
      button.setAttribute("aria-disabled", "true");
      $("panel-translate").setAttribute("aria-busy", "true");
      try {
        renderTranslation(await getJSON("v1/translate", body), pair);
        announce("Translation ready.");
      } catch (err) {
        showError(err, "Translate");
      } finally {
        busy = false;
        button.textContent = "Translate";
        button.removeAttribute("aria-disabled");
        $("panel-translate").setAttribute("aria-busy", "false");
      }
    });
  }

  // ------------------------------------------------------------------------------------------------ generate

  function setupGenerate() {
    const form = $("generate-form"), start = $("generate-start"), stop = $("generate-stop");
    const out = $("generate-output"), meta = $("generate-meta"), box = $("generate-box");
    let controller = null;
    ctrlEnterSubmits($("generate-prompt"), form);
    stop.addEventListener("click", () => { if (controller) controller.abort(); });

    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (controller || start.disabled) return;
      clearError();
      let body;
      try {
        body = {
          prompt: $("generate-prompt").value,
          lang: $("generate-lang").value,
          length: readNumber($("generate-length"), "Length"),
          temperature: readNumber($("generate-temperature"), "Temperature"),
          top_k: readNumber($("generate-top-k"), "Top-k", { optional: true }),
          top_p: readNumber($("generate-top-p"), "Top-p", { optional: true }),
          seed: readNumber($("generate-seed"), "Seed", { optional: true }),
          stream: true,
        };
      } catch (err) {
        showError(err, "Generate");
        return;
      }
      controller = new AbortController();
      const mine = controller;
      const node = document.createTextNode("");
      $("generate-echo").textContent = body.prompt;
      out.replaceChildren(node);
      meta.textContent = "Generating…";
      box.setAttribute("aria-busy", "true");
      start.disabled = true;
      stop.disabled = false;
      const t0 = performance.now();
      let chars = 0, done = null;
      const append = (text) => {
        const follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
        node.appendData(text);
        chars += text.length;
        if (follow) box.scrollTop = box.scrollHeight;
      };
      try {
        const resp = await request("v1/generate", body, { signal: mine.signal, accept: "text/event-stream" });
        if (!(resp.headers.get("Content-Type") || "").includes("text/event-stream")) {
          done = await resp.json(); // a server that answers without streaming
          append(String(done.text || ""));
        } else {
          for await (const ev of sseEvents(resp.body)) {
            const data = parseData(ev.data);
            if (ev.event === "done") { done = data || {}; break; }
            if (ev.event === "error") throw new ApiError((data && data.message) || ev.data || "generation failed");
            if (ev.event === "message" && data && typeof data.text === "string") append(data.text);
          }
        }
        if (done) {
          const secs = typeof done.seconds === "number" ? done.seconds : (performance.now() - t0) / 1000;
          const n = typeof done.chars === "number" ? done.chars : chars;
          meta.textContent = `${n} characters in ${fmtSeconds(secs)}` + (secs > 0 ? ` (${Math.round(n / secs)} chars/s)` : "");
          announce("Generation finished.");
        } else {
          meta.textContent = `The stream ended early, after ${chars} characters.`;
          showError(new ApiError("the stream ended before the server said it was done"), "Generate");
        }
      } catch (err) {
        if (err.name === "AbortError") {
          meta.textContent = `Stopped after ${chars} characters.`;
          announce("Generation stopped.");
        } else {
          meta.textContent = `Failed after ${chars} characters.`;
          showError(err, "Generate");
        }
      } finally {
        controller = null;
        box.setAttribute("aria-busy", "false");
        start.disabled = false;
        stop.disabled = true;
      }
    });
  }

  // ------------------------------------------------------------------------------------------------ complete

  function setupComplete() {
    const input = $("complete-input"), box = $("complete-suggestions"), latency = $("complete-latency");
    let seq = 0, timer = 0, announceTimer = 0, inflight = null;
    let shown = null; // {text, completions, next_words}: the suggestions on screen and the text they were made for
    let dismissed = false;

    const partialOf = (text) => WORD_TAIL.exec(text)[0];

    /** `text` with its trailing partial word replaced by `word` (a completion holds the whole word). */
    function replacePartial(text, word) {
      let partial = partialOf(text);
      if (!word.toLowerCase().startsWith(partial.toLowerCase())) {
        let k = Math.min(word.length, text.length);
        while (k > 0 && !text.endsWith(word.slice(0, k))) k--;
        partial = text.slice(text.length - k);
      }
      return text.slice(0, text.length - partial.length) + word;
    }

    /** The first completion, if the suggestions on screen still fit what is in the box now. */
    function firstUsable() {
      if (!shown || dismissed || !shown.completions.length) return null;
      const first = String(shown.completions[0].text);
      const now = input.value;
      if (now === shown.text) return first;
      const added = now.slice(shown.text.length);
      if (now.startsWith(shown.text) && WORD_CHARS.test(added) &&
          first.toLowerCase().startsWith(partialOf(now).toLowerCase())) return first;
      return null;
    }

    function accept(kind, word) {
      let text = input.value;
      if (kind === "completion") text = replacePartial(text, word) + " ";
      else {
        const best = shown && shown.completions.length ? String(shown.completions[0].text) : "";
        if (best) text = replacePartial(text, best) + " "; // next words follow the best completion
        else if (text && !/\s$/.test(text)) text += " ";
        text += word + " ";
      }
      input.value = text;
      input.focus();
      input.setSelectionRange(text.length, text.length);
      schedule(0);
    }

    function chip(kind, item, first) {
      const word = String(item.text);
      const b = el("button", { type: "button", class: "suggestion" + (first ? " first" : ""), "data-kind": kind,
                               "data-text": word, "aria-label": `${word}, ${pct(item.prob)}` },
                   el("span", { class: "word", text: word }), el("span", { class: "prob", text: pct(item.prob) }));
      if (first) b.append(el("kbd", { class: "key", "aria-hidden": "true", text: "Tab" }));
      b.addEventListener("click", () => accept(kind, word));
      return b;
    }

    function render(data, text) {
      const completions = Array.isArray(data.completions) ? data.completions : [];
      const next = Array.isArray(data.next_words) ? data.next_words : [];
      shown = { text, completions, next_words: next };
      dismissed = false;
      box.classList.remove("stale", "dismissed");
      box.replaceChildren();
      if (completions.length) {
        box.append(el("div", { class: "group", role: "group", "aria-label": "Completions" },
                      el("span", { class: "group-label", text: "Complete" }),
                      ...completions.map((c, i) => chip("completion", c, i === 0))));
      }
      if (next.length) {
        const after = completions.length ? ` after “${completions[0].text}”` : "";
        box.append(el("div", { class: "group", role: "group", "aria-label": `Next words${after}` },
                      el("span", { class: "group-label", text: `Next${after}` }),
                      ...next.map((c) => chip("next", c, false))));
      }
      if (!completions.length && !next.length) box.append(el("p", { class: "meta", text: "No suggestions." }));
      clearTimeout(announceTimer);
      announceTimer = setTimeout(() => {
        if (document.activeElement !== input || input.value !== text) return;
        const words = completions.map((c) => `${c.text} ${pct(c.prob)}`).join(", ");
        $("complete-announce").textContent = words ? `Completions: ${words}. Tab accepts ${completions[0].text}.` : "";
      }, 900);
    }

    function clearSuggestions() {
      shown = null;
      box.replaceChildren();
      latency.textContent = "";
    }

    async function fetchSuggestions() {
      const text = input.value;
      const id = ++seq;
      if (inflight) inflight.abort(); // its answer would be dropped anyway
      inflight = null;
      if (!text.trim()) { clearSuggestions(); return; }
      let body;
      try {
        body = { text, lang: $("complete-lang").value || null, k: readNumber($("complete-k"), "Suggestions") };
      } catch (err) {
        showError(err, "Suggestions");
        return;
      }
      const controller = inflight = new AbortController();
      const t0 = performance.now();
      try {
        const data = await getJSON("v1/complete", body, { signal: controller.signal });
        if (id !== seq) return; // a newer keystroke has its own request
        const ms = performance.now() - t0;
        render(data, text);
        latency.textContent = [`round trip ${Math.round(ms)} ms`,
                               typeof data.seconds === "number" ? `server ${(data.seconds * 1000).toFixed(1)} ms` : "",
                               data.lang ? `language ${langName(data.lang)}` : ""].filter(Boolean).join(" · ");
        clearError("Suggestions");
      } catch (err) {
        if (id === seq) showError(err, "Suggestions");
      } finally {
        if (inflight === controller) inflight = null;
      }
    }

    function schedule(delay) {
      clearTimeout(timer);
      if (shown) box.classList.add("stale");
      timer = setTimeout(fetchSuggestions, delay);
    }

    input.addEventListener("input", () => schedule(40));
    $("complete-lang").addEventListener("change", () => schedule(0));
    $("complete-k").addEventListener("change", () => schedule(0));
    input.addEventListener("keydown", (e) => {
      if (e.isComposing) return;
      if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
        const first = firstUsable();
        if (first !== null) {
          e.preventDefault();
          accept("completion", first);
        }
      } else if (e.key === "Escape" && shown && !dismissed) {
        e.preventDefault();
        dismissed = true; // Tab moves on to the chips instead of accepting
        box.classList.add("dismissed");
      }
    });
  }

  // ------------------------------------------------------------------------------------------------ classify

  function setupClassify() {
    const form = $("classify-form"), button = $("classify-button"), out = $("classify-output");
    let busy = false;
    ctrlEnterSubmits($("classify-input"), form);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (busy) return;
      clearError();
      const text = $("classify-input").value;
      if (!text.trim()) {
        showError(new InputError("type something to classify.", $("classify-input")), "Classify");
        return;
      }
      const labels = models.clf.length && Array.isArray(models.clf[0].labels) ? models.clf[0].labels.length : 0;
      busy = true;
      button.setAttribute("aria-disabled", "true");
      try {
        const data = await getJSON("v1/classify", { text, top: labels ? Math.min(labels, 3) : 3 });
        const top = Array.isArray(data.top) && data.top.length ? data.top : [{ label: data.label, prob: data.prob }];
        out.replaceChildren(
          el("p", { class: "verdict" }, el("strong", { class: "label", text: String(data.label) }), " ",
             el("span", { class: "prob", text: pct(data.prob) })),
          el("ul", { class: "bars" }, ...top.map((t) => {
            const bar = el("span", { class: "bar", "aria-hidden": "true" }, el("span", { class: "fill" }));
            bar.firstChild.style.width = `${Math.max(0, Math.min(1, Number(t.prob) || 0)) * 100}%`;
            return el("li", {}, el("span", { class: "bar-label", text: String(t.label) }), bar,
                      el("span", { class: "bar-value", text: pct(t.prob) }));
          })),
          el("p", { class: "meta", text: data.model ? String(data.model) : "" }));
        announce("Classification ready.");
      } catch (err) {
        showError(err, "Classify");
      } finally {
        busy = false;
        button.removeAttribute("aria-disabled");
      }
    });
  }

  // ------------------------------------------------------------------------------------------------ start

  document.addEventListener("input", (e) => {
    if (e.target.getAttribute && e.target.getAttribute("aria-invalid")) e.target.removeAttribute("aria-invalid");
  });
  setupAuth();
  setupTabs();
  setupTranslate();
  setupGenerate();
  setupComplete();
  setupClassify();
  loadModels();
})();
