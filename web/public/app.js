// The Live page: sign in, talk, hear the answer, talk over it to stop it.
//
// The microphone streams to the server while it is on (`vad=server`): the server decides where
// the user's turn ends, from the words as well as the silence, and may have the answer ready as
// it does. The page's own VAD (Silero, in the browser) only acts at once on the bot's voice: it
// turns it down at the first sound of speech and stops it when the speech is confirmed.

import { renderMarkdown } from "./markdown.js";
import { Player } from "./player.js";
import { pcmBase64 } from "./wav.js";

const $ = (id) => document.getElementById(id);
const store = window.localStorage;
const VAD_RATE = 16000; // vad-web hands over 16 kHz frames
const PART_MS = 100; // speaking_part size while streaming

// Voice detection settings, tunable on the page (kept in localStorage). They decide when the
// bot is turned down and stopped; the end of the user's turn is the server's decision.
const VAD_DEFAULTS = {
  positiveSpeechThreshold: 0.5,
  negativeSpeechThreshold: 0.35,
  minSpeechMs: 250,
  redemptionMs: 600,
  preSpeechPadMs: 300,
};

// What the tests (and the curious) can read: window.live.
const debug = {
  sent: { start_speaking: 0, speaking_part: 0, end_speaking: 0, text_input: 0, interrupt: 0 },
  heard: { speech_started: 0, speech_stopped: 0 }, // the server's turn decisions
  ignored: 0, // frames of an interrupted turn that arrived after it was cut off
  interrupted: [],
  partials: 0, // user_partial frames shown
  ends: 0, // turns ended
  level: 0, // the loudest microphone level the meter showed
  state: "",
};

const player = new Player();
let socket = null;
let retry = { delay: 1000, timer: null };
let turn = null; // the turn frames are arriving for
const cutOff = new Set(); // turns the user talked over: their late frames are ignored
let awaitingReply = false;
let vad = null;
let hearing = false; // the server hears the user speak (speech_started .. speech_stopped)
let outgoing = []; // microphone frames not sent yet
const spoken = new Map(); // turn -> [{text, ms}]: its sentences whose audio arrived, in order
let lastSentence = "";

window.live = { debug, player };

// --- state ---------------------------------------------------------------------------------

function setState(state) {
  debug.state = state;
  const labels = {
    offline: "offline",
    ready: "ready",
    listening: "listening",
    hearing: "hearing you",
    thinking: "thinking",
    speaking: "speaking",
  };
  $("state").textContent = labels[state];
  $("state").dataset.state = state;
}

function idleState() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return setState("offline");
  if (hearing) return setState("hearing");
  if (player.playing) return setState("speaking");
  if (awaitingReply) return setState("thinking");
  setState(vad ? "listening" : "ready");
}

player.onIdle = () => idleState();

// --- messages on the page ----------------------------------------------------------------------

function addMessage(kind, text, turnId) {
  const li = document.createElement("li");
  li.className = `msg ${kind}`;
  if (turnId !== undefined) li.dataset.turn = String(turnId);
  li.textContent = text;
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

// What the user is saying, as the server recognises it while they speak: one bubble, replaced
// by the final transcript.
function showPartial(text) {
  let li = document.querySelector("#messages .user.partial");
  if (!li) li = addMessage("user partial", "");
  li.textContent = text;
  debug.partials++;
}

function clearPartial() {
  document.querySelector("#messages .user.partial")?.remove();
}

// A reply the user talked over: the part they heard stays, the rest is set apart.
function markInterrupted(turnId, playedMs) {
  const bubble = document.querySelector(`#messages .bot[data-turn="${turnId}"]`);
  if (!bubble) return;
  const full = bubble.dataset.raw ?? bubble.textContent;
  let heardEnd = 0;
  let elapsed = 0;
  for (const { text, ms } of spoken.get(turnId) || []) {
    elapsed += ms;
    if (elapsed > playedMs) break;
    const at = full.indexOf(text, heardEnd);
    if (at >= 0) heardEnd = at + text.length;
  }
  renderCut(bubble, full.slice(0, heardEnd), full.slice(heardEnd));
}

function renderCut(bubble, heard, unheard) {
  bubble.classList.add("interrupted");
  const kept = document.createElement("span");
  kept.append(renderMarkdown(heard));
  const rest = document.createElement("span");
  rest.className = "unheard";
  rest.append(renderMarkdown(unheard));
  rest.title = "Not heard: you talked over it";
  bubble.replaceChildren(kept, rest);
}

// A resumed conversation: show what was said before (as stored: a cut reply holds only what
// was heard).
async function showHistory(conversationId, count) {
  if ($("messages").children.length) return; // a reconnect: they are on the page already
  const token = store.getItem("live.token");
  // The last page of up to 500 messages, oldest first: the end of a long conversation.
  const page = Math.max(1, Math.ceil(count / 500));
  const url = `/api/v1/chat/sessions/${encodeURIComponent(conversationId)}/messages`;
  try {
    const r = await fetch(`${url}?page_size=500&page=${page}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const { messages } = await r.json();
    const shown = document.createDocumentFragment();
    for (const m of messages) {
      const li = document.createElement("li");
      li.className = `msg ${m.role === "user" ? "user" : "bot"} earlier`;
      if (m.role === "user") li.textContent = m.content;
      else showReply(li, m.content);
      if (m.interrupted) {
        li.classList.add("interrupted");
        li.title = "Interrupted: only what was heard was kept";
      }
      shown.append(li);
    }
    $("messages").prepend(shown);
    $("messages").lastElementChild?.scrollIntoView({ block: "end" });
  } catch (err) {
    showError(`Could not load the earlier messages: ${err.message}`);
  }
}

function botBubble(turnId) {
  const found = document.querySelector(`#messages .bot[data-turn="${turnId}"]`);
  return found || addMessage("bot", "", turnId);
}

// A reply's text as it streams, rendered as markdown (never as HTML: see markdown.js).
function showReply(bubble, raw) {
  bubble.dataset.raw = raw;
  bubble.replaceChildren(renderMarkdown(raw));
}

function showError(text) {
  addMessage("error", text);
}

function showMetrics(data) {
  const names = {
    stt_time: "speech recognition",
    llm_ttft: "model, first token",
    tts_first_frame_time: "speech, first sentence",
    speak_to_first_frame: "to first audio",
    wav_to_tts_total_time: "whole turn",
  };
  for (const [key, label] of Object.entries(names)) {
    if (typeof data[key] === "number") showMetric(key, label, data[key] * 1000);
  }
  if (typeof data.end_of_turn_ms === "number") showMetric("end_of_turn_ms", "your pause, waited", data.end_of_turn_ms);
}

function showMetric(key, label, ms) {
  let row = document.querySelector(`#metrics [data-key="${key}"]`);
  if (!row) {
    row = document.createElement("div");
    row.dataset.key = key;
    row.innerHTML = "<dt></dt><dd></dd>";
    row.querySelector("dt").textContent = label;
    $("metrics").append(row);
  }
  row.querySelector("dd").textContent = `${Math.round(ms)} ms`;
}

// --- signing in --------------------------------------------------------------------------------

function tokenExpired(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
  } catch {
    return true;
  }
}

function showLogin(message) {
  disconnect();
  store.removeItem("live.token");
  $("login").hidden = false;
  $("chat").hidden = true;
  $("login-error").textContent = message || "";
  $("username").focus();
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const body = { username: $("username").value.trim(), password: $("password").value };
  try {
    const r = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await r.json();
    if (!r.ok) throw new Error(data.error ? data.error.message : `HTTP ${r.status}`);
    $("password").value = "";
    start(data.token);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
}

function start(token) {
  store.setItem("live.token", token);
  $("login").hidden = true;
  $("chat").hidden = false;
  connect();
}

// --- the socket --------------------------------------------------------------------------------

function connect() {
  const token = store.getItem("live.token");
  if (!token || tokenExpired(token)) return showLogin("Your session has expired: log in again.");
  clearTimeout(retry.timer);
  const proto = location.protocol === "https:" ? "wss" : "ws";
  // The server detects the turns in the microphone's stream (16 kHz PCM).
  const params = new URLSearchParams({ token, vad: "server", sample_rate: String(VAD_RATE) });
  const conversation = store.getItem("live.conversation");
  if (conversation) params.set("conversation_id", conversation);
  const ws = new WebSocket(`${proto}://${location.host}/api/live_chat/ws?${params}`);
  socket = ws;
  ws.onopen = () => {
    retry.delay = 1000;
    $("banner").hidden = true;
    idleState();
  };
  ws.onmessage = (event) => onFrame(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    stopHearing();
    awaitingReply = false;
    idleState();
    if (event.code === 1008 && /token/i.test(event.reason)) {
      return showLogin(`${event.reason}: log in again.`);
    }
    if (event.code === 1008) store.removeItem("live.conversation");
    $("banner-text").textContent = `Connection lost${event.reason ? `: ${event.reason}` : ""}.`;
    $("banner").hidden = false;
    retry.timer = setTimeout(connect, retry.delay);
    retry.delay = Math.min(retry.delay * 2, 15000);
  };
}

function disconnect() {
  clearTimeout(retry.timer);
  if (socket) {
    const ws = socket;
    socket = null;
    ws.close();
  }
}

function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(frame));
  if (frame.t in debug.sent) debug.sent[frame.t]++;
  return true;
}

function onFrame(frame) {
  const id = frame.turn_id;
  if (id !== undefined && cutOff.has(id)) {
    // The turn guard: nothing of a turn the user talked over is shown or played.
    debug.ignored++;
    return;
  }
  switch (frame.t) {
    case "conversation":
      store.setItem("live.conversation", frame.data.id);
      $("conversation").textContent = frame.data.resumed
        ? `Continuing a conversation (${frame.data.messages} messages)`
        : "New conversation";
      if (frame.data.resumed && frame.data.messages > 0) showHistory(frame.data.id, frame.data.messages);
      break;
    case "speech_started":
      debug.heard.speech_started++;
      hearing = true;
      idleState();
      break;
    case "speech_stopped":
      // The server has decided that the user's turn is over: its answer comes next.
      debug.heard.speech_stopped++;
      hearing = false;
      awaitingReply = true;
      idleState();
      break;
    case "user_partial":
      showPartial(frame.data.text);
      break;
    case "metrics":
      if (frame.data.input_type) turn = id;
      showMetrics(frame.data);
      break;
    case "user_msg":
      clearPartial();
      addMessage("user", frame.data.text, id);
      break;
    case "bot_text_chunk":
      lastSentence = frame.data.text;
      break;
    case "bot_delta_chunk":
      {
        const bubble = botBubble(id);
        showReply(bubble, (bubble.dataset.raw ?? "") + frame.data.text);
      }
      break;
    case "bot_msg":
      showReply(botBubble(id), frame.data.text);
      break;
    case "response":
      awaitingReply = false;
      if (!spoken.has(id)) spoken.set(id, []);
      spoken.get(id).push({ text: lastSentence, ms: frame.duration_ms || 0 });
      try {
        player.enqueue(id, frame.data);
      } catch (err) {
        showError(`Could not play the answer: ${err.message}`);
      }
      idleState();
      break;
    case "stop_play": {
      const played = player.stop(id);
      if (!cutOff.has(id)) {
        // The server heard the user talk over the bot before the page's own VAD was sure:
        // the turn is cut off all the same.
        cutOff.add(id);
        debug.interrupted.push(id);
        awaitingReply = false;
        markInterrupted(id, played);
      }
      break;
    }
    case "end":
      debug.ends++;
      awaitingReply = false;
      idleState();
      break;
    case "error":
      awaitingReply = false;
      if (frame.code === "EMPTY_TRANSCRIPT") clearPartial();
      showError(`${frame.code}: ${frame.data}`);
      idleState();
      break;
  }
}

// --- talking over the bot --------------------------------------------------------------------

function bargeIn() {
  if (turn === null || cutOff.has(turn) || !(player.playing || awaitingReply)) return;
  const id = turn;
  cutOff.add(id);
  debug.interrupted.push(id);
  const played = player.stop(id);
  awaitingReply = false;
  send({ t: "interrupt", played_ms: played });
  markInterrupted(id, played);
}

// --- the microphone ----------------------------------------------------------------------------

let vadSettings = null; // read from localStorage once, updated by the settings form

function vadOptions() {
  if (!vadSettings) vadSettings = { ...VAD_DEFAULTS, ...JSON.parse(store.getItem("live.vad") || "{}") };
  return vadSettings;
}

async function toggleMic() {
  player.unlock();
  if (vad) {
    await vad.pause();
    vad.destroy();
    vad = null;
    outgoing = [];
    player.unduck();
    $("level").value = 0;
    $("mic").setAttribute("aria-pressed", "false");
    $("mic").textContent = "Start talking";
    return idleState();
  }
  if (!window.vad) {
    return showError("Voice detection is not installed on this server (npm ci in web/).");
  }
  $("mic").disabled = true;
  try {
    vad = await window.vad.MicVAD.new({
      ...vadOptions(),
      model: "v5",
      baseAssetPath: "/vendor/vad/",
      onnxWASMBasePath: "/vendor/ort/",
      // Echo cancellation keeps the bot's own voice out of the microphone (or it would talk
      // over itself); the browser's noise suppression is off: its artefacts cost Whisper words
      // ("ask" heard as "asked"), and the VADs on both sides are robust to noise without it.
      // Automatic gain is off too: the gain it adds made Whisper hear Kennedy's "And so my
      // fellow Americans" as "And so am I fellow America", words that read as finished, so
      // the server ended his turn at his pause; Whisper copes with a quiet voice as it is.
      getStream: () =>
        navigator.mediaDevices.getUserMedia({
          audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
        }),
      onFrameProcessed: (_probs, frame) => onVadFrame(frame),
      // The first frame that sounds like speech turns the bot down; only once it is confirmed
      // as speech is the bot stopped. A cough or a door turns it back up.
      onSpeechStart: () => player.duck(),
      onSpeechRealStart: () => {
        bargeIn();
        player.unduck(); // the bot was stopped, or had finished: its next reply plays at full volume
      },
      onVADMisfire: () => player.unduck(),
    });
    vad.start();
    $("mic").setAttribute("aria-pressed", "true");
    $("mic").textContent = "Stop talking";
  } catch (err) {
    vad = null;
    showError(`The microphone could not start: ${err.message || err}`);
  } finally {
    $("mic").disabled = false;
    idleState();
  }
}

function showLevel(frame) {
  let sum = 0;
  for (let i = 0; i < frame.length; i++) sum += frame[i] * frame[i];
  // RMS in dB, -60 dB (silence) to 0 dB (full scale), as 0 to 1.
  const db = 10 * Math.log10(sum / frame.length + 1e-10);
  const level = Math.max(0, Math.min(1, (db + 60) / 60));
  $("level").value = level;
  debug.level = Math.max(debug.level, level);
}

// Every frame goes to the server, in parts of about 100 ms: it hears the silences too, since
// how long they last is part of how it decides that the user has finished.
function onVadFrame(frame) {
  showLevel(frame);
  outgoing.push(frame.slice());
  const samples = outgoing.reduce((n, f) => n + f.length, 0);
  if (samples < (PART_MS * VAD_RATE) / 1000) return;
  send({ t: "speaking_part", data: pcmBase64(outgoing) });
  outgoing = [];
}

function stopHearing() {
  hearing = false;
  outgoing = [];
  clearPartial();
}

// --- typing ------------------------------------------------------------------------------------

function sendText(event) {
  event.preventDefault();
  player.unlock();
  const text = $("text").value.trim();
  if (!text) return;
  bargeIn();
  if (send({ t: "text_input", text })) {
    $("text").value = "";
    awaitingReply = true;
    idleState();
  } else {
    showError("Not connected: the message was not sent.");
  }
}

// --- voice settings ---------------------------------------------------------------------------

function setUpVadSettings() {
  const options = vadOptions();
  for (const [key, value] of Object.entries(options)) {
    const input = document.querySelector(`#vad-settings [name="${key}"]`);
    if (!input) continue;
    input.value = String(value);
    input.addEventListener("change", () => {
      const saved = JSON.parse(store.getItem("live.vad") || "{}");
      saved[key] = Number(input.value);
      store.setItem("live.vad", JSON.stringify(saved));
      vadSettings = null;
      if (vad) vad.setOptions({ [key]: Number(input.value) });
    });
  }
}

// --- start -------------------------------------------------------------------------------------

function main() {
  $("login-form").addEventListener("submit", login);
  $("composer").addEventListener("submit", sendText);
  $("mic").addEventListener("click", toggleMic);
  $("reconnect").addEventListener("click", connect);
  $("logout").addEventListener("click", () => {
    store.removeItem("live.conversation"); // the next user starts their own
    $("messages").replaceChildren();
    showLogin("Logged out.");
  });
  $("new-conversation").addEventListener("click", () => {
    store.removeItem("live.conversation");
    $("messages").replaceChildren();
    disconnect();
    connect();
  });
  setUpVadSettings();

  // A sign-in link (`#token=...`, printed by `live-server serve`): keep the token, clean the URL.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    history.replaceState(null, "", location.pathname + location.search);
    return start(fromLink);
  }
  const token = store.getItem("live.token");
  if (token && !tokenExpired(token)) return start(token);
  showLogin(token ? "Your session has expired: log in again." : "");
}

main();
