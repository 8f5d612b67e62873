// noteloop annotator widget: an ES module that st.components.v2 loads as is (no build step).
//
// How it draws. The note is plain text in text nodes (never HTML), cut into chunks at line
// ends. Spans are boxes positioned *behind* the text from Range rects, so overlapping and
// nested spans never restructure the text: each overlap group gets lanes and the outer
// spans get the larger boxes. Relations are SVG arcs over the text. A change redraws only
// the boxes and arcs of the items it touches; arcs are redrawn in the next animation frame.
//
// Offsets. Python counts code points, JavaScript strings count UTF-16 units: offsets are
// converted when the payload is read and when the state is written, nowhere else.
//
// State. Every change reaches Python as the `annotation` state about a second after the
// last one (each emission reruns the page, which stores it as a draft), and at once when
// the tab is hidden or left. A draft in the payload is replayed when the widget mounts.

const INSTANCES = new WeakMap(); // parentElement -> Annotator
const CHUNK = 1500; // longest text node; long lines are cut after a space
const EMIT_DELAY_MS = 1000; // a burst of changes reaches Python as one state, one rerun
const IDLE_MS = 60000; // the clock stops a minute after the last input
const MODIFIER_KEYS = new Set(["Shift", "Control", "Alt", "Meta", "AltGraph", "CapsLock"]);
const SVG_NS = "http://www.w3.org/2000/svg";
const WORD = /[\p{L}\p{N}\p{M}_]/u;
const SPACE = /\s/;
// Commands that have a letter alias as well; an entity type's hotkey takes the letter.
const ALIASES = { j: "next", k: "prev", a: "accept", x: "reject", u: "undo" };

export default function mountAnnotator(args) {
  const { data, parentElement } = args;
  let widget = INSTANCES.get(parentElement);
  if (widget && widget.payloadId === data.payload_id) {
    widget.connect(args); // same note: Streamlit re-ran the effect, keep the work
  } else {
    if (widget) widget.destroy();
    widget = new Annotator(parentElement, data, args);
    INSTANCES.set(parentElement, widget);
  }
  const mounted = widget;
  return () => {
    if (INSTANCES.get(parentElement) === mounted) {
      mounted.destroy();
      INSTANCES.delete(parentElement);
    }
  };
}

// ------------------------------------------------------------------------------- helpers

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") {
      for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) el.dataset[dk] = dv;
    }
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

function afterPaint(fn) {
  requestAnimationFrame(() => setTimeout(fn, 0));
}

function offsetMaps(text) {
  // Identity unless the text has characters beyond the BMP (emoji, rare CJK).
  if (!/[\uD800-\uDFFF]/.test(text)) return { toU: (i) => i, toCp: (i) => i };
  const u = [];
  let n = 0;
  for (const ch of text) {
    u.push(n);
    n += ch.length;
  }
  u.push(n);
  const cp = new Int32Array(n + 1);
  for (let c = 0; c < u.length - 1; c++) {
    for (let k = u[c]; k < u[c + 1]; k++) cp[k] = c;
  }
  cp[n] = u.length - 1;
  return { toU: (i) => u[i], toCp: (i) => cp[i] };
}

function fmtScore(s) {
  return s >= 1 ? "1.0" : s.toFixed(2).replace(/^0/, "");
}

function fmtTime(sec) {
  const s = Math.floor(sec);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function plural(n, one, many) {
  return n === 1 ? one : many;
}

function undecidedText(n) {
  // Python says the same (components/annotator.py, undecided_message).
  return n === 1
    ? "1 suggestion is still open: reject it and submit, or go back"
    : `${n} suggestions are still open: reject them and submit, or go back`;
}

function overlaps(a, b) {
  return a.start < b.end && b.start < a.end;
}

function sameFrags(f, g) {
  return f.length === g.length && f.every((x, i) => x[0] === g[i][0] && x[1] === g[i][1]);
}

function snapshot(it) {
  if (it.kind === "span") {
    return {
      state: it.state, id: it.id, label: it.label, start: it.start, end: it.end,
      frags: it.frags.map((f) => f.slice()), attrs: { ...it.attrs },
    };
  }
  return { state: it.state, id: it.id, label: it.label, head: it.head, tail: it.tail };
}

// ------------------------------------------------------------------------------- widget

class Annotator {
  constructor(parent, data, args) {
    this.t0 = performance.now();
    this.parent = parent;
    this.shadow = typeof ShadowRoot !== "undefined" && parent instanceof ShadowRoot ? parent : null;
    this.payloadId = data.payload_id;
    this.connect(args);
    this.root = parent.querySelector("#nl-ann");
    if (!this.root) throw new Error("noteloop annotator: the widget's HTML is missing");
    const el = (id) => parent.querySelector(`#nl-ann-${id}`);
    this.el = {
      bar: el("bar"), counts: el("counts"), timer: el("timer"), acceptAll: el("accept-all"),
      undo: el("undo"), submit: el("submit"), labels: el("labels"), panel: el("panel"),
      body: el("body"), boxes: el("boxes"), text: el("text"), arcs: el("arcs"),
      arcLayer: el("arc-layer"), picker: el("picker"), msg: el("msg"), keys: el("keys"),
      confirm: el("confirm"),
    };
    this.range = document.createRange();
    this.listeners = [];
    this.timers = [];
    this.load(data);
    this.build();
    this.listen();
    this.sayReplay();
    this.root.dataset.mountedAt = this.t0.toFixed(1);
    this.root.focus({ preventScroll: true });
    afterPaint(() => {
      const ms = performance.now() - this.t0;
      this.root.dataset.firstRenderMs = ms.toFixed(1);
      this.root.dataset.ready = "1";
      const perf = (window.__noteloopAnnotator = window.__noteloopAnnotator || { updates: [] });
      perf.firstRenderMs = ms;
    });
  }

  connect({ setStateValue, setTriggerValue }) {
    this.setState = setStateValue;
    this.setTrigger = setTriggerValue;
  }

  destroy() {
    for (const [target, type, fn, opts] of this.listeners) target.removeEventListener(type, fn, opts);
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.emitTimer);
    if (this.resizeObserver) this.resizeObserver.disconnect();
    const filled = ["counts", "timer", "labels", "panel", "boxes", "text", "arcLayer", "picker", "msg", "keys"];
    for (const k of [...filled, "confirm"]) {
      this.el[k].replaceChildren();
    }
    this.el.picker.hidden = true;
    this.el.confirm.hidden = true;
    this.destroyed = true;
  }

  on(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    this.listeners.push([target, type, fn, opts]);
  }

  // ----------------------------------------------------------------------------- model

  load(d) {
    this.data = d;
    this.text = d.text || "";
    const maps = offsetMaps(this.text);
    this.toU = maps.toU;
    this.toCp = maps.toCp;
    this.threshold = typeof d.threshold === "number" ? d.threshold : 0.8;
    this.types = new Map(d.entity_types.map((t) => [t.name, t]));
    this.hotkeys = new Map();
    for (const t of d.entity_types) if (t.hotkey) this.hotkeys.set(t.hotkey.toLowerCase(), t.name);
    this.aliases = {};
    for (const [k, cmd] of Object.entries(ALIASES)) if (!this.hotkeys.has(k)) this.aliases[k] = cmd;
    this.relTypes = d.relation_types || [];
    this.attrTypes = d.attributes || [];
    this.items = new Map(); // uid -> span or relation
    this.relsOf = new Map(); // span uid -> Set of relation uids
    this.usedIds = new Set();
    this.seq = 0;
    const goldUid = new Map();
    for (const s of d.spans || []) {
      const it = this.spanItem(s, "gold");
      it.loadedSource = s.source || "manual";
      goldUid.set(s.id, it.uid);
      this.usedIds.add(s.id);
    }
    const suggUid = new Map();
    for (const s of d.suggested_spans || []) {
      const it = this.spanItem(s, "open");
      it.fromSuggestion = true;
      suggUid.set(s.key, it.uid);
    }
    for (const r of d.relations || []) {
      this.relItem(r, "gold", goldUid.get(r.head), goldUid.get(r.tail));
      this.usedIds.add(r.id);
    }
    for (const r of d.suggested_relations || []) {
      const end = (ref) => suggUid.get(ref.key) ?? goldUid.get(ref.span);
      const rel = this.relItem(r, "open", end(r.head), end(r.tail));
      if (rel) rel.fromSuggestion = true;
    }
    this.replay(d.draft);
    this.nextT = this.firstFree("T");
    this.nextR = this.firstFree("R");
    this.order = [...this.items.values()]
      .filter((it) => it.fromSuggestion)
      .sort((a, b) => this.posOf(a) - this.posOf(b) || (a.kind === "span" ? -1 : 1));
    this.selected = null;
    this.pending = null;
    this.undoStack = []; // a replayed draft is where the work starts: nothing to undo
    this.submitted = d.status === "submitted";
    this.dialog = null;
    this.dirty = false;
    this.emittedSeconds = this.draftSeconds;
    this.activeMs = 0;
    this.runningSince = null; // start of the clock's current run, null while it stands
    this.lastInput = -Infinity;
  }

  // ----------------------------------------------------------------------------- drafts

  // Replay a state this widget emitted earlier for the same note (a draft the server kept):
  // its spans, relations and decisions become the current ones, as they were. What no
  // longer fits the note or the schema is left out and counted (`this.leftOut`).
  replay(draft) {
    this.draftSeconds = 0;
    this.leftOut = 0;
    this.replayed = false;
    if (!draft || typeof draft !== "object") return;
    this.replayed = true;
    const secs = draft.seconds;
    if (typeof secs === "number" && Number.isFinite(secs) && secs > 0) this.draftSeconds = secs;
    const spans = Array.isArray(draft.spans) ? draft.spans : [];
    const rels = Array.isArray(draft.relations) ? draft.relations : [];
    for (const x of [...spans, ...rels]) {
      if (x && typeof x.id === "string") this.usedIds.add(x.id); // never handed out again
    }
    const ctx = this.replayIndex();
    const uidOf = new Map(); // draft span id -> item uid
    for (const ds of spans) {
      const uid = this.replaySpan(ds, ctx);
      if (uid) uidOf.set(ds.id, uid);
      else this.leftOut++;
    }
    for (const dr of rels) if (!this.replayRel(dr, ctx, uidOf)) this.leftOut++;
    this.replayDecisions(draft.decisions, ctx);
    // Saved gold that the draft no longer has was deleted.
    for (const it of [...ctx.goldSpans.values(), ...ctx.goldRels.values()]) it.state = "deleted";
  }

  replayIndex() {
    const ctx = {
      goldSpans: new Map(), goldRels: new Map(), suggSpans: new Map(), suggRels: new Map(),
      ids: new Set(), carried: new Set(),
    };
    for (const it of this.items.values()) {
      if (it.state === "gold") (it.kind === "span" ? ctx.goldSpans : ctx.goldRels).set(it.id, it);
      else if (it.sid !== null) (it.kind === "span" ? ctx.suggSpans : ctx.suggRels).set(it.sid, it);
    }
    return ctx;
  }

  // A draft span onto the item it was: an open suggestion it carries, a saved span with its
  // id, or a new one. Returns the item's uid, or null when it no longer fits.
  replaySpan(ds, ctx) {
    const fit = this.fitSpan(ds);
    if (!fit || typeof ds.id !== "string" || !ds.id || ctx.ids.has(ds.id)) return null;
    const sid = Number.isInteger(ds.suggestion_id) ? ds.suggestion_id : null;
    let it = sid !== null ? ctx.suggSpans.get(sid) : undefined;
    if (it) {
      ctx.suggSpans.delete(sid);
      ctx.carried.add(sid);
    } else if (ctx.goldSpans.has(ds.id) && ctx.goldSpans.get(ds.id).sid === sid) {
      it = ctx.goldSpans.get(ds.id);
      ctx.goldSpans.delete(ds.id);
    } else if (sid !== null) {
      return null; // a suggestion this note no longer has
    } else {
      it = this.spanItem({ label: fit.label, fragments: fit.cp }, "gold");
      it.loadedSource = "manual";
    }
    Object.assign(it, {
      state: "gold", id: ds.id, label: fit.label, frags: fit.frags, start: fit.frags[0][0],
      end: fit.frags[fit.frags.length - 1][1], attrs: fit.attrs,
      concept: typeof ds.concept === "string" ? ds.concept : "",
      notes: Array.isArray(ds.notes) ? ds.notes : [],
    });
    ctx.ids.add(ds.id);
    this.leftOut += fit.dropped;
    return it.uid;
  }

  // A draft span's label, fragments (UTF-16) and attributes, checked against the text and
  // the schema; null when it cannot be shown. Attributes the schema lost are `dropped`.
  fitSpan(ds) {
    if (!ds || typeof ds !== "object" || !this.types.has(ds.label)) return null;
    const raw = Array.isArray(ds.fragments) && ds.fragments.length ? ds.fragments : [[ds.start, ds.end]];
    const n = this.toCp(this.text.length);
    const frags = [];
    let prev = 0;
    for (const f of raw) {
      if (!Array.isArray(f) || !Number.isInteger(f[0]) || !Number.isInteger(f[1])) return null;
      if (f[0] < prev || f[1] <= f[0] || f[1] > n) return null;
      frags.push([this.toU(f[0]), this.toU(f[1])]);
      prev = f[1];
    }
    const cp = raw.map((f) => [f[0], f[1]]);
    const attrs = {};
    let dropped = 0;
    const given = ds.attributes && typeof ds.attributes === "object" ? ds.attributes : {};
    for (const [name, value] of Object.entries(given)) {
      const at = this.attrTypes.find((a) => a.name === name);
      const ok = at && (at.values && at.values.length ? at.values.includes(value) : value === "true");
      if (ok) attrs[name] = value;
      else dropped++;
    }
    return { label: ds.label, frags, cp, attrs, dropped };
  }

  replayRel(dr, ctx, uidOf) {
    if (!dr || typeof dr.id !== "string" || !dr.id || ctx.ids.has(dr.id)) return false;
    const head = uidOf.get(dr.head);
    const tail = uidOf.get(dr.tail);
    if (!head || !tail) return false;
    const labels = [this.items.get(head).label, this.items.get(tail).label];
    if (!this.allowed(...labels).some((rt) => rt.name === dr.label)) return false;
    const sid = Number.isInteger(dr.suggestion_id) ? dr.suggestion_id : null;
    let rel;
    if (sid !== null) {
      rel = ctx.suggRels.get(sid);
      if (!rel || rel.head !== head || rel.tail !== tail) return false;
      ctx.suggRels.delete(sid);
      ctx.carried.add(sid);
    } else {
      rel = ctx.goldRels.get(dr.id);
      if (rel && rel.head === head && rel.tail === tail) ctx.goldRels.delete(dr.id);
      else rel = this.relItem({ label: dr.label }, "gold", head, tail);
    }
    Object.assign(rel, {
      state: "gold", id: dr.id, label: dr.label, notes: Array.isArray(dr.notes) ? dr.notes : [],
    });
    ctx.ids.add(dr.id);
    return true;
  }

  // Rejections come back; an accept or edit is already the gold that carries it.
  replayDecisions(decisions, ctx) {
    if (!decisions || typeof decisions !== "object") return;
    for (const [key, status] of Object.entries(decisions)) {
      const sid = Number(key);
      if (ctx.carried.has(sid)) continue;
      const it = status === "rejected" ? ctx.suggSpans.get(sid) || ctx.suggRels.get(sid) : null;
      if (!it) {
        this.leftOut++;
        continue;
      }
      it.state = "rejected";
      (it.kind === "span" ? ctx.suggSpans : ctx.suggRels).delete(sid);
    }
  }

  sayReplay() {
    const n = this.leftOut;
    if (n) {
      this.say(`${n} ${plural(n, "item", "items")} of your draft no longer ` +
        `${plural(n, "fits", "fit")} this note and ${plural(n, "was", "were")} left out`, true);
    } else if (this.replayed) {
      this.say("Your draft of this note was restored.");
    }
  }

  spanItem(s, state) {
    const frags = (s.fragments && s.fragments.length ? s.fragments : [[s.start, s.end]]).map(
      ([a, b]) => [this.toU(a), this.toU(b)],
    );
    const it = {
      uid: `i${this.seq++}`, kind: "span", state, id: state === "gold" ? s.id : null,
      label: s.label, frags, start: frags[0][0], end: frags[frags.length - 1][1],
      attrs: { ...(s.attributes || {}) }, sid: s.suggestion_id ?? null, key: s.key ?? null,
      score: typeof s.score === "number" ? s.score : null, concept: s.concept || "",
      notes: s.notes || [], boxes: [], rects: null, lane: 0,
    };
    it.orig = { label: it.label, frags: frags.map((f) => f.slice()) };
    this.items.set(it.uid, it);
    return it;
  }

  relItem(r, state, head, tail) {
    if (head === undefined || tail === undefined) return null; // an end we cannot anchor
    const it = {
      uid: `i${this.seq++}`, kind: "rel", state, id: state === "gold" ? r.id : null,
      label: r.label, head, tail, sid: r.suggestion_id ?? null, key: r.key ?? null,
      score: typeof r.score === "number" ? r.score : null, notes: r.notes || [],
      origLabel: r.label, g: null,
    };
    this.items.set(it.uid, it);
    this.link(it);
    return it;
  }

  link(rel) {
    for (const end of [rel.head, rel.tail]) {
      if (!this.relsOf.has(end)) this.relsOf.set(end, new Set());
      this.relsOf.get(end).add(rel.uid);
    }
  }

  firstFree(prefix) {
    let n = 1;
    for (const id of this.usedIds) {
      const m = /^([A-Za-z]+)(\d+)$/.exec(id);
      if (m && m[1] === prefix) n = Math.max(n, Number(m[2]) + 1);
    }
    return n;
  }

  newId(prefix) {
    let id;
    do {
      id = prefix === "T" ? `T${this.nextT++}` : `R${this.nextR++}`;
    } while (this.usedIds.has(id));
    this.usedIds.add(id);
    return id;
  }

  posOf(it) {
    if (it.kind === "span") return it.start;
    return Math.min(this.items.get(it.head).start, this.items.get(it.tail).start);
  }

  shown(it) {
    if (!it || (it.state !== "gold" && it.state !== "open")) return false;
    if (it.kind === "span") return true;
    return this.shown(this.items.get(it.head)) && this.shown(this.items.get(it.tail));
  }

  spans() {
    return [...this.items.values()].filter((it) => it.kind === "span" && this.shown(it));
  }

  sourceOf(it) {
    const same = it.label === it.orig.label && sameFrags(it.frags, it.orig.frags);
    if (it.fromSuggestion || it.loadedSource === "accepted") return same ? "accepted" : "edited";
    return it.loadedSource || "manual";
  }

  allowed(headLabel, tailLabel) {
    const ok = (list, label) => !list || list.length === 0 || list.includes(label);
    return this.relTypes.filter(
      (rt) =>
        (ok(rt.heads, headLabel) && ok(rt.tails, tailLabel)) ||
        (rt.symmetric && ok(rt.heads, tailLabel) && ok(rt.tails, headLabel)),
    );
  }

  // ----------------------------------------------------------------------- transactions

  begin() {
    this.tx = new Map();
    this.txSelected = this.selected;
  }

  touch(it) {
    if (!this.tx.has(it.uid)) this.tx.set(it.uid, snapshot(it));
  }

  commit(message) {
    const tx = this.tx;
    this.tx = null;
    if (!tx || tx.size === 0) return;
    if (this.dialog) this.closeDialog(); // its question counted what this changed
    this.undoStack.push({ changes: tx, selected: this.txSelected });
    this.apply(tx);
    if (message) this.say(message);
  }

  undo() {
    const step = this.undoStack.pop();
    if (!step) {
      this.say("Nothing to undo.");
      return;
    }
    const now = new Map();
    for (const [uid, before] of step.changes) {
      const it = this.items.get(uid);
      now.set(uid, snapshot(it));
      Object.assign(it, before);
      if (before.frags) it.frags = before.frags.map((f) => f.slice());
      if (before.attrs) it.attrs = { ...before.attrs };
    }
    this.pending = null;
    this.hidePicker();
    this.apply(now);
    this.select(this.shown(this.items.get(step.selected)) ? step.selected : null);
    this.say("Undone.");
  }

  // Redraw what ``changes`` (uid -> the snapshot from before) touched.
  apply(changes) {
    const seeds = [];
    const arcs = new Set();
    for (const [uid, before] of changes) {
      const it = this.items.get(uid);
      if (it.kind === "span") {
        if (!before.frags || !sameFrags(before.frags, it.frags) || !it.rects) it.rects = null;
        seeds.push({ it, ranges: [{ start: before.start ?? it.start, end: before.end ?? it.end }, it] });
        for (const r of this.relsOf.get(uid) || []) arcs.add(r);
      } else {
        arcs.add(uid);
      }
    }
    this.relane(seeds);
    this.dirtyArcs(arcs);
    this.refresh();
    this.emit();
  }

  // ----------------------------------------------------------------------------- actions

  accept() {
    const it = this.items.get(this.selected);
    if (!it) return this.step(1);
    if (it.state !== "open") return this.step(1);
    this.begin();
    const ok = it.kind === "span" ? this.acceptSpan(it) : this.acceptRel(it);
    this.commit();
    if (ok) this.step(1, true);
  }

  acceptSpan(it) {
    if (it.state !== "open") return it.state === "gold";
    this.touch(it);
    it.state = "gold";
    it.id = it.id || this.newId("T");
    return true;
  }

  acceptRel(rel) {
    const head = this.items.get(rel.head);
    const tail = this.items.get(rel.tail);
    if (!this.allowed(head.label, tail.label).some((rt) => rt.name === rel.label)) {
      this.say(`${rel.label} is not allowed from ${head.label} to ${tail.label}.`, true);
      return false;
    }
    this.acceptSpan(head);
    this.acceptSpan(tail);
    this.touch(rel);
    rel.state = "gold";
    rel.id = rel.id || this.newId("R");
    return true;
  }

  acceptAll() {
    const t = this.threshold;
    this.begin();
    let n = 0;
    for (const it of this.items.values()) {
      if (it.kind === "span" && it.state === "open" && it.score !== null && it.score >= t) {
        this.acceptSpan(it);
        n++;
      }
    }
    for (const rel of this.items.values()) {
      if (rel.kind !== "rel" || rel.state !== "open" || rel.score === null || rel.score < t) continue;
      const ends = [this.items.get(rel.head), this.items.get(rel.tail)];
      if (!ends.every((e) => e.state === "gold")) continue;
      if (this.acceptRel(rel)) n++;
    }
    this.commit(n ? `Accepted ${n} suggestion${n === 1 ? "" : "s"} scored ≥ ${t.toFixed(2)}.` : null);
    if (!n) this.say(`No open suggestion scores ≥ ${t.toFixed(2)}.`);
  }

  reject() {
    const it = this.items.get(this.selected);
    if (!it) return this.say("Select a suggestion, span or relation first.");
    const wasOpen = it.state === "open";
    this.begin();
    this.remove(it);
    this.commit();
    if (wasOpen) this.step(1, true);
    else this.select(null);
  }

  // A span leaving the view takes its relations along: gold ones are deleted, open
  // suggestions count as rejected (they could no longer be accepted).
  remove(it) {
    if (it.state !== "gold" && it.state !== "open") return;
    this.touch(it);
    it.state = it.state === "open" ? "rejected" : "deleted";
    if (it.kind !== "span") return;
    for (const r of this.relsOf.get(it.uid) || []) this.remove(this.items.get(r));
  }

  applyLabel(name) {
    if (this.pending) return this.createSpan(this.pending, name);
    const it = this.items.get(this.selected);
    if (!it || it.kind !== "span") return this.say("Select text or a span first, then press a label key.");
    this.relabel(it, name);
  }

  relabel(it, name) {
    if (it.label === name && it.state === "gold") return;
    this.begin();
    this.touch(it);
    it.label = name;
    this.acceptSpan(it);
    const dropped = this.dropDisallowed(it);
    this.commit(dropped ? `Removed ${dropped} relation(s) the schema no longer allows.` : null);
  }

  dropDisallowed(span) {
    let n = 0;
    for (const r of this.relsOf.get(span.uid) || []) {
      const rel = this.items.get(r);
      if (rel.state !== "gold") continue;
      const head = this.items.get(rel.head);
      const tail = this.items.get(rel.tail);
      if (!this.allowed(head.label, tail.label).some((rt) => rt.name === rel.label)) {
        this.remove(rel);
        n++;
      }
    }
    return n;
  }

  createSpan({ start, end }, label) {
    const twin = this.spans().find((s) => s.start === start && s.end === end && s.frags.length === 1);
    if (twin && twin.state === "gold" && twin.label === label) {
      this.clearPending();
      this.select(twin.uid);
      return this.say("That span exists already.");
    }
    this.begin();
    let it;
    if (twin && twin.state === "open") {
      it = twin; // drawing exactly a suggestion accepts it (edited when the label differs)
      this.touch(it);
      it.label = label;
      this.acceptSpan(it);
    } else {
      it = this.spanItem({ label, start: this.toCp(start), end: this.toCp(end) }, "gold");
      it.state = "none";
      this.touch(it);
      it.state = "gold";
      it.id = this.newId("T");
      it.loadedSource = "manual";
    }
    this.clearPending();
    this.commit();
    this.select(it.uid);
  }

  resizeTo(it, { start, end }) {
    this.begin();
    this.touch(it);
    it.frags = [[start, end]];
    it.start = start;
    it.end = end;
    this.acceptSpan(it);
    this.clearPending();
    this.commit();
    this.select(it.uid);
  }

  nudge(edge, dir) {
    const it = this.items.get(this.selected);
    if (!it || it.kind !== "span") return this.say("Select a span to move its edges.");
    let { start, end } = it;
    if (edge === "end") end = dir > 0 ? this.wordEnd(end) : this.prevWordEnd(end, start);
    else start = dir < 0 ? this.wordStart(start) : this.nextWordStart(start, end);
    if (start >= end || (start === it.start && end === it.end)) return;
    this.begin();
    this.touch(it);
    it.frags[0][0] = start;
    it.frags[it.frags.length - 1][1] = end;
    it.start = start;
    it.end = end;
    this.acceptSpan(it);
    this.commit();
  }

  toggleAttr(index, value) {
    const it = this.items.get(this.selected);
    const at = this.attrTypes[index];
    if (!it || it.kind !== "span" || !at) return;
    this.begin();
    this.touch(it);
    const attrs = { ...it.attrs };
    if (value !== undefined) {
      if (value === "") delete attrs[at.name];
      else attrs[at.name] = value;
    } else if (!at.values || at.values.length === 0) {
      if (attrs[at.name]) delete attrs[at.name];
      else attrs[at.name] = "true";
    } else {
      const i = at.values.indexOf(attrs[at.name]);
      if (i === at.values.length - 1) delete attrs[at.name];
      else attrs[at.name] = at.values[i + 1];
    }
    it.attrs = attrs;
    this.acceptSpan(it);
    this.commit();
  }

  linkTo(target) {
    const head = this.items.get(this.selected);
    if (!head || head.kind !== "span" || head === target) return this.select(target.uid);
    const types = this.allowed(head.label, target.label);
    if (types.length === 0) {
      return this.say(`No relation type goes from ${head.label} to ${target.label}.`, true);
    }
    if (types.length === 1) return this.createRel(head, target, types[0].name);
    this.showRelPicker(head, target, types);
  }

  createRel(head, tail, label) {
    this.hidePicker();
    const dupe = [...(this.relsOf.get(head.uid) || [])]
      .map((r) => this.items.get(r))
      .find((r) => r.tail === tail.uid && r.head === head.uid && r.label === label && this.shown(r));
    if (dupe && dupe.state === "gold") return this.say("That relation exists already.");
    this.begin();
    let rel = dupe;
    if (rel) {
      this.acceptRel(rel);
    } else {
      this.acceptSpan(head);
      this.acceptSpan(tail);
      rel = this.relItem({ label }, "none", head.uid, tail.uid);
      this.touch(rel);
      rel.state = "gold";
      rel.id = this.newId("R");
    }
    this.commit();
    this.select(rel.uid);
  }

  setRelLabel(rel, label) {
    if (rel.label === label) return;
    this.begin();
    this.touch(rel);
    rel.label = label;
    if (rel.state === "open") this.acceptRel(rel);
    this.commit();
  }

  // Submit is deliberate: open suggestions are rejected by name, an empty note is
  // confirmed as empty. The submitted state says what the annotator confirmed.
  submit() {
    if (this.dialog) return this.dialog.back.focus({ preventScroll: true }); // answer it first
    this.confirmed = { reject_open: false, empty: false };
    this.submitStep();
  }

  submitStep() {
    const open = [...this.items.values()].filter((it) => it.state === "open" && this.shown(it));
    if (open.length && !this.confirmed.reject_open) {
      return this.ask(undecidedText(open.length), `Reject ${open.length} and submit`, () => {
        this.begin();
        for (const it of open) this.remove(it);
        this.commit();
        this.confirmed.reject_open = true;
        this.submitStep();
      }, true);
    }
    const empty = ![...this.items.values()].some((it) => it.kind === "span" && it.state === "gold");
    if (empty && !this.confirmed.empty) {
      return this.ask("This note has no span. Submit it as 'nothing to annotate in this note'?",
        "Nothing to annotate: submit", () => {
          this.confirmed.empty = true;
          this.submitStep();
        });
    }
    this.flush();
    const state = this.state(true);
    state.confirm = { ...this.confirmed };
    this.setTrigger("submit", state);
    this.submitted = true;
    this.say(`Submitted: ${state.spans.length} spans, ${state.relations.length} relations.`);
    this.refreshCounts();
  }

  // A question at the top of the widget with a yes and "Go back"; the focus starts on
  // "Go back", so a stray Enter never confirms. Esc goes back too.
  ask(question, yes, onYes, toOpen) {
    const yesBtn = h("button", {
      type: "button", class: "nl-btn", dataset: { answer: "yes" },
      onclick: () => {
        this.closeDialog();
        onYes();
      },
    }, yes);
    const back = h("button", {
      type: "button", class: "nl-btn", dataset: { answer: "back" },
      onclick: () => this.goBack(),
    }, "Go back");
    this.el.confirm.replaceChildren(
      h("span", { class: "nl-confirm-text", id: "nl-ann-confirm-text" }, question),
      h("span", { class: "nl-spacer" }), yesBtn, back,
    );
    this.el.confirm.hidden = false;
    this.dialog = { yes: yesBtn, back, toOpen: !!toOpen };
    back.focus({ preventScroll: true });
    this.el.confirm.scrollIntoView({ block: "nearest" });
  }

  closeDialog() {
    this.dialog = null;
    this.el.confirm.hidden = true;
    this.el.confirm.replaceChildren();
  }

  // Back to work, at the first open suggestion when that was the question.
  goBack() {
    const toOpen = this.dialog && this.dialog.toOpen;
    this.closeDialog();
    this.root.focus({ preventScroll: true });
    if (toOpen) {
      this.select(null);
      this.step(1);
    }
  }

  // Keys while a question is shown: Esc goes back, Tab and the arrows move between its two
  // buttons, Enter and Space press the focused one; nothing else reaches the note.
  dialogKey(e) {
    const { yes, back } = this.dialog;
    const k = e.key;
    const onButton = e.composedPath().some((n) => n === yes || n === back);
    if (k === "Escape") this.goBack();
    else if (k === "Tab" || k === "ArrowLeft" || k === "ArrowRight") {
      const focused = e.composedPath().includes(yes) ? yes : back;
      (focused === yes ? back : yes).focus({ preventScroll: true });
    } else if ((k === "Enter" || k === " ") && onButton && !(e.ctrlKey || e.metaKey)) {
      return; // the button's own click
    } else if (!onButton) back.focus({ preventScroll: true });
    e.preventDefault();
    e.stopPropagation();
  }

  // -------------------------------------------------------------------------- selection

  step(dir, fromAction) {
    if (this.pending) this.clearPending();
    const order = this.order.filter((it) => it.state === "open" && this.shown(it));
    if (order.length === 0) {
      this.select(null);
      return this.say(fromAction ? "All suggestions reviewed." : "No open suggestions.");
    }
    const cur = this.items.get(this.selected);
    let next;
    if (!cur) {
      next = dir > 0 ? order[0] : order[order.length - 1];
    } else {
      const pos = this.posOf(cur);
      const idx = this.order.indexOf(cur);
      const key = (it) => [this.posOf(it), this.order.indexOf(it)];
      const cmp = (a, b) => a[0] - b[0] || a[1] - b[1];
      const here = [pos, idx === -1 ? (dir > 0 ? Infinity : -Infinity) : idx];
      next = dir > 0
        ? order.find((it) => cmp(key(it), here) > 0) || order[0]
        : [...order].reverse().find((it) => cmp(key(it), here) < 0) || order[order.length - 1];
    }
    this.select(next.uid, true);
  }

  select(uid, scroll) {
    const prev = this.items.get(this.selected);
    this.selected = uid && this.items.has(uid) ? uid : null;
    if (prev) this.markSelected(prev, false);
    const it = this.items.get(this.selected);
    if (it) {
      this.markSelected(it, true);
      if (scroll) this.scrollTo(it);
    }
    this.refreshPanel();
  }

  markSelected(it, on) {
    if (it.kind === "span") {
      for (const b of it.boxes) b.classList.toggle("nl-sel", on);
    } else {
      if (it.g) it.g.classList.toggle("nl-sel", on);
      for (const end of [it.head, it.tail]) {
        for (const b of this.items.get(end).boxes) b.classList.toggle("nl-hl", on);
      }
    }
  }

  scrollTo(it) {
    const span = it.kind === "span" ? it : this.items.get(it.head);
    const rect = this.rectsOf(span)[0];
    if (!rect) return;
    const body = this.el.body;
    if (rect.y < body.scrollTop + 20 || rect.y + rect.h > body.scrollTop + body.clientHeight - 20) {
      body.scrollTop = Math.max(0, rect.y - body.clientHeight / 3);
    }
  }

  clearPending() {
    this.pending = null;
    if (this.pendingBoxes) for (const b of this.pendingBoxes) b.remove();
    this.pendingBoxes = [];
    this.hidePicker();
  }

  escape() {
    if (this.dialog) this.goBack();
    else if (this.pending || !this.el.picker.hidden) this.clearPending();
    else this.select(null);
  }

  // ------------------------------------------------------------------------ text layout

  build() {
    const frag = document.createDocumentFragment();
    const text = this.text;
    this.chunks = [];
    this.chunkOf = new WeakMap();
    let i = 0;
    while (i < text.length) {
      let j = text.indexOf("\n", i);
      j = j === -1 ? text.length : j + 1;
      if (j - i > CHUNK) {
        const k = text.lastIndexOf(" ", i + CHUNK);
        j = k > i ? k + 1 : i + CHUNK;
        if (/[\uDC00-\uDFFF]/.test(text[j] || "")) j++;
      }
      const el = document.createElement("span");
      el.className = "nl-chunk";
      const tn = document.createTextNode(text.slice(i, j));
      el.appendChild(tn);
      const chunk = { s: i, e: j, el, tn };
      this.chunkOf.set(el, this.chunks.length);
      this.chunks.push(chunk);
      frag.appendChild(el);
      i = j;
    }
    this.el.text.replaceChildren(frag);
    this.buildLabels();
    this.buildKeys();
    this.el.acceptAll.textContent = `Accept ≥ ${this.threshold.toFixed(2)}`;
    this.el.acceptAll.title = `Accept every open suggestion scored ≥ ${this.threshold.toFixed(2)} (Shift+A)`;
    this.layoutAll();
    this.refresh();
    this.tickTimer();
  }

  // Every box and arc from scratch: at mount, on resize, after web fonts load.
  layoutAll() {
    this.laidOut = this.layoutKey();
    const spans = this.spans();
    for (const it of spans) it.rects = null;
    for (const it of spans) this.rectsOf(it); // all layout reads first, then the writes
    this.lanes(spans);
    for (const it of this.items.values()) if (it.kind === "span") this.drawBoxes(it);
    this.sizeArcs();
    this.dirtyArcs(new Set([...this.items.values()].filter((it) => it.kind === "rel").map((r) => r.uid)));
    if (this.pending) this.showPending();
  }

  chunkIndex(off) {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid].s <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  origin() {
    const body = this.el.body;
    const br = body.getBoundingClientRect();
    return { x: br.left + body.clientLeft - body.scrollLeft, y: br.top + body.clientTop - body.scrollTop };
  }

  // Line rects of a span in body coordinates, one per fragment and line.
  rectsOf(it) {
    if (it.rects) return it.rects;
    const o = this.origin();
    const out = [];
    for (const [a, b] of it.frags) {
      let last = null;
      for (let ci = this.chunkIndex(a); ci < this.chunks.length && this.chunks[ci].s < b; ci++) {
        const c = this.chunks[ci];
        this.range.setStart(c.tn, Math.max(a, c.s) - c.s);
        this.range.setEnd(c.tn, Math.min(b, c.e) - c.s);
        for (const q of this.range.getClientRects()) {
          if (q.width < 1) continue;
          const r = { x: q.left - o.x, y: q.top - o.y, w: q.width, h: q.height };
          if (last && Math.abs(last.y - r.y) < 2 && r.x <= last.x + last.w + 2) {
            last.w = Math.max(last.x + last.w, r.x + r.w) - last.x;
          } else {
            out.push(r);
            last = r;
          }
        }
      }
    }
    it.rects = out;
    return out;
  }

  // Lanes: shortest spans first; a span sits one lane above every overlapping shorter one,
  // so nested and crossing spans get distinct, concentric boxes.
  lanes(spans) {
    const sorted = [...spans].sort((a, b) => a.end - a.start - (b.end - b.start) || a.start - b.start);
    const placed = [];
    for (const it of sorted) {
      let lane = 0;
      for (const p of placed) if (overlaps(p, it)) lane = Math.max(lane, p.lane + 1);
      it.lane = lane;
      placed.push(it);
    }
  }

  // Recompute lanes for the overlap groups around changed spans; redraw what changed.
  relane(seeds) {
    if (seeds.length === 0) return;
    const shown = this.spans();
    const group = new Set();
    const ranges = seeds.flatMap((s) => s.ranges);
    for (const it of shown) if (ranges.some((r) => overlaps(r, it))) group.add(it);
    let grown = true;
    while (grown) {
      grown = false;
      for (const it of shown) {
        if (group.has(it)) continue;
        for (const g of group) {
          if (overlaps(g, it)) {
            group.add(it);
            grown = true;
            break;
          }
        }
      }
    }
    const before = new Map([...group].map((it) => [it, it.lane]));
    this.lanes([...group]);
    for (const it of group) this.rectsOf(it);
    const redraw = new Set(seeds.map((s) => s.it));
    for (const [it, lane] of before) if (it.lane !== lane) redraw.add(it);
    for (const it of redraw) this.drawBoxes(it);
  }

  drawBoxes(it) {
    for (const b of it.boxes) b.remove();
    it.boxes = [];
    if (!this.shown(it)) return;
    const rects = this.rectsOf(it);
    const color = this.types.get(it.label)?.color || "#888888";
    const padY = 1 + it.lane * 3;
    const padX = 1 + it.lane * 2;
    const open = it.state === "open";
    const sel = this.selected === it.uid;
    const selRel = this.items.get(this.selected);
    const endOfSel = selRel && selRel.kind === "rel" && (selRel.head === it.uid || selRel.tail === it.uid);
    rects.forEach((q, i) => {
      const cls = ["nl-box", open ? "nl-sugg" : "nl-gold"];
      if (i === 0) cls.push("nl-first");
      if (i === rects.length - 1) cls.push("nl-last");
      if (sel) cls.push("nl-sel");
      if (endOfSel) cls.push("nl-hl");
      const box = h("div", {
        class: cls.join(" "),
        style: `left:${q.x - padX}px;top:${q.y - padY}px;width:${q.w + 2 * padX}px;` +
          `height:${q.h + 2 * padY}px;--c:${color};z-index:${30 - Math.min(it.lane, 20)}`,
        dataset: { uid: it.uid, label: it.label, state: it.state, sid: it.sid, id: it.id },
      });
      it.boxes.push(box);
    });
    // Badges hang below the line (the gap above it belongs to the relation arcs): the
    // score at the right end of a suggestion, set attributes at the left.
    const last = rects[rects.length - 1];
    if (last && open && it.score !== null) {
      // Nested spans often share their last character: an outer span's score steps out
      // to the right of its box, so the inner span's score never hides it.
      const right = last.x + last.w + padX;
      const shift = it.lane === 0 ? "transform:translateX(-100%);" : "";
      const left = it.lane === 0 ? right : right + 2 + (it.lane - 1) * 28;
      it.boxes.push(h("div", {
        class: "nl-score",
        style: `left:${left}px;top:${last.y + last.h + padY - 3}px;--c:${color};${shift}`,
      }, fmtScore(it.score)));
    }
    const attrs = Object.entries(it.attrs);
    if (last && attrs.length) {
      const tag = attrs.map(([k, v]) => (v === "true" ? k.slice(0, 3) : `${k.slice(0, 3)}=${v}`)).join(" · ");
      it.boxes.push(h("div", {
        class: "nl-attr",
        style: `left:${last.x - padX}px;top:${last.y + last.h + padY - 1}px;--c:${color}`,
      }, tag));
    }
    this.el.boxes.append(...it.boxes);
  }

  // ----------------------------------------------------------------------------- arcs

  sizeArcs() {
    const t = this.el.text;
    this.el.arcs.setAttribute("width", String(t.offsetLeft + t.scrollWidth));
    this.el.arcs.setAttribute("height", String(t.offsetTop + t.scrollHeight));
  }

  dirtyArcs(uids) {
    if (!this.arcQueue) this.arcQueue = new Set();
    for (const u of uids) this.arcQueue.add(u);
    if (this.arcFrame) return;
    this.arcFrame = requestAnimationFrame(() => {
      this.arcFrame = null;
      const queue = this.arcQueue;
      this.arcQueue = new Set();
      if (!this.destroyed) for (const u of queue) this.drawArc(this.items.get(u));
    });
  }

  drawArc(rel) {
    if (!this.shown(rel)) {
      if (rel.g) rel.g.remove();
      rel.g = null;
      return;
    }
    const head = this.items.get(rel.head);
    const tail = this.items.get(rel.tail);
    const a = this.rectsOf(head)[0];
    const b = this.rectsOf(tail)[0];
    if (!a || !b) return;
    if (!rel.g) {
      rel.g = svg("g", { class: "nl-arc" });
      rel.hit = svg("path", { class: "nl-arc-hit" });
      rel.line = svg("path", { class: "nl-arc-line" });
      rel.tag = svg("text", { class: "nl-arc-label", "text-anchor": "middle" });
      rel.g.append(rel.hit, rel.line, rel.tag);
      rel.g.dataset.uid = rel.uid;
      if (rel.sid !== null) rel.g.dataset.sid = rel.sid;
      this.el.arcLayer.appendChild(rel.g);
    }
    const x1 = a.x + a.w / 2;
    const y1 = a.y - 1 - head.lane * 3;
    const x2 = b.x + b.w / 2;
    const y2 = b.y - 1 - tail.lane * 3;
    // Arcs live in the gap between lines: flat enough not to reach the line above.
    const lift = Math.min(19, 10 + Math.abs(x2 - x1) / 30 + Math.abs(y2 - y1) / 8);
    const top = Math.min(y1, y2) - lift;
    const d = `M${x1.toFixed(1)},${y1.toFixed(1)} C${x1.toFixed(1)},${top.toFixed(1)} ` +
      `${x2.toFixed(1)},${top.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`;
    rel.hit.setAttribute("d", d);
    rel.line.setAttribute("d", d);
    rel.line.setAttribute("marker-end", "url(#nl-ann-arrow)");
    const apex = 0.75 * top + 0.125 * (y1 + y2);
    rel.tag.setAttribute("x", ((x1 + x2) / 2).toFixed(1));
    rel.tag.setAttribute("y", (apex + 3.5).toFixed(1)); // centred on the arc, over a halo
    rel.tag.textContent = rel.state === "open" && rel.score !== null
      ? `${rel.label} ${fmtScore(rel.score)}` : rel.label;
    rel.g.classList.toggle("nl-sugg", rel.state === "open");
    rel.g.classList.toggle("nl-sel", this.selected === rel.uid);
  }

  hoverArc(rel, on) {
    if (!rel.g) return;
    rel.g.classList.toggle("nl-hl", on);
    rel.line.setAttribute("marker-end", on ? "url(#nl-ann-arrow-hl)" : "url(#nl-ann-arrow)");
    for (const end of [rel.head, rel.tail]) {
      for (const b of this.items.get(end).boxes) b.classList.toggle("nl-hl", on || this.selected === rel.uid);
    }
  }

  // ---------------------------------------------------------------------- mouse + keys

  listen() {
    // Any new action clears the last message, so a message always speaks of the latest.
    this.on(this.root, "keydown", (e) => {
      if (!MODIFIER_KEYS.has(e.key)) this.say("");
      this.onInput();
    }, true);
    this.on(this.root, "mousedown", () => {
      this.say("");
      this.onInput();
    }, true);
    for (const type of ["pointermove", "wheel"]) {
      this.on(this.root, type, () => this.onInput(), { passive: true });
    }
    this.on(this.root, "keydown", (e) => this.onKey(e));
    this.on(this.el.body, "mousedown", (e) => {
      // Shift/Alt+click links spans: keep the browser from extending a text selection.
      if ((e.shiftKey || e.altKey) && e.composedPath().includes(this.el.text)) {
        e.preventDefault();
        this.root.focus({ preventScroll: true });
      }
    });
    this.on(this.el.body, "mouseup", (e) => this.onMouseUp(e));
    // Buttons and form fields hand the keyboard back to the widget once used.
    // Not while a question is shown: its buttons keep the keyboard.
    const refocus = (e) => {
      if (!this.inControl(e) || this.dialog) return;
      setTimeout(() => this.root.focus({ preventScroll: true }), 0);
    };
    this.on(this.root, "click", refocus);
    this.on(this.root, "change", refocus);
    this.on(this.el.arcLayer, "click", (e) => {
      const g = e.target.closest && e.target.closest("g.nl-arc");
      if (g) this.select(g.dataset.uid);
    });
    this.on(this.el.arcLayer, "mouseover", (e) => this.onArcHover(e, true));
    this.on(this.el.arcLayer, "mouseout", (e) => this.onArcHover(e, false));
    this.on(this.el.undo, "click", () => this.undo());
    this.on(this.el.submit, "click", () => this.submit());
    this.on(this.el.acceptAll, "click", () => this.acceptAll());
    this.on(document, "visibilitychange", () => this.onVisibility());
    this.on(window, "pagehide", () => this.flushOnLeave());
    // Leaving the widget for the page's own buttons (skip, next note) hands the latest
    // state over first: the page may show another note before the debounce runs out.
    this.on(this.root, "focusout", (e) => {
      if (!e.relatedTarget || !this.root.contains(e.relatedTarget)) this.flush();
    });
    this.resizeObserver = new ResizeObserver(() => this.scheduleLayout());
    this.resizeObserver.observe(this.el.text);
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(() => this.scheduleLayout());
    this.timers.push(setInterval(() => this.tickTimer(), 1000));
  }

  // Relayout when the text reflows: a new width, or web fonts that finished loading.
  scheduleLayout() {
    if (this.layoutFrame || this.destroyed) return;
    this.layoutFrame = requestAnimationFrame(() => {
      this.layoutFrame = null;
      const key = this.layoutKey();
      if (key === this.laidOut) return;
      this.layoutAll();
    });
  }

  layoutKey() {
    const fonts = document.fonts ? document.fonts.status : "loaded";
    return `${this.el.text.clientWidth}/${fonts}`;
  }

  inControl(e) {
    return e.composedPath().some(
      (n) => n instanceof Element && /^(BUTTON|SELECT|INPUT|TEXTAREA|LABEL)$/.test(n.tagName),
    );
  }

  onArcHover(e, on) {
    const g = e.target.closest && e.target.closest("g.nl-arc");
    if (!g) return;
    const related = e.relatedTarget && e.relatedTarget.closest && e.relatedTarget.closest("g.nl-arc");
    if (related === g) return;
    this.hoverArc(this.items.get(g.dataset.uid), on);
  }

  onMouseUp(e) {
    if (e.button !== 0) return;
    const path = e.composedPath();
    if (path.includes(this.el.picker) || path.includes(this.el.arcs)) return;
    if (e.shiftKey || e.altKey) return this.onClick(e, this.caretAt(e.clientX, e.clientY));
    const sel = this.readSelection();
    if (!sel || sel[0] === sel[1]) {
      const caret = this.caretAt(e.clientX, e.clientY);
      return this.onClick(e, caret ?? (sel ? sel[0] : null));
    }
    const [a, b] = sel;
    const snapped = this.snap(a, b);
    this.clearSelection();
    if (!snapped) return;
    this.pending = { start: snapped[0], end: snapped[1] };
    this.showPending();
    this.showLabelPicker();
    this.markUpdate(e.timeStamp);
  }

  onClick(e, caret) {
    const off = caret === null ? null : this.charAt(e.clientX, e.clientY, caret);
    const hits = off === null
      ? []
      : this.spans().filter((s) => s.frags.some(([p, q]) => p <= off && off < q));
    if (this.pending) this.clearPending();
    if (hits.length === 0) {
      if (!e.shiftKey && !e.altKey) this.select(null);
      return;
    }
    // Innermost first; clicking again where spans nest walks outwards.
    hits.sort((p, q) => p.end - p.start - (q.end - q.start) || p.lane - q.lane);
    const cur = hits.findIndex((s) => s.uid === this.selected);
    if ((e.shiftKey || e.altKey) && this.selected) {
      const target = hits.find((s) => s.uid !== this.selected) || hits[0];
      this.linkTo(target);
    } else {
      this.select(hits[(cur + 1) % hits.length].uid);
    }
    this.markUpdate(e.timeStamp);
  }

  // The character under the pointer: the caret sits before or after it.
  charAt(x, y, caret) {
    for (const off of [caret, caret - 1]) {
      if (off < 0 || off >= this.text.length) continue;
      const c = this.chunks[this.chunkIndex(off)];
      this.range.setStart(c.tn, off - c.s);
      this.range.setEnd(c.tn, off - c.s + 1);
      for (const q of this.range.getClientRects()) {
        if (x >= q.left - 1 && x <= q.right + 1 && y >= q.top - 4 && y <= q.bottom + 4) return off;
      }
    }
    return null;
  }

  caretAt(x, y) {
    if (document.caretPositionFromPoint) {
      try {
        const opts = this.shadow ? { shadowRoots: [this.shadow] } : undefined;
        const p = document.caretPositionFromPoint(x, y, opts);
        const off = p ? this.domOffset(p.offsetNode, p.offset) : null;
        if (off !== null) return off;
      } catch (err) {
        // an older signature: the caller falls back to the selection's caret
      }
    }
    return null;
  }

  readSelection() {
    const sel = document.getSelection();
    if (!sel || sel.rangeCount === 0) return null;
    let r = null;
    if (this.shadow && sel.getComposedRanges) {
      try {
        r = sel.getComposedRanges({ shadowRoots: [this.shadow] })[0] || null;
      } catch (err) {
        r = null; // an older signature: fall through to the shadow root's own selection
      }
    }
    if ((!r || !this.el.text.contains(r.startContainer)) && this.shadow && this.shadow.getSelection) {
      const s = this.shadow.getSelection();
      r = s && s.rangeCount ? s.getRangeAt(0) : null;
    }
    if (!r) r = sel.getRangeAt(0);
    const a = this.domOffset(r.startContainer, r.startOffset);
    const b = this.domOffset(r.endContainer, r.endOffset);
    if (a === null || b === null) return null;
    return [Math.min(a, b), Math.max(a, b)];
  }

  clearSelection() {
    const sel = document.getSelection();
    if (sel) sel.removeAllRanges();
  }

  domOffset(node, off) {
    if (!node || !this.el.text.contains(node)) return null;
    if (node.nodeType === Node.TEXT_NODE) {
      const ci = this.chunkOf.get(node.parentNode);
      return ci === undefined ? null : this.chunks[ci].s + off;
    }
    if (node === this.el.text) {
      return off >= this.chunks.length ? this.text.length : this.chunks[off].s;
    }
    const ci = this.chunkOf.get(node);
    if (ci === undefined) return null;
    return off === 0 ? this.chunks[ci].s : this.chunks[ci].e;
  }

  isWord(i) {
    return i >= 0 && i < this.text.length && WORD.test(this.text[i]);
  }

  // Whole words only: trim spaces, then widen a cut word to its edges.
  snap(a, b) {
    const t = this.text;
    while (a < b && SPACE.test(t[a])) a++;
    while (b > a && SPACE.test(t[b - 1])) b--;
    if (a >= b) return null;
    while (this.isWord(a - 1) && this.isWord(a)) a--;
    while (this.isWord(b) && this.isWord(b - 1)) b++;
    if (/[\uDC00-\uDFFF]/.test(t[a] || "")) a--;
    if (/[\uDC00-\uDFFF]/.test(t[b] || "")) b++;
    return [a, b];
  }

  wordEnd(end) {
    let i = end;
    while (i < this.text.length && !this.isWord(i) && this.text[i] !== "\n") i++;
    while (this.isWord(i)) i++;
    return i;
  }

  prevWordEnd(end, start) {
    let i = end;
    while (i > start + 1 && this.isWord(i - 1)) i--;
    while (i > start + 1 && !this.isWord(i - 1)) i--;
    return i > start ? i : end;
  }

  wordStart(start) {
    let i = start;
    while (i > 0 && !this.isWord(i - 1) && this.text[i - 1] !== "\n") i--;
    while (this.isWord(i - 1)) i--;
    return i;
  }

  nextWordStart(start, end) {
    let i = start;
    while (i < end - 1 && this.isWord(i)) i++;
    while (i < end - 1 && !this.isWord(i)) i++;
    return i < end ? i : start;
  }

  onKey(e) {
    const mod = e.ctrlKey || e.metaKey;
    const k = e.key;
    if (this.dialog) return this.dialogKey(e);
    if (this.inControl(e) && !(mod && k === "Enter") && k !== "Escape") return;
    let done = true;
    if (mod && k === "Enter") this.submit();
    else if (mod && (k === "z" || k === "Z") && !e.shiftKey) this.undo();
    else if (mod || e.isComposing) done = false;
    else if (k === "Escape") this.escape();
    else if (this.relChoice && /^[1-9]$/.test(k)) this.pickRel(Number(k) - 1);
    else if (k === "Enter") this.onEnter();
    else if (k === "Backspace" || k === "Delete") this.reject();
    else if (e.shiftKey && (k === "ArrowLeft" || k === "ArrowRight")) this.nudge("end", k === "ArrowRight" ? 1 : -1);
    else if (e.altKey && (k === "ArrowLeft" || k === "ArrowRight")) this.nudge("start", k === "ArrowRight" ? 1 : -1);
    else if (k === "PageDown" || k === "PageUp" || (k === " " && !this.pending)) this.page(k === "PageUp" || (k === " " && e.shiftKey) ? -1 : 1);
    else if (k === "ArrowRight" || k === "ArrowDown") this.step(1);
    else if (k === "ArrowLeft" || k === "ArrowUp") this.step(-1);
    else if (e.shiftKey && e.code === "KeyA") this.acceptAll();
    else if (e.shiftKey && /^Digit[1-9]$/.test(e.code)) this.toggleAttr(Number(e.code.slice(5)) - 1);
    else if (!e.altKey && !e.shiftKey && k.length === 1 && this.hotkeys.has(k.toLowerCase())) {
      this.applyLabel(this.hotkeys.get(k.toLowerCase()));
    } else if (!e.altKey && !e.shiftKey && this.aliases[k]) this.command(this.aliases[k]);
    else done = false;
    if (done) {
      e.preventDefault();
      e.stopPropagation();
      this.markUpdate(e.timeStamp);
    } else if (!mod && k.length === 1) {
      e.stopPropagation(); // a stray letter must not reach Streamlit's own shortcuts (c, r)
    }
  }

  // The note scrolls inside the widget, which keeps the focus: page it by hand.
  page(dir) {
    const body = this.el.body;
    body.scrollTop += dir * Math.max(40, body.clientHeight * 0.85);
  }

  command(name) {
    if (name === "next") this.step(1);
    else if (name === "prev") this.step(-1);
    else if (name === "accept") this.onEnter();
    else if (name === "reject") this.reject();
    else if (name === "undo") this.undo();
  }

  onEnter() {
    const it = this.items.get(this.selected);
    if (this.pending && it && it.kind === "span" && overlaps(this.pending, it)) {
      return this.resizeTo(it, this.pending);
    }
    this.accept();
  }

  // Time from the input event to the painted update, for tests and the benchmark.
  markUpdate(t0) {
    afterPaint(() => {
      const ms = performance.now() - t0;
      this.root.dataset.lastUpdateMs = ms.toFixed(1);
      this.root.dataset.updates = String(Number(this.root.dataset.updates || 0) + 1);
      const perf = (window.__noteloopAnnotator = window.__noteloopAnnotator || { updates: [] });
      perf.updates.push(ms);
    });
  }

  // ------------------------------------------------------------------- pickers + panel

  showPending() {
    if (this.pendingBoxes) for (const b of this.pendingBoxes) b.remove();
    const probe = { frags: [[this.pending.start, this.pending.end]], rects: null };
    this.pendingRects = this.rectsOf(probe);
    this.pendingBoxes = this.pendingRects.map((q) => h("div", {
      class: "nl-box nl-pending nl-first nl-last",
      style: `left:${q.x - 1}px;top:${q.y - 1}px;width:${q.w + 2}px;height:${q.h + 2}px;z-index:40`,
    }));
    this.el.boxes.append(...this.pendingBoxes);
  }

  placePicker() {
    const q = (this.pendingRects || [])[this.pendingRects.length - 1];
    const p = this.el.picker;
    p.hidden = false;
    if (!q) return;
    const maxX = this.el.body.clientWidth + this.el.body.scrollLeft - p.offsetWidth - 8;
    p.style.left = `${Math.max(4, Math.min(q.x, maxX))}px`;
    p.style.top = `${q.y + q.h + 8}px`;
  }

  showLabelPicker() {
    const p = this.el.picker;
    this.relChoice = null;
    const sel = this.items.get(this.selected);
    const rows = [];
    if (sel && sel.kind === "span" && overlaps(this.pending, sel)) {
      rows.push(h("button", {
        type: "button", class: "nl-pick nl-pick-resize",
        onclick: () => this.resizeTo(sel, this.pending),
      }, h("kbd", {}, "↵"), ` Set as the extent of the selected ${sel.label}`));
    }
    for (const t of this.data.entity_types) {
      rows.push(h("button", {
        type: "button", class: "nl-pick", dataset: { label: t.name },
        onclick: () => this.applyLabel(t.name),
      }, h("span", { class: "nl-swatch", style: `--c:${t.color}` }), t.name,
      t.hotkey ? h("kbd", {}, t.hotkey) : null));
    }
    p.replaceChildren(h("div", { class: "nl-pick-title" }, "Label the selection"), ...rows);
    this.placePicker();
  }

  showRelPicker(head, tail, types) {
    this.relChoice = { head, tail, types };
    const rows = types.map((rt, i) => h("button", {
      type: "button", class: "nl-pick", dataset: { relation: rt.name },
      onclick: () => this.pickRel(i),
    }, h("kbd", {}, String(i + 1)), ` ${rt.name}`));
    this.el.picker.replaceChildren(
      h("div", { class: "nl-pick-title" }, `${head.label} → ${tail.label}: relation type`), ...rows,
    );
    this.pendingRects = this.rectsOf(tail);
    this.placePicker();
  }

  pickRel(i) {
    const c = this.relChoice;
    if (!c || !c.types[i]) return;
    this.createRel(c.head, c.tail, c.types[i].name);
  }

  hidePicker() {
    this.el.picker.hidden = true;
    this.el.picker.replaceChildren();
    this.relChoice = null;
  }

  refresh() {
    this.refreshPanel();
    this.refreshCounts();
  }

  refreshCounts() {
    let open = 0;
    let accepted = 0;
    let rejected = 0;
    let spans = 0;
    let rels = 0;
    for (const it of this.items.values()) {
      if (it.fromSuggestion) {
        if (it.state === "open" && this.shown(it)) open++;
        else if (it.state === "gold") accepted++;
        else if (it.state === "rejected" || it.state === "deleted") rejected++;
      }
      if (it.state === "gold" && this.shown(it)) (it.kind === "span" ? spans++ : rels++);
    }
    const stat = (n, label, cls) => h("span", { class: `nl-stat ${cls}` }, h("b", {}, String(n)), ` ${label}`);
    const counts = [
      stat(open, "open", "nl-stat-open"), stat(accepted, "accepted", "nl-stat-ok"),
      stat(rejected, "rejected", "nl-stat-no"), h("span", { class: "nl-sep" }),
      stat(spans, spans === 1 ? "span" : "spans", ""), stat(rels, rels === 1 ? "relation" : "relations", ""),
    ];
    if (this.submitted) counts.push(h("span", { class: "nl-badge-ok" }, "submitted"));
    this.el.counts.replaceChildren(...counts);
    this.el.undo.disabled = this.undoStack.length === 0;
  }

  refreshPanel() {
    const it = this.items.get(this.selected);
    const p = this.el.panel;
    if (!it || !this.shown(it)) {
      p.replaceChildren(h("span", { class: "nl-hint" },
        "Select text to add a span · click a span to edit it · Shift+click (or Alt+click) a " +
        "second span to link first → second · → next suggestion"));
      return;
    }
    if (it.kind === "span") p.replaceChildren(...this.spanPanel(it));
    else p.replaceChildren(...this.relPanel(it));
  }

  spanPanel(it) {
    const color = this.types.get(it.label)?.color || "#888";
    const select = h("select", { class: "nl-select", "aria-label": "Entity type" },
      ...this.data.entity_types.map((t) => h("option", { value: t.name, selected: t.name === it.label }, t.name)));
    select.addEventListener("change", () => this.relabel(it, select.value));
    const excerpt = it.frags.map(([a, b]) => this.text.slice(a, b)).join(" … ");
    const status = it.state === "open"
      ? h("span", { class: "nl-tag nl-tag-sugg" }, `suggested ${it.score !== null ? fmtScore(it.score) : ""}`)
      : h("span", { class: "nl-tag" }, this.sourceOf(it));
    const attrs = this.attrTypes.map((at, i) => {
      if (!at.values || at.values.length === 0) {
        const box = h("input", { type: "checkbox", checked: !!it.attrs[at.name], "data-attr": at.name });
        box.addEventListener("change", () => this.toggleAttr(i));
        return h("label", { class: "nl-attr-toggle", title: `${at.description || at.name} (Shift+${i + 1})` }, box, ` ${at.name}`);
      }
      const sel = h("select", { class: "nl-select", "data-attr": at.name },
        h("option", { value: "" }, `${at.name}: —`),
        ...at.values.map((v) => h("option", { value: v, selected: it.attrs[at.name] === v }, `${at.name}: ${v}`)));
      sel.addEventListener("change", () => this.toggleAttr(i, sel.value));
      return sel;
    });
    const buttons = it.state === "open"
      ? [h("button", { type: "button", class: "nl-btn nl-small", onclick: () => this.accept() }, "Accept ↵"),
        h("button", { type: "button", class: "nl-btn nl-small", onclick: () => this.reject() }, "Reject ⌫")]
      : [h("button", { type: "button", class: "nl-btn nl-small", onclick: () => this.reject() }, "Delete ⌫")];
    return [
      h("span", { class: "nl-swatch", style: `--c:${color}` }), select,
      h("span", { class: "nl-excerpt", title: excerpt }, `“${excerpt}”`), status,
      h("span", { class: "nl-attrs" }, ...attrs), h("span", { class: "nl-spacer" }), ...buttons,
    ];
  }

  relPanel(rel) {
    const head = this.items.get(rel.head);
    const tail = this.items.get(rel.tail);
    const types = this.allowed(head.label, tail.label);
    if (!types.some((t) => t.name === rel.label)) types.push({ name: rel.label });
    const select = h("select", { class: "nl-select", "aria-label": "Relation type" },
      ...types.map((t) => h("option", { value: t.name, selected: t.name === rel.label }, t.name)));
    select.addEventListener("change", () => this.setRelLabel(rel, select.value));
    const say = (s) => `“${this.text.slice(s.start, s.end)}” (${s.label})`;
    const status = rel.state === "open"
      ? h("span", { class: "nl-tag nl-tag-sugg" }, `suggested ${rel.score !== null ? fmtScore(rel.score) : ""}`)
      : h("span", { class: "nl-tag" }, rel.fromSuggestion ? (rel.label === rel.origLabel ? "accepted" : "edited") : "manual");
    const buttons = rel.state === "open"
      ? [h("button", { type: "button", class: "nl-btn nl-small", onclick: () => this.accept() }, "Accept ↵"),
        h("button", { type: "button", class: "nl-btn nl-small", onclick: () => this.reject() }, "Reject ⌫")]
      : [h("button", { type: "button", class: "nl-btn nl-small", onclick: () => this.reject() }, "Delete ⌫")];
    return [
      h("span", { class: "nl-rel-icon" }, "⤴"), select,
      h("span", { class: "nl-excerpt" }, `${say(head)} → ${say(tail)}`), status,
      h("span", { class: "nl-spacer" }), ...buttons,
    ];
  }

  buildLabels() {
    const chips = this.data.entity_types.map((t) => h("button", {
      type: "button", class: "nl-chip", dataset: { label: t.name }, title: t.description || t.name,
      onclick: () => this.applyLabel(t.name),
    }, h("span", { class: "nl-swatch", style: `--c:${t.color}` }), t.name, t.hotkey ? h("kbd", {}, t.hotkey) : null));
    const legend = h("span", { class: "nl-legend" },
      h("span", { class: "nl-demo nl-demo-gold" }, "gold"),
      h("span", { class: "nl-demo nl-demo-sugg" }, "suggested"));
    this.el.labels.replaceChildren(...chips, h("span", { class: "nl-spacer" }), legend);
  }

  buildKeys() {
    const alias = (cmd) => Object.entries(this.aliases).filter(([, c]) => c === cmd).map(([k]) => k);
    const key = (...ks) => ks.flat().map((k) => h("kbd", {}, k));
    const item = (keys, what) => h("span", { class: "nl-key" }, ...keys, ` ${what}`);
    const attrs = this.attrTypes.length ? item(key("Shift+1…" + Math.min(9, this.attrTypes.length)), "toggle attribute") : null;
    this.el.keys.replaceChildren(
      item(key("→", "↓", alias("next")), "next"),
      item(key("←", "↑", alias("prev")), "previous"),
      item(key("Enter", alias("accept")), "accept"),
      item(key("⌫", "Del", alias("reject")), "reject / delete"),
      item(key("Shift+A"), `accept ≥ ${this.threshold.toFixed(2)}`),
      item(key("letter"), "label (see chips)"),
      attrs,
      item(key("Shift+←/→"), "move end"),
      item(key("Alt+←/→"), "move start"),
      item(key("Shift+click"), "link selected → clicked"),
      item(key("Ctrl+Z", alias("undo")), "undo"),
      item(key("Esc"), "clear"),
      item(key("PgUp", "PgDn"), "scroll"),
      item(key("Ctrl+Enter"), "submit"),
    );
  }

  say(message, warn) {
    const text = message || "";
    if (this.el.msg.textContent !== text) this.el.msg.textContent = text;
    this.el.msg.classList.toggle("nl-warn", !!warn && !!text);
  }

  // ------------------------------------------------------------------------------ state

  // Active time: the clock runs while the tab is visible and the widget had input (a key,
  // click, pointer move or wheel) in the last minute; a note left open does not count.
  // A run ends by itself a minute after its last input, so nothing needs to watch for it.
  seconds() {
    const t = performance.now();
    const running = this.runningSince === null
      ? 0 : Math.max(0, Math.min(t, this.lastInput + IDLE_MS) - this.runningSince);
    return this.draftSeconds + (this.activeMs + running) / 1000;
  }

  clockRunning() {
    return this.runningSince !== null && performance.now() < this.lastInput + IDLE_MS;
  }

  onInput() {
    const t = performance.now();
    if (document.visibilityState === "visible") {
      if (this.runningSince !== null && t > this.lastInput + IDLE_MS) this.stopClock(t);
      if (this.runningSince === null) {
        this.runningSince = t;
        this.lastInput = t;
        this.tickTimer(); // show at once that the clock runs again
      }
    }
    this.lastInput = t;
  }

  stopClock(t) {
    if (this.runningSince === null) return;
    this.activeMs += Math.max(0, Math.min(t, this.lastInput + IDLE_MS) - this.runningSince);
    this.runningSince = null;
  }

  onVisibility() {
    const t = performance.now();
    if (document.visibilityState === "visible") {
      if (this.runningSince === null && t < this.lastInput + IDLE_MS) this.runningSince = t;
    } else {
      this.stopClock(t);
      this.flushOnLeave(); // the tab may be closing: hand the latest state over now
    }
    this.tickTimer();
  }

  tickTimer() {
    this.el.timer.textContent = `active ${fmtTime(this.seconds())}`;
    this.el.timer.classList.toggle("nl-idle", !this.clockRunning());
  }

  emit() {
    this.dirty = true;
    clearTimeout(this.emitTimer);
    this.emitTimer = setTimeout(() => this.flush(), EMIT_DELAY_MS);
  }

  // Send the state now if anything changed since it was last sent.
  flush(force) {
    clearTimeout(this.emitTimer);
    this.emitTimer = null;
    if (this.destroyed || !this.setState || !(this.dirty || force)) return;
    this.dirty = false;
    const state = this.state(false);
    this.emittedSeconds = state.seconds;
    this.setState("annotation", state);
    this.root.dataset.emitted = String(Number(this.root.dataset.emitted || 0) + 1); // for tests
  }

  // The tab is hidden or left: send the changes, and the time worked since the last send.
  flushOnLeave() {
    this.flush(this.seconds() - this.emittedSeconds >= 1);
  }

  state(submitted) {
    const cp = (i) => this.toCp(i);
    const spans = [];
    const relations = [];
    const decisions = {};
    for (const it of this.items.values()) {
      if (it.kind === "span" && it.state === "gold") {
        spans.push({
          id: it.id, label: it.label, start: cp(it.start), end: cp(it.end),
          fragments: it.frags.map(([a, b]) => [cp(a), cp(b)]), attributes: { ...it.attrs },
          source: this.sourceOf(it), suggestion_id: it.sid, concept: it.concept, notes: it.notes,
        });
      } else if (it.kind === "rel" && it.state === "gold" && this.shown(it)) {
        relations.push({
          id: it.id, label: it.label, head: this.items.get(it.head).id,
          tail: this.items.get(it.tail).id, suggestion_id: it.sid, notes: it.notes,
        });
      }
      if (it.fromSuggestion && it.sid !== null && it.state !== "open") {
        if (it.state === "gold") {
          const same = it.kind === "span"
            ? this.sourceOf(it) === "accepted" : it.label === it.origLabel;
          decisions[String(it.sid)] = same ? "accepted" : "edited";
        } else {
          decisions[String(it.sid)] = "rejected";
        }
      }
    }
    return {
      document_id: this.data.document_id, version: this.data.version, spans, relations,
      decisions, seconds: Math.round(this.seconds() * 100) / 100, submitted,
    };
  }
}
